"""The benchmark's reference endpoint: decode, embed, search, nothing else.

A bare ASGI application over the same :class:`SearchService` (the same
serving copy, encoders, micro-batcher and batch function) that answers a
multipart upload with the hits' ids and scores: no framework, validation,
API key, metrics, timeout or response model. ``fmsearch bench --suite
serve`` serves it with the same server and number of processes as the
service (``fmsearch serve --reference``), so the service's share of it is a
ratio that holds on any machine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from functools import partial

from fmsearch.errors import FmsearchError
from fmsearch.search.mode import SearchMode
from fmsearch.search.query import Query
from fmsearch.serve.batcher import MicroBatcher, work_executor
from fmsearch.serve.config import ServeConfig
from fmsearch.serve.forms import parse_form
from fmsearch.serve.service import PlainSearch, SearchService, decode_upload
from fmsearch.store import QueryFilter

logger = logging.getLogger(__name__)


def create_reference_app(config: ServeConfig):
    """The bare endpoint (any path): POST a multipart form with ``image``,
    ``method`` and ``k``; GET answers 200 once loaded (for readiness)."""
    service = SearchService(config)
    executor = work_executor()

    def run(key, items):
        timings: dict[str, float] = {}
        return service.search_batch(key, False, items, timings)

    batcher = MicroBatcher(run, executor)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(service, executor, receive, send)
            return
        if scope["method"] != "POST":
            await _answer(send, 200 if service.state == "ready" else 503, {"status": service.state, "worker": os.getpid()})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        try:
            fields = {p.name: p.value for p in parse_form(body, _header(scope, b"content-type"))}
            query = Query(image=partial(decode_upload, fields["image"]), k=int(fields.get("k", 10)))
            item = PlainSearch(query, QueryFilter())
            hits = await batcher.submit(SearchMode(fields.get("method", "siamese")), item)
        except (FmsearchError, KeyError, ValueError) as err:
            await _answer(send, 400, {"error": str(err).splitlines()[0]})
            return
        await _answer(send, 200, {"hits": [{"id": h.id, "score": h.score} for h in hits]})

    return app


async def _lifespan(service: SearchService, executor: ThreadPoolExecutor, receive, send) -> None:
    loop = asyncio.get_running_loop()
    await receive()  # startup
    loading = loop.run_in_executor(executor, service.load)
    await send({"type": "lifespan.startup.complete"})
    await receive()  # shutdown
    await asyncio.wait([loading])
    await loop.run_in_executor(executor, service.close)
    await send({"type": "lifespan.shutdown.complete"})


def _header(scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


async def _answer(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
