"""Near-duplicates in a gallery: every pair of stored images whose vectors
score at least a threshold, grouped into connected components.

The pairs are found through the collection's own index: each stored vector
is a query, batched, with Qdrant's score threshold, so memory grows with the
pairs found, never with an all-pairs matrix (70,000 images would need 19.6 GB
of float32 scores for one). A row that fills its limit is asked again with a
larger one, so a large group is never cut off. Groups whose members carry
different labels, and test images with a near-copy in the train split (which
inflate every retrieval figure measured on that split), are counted apart.

Default thresholds per method are measured by :func:`calibrate`
(``fmsearch duplicates --calibrate``; docs/insight.md).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, cast

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import RESULTS_DIR
from fmsearch.images.fmnist import CLASS_NAMES
from fmsearch.store import QueryFilter, Store, schema
from fmsearch.store.base import DEFAULT_HNSW_EF
from fmsearch.store.gallery import open_gallery

SPLITS = ("train", "test", "all")
#: Per method, the score from which two images count as copies of each other,
#: measured by ``fmsearch duplicates --calibrate`` (:func:`calibrate`;
#: docs/insight.md): what 99% of gallery images' JPEG re-encodings score
#: against them, raised where that would pair over 1% of the gallery.
DEFAULT_THRESHOLDS: dict[str, float] = {
    "pixels": 0.9981,  # keeps 99.4% of the copies, pairs 0.1% of the images
    "autoencoder": 0.9791,  # keeps 99.1% of the copies, pairs 0.5%
    "siamese": 0.9982,  # raised: keeps 51% of the copies, pairs 0.6%
    "proxy": 0.9963,  # raised: keeps 62% of the copies, pairs 1.0%
    "distilled": 0.9972,  # raised: keeps 58% of the copies, pairs 0.9%
    "ensemble": 0.9976,  # raised: keeps 60% of the copies, pairs 1.0%
}
#: neighbours asked per stored image at first; rows that fill it ask again
FIRST_LIMIT = 16


@dataclass(frozen=True)
class DuplicatesConfig:
    """Settings of one duplicates run (recorded in duplicates.json).

    ``split`` None scans the FMNIST splits the collection holds (``all`` when
    it holds both, the train split alone after the default ingest); see
    :func:`resolve_split`.
    """

    method: str
    threshold: float | None = None
    split: str | None = None
    batch_size: int = 256
    exact: bool = False
    #: a folder gallery's collection instead of FMNIST's (no splits: all its images)
    gallery: str | None = None

    @property
    def out_dir(self) -> str:
        """Where this run writes when no folder is named."""
        if self.split is None:
            raise InvalidArgumentError("the split is decided by the collection: resolve_split() first")
        return f"{RESULTS_DIR}/" + "-".join(filter(None, ("duplicates", self.gallery, self.method, self.split)))

    def resolved_threshold(self) -> float:
        if self.threshold is not None:
            return self.threshold
        if self.method not in DEFAULT_THRESHOLDS:
            raise InvalidArgumentError(
                f"{self.method} has no measured default: give a threshold in (0, 1]", param="threshold"
            )
        return DEFAULT_THRESHOLDS[self.method]

    def __post_init__(self) -> None:
        if self.threshold is not None and not (np.isfinite(self.threshold) and 0 < self.threshold <= 1):
            raise InvalidArgumentError(f"threshold must be in (0, 1], got {self.threshold}", param="threshold")
        if self.split is not None and self.split not in SPLITS:
            raise InvalidArgumentError(f"unknown split {self.split!r}; valid: {', '.join(SPLITS)}")
        if self.batch_size < 1:
            raise InvalidArgumentError(f"batch size must be at least 1, got {self.batch_size}", param="batch_size")


class _Components:
    """Union-find over point ids (path halving, union by size)."""

    def __init__(self) -> None:
        self.parent: dict[int, int] = {}
        self.size: dict[int, int] = {}

    def find(self, a: int) -> int:
        parent = self.parent
        parent.setdefault(a, a)
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size.get(ra, 1) < self.size.get(rb, 1):
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] = self.size.get(ra, 1) + self.size.get(rb, 1)

    def groups(self) -> list[list[int]]:
        by_root: dict[int, list[int]] = {}
        for a in self.parent:
            by_root.setdefault(self.find(a), []).append(a)
        return [sorted(g) for g in by_root.values()]


def _stored_splits(store: Store, name: str) -> tuple[str, ...]:
    """The FMNIST splits a collection holds, in order."""
    is_test = store.ids(name) >= schema.TEST_ID_OFFSET
    return tuple(s for s, held in (("train", (~is_test).any()), ("test", is_test.any())) if held)


class _Scan(Protocol):
    """What a scan of a gallery's stored images names: its method, split
    and gallery (a duplicates or a label-issues run)."""

    @property
    def method(self) -> str: ...

    @property
    def split(self) -> str | None: ...

    @property
    def gallery(self) -> str | None: ...


_ScanT = TypeVar("_ScanT", bound=_Scan)


def resolve_split(store: Store, config: _ScanT, *, prefix: str = schema.DEFAULT_PREFIX) -> _ScanT:
    """``config`` with its split decided: the one asked for, else what the
    collection holds (``all`` for both splits, else the one it holds; a
    folder gallery is scanned whole).

    Raises:
        CollectionNotFoundError: the collection does not exist.
    """
    gallery = open_gallery(store, config.gallery, prefix=prefix)
    if not gallery.has_splits:
        if config.split not in (None, "all"):
            raise InvalidArgumentError(
                "a folder gallery has no train and test splits: scan it whole (split all)", param="split"
            )
        return replace(config, split="all")  # type: ignore[type-var]
    if config.split is not None:
        return config
    stored = _stored_splits(store, gallery.collection(config.method))
    return replace(config, split="all" if len(stored) != 1 else stored[0])  # type: ignore[type-var]


def _what_all_adds(store: Store, name: str, config: DuplicatesConfig) -> str | None:
    """One line: what ``--split all`` would add to a one-split scan of FMNIST."""
    if config.split == "all":
        return None
    other = "test" if config.split == "train" else "train"
    line = f"--split all would add the {other} images and count the test images with a near-copy in train"
    if other not in _stored_splits(store, name):
        line += (
            f"; {name} holds no {other} images: store them first with "
            f"`fmsearch ingest --method {config.method} --split all`"
        )
    return line


def _scope(store: Store, name: str, split: str) -> np.ndarray:
    """The stored ids of the split(s) asked for; refuses a split the
    collection does not hold."""
    ids = store.ids(name)
    is_test = ids >= schema.TEST_ID_OFFSET
    need = ("train", "test") if split == "all" else (split,)
    for s in need:
        if not (is_test if s == "test" else ~is_test).any():
            other = "train" if s == "test" else "test"
            raise InvalidArgumentError(
                f"{name} holds no {s} images; store them with "
                f"`fmsearch ingest --split {'all' if split == 'all' else s}`"
                + (f", or scan the {other} split alone (--split {other})" if split == "all" else "")
            )
    return ids if split == "all" else ids[is_test == (split == "test")]


def find_pairs(
    store: Store,
    name: str,
    ids: np.ndarray,
    threshold: float,
    *,
    flt: QueryFilter | None = None,
    batch_size: int = 256,
    exact: bool = False,
    progress: Callable[[int], None] | None = None,
) -> dict[tuple[int, int], float]:
    """Every pair (a < b) of ``ids`` whose stored vectors score at least
    ``threshold``, with its score, found by threshold queries of the index
    (a pair counts when either side finds the other)."""
    pairs: dict[tuple[int, int], float] = {}
    for lo in range(0, len(ids), batch_size):
        batch = [int(i) for i in ids[lo : lo + batch_size]]
        records = store.retrieve(name, batch, with_vectors=True, with_payload=False)
        pending = [(r.id, r.fetched_vector()) for r in records]
        limit = FIRST_LIMIT
        while pending:
            vectors = np.stack([v for _, v in pending])
            results = store.query_batch(
                name,
                vectors,
                limit + 1,
                flt,
                exact=exact,
                with_payload=False,
                hnsw_ef=max(DEFAULT_HNSW_EF, limit + 1),
                score_threshold=threshold,
            )
            again = []
            for (pid, vector), hits in zip(pending, results, strict=True):
                if len(hits) > limit and limit < len(ids):
                    again.append((pid, vector))  # it may have more: ask with a larger limit
                    continue
                for h in hits:
                    if h.id != pid:
                        key = (min(pid, h.id), max(pid, h.id))
                        pairs[key] = max(pairs.get(key, -1.0), h.score)
            pending, limit = again, limit * 4
        if progress:
            progress(len(batch))
    return pairs


def _members(store: Store, name: str, ids: list[int], batch_size: int) -> tuple[dict[int, int | None], dict[int, str]]:
    """Each id's label (None: a folder image without a class) and, for a
    folder gallery, its path."""
    labels: dict[int, int | None] = {}
    paths: dict[int, str] = {}
    for lo in range(0, len(ids), batch_size):
        for r in store.retrieve(name, ids[lo : lo + batch_size], with_payload=[schema.LABEL, schema.PATH]):
            label = r.payload.get(schema.LABEL)
            labels[r.id] = None if label is None else int(label)
            if schema.PATH in r.payload:
                paths[r.id] = str(r.payload[schema.PATH])
    return labels, paths


def group(
    pairs: dict[tuple[int, int], float],
    labels: dict[int, int | None],
    class_names: tuple[str, ...] | list[str] = CLASS_NAMES,
    paths: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Connected components of the pairs, as duplicates.json's groups: label
    conflicts first, then larger groups first, then by smallest id. A folder
    gallery's groups (``paths`` given) name each image's path instead of its
    split; an image without a class conflicts with none."""
    comps = _Components()
    for a, b in pairs:
        comps.union(a, b)
    members_pairs: dict[int, list[list]] = {}
    for (a, b), score in sorted(pairs.items()):
        members_pairs.setdefault(comps.find(a), []).append([a, b, round(float(score), 6)])
    groups = []
    for members in comps.groups():
        edges = members_pairs[comps.find(members[0])]
        group_labels = [labels[i] for i in members]
        where = (
            {"paths": [paths.get(i, "") for i in members]}
            if paths is not None
            else {"splits": ["test" if i >= schema.TEST_ID_OFFSET else "train" for i in members]}
        )
        groups.append(
            {
                "ids": members,
                "labels": group_labels,
                "classes": [None if c is None else class_names[c] for c in group_labels],
                **where,
                "conflict": len({c for c in group_labels if c is not None}) > 1,
                "min_score": min(e[2] for e in edges),
                "max_score": max(e[2] for e in edges),
                "pairs": edges,
            }
        )
    groups.sort(key=lambda g: (not g["conflict"], -len(g["ids"]), g["ids"][0]))
    return groups


