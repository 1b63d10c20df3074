"""Likely label errors and outliers in a gallery, found through its own index.

Each checked image asks the collection's index for its ``k`` nearest
neighbours (one batch of queries, itself left out): the graph cleanlab's
``Datalab`` builds with a brute-force scikit-learn pass, here from the HNSW
index that already holds the gallery. From the graph:

- **nearness of a class**: the mean similarity of the image's ``m`` (3)
  nearest images of that class. The image's own class and the nearest other
  class are read from its neighbour list where the list holds ``m`` of them,
  else asked of the index with a class filter (a few percent of the images).
- **margin**: own class's nearness minus the nearest other class's. An
  image nearer to another class than to its own has a negative margin; the
  lower, the likelier its label is wrong, and the other class is the
  suggested label.
- **flagged**: margin at most ``-FLAG_AT`` times the gallery's median
  margin. The threshold is the detector's own: it scales with how far apart
  the gallery's classes lie for this method (the median margin), never with
  an expected error rate.
- **outlier score**: the mean cosine distance to the ``k`` neighbours (an
  image far from everything fits no class).

The constants were chosen on noise seeds 0 and 1 of the benchmark
(docs/insight.md); its reported figures use seed 3.

A benchmark run (``noise``) flips a share of the checked labels in a copy
held in memory (uniformly to another class, or to the class the graph finds
most confusable with the true one) and scores the detector against the
flips; the stored payload is never written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, cast

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import RESULTS_DIR
from fmsearch.evaluation.duplicates import _peak_rss_mb, _scope, resolve_split
from fmsearch.store import QueryFilter, Store, schema
from fmsearch.store.gallery import open_gallery

#: neighbours per checked image (the graph)
K = 10
#: a class's nearness: the mean similarity of this many of its nearest images
M = 3
#: flagged when the margin is at most -FLAG_AT x the median margin
FLAG_AT = 1.0
#: the graph's HNSW search width (raised to the limit where a query asks more)
HNSW_EF = 16
NOISE_MODES = ("uniform", "confusable")
#: suspects (the flagged images first, then the next lowest margins) and outliers written to
#: label_issues.json with their neighbours
LISTED = 500
#: neighbours listed per suspect
SHOWN_NEIGHBOURS = 10
#: images whose exact margin sets the median (seeded sample; every image where fewer)
MEDIAN_SAMPLE = 2000
#: places asked beyond m in a class query where this run's labels differ from the stored ones
RESERVE = 4
#: images of any other class asked at once where the list cannot tell the nearest other class
OTHERS = 30
#: their search width
OTHERS_EF = 128


@dataclass(frozen=True)
class Noise:
    """Injected label noise: ``rate`` of the checked labels flipped (seeded),
    ``uniform``ly to another class or to the most ``confusable`` one."""

    rate: float
    seed: int = 0
    mode: str = "uniform"

    def __post_init__(self) -> None:
        if not (np.isfinite(self.rate) and 0 < self.rate <= 0.5):
            raise InvalidArgumentError(
                f"inject noise must be a share in (0, 0.5], got {self.rate}", param="inject_noise"
            )
        if self.mode not in NOISE_MODES:
            raise InvalidArgumentError(f"unknown noise mode {self.mode!r}; valid: {', '.join(NOISE_MODES)}")
        if self.seed < 0:
            raise InvalidArgumentError(f"seed must be 0 or more, got {self.seed}", param="seed")


@dataclass(frozen=True)
class LabelIssuesConfig:
    """Settings of one run (recorded in label_issues.json). ``split``: which
    stored FMNIST images are checked (None: what the collection holds); the
    test split is checked against the train gallery, train and all against
    themselves; a folder gallery is checked whole."""

    method: str
    split: str | None = None
    k: int = K
    batch_size: int = 256
    exact: bool = False
    gallery: str | None = None
    noise: Noise | None = None

    def __post_init__(self) -> None:
        if self.split is not None and self.split not in ("train", "test", "all"):
            raise InvalidArgumentError(f"unknown split {self.split!r}; valid: train, test, all")
        if not 1 <= self.k <= 1000:
            raise InvalidArgumentError(f"k must be in [1, 1000], got {self.k}", param="k")
        if self.batch_size < 1:
            raise InvalidArgumentError(f"batch size must be at least 1, got {self.batch_size}", param="batch_size")

    @property
    def out_dir(self) -> str:
        """Where this run writes when no folder is named."""
        if self.split is None:
            raise InvalidArgumentError("the split is decided by the collection: resolve_split() first")
        noise = f"noise-{self.noise.mode}-{self.noise.rate:g}-s{self.noise.seed}" if self.noise else None
        return f"{RESULTS_DIR}/" + "-".join(
            filter(None, ("label-issues", self.gallery, self.method, self.split, noise))
        )


# The graph


@dataclass
class Graph:
    """Each checked image's ``k`` nearest pool images (itself left out), as
    positions into ``pool_ids``, best first; -1 and NaN pad a short row."""

    ids: np.ndarray  # (n,) checked point ids
    pool_ids: np.ndarray  # sorted ids of the images neighbours come from
    neighbours: np.ndarray  # (n, k) int positions into pool_ids
    scores: np.ndarray  # (n, k) float32 cosine similarity
    pool: QueryFilter | None  # the filter that keeps a query within the pool
    seconds: float = 0.0


def _pool_filter(split: str | None, has_splits: bool) -> QueryFilter | None:
    """Where a checked image's neighbours come from: the train gallery for
    the test split, else the images checked."""
    if not has_splits or split == "all":
        return None
    return QueryFilter(split="train")


def build_graph(
    store: Store,
    name: str,
    ids: np.ndarray,
    pool_ids: np.ndarray,
    pool: QueryFilter | None,
    k: int,
    *,
    batch_size: int = 256,
    exact: bool = False,
    progress: Callable[[int], None] | None = None,
) -> Graph:
    """The kNN graph of ``ids`` from the collection's own index: each stored
    vector is a query (batched), asking ``k + 1`` so that itself can be
    dropped."""
    t0 = time.perf_counter()
    n = len(ids)
    found_ids = np.full((n, k), -1, np.int64)
    scores = np.full((n, k), np.nan, np.float32)
    ef = max(HNSW_EF, k + 1)
    for lo in range(0, n, batch_size):
        batch = [int(i) for i in ids[lo : lo + batch_size]]
        records = store.retrieve(name, batch, with_vectors=True, with_payload=False)
        if len(records) != len(batch):
            raise InvalidArgumentError(f"{name} changed while it was read: run again")
        block = np.stack([r.fetched_vector() for r in records])
        hits = store.query_batch(name, block, k + 1, pool, exact=exact, hnsw_ef=ef, with_payload=False)
        for row, (pid, found) in enumerate(zip(batch, hits, strict=True), start=lo):
            kept = [h for h in found if h.id != pid][:k]
            if kept:
                found_ids[row, : len(kept)] = [h.id for h in kept]
                scores[row, : len(kept)] = [h.score for h in kept]
        if progress:
            progress(len(batch))
    listed = found_ids >= 0 if len(pool_ids) else np.zeros_like(found_ids, bool)
    neighbours = np.where(listed, np.searchsorted(pool_ids, found_ids), -1).astype(
        np.int32 if len(pool_ids) < 2**31 else np.int64
    )
    return Graph(ids, pool_ids, neighbours, scores, pool, time.perf_counter() - t0)


# The labels a run checks


@dataclass
class Labels:
    """The labels of the pool and of the checked images: the stored ones,
    and the ones this run checks (the stored ones, or an injected-noise copy
    of them held here; the store is never written)."""

    stored: dict[int, int]  # every labelled id in the pool or checked
    given: dict[int, int]  # the labels checked: ``stored`` with the injected flips

    def flipped(self) -> dict[int, int]:
        """The ids whose label this run changed, with the label it gave them."""
        return {i: c for i, c in self.given.items() if self.stored.get(i) != c}

    def of(self, ids: np.ndarray) -> np.ndarray:
        """The given labels of ``ids`` (-1: no class)."""
        return np.fromiter((self.given.get(int(i), -1) for i in ids), np.int64, len(ids))


def read_labels(store: Store, name: str, n_classes: int) -> dict[int, int]:
    """The stored label of every point that has one, read class by class
    from the label's payload index (the payloads, images and all, stay
    unread)."""
    labels: dict[int, int] = {}
    for c in range(n_classes):
        labels.update(dict.fromkeys(store.ids(name, QueryFilter(labels=(c,))).tolist(), c))
    return labels


def stored_vectors(store: Store, name: str, ids, batch_size: int = 1024) -> np.ndarray:
    """The stored vectors of ``ids``, in order."""
    ids = [int(i) for i in ids]
    out = []
    for lo in range(0, len(ids), batch_size):
        records = store.retrieve(name, ids[lo : lo + batch_size], with_vectors=True, with_payload=False)
        if len(records) != len(ids[lo : lo + batch_size]):
            raise InvalidArgumentError(f"{name} changed while it was read: run again")
        out.append(np.stack([r.fetched_vector() for r in records]))
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def confusable_classes(graph: Graph, labels: np.ndarray, pool_labels: np.ndarray, n_classes: int) -> np.ndarray:
    """For each class, the other class its images' neighbours carry most
    often (the stored labels): the class a confusable flip moves it to."""
    counts = np.zeros((n_classes, n_classes), np.int64)
    valid = (graph.neighbours >= 0) & (labels[:, None] >= 0)
    rows = np.broadcast_to(labels[:, None], graph.neighbours.shape)[valid]
    cols = pool_labels[graph.neighbours[valid]]
    keep = cols >= 0
    np.add.at(counts, (rows[keep], cols[keep]), 1)
    np.fill_diagonal(counts, -1)
    return counts.argmax(axis=1)


def inject_noise(
    stored: dict[int, int], checked: np.ndarray, noise: Noise, n_classes: int, confusable: np.ndarray
) -> dict[int, int]:
    """A copy of ``stored`` with ``noise.rate`` of the checked labelled ids
    flipped (seeded)."""
    candidates = np.array([int(i) for i in checked if int(i) in stored], np.int64)
    flips = int(round(noise.rate * len(candidates)))
    if not flips:
        raise InvalidArgumentError(
            f"inject noise {noise.rate:g} flips no label of {len(candidates)} images: give a larger share",
            param="inject_noise",
        )
    rng = np.random.default_rng(noise.seed)
    chosen = rng.choice(candidates, size=flips, replace=False)
    given = dict(stored)
    true = np.array([stored[int(i)] for i in chosen], np.int64)
    if noise.mode == "uniform":
        new = (true + rng.integers(1, n_classes, size=len(chosen))) % n_classes
    else:
        new = confusable[true]
    for i, c in zip(chosen, new, strict=True):
        given[int(i)] = int(c)
    return given


# Scoring


@dataclass
class Nearness:
    """Per checked image: its own class's nearness, the nearest other
    class and its nearness."""

    own: np.ndarray
    other: np.ndarray
    other_class: np.ndarray
    exact: np.ndarray  # other (and so the margin) measured, not bounded
    median_margin: float
    threshold: float
    filtered_queries: int


def _top_m_in_list(classes: np.ndarray, scores: np.ndarray, c: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the mean of the first ``m`` scores whose class is ``c[row]``
    and how many there were (at most ``m``)."""
    mask = classes == c[:, None]
    take = mask & (np.cumsum(mask, axis=1) <= m)
    count = take.sum(axis=1)
    total = np.where(take, scores, 0).sum(axis=1)
    return total / np.maximum(count, 1), count


