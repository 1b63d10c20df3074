"""The one path that bypasses FastAPI: ``POST /api/search`` taken straight
to its endpoint.

What it buys, measured with the serve benchmark's driver (wrk, 16 clients,
siamese uploads), the service with and without it driven in turn on one
home (docs/serve.md, "What the framework costs"): FastAPI's routing and
dependency solving cost 0.31 ms of CPU per search at 28x28 (1.97 ms
against 1.65, 16%) and 0.29 ms at 280x280 (2.82 against 2.53, 10%), 0.21 ms
of it on the event loop, where it also holds Python's lock that the batch
thread needs to hand back results and take the next batch. On two cores the
service is CPU-bound, so that is requests/s.

What it keeps: it is the innermost middleware, so the one middleware chain
(deadline, upload limit, metrics, CORS) wraps it as it wraps every route;
it calls the same endpoint function that FastAPI routes to and documents,
with the same dependencies (called here by hand: the API key, the ready
service); and every error is answered by :func:`~fmsearch.serve.errors.error_answer`,
as the application's handlers answer it.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from fmsearch.serve.deps import Serving, api_key, ready
from fmsearch.serve.errors import error_answer, is_answered
from fmsearch.serve.routers.search import router, search

logger = logging.getLogger(__name__)
PATH = "/api/search"


class SearchFastPath:
    """ASGI middleware: ``POST /api/search`` to :func:`~fmsearch.serve.routers.search.search`
    directly; anything else on to the application."""

    def __init__(self, app: ASGIApp, serving: Serving) -> None:
        self.app = app
        self.serving = serving
        #: the route FastAPI documents (and would route to): the metrics' endpoint label
        self.route = next(r for r in router.routes if isinstance(r, APIRoute) and r.path == PATH)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        scope["route"] = self.route  # as FastAPI's routes record themselves (the metrics' endpoint label)
        request = Request(scope, receive)
        s = self.serving
        try:
            await api_key(request, request.headers.get("x-api-key"), s)
            response = await search(request, s, await ready(s))
        except Exception as err:  # answered as the application's handlers answer it
            if not is_answered(err):
                logger.exception("internal error on POST %s", PATH)
            response = error_answer(err, s.config.request_timeout_s)
        await response(scope, receive, send)
