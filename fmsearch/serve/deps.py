"""What the routes depend on, injected with ``Depends``: the process's
:class:`Serving` (the service, its settings, its batcher), the service once
it is ready (503 while loading), and the API key (a security dependency,
which FastAPI documents in the OpenAPI document itself)."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from fmsearch.search.batcher import MicroBatcher
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.errors import NotReady, Unauthorized
from fmsearch.serve.insight import Insight
from fmsearch.serve.metrics import Metrics
from fmsearch.serve.service import SearchService

T = TypeVar("T")
API_KEY_HEADER = "X-API-Key"


@dataclass
class Serving:
    """Everything one worker process serves with, made once by ``create_app``.

    Attributes:
        service: the loaded store, searcher and models.
        config: the settings the service was started with.
        metrics: this process's Prometheus series.
        insight: the map and duplicates files.
        batcher: the micro-batcher of plain upload searches.
        executor: the work threads (blocking work runs there, off the event loop).
        explainer: the explanations' own thread (:func:`~fmsearch.search.batcher.explain_executor`).
    """

    service: SearchService
    config: ServeConfig
    metrics: Metrics
    insight: Insight
    batcher: MicroBatcher
    executor: Executor
    explainer: Executor
    key: bytes | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.key = self.config.api_key.encode() if self.config.api_key is not None else None

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a work thread, awaited."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def explain(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the explanations' thread, awaited: searches keep theirs."""
        return await asyncio.get_running_loop().run_in_executor(self.explainer, fn, *args)


async def serving(request: Request) -> Serving:
    """The process's :class:`Serving` (``async``: no thread hop to fetch it)."""
    return request.app.state.serving  # type: ignore[no-any-return]  # Starlette's State is untyped


async def ready(s: Annotated[Serving, Depends(serving)]) -> SearchService:
    """The service, once loaded.

    Raises:
        NotReady: it is loading or could not load (503, with why).
    """
    if s.service.state != "ready":
        raise NotReady(f"the service is {s.service.state}")
    return s.service


key_header = APIKeyHeader(
    name=API_KEY_HEADER,
    scheme_name="apiKey",
    auto_error=False,
    description="The service's API key (or `Authorization: Bearer <key>`).",
)


async def api_key(
    request: Request,
    given: Annotated[str | None, Security(key_header)],
    s: Annotated[Serving, Depends(serving)],
) -> None:
    """The API key, from ``X-API-Key`` or ``Authorization: Bearer``, compared
    in constant time and never logged (routes take it only when one is set).

    Raises:
        Unauthorized: it is missing or wrong (401).
    """
    if s.key is None:
        return
    if given is None:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else ""
    if not hmac.compare_digest(given.encode(), s.key):
        raise Unauthorized(f"missing or wrong API key (send it in the {API_KEY_HEADER} header)")


ServingDep = Annotated[Serving, Depends(serving)]
ReadyService = Annotated[SearchService, Depends(ready)]
