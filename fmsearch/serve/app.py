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
from contextlib import asynccontextmanager
from functools import partial
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
    ResultNotFoundError,
    StoreError,
)
from fmsearch.search.batcher import MicroBatcher, work_executor
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.insight import Insight
from fmsearch.serve.limits import BodyLimit, UploadTooLarge
from fmsearch.serve.metrics import Metrics
from fmsearch.serve.page import mount_page
from fmsearch.serve.routes import NotReady, UnsupportedMedia, register
from fmsearch.serve.schemas import ErrorBody
from fmsearch.serve.service import PlainSearch, SearchService

logger = logging.getLogger(__name__)

#: HTTP status of each domain error (anything else a user causes: 400)
STATUS: list[tuple[type[FmsearchError], int]] = [
    (CollectionNotFoundError, 404),
    (ResultNotFoundError, 404),
    (CollectionMismatchError, 409),
    (StoreError, 503),
    (DatasetError, 503),
    (ModelError, 503),
]
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text} for code, text in (
        (400, "A bad request: not an image, unknown method or class, an id or k out of range, a bad combination"),
        (401, "The API key is missing or wrong"), (404, "No such collection, map, duplicates run or route"),
        (409, "The collection was built by another model"), (413, "The upload is over the size limit"),
        (415, "Neither JSON nor a multipart form"), (422, "A field of the wrong type or out of range"),
        (503, "Loading, a store or model not available, or the request ran past the timeout"))
}
API_KEY_HEADER = "x-api-key"


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def status_of(err: FmsearchError) -> int:
    return next((code for kind, code in STATUS if isinstance(err, kind)), 400)


def create_app(config: ServeConfig, service: SearchService | None = None) -> SearchLane:
    """The application for ``config`` (the service loads in the background at
    start-up): FastAPI, with searches taken straight to their endpoint."""
    service = service or SearchService(config)
    executor = work_executor()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.get_running_loop().run_in_executor(executor, _load, service)
        yield
        await asyncio.wait([loading])
        await asyncio.get_running_loop().run_in_executor(executor, service.close)
        executor.shutdown(wait=False)

    app = FastAPI(title="fmsearch", version=__version__, lifespan=lifespan,
                  telemetry={"tracing": False, "metrics": False, "logs": False},  # Prometheus instead: /metrics
                  description="Image similarity search over Fashion-MNIST, backed by Qdrant (read-only).")
    app.state.service, app.state.config, app.state.metrics = service, config, metrics
    app.state.insight = Insight(config.insight_dir)
    app.state.batcher = MicroBatcher(lambda key, items: _run_batch(service, key, items), executor,
                                     on_batch=lambda key, n: metrics.batch(key[0].method, n))
    app.state.run = lambda fn, *args: asyncio.get_running_loop().run_in_executor(executor, fn, *args)
    answer = partial(error_answer, timeout_s=config.request_timeout_s)
    # the middleware, innermost first: each request within its deadline; the upload limit; the API key
    # (before anything is read) and the metrics
    app.add_middleware(Deadline, seconds=config.request_timeout_s, answer=answer)
    app.add_middleware(BodyLimit, max_bytes=config.max_upload_bytes)
    app.add_middleware(Guard, api_key=config.api_key, metrics=metrics)
    for kind in HANDLED:
        app.add_exception_handler(kind, _handler(answer))
    search = register(app, ERRORS)
    mount_page(app)
    lane = SearchLane(app, Guard(BodyLimit(Deadline(Errors(search, answer), config.request_timeout_s, answer),
                                           config.max_upload_bytes), config.api_key, metrics))
    if not config.cors_origins:
        return lane
    from starlette.middleware.cors import CORSMiddleware

    return CORSMiddleware(lane, allow_origins=list(config.cors_origins), allow_methods=["GET", "POST"],
                          allow_headers=["content-type", API_KEY_HEADER, "authorization"])


def _load(service: SearchService) -> None:
    try:
        service.load()
    except Exception as err:  # noqa: BLE001 - the service answers 503 with the reason
        service.state = f"failed: {str(err).splitlines()[0] if str(err) else type(err).__name__}"
        logger.exception("the service could not load")


def _run_batch(service: SearchService, key, items: list[PlainSearch]) -> list:
    mode, exact, collection = key
    timings: dict[str, float] = {}
    answers = service.search_batch(mode, exact, items, timings, collection)
    return [a if isinstance(a, BaseException) else (a, timings) for a in answers]


