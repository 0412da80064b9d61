"""``python -m services.intake``: run the intake service."""

from services.intake.app import create_app
from shared.runtime import serve
from shared.settings import IntakeSettings

if __name__ == "__main__":
    settings = IntakeSettings()
    serve(lambda: create_app(settings), settings, "intake", settings.intake_host, settings.intake_port)