class _ClassQueries:
    """The nearest ``m`` pool images of a class (or of any class but one) for
    a batch of checked images, asked of the index with a label filter. The
    index filters on the stored labels; where this run's labels differ (an
    injected-noise copy), the ids whose label changed are corrected for:
    dropped from the index's answer where they left the class, scored
    exactly where they joined it (they are few)."""

    def __init__(
        self, store: Store, name: str, graph: Graph, labels: Labels, m: int, exact: bool, n_classes: int
    ) -> None:
        self.store, self.name, self.graph, self.m, self.exact = store, name, graph, m, exact
        self.labels = labels
        self.n_classes = n_classes
        pool = set(graph.pool_ids.tolist())
        changed = {i: c for i, c in labels.flipped().items() if i in pool}
        self.changed_ids = np.array(sorted(changed), np.int64)
        self.changed_given = np.array([changed[i] for i in self.changed_ids.tolist()], np.int64)
        self.changed_stored = np.array([labels.stored.get(i, -1) for i in self.changed_ids.tolist()], np.int64)
        self.changed_vectors = np.zeros((0, 0), np.float32)
        if len(self.changed_ids):
            self.changed_vectors = stored_vectors(store, name, self.changed_ids)
        self.queries = 0

    def _corrections(self, c: int, exclude: bool) -> tuple[int, np.ndarray]:
        """For a query of class ``c`` (or of any class but ``c``): how many
        ids the stored filter lets through that this run's labels keep out,
        and the positions (into the changed ids) of those it keeps out that
        this run's labels let in."""
        stored_in = (self.changed_stored != c) if exclude else (self.changed_stored == c)
        given_in = (self.changed_given != c) if exclude else (self.changed_given == c)
        return int((stored_in & ~given_in).sum()), np.flatnonzero(~stored_in & given_in)

    def nearest(
        self, vectors: np.ndarray, ids: list[int], classes: list[int], exclude: list[bool], count: int | None = None
    ) -> list[tuple[list[tuple[float, int]], float]]:
        """Per row: the (score, class) of the ``count`` (default ``m``)
        nearest pool images whose label is ``classes[row]`` (or, with
        ``exclude[row]``, any other class), itself left out, best first; and
        the floor under which every image not returned lies (-inf: none is
        left out)."""
        count = count or self.m
        base = self.graph.pool or QueryFilter()
        every = range(self.n_classes)
        corrections = [self._corrections(c, ex) for c, ex in zip(classes, exclude, strict=True)]
        filters = [  # the classes named: an image without a class matches neither query
            replace(base, exclude_ids=(pid,), labels=tuple(o for o in every if o != c) if ex else (c,))
            for pid, c, ex in zip(ids, classes, exclude, strict=True)
        ]
        out: list[tuple[list[tuple[float, int]], float]] = [([], -np.inf) for _ in ids]
        # ids the stored filter lets through but this run's labels keep out take a place in the answer:
        # ask a few more first, then the whole count for a row whose answer kept fewer than asked
        pending = list(range(len(ids)))
        first = True
        while pending:
            limits = [count + (min(corrections[j][0], RESERVE) if first else corrections[j][0]) for j in pending]
            hits = self.store.query_batch(
                self.name,
                vectors[pending],
                limits,
                [filters[j] for j in pending],
                exact=self.exact,
                # a filter that drops the image's own neighbourhood: ACORN walks through it
                hnsw_ef=max(OTHERS_EF if exclude[pending[0]] else HNSW_EF, max(limits)),
                acorn=any(exclude),
                with_payload=False,
            )
            self.queries += len(pending)
            again = []
            for j, limit, found in zip(pending, limits, hits, strict=True):
                kept = self._kept(found, classes[j], exclude[j])
                full = len(found) == limit
                if len(kept) < count and full and limit < count + corrections[j][0]:
                    again.append(j)
                    continue
                rows = kept + self._joined(vectors[j], ids[j], corrections[j][1])
                rows.sort(reverse=True)
                out[j] = (rows[:count], found[-1].score if full else -np.inf)
            pending, first = again, False
        return out

    def _kept(self, found: list, c: int, exclude: bool) -> list[tuple[float, int]]:
        """The index's answer in this run's labels: (score, class) of the
        hits whose label (this run's) is ``c`` (or, with ``exclude``, not)."""
        given = self.labels.given
        return [(h.score, given[h.id]) for h in found if h.id in given and (given[h.id] != c) == exclude]

    def _joined(self, vec: np.ndarray, pid: int, joined: np.ndarray) -> list[tuple[float, int]]:
        """The ids this run's labels moved into the class, scored exactly."""
        if not len(joined):
            return []
        sims = self.changed_vectors[joined] @ vec
        return [
            (float(s), int(self.changed_given[j]))
            for s, j in zip(sims, joined, strict=True)
            if int(self.changed_ids[j]) != pid
        ]


