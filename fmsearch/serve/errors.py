"""Every error's answer, in one place: ``{"error": "<one line>"}`` with its status.

Domain errors (:class:`~fmsearch.errors.FmsearchError`) map to 4xx (or 503
where a store or model is not available), as ``cli/common.py``'s
``domain_errors`` maps them to click's one-line errors; anything unexpected
is logged with its traceback and answered ``internal error`` (500).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException

from fmsearch.errors import (
    CollectionMismatchError,
    CollectionNotFoundError,
    DatasetError,
    FmsearchError,
    ModelError,
    ResultNotFoundError,
    StoreError,
)
from fmsearch.serve.limits import UploadTooLarge
from fmsearch.serve.schemas import ErrorBody

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
#: the error answers every /api route documents
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (
            400,
            "A bad request: not an image, unknown method or class, an id or k out of range, a bad combination",
        ),
        (401, "The API key is missing or wrong"),
        (404, "No such collection, map, duplicates run or route"),
        (409, "The collection was built by another model"),
        (413, "The upload is over the size limit"),
        (415, "Neither JSON nor a multipart form"),
        (422, "A field of the wrong type or out of range"),
        (503, "Loading, a store or model not available, or the request ran past the timeout"),
    )
}


class NotReady(Exception):
    """The service is still loading (or could not load): answered 503."""


class UnsupportedMedia(Exception):
    """A body that is neither JSON nor a multipart form: answered 415."""


class Unauthorized(Exception):
    """The API key is missing or wrong: answered 401."""


#: what :func:`error_answer` maps to its own status (anything else: a logged 500)
ANSWERED: dict[type[Exception], int] = {
    NotReady: 503,
    UnsupportedMedia: 415,
    Unauthorized: 401,
    UploadTooLarge: 413,
    TimeoutError: 503,
}


def error_json(status: int, message: str) -> JSONResponse:
    """``{"error": <the message's first line>}`` with ``status``."""
    return JSONResponse({"error": message.splitlines()[0] if message else "error"}, status_code=status)


def status_of(err: FmsearchError) -> int:
    """The HTTP status of a domain error."""
    return next((code for kind, code in STATUS if isinstance(err, kind)), 400)


def error_answer(err: Exception, timeout_s: float) -> JSONResponse:
    """Every error's answer: ``{"error": "<one line>"}`` with its status; an
    unexpected error is ``internal error`` (500), no details.

    Args:
        err: what was raised.
        timeout_s: the service's request timeout (named in a timeout's answer).
    """
    if isinstance(err, CollectionNotFoundError) and err.collection:  # not where the serving copy lives
        return error_json(
            404,
            f"collection {err.collection} is not in this service's store (ingest it, then restart the service)",
        )
    if isinstance(err, FmsearchError):
        return error_json(status_of(err), str(err))
    if isinstance(err, (RequestValidationError, ValidationError)):
        return error_json(422, _first_problem(err.errors()))
    if isinstance(err, HTTPException):
        return error_json(err.status_code, str(err.detail))
    if isinstance(err, TimeoutError):
        return error_json(503, f"the request ran past the {timeout_s:g} s timeout and was cancelled")
    status = next((code for kind, code in ANSWERED.items() if isinstance(err, kind)), None)
    return error_json(status, str(err)) if status is not None else error_json(500, "internal error")


def is_answered(err: Exception) -> bool:
    """Whether ``err`` is one a user causes (answered 4xx or 503, not logged as a server error)."""
    return isinstance(err, (FmsearchError, RequestValidationError, ValidationError, HTTPException, *ANSWERED))


def add_handlers(app: FastAPI, timeout_s: float) -> None:
    """Answer every error raised in ``app`` by :func:`error_answer` (the
    unexpected ones logged with their traceback)."""

    async def handle(request: Request, err: Exception) -> JSONResponse:
        if not is_answered(err):
            logger.exception("internal error on %s %s", request.method, request.url.path)
        return error_answer(err, timeout_s)

    for kind in (
        FmsearchError,
        RequestValidationError,
        ValidationError,
        HTTPException,
        *ANSWERED,
        Exception,
    ):
        app.add_exception_handler(kind, handle)


def _first_problem(errors: Any) -> str:
    if not errors:
        return "invalid request"
    e = errors[0]
    where = ".".join(str(p) for p in e.get("loc", ()) if p not in ("body",))
    message = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message