def summarize(
    groups: list[dict[str, Any]],
    pairs: dict[tuple[int, int], float],
    labels: dict[int, int | None],
    scanned: int,
    class_names: tuple[str, ...] | list[str] = CLASS_NAMES,
    splits: bool = True,
) -> dict[str, Any]:
    """The counts report.md leads with (test images with a train copy: only
    a gallery with train and test ``splits`` has them; None otherwise)."""
    test_with_train = (
        {b for a, b in pairs if a < schema.TEST_ID_OFFSET <= b} if splits else set()
    )  # a < b: a train id paired with a test id
    per_class = []
    for c, cname in enumerate(class_names):
        in_groups = sum(lab == c for g in groups for lab in g["labels"])
        per_class.append(
            {
                "class": cname,
                "images_in_groups": int(in_groups),
                "groups": int(sum(set(g["labels"]) == {c} for g in groups)),
                "conflict_groups": int(sum(g["conflict"] and c in g["labels"] for g in groups)),
                "test_with_train_copy": int(sum(labels[b] == c for b in test_with_train)),
            }
        )
    return {
        "images_scanned": int(scanned),
        "pairs": len(pairs),
        "groups": len(groups),
        "images_in_groups": int(sum(len(g["ids"]) for g in groups)),
        "largest_group": max((len(g["ids"]) for g in groups), default=0),
        "conflict_groups": int(sum(g["conflict"] for g in groups)),
        "conflict_pairs": int(sum(None not in (labels[a], labels[b]) and labels[a] != labels[b] for a, b in pairs)),
        "test_with_train_copy": len(test_with_train) if splits else None,
        "per_class": per_class,
    }