def _class_means(
    classes: np.ndarray, scores: np.ndarray, n_classes: int, m: int, chunk: int = 8192
) -> tuple[np.ndarray, np.ndarray]:
    """Per row and class: the mean of the class's first ``m`` listed scores,
    and how many are listed (at most ``m``); rows in chunks, so the
    temporaries stay small."""
    n = len(classes)
    means = np.zeros((n, n_classes), np.float32)
    counts = np.zeros((n, n_classes), np.int8 if m < 128 else np.int32)
    for lo in range(0, n, chunk):
        cl, sc = classes[lo : lo + chunk], scores[lo : lo + chunk]
        for c in range(n_classes):
            means[lo : lo + chunk, c], counts[lo : lo + chunk, c] = _top_m_in_list(cl, sc, np.full(len(cl), c), m)
    return means, counts


class _Measure:
    """The nearness of the checked images' classes, read from the graph's
    lists where they decide it and asked of the index where they do not."""

    def __init__(self, store: Store, name: str, graph: Graph, labels: Labels, m: int, exact: bool, batch_size: int):
        self.store, self.name, self.graph, self.batch_size = store, name, graph, batch_size
        n = len(graph.ids)
        self.given = given = labels.of(graph.ids)
        pool_given = labels.of(graph.pool_ids)
        listed = graph.neighbours >= 0
        classes = np.where(listed, pool_given[np.maximum(graph.neighbours, 0)], -1)
        scores = np.where(listed, graph.scores, np.float32(0))
        n_classes = int(max(given.max(initial=-1), pool_given.max(initial=-1))) + 1
        last = np.where(listed.any(axis=1), np.where(listed, graph.scores, np.inf).min(axis=1), 0.0)
        self.means, self.counts = _class_means(classes, scores, n_classes, m)
        # a class smaller than m is measured by all its images; an image's own class leaves the image out
        sizes = np.bincount(pool_given[pool_given >= 0], minlength=n_classes)
        self.need = need = np.minimum(m, sizes)
        rows = np.arange(n)
        self.labelled = given >= 0
        g = np.maximum(given, 0)
        self.need_own = np.minimum(m, sizes[g] - np.isin(graph.ids, graph.pool_ids))
        bounds = np.where(
            self.counts > 0,
            (self.means * self.counts + (need - self.counts) * last[:, None]) / np.maximum(need, 1),
            -np.inf,
        ).astype(np.float32)
        self.own = np.where(
            self.labelled & (self.need_own > 0) & (self.counts[rows, g] >= self.need_own), self.means[rows, g], np.nan
        )
        bounds[rows, g] = -np.inf  # the other classes' bounds
        self.other_bounds = bounds
        self.other_class = np.where(np.isfinite(bounds.max(axis=1)), bounds.argmax(axis=1), -1)
        # no other class listed: every other class's m nearest lie below the last listed score
        self.other_upper = np.where(self.other_class >= 0, bounds.max(axis=1), last)
        self.other = np.full(n, np.nan)
        self.exact_other = np.zeros(n, bool)
        self.asker = _ClassQueries(store, name, graph, labels, m, exact, n_classes)

    def ask(self, jobs: list[tuple[int, int, bool]], count: int | None = None):
        """Class queries ``(row, class, exclude)`` in batches; yields each
        job with its (score, class) rows."""
        for lo in range(0, len(jobs), self.batch_size):
            chunk = jobs[lo : lo + self.batch_size]
            unique, where = np.unique(np.array([r for r, _, _ in chunk]), return_inverse=True)
            found = self.asker.nearest(
                stored_vectors(self.store, self.name, self.graph.ids[unique])[where],
                [int(self.graph.ids[r]) for r, _, _ in chunk],
                [c for _, c, _ in chunk],
                [ex for _, _, ex in chunk],
                count,
            )
            yield from zip(chunk, found, strict=True)

    def measure_own(self) -> None:
        """The own class where the list holds fewer than m of it."""
        short = np.flatnonzero(self.labelled & (self.need_own > 0) & np.isnan(self.own))
        for (r, _, _), (got, _) in self.ask([(int(r), int(self.given[r]), False) for r in short]):
            self.own[r] = np.mean([s for s, _ in got]) if got else np.nan

    def settle(self, chosen: np.ndarray) -> None:
        """The exact nearest other class of the chosen rows. The list decides
        where its best whole class beats every part-listed class's bound;
        else the index is asked for the row's ``OTHERS`` nearest images of
        any other class (one cheap query: the filter keeps most of the
        gallery), each class's ``m`` best among them, and a class that shows
        fewer there is asked alone while its bound could pass the best."""
        chosen = np.array([int(r) for r in chosen if self.labelled[r] and not self.exact_other[r]], np.int64)
        counts, bounds = self.counts[chosen], self.other_bounds[chosen]
        whole = np.where((counts >= self.need) & (bounds > -np.inf), self.means[chosen], -np.inf)
        best_listed = whole.max(axis=1, initial=-np.inf)
        best = dict(zip(chosen.tolist(), best_listed.tolist(), strict=True))
        best_class = dict(zip(chosen.tolist(), whole.argmax(axis=1).tolist() if len(chosen) else [], strict=True))
        open_max = np.where((counts < self.need) & (bounds > -np.inf), bounds, -np.inf).max(axis=1, initial=-np.inf)
        undecided = chosen[~np.isfinite(best_listed) | (open_max > best_listed)]
        open_bounds: dict[int, dict[int, float]] = {}
        for (r, _, _), (got, floor) in self.ask([(int(r), int(self.given[r]), True) for r in undecided], OTHERS):
            best[r], best_class[r], open_bounds[r] = self._from_others(got, floor)
        todo = list(open_bounds)
        while todo:  # a class part-shown whose bound passes the best: asked alone
            jobs = []
            for r in todo:
                if open_bounds[r]:
                    c, bound = max(open_bounds[r].items(), key=lambda kv: kv[1])
                    if bound > best[r]:
                        jobs.append((r, c, False))
                        del open_bounds[r][c]
            for (r, c, _), (got, _) in self.ask(jobs):
                value = float(np.mean([sc for sc, _ in got])) if got else -np.inf
                if value > best[r]:
                    best[r], best_class[r] = value, c
            todo = [r for r, _, _ in jobs]
        for r in chosen.tolist():
            self.other[r] = best[r] if np.isfinite(best[r]) else np.nan
            self.other_class[r] = best_class[r]
        self.exact_other[chosen] = True

    def _from_others(self, got: list[tuple[float, int]], floor: float) -> tuple[float, int, dict[int, float]]:
        """From one row's nearest images of other classes (every image not
        shown lies below ``floor``): the best class shown whole (its
        nearness and class), and the bounds of the classes shown in part."""
        per_class: dict[int, list[float]] = {}
        for sc, c in got:
            per_class.setdefault(c, []).append(sc)
        if len(got) >= OTHERS:  # those cut from the answer lie below its last
            floor = max(floor, got[-1][0])
        best, best_class, bounds = -np.inf, -1, {}
        for c, scs in per_class.items():
            if len(scs) >= self.need[c]:
                value = float(np.mean(scs[: self.need[c]]))
                if value > best:
                    best, best_class = value, c
            else:
                bounds[c] = (sum(scs) + (self.need[c] - len(scs)) * floor) / self.need[c]
        return best, best_class, bounds


