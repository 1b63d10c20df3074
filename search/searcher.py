"""Query time: search the gallery by image, by id or by examples, in any search mode.

:class:`Searcher` is the Python API; the CLI and the service are thin layers
over it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from fmsearch.errors import CollectionNotFoundError, InvalidArgumentError
from fmsearch.images.files import decode_png
from fmsearch.images.fmnist import CLASS_NAMES, load_split
from fmsearch.models.base import Embedder
from fmsearch.models.registry import check_method, get_embedder
from fmsearch.search.explain import Explanation, Occlusion, explain_pair, one_method
from fmsearch.search.fusion import fuse_lists
from fmsearch.search.mode import SearchMode
from fmsearch.search.query import Example, Query, check_k
from fmsearch.search.rerank import SiftReranker
from fmsearch.store import (
    CollectionInfo,
    QuantizationParams,
    QueryFilter,
    ScoredPoint,
    SearchPlan,
    Store,
    schema,
)
from fmsearch.store.gallery import Gallery, open_gallery


@dataclass(frozen=True)
class Hit:
    """One result: a gallery point, its score and its class."""

    rank: int
    id: int
    score: float
    #: the class (a folder gallery's image may have none)
    label: int | None
    class_name: str | None
    #: an FMNIST image's split and index (None in a folder gallery)
    split: str | None
    index: int | None
    #: set when a second stage ordered the results: ``score`` is then its score
    first_score: float | None = None
    rerank_score: float | None = None
    #: a fusion's hit: its rank in each fused method's list (None: not in it)
    method_ranks: dict[str, int | None] | None = None
    #: a folder gallery's image: its path relative to the folder
    path: str | None = None


@contextmanager
def _timed(timings: dict[str, float], key: str) -> Iterator[None]:
    """Add the seconds the block takes to ``timings[key]``."""
    t0 = time.perf_counter()
    try:
        yield
    finally:
        timings[key] = timings.get(key, 0.0) + time.perf_counter() - t0


#: the payload fields a hit is made of (an FMNIST point's, or a folder image's)
FIELDS = (*schema.HIT_FIELDS, schema.PATH)


def _opt(value, kind):
    return None if value is None else kind(value)


def to_hits(points: Sequence[ScoredPoint]) -> list[Hit]:
    """Store results (payload fields :data:`FIELDS`) to :class:`Hit` s."""
    return [
        Hit(
            rank=r,
            id=p.id,
            score=p.score,
            label=_opt(p.payload.get(schema.LABEL), int),
            class_name=_opt(p.payload.get(schema.CLASS_NAME), str),
            split=_opt(p.payload.get(schema.SPLIT), str),
            index=_opt(p.payload.get(schema.INDEX), int),
            path=_opt(p.payload.get(schema.PATH), str),
        )
        for r, p in enumerate(points, start=1)
    ]


@dataclass(frozen=True)
class Item:
    """An FMNIST image by its point id."""

    id: int
    split: str
    index: int
    label: int
    image: np.ndarray

    @property
    def class_name(self) -> str:
        return CLASS_NAMES[self.label]


def fmnist_item(pid: int, data_dir: str | os.PathLike | None = None) -> Item:
    """FMNIST item ``pid`` (train 0-59999, test 60000-69999) from the data files.

    Raises:
        InvalidArgumentError: the id is out of range. DatasetError.
    """
    split, index = schema.split_index(pid)
    data = load_split(split, data_dir)
    return Item(pid, split, index, int(data.labels[index]), data.images[index])


class Searcher:
    """Search a gallery in a store (FMNIST, or a folder gallery), one
    collection per method.

    Embedders are built once per method and shared by every mode; each
    collection is checked once against its model.

    Args:
        store: an open store (see :func:`fmsearch.store.open_store`).
        prefix: FMNIST's collection name prefix (when ``gallery`` is not a
            :class:`~fmsearch.store.gallery.Gallery`).
        data_dir: FMNIST location, for queries by the id of a point that the
            collection does not hold (e.g. a test image); as ``prefix``.
        hnsw_ef: HNSW search breadth (default: the store's).
        acorn: Qdrant's ACORN search for filtered queries: it also walks the
            neighbours of points the filter rejects, for a filter far from
            the query on a gallery too large to scan (docs/scale.md).
        options: per method, embedder constructor options, e.g.
            ``{"siamese": {"weights": "other.keras"}, "resnet101": {"input_size": 112}}``.
        gallery: the gallery searched: a :class:`~fmsearch.store.gallery.Gallery`,
            or the name of a folder gallery (``fmsearch ingest --images``),
            or None for FMNIST.
    """

    def __init__(
        self,
        store: Store,
        *,
        prefix: str = schema.DEFAULT_PREFIX,
        data_dir: str | os.PathLike | None = None,
        hnsw_ef: int | None = None,
        acorn: bool = False,
        options: dict[str, dict] | None = None,
        gallery: Gallery | str | None = None,
    ) -> None:
        self.store = store
        if not isinstance(gallery, Gallery):  # the Python API names it here
            gallery = open_gallery(store, gallery, prefix=prefix, data_dir=data_dir)
        elif prefix != schema.DEFAULT_PREFIX or data_dir is not None:  # the value holds its own: never ignored
            raise InvalidArgumentError("a Gallery value holds its prefix and data folder: give them to it, not here")
        self.gallery: Gallery = gallery
        self.options = {m: dict(o) for m, o in (options or {}).items()}
        self.prefix = gallery.prefix  # FMNIST's collections' (the SIFT rerank reads fmnist_sift)
        self.hnsw_ef = hnsw_ef
        self.acorn = acorn
        self._embedders: dict[str, Embedder] = {}
        self._checked: dict[tuple[str, str], CollectionInfo] = {}
        self._reranker: SiftReranker | None = None

    def for_gallery(self, gallery: Gallery) -> Searcher:
        """A searcher of a folder gallery in the same store, sharing this
        one's settings and loaded embedders (a model loads once)."""
        other = Searcher(self.store, hnsw_ef=self.hnsw_ef, acorn=self.acorn, options=self.options, gallery=gallery)
        other._embedders = self._embedders
        return other

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

    def collection(self, method: str, quantization: str = "none") -> CollectionInfo:
        """The method's collection (its quantised variant, if asked), checked
        against the method's model.

        Raises:
            UnknownMethodError, CollectionNotFoundError, CollectionMismatchError.
        """
        check_method(method)
        if (method, quantization) not in self._checked:
            name = self.gallery.collection(method, quantization)
            try:
                info = self.store.info(name)
            except CollectionNotFoundError as err:
                raise self.gallery.not_found(method, err) from err
            schema.check_compatible(name, info.metadata, self.embedder(method).describe())
            self._checked[method, quantization] = info
        return self._checked[method, quantization]

    def search_vectors(
        self,
        mode: SearchMode | str,
        vectors: np.ndarray,
        k: int | Sequence[int] = 10,
        flt: QueryFilter | Sequence[QueryFilter | None] | None = None,
        *,
        exact: bool = False,
        quantization_params: QuantizationParams | None = None,
        plans: list[SearchPlan] | None = None,
    ) -> list[list[Hit]]:
        """Batch search of one method's collection with already-embedded
        query vectors (one batch request, two and a fetch when the mode
        expands its queries; ``k`` and ``flt`` one for all or one per
        vector). ``quantization_params`` overrides the mode's
        (``ignore=True`` gives the exact float32 reference); ``plans``, when
        given, receives how the store ran each vector's search
        (:meth:`Store.plan`)."""
        mode = SearchMode.of(mode)
        if mode.fused:
            raise InvalidArgumentError("a batch of vectors searches one method's collection, not a fusion")
        info = self.collection(mode.methods[0], mode.quantization)
        for limit in (k,) if isinstance(k, (int, np.integer)) else k:
            check_k(limit)
        params = quantization_params or mode.quantization_params
        if mode.expand:
            vectors = self.expanded_queries(mode, vectors, flt, exact=exact, quantization_params=params)
        points = self.store.query_batch(
            info.name,
            vectors,
            k,
            flt,
            exact=exact,
            hnsw_ef=self.hnsw_ef,
            acorn=self.acorn,
            with_payload=FIELDS,
            quantization=params,
            plans=plans,
        )
        return [to_hits(p) for p in points]

    def expanded_queries(
        self,
        mode: SearchMode,
        vectors: np.ndarray,
        flt: QueryFilter | Sequence[QueryFilter | None] | None = None,
        *,
        exact: bool = False,
        quantization_params: QuantizationParams | None = None,
    ) -> np.ndarray:
        """Average query expansion (Chum et al., 2007): each query vector
        plus the vectors the collection stores for its ``mode.expand``
        nearest hits (searched with the same filter, fetched by id in one
        request), normalised. A query with no hits stays as it is."""
        info = self.collection(mode.methods[0], mode.quantization)
        q = np.asarray(vectors, np.float32).reshape(len(vectors), -1)
        points = self.store.query_batch(
            info.name,
            q,
            mode.expand,
            flt,
            exact=exact,
            hnsw_ef=self.hnsw_ef,
            acorn=self.acorn,
            with_payload=False,
            quantization=quantization_params or mode.quantization_params,
        )
        ids = sorted({p.id for row in points for p in row})
        records = self.store.retrieve(info.name, ids, with_vectors=True, with_payload=False) if ids else []
        stored = {r.id: r.vector for r in records if r.vector is not None}
        out = q.copy()
        for i, row in enumerate(points):
            for p in row:
                if p.id in stored:
                    out[i] += stored[p.id]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms > 0, norms, 1.0)

    def vector_of(self, method: str, pid: int, quantization: str = "none") -> np.ndarray:
        """The (1, dim) query vector of a gallery point: stored, else
        embedded from the image the gallery has of it (an FMNIST test id).

        Raises:
            InvalidArgumentError: an id out of range, or one the gallery has no image of.
        """
        self.gallery.check_id(pid)
        name = self.collection(method, quantization).name
        records = self.store.retrieve(name, [pid], with_vectors=True, with_payload=False)
        if records and records[0].vector is not None:
            return records[0].vector[None]
        image = self.gallery.image_of(pid)
        if image is None:
            raise InvalidArgumentError(f"no image with id {pid} in {name}")
        return self.embedder(method).embed(image)

    def image_of(self, method: str, example: Example) -> np.ndarray:
        """The (28, 28) image of an example: an image as given, or a gallery
        id's (as ``method``'s collection stores it, else as the gallery has it:
        an FMNIST id needs no collection).

        Raises:
            InvalidArgumentError: an id out of range, or one the gallery has no image of.
            CollectionNotFoundError: a folder gallery without ``method``'s collection.
        """
        if not isinstance(example, (int, np.integer)):
            return np.asarray(example)
        pid = self.gallery.check_id(int(example))
        try:
            records = self.store.retrieve(self.gallery.collection(method), [pid], with_payload=[schema.IMAGE])
        except CollectionNotFoundError as err:
            image = self.gallery.image_of(pid)
            if image is None:  # a folder gallery's images are in its collections only
                raise self.gallery.not_found(method, err) from err
            return image
        if records and records[0].payload.get(schema.IMAGE):
            return decode_png(records[0].payload[schema.IMAGE])
        image = self.gallery.image_of(pid)
        if image is None:
            raise InvalidArgumentError(f"no image with id {pid} in gallery {self.gallery.name}")
        return image

    def explain(self, method: str, a: Example, b: Example, occlusion: Occlusion | None = None) -> Explanation:
        """Why ``a`` (the query: an image or an id) and ``b`` (a hit) are
        close under ``method``: occlusion heatmaps of both (:mod:`~fmsearch.search.explain`).

        Raises:
            UnknownMethodError, InvalidArgumentError (methods joined by +, an id
            without an image), CollectionNotFoundError (see :meth:`image_of`).
        """
        one_method(method)
        images = self.image_of(method, a), self.image_of(method, b)  # a bad id: refused before the model loads
        return explain_pair(self.embedder(method), *images, occlusion)

    def class_filter(
        self,
        method: str,
        classes: Iterable[str] = (),
        exclude_classes: Iterable[str] = (),
        exclude_ids: Iterable[int] = (),
    ) -> QueryFilter:
        """Class names (validated against the gallery's classes, those
        ``method``'s collection records) and excluded ids to a :class:`QueryFilter`."""
        classes, exclude_classes = list(classes), list(exclude_classes)
        known = self.gallery.classes(self.collection(method).metadata) if classes or exclude_classes else []
        labels = tuple(sorted({self.gallery.label(c, known) for c in classes}))
        excluded = tuple(sorted({self.gallery.label(c, known) for c in exclude_classes}))
        return QueryFilter(labels=labels or None, exclude_labels=excluded, exclude_ids=tuple(exclude_ids))

    def query_vector(
        self, method: str, *, image: np.ndarray | None = None, pid: int | None = None, quantization: str = "none"
    ) -> np.ndarray:
        """(1, dim) query vector of an image, or of FMNIST item ``pid`` (its
        vector as the collection searched, plain or quantised, stores it)."""
        if image is not None and pid is None:
            return self.embedder(method).embed(image)
        if pid is not None and image is None:
            return self.vector_of(method, pid, quantization)
        raise InvalidArgumentError("give exactly one of an image or an id")

    def query_descriptors(self, *, image: np.ndarray | None = None, pid: int | None = None) -> np.ndarray:
        """SIFT descriptors of a query image, or of FMNIST item ``pid``
        (stored when the SIFT collection holds it, else extracted)."""
        if image is None:
            if pid is None:
                raise InvalidArgumentError("give an image or an id")
            stored = self.reranker.stored_descriptors(pid)
            if stored is not None:
                return stored
            image = self.gallery.image_of(pid)
            if image is None:
                raise InvalidArgumentError(f"no image with id {pid} in the gallery")
        return self.reranker.query_descriptors(image)

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
            replace(hits[j], rank=r, score=scores[j], first_score=hits[j].score) for r, j in enumerate(order, start=1)
        ]

    def search(
        self,
        mode: SearchMode | str,
        query: Query | None = None,
        *,
        timings: dict[str, float] | None = None,
        plans: list[SearchPlan] | None = None,
        **fields: Any,
    ) -> list[Hit]:
        """Answer ``query`` (a :class:`Query`, or its fields as keywords:
        ``search("siamese", image=img, k=5)``) in ``mode`` (a
        :class:`SearchMode`, or the name of a method to search plainly).

        By an image or an id, the first stage searches each method's
        collection (twice when the mode expands the query by its first hits);
        a fusion combines the lists, ``rescore_with`` reorders by another
        method's vectors, and ``rerank`` reorders the candidates by SIFT last.
        By examples, it is Qdrant's recommend query (best-score strategy) on
        the method's collection, plain or quantised. Either way the query's
        paging applies last (:meth:`Query.page`). ``timings``, when given,
        gets the seconds spent decoding, embedding, searching and reranking;
        ``plans`` how the store ran each collection's search.

        Raises:
            InvalidArgumentError, UnknownClassError, UnknownMethodError,
            CollectionNotFoundError, CollectionMismatchError.
        """
        mode, query = SearchMode.of(mode), Query.of(query, fields)
        query.check(mode)
        timings = timings if timings is not None else {}
        self.check_mode(mode)
        query = query.decoded(timings)
        plans = plans if plans is not None else []
        if query.recommend:
            hits = self._recommend(mode, query, timings, plans)
        else:
            hits = self._search(mode, query, timings, plans)
        return query.page(hits)

    def check_mode(self, mode: SearchMode) -> None:
        """Every collection ``mode`` reads, checked before anything is
        embedded; a stage the gallery does not offer is refused."""
        for name in mode.methods:
            self.collection(name, mode.quantization)
        if mode.rescore_with is not None:
            self.collection(mode.rescore_with)
        if mode.rerank is not None:
            if not self.gallery.offers_rerank:
                raise InvalidArgumentError(
                    "the SIFT rerank reads FMNIST's descriptors (fmnist_sift): a folder gallery is searched without it",
                    param="rerank",
                )
            self.reranker.collection()

    def filter_of(self, method: str, query: Query) -> QueryFilter:
        """The store filter of ``query``: its classes (the gallery's own, by
        ``method``'s collection), its split, and its own ids left out."""
        flt = self.class_filter(method, query.classes, query.exclude_classes, query.example_ids)
        return flt if query.split is None else replace(flt, split=query.split)

    def _search(self, mode: SearchMode, query: Query, timings: dict[str, float], plans: list[SearchPlan]) -> list[Hit]:
        """A search by an image or an id: its first :attr:`Query.limit` hits."""
        image, pid = query.decoded_image, query.id
        flt = self.filter_of(mode.methods[0], query)
        rerank = mode.rerank
        limit = mode.shortlist if mode.combined else rerank.shortlist if rerank is not None else query.limit
        hits = self._first_stage(mode, image, pid, limit, flt, query.exact, timings, plans)
        if mode.rescore_with is not None:
            with _timed(timings, "embed"):
                vector = self.query_vector(mode.rescore_with, image=image, pid=pid)
            with _timed(timings, "search"):
                hits = self.rescore_hits(hits, mode.rescore_with, vector)
        if rerank is not None:
            with _timed(timings, "rerank"):
                hits = self.reranker.rerank(
                    hits[: rerank.shortlist], self.query_descriptors(image=image, pid=pid), rerank
                )
        return [replace(h, rank=r) for r, h in enumerate(hits[: query.limit], start=1)]

    def _recommend(
        self, mode: SearchMode, query: Query, timings: dict[str, float], plans: list[SearchPlan]
    ) -> list[Hit]:
        """A recommend query: its first :attr:`Query.limit` hits."""
        method = mode.methods[0]
        info = self.collection(method, mode.quantization)

        def vector(example: Example) -> np.ndarray:
            if isinstance(example, (int, np.integer)):
                return self.vector_of(method, int(example), mode.quantization)[0]
            return self.embedder(method).embed(example)[0]

        with _timed(timings, "embed"):
            positive, negative = [vector(e) for e in query.positive], [vector(e) for e in query.negative]
        flt = self.filter_of(method, query)
        with _timed(timings, "search"):
            points = self.store.recommend(
                info.name,
                positive,
                negative,
                query.limit,
                flt,
                exact=query.exact,
                quantization=mode.quantization_params,
                hnsw_ef=self.hnsw_ef,
                acorn=self.acorn,
                with_payload=FIELDS,
                plans=plans,
            )
        return to_hits(points)

    def _first_stage(
        self,
        mode: SearchMode,
        image,
        pid,
        limit: int,
        flt: QueryFilter,
        exact: bool,
        timings: dict[str, float],
        plans: list[SearchPlan],
    ) -> list[Hit]:
        """Each method's nearest ``limit``; several lists fused into one."""
        lists = []
        for name in mode.methods:
            with _timed(timings, "embed"):
                vector = self.query_vector(name, image=image, pid=pid, quantization=mode.quantization)
            single = replace(mode, methods=(name,), fusion_weights=None, rescore_with=None, rerank=None)
            with _timed(timings, "search"):
                lists.append(self.search_vectors(single, vector, limit, flt, exact=exact, plans=plans)[0])
        if not mode.fused:
            return lists[0]
        by_id = {h.id: h for hl in lists for h in hl}
        ranks = [{h.id: h.rank for h in hl} for hl in lists]
        fused = fuse_lists(mode.fusion, [[(h.id, h.score) for h in hl] for hl in lists], mode.fusion_weights)[:limit]
        return [
            replace(
                by_id[i],
                rank=r,
                score=s,
                first_score=None,
                method_ranks={m: rk.get(i) for m, rk in zip(mode.methods, ranks, strict=True)},
            )
            for r, (i, s) in enumerate(fused, start=1)
        ]

    def recommend(
        self,
        method: str,
        positive: Sequence[Example],
        negative: Sequence[Example] = (),
        k: int = 10,
        *,
        quantization: str = "none",
        **fields: Any,
    ) -> list[Hit]:
        """Qdrant's recommend query (best-score strategy): gallery images
        close to the positive examples and far from the negative ones, as
        :meth:`search` answers ``Query(positive=..., negative=...)``. Each
        example is a gallery id (its stored vector) or a (28, 28) image
        (embedded now); the example ids are excluded from the results.
        ``quantization`` picks the method's quantised collection; ``fields``
        are the query's others (``classes``, ``offset``, ``exact``, ...)."""
        if not positive:
            raise InvalidArgumentError("give at least one positive example", param="positive")
        return self.search(
            SearchMode(method, quantization=quantization),
            Query(positive=tuple(positive), negative=tuple(negative), k=k, **fields),
        )
