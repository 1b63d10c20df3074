"""Search suite: the embedded store against numpy brute force and
qdrant-client's local mode, over real galleries and a synthetic scale series:
query latency and throughput, plain and with a class filter, and what each
store takes to ingest the gallery.

(The store suite, Edge against local mode on the 60,000-image pixels
gallery, measured the same queries on the same gallery again; its class
filter and its split of the ingest are this suite's now, and
``--sizes 60000 --synthetic 0`` measures what it did.)"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from fmsearch.evaluation import markdown, metrics
from fmsearch.evaluation.bench.timing import (
    BenchResult,
    environment,
    recall_at_k,
    time_ingest,
    time_numpy,
    time_queries,
    time_store,
)
from fmsearch.images.files import encode_png
from fmsearch.images.fmnist import load_split
from fmsearch.models.registry import get_embedder
from fmsearch.store import QueryFilter, open_store, schema

logger = logging.getLogger(__name__)

#: the class filter timed on the real galleries (label == 7, Sneaker: a tenth of them)
SNEAKER = QueryFilter(labels=(7,))


def _datasets(sizes, synthetic: int, synthetic_dim: int, queries: int, data_dir, seed: int):
    """(label, gallery vectors, query vectors, payloads) per gallery: pixels
    of the first N train images with the payload ingest writes (the image's
    PNG included), and random unit vectors."""
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    embedder = get_embedder("pixels")
    rng = np.random.default_rng(seed)
    q_real = embedder.embed(test.images[rng.choice(len(test), size=queries, replace=False)])
    for n in sizes:
        payloads = [
            schema.make_payload("train", i, int(train.labels[i]), encode_png(train.images[i])) for i in range(n)
        ]
        yield f"pixels {n // 1000}k", embedder.embed(train.images[:n]), q_real, payloads
    if synthetic:
        g = rng.normal(size=(synthetic, synthetic_dim)).astype(np.float32)
        q = rng.normal(size=(queries, synthetic_dim)).astype(np.float32)
        yield (
            f"synthetic {synthetic // 1000}k x {synthetic_dim}",
            g / np.linalg.norm(g, axis=1, keepdims=True),
            q / np.linalg.norm(q, axis=1, keepdims=True),
            [{} for _ in range(synthetic)],
        )


def run_search_bench(
    *,
    sizes: tuple[int, ...] = (10_000, 30_000, 60_000),
    synthetic: int = 1_000_000,
    synthetic_dim: int = 64,
    queries: int = 200,
    local: bool = True,
    data_dir=None,
    seed: int = 0,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Query speed of the embedded store against numpy brute force and local mode.

    For each gallery: Edge HNSW, Edge exact and numpy brute force on the same
    vectors, in this process; qdrant-client local mode on the real galleries
    when ``local``. Reports single-query p50 and batch throughput, ratios to
    numpy, and HNSW recall@10 against numpy; on the real galleries, each
    store's ingest (upsert, then index) and its p50 with a class filter.
    """
    rows = []
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for label, gallery, qv, payloads in _datasets(sizes, synthetic, synthetic_dim, queries, data_dir, seed):
            n = len(gallery)
            spec = schema.CollectionSpec(f"bench_{n}_{gallery.shape[1]}", dim=gallery.shape[1])
            fields = schema.HIT_FIELDS if payloads[0] else False
            row: dict[str, Any] = {"dataset": label, "points": n, "dim": int(gallery.shape[1])}
            log(f"{label}: building the Edge collection ...")
            with open_store(None, home=f"{tmp}/edge") as store:
                row["edge_ingest"] = time_ingest(store, spec, gallery, payloads)
                row["edge_hnsw"] = time_store(store, spec.name, qv, exact=False, with_payload=fields)
                row["edge_exact"] = time_store(store, spec.name, qv, exact=True, with_payload=fields)
                if fields:
                    row["edge_filtered"] = time_queries(store, spec.name, qv, flt=SNEAKER)
                row["hnsw_recall_at_10"] = recall_at_k(
                    store.query_batch(spec.name, qv, 10, with_payload=False), metrics.exact_top_k(gallery, qv, 10)
                )
                store.delete(spec.name)
            row["numpy"] = time_numpy(gallery, qv)
            if local and fields:
                log(f"{label}: qdrant-client local mode ...")
                with open_store(f"local:{tmp}/local-{n}") as store:
                    row["local_ingest"] = time_ingest(store, spec, gallery, payloads)
                    row["local"] = time_store(
                        store, spec.name, qv[: max(20, queries // 4)], exact=True, with_payload=fields
                    )
                    row["local_filtered"] = time_queries(store, spec.name, qv[: max(20, queries // 4)], flt=SNEAKER)
            rows.append(row)
            log(
                f"{label}: HNSW p50 {row['edge_hnsw']['p50_ms']:.2f} ms, exact {row['edge_exact']['p50_ms']:.2f} ms, "
                f"numpy {row['numpy']['p50_ms']:.2f} ms"
            )
    data = {"k": 10, "queries": queries, "environment": environment(), "rows": rows}
    return BenchResult("search", data, _table(rows) + "\n\n" + _ingest_table(rows))


def _ingest_table(rows: list[dict[str, Any]]) -> str:
    """Each store's ingest of the real galleries and its class-filtered p50 (local / edge: the ratios)."""
    head = ["gallery", "backend", "upsert s", "HNSW build s", "ingest total s", "query p50 ms, class filter"]
    cells = []
    for r in rows:
        if "edge_filtered" not in r:
            continue
        stores = [("qdrant-edge", r["edge_ingest"], r["edge_filtered"])]
        if "local" in r:
            stores.append(("qdrant-client local", r["local_ingest"], r["local_filtered"]))
        cells += [
            [
                r["dataset"],
                label,
                f"{i['upsert_s']:.1f}",
                f"{i['index_s']:.1f}",
                f"{i['total_s']:.1f}",
                f"{f['p50_ms']:.2f}",
            ]
            for label, i, f in stores
        ]
        if "local" in r:
            (_, edge, edge_f), (_, local, local_f) = stores
            cells.append(
                [
                    r["dataset"],
                    "**local / edge**",
                    f"{local['upsert_s'] / edge['upsert_s']:.0f}x",
                    "",
                    f"{local['total_s'] / edge['total_s']:.0f}x",
                    f"{local_f['p50_ms'] / edge_f['p50_ms']:.0f}x",
                ]
            )
    return markdown.table(head, cells)


def _table(rows: list[dict[str, Any]]) -> str:
    head = [
        "gallery",
        "Edge HNSW p50 ms",
        "Edge exact p50 ms",
        "numpy p50 ms",
        "local mode p50 ms",
        "HNSW / numpy p50",
        "Edge HNSW batch q/s",
        "numpy batch q/s",
        "local batch q/s",
        "HNSW recall@10",
    ]
    cells = []
    for r in rows:
        loc = r.get("local")
        cells.append(
            [
                r["dataset"],
                f"{r['edge_hnsw']['p50_ms']:.2f}",
                f"{r['edge_exact']['p50_ms']:.2f}",
                f"{r['numpy']['p50_ms']:.2f}",
                "-" if loc is None else f"{loc['p50_ms']:.1f}",
                f"{r['edge_hnsw']['p50_ms'] / r['numpy']['p50_ms']:.2f}x",
                f"{r['edge_hnsw']['batch_qps']:.0f}",
                f"{r['numpy']['batch_qps']:.0f}",
                "-" if loc is None else f"{loc['batch_qps']:.0f}",
                f"{r['hnsw_recall_at_10']:.3f}",
            ]
        )
    return markdown.table(head, cells)