def nearness(
    store: Store,
    name: str,
    graph: Graph,
    labels: Labels,
    m: int = M,
    flag_at: float = FLAG_AT,
    *,
    batch_size: int = 256,
    exact: bool = False,
) -> Nearness:
    """Own-class and nearest-other-class nearness of the checked images
    (given labels; unlabelled images get NaN), and the flagging threshold.

    A class whose ``m`` nearest images are all in an image's neighbour list
    is measured from the list; else the list bounds it from above (its
    listed members, the rest at the list's last score). The index is asked
    (a class filter) where the bounds cannot decide: the own class of an
    image whose list holds fewer than ``m`` of it; the other class of a
    seeded sample of images, whose exact margins set the median; and the
    other class of every image whose margin could be at or under the
    threshold. Elsewhere ``other`` is the bound (the margin a lower bound,
    above the threshold) and ``exact`` is False.
    """
    measure = _Measure(store, name, graph, labels, m, exact, batch_size)
    measure.measure_own()
    own = measure.own
    # the median margin, from a seeded sample measured exactly
    sample = np.flatnonzero(measure.labelled & ~np.isnan(own))
    if len(sample) > MEDIAN_SAMPLE:
        sample = np.sort(np.random.default_rng(0).choice(sample, MEDIAN_SAMPLE, replace=False))
    measure.settle(sample)
    margins = (own - measure.other)[sample]
    margins = margins[np.isfinite(margins)]
    median = float(np.median(margins)) if len(margins) else 0.0
    threshold = -flag_at * median if median > 0 else 0.0
    # every image whose margin could be at or under it
    measure.settle(np.flatnonzero(measure.labelled & ~np.isnan(own) & (own - measure.other_upper <= threshold)))
    other = np.where(measure.exact_other, measure.other, measure.other_upper)
    return Nearness(own, other, measure.other_class, measure.exact_other, median, threshold, measure.asker.queries)


