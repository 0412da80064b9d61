"""Ticket classification: labelled-history loading, training with a cross-validated confidence
threshold, evaluation, language detection and urgency signals. Pure Python, no I/O besides files."""

from services.router.classification.data import load_labelled_file
from services.router.classification.evaluation import ClassFigures, EvaluationReport, evaluate
from services.router.classification.features import FeatureConfig, batch_tokens
from services.router.classification.language import (
    DEFAULT_LANGUAGES,
    LanguageGuess,
    detect_language,
    detect_languages,
    load_language_model,
)
from services.router.classification.model import (
    FORMAT_VERSION,
    ModelMetadata,
    Prediction,
    TicketClassifier,
    TrainingFigures,
)
from services.router.classification.training import TrainedModel, choose_threshold, train
from services.router.classification.urgency import TextUrgency, UrgencyAssessment, assess_urgency, scan_text

__all__ = [
    "DEFAULT_LANGUAGES",
    "FORMAT_VERSION",
    "ClassFigures",
    "EvaluationReport",
    "FeatureConfig",
    "LanguageGuess",
    "ModelMetadata",
    "Prediction",
    "TextUrgency",
    "TicketClassifier",
    "TrainedModel",
    "TrainingFigures",
    "UrgencyAssessment",
    "assess_urgency",
    "batch_tokens",
    "choose_threshold",
    "detect_language",
    "detect_languages",
    "evaluate",
    "load_labelled_file",
    "load_language_model",
    "scan_text",
    "train",
]
