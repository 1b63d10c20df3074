"""The endpoints, one router per subject (FastAPI's ``tutorial/bigger-applications``).

:data:`API` are the ``/api`` routers: ``create_app`` includes them behind
the API key where one is set. :data:`OPEN` stay open (``/metrics``).
"""

from __future__ import annotations

from fmsearch.serve.routers import images, insight, search, system

API = (system.router, search.router, images.router, insight.router)
OPEN = (system.open_router,)

__all__ = ["API", "OPEN"]
