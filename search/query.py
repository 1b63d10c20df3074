"""Query a method's collection: by image, by gallery id, with class filters.

:class:`Searcher` is the Python API; the CLI is a thin layer over it.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from fmsearch.errors import InvalidArgumentError
from ingest.fmnist import class_index, load_split
from models.base import Embedder
from models.registry import RERANK_ONLY, check_method, get_embedder

from . import schema
from .rerank import RerankConfig, SiftReranker
from .store import CollectionInfo, QuantizationParams, QueryFilter, ScoredPoint, Store

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
        quantization: search the quantised variant collections
            (``fmnist_<method>_int8`` / ``_binary``) instead of the plain ones.
        quantization_params: rescore / oversampling for those searches
            (default: Qdrant's, which rescores).
    """

    def __init__(
        self,
        store: Store,
        *,
        prefix: str = schema.DEFAULT_PREFIX,
        data_dir: str | os.PathLike | None = None,
        hnsw_ef: int | None = None,
        options: dict[str, dict] | None = None,
        quantization: str = "none",
        quantization_params: QuantizationParams | None = None,
    ) -> None:
        self.store = store
        self.quantization = schema.check_quantization(quantization)
        self.quantization_params = quantization_params
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
            schema.check_offered(method, self.quantization)
            name = schema.collection_name(method, self.prefix, self.quantization)
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
            quantization=self.effective_quantization_params(),
        )
        return [to_hits(p) for p in points]

    def variant(self, *, quantization: str = "none", quantization_params: QuantizationParams | None = None) -> Searcher:
        """The same searcher on another quantisation setting, sharing the
        models it has loaded (no model is built twice)."""
        other = Searcher(
            self.store, prefix=self.prefix, data_dir=self.data_dir, hnsw_ef=self.hnsw_ef, options=self.options,
            quantization=quantization, quantization_params=quantization_params,
        )
        other._embedders = self._embedders
        return other

    def effective_quantization_params(self) -> QuantizationParams | None:
        """What a search of a quantised collection sends: the given params,
        with :data:`schema.DEFAULT_OVERSAMPLING` when rescoring without an
        oversampling of its own (``None`` for the plain collections)."""
        if self.quantization == "none":
            return None
        params = self.quantization_params or QuantizationParams()
        if params.rescore and not params.ignore and params.oversampling is None:
            params = replace(params, oversampling=schema.DEFAULT_OVERSAMPLING[self.quantization])
        return params

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

    # -- combining methods: fusion, cross-method rescoring, recommendations --

    def query_vector(self, method: str, *, image: np.ndarray | None = None, pid: int | None = None) -> np.ndarray:
        """(1, dim) query vector of an image, or of FMNIST item ``pid``."""
        if (image is None) == (pid is None):
            raise InvalidArgumentError("give exactly one of an image or an id")
        return self.embedder(method).embed(image) if image is not None else self.vector_of(method, pid)

    def rescore_hits(self, hits: Sequence[Hit], method: str, query: np.ndarray) -> list[Hit]:
        """Order ``hits`` by ``method``'s cosine with ``query``, using the
        vectors ``method``'s collection stores for those ids (fetched by id).
        A hit the collection does not hold goes last."""
        info = self.collection(method)
        records = self.store.retrieve(info.name, [h.id for h in hits], with_vectors=True, with_payload=False)
        by_id = {r.id: r.vector for r in records if r.vector is not None}
        q = np.asarray(query, np.float32).reshape(-1)
        scores = [float(by_id[h.id] @ q) if h.id in by_id else -np.inf for h in hits]
        order = sorted(range(len(hits)), key=lambda j: (-scores[j], hits[j].id))
        return [
            replace(hits[j], rank=r, score=scores[j], first_score=hits[j].score)
            for r, j in enumerate(order, start=1)
        ]

    def search(
        self,
        methods: str | Sequence[str],
        *,
        image: np.ndarray | None = None,
        pid: int | None = None,
        k: int = 10,
        classes: Iterable[str] = (),
        exclude_classes: Iterable[str] = (),
        exact: bool = False,
        shortlist: int = 100,
        fusion: str = "rrf",
        weights: Sequence[float] | None = None,
        rescore_with: str | None = None,
        rerank: RerankConfig | None = None,
        split: str | None = None,
    ) -> list[Hit]:
        """Everything the CLI's ``query`` does, in one call.

        ``methods``: one method, or several ("autoencoder+siamese") whose
        top-``shortlist`` lists are fused (``fusion`` "rrf" or "dbsf",
        optional ``weights``). ``rescore_with``: another method orders the
        candidates by its own cosine (its stored vectors, fetched by id).
        ``rerank``: SIFT reorders the candidates last. A query by ``pid``
        excludes that point.
        """
        from .fusion import fuse_lists

        names = parse_methods(methods)
        check_k(k)
        combined = len(names) > 1 or rescore_with is not None or rerank is not None
        if combined and not k <= shortlist <= MAX_K:
            raise InvalidArgumentError(f"--shortlist must be between k ({k}) and {MAX_K}, got {shortlist}")
        if rescore_with is not None:
            if len(names) > 1:
                raise InvalidArgumentError("--rescore-with applies to a single --method, not a fusion")
            check_method(rescore_with)
            if rescore_with == names[0]:
                raise InvalidArgumentError(f"--rescore-with {rescore_with} is the --method itself; name another method")
            self.collection(rescore_with)
        if len(names) > 1 and weights is not None and len(weights) != len(names):
            raise InvalidArgumentError(f"{len(weights)} fusion weights for {len(names)} methods")
        if rerank is not None:
            rerank = replace(rerank, shortlist=min(rerank.shortlist, shortlist)).validate(k)
            self.reranker.collection()
        for name in names:
            self.collection(name)
        flt = replace(class_filter(classes, exclude_classes, exclude_ids=() if pid is None else (pid,)), split=split)
        limit = shortlist if combined else k
        lists = [
            self.search_vectors(name, self.query_vector(name, image=image, pid=pid), limit, flt, exact=exact)[0]
            for name in names
        ]
        if len(names) == 1:
            hits = lists[0]
        else:
            by_id = {h.id: h for hl in lists for h in hl}
            fused = fuse_lists(fusion, [[(h.id, h.score) for h in hl] for hl in lists], weights)[:limit]
            hits = [replace(by_id[i], rank=r, score=s, first_score=None) for r, (i, s) in enumerate(fused, start=1)]
        if rescore_with is not None:
            hits = self.rescore_hits(hits, rescore_with, self.query_vector(rescore_with, image=image, pid=pid))
        if rerank is not None:
            query = self.reranker.query_descriptors(image) if image is not None else self.query_descriptors_of(pid)
            hits = self.reranker.rerank(hits[: rerank.shortlist], query, rerank)
        return [replace(h, rank=r) for r, h in enumerate(hits[:k], start=1)]

    def recommend(
        self,
        method: str,
        positive: Sequence[int | np.ndarray],
        negative: Sequence[int | np.ndarray] = (),
        k: int = 10,
        *,
        classes: Iterable[str] = (),
        exclude_classes: Iterable[str] = (),
    ) -> list[Hit]:
        """Qdrant's recommend query (best-score strategy): gallery images
        close to the positive examples and far from the negative ones. Each
        example is an FMNIST id (its stored vector) or a (28, 28) image
        (embedded now); the example ids are excluded from the results."""
        if not positive:
            raise InvalidArgumentError("give at least one --positive example")
        info = self.collection(method)
        check_k(k)

        def vec(example) -> np.ndarray:
            if isinstance(example, (int, np.integer)):
                return self.vector_of(method, int(example))[0]
            return self.embedder(method).embed(example)[0]

        ids = [int(e) for e in (*positive, *negative) if isinstance(e, (int, np.integer))]
        flt = class_filter(classes, exclude_classes, exclude_ids=ids)
        points = self.store.recommend(
            info.name, [vec(e) for e in positive], [vec(e) for e in negative], k, flt,
            hnsw_ef=self.hnsw_ef, with_payload=schema.HIT_FIELDS,
        )
        return to_hits(points)


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """"a+b" (or a sequence) -> validated, distinct method names."""
    names = tuple(m.strip() for m in (methods.split("+") if isinstance(methods, str) else methods))
    if not names or any(not n for n in names):
        raise InvalidArgumentError(f"no method in {methods!r}")
    for n in names:
        check_method(n)
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"a method appears twice in {'+'.join(names)}")
    return names
