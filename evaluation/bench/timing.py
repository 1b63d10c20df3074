"""What every benchmark suite shares: its result, timers, and the machine.

The machines these run on are noisy, so every figure that matters is a
ratio of two measurements taken in the same process on the same vectors,
not an absolute.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import FmsearchError, InvalidArgumentError
from fmsearch.evaluation import metrics
from fmsearch.ingest.rebuild import write_target
from fmsearch.store import QueryFilter, Store, schema
from fmsearch.store.schema import CollectionSpec

_WRITE_BATCH = 1000


@dataclass(frozen=True)
class BenchResult:
    """One suite's measurements (written as JSON) and their table.

    Attributes:
        suite: the suite's name; the JSON goes to ``<suite>.json``.
        data: every figure, with the settings and the environment.
        table: the figures as a markdown table, for a terminal or a README.
        skipped: what was not measured, and why (``{"mode", "why"}``).
    """

    suite: str
    data: dict[str, Any]
    table: str
    skipped: tuple[dict[str, str], ...] = field(default=())

    def write(self, out_dir: str | os.PathLike) -> Path:
        """Write ``data`` to ``<out_dir>/<suite>.json``; returns the path."""
        path = Path(out_dir) / f"{self.suite}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"benchmark": self.suite, **self.data}, indent=2))
        return path


def check_first_stage(methods: tuple[str, ...], why: str) -> tuple[str, ...]:
    """Refuse a rerank-only method (SIFT) among a suite's methods, saying why."""
    from fmsearch.models.registry import stage_names

    for method in methods:
        if method in stage_names():
            raise InvalidArgumentError(f"{method} {why}", param="methods")
    return methods


def environment() -> dict[str, Any]:
    """When and where a benchmark ran."""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def p50_ms(fn: Callable[[Any], Any], items: Sequence[Any] | np.ndarray) -> float:
    """Median milliseconds of ``fn(item)`` over ``items``, after one warm-up call."""
    return latency_ms(fn, items)["p50_ms"]


def latency_ms(fn: Callable[[Any], Any], items: Sequence[Any] | np.ndarray) -> dict[str, float]:
    """p50, p95 and p99 milliseconds of ``fn(item)`` over ``items`` (one warm-up call first)."""
    fn(items[0])
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t0) * 1000)
    return {
        "p50_ms": statistics.median(times),
        "p95_ms": float(np.percentile(times, 95)),
        "p99_ms": float(np.percentile(times, 99)),
        "n": len(times),
    }


def cli_wall(commands: dict[str, Sequence[str]], runs: int, baseline: str | None = None) -> dict[str, Any]:
    """Wall seconds of each command, each run in a new process, the commands
    alternating, after one warm-up each: ``{name: {"median_s", "runs"}}``,
    and ``vs_<baseline>`` where ``baseline`` names one of them."""

    def once(name: str) -> float:
        t0 = time.perf_counter()
        done = subprocess.run(list(commands[name]), capture_output=True, text=True)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise FmsearchError(f"`{' '.join(commands[name][2:])}` failed ({done.returncode}): {last}")
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {name: [] for name in commands}
    for name in commands:
        once(name)
    for _ in range(runs):
        for name in commands:
            times[name].append(once(name))
    out: dict[str, Any] = {n: {"median_s": statistics.median(t), "runs": t} for n, t in times.items()}
    if baseline in out:
        for name in out:
            out[name][f"vs_{baseline}"] = out[name]["median_s"] / out[baseline]["median_s"]
    return out


def batch_qps(fn: Callable[[np.ndarray], Any], queries: np.ndarray, batch: int = 256) -> float:
    """Queries per second of ``fn`` over ``queries``, ``batch`` at a time."""
    t0 = time.perf_counter()
    for lo in range(0, len(queries), batch):
        fn(queries[lo : lo + batch])
    return len(queries) / (time.perf_counter() - t0)


def time_ingest(store: Store, spec: CollectionSpec, vectors: np.ndarray, payloads: list[dict]) -> dict[str, float]:
    """Create ``spec`` by the ingest protocol and write precomputed vectors:
    seconds to upsert, to index, in all."""
    with write_target(store, spec) as target:
        t0 = time.perf_counter()
        for lo in range(0, len(vectors), _WRITE_BATCH):
            hi = min(lo + _WRITE_BATCH, len(vectors))
            store.upsert(target.name, list(range(lo, hi)), vectors[lo:hi], payloads[lo:hi])
        t1 = time.perf_counter()
        store.finalize(target.name)
        t2 = time.perf_counter()
        if store.count(target.name) != len(vectors):
            raise RuntimeError(f"{store.location}: stored {store.count(target.name)} of {len(vectors)} points")
        store.set_metadata(target.name, {schema.META_COMPLETE: True})
    return {"upsert_s": t1 - t0, "index_s": t2 - t1, "total_s": t2 - t0}


def time_queries(
    store: Store,
    name: str,
    queries: np.ndarray,
    k: int = 10,
    flt: QueryFilter | None = None,
    *,
    exact: bool = False,
    with_payload: bool | Sequence[str] = schema.HIT_FIELDS,
) -> dict[str, float]:
    """Single-query latency (p50, p95 ms) of a collection."""
    return latency_ms(lambda q: store.query(name, q, k, flt, exact=exact, with_payload=with_payload), queries)


def time_store(
    store: Store,
    name: str,
    queries: np.ndarray,
    *,
    exact: bool,
    k: int = 10,
    with_payload: bool | Sequence[str] = schema.HIT_FIELDS,
) -> dict[str, float]:
    """Single-query p50/p95 and batch throughput of a collection."""
    single = time_queries(store, name, queries, k, exact=exact, with_payload=with_payload)
    qps = batch_qps(lambda b: store.query_batch(name, b, k, exact=exact, with_payload=with_payload), queries)
    return {"p50_ms": single["p50_ms"], "p95_ms": single["p95_ms"], "batch_qps": qps}


def time_numpy(gallery: np.ndarray, queries: np.ndarray, k: int = 10) -> dict[str, float]:
    """The physical reference: single-query p50 and batch throughput of brute force."""
    single = latency_ms(lambda q: metrics.exact_top_k(gallery, q[None], k), queries)
    return {
        "p50_ms": single["p50_ms"],
        "p95_ms": single["p95_ms"],
        "batch_qps": batch_qps(lambda b: metrics.exact_top_k(gallery, b, k), queries),
    }


def recall_at_k(results: list[list[Any]], reference: np.ndarray, k: int = 10) -> float:
    """Mean share of each reference top ``k`` that a store's results hold."""
    found = np.full((len(results), k), metrics.MISSING, np.int64)
    for i, points in enumerate(results):
        ids = [p.id for p in points[:k]]
        found[i, : len(ids)] = ids
    return mean_overlap(found, reference, k)


def mean_overlap(ids: np.ndarray, reference: np.ndarray, k: int = 10) -> float:
    """Mean share of each reference top ``k`` that the ``ids`` rows hold (recall@k).

    Raises:
        ValueError: no rows to measure.
    """
    recall = metrics.mean(metrics.overlap_at_k(ids, reference, k))
    if recall is None:
        raise ValueError("recall over no queries")
    return recall
