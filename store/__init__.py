"""The store: Qdrant collections behind one interface, and the one place
that picks a backend.

Two backends speak the same interface (:class:`~fmsearch.store.base.Store`):

- :class:`~fmsearch.store.edge.EdgeStore`: Qdrant Edge, the Qdrant engine
  in-process, one shard directory per collection (the default);
- :class:`~fmsearch.store.server.ServerStore`: ``qdrant-client`` against a
  Qdrant server (or, for tests, qdrant-client's local mode, which speaks the
  same API).

As ``qdrant_client`` picks ``QdrantLocal`` or ``QdrantRemote`` over a base
class that lives apart, :func:`open_store` (in :mod:`~fmsearch.store.settings`,
beside the :class:`StoreSettings` value it opens) picks the backend and the
backends import only :mod:`~fmsearch.store.base`, so nothing imports in a
circle. The rest of the code receives a ``Store`` and never asks which one it
is. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from fmsearch.store.base import (
    DEFAULT_HNSW_EF,
    DEFAULT_TIMEOUT,
    CollectionInfo,
    QuantizationParams,
    QueryFilter,
    Record,
    ScoredPoint,
    Store,
)
from fmsearch.store.planner import SearchPlan
from fmsearch.store.settings import DEFAULT_HOME, StoreSettings, default_home, open_store

__all__ = [
    "DEFAULT_HNSW_EF",
    "DEFAULT_HOME",
    "DEFAULT_TIMEOUT",
    "CollectionInfo",
    "QuantizationParams",
    "QueryFilter",
    "Record",
    "ScoredPoint",
    "SearchPlan",
    "Store",
    "StoreSettings",
    "default_home",
    "open_store",
]
