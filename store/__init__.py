"""The store: Qdrant collections behind one interface, and the one place
that picks a backend.

Two backends speak the same interface (:class:`~fmsearch.store.base.Store`):

- :class:`~fmsearch.store.edge.EdgeStore`: Qdrant Edge, the Qdrant engine
  in-process, one shard directory per collection (the default);
- :class:`~fmsearch.store.server.ServerStore`: ``qdrant-client`` against a
  Qdrant server (or, for tests, qdrant-client's local mode, which speaks the
  same API).

As ``qdrant_client`` picks ``QdrantLocal`` or ``QdrantRemote`` over a base
class that lives apart, :func:`open_store` picks the backend here and the
backends import only :mod:`~fmsearch.store.base`, so nothing imports in a
circle. The rest of the code receives a ``Store`` and never asks which one it
is. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import os
from pathlib import Path

from fmsearch import environment
from fmsearch.errors import InvalidArgumentError
from fmsearch.store.base import CollectionInfo, QuantizationParams, QueryFilter, Record, ScoredPoint, Store
from fmsearch.store.base import DEFAULT_HNSW_EF, DEFAULT_TIMEOUT

DEFAULT_HOME = ".fmsearch"

__all__ = [
    "DEFAULT_HNSW_EF",
    "DEFAULT_HOME",
    "DEFAULT_TIMEOUT",
    "CollectionInfo",
    "QuantizationParams",
    "QueryFilter",
    "Record",
    "ScoredPoint",
    "Store",
    "default_home",
    "open_store",
]


def default_home() -> Path:
    """``$FMSEARCH_HOME``, else ``./.fmsearch``."""
    return Path(environment.home() or DEFAULT_HOME)


def open_store(
    url: str | None = None,
    *,
    api_key: str | None = None,
    home: str | os.PathLike | None = None,
    timeout: int = DEFAULT_TIMEOUT,
    retries: int = 3,
    prefer_grpc: bool = False,
    lock_timeout: float | None = None,
) -> Store:
    """Pick the backend from the arguments.

    Args:
        url: a Qdrant server URL (``http://`` or ``https://``) selects the server
            backend; ``local:PATH`` selects qdrant-client's local mode at PATH
            (a test stand-in for a server: slow, not for real use); ``None``
            selects the embedded Qdrant Edge store.
        api_key: the server's API key (never printed or logged).
        home: the embedded store's directory (default :func:`default_home`).
        timeout: seconds before a server request fails.
        retries: server requests that fail transiently (connection errors,
            timeouts, 429/5xx) are sent again up to this many times, with
            exponential backoff and jitter.
        prefer_grpc: talk to the server over gRPC (port 6334) where the
            client can.
        lock_timeout: embedded store: seconds to wait for a collection that
            another process holds (default ``FMSEARCH_LOCK_TIMEOUT``, else 10).

    Returns:
        An open store; close it (or use it as a context manager).
    """
    if url:
        from fmsearch.store.server import (
            ServerStore,  # imports qdrant-client: only for a server
        )

        if url.startswith("local:"):
            return ServerStore.local(url.removeprefix("local:"))
        if not url.startswith(("http://", "https://")):
            raise InvalidArgumentError(f"a Qdrant URL starts with http:// or https:// (or local:PATH), got {url!r}")
        return ServerStore(url, api_key=api_key, timeout=timeout, retries=retries, prefer_grpc=prefer_grpc)
    from fmsearch.store.edge import EdgeStore

    return EdgeStore(Path(home) if home else default_home(), lock_timeout=lock_timeout)