@dataclass
class Scores:
    """Per checked image: margin, flag, suggested label, vote share of the
    given label among its neighbours, outlier score."""

    margin: np.ndarray
    flagged: np.ndarray
    suggested: np.ndarray
    vote_share: np.ndarray
    outlier: np.ndarray
    median_margin: float
    threshold: float


def score(graph: Graph, labels: Labels, near: Nearness) -> Scores:
    """The scores from the graph and the nearness."""
    given = labels.of(graph.ids)
    margin = near.own - near.other
    flagged = np.isfinite(margin) & near.exact & (margin <= near.threshold) & (given >= 0)
    pool_given = labels.of(graph.pool_ids)
    valid = graph.neighbours >= 0
    agree = valid & (pool_given[np.maximum(graph.neighbours, 0)] == given[:, None])
    vote_share = agree.sum(axis=1) / np.maximum(valid.sum(axis=1), 1)
    outlier = 1.0 - np.nanmean(np.where(valid, graph.scores, np.nan), axis=1)
    return Scores(margin, flagged, near.other_class, vote_share, outlier, near.median_margin, near.threshold)


# Measured against injected noise


def auroc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of ``scores`` (higher: more likely
    positive), ties counted half (the Mann-Whitney statistic)."""
    scores = np.asarray(scores, np.float64)
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(scores)]])
    for s, e in zip(starts, ends, strict=True):
        ranks[order[s:e]] = (s + e + 1) / 2
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def detection_metrics(suspicion: np.ndarray, flagged: np.ndarray, is_error: np.ndarray) -> dict[str, Any]:
    """Precision, recall and F1 of a flagged set, and the AUROC of a
    suspicion score (higher: more suspect), against the injected flips."""
    tp = int((flagged & is_error).sum())
    precision = tp / max(int(flagged.sum()), 1)
    recall = tp / max(int(is_error.sum()), 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    # an image whose margin could not be measured is listed nowhere: it ranks last here too
    finite = np.where(np.isfinite(suspicion), suspicion, np.nanmin(suspicion[np.isfinite(suspicion)], initial=0) - 1)
    return {
        "flipped": int(is_error.sum()),
        "flagged": int(flagged.sum()),
        "true_positives": tp,
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
        "auroc": round(auroc(finite, is_error), 4),
    }


# One run


def find_label_issues(
    store: Store,
    config: LabelIssuesConfig,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    progress: Callable[[int], None] | None = None,
    on_plan: Callable[[int], None] | None = None,
    keep: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One run over a method's collection; returns label_issues.json.
    ``keep`` (a dict) receives the graph, labels and scores.

    Raises:
        InvalidArgumentError: a gallery without classes, a multivector
            collection, a split it does not hold; CollectionNotFoundError.
    """
    gallery = open_gallery(store, config.gallery, prefix=prefix)
    name = gallery.collection(config.method)
    info = store.info(name)
    if info.multivector:
        raise InvalidArgumentError(f"{name} holds descriptor sets, not one vector per image; pick an embedding method")
    class_names = _classes(gallery, name, info.metadata)
    config = resolve_split(store, config, prefix=prefix)
    split = cast(str, config.split)
    rss_before = _peak_rss_mb()
    t0 = time.perf_counter()
    ids, pool_ids, stored = _checked(store, name, gallery, split, len(class_names))
    if on_plan:
        on_plan(len(ids))
    pool = _pool_filter(split, gallery.has_splits)
    graph = build_graph(
        store, name, ids, pool_ids, pool, config.k, batch_size=config.batch_size, exact=config.exact, progress=progress
    )
    labels = Labels(stored, stored)
    confusable = confusable_classes(graph, labels.of(ids), labels.of(graph.pool_ids), len(class_names))
    if config.noise:
        labels = Labels(stored, inject_noise(stored, ids, config.noise, len(class_names), confusable))
    t_graph = time.perf_counter() - t0
    near = nearness(store, name, graph, labels, batch_size=config.batch_size, exact=config.exact)
    run = _Run(ids, labels.of(ids), score(graph, labels, near), graph, labels, list(class_names))
    seconds = time.perf_counter() - t0
    result: dict[str, Any] = {
        "task": "label-issues",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "settings": {**asdict(config), "m": M, "flag_at": FLAG_AT, "hnsw_ef": HNSW_EF},
        "backend": store.location,
        "collection": name,
        "collection_metadata": dict(info.metadata),
        "scope": gallery.scope(split),
        "pool": "the train split" if gallery.has_splits and split == "test" else "the images checked",
        "classes": list(class_names),
        "summary": summarize(ids, run.given, run.scores, class_names),
        "cost": {
            "seconds": round(seconds, 2),
            "seconds_graph": round(graph.seconds, 2),
            "seconds_scores": round(seconds - t_graph, 2),
            "class_queries": near.filtered_queries,
            "images_per_second": round(len(ids) / max(seconds, 1e-9), 1),
            "peak_rss_mb": round(_peak_rss_mb(), 1),
            "peak_rss_mb_before": round(rss_before, 1),
        },
        # the likeliest first: the flagged images, then the next by margin (where few are flagged)
        "suspects": run.listed(np.flatnonzero(np.isfinite(run.scores.margin)), run.scores.margin),
        "outliers": run.listed(np.argsort(-run.scores.outlier, kind="stable")[:LISTED], -run.scores.outlier),
    }
    if config.noise:
        flips = labels.flipped()
        result["noise"] = {
            **asdict(config.noise),
            "confusable": {class_names[c]: class_names[int(d)] for c, d in enumerate(confusable)},
            "flipped": len(flips),
        }
        is_error = np.array([int(i) in flips for i in ids])
        result["detection"] = detection_metrics(-run.scores.margin, run.scores.flagged, is_error)
    if keep is not None:
        keep.update(graph=graph, labels=labels, scores=run.scores, ids=ids, class_names=class_names)
    return result