class SearchLane:
    """The application: ``POST /api/search`` goes straight to the search
    endpoint through its own copy of the middleware it needs (API key and
    metrics, upload limit, errors as JSON), everything else to FastAPI.

    FastAPI's middleware stack and routing take time on the event loop,
    and with it the Python lock that the batch thread needs; searches are
    the traffic that counts. The endpoint is the same one FastAPI routes to
    and documents.
    """

    def __init__(self, app: FastAPI, search) -> None:
        self.app = app
        self.search = search

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/api/search" and scope["method"] == "POST":
            scope["app"] = self.app  # what the endpoint reads its state from
            await self.search(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class Errors:
    """ASGI middleware: an error raised before the answer started becomes
    its JSON answer (:func:`error_answer`), as FastAPI's handlers do."""

    def __init__(self, app, answer: Callable[[Exception], JSONResponse]) -> None:
        self.app = app
        self.answer = answer

    async def __call__(self, scope, receive, send) -> None:
        started = False

        async def sending(message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except Exception as err:
            if started:
                raise
            if not _is_answered(err):
                logger.exception("internal error on %s %s", scope["method"], scope["path"])
            await self.answer(err)(scope, receive, send)


class Deadline:
    """ASGI middleware: a request that runs past ``seconds`` (reading its
    body included) is cancelled and answered 503. Work already handed to a
    thread finishes there (Python cannot stop a thread); the request limits
    (the upload size, the number of examples) bound it."""

    def __init__(self, app, seconds: float, answer: Callable[[Exception], JSONResponse]) -> None:
        self.app = app
        self.seconds = seconds
        self.answer = answer

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        try:
            async with asyncio.timeout(self.seconds) as deadline:

                async def sending(message) -> None:
                    nonlocal started
                    if message["type"] == "http.response.start":
                        started = True
                        deadline.reschedule(None)  # the answer is there: sending it is the client's pace
                    await send(message)

                await self.app(scope, receive, sending)
        except TimeoutError as err:
            if started:
                raise
            await self.answer(err)(scope, receive, send)


class Guard:
    """ASGI middleware: the API key on every /api request (compared in
    constant time, never logged), and each request counted and timed."""

    def __init__(self, app, api_key: str | None, metrics: Metrics) -> None:
        self.app = app
        self.key = api_key.encode() if api_key is not None else None
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # unless an answer starts

        async def send_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if self.key is not None and scope["path"].startswith("/api/") and not self._has_key(scope):
                refusal = _error(401, f"missing or wrong API key (send it in the {API_KEY_HEADER} header)")
                await refusal(scope, receive, send_status)
            else:
                await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope.get("state", {}).get("method", "-")
            self.metrics.request(route, method, status, time.perf_counter() - t0)

    def _has_key(self, scope) -> bool:
        given = b""
        for name, value in scope["headers"]:
            if name == b"x-api-key":
                given = value
            elif name == b"authorization" and value[:7].lower() == b"bearer " and not given:
                given = value[7:].strip()
        return hmac.compare_digest(given, self.key)


#: what error_answer maps (anything else: a logged 500)
HANDLED = (FmsearchError, RequestValidationError, ValidationError, HTTPException, NotReady, UnsupportedMedia,
           UploadTooLarge, TimeoutError, Exception)


def error_answer(err: Exception, timeout_s: float) -> JSONResponse:
    """Every error's answer, in one place: ``{"error": "<one line>"}`` with
    its status; an unexpected error is ``internal error`` (500), no details."""
    if isinstance(err, CollectionNotFoundError) and err.collection:  # not where the serving copy lives
        return _error(404, f"collection {err.collection} is not in this service's store (ingest it, then "
                           "restart the service)")
    if isinstance(err, FmsearchError):
        return _error(status_of(err), str(err))
    if isinstance(err, (RequestValidationError, ValidationError)):
        return _error(422, _first_problem(err.errors()))
    if isinstance(err, HTTPException):
        return _error(err.status_code, str(err.detail))
    if isinstance(err, NotReady):
        return _error(503, str(err))
    if isinstance(err, UnsupportedMedia):
        return _error(415, str(err))
    if isinstance(err, UploadTooLarge):
        return _error(413, str(err))
    if isinstance(err, TimeoutError):
        return _error(503, f"the request ran past the {timeout_s:g} s timeout and was cancelled")
    return _error(500, "internal error")


def _is_answered(err: Exception) -> bool:
    """Whether ``err`` is one a user causes (answered 4xx or 503, not logged as a server error)."""
    return isinstance(err, HANDLED[:-1])


def _handler(answer: Callable[[Exception], JSONResponse]):
    async def handle(request: Request, err: Exception) -> JSONResponse:
        if not _is_answered(err):
            logger.exception("internal error on %s %s", request.method, request.url.path)
        return answer(err)

    return handle


def _first_problem(errors: list[dict]) -> str:
    if not errors:
        return "invalid request"
    e = errors[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",))
    message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


