"""Modes suite: every search mode on the collections ``fmsearch ingest``
built, end to end, timed round-robin in one process."""

from __future__ import annotations

import logging
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from fmsearch.errors import CollectionNotFoundError, InvalidArgumentError
from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.timing import BenchResult, check_first_stage, environment
from fmsearch.images.fmnist import load_split
from fmsearch.search.mode import SearchMode
from fmsearch.search.searcher import Searcher
from fmsearch.store import Store, schema

logger = logging.getLogger(__name__)

#: what the suite measures when no methods are named
DEFAULT_METHODS = ("pixels", "autoencoder", "siamese", "proxy", "ensemble")
#: the query expansions measured for every method (--expand N)
EXPANSIONS = (3, 10)


def single_method_modes(method: str) -> list[SearchMode]:
    """The plain collection, its expanded queries and every quantised search of one method."""
    return [
        SearchMode(method),
        *(SearchMode(method, expand=n) for n in EXPANSIONS),
        SearchMode(method, quantization="int8"),
        SearchMode(method, quantization="int8", oversampling=1.0),
        SearchMode(method, quantization="int8", rescore=False),
        SearchMode(method, quantization="binary"),
        SearchMode(method, quantization="binary", oversampling=4.0),
        SearchMode(method, quantization="binary", rescore=False),
    ]


def combined_modes() -> list[SearchMode]:
    """Cross-method rescoring and fusions of the trained methods."""
    return [
        SearchMode("pixels", rescore_with="siamese"),
        SearchMode("autoencoder", rescore_with="siamese"),
        SearchMode("autoencoder+siamese"),
        SearchMode("autoencoder+siamese", fusion_weights=(1.0, 2.0)),
        SearchMode("autoencoder+siamese", fusion="dbsf"),
        SearchMode("pixels+autoencoder+siamese"),
        SearchMode("siamese+proxy"),
    ]


def _plan(searcher: Searcher, methods: tuple[str, ...]) -> tuple[list[dict[str, Any]], list[dict[str, str]]]:
    """The modes whose collections are built (with their bytes), and the
    others with why they are skipped."""
    runs, skipped = [], []
    modes = [m for method in methods for m in single_method_modes(method)]
    modes += [m for m in combined_modes() if set(m.methods) | {m.rescore_with or m.methods[0]} <= set(methods)]
    for mode in modes:
        mode = mode.with_effective_oversampling()
        try:
            infos = [searcher.collection(m, mode.quantization) for m in mode.methods]
            infos += [searcher.collection(mode.rescore_with)] if mode.rescore_with else []
        except (CollectionNotFoundError, InvalidArgumentError) as err:  # not built, or not offered
            skipped.append({"mode": mode.label, "why": str(err)})
            continue
        disk = [searcher.store.disk_bytes(i.name) for i in infos]
        known = [d for d in disk if d is not None]
        runs.append(
            {
                "mode": mode,
                "base": SearchMode(mode.methods[0]).label,
                "bytes_searched": sum(
                    schema.vector_bytes(i.dim, mode.quantization if j < len(mode.methods) else "none")["searched"]
                    for j, i in enumerate(infos)
                ),
                "bytes_float32": sum(4 * i.dim for i in infos),
                "disk_bytes_per_point": None
                if len(known) < len(disk)
                else sum(d / max(i.points, 1) for d, i in zip(known, infos, strict=False)),
            }
        )
    return runs, skipped


def run_modes_bench(
    store: Store,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    methods: tuple[str, ...] | None = None,
    queries: int = 200,
    k: int = 10,
    data_dir=None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Every search mode on the collections ``fmsearch ingest`` built, end to
    end (embed one test image + search, k=10), in the same process.

    The modes are timed round-robin (each query image through every mode
    before the next image), so machine noise falls on all of them alike, in
    an order shuffled per image (seed 0): in a fixed order the first mode of
    each method ran its network cold, just after another method's, and
    timed slower than the modes after it;
    each p50 is reported as a ratio to the plain query of the same first
    method. Bytes: what a search reads per vector (float32, int8 or one bit
    per dimension) and the collection's bytes on disk per point (originals,
    quantised copy, HNSW graph and payload together; where the store can
    tell). Modes whose collections are not built are listed as skipped, with why.
    """
    methods = methods or DEFAULT_METHODS
    check_first_stage(methods, "is a rerank stage (the rerank suite), not a search mode")
    images = load_split("test", data_dir).images[:queries]
    searcher = Searcher(store, prefix=prefix, data_dir=data_dir)  # every mode shares its loaded models
    runs, skipped = _plan(searcher, methods)
    if not runs:
        raise CollectionNotFoundError("no collection to benchmark; run `fmsearch ingest` first")
    log(f"timing {len(runs)} modes round-robin over {len(images)} test images ...")
    for run in runs:  # warm-up: models loaded, shards opened
        searcher.search(run["mode"], image=images[0], k=k)
    times: list[list[float]] = [[] for _ in runs]
    order, rng = list(range(len(runs))), random.Random(0)
    for img in images:
        rng.shuffle(order)
        for j in order:
            t0 = time.perf_counter()
            searcher.search(runs[j]["mode"], image=img, k=k)
            times[j].append((time.perf_counter() - t0) * 1000)
    p50 = {run["mode"].label: statistics.median(t) for run, t in zip(runs, times, strict=True)}
    rows = []
    for run in runs:
        mode, base = run["mode"], p50.get(run["base"])
        rows.append(
            {
                "mode": mode.label,
                "settings": mode.settings(),
                "p50_ms": p50[mode.label],
                "vs_plain": None if base is None else p50[mode.label] / base,
                **{key: run[key] for key in ("bytes_searched", "bytes_float32", "disk_bytes_per_point")},
            }
        )
    data = {
        "environment": environment(),
        "backend": store.location,
        "queries": len(images),
        "k": k,
        "modes": rows,
        "skipped": skipped,
    }
    return BenchResult("modes", data, _table(rows), tuple(skipped))


def _table(rows: list[dict[str, Any]]) -> str:
    head = ["mode", "p50 ms", "vs plain query of its first method", "bytes / vector searched", "disk bytes / point"]
    return markdown.table(
        head,
        [
            [
                r["mode"],
                f"{r['p50_ms']:.2f}",
                "-" if r["vs_plain"] is None else f"{r['vs_plain']:.2f}x",
                r["bytes_searched"],
                "-" if r["disk_bytes_per_point"] is None else f"{r['disk_bytes_per_point']:.0f}",
            ]
            for r in rows
        ],
    )