def _classes(gallery, name: str, metadata: dict[str, Any]) -> list[str]:
    """The gallery's class names; refuses a gallery of fewer than two."""
    class_names = gallery.classes(metadata)
    if len(class_names) < 2:
        raise InvalidArgumentError(
            f"{name} has {'no classes' if not class_names else 'one class'}: label issues need images that "
            "carry a class, of two classes at least (a folder gallery's classes are its first-level subfolders)"
        )
    return list(class_names)


def _checked(store: Store, name: str, gallery, split: str, n_classes: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """The ids checked (those with a class), the sorted ids of the images
    their neighbours come from, and the stored labels."""
    if gallery.has_splits:
        ids = _scope(store, name, split)
        pool_ids = _scope(store, name, "train") if split == "test" else ids
    else:
        ids = pool_ids = store.ids(name)
    stored = read_labels(store, name, n_classes)
    ids = np.array([i for i in ids.tolist() if i in stored], np.int64)  # an image without a class is not checked
    if len(ids) < 2:
        raise InvalidArgumentError(f"{name} holds fewer than 2 images with a class in {gallery.scope(split)}")
    return ids, np.sort(pool_ids), stored


def summarize(ids: np.ndarray, given: np.ndarray, scores: Scores, class_names) -> dict[str, Any]:
    """The counts report.md leads with: flagged images, and per given /
    suggested class pair."""
    flagged = scores.flagged
    pairs: dict[tuple[int, int], int] = {}
    for g, s in zip(given[flagged], scores.suggested[flagged], strict=True):
        pairs[(int(g), int(s))] = pairs.get((int(g), int(s)), 0) + 1
    per_class = [
        {
            "class": cname,
            "checked": int((given == c).sum()),
            "flagged": int((flagged & (given == c)).sum()),
            "suggested": int((flagged & (scores.suggested == c)).sum()),
        }
        for c, cname in enumerate(class_names)
    ]
    return {
        "images_checked": int(len(ids)),
        "flagged": int(flagged.sum()),
        "flagged_share": round(float(flagged.mean()), 5),
        "median_margin": round(scores.median_margin, 5),
        "threshold": round(scores.threshold, 5),
        "pairs": [
            {"given": class_names[g], "suggested": class_names[s], "count": n}
            for (g, s), n in sorted(pairs.items(), key=lambda kv: (-kv[1], kv[0]))
        ],
        "per_class": per_class,
    }


@dataclass
class _Run:
    """What one run found, as label_issues.json lists it."""

    ids: np.ndarray
    given: np.ndarray
    scores: Scores
    graph: Graph
    labels: Labels
    class_names: list[str]

    def _name(self, c: int) -> str | None:
        return self.class_names[c] if c >= 0 else None

    def listed(self, rows, key: np.ndarray) -> list[dict[str, Any]]:
        """The rows, lowest ``key`` first (at most LISTED), each with its
        neighbours."""
        rows = sorted((int(r) for r in rows), key=lambda r: (key[r], int(self.ids[r])))[:LISTED]
        pool_given = self.labels.of(self.graph.pool_ids)
        s = self.scores
        out = []
        for r in rows:
            nb = [int(p) for p in self.graph.neighbours[r, :SHOWN_NEIGHBOURS] if p >= 0]
            margin = s.margin[r]
            out.append(
                {
                    "id": int(self.ids[r]),
                    "given": self._name(int(self.given[r])),
                    "suggested": self._name(int(s.suggested[r])),
                    "margin": None if not np.isfinite(margin) else round(float(margin), 5),
                    "vote_share": round(float(s.vote_share[r]), 4),
                    "outlier": round(float(s.outlier[r]), 5),
                    "flagged": bool(s.flagged[r]),
                    "neighbours": [
                        {
                            "id": int(self.graph.pool_ids[p]),
                            "class": self._name(int(pool_given[p])),
                            "score": round(float(sc), 5),
                        }
                        for p, sc in zip(nb, self.graph.scores[r, : len(nb)], strict=True)
                    ],
                }
            )
        return out
