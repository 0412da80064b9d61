"""``python -m services.intake``: run the intake service."""

from services.intake.app import create_app
from shared.runtime import serve, tune_collector_for_requests
from shared.settings import IntakeSettings

if __name__ == "__main__":
    settings = IntakeSettings()
    tune_collector_for_requests()  # for the process, not in the app's lifespan: tests run that in theirs
    serve(lambda: create_app(settings), settings, "intake", settings.intake_host, settings.intake_port)
