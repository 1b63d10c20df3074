"""Scale suite: how ingest, memory, latency and recall grow with the gallery,
from 60,000 points to millions, against hnswlib built on the same vectors.

Galleries are made from FMNIST by :mod:`~fmsearch.evaluation.bench.galleries`
(jittered real embeddings, or augmented images embedded for real). Each size
is built into a fresh Edge collection through the ingest protocol, closed,
reopened as a service would open it, and queried one at a time and in
batches, without a filter, with a class filter (the query's own class, and
another one) and with a filter that keeps 1% of the gallery. Recall@10 is
against exact search with the same filter; hnswlib (M and ef_construction
as the store's) is built and queried on the same vectors in the same run.
"""

from __future__ import annotations

import ctypes
import logging
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.evaluation import markdown, metrics
from fmsearch.evaluation.bench import galleries
from fmsearch.evaluation.bench.timing import (
    BenchResult,
    batch_qps,
    check_first_stage,
    environment,
    latency_ms,
    mean_overlap,
    recall_at_k,
)
from fmsearch.images.files import encode_png
from fmsearch.images.fmnist import load_split
from fmsearch.ingest.rebuild import write_target
from fmsearch.models.registry import get_embedder
from fmsearch.store import QuantizationParams, QueryFilter, calibration, open_store, planner, schema
from fmsearch.store.base import DEFAULT_HNSW_EF

logger = logging.getLogger(__name__)

METHODS = ("pixels", "siamese")
SIZES = (60_000, 300_000, 1_000_000)
GROUP = "group"
#: the filtered searches measured: (hnsw_ef, ACORN on)
FILTERED_SETTINGS = tuple((ef, acorn) for acorn in (False, True) for ef in (DEFAULT_HNSW_EF, 256, 1024))
#: a quantised collection is also searched at these oversamplings
QUANT_OVERSAMPLINGS = (8, 16, 32)
#: hnswlib's filtered search (it walks through filtered-out points too), at these ef
HNSWLIB_FILTERED_EF = (DEFAULT_HNSW_EF, 256, 1024)
FILTERS = ("own class", "other class", "1% group")
#: the filtered searches run with no options: the store's plan (fmsearch.store.planner)
DEFAULT = "default"
#: the unfiltered search at ef 128 given: no plan made (today's path before the planner)
_UNPLANNED = "plain ef128 as asked"
_EMBED_CHUNK = 10_000
_WRITE_BATCH = 1000


@dataclass
class _Gallery:
    """The largest gallery of one kind and method; a size is its prefix."""

    kind: str
    method: str
    vectors: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    sources: np.ndarray
    images: np.ndarray | None = None
    #: (points embedded, seconds so far), for the images kind
    embed_clock: list[tuple[int, float]] = field(default_factory=list)

    def embed_s(self, n: int) -> float | None:
        return next((s for done, s in self.embed_clock if done >= n), None)


def _gallery(kind: str, embedder, n: int, train, seed: int, log: Callable[[str], None]) -> _Gallery:
    method, base = embedder.name, min(n, len(train))
    src = galleries.sources(n, base)
    common = dict(kind=kind, method=method, labels=train.labels[src], groups=galleries.groups(n, seed), sources=src)
    if kind == "vectors":
        log(f"{method}: embedding the {base:,} train images, jittered to {n:,} points ...")
        return _Gallery(vectors=galleries.jittered(embedder.embed(train.images[:base]), n, seed), **common)
    log(f"{method}: augmenting and embedding {n:,} images ...")
    vectors, images = np.empty((n, embedder.dim), np.float32), np.empty((n, 28, 28), np.uint8)
    clock, spent = [], 0.0
    for lo, block in galleries.augmented(train.images, n, seed):
        images[lo : lo + len(block)] = block
        for c in range(0, len(block), _EMBED_CHUNK):
            t0 = time.perf_counter()
            part = embedder.embed(block[c : c + _EMBED_CHUNK])
            spent += time.perf_counter() - t0
            vectors[lo + c : lo + c + len(part)] = part
            clock.append((lo + c + len(part), spent))
    return _Gallery(vectors=vectors, images=images, embed_clock=clock, **common)


