"""``python -m services.router``: run the router service."""

from services.router.app import create_app
from shared.runtime import serve
from shared.settings import RouterSettings

if __name__ == "__main__":
    settings = RouterSettings()
    serve(lambda: create_app(settings), settings, "router", settings.router_host, settings.router_port)
