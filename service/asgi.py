"""ASGI entry point for servers: ``service.asgi:app_from_env`` is an app factory."""

from litestar import Litestar

from service.app import create_app
from service.settings import Settings


def app_from_env() -> Litestar:
    """The app configured from ``RECO_*`` environment variables."""
    return create_app(Settings.from_env())
