"""``python -m services.metrics``: run the metrics service."""

from services.metrics.app import create_app
from shared.runtime import serve
from shared.settings import MetricsSettings

if __name__ == "__main__":
    settings = MetricsSettings()
    serve(lambda: create_app(settings), settings, "metrics", settings.metrics_host, settings.metrics_port)
