"""SIFT as a rerank stage over a first-stage shortlist.

A method (pixels, autoencoder, siamese, ...) proposes ``shortlist`` candidates;
SIFT scores each against the query:

- ``maxsim``: inside Qdrant. The query's descriptors are the query
  multivector against collection ``fmnist_sift``, restricted to the
  shortlist's ids by a has-id filter; Qdrant's MaxSim sum is divided by the
  number of query descriptors (so the score is in [0, 1]). No descriptor
  leaves the store.
- ``lowe``: the seed's ratio-test score (good matches / query keypoints),
  computed here on the candidates' stored descriptors, fetched by id (a
  gallery image is never re-extracted).

The final order is by a fused score over the shortlist::

    fused = z(first-stage score) + weight * z(SIFT score)

where ``z`` standardises over the shortlist (subtract the mean, divide by the
standard deviation; a constant list becomes all zeros). ``weight`` 0 keeps
the first stage's order, a large weight orders by SIFT alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.registry import stage_names
from fmsearch.models.sift import DEFAULT_RATIO, SiftExtractor, from_storage, lowe_score
from fmsearch.store import CollectionInfo, QueryFilter, Store, schema

#: the stages a rerank can name (the models registry's)
RERANK_STAGES = stage_names()
RERANK_MODES = ("maxsim", "lowe")
DEFAULT_RERANK_MODE = "maxsim"
#: candidates a second stage (a rerank, a fusion, a rescoring) sees
DEFAULT_SHORTLIST = 100
MAX_SHORTLIST = 1000
# From a sweep over 0-2 (docs/methods.md, "SIFT"): on the category task no weight
# lowered P@10 for pixels, autoencoder or siamese; near-duplicate recall@1
# kept rising with the weight; 1.0 is where the autoencoder's P@10 peaked.
DEFAULT_WEIGHT = 1.0


@dataclass(frozen=True)
class RerankConfig:
    """How a shortlist is reranked (recorded in metrics.json)."""

    stage: str = "sift"
    shortlist: int = DEFAULT_SHORTLIST
    mode: str = DEFAULT_RERANK_MODE
    weight: float = DEFAULT_WEIGHT
    ratio: float = DEFAULT_RATIO

    def __post_init__(self) -> None:
        if self.stage not in RERANK_STAGES:
            raise InvalidArgumentError(
                f"unknown rerank stage {self.stage!r}; valid: {', '.join(RERANK_STAGES)}", param="rerank"
            )
        if self.mode not in RERANK_MODES:
            raise InvalidArgumentError(
                f"unknown rerank mode {self.mode!r}; valid: {', '.join(RERANK_MODES)}", param="rerank_mode"
            )
        if not 1 <= self.shortlist <= MAX_SHORTLIST:
            raise InvalidArgumentError(
                f"shortlist must be between 1 and {MAX_SHORTLIST}, got {self.shortlist}", param="shortlist"
            )
        if not np.isfinite(self.weight) or self.weight < 0:
            raise InvalidArgumentError(
                f"rerank weight must be a finite number >= 0, got {self.weight}", param="rerank_weight"
            )
        if not 0 < self.ratio <= 1:
            raise InvalidArgumentError(f"ratio must be in (0, 1], got {self.ratio}", param="ratio")

    def check_holds(self, k: int) -> RerankConfig:
        """Refuse a shortlist shorter than the ``k`` results asked for."""
        if self.shortlist < k:
            raise InvalidArgumentError(f"shortlist ({self.shortlist}) must be at least k ({k})", param="shortlist")
        return self


def zscore(values: np.ndarray) -> np.ndarray:
    """Standardise over the list; a constant (or one-element) list -> zeros."""
    v = np.asarray(values, np.float64)
    if v.size == 0:
        return v
    std = v.std()
    return np.zeros_like(v) if std == 0 or not np.isfinite(std) else (v - v.mean()) / std


def fuse(first: np.ndarray, second: np.ndarray, weight: float) -> np.ndarray:
    """``z(first) + weight * z(second)`` over one shortlist."""
    return zscore(first) + weight * zscore(second)


class SiftReranker:
    """Scores shortlists against collection ``<prefix>sift``.

    Args:
        store: the store holding the SIFT collection.
        prefix: collection name prefix.
        extractor: the query-side extractor; default: the one whose settings
            the collection records (so query and gallery descriptors match).
    """

    #: the rerank stage this is
    stage = "sift"

    def __init__(
        self, store: Store, prefix: str = schema.DEFAULT_PREFIX, extractor: SiftExtractor | None = None
    ) -> None:
        self.store = store
        self.name = schema.collection_name(self.stage, prefix)
        self._extractor = extractor
        self._info: CollectionInfo | None = None

    def collection(self) -> CollectionInfo:
        """The SIFT collection, checked against the extractor.

        Raises:
            CollectionNotFoundError: not ingested (the message says how).
            CollectionMismatchError: other SIFT settings than the extractor's.
        """
        if self._info is None:
            info = self.store.info(self.name)
            if self._extractor is None:
                meta = info.metadata
                self._extractor = SiftExtractor(
                    upscale=int(meta.get("upscale", 3)), root=bool(meta.get("rootsift", True))
                )
            schema.check_compatible(self.name, info.metadata, self._extractor.describe())
            self._info = info
        return self._info

    @property
    def extractor(self) -> SiftExtractor:
        self.collection()
        assert self._extractor is not None
        return self._extractor

    def query_descriptors(self, image: np.ndarray) -> np.ndarray:
        """Descriptors of a query image (extracted now)."""
        return self.extractor.descriptors(image)

    def stored_descriptors(self, pid: int) -> np.ndarray | None:
        """A gallery point's stored descriptors, or None if it is not stored."""
        records = self.store.retrieve(self.collection().name, [pid], with_vectors=True, with_payload=False)
        return from_storage(records[0].vector) if records else None

    def scores(
        self, query: np.ndarray, ids: Sequence[int], mode: str = "maxsim", ratio: float = DEFAULT_RATIO
    ) -> np.ndarray:
        """SIFT score of each id (aligned with ``ids``; 0 for an id the SIFT
        collection does not hold, or when the query has no descriptors)."""
        info = self.collection()
        out = np.zeros(len(ids), np.float64)
        if len(ids) == 0 or len(query) == 0:
            return out
        pos = {int(i): j for j, i in enumerate(ids)}
        if mode == "maxsim":
            points = self.store.query(
                info.name,
                np.asarray(query),
                len(ids),
                QueryFilter(ids=tuple(int(i) for i in ids)),
                exact=True,
                with_payload=False,
            )
            for p in points:
                out[pos[p.id]] = p.score / len(query)
        elif mode == "lowe":
            for r in self.store.retrieve(info.name, list(ids), with_vectors=True, with_payload=False):
                out[pos[r.id]] = lowe_score(query, from_storage(r.vector), ratio)
        else:
            raise InvalidArgumentError(
                f"unknown rerank mode {mode!r}; valid: {', '.join(RERANK_MODES)}", param="rerank_mode"
            )
        return out

    def rerank(self, hits: Sequence, query: np.ndarray, config: RerankConfig) -> list:
        """Reorder a shortlist of :class:`~fmsearch.search.searcher.Hit` s by the fused score.

        Returns exactly the shortlist's hits, reranked, each with
        ``first_score`` (the first stage's), ``rerank_score`` (SIFT's) and
        ``score`` (the fused one)."""
        if not hits:
            return []
        first = np.array([h.score for h in hits], np.float64)
        sift = self.scores(query, [h.id for h in hits], config.mode, config.ratio)
        fused = fuse(first, sift, config.weight)
        order = np.argsort(-fused, kind="stable")  # ties keep the first stage's order
        return [
            replace(hits[j], rank=r, score=float(fused[j]), first_score=float(first[j]), rerank_score=float(sift[j]))
            for r, j in enumerate(order, start=1)
        ]
