"""The service's ASGI middleware (the upload limit is :mod:`~fmsearch.serve.limits`'s).

Plain ASGI classes rather than ``@app.middleware("http")`` functions: those
wrap every request and answer in Starlette's streaming machinery, which
costs event-loop time on each search.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fmsearch.serve.metrics import Metrics


class Deadline:
    """A request that runs past ``seconds`` (reading its body included) is
    cancelled and answered by ``answer`` (503). Work already handed to a
    thread finishes there (Python cannot stop a thread); the request limits
    (the upload size, the number of examples) bound it."""

    def __init__(self, app: ASGIApp, seconds: float, answer: Callable[[Exception], Response]) -> None:
        self.app = app
        self.seconds = seconds
        self.answer = answer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        try:
            async with asyncio.timeout(self.seconds) as deadline:

                async def sending(message: Message) -> None:
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


class Metered:
    """Each request counted and timed (``GET /metrics``), by its route's
    path (``unmatched`` for none) and the search method it named."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = 500  # unless an answer starts

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route: Any = scope.get("route")
            method = scope.get("state", {}).get("method", "-")  # set by the search route: only methods served
            self.metrics.request(getattr(route, "path", "unmatched"), method, status, time.perf_counter() - t0)
