"""HTTP service: one asset per request, every answer audited (``scanner serve``).

    from scanner.service import ServiceConfig, create_app
    app = create_app(settings, ServiceConfig(allow_roots=(Path("/mnt/deliveries"),)))

Needs the ``fastapi``, ``uvicorn`` and ``python-multipart`` packages.
"""

from scanner.service.app import create_app
from scanner.service.config import ServiceConfig
from scanner.service.engine import Engine

__all__ = ["Engine", "ServiceConfig", "create_app"]
