"""The HTTP face: a FastAPI application over :class:`SearchService`.

As thin as the CLI: parse, call the service off the event loop, map domain
errors to 4xx JSON ``{"error": ...}`` in one place (:mod:`.errors`).
Read-only: no endpoint writes, and none takes a path on the server's disk.

A worker loads before it takes a connection: the service loads in the
application's lifespan start-up, which granian and uvicorn both finish
before they accept, so no request ever meets a worker that is still
loading, and with several workers the port's first 200 from
``/api/health`` comes from a loaded one while the others wait unseen.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, cast

from fastapi import FastAPI, Security
from starlette.types import ASGIApp, Receive, Scope, Send

from fmsearch import __version__
from fmsearch.search.batcher import MicroBatcher, explain_executor, work_executor
from fmsearch.search.mode import SearchMode
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.deps import API_KEY_HEADER, Serving, api_key
from fmsearch.serve.errors import add_handlers, error_answer
from fmsearch.serve.fastpath import SearchFastPath
from fmsearch.serve.insight import Insight
from fmsearch.serve.limits import BodyLimit
from fmsearch.serve.metrics import Metrics
from fmsearch.serve.middleware import Deadline, Metered
from fmsearch.serve.page import mount_page
from fmsearch.serve.routers import API, OPEN
from fmsearch.serve.service import PlainSearch, SearchService

logger = logging.getLogger(__name__)


def create_app(config: ServeConfig, service: SearchService | None = None) -> FastAPI:
    """The application for ``config``: the service loads at start-up, before
    the server takes a connection.

    Args:
        config: the service's settings.
        service: the service to serve (default: a new one for ``config``).
    """
    service = service or SearchService(config)
    executor, explainer = work_executor(), explain_executor()
    metrics = Metrics()
    batcher = MicroBatcher(partial(_run_batch, service), executor, on_batch=partial(_count_batch, metrics))
    serving = Serving(service, config, metrics, Insight(config.insight_dir), batcher, executor, explainer)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await serving.run(_load, service)  # before the first connection: start-up is atomic
        yield
        await serving.run(service.close)
        executor.shutdown(wait=False)
        explainer.shutdown(wait=False)

    app = _ServiceApp(
        title="fmsearch",
        version=__version__,
        lifespan=lifespan,
        telemetry={
            "tracing": False,
            "metrics": False,
            "logs": False,
        },  # Prometheus instead: /metrics
        description="Image similarity search over Fashion-MNIST, backed by Qdrant (read-only).",
    )
    app.state.serving = serving
    guarded = [Security(api_key)] if config.api_key is not None else []  # documented only where it is asked
    for router in API:
        app.include_router(router, dependencies=guarded)
    for router in OPEN:
        app.include_router(router)
    mount_page(app)
    add_handlers(app, config.request_timeout_s)
    app.wrap(partial(_middleware, config, serving))
    return app


class _ServiceApp(FastAPI):
    """FastAPI inside the service's middleware chain, built once around it
    (:func:`_middleware`) rather than inside its own: a search taken by the
    fast path then meets no FastAPI layer at all (FastAPI's error middleware,
    its exception telemetry and body limit, Starlette's dispatch: 23 us of
    the event loop per search, measured in docs/serve.md), while every other
    request goes through the same chain and then FastAPI's stack."""

    _outer: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    def wrap(self, chain: Callable[[ASGIApp], ASGIApp]) -> None:
        """Serve through ``chain(FastAPI's own application)`` from now on."""
        self._outer = chain(partial(FastAPI.__call__, self))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._outer is None:
            await super().__call__(scope, receive, send)
        else:
            await self._outer(scope, receive, send)


def _middleware(config: ServeConfig, serving: Serving, app: ASGIApp) -> ASGIApp:
    """The middleware around the application, innermost first: searches
    straight to their endpoint (fastpath.py says what it buys); each request
    within its deadline; the upload limit; the metrics; CORS."""
    answer = partial(error_answer, timeout_s=config.request_timeout_s)
    app = SearchFastPath(app, serving=serving)
    app = Deadline(app, seconds=config.request_timeout_s, answer=answer)
    app = BodyLimit(app, max_bytes=config.max_upload_bytes)
    app = Metered(app, metrics=serving.metrics)
    if config.cors_origins:
        from starlette.middleware.cors import CORSMiddleware

        app = CORSMiddleware(
            app,
            allow_origins=list(config.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["content-type", API_KEY_HEADER.lower(), "authorization"],
        )
    return app


def _load(service: SearchService) -> None:
    try:
        service.load()
    except Exception as err:  # noqa: BLE001 - the service answers 503 with the reason
        service.state = f"failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        logger.exception("the service could not load")


def _count_batch(metrics: Metrics, key: Hashable, size: int) -> None:
    mode, _, _ = cast(tuple[SearchMode, bool, str | None], key)  # the key _run_batch's callers submit
    metrics.batch(mode.method, size)


def _run_batch(
    service: SearchService, key: tuple[SearchMode, bool, str | None], items: Sequence[PlainSearch]
) -> list[Any]:
    mode, exact, collection = key
    timings: dict[str, float] = {}
    plans: list = []
    answers = service.search_batch(mode, exact, items, timings, collection, plans)
    return [a if isinstance(a, BaseException) else (a, timings, [p]) for a, p in zip(answers, plans, strict=True)]


__all__ = ["create_app"]