def _queries(embedder, test, count: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The timed queries, their labels, and as many other test images that
    warm a freshly opened collection up first."""
    pick = np.random.default_rng(seed).choice(len(test), size=2 * count, replace=False)
    vectors = embedder.embed(test.images[pick])
    return vectors[:count], test.labels[pick[:count]], vectors[count:]


def _filters(labels: np.ndarray, seed: int) -> dict[str, list[QueryFilter]]:
    """Per query: its own class, another class, one of the 1% groups."""
    rng = np.random.default_rng([seed, 7])
    other = (labels + rng.integers(1, 10, len(labels))) % 10
    group = rng.integers(0, galleries.GROUPS, len(labels))
    return {
        "own class": [QueryFilter(labels=(int(c),)) for c in labels],
        "other class": [QueryFilter(labels=(int(c),)) for c in other],
        "1% group": [QueryFilter(fields=((GROUP, (int(g),)),)) for g in group],
    }


def _references(g: _Gallery, n: int, queries: np.ndarray, filters, k: int = 10) -> dict[str, np.ndarray]:
    """Exact top-k ids per query: unfiltered and under each filter."""
    out = {name: np.empty((len(queries), k), np.int64) for name in ("none", *filters)}
    masks = {
        "own class": lambda f: g.labels[:n] == f.labels[0],
        "other class": lambda f: g.labels[:n] == f.labels[0],
        "1% group": lambda f: g.groups[:n] == f.fields[0][1][0],
    }
    for lo in range(0, len(queries), 50):
        scores = queries[lo : lo + 50] @ g.vectors[:n].T
        out["none"][lo : lo + 50] = metrics.top_k(scores, k)
        for name, per_query in filters.items():
            for i in range(lo, min(lo + 50, len(queries))):
                s = np.where(masks[name](per_query[i]), scores[i - lo], -np.inf)
                out[name][i] = metrics.top_k(s[None], k)[0]
    return out


def _rss_mib(key: str = "VmRSS") -> float:
    """The process's resident MiB: all of it (``VmRSS``), its peak
    (``VmHWM``), or its heap apart from mapped files (``RssAnon``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _settle() -> float:
    """Give freed heap back to the system, reset the peak; the RSS after."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:  # not glibc, or no /proc: the figures are then upper bounds
        pass
    return _rss_mib()


def _ingest(store, spec: schema.CollectionSpec, g: _Gallery, n: int) -> dict[str, Any]:
    """Upsert the first ``n`` points (payload made on the way, as ingest
    does, with the image where the kind has one), then index and calibrate
    the filtered walk, as ingest's ``build_index`` does (timed apart)."""
    with write_target(store, spec) as target:
        t0 = time.perf_counter()
        for lo in range(0, n, _WRITE_BATCH):
            ids = range(lo, min(n, lo + _WRITE_BATCH))
            payloads = [
                {
                    **schema.make_payload(
                        "train",
                        int(g.sources[i]),
                        int(g.labels[i]),
                        "" if g.images is None else encode_png(g.images[i]),
                    ),
                    GROUP: int(g.groups[i]),
                }
                for i in ids
            ]
            store.upsert(target.name, list(ids), g.vectors[lo : lo + len(ids)], payloads)
        t1 = time.perf_counter()
        store.finalize(target.name)
        t2 = time.perf_counter()
        found = calibration.calibrate(store, target.name)  # what ingest's build_index does after the graph
        t3 = time.perf_counter()
        if store.count(target.name) != n:
            raise RuntimeError(f"stored {store.count(target.name)} of {n} points")
        store.set_metadata(target.name, {schema.META_COMPLETE: True})
    return {"upsert_s": t1 - t0, "index_s": t2 - t1, "calibrate_s": t3 - t2, "calibration": found}


def _search(
    store,
    name: str,
    queries: np.ndarray,
    warm: np.ndarray,
    refs: dict[str, np.ndarray],
    filters,
    quantization: str = "none",
) -> dict[str, Any]:
    """Latency, throughput and recall: unfiltered, then each filter at each
    setting. A quantised collection is searched as the product searches it:
    rescored, at its default oversampling. First, other queries warm the
    collection up: the first ones after opening fault its pages in (their
    p50/p99 are kept as ``cold``)."""
    quant = None if quantization == "none" else QuantizationParams(True, schema.DEFAULT_OVERSAMPLING[quantization])

    def one(ref: np.ndarray, flt=None, ef=None, acorn=False, q=quant) -> dict[str, Any]:
        hits: list = []
        plans: list = []
        t = latency_ms(
            lambda i: hits.append(
                store.query(
                    name,
                    queries[i],
                    10,
                    None if flt is None else flt[i],
                    hnsw_ef=ef,
                    acorn=acorn,
                    quantization=q,
                    with_payload=False,
                    plans=plans,
                )
            ),
            range(len(queries)),
        )
        ran = Counter(f"{p.strategy} ef {p.hnsw_ef}" if p.strategy.endswith("graph") else p.strategy for p in plans[1:])
        return {
            "p50_ms": t["p50_ms"],
            "p99_ms": t["p99_ms"],
            "recall_at_10": recall_at_k(hits[1:], ref),
            "strategies": dict(ran),
        }

    cold = latency_ms(
        lambda i: store.query(name, warm[i], 10, quantization=quant, with_payload=False), range(len(warm))
    )
    out: dict[str, Any] = {"cold": {"p50_ms": cold["p50_ms"], "p99_ms": cold["p99_ms"]}}
    out |= {"plain": one(refs["none"]), "plain ef64": one(refs["none"], ef=64)}
    # the same unfiltered search with its ef given: past the planner, as before it
    out[_UNPLANNED] = one(refs["none"], ef=DEFAULT_HNSW_EF)
    if quant is not None:  # how far the quantised shortlist must reach at this size
        for o in QUANT_OVERSAMPLINGS:
            out[f"plain oversampling {o:g}"] = one(refs["none"], q=QuantizationParams(True, float(o)))
    out["plain"]["batch_qps"] = batch_qps(
        lambda b: store.query_batch(name, b, 10, quantization=quant, with_payload=False), queries
    )
    for fname, flt in filters.items():
        out[fname] = {DEFAULT: one(refs[fname], flt)}  # the filter-aware default: no options
        out[fname] |= {_setting(ef, acorn): one(refs[fname], flt, ef, acorn) for ef, acorn in FILTERED_SETTINGS}
    return out


def _setting(ef: int, acorn: bool) -> str:
    return f"ef {ef}{' + ACORN' if acorn else ''}"


def _hnswlib(
    vectors: np.ndarray, queries: np.ndarray, refs: dict[str, np.ndarray], labels: np.ndarray, filters, seed: int
) -> dict[str, Any]:
    """The reference engine on the same vectors: build seconds (every core),
    memory, single-query p50/p99, batch q/s and recall@10 at the store's ef;
    and the recall of its filtered search under the class filters."""
    import hnswlib

    rss0 = _settle()
    index = hnswlib.Index(space="ip", dim=vectors.shape[1])
    t0 = time.perf_counter()
    index.init_index(
        max_elements=len(vectors), M=schema.HNSW_M, ef_construction=schema.HNSW_EF_CONSTRUCT, random_seed=seed
    )
    index.add_items(vectors, np.arange(len(vectors)), num_threads=os.cpu_count() or 1)
    build_s = time.perf_counter() - t0
    index.set_ef(DEFAULT_HNSW_EF)
    found: list = []
    t = latency_ms(
        lambda i: found.append(index.knn_query(queries[i : i + 1], 10, num_threads=1)[0][0]), range(len(queries))
    )
    qps = batch_qps(lambda b: index.knn_query(b, 10), queries)
    ids = np.asarray(found[1:], np.int64)
    out: dict[str, Any] = {
        "build_s": build_s,
        "rss_mib": _rss_mib() - rss0,
        "p50_ms": t["p50_ms"],
        "p99_ms": t["p99_ms"],
        "batch_qps": qps,
        "recall_at_10": mean_overlap(ids, refs["none"]),
    }
    for fname in ("own class", "other class"):
        out[fname] = {}
        for ef in HNSWLIB_FILTERED_EF:
            index.set_ef(ef)
            got = [
                index.knn_query(queries[i : i + 1], 10, num_threads=1, filter=lambda j, c=f.labels[0]: labels[j] == c)[
                    0
                ][0]
                for i, f in enumerate(filters[fname])
            ]
            out[fname][f"ef {ef}"] = mean_overlap(np.asarray(got, np.int64), refs[fname])
    return out


def _measure(
    g: _Gallery,
    n: int,
    queries,
    q_labels,
    warm,
    spec_args: dict[str, Any],
    tmp: str,
    seed: int,
    log: Callable[[str], None],
    reference: bool = True,
) -> dict[str, Any]:
    """One size: build, reopen, query; hnswlib beside it (``reference``)."""
    vectors = g.vectors[:n]
    filters = _filters(q_labels, seed)
    refs = _references(g, n, queries, filters)
    spec = schema.CollectionSpec(
        f"scale_{g.kind}_{g.method}_{n}",
        dim=vectors.shape[1],
        payload_indexes={**schema.PAYLOAD_INDEXES, GROUP: "integer"},
        **spec_args,
    )
    home = f"{tmp}/edge"
    rss0 = _settle()
    with open_store(None, home=home) as store:
        row: dict[str, Any] = {
            "kind": g.kind,
            "method": g.method,
            "points": n,
            "dim": int(vectors.shape[1]),
            "embed_s": g.embed_s(n),
            **_ingest(store, spec, g, n),
        }
        row["build_peak_rss_mib"] = _rss_mib("VmHWM") - rss0
        disk = store.disk_bytes(spec.name)
        row["disk_mib"] = None if disk is None else disk / 2**20
    rss1, anon1 = _settle(), _rss_mib("RssAnon")
    with open_store(None, home=home) as store:  # opened afresh, as a service would
        row["search"] = _search(store, spec.name, queries, warm, refs, filters, spec.quantization)
        row["serve_rss_mib"] = _rss_mib() - rss1
        # the heap, apart from the mapped files' pages (which the kernel may evict)
        row["serve_rss_anon_mib"] = _rss_mib("RssAnon") - anon1
        store.delete(spec.name)
    total = (row["embed_s"] or 0) + row["upsert_s"] + row["index_s"]
    row["points_per_s"] = n / total
    log(
        f"{g.kind} {g.method} {n:,}: upsert {row['upsert_s']:.1f} s, index {row['index_s']:.1f} s, "
        f"p99 {row['search']['plain']['p99_ms']:.2f} ms, recall@10 {row['search']['plain']['recall_at_10']:.3f}"
    )
    row["hnswlib"] = None
    try:
        if reference:
            row["hnswlib"] = _hnswlib(vectors, queries, refs, g.labels[:n], filters, seed)
            row["build_vs_hnswlib"] = (row["upsert_s"] + row["index_s"]) / row["hnswlib"]["build_s"]
            log(f"  hnswlib: build {row['hnswlib']['build_s']:.1f} s, recall@10 {row['hnswlib']['recall_at_10']:.3f}")
    except ImportError:
        pass
    return row


def run_scale_bench(
    *,
    sizes: tuple[int, ...] = SIZES,
    kinds: tuple[str, ...] = galleries.KINDS,
    methods: tuple[str, ...] = METHODS,
    queries: int = 300,
    linked_fields: tuple[str, ...] | None = None,
    on_disk: bool = False,
    quantization: str = "none",
    full_scan_threshold_kb: int = schema.FULL_SCAN_THRESHOLD_KB,
    reference: bool = True,
    plot_dir: str | os.PathLike | None = None,
    data_dir=None,
    seed: int = 0,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """The scale series: every kind, method and size (see the module doc);
    ``reference=False`` leaves hnswlib out."""
    check_first_stage(methods, "is a rerank stage (the rerank suite), not a gallery the scale suite builds")
    spec_args: dict[str, Any] = {
        "on_disk": on_disk,
        "quantization": quantization,
        "full_scan_threshold_kb": full_scan_threshold_kb,
    }
    if linked_fields is not None:
        spec_args["linked_fields"] = linked_fields
    check = schema.CollectionSpec(
        "check", dim=1, payload_indexes={**schema.PAYLOAD_INDEXES, GROUP: "integer"}, **spec_args
    )  # a bad setting fails now, not after the first gallery is made
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    rows = []
    skipped: tuple[dict[str, str], ...] = ()
    with tempfile.TemporaryDirectory(prefix="fmsearch-scale-") as tmp:
        for kind in kinds:
            for method in methods:
                embedder = get_embedder(method)
                g = _gallery(kind, embedder, max(sizes), train, seed, log)
                qv, ql, warm = _queries(embedder, test, queries, seed)
                for n in sorted(sizes):
                    rows.append(_measure(g, n, qv, ql, warm, spec_args, tmp, seed, log, reference))
                del g
    if not reference:
        skipped = ({"mode": "hnswlib", "why": "left out (--no-reference)"},)
    elif any(r["hnswlib"] is None for r in rows):
        skipped = ({"mode": "hnswlib", "why": "not installed (pip install '.[scale]')"},)
    settings = {
        "hnsw_m": schema.HNSW_M,
        "ef_construct": schema.HNSW_EF_CONSTRUCT,
        "hnsw_ef": DEFAULT_HNSW_EF,
        "linked_fields": list(check.linked_fields),
        "on_disk": on_disk,
        "quantization": quantization,
        "full_scan_threshold_kb": full_scan_threshold_kb,
        "planner": {
            "scan_budget": planner.SCAN_BUDGET,
            "scan_point_dims": planner.SCAN_POINT_DIMS,
            "wide_below_share": planner.WIDE_BELOW_SHARE,
            "calibrate_from": calibration.CALIBRATE_FROM,
            "target_recall": calibration.TARGET_RECALL,
            "calibration_sample": calibration.SAMPLE,
        },
        "jitter": galleries.JITTER,
        "queries": queries,
        "seed": seed,
    }
    data = {"k": 10, "settings": settings, "environment": environment(), "rows": rows}
    if plot_dir is not None and rows:
        data["plot"] = str(plot(data, Path(plot_dir) / "scale.png"))
    tables = (_table(rows), _default_table(rows), _filter_table(rows), sizing_table(rows))
    return BenchResult("scale", data, "\n\n".join(tables), skipped)


def _table(rows: list[dict[str, Any]]) -> str:
    head = [
        "gallery",
        "N",
        "embed s",
        "upsert s",
        "index s",
        "points/s",
        "hnswlib build s",
        "build / hnswlib",
        "disk MiB",
        "serve RSS MiB (heap)",
        "p50 / p99 ms (first pass p99)",
        "batch q/s",
        "recall@10",
        "hnswlib p99 ms / recall",
        f"own class / other class / 1% recall (ef {DEFAULT_HNSW_EF})",
    ]
    cells = []
    for r in rows:
        s, h = r["search"], r["hnswlib"]
        base = _setting(DEFAULT_HNSW_EF, False)
        cells.append(
            [
                f"{r['kind']} {r['method']}",
                f"{r['points']:,}",
                "-" if r["embed_s"] is None else f"{r['embed_s']:.1f}",
                f"{r['upsert_s']:.1f}",
                f"{r['index_s']:.1f}",
                f"{r['points_per_s']:,.0f}",
                "-" if h is None else f"{h['build_s']:.1f}",
                "-" if h is None else f"{r['build_vs_hnswlib']:.2f}x",
                f"{r['disk_mib']:.0f}",
                f"{r['serve_rss_mib']:.0f} ({r['serve_rss_anon_mib']:.0f})",
                f"{s['plain']['p50_ms']:.2f} / {s['plain']['p99_ms']:.2f} ({s['cold']['p99_ms']:.2f})",
                f"{s['plain']['batch_qps']:,.0f}",
                f"{s['plain']['recall_at_10']:.3f}",
                "-" if h is None else f"{h['p99_ms']:.2f} / {h['recall_at_10']:.3f}",
                " / ".join(f"{s[f][base]['recall_at_10']:.3f}" for f in FILTERS),
            ]
        )
    return markdown.table(head, cells)


def _default_table(rows: list[dict[str, Any]]) -> str:
    """The filter-aware default (no options) per filter, beside today's
    fixed ef 128 and the unfiltered search: recall@10, p99, what ran."""
    head = [
        "gallery",
        "N",
        "filter",
        "default recall@10",
        "default p99 ms",
        "strategy ran (queries)",
        f"ef {DEFAULT_HNSW_EF} recall@10 (p99 ms)",
        "calibrated ef",
    ]
    cells = []
    base = _setting(DEFAULT_HNSW_EF, False)
    for r in rows:
        s = r["search"]
        cal = r.get("calibration")
        for f in ("none", *FILTERS):
            d, fixed = (s["plain"], s.get(_UNPLANNED)) if f == "none" else (s[f][DEFAULT], s[f][base])
            cells.append(
                [
                    f"{r['kind']} {r['method']}",
                    f"{r['points']:,}",
                    "no filter" if f == "none" else f,
                    f"{d['recall_at_10']:.3f}",
                    f"{d['p99_ms']:.2f}",
                    ", ".join(f"{k} ({v})" for k, v in d.get("strategies", {}).items()),
                    "-" if fixed is None else f"{fixed['recall_at_10']:.3f} ({fixed['p99_ms']:.2f})",
                    "-" if not cal else f"{cal['ef']} ({cal['recall_at_10']:.3f})",
                ]
            )
    return markdown.table(head, cells)


def _filter_table(rows: list[dict[str, Any]]) -> str:
    """Filtered search per setting: recall@10 and p99 ms."""
    head = [
        "gallery",
        "N",
        "filter",
        DEFAULT,
        *(_setting(ef, a) for ef, a in FILTERED_SETTINGS),
        f"hnswlib filtered, ef {' / '.join(map(str, HNSWLIB_FILTERED_EF))}",
    ]
    cells = []
    for r in rows:
        for f in FILTERS:
            h = (r["hnswlib"] or {}).get(f)
            cells.append(
                [
                    f"{r['kind']} {r['method']}",
                    f"{r['points']:,}",
                    f,
                    *(f"{v['recall_at_10']:.3f} ({v['p99_ms']:.2f} ms)" for v in r["search"][f].values()),
                    "-" if h is None else " / ".join(f"{v:.3f}" for v in h.values()),
                ]
            )
    return markdown.table(head, cells)


def sizing_table(rows: list[dict[str, Any]]) -> str:
    """The per-point constants of each gallery at its largest size: what
    the sizing of a cluster (docs/scale.md) multiplies."""
    head = [
        "gallery",
        "at N",
        "disk B/point",
        "serving RSS B/point",
        "build peak RSS B/point",
        "upsert us/point",
        "index us/point",
        "query p50 ms",
    ]
    cells = []
    for key in dict.fromkeys((r["kind"], r["method"]) for r in rows):
        r = max((r for r in rows if (r["kind"], r["method"]) == key), key=lambda r: r["points"])
        n = r["points"]
        cells.append(
            [
                " ".join(key),
                f"{n:,}",
                f"{r['disk_mib'] * 2**20 / n:,.0f}",
                f"{r['serve_rss_mib'] * 2**20 / n:,.0f}",
                f"{r['build_peak_rss_mib'] * 2**20 / n:,.0f}",
                f"{r['upsert_s'] * 1e6 / n:.1f}",
                f"{r['index_s'] * 1e6 / n:.1f}",
                f"{r['search']['plain']['p50_ms']:.2f}",
            ]
        )
    return markdown.table(head, cells)


def plot(data: dict[str, Any], path: Path) -> Path:
    """Every figure of the table against N, one line per gallery kind and method."""
    from matplotlib.figure import Figure

    rows = data["rows"]
    fig = Figure(figsize=(13, 7.5), dpi=100)
    axes = fig.subplots(2, 3).ravel()
    base = _setting(DEFAULT_HNSW_EF, False)

    def plain(key):
        return lambda r: r["search"]["plain"][key]

    def ref(key):
        return lambda r: r["hnswlib"] and r["hnswlib"][key]

    panels = [  # title, Qdrant's figure, the dashed reference beside it and its name
        (
            "ingest seconds (embed + upsert + index)",
            lambda r: (r["embed_s"] or 0) + r["upsert_s"] + r["index_s"],
            ref("build_s"),
            "hnswlib build",
        ),
        ("single-query p99 ms", plain("p99_ms"), ref("p99_ms"), "hnswlib"),
        ("batch queries/s", plain("batch_qps"), ref("batch_qps"), "hnswlib"),
        ("recall@10: none (o), own class (^), other class (v), 1% (s); hnswlib (x)", None, None, ""),
        ("disk MiB", lambda r: r["disk_mib"], None, ""),
        (
            "resident MiB: serving (o), peak while building (^)",
            lambda r: r["serve_rss_mib"],
            lambda r: r["build_peak_rss_mib"],
            "build peak",
        ),
    ]
    keys = list(dict.fromkeys((r["kind"], r["method"]) for r in rows))
    for ax, (title, qdrant, other, other_name) in zip(axes, panels, strict=False):
        for color, key in zip(("C0", "C1", "C2", "C3", "C4", "C5"), keys, strict=False):
            rs = [r for r in rows if (r["kind"], r["method"]) == key]
            xs, label = [r["points"] for r in rs], " ".join(key)
            if qdrant is None:
                for marker, f in zip("o^vs", ("plain", *FILTERS), strict=False):
                    ys = [
                        r["search"][f]["recall_at_10"] if f == "plain" else r["search"][f][base]["recall_at_10"]
                        for r in rs
                    ]
                    ax.plot(xs, ys, marker=marker, color=color, label=label if marker == "o" else None)
                if all(r["hnswlib"] for r in rs):
                    ax.plot(xs, [r["hnswlib"]["recall_at_10"] for r in rs], marker="x", ls="--", color=color)
                continue
            ax.plot(xs, [qdrant(r) for r in rs], marker="o", color=color, label=f"{label} (Qdrant Edge)")
            if other is not None and all(other(r) for r in rs):
                ax.plot(xs, [other(r) for r in rs], marker="^", ls="--", color=color, label=f"{label} ({other_name})")
        ax.set_xscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("gallery points")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6)
    env = data["environment"]
    fig.suptitle(f"fmsearch bench scale ({env['date'][:10]}, {env['cpus']} cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
