"""A 2-D map of a method's gallery: its stored vectors projected to the plane,
with how well the projection keeps each point's neighbours.

The projection is UMAP or openTSNE (the map extra: ``pip install
fmsearch[map]``), both seeded. How well a map keeps neighbours is measured,
not assumed: the share of each point's 10 nearest neighbours among the
vectors (cosine, exact) that are among its 10 nearest on the map.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError, ModelError
from fmsearch.evaluation import RESULTS_DIR
from fmsearch.images.fmnist import CLASS_NAMES
from fmsearch.store import Store, schema

ALGORITHMS = ("umap", "tsne")
#: openTSNE kept 2-4 times the neighbours UMAP kept on the siamese gallery (10,000 points: 0.29 against
#: 0.15, in less time; 60,000: 0.23 against 0.06, in twice the time); `fmsearch map --algorithm umap|tsne`
DEFAULT_ALGORITHM = "tsne"
KEEP_K = 10
MAX_POINTS = 70_000


@dataclass(frozen=True)
class MapConfig:
    """Settings of one map (recorded in map.json)."""

    method: str
    points: int = 10_000
    algorithm: str = DEFAULT_ALGORITHM
    seed: int = 0

    @property
    def out_dir(self) -> str:
        """Where this map is written when no folder is named."""
        return f"{RESULTS_DIR}/map-{self.method}"

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise InvalidArgumentError(f"seed must be at least 0, got {self.seed}", param="seed")
        if not 100 <= self.points <= MAX_POINTS:
            raise InvalidArgumentError(
                f"points must be between 100 and {MAX_POINTS}, got {self.points}", param="points"
            )
        if self.algorithm not in ALGORITHMS:
            raise InvalidArgumentError(
                f"unknown algorithm {self.algorithm!r}; valid: {', '.join(ALGORITHMS)}", param="algorithm"
            )


def neighbour_keeping(vectors: np.ndarray, xy: np.ndarray, k: int = KEEP_K, block: int = 2048) -> float:
    """The mean share of each point's ``k`` nearest neighbours by cosine
    among ``vectors`` that are among its ``k`` nearest on the map ``xy``
    (exact on both sides; the point itself excluded)."""
    n = len(vectors)
    if n <= k:
        raise InvalidArgumentError(f"need more than {k} points to measure neighbour keeping, got {n}")
    from scipy.spatial import cKDTree

    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    # on the map: a k-d tree (exact); k + 1 asked, the point itself dropped (or, where a tie of equal
    # positions left it out, the farthest)
    _, found = cKDTree(np.asarray(xy, np.float64)).query(np.asarray(xy, np.float64), k=k + 1)
    drop = found == np.arange(n)[:, None]
    drop[~drop.any(axis=1), -1] = True
    on_map = found[~drop].reshape(n, k)
    kept = 0
    for lo in range(0, n, block):
        rows = np.arange(lo, min(lo + block, n))
        high = unit[rows] @ unit.T
        high[np.arange(len(rows)), rows] = -np.inf
        a = np.argpartition(-high, k, axis=1)[:, :k]
        kept += int((a[:, :, None] == on_map[rows][:, None, :]).any(axis=2).sum())
    return kept / (n * k)


def project(vectors: np.ndarray, algorithm: str, seed: int) -> np.ndarray:
    """(N, d) vectors -> (N, 2) map coordinates, deterministic for a seed."""
    try:
        if algorithm == "umap":
            import umap

            reducer = umap.UMAP(n_neighbors=15, min_dist=0.1, metric="cosine", random_state=seed, n_jobs=1)
            xy = reducer.fit_transform(vectors)
        else:
            from openTSNE import TSNE

            xy = np.asarray(TSNE(metric="cosine", random_state=seed, n_jobs=1).fit(vectors))
    except ImportError as err:
        raise ModelError(f"the map needs the map extra ({err.name} is missing): pip install 'fmsearch[map]'") from err
    return np.asarray(xy, np.float32)


def sample_gallery(store: Store, name: str, points: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A seeded sample of ``points`` stored points: ids (sorted), vectors, labels."""
    ids = store.ids(name)
    if len(ids) == 0:
        raise InvalidArgumentError(f"{name} is empty; run `fmsearch ingest` first")
    chosen = np.sort(np.random.default_rng(seed).choice(ids, size=min(points, len(ids)), replace=False))
    vectors, labels = [], []
    for lo in range(0, len(chosen), 1000):
        for r in store.retrieve(
            name, [int(i) for i in chosen[lo : lo + 1000]], with_vectors=True, with_payload=[schema.LABEL]
        ):
            vectors.append(r.fetched_vector())
            labels.append(int(r.payload[schema.LABEL]))
    return chosen, np.stack(vectors), np.asarray(labels)


def make_map(
    store: Store,
    config: MapConfig,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    on_step: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Project a method's gallery; returns map.json.

    Raises:
        InvalidArgumentError, CollectionNotFoundError, ModelError (no map extra).
    """
    name = schema.collection_name(config.method, prefix)
    info = store.info(name)
    if info.multivector:
        raise InvalidArgumentError(f"{name} holds descriptor sets, not one vector per image; pick an embedding method")
    ids, vectors, labels = sample_gallery(store, name, config.points, config.seed)
    if on_step:
        on_step(f"projecting {len(ids)} points with {config.algorithm}")
    t0 = time.perf_counter()
    xy = project(vectors, config.algorithm, config.seed)
    seconds = time.perf_counter() - t0
    if on_step:
        on_step("measuring neighbour keeping")
    keeping = neighbour_keeping(vectors, xy)
    return {
        "task": "map",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": asdict(config),
        "collection": name,
        "collection_metadata": dict(info.metadata),
        "points": len(ids),
        "seconds": round(seconds, 2),
        f"neighbour_keeping@{KEEP_K}": round(keeping, 4),
        "class_names": list(CLASS_NAMES),
        "ids": [int(i) for i in ids],
        "x": [round(float(v), 4) for v in xy[:, 0]],
        "y": [round(float(v), 4) for v in xy[:, 1]],
        "labels": [int(c) for c in labels],
    }
