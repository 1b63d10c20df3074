"""Benchmarks: measured as ratios between backends run in the same process.

The machines this runs on are noisy, so every figure that matters is a ratio
of two measurements taken minutes apart on the same vectors, not an absolute.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from ingest.fmnist import load_split
from ingest.images import encode_png
from models.registry import get_embedder

from . import schema
from .store import QueryFilter, Store, open_store

SNEAKER = 7
_WRITE_BATCH = 1000


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def time_ingest(store: Store, spec: schema.CollectionSpec, vectors: np.ndarray, payloads: list[dict]) -> dict[str, float]:
    """Create ``spec`` and write everything: seconds to upsert, to index, in all."""
    store.create(spec)
    t0 = time.perf_counter()
    for lo in range(0, len(vectors), _WRITE_BATCH):
        hi = lo + _WRITE_BATCH
        store.upsert(spec.name, list(range(lo, min(hi, len(vectors)))), vectors[lo:hi], payloads[lo:hi])
    t1 = time.perf_counter()
    store.finalize(spec.name)
    t2 = time.perf_counter()
    if store.count(spec.name) != len(vectors):
        raise RuntimeError(f"{store.location}: stored {store.count(spec.name)} of {len(vectors)} points")
    return {"upsert_s": t1 - t0, "index_s": t2 - t1, "total_s": t2 - t0}


def time_queries(
    store: Store, name: str, queries: np.ndarray, k: int = 10, flt: QueryFilter | None = None
) -> dict[str, float]:
    """Single-query latency (ms): one warm-up query, then each query once."""
    store.query(name, queries[0], k, flt, with_payload=schema.HIT_FIELDS)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        store.query(name, q, k, flt, with_payload=schema.HIT_FIELDS)
        times.append((time.perf_counter() - t0) * 1000)
    return {"p50_ms": statistics.median(times), "p95_ms": _percentile(times, 95), "n": len(times)}


def _environment() -> dict[str, Any]:
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }


def run_store_bench(
    *,
    gallery: int = 60_000,
    queries: int = 200,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Pixels: ingest time and single-query p50 on Qdrant Edge vs qdrant-client local mode.

    Both stores get the same vectors and payloads (the collection schema's,
    base64 PNG included) and the same query vectors (random test images).

    Returns:
        The result dict (also written to ``out`` as JSON), with a markdown
        ``table``.
    """
    train = load_split("train", data_dir)
    test = load_split("test", data_dir)
    embedder = get_embedder("pixels")
    vectors = embedder.embed(train.images[:gallery])
    payloads = [
        schema.make_payload("train", i, int(train.labels[i]), encode_png(train.images[i]))
        for i in range(gallery)
    ]
    rng = np.random.default_rng(seed)
    q_idx = rng.choice(len(test), size=queries, replace=False)
    q_vectors = embedder.embed(test.images[q_idx])
    spec = schema.spec_for(embedder.describe())
    sneaker = QueryFilter(labels=(SNEAKER,))

    backends: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for label, url in (("qdrant-edge", None), ("qdrant-client local", f"local:{tmp}/local")):
            log(f"{label}: ingesting {gallery} pixel vectors ...")
            with open_store(url, home=f"{tmp}/edge") as store:
                ingest = time_ingest(store, spec, vectors, payloads)
                log(f"{label}: {ingest['total_s']:.1f}s; timing {queries} queries ...")
                backends[label] = {
                    "ingest": ingest,
                    "query": time_queries(store, spec.name, q_vectors),
                    "query_filtered": time_queries(store, spec.name, q_vectors, flt=sneaker),
                }
    edge, local = backends["qdrant-edge"], backends["qdrant-client local"]
    ratios = {
        "ingest_total": local["ingest"]["total_s"] / edge["ingest"]["total_s"],
        "ingest_upsert": local["ingest"]["upsert_s"] / edge["ingest"]["upsert_s"],
        "query_p50": local["query"]["p50_ms"] / edge["query"]["p50_ms"],
        "query_filtered_p50": local["query_filtered"]["p50_ms"] / edge["query_filtered"]["p50_ms"],
    }
    rows = [
        "| backend | upsert s | HNSW build s | ingest total s | query p50 ms | query p50 ms, class filter |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for label, b in backends.items():
        rows.append(
            f"| {label} | {b['ingest']['upsert_s']:.1f} | {b['ingest']['index_s']:.1f} | "
            f"{b['ingest']['total_s']:.1f} | {b['query']['p50_ms']:.2f} | {b['query_filtered']['p50_ms']:.2f} |"
        )
    rows.append(
        f"| **local / edge** | {ratios['ingest_upsert']:.0f}x | | {ratios['ingest_total']:.0f}x | "
        f"{ratios['query_p50']:.0f}x | {ratios['query_filtered_p50']:.0f}x |"
    )
    result = {
        "benchmark": "store",
        "method": "pixels",
        "gallery": gallery,
        "queries": queries,
        "k": 10,
        "filter": "label == 7 (Sneaker)",
        "environment": _environment(),
        "backends": backends,
        "ratios_local_over_edge": ratios,
        "table": "\n".join(rows),
    }
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))
    return result