def _peak_rss_mb() -> float:
    """The process's peak resident memory so far, in MiB: Linux's ``VmHWM``
    (``ru_maxrss`` where there is no /proc; it carries a parent's peak
    across exec, so a child process's own figure needs VmHWM)."""
    try:
        for line in open("/proc/self/status").read().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def find_duplicates(
    store: Store,
    config: DuplicatesConfig,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """One duplicates run over a method's collection; returns duplicates.json
    (its ``split_note``: what ``--split all`` would add to a one-split scan).

    Raises:
        InvalidArgumentError, CollectionNotFoundError.
    """
    gallery = open_gallery(store, config.gallery, prefix=prefix)  # named once, here
    name = gallery.collection(config.method)
    info = store.info(name)
    config = resolve_split(store, config, prefix=prefix)
    split = cast(str, config.split)  # resolve_split decided it
    if info.multivector:
        raise InvalidArgumentError(f"{name} holds descriptor sets, not one vector per image; pick an embedding method")
    threshold = config.resolved_threshold()
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    ids = _scope(store, name, split) if gallery.has_splits else store.ids(name)
    if on_plan:
        on_plan(len(ids))
    flt = None if config.split == "all" else QueryFilter(split=config.split)
    pairs = find_pairs(
        store, name, ids, threshold, flt=flt, batch_size=config.batch_size, exact=config.exact, progress=progress
    )
    t_pairs = time.perf_counter() - t0
    members = sorted({i for p in pairs for i in p})
    labels, paths = _members(store, name, members, config.batch_size)
    class_names = gallery.classes(info.metadata)
    groups = group(pairs, labels, class_names, paths or None)  # images with paths: named by them
    seconds = time.perf_counter() - t0
    return {
        "task": "duplicates",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {
            **asdict(config),
            "threshold": threshold,
            "threshold_source": "given" if config.threshold is not None else "measured default",
        },
        "backend": store.location,
        "collection": name,
        "collection_metadata": dict(info.metadata),
        "scope": gallery.scope(split),
        "summary": summarize(groups, pairs, labels, len(ids), class_names, splits=gallery.has_splits),
        "split_note": _what_all_adds(store, name, config),
        "cost": {
            "seconds": round(seconds, 2),
            "seconds_pairs": round(t_pairs, 2),
            "images_per_second": round(len(ids) / max(t_pairs, 1e-9), 1),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "peak_rss_mb_before": round(rss_before, 1),
            "all_pairs_matrix_mb": round(len(ids) ** 2 * 4 / 2**20, 1),
        },
        "groups": groups,
    }


#: the re-encoding whose copies define a method's default threshold
CALIBRATION_QUALITY = 90
#: the share of re-encoded copies a default threshold aims to keep ...
CALIBRATION_KEEP = 0.99
#: ... unless it would pair more than this share of gallery images with
#: their nearest other image (a threshold that groups most of the gallery
#: finds classes, not copies)
CALIBRATION_PAIRED = 0.01


def calibrate(
    store: Store, embedder, *, prefix: str = schema.DEFAULT_PREFIX, sample: int = 1000, seed: int = 0, data_dir=None
) -> dict[str, Any]:
    """Measure a method's copy threshold on its stored train images.

    For ``sample`` stored train images (seeded): the score of each image's
    vector against its JPEG re-encoding's (quality 90: a copy no eye tells
    apart) and against its nearest other stored image. The suggested
    threshold keeps 99% of the copies, or, where that would pair more than
    1% of the images with their nearest other image, is raised until it
    pairs no more than 1%; the report says how many copies it keeps then.
    """
    from fmsearch.images.fmnist import load_split
    from fmsearch.images.transforms import reencoded

    name = schema.collection_name(embedder.name, prefix)
    schema.check_compatible(name, store.info(name).metadata, embedder.describe())
    ids = store.ids(name)
    train_ids = ids[ids < schema.TEST_ID_OFFSET]
    if len(train_ids) < 2:
        raise InvalidArgumentError(f"{name} holds fewer than 2 train images; run `fmsearch ingest` first")
    chosen = np.sort(np.random.default_rng(seed).choice(train_ids, size=min(sample, len(train_ids)), replace=False))
    images = load_split("train", data_dir).images[chosen]
    a = embedder.embed(images)
    b = embedder.embed(np.stack([reencoded(im, CALIBRATION_QUALITY) for im in images]))
    copy_scores = np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    stored = store.retrieve(name, [int(i) for i in chosen], with_vectors=True, with_payload=False)
    nearest = []
    for lo in range(0, len(stored), 256):
        rows = stored[lo : lo + 256]
        hits = store.query_batch(name, np.stack([r.fetched_vector() for r in rows]), 2, with_payload=False)
        nearest += [next((h.score for h in hs if h.id != r.id), np.nan) for r, hs in zip(rows, hits, strict=True)]
    nearest_scores = np.asarray(nearest, np.float64)
    keeps_copies = round(float(np.floor(np.quantile(copy_scores, 1 - CALIBRATION_KEEP) * 1e4)) / 1e4, 4)
    pairs_few = round(float(np.ceil(np.nanquantile(nearest_scores, 1 - CALIBRATION_PAIRED) * 1e4)) / 1e4, 4)
    threshold = max(keeps_copies, pairs_few)
    quantiles = (0.01, 0.05, 0.5, 0.9, 0.99)
    return {
        "method": embedder.name,
        "collection": name,
        "sample": len(chosen),
        "seed": seed,
        "copy": f"JPEG re-encoding at quality {CALIBRATION_QUALITY}",
        "copy_score_quantiles": {str(q): float(np.quantile(copy_scores, q)) for q in quantiles},
        "nearest_other_quantiles": {str(q): float(np.nanquantile(nearest_scores, q)) for q in quantiles},
        "threshold_keeping_copies": keeps_copies,
        "threshold_pairing_few": pairs_few,
        "threshold": threshold,
        "copies_kept": float(np.mean(copy_scores >= threshold)),
        "images_paired_at_threshold": float(np.mean(nearest_scores >= threshold)),
    }
