"""``python -m services.router``: run the router service."""

from services.router.app import create_app
from shared.runtime import serve, tune_collector_for_batches
from shared.settings import RouterSettings

if __name__ == "__main__":
    settings = RouterSettings()
    tune_collector_for_batches()  # for the process, not in the app's lifespan: tests run that in theirs
    serve(lambda: create_app(settings), settings, "router", settings.router_host, settings.router_port)
