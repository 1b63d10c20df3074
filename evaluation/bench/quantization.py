"""Quantization suite: recall@10 against exact search of every method's
int8 and binary collections, offered or not (why each offer is made)."""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from fmsearch.evaluation import markdown, metrics
from fmsearch.evaluation.bench.timing import (
    BenchResult,
    check_first_stage,
    environment,
    recall_at_k,
    time_ingest,
)
from fmsearch.images.fmnist import load_split
from fmsearch.models.registry import get_embedder
from fmsearch.store import QuantizationParams, Store, open_store, schema

logger = logging.getLogger(__name__)

#: what the suite measures when no methods are named
DEFAULT_METHODS = ("pixels", "autoencoder", "siamese")


def _rows(
    store: Store, method: str, g: np.ndarray, q: np.ndarray, labels: np.ndarray, oversamplings: tuple[float, ...]
) -> list[dict[str, Any]]:
    """One row per quantisation of one method's embedded gallery."""
    embedder = get_embedder(method)
    reference = metrics.exact_top_k(g, q, 10)
    payloads = [{schema.LABEL: int(x)} for x in labels]
    rows = []
    for quant in schema.QUANTIZATIONS:
        spec = schema.spec_for(embedder.describe(), "bench_", planned=len(g), quantization=quant, offered_only=False)
        time_ingest(store, spec, g, payloads)

        def recall(params: QuantizationParams | None, name: str = spec.name) -> float:
            return recall_at_k(store.query_batch(name, q, 10, with_payload=False, quantization=params), reference)

        row: dict[str, Any] = {
            "method": method,
            "dim": int(g.shape[1]),
            "quantization": quant,
            "offered": quant == "none" or quant in schema.QUANTIZATION_OFFERS.get(method, ()),
            "negative_fraction": float((g < 0).mean()),
        }
        if quant == "none":
            row["recall_hnsw"] = recall(None)
        else:
            row["recall_no_rescore"] = recall(QuantizationParams(rescore=False))
            row["recall_rescore"] = {f"{o:g}": recall(QuantizationParams(True, float(o))) for o in oversamplings}
        rows.append(row)
        store.delete(spec.name)
    return rows


def run_quantization_bench(
    *,
    methods: tuple[str, ...] | None = None,
    gallery: int = 60_000,
    queries: int = 1000,
    oversamplings: tuple[float, ...] = (1, 2, 4, 8, 16),
    data_dir=None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Recall@10 of k=10 searches against exact search, for every method and
    quantisation, offered or not (:data:`schema.QUANTIZATION_OFFERS`).

    Each method's gallery is embedded once and written to fresh Edge
    collections in a temporary store: plain, int8 and binary (the same HNSW
    settings as ``fmsearch ingest``). The reference is numpy's exact top 10
    over the float32 vectors; each quantised collection is searched without
    rescore, then with rescore at each oversampling. A method's own values
    (e.g. that pixels are never negative) are reported beside.
    """
    methods = methods or DEFAULT_METHODS
    check_first_stage(methods, "descriptors (multivectors) are not quantised")
    train, test = load_split("train", data_dir), load_split("test", data_dir)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp, open_store(None, home=tmp) as store:
        for method in methods:
            embedder = get_embedder(method)
            embedder.prepare()
            log(f"{method}: embedding {gallery} gallery and {queries} query images ...")
            g, q = embedder.embed(train.images[:gallery]), embedder.embed(test.images[:queries])
            rows += _rows(store, method, g, q, train.labels[:gallery], oversamplings)
            log(f"{method}: done")
    data = {"environment": environment(), "gallery": gallery, "queries": queries, "k": 10, "rows": rows}
    return BenchResult("quantization", data, _table(rows, oversamplings))


def _table(rows: list[dict[str, Any]], oversamplings: tuple[float, ...]) -> str:
    head = [
        "method",
        "dim",
        "values < 0",
        "quantisation",
        "offered",
        "HNSW, float32",
        "no rescore",
        *(f"rescore, oversampling {o:g}" for o in oversamplings),
    ]
    cells = []
    for r in rows:
        if "recall_rescore" in r:
            recalls = ["-", f"{r['recall_no_rescore']:.4f}", *(f"{v:.4f}" for v in r["recall_rescore"].values())]
        else:
            recalls = [f"{r['recall_hnsw']:.4f}", *["-"] * (len(oversamplings) + 1)]
        cells.append(
            [
                r["method"],
                r["dim"],
                f"{r['negative_fraction']:.0%}",
                r["quantization"],
                "yes" if r["offered"] else "no",
                *recalls,
            ]
        )
    return markdown.table(head, cells, "lrrll" + "r" * (len(oversamplings) + 2))
