"""Imports every table so that Alembic (and test fixtures) see the complete metadata."""

from services.intake import models as intake_models
from services.metrics import models as metrics_models
from services.router import models as router_models
from services.router.escalation import models as escalation_models
from services.router.load import models as load_models
from services.router.slas import models as sla_models
from services.router.writeback import models as writeback_models
from shared.db import models as shared_models
from shared.db.base import Base

metadata = Base.metadata

__all__ = [
    "escalation_models",
    "intake_models",
    "load_models",
    "metadata",
    "metrics_models",
    "router_models",
    "shared_models",
    "sla_models",
    "writeback_models",
]
