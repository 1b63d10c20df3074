"""The HTTP face: a FastAPI application over :class:`SearchService`.

As thin as the CLI: parse, call the service off the event loop, map domain
errors to 4xx JSON ``{"error": ...}`` in one place. Read-only: no endpoint
writes, and none takes a path on the server's disk.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from fmsearch import __version__
from fmsearch.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    DatasetError,
    FmsearchError,
    ModelError,
    StoreError,
)
from fmsearch.serve.batcher import MicroBatcher
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.limits import BodyLimit, UploadTooLarge
from fmsearch.serve.metrics import Metrics
from fmsearch.serve.routes import NotReady, UnsupportedMedia, register
from fmsearch.serve.schemas import ErrorBody
from fmsearch.serve.service import PlainSearch, SearchService

logger = logging.getLogger(__name__)

#: HTTP status of each domain error (anything else a user causes: 400)
STATUS: list[tuple[type[FmsearchError], int]] = [
    (CollectionNotFoundError, 404),
    (CollectionMismatchError, 409),
    (StoreError, 503),
    (DatasetError, 503),
    (ModelError, 503),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in (
        (400, "A bad request: not an image, unknown method or class, an id or k out of range, a bad combination"),
        (401, "The API key is missing or wrong"), (404, "No such collection or route"),
        (409, "The collection was built by another model"), (413, "The upload is over the size limit"),
        (415, "Neither JSON nor a multipart form"), (422, "A field of the wrong type or out of range"),
        (503, "Loading, a store or model not available, or the request ran past the timeout"))
}
API_KEY_HEADER = "x-api-key"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def status_of(err: FmsearchError) -> int:
    return next((code for kind, code in STATUS if isinstance(err, kind)), 400)


def create_app(config: ServeConfig, service: SearchService | None = None) -> FastAPI:
    """The application for ``config`` (the service loads in the background at start-up)."""
    service = service or SearchService(config)
    executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="fmsearch-serve")
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.get_running_loop().run_in_executor(executor, _load, service)
        yield
        await asyncio.wait([loading])
        await asyncio.get_running_loop().run_in_executor(executor, service.close)
        executor.shutdown(wait=False)

    app = FastAPI(title="fmsearch", version=__version__, lifespan=lifespan,
                  description="Image similarity search over Fashion-MNIST, backed by Qdrant (read-only).")
    app.state.service, app.state.config, app.state.metrics = service, config, metrics
    app.state.batcher = MicroBatcher(lambda key, items: _run_batch(service, key, items), executor,
                                     on_batch=lambda key, n: metrics.batch(key[0].method, n))
    app.state.run = lambda fn, *args: asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    _middleware(app, config, metrics)
    _handlers(app)
    register(app, ERRORS)
    return app


def create_app_from_env() -> FastAPI:
    """The factory a worker process calls (``uvicorn --factory``)."""
    return create_app(ServeConfig.from_env())


def _load(service: SearchService) -> None:
    try:
        service.load()
    except Exception as err:  # noqa: BLE001 - the service answers 503 with the reason
        service.state = f"failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        logger.exception("the service could not load")


def _run_batch(service: SearchService, key, items: list[PlainSearch]) -> list:
    mode, exact = key
    timings: dict[str, float] = {}
    hits = service.search_batch(mode, exact, items, timings)
    return [(h, timings, len(items)) for h in hits]


def _middleware(app: FastAPI, config: ServeConfig, metrics: Metrics) -> None:
    @app.middleware("http")
    async def guard(request: Request, call_next: Callable):
        t0 = time.perf_counter()
        path = request.url.path
        if path.startswith("/api/") and config.api_key is not None:
            given = request.headers.get(API_KEY_HEADER) or _bearer(request.headers.get("authorization"))
            if given is None or not hmac.compare_digest(given.encode(), config.api_key.encode()):
                return _error(401, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)")
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.request(endpoint, getattr(request.state, "method", "-"), response.status_code,
                        time.perf_counter() - t0)
        return response

    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["content-type", API_KEY_HEADER])


def _bearer(value: str | None) -> str | None:
    if value and value.lower().startswith("bearer "):
        return value[7:].strip()
    return None


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(FmsearchError)
    async def domain(request: Request, err: FmsearchError):
        return _error(status_of(err), str(err))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, err: RequestValidationError):
        return _error(422, _first_problem(err.errors()))

    @app.exception_handler(ValidationError)
    async def invalid_model(request: Request, err: ValidationError):
        return _error(422, _first_problem(err.errors()))

    @app.exception_handler(HTTPException)
    async def http(request: Request, err: HTTPException):
        return _error(err.status_code, str(err.detail))

    @app.exception_handler(NotReady)
    async def not_ready(request: Request, err: NotReady):
        return _error(503, str(err))

    @app.exception_handler(UnsupportedMedia)
    async def unsupported(request: Request, err: UnsupportedMedia):
        return _error(415, str(err))

    @app.exception_handler(UploadTooLarge)
    async def too_large(request: Request, err: UploadTooLarge):
        return _error(413, str(err))

    @app.exception_handler(TimeoutError)
    async def timeout(request: Request, err: TimeoutError):
        return _error(503, f"the request ran past the {request.app.state.config.request_timeout_s:g} s timeout "
                           "and was cancelled")

    @app.exception_handler(Exception)
    async def internal(request: Request, err: Exception):
        logger.exception("internal error on %s %s", request.method, request.url.path)
        return _error(500, "internal error")


def _first_problem(errors: list[dict]) -> str:
    if not errors:
        return "invalid request"
    e = errors[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",))
    return f"{where}: {e.get('msg', 'invalid')}" if where else str(e.get("msg", "invalid"))


