"""Query a method's collection: by image, by gallery id, with class filters.

:class:`Searcher` is the Python API; the CLI is a thin layer over it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from fmsearch.errors import InvalidArgumentError
from ingest.fmnist import class_index, load_split
from models.base import Embedder
from models.registry import RERANK_ONLY, check_method, get_embedder

from . import schema
from .rerank import RerankConfig, SiftReranker
from .store import CollectionInfo, QueryFilter, ScoredPoint, Store

MAX_K = 1000


@dataclass(frozen=True)
class Hit:
    """One result: a gallery point, its score and its class."""

    rank: int
    id: int
    score: float
    label: int
    class_name: str
    split: str
    index: int
    #: set when a rerank stage ordered the results: ``score`` is then the fused score
    first_score: float | None = None
    rerank_score: float | None = None


def to_hits(points: Sequence[ScoredPoint]) -> list[Hit]:
    """Store results (payload fields :data:`schema.HIT_FIELDS`) to :class:`Hit` s."""
    return [
        Hit(
            rank=r,
            id=p.id,
            score=p.score,
            label=int(p.payload[schema.LABEL]),
            class_name=str(p.payload[schema.CLASS_NAME]),
            split=str(p.payload[schema.SPLIT]),
            index=int(p.payload[schema.INDEX]),
        )
        for r, p in enumerate(points, start=1)
    ]


def check_k(k: int) -> int:
    """Validate a result count."""
    if not 1 <= k <= MAX_K:
        raise InvalidArgumentError(f"k must be between 1 and {MAX_K}, got {k}")
    return k


def class_filter(
    classes: Iterable[str] = (), exclude_classes: Iterable[str] = (), exclude_ids: Iterable[int] = ()
) -> QueryFilter:
    """Class names (validated) and excluded ids to a :class:`QueryFilter`."""
    labels = tuple(sorted({class_index(c) for c in classes}))
    excluded = tuple(sorted({class_index(c) for c in exclude_classes}))
    return QueryFilter(
        labels=labels or None, exclude_labels=excluded, exclude_ids=tuple(exclude_ids)
    )


class Searcher:
    """Search the FMNIST gallery in a store, one collection per method.

    Embedders are built once per method and reused, so repeated queries do
    not rebuild a model; each collection is checked once against its model.

    Args:
        store: an open store (see :func:`search.store.open_store`).
        prefix: collection name prefix.
        data_dir: FMNIST location, for queries by the id of a point that the
            collection does not hold (e.g. a test image).
        hnsw_ef: HNSW search breadth (default: the store's).
        options: per method, embedder constructor options, e.g.
            ``{"siamese": {"weights": "other.keras"}, "resnet101": {"input_size": 112}}``.
    """

    def __init__(
        self,
        store: Store,
        *,
        prefix: str = schema.DEFAULT_PREFIX,
        data_dir: str | os.PathLike | None = None,
        hnsw_ef: int | None = None,
        options: dict[str, dict] | None = None,
    ) -> None:
        self.store = store
        self.options = {m: dict(o) for m, o in (options or {}).items()}
        self.prefix = prefix
        self.data_dir = data_dir
        self.hnsw_ef = hnsw_ef
        self._embedders: dict[str, Embedder] = {}
        self._checked: dict[str, CollectionInfo] = {}
        self._reranker: SiftReranker | None = None

    @property
    def reranker(self) -> SiftReranker:
        """The SIFT rerank stage over this store (collection checked on first use)."""
        if self._reranker is None:
            self._reranker = SiftReranker(self.store, self.prefix)
        return self._reranker

    def embedder(self, method: str) -> Embedder:
        """The (cached) embedder of a method."""
        if method not in self._embedders:
            self._embedders[method] = get_embedder(check_method(method), **self.options.get(method, {}))
        return self._embedders[method]

    def collection(self, method: str) -> CollectionInfo:
        """The method's collection, checked against the method's model.

        Raises:
            UnknownMethodError, CollectionNotFoundError, CollectionMismatchError.
        """
        if check_method(method) in RERANK_ONLY:
            raise InvalidArgumentError(
                f"{method} is a rerank stage, not a search method: query another method "
                f"with --rerank {method} (e.g. --method pixels --rerank {method})"
            )
        if method not in self._checked:
            name = schema.collection_name(method, self.prefix)
            info = self.store.info(name)
            schema.check_compatible(name, info.metadata, self.embedder(method).describe())
            self._checked[method] = info
        return self._checked[method]

    def search_vectors(
        self,
        method: str,
        vectors: np.ndarray,
        k: int = 10,
        flt: QueryFilter | None = None,
        *,
        exact: bool = False,
    ) -> list[list[Hit]]:
        """Batch search with already-embedded query vectors (one batch request)."""
        info = self.collection(method)
        check_k(k)
        points = self.store.query_batch(
            info.name,
            vectors,
            k,
            flt,
            exact=exact,
            hnsw_ef=self.hnsw_ef,
            with_payload=schema.HIT_FIELDS,
        )
        return [to_hits(p) for p in points]

    def query_image(
        self,
        method: str,
        image: np.ndarray,
        k: int = 10,
        *,
        classes: Iterable[str] = (),
        exclude_classes: Iterable[str] = (),
        exclude_ids: Iterable[int] = (),
        exact: bool = False,
        rerank: RerankConfig | None = None,
    ) -> list[Hit]:
        """Nearest gallery images to a (28, 28) uint8 image; with ``rerank``,
        the first ``rerank.shortlist`` reordered by SIFT, then cut to ``k``."""
        flt = class_filter(classes, exclude_classes, exclude_ids)
        self.collection(method)  # fail on a missing/mismatched collection before embedding
        if rerank is not None:
            rerank.validate(check_k(k))
            self.reranker.collection()
        vector = self.embedder(method).embed(image)
        if rerank is None:
            return self.search_vectors(method, vector, k, flt, exact=exact)[0]
        shortlist = self.search_vectors(method, vector, rerank.shortlist, flt, exact=exact)[0]
        return self.reranker.rerank(shortlist, self.reranker.query_descriptors(image), rerank)[:k]

    def vector_of(self, method: str, pid: int) -> np.ndarray:
        """The query vector of a gallery point: stored, else embedded from FMNIST."""
        split, index = schema.split_index(pid)
        info = self.collection(method)
        records = self.store.retrieve(info.name, [pid], with_vectors=True, with_payload=False)
        if records and records[0].vector is not None:
            return records[0].vector[None]
        image = load_split(split, self.data_dir).images[index]
        return self.embedder(method).embed(image)

    def query_id(
        self,
        method: str,
        pid: int,
        k: int = 10,
        *,
        classes: Iterable[str] = (),
        exclude_classes: Iterable[str] = (),
        exact: bool = False,
        rerank: RerankConfig | None = None,
    ) -> list[Hit]:
        """Nearest gallery images to FMNIST item ``pid``, the item itself
        excluded; with ``rerank``, SIFT reorders the shortlist (the item's
        stored descriptors are used when the SIFT collection holds it)."""
        flt = class_filter(classes, exclude_classes, exclude_ids=(pid,))
        if rerank is not None:
            rerank.validate(check_k(k))
            self.reranker.collection()
        vector = self.vector_of(method, pid)
        if rerank is None:
            return self.search_vectors(method, vector, k, flt, exact=exact)[0]
        shortlist = self.search_vectors(method, vector, rerank.shortlist, flt, exact=exact)[0]
        return self.reranker.rerank(shortlist, self.query_descriptors_of(pid), rerank)[:k]

    def query_descriptors_of(self, pid: int) -> np.ndarray:
        """SIFT descriptors of FMNIST item ``pid``: stored, else extracted."""
        split, index = schema.split_index(pid)
        stored = self.reranker.stored_descriptors(pid)
        if stored is not None:
            return stored
        return self.reranker.query_descriptors(load_split(split, self.data_dir).images[index])
