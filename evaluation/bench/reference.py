"""The serve benchmark's reference endpoint: decode, embed, search, nothing else.

A bare ASGI application over the library the service is built on (a serving
copy of the collections, a :class:`~fmsearch.search.Searcher` whose encoders
run as a service worker's do, and the same
:class:`~fmsearch.search.batcher.MicroBatcher`) that answers a multipart
upload with the hits' ids and scores: no framework, validation, API key,
metrics, timeout or response model. ``fmsearch bench serve`` starts it as a
process of its own with the same HTTP server and number of workers as the
service (``python -m granian ... fmsearch.evaluation.bench.reference:create_app``,
its settings in :data:`CONFIG_ENV`), so that the service's share of its
requests/s is a ratio that holds on any machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from fmsearch import environment
from fmsearch.errors import FmsearchError
from fmsearch.images.files import image_from_bytes
from fmsearch.models.registry import OPTIONS, method_names
from fmsearch.search.batcher import MicroBatcher, work_executor
from fmsearch.search.mode import SearchMode
from fmsearch.search.searcher import Searcher
from fmsearch.store import StoreSettings, schema

#: the environment variable a reference worker reads its settings from (JSON, see :func:`reference_env`)
CONFIG_ENV = environment.REFERENCE_CONFIG
#: a form field's name in its part's headers
_NAME = re.compile(rb'name="([^"]*)"')


class Loaded:
    """A serving copy of some methods' collections and a Searcher with their
    encoders loaded and warm, as a service worker holds them (one thread
    budget per worker, encoder threads that never spin-wait between calls)."""

    def __init__(self, served: StoreSettings, methods: Sequence[str], *, threads: int, data_dir: str | None) -> None:
        source = served.open()
        names = [schema.collection_name(m, served.prefix) for m in methods]
        try:
            for name in names:  # not found: said as such, before a copy is attempted
                source.info(name)
        except FmsearchError:
            source.close()
            raise
        self.workdir = tempfile.mkdtemp(prefix="fmsearch-reference-")
        self.store = source.serving_copy(names, self.workdir)
        if self.store is not source:
            source.close()
        options = {m: {"threads": threads, "spin": False} for m in method_names() if "spin" in OPTIONS[m]}
        self.searcher = Searcher(self.store, prefix=served.prefix, data_dir=data_dir, options=options)
        for method in methods:
            self.searcher.collection(method)
            self.searcher.embedder(method).embed(np.zeros((1, 28, 28), np.uint8))  # the first call pays for set-up

    def search(self, method: str, uploads: Sequence[tuple[bytes, int]]) -> list[list[Any]]:
        """Decode the uploads (image file bytes, k), embed them together, search them with one request."""
        images = np.stack([image_from_bytes(data) for data, _ in uploads])
        vectors = self.searcher.embedder(method).embed(images)
        return self.searcher.search_vectors(SearchMode(method), vectors, [k for _, k in uploads])

    def close(self) -> None:
        self.store.close()
        shutil.rmtree(self.workdir, ignore_errors=True)


def reference_env(served: StoreSettings, methods: Sequence[str], *, threads: int, data_dir: str | None) -> str:
    """The settings a reference worker reads from :data:`CONFIG_ENV`."""
    return json.dumps({"store": asdict(served), "methods": list(methods), "threads": threads, "data_dir": data_dir})


def create_app():
    """The bare endpoint of one worker (any path): POST a multipart form with
    ``image``, ``method`` and ``k``; GET answers 200 once loaded (readiness)."""
    settings = json.loads(environment.reference_config() or "{}")
    state: dict[str, Any] = {"status": "loading"}
    executor = work_executor()
    batcher = MicroBatcher(lambda method, items: state["loaded"].search(method, items), executor)

    async def app(scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await receive()  # startup: load off the loop, answering 503 meanwhile
            loading = asyncio.get_running_loop().run_in_executor(executor, _load, state, settings)
            await send({"type": "lifespan.startup.complete"})
            await receive()  # shutdown
            await asyncio.wait([loading])
            if "loaded" in state:
                state["loaded"].close()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["method"] != "POST":  # readiness; a load that failed says why
            status = {"ready": 200, "loading": 503}.get(state["status"], 500)
            await _answer(send, status, {"status": state["status"], "worker": os.getpid()})
            return
        body, more = b"", True
        while more:
            message = await receive()
            body, more = body + message.get("body", b""), message.get("more_body", False)
        try:
            fields = _form(body, dict(scope["headers"]).get(b"content-type", b""))
            hits = await batcher.submit(fields[b"method"].decode(), (fields[b"image"], int(fields.get(b"k", 10))))
        except (FmsearchError, KeyError, ValueError) as err:
            await _answer(send, 400, {"error": str(err).splitlines()[0]})
            return
        await _answer(send, 200, {"hits": [{"id": h.id, "score": h.score} for h in hits]})

    return app


def _load(state: dict[str, Any], settings: dict[str, Any]) -> None:
    try:
        state["loaded"] = Loaded(
            StoreSettings(**settings["store"]),
            settings["methods"],
            threads=settings["threads"],
            data_dir=settings["data_dir"],
        )
    except FmsearchError as err:
        state["status"] = f"failed: {str(err).splitlines()[0]}"
        return
    state["status"] = "ready"


def _form(body: bytes, content_type: bytes) -> dict[bytes, bytes]:
    """The fields of the benchmark's own multipart bodies, by name (no more
    than that: the service's parser is what the benchmark measures)."""
    boundary = b"--" + content_type.partition(b"boundary=")[2].strip(b'"')
    fields = {}
    for part in body.split(boundary)[1:-1]:
        head, _, value = part.partition(b"\r\n\r\n")
        name = _NAME.search(head)
        if name:
            fields[name.group(1)] = value[:-2]  # the CRLF before the next boundary
    return fields


async def _answer(send, status: int, body: dict) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": data})
