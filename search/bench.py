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


def _write_json(out: str | os.PathLike | None, result: dict[str, Any]) -> None:
    """A benchmark's result as JSON at ``out`` (if given)."""
    if out:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(result, indent=2))


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
    _write_json(out, result)
    return result


# -- search benchmark: Edge vs numpy brute force vs local mode, and a scale series --


def _numpy_topk(gallery: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    """Exact top-k by dot product (vectors are unit length: = cosine)."""
    scores = queries @ gallery.T
    idx = np.argpartition(-scores, k, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(scores, idx, 1), axis=1)
    return np.take_along_axis(idx, order, 1)


def time_numpy(gallery: np.ndarray, queries: np.ndarray, k: int = 10, batch: int = 256) -> dict[str, float]:
    """The physical reference: single-query p50 and batch throughput of brute force."""
    _numpy_topk(gallery, queries[:1], k)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        _numpy_topk(gallery, q[None], k)
        times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    for lo in range(0, len(queries), batch):
        _numpy_topk(gallery, queries[lo : lo + batch], k)
    qps = len(queries) / (time.perf_counter() - t0)
    return {"p50_ms": statistics.median(times), "p95_ms": _percentile(times, 95), "batch_qps": qps}


def time_store(store: Store, name: str, queries: np.ndarray, *, exact: bool, k: int = 10, batch: int = 256,
               with_payload: bool | tuple[str, ...] = schema.HIT_FIELDS) -> dict[str, float]:
    """Single-query p50/p95 and batch throughput of a store collection."""
    store.query(name, queries[0], k, exact=exact, with_payload=with_payload)
    times = []
    for q in queries:
        t0 = time.perf_counter()
        store.query(name, q, k, exact=exact, with_payload=with_payload)
        times.append((time.perf_counter() - t0) * 1000)
    t0 = time.perf_counter()
    for lo in range(0, len(queries), batch):
        store.query_batch(name, queries[lo : lo + batch], k, exact=exact, with_payload=with_payload)
    qps = len(queries) / (time.perf_counter() - t0)
    return {"p50_ms": statistics.median(times), "p95_ms": _percentile(times, 95), "batch_qps": qps}


def _recall_vs_numpy(store: Store, name: str, gallery: np.ndarray, queries: np.ndarray, k: int = 10) -> float:
    ref = _numpy_topk(gallery, queries, k)
    got = store.query_batch(name, queries, k, with_payload=False)
    return float(np.mean([len(set(r.tolist()) & {p.id for p in g}) / k for r, g in zip(ref, got, strict=True)]))


def run_search_bench(
    *,
    sizes: tuple[int, ...] = (10_000, 30_000, 60_000),
    synthetic: int = 1_000_000,
    synthetic_dim: int = 64,
    queries: int = 200,
    local: bool = True,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    seed: int = 0,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Query speed of the embedded store against numpy brute force and local mode.

    For each gallery size (pixels vectors of the first N train images, and a
    synthetic random unit-vector collection): Edge HNSW, Edge exact and numpy
    brute force on the same vectors, in this process; qdrant-client local mode
    on the real galleries when ``local``. Reports single-query p50 and batch
    throughput, ratios to numpy, and HNSW recall@10 against numpy.
    """
    train = load_split("train", data_dir)
    test = load_split("test", data_dir)
    embedder = get_embedder("pixels")
    rng = np.random.default_rng(seed)
    q_real = embedder.embed(test.images[rng.choice(len(test), size=queries, replace=False)])
    datasets: list[tuple[str, int, np.ndarray, np.ndarray]] = []
    for n in sizes:
        datasets.append((f"pixels {n // 1000}k", n, embedder.embed(train.images[:n]), q_real))
    if synthetic:
        g = rng.normal(size=(synthetic, synthetic_dim)).astype(np.float32)
        g /= np.linalg.norm(g, axis=1, keepdims=True)
        q = rng.normal(size=(queries, synthetic_dim)).astype(np.float32)
        q /= np.linalg.norm(q, axis=1, keepdims=True)
        datasets.append((f"synthetic {synthetic // 1000}k x {synthetic_dim}", synthetic, g, q))

    rows_out = []
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for label, n, gallery, qv in datasets:
            real = label.startswith("pixels")
            spec = schema.CollectionSpec(f"bench_{n}_{gallery.shape[1]}", dim=gallery.shape[1])
            payloads = (
                [schema.make_payload("train", i, int(train.labels[i]), "") for i in range(n)]
                if real else [{} for _ in range(n)]
            )
            fields = schema.HIT_FIELDS if real else False
            row: dict[str, Any] = {"dataset": label, "points": n, "dim": int(gallery.shape[1])}
            log(f"{label}: building the Edge collection ...")
            with open_store(None, home=f"{tmp}/edge") as store:
                row["edge_ingest"] = time_ingest(store, spec, gallery, payloads)
                row["edge_hnsw"] = time_store(store, spec.name, qv, exact=False, with_payload=fields)
                row["edge_exact"] = time_store(store, spec.name, qv, exact=True, with_payload=fields)
                row["hnsw_recall_at_10"] = _recall_vs_numpy(store, spec.name, gallery, qv)
                store.delete(spec.name)
            row["numpy"] = time_numpy(gallery, qv)
            if local and real:
                log(f"{label}: qdrant-client local mode ...")
                with open_store(f"local:{tmp}/local-{n}") as store:
                    row["local_ingest"] = time_ingest(store, spec, gallery, payloads)
                    row["local"] = time_store(store, spec.name, qv[: max(20, queries // 4)], exact=True, with_payload=fields)
            rows_out.append(row)
            log(f"{label}: HNSW p50 {row['edge_hnsw']['p50_ms']:.2f} ms, exact {row['edge_exact']['p50_ms']:.2f} ms, "
                f"numpy {row['numpy']['p50_ms']:.2f} ms")

    head = [
        "| gallery | Edge HNSW p50 ms | Edge exact p50 ms | numpy p50 ms | local mode p50 ms "
        "| HNSW / numpy p50 | Edge HNSW batch q/s | numpy batch q/s | local batch q/s | HNSW recall@10 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows_out:
        loc = r.get("local")
        loc_p50 = "-" if loc is None else f"{loc['p50_ms']:.1f}"
        loc_qps = "-" if loc is None else f"{loc['batch_qps']:.0f}"
        head.append(
            f"| {r['dataset']} | {r['edge_hnsw']['p50_ms']:.2f} | {r['edge_exact']['p50_ms']:.2f} | "
            f"{r['numpy']['p50_ms']:.2f} | {loc_p50} | "
            f"{r['edge_hnsw']['p50_ms'] / r['numpy']['p50_ms']:.2f}x | {r['edge_hnsw']['batch_qps']:.0f} | "
            f"{r['numpy']['batch_qps']:.0f} | {loc_qps} | "
            f"{r['hnsw_recall_at_10']:.3f} |"
        )
    result = {
        "benchmark": "search",
        "k": 10,
        "queries": queries,
        "environment": _environment(),
        "rows": rows_out,
        "table": "\n".join(head),
    }
    _write_json(out, result)
    return result


# -- embedding benchmark: images/s per method, and full-gallery ingest time --


def run_embed_bench(
    *,
    methods: tuple[str, ...] = ("pixels", "autoencoder", "siamese", "resnet101"),
    images: int = 2000,
    ingest_gallery: int = 60_000,
    resnet_images: int = 256,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Embedding throughput (batched, and one image at a time) for each method,
    and the time to ingest the gallery into a fresh Edge collection, with
    ratios against the pixels baseline measured in the same process.

    ResNet101's speed does not depend on its weights' values, so without
    ImageNet weights it is timed untrained (``weights="none"``, noted in the
    row). Its gallery ingest is measured on ``resnet_images`` images and the
    full-gallery time is projected from that (marked as a projection): at
    224 px on 2 cores the real run takes about an hour.
    """
    from fmsearch.errors import ModelError

    from .indexer import ingest

    test = load_split("test", data_dir)
    rows = []
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp:
        for method in methods:
            options: dict[str, Any] = {}
            embedder = get_embedder(method)
            note = ""
            try:
                embedder.prepare()
            except ModelError as err:
                if method != "resnet101":
                    raise
                embedder = get_embedder(method, weights="none")
                embedder.prepare()
                options = {"weights": "none"}
                note = "untrained weights (no ImageNet weights here); speed only"
            n = min(images, resnet_images) if method == "resnet101" else images
            batch = test.images[:n]
            embedder.embed(batch[:8])  # warm-up: load and trace
            t0 = time.perf_counter()
            embedder.embed(batch)
            batched = n / (time.perf_counter() - t0)
            singles = []
            for img in batch[:50]:
                t0 = time.perf_counter()
                embedder.embed(img)
                singles.append((time.perf_counter() - t0) * 1000)
            row: dict[str, Any] = {
                "method": method,
                "options": options,
                "dim": embedder.dim,
                "images_per_s_batched": batched,
                "single_image_p50_ms": statistics.median(singles),
                "note": note,
            }
            size = min(ingest_gallery, resnet_images) if method == "resnet101" else ingest_gallery
            log(f"{method}: ingesting {size} images ...")
            with open_store(None, home=f"{tmp}/{method}") as store:
                report = ingest(store, embedder, limit=size, batch_size=min(1000, size), data_dir=data_dir)
            total = report.seconds_embed + report.seconds_write + report.seconds_index
            row["ingest"] = {
                "points": report.points_total,
                "embed_s": report.seconds_embed,
                "write_s": report.seconds_write,
                "index_s": report.seconds_index,
                "total_s": total,
                "projected": size < ingest_gallery,
            }
            if size < ingest_gallery:  # linear in the embedding, which dominates
                row["ingest"]["projected_total_s"] = total * ingest_gallery / size
            rows.append(row)
            log(f"{method}: {batched:.0f} images/s batched, {row['single_image_p50_ms']:.2f} ms for one image")
    base = next((r for r in rows if r["method"] == "pixels"), None)
    lines = [
        "| method | dim | images/s (batched) | one image p50 ms | gallery ingest s (embed + write + HNSW) | ingest vs pixels | note |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        ing = r["ingest"]
        if ing["projected"]:
            seconds = ing["projected_total_s"]
            ing_text = f"~{seconds:.0f} (projected from {ing['points']} images)"
        else:
            seconds = ing["total_s"]
            ing_text = f"{seconds:.0f} ({ing['embed_s']:.0f} + {ing['write_s']:.0f} + {ing['index_s']:.0f})"
        r["ingest_vs_pixels"] = seconds / base["ingest"]["total_s"] if base else None
        ratio = "-" if r["ingest_vs_pixels"] is None else f"{r['ingest_vs_pixels']:.1f}x"
        lines.append(
            f"| {r['method']} | {r['dim']} | {r['images_per_s_batched']:.0f} | {r['single_image_p50_ms']:.2f} | {ing_text} | {ratio} | {r['note']} |"
        )
    result = {"benchmark": "embed", "environment": _environment(), "gallery": ingest_gallery, "rows": rows, "table": "\n".join(lines)}
    _write_json(out, result)
    return result


# -- rerank benchmark: SIFT extraction, SIFT gallery ingest, rerank latency --


def _dir_bytes(path: str | os.PathLike) -> int:
    """Bytes allocated on disk (sparse, preallocated segment files count what they use)."""
    return sum(p.stat().st_blocks * 512 for p in Path(path).rglob("*") if p.is_file())


def _p50(fn: Callable[[Any], Any], items) -> float:
    fn(items[0])  # warm-up
    times = []
    for item in items:
        t0 = time.perf_counter()
        fn(item)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def run_rerank_bench(
    *,
    gallery: int = 60_000,
    queries: int = 200,
    shortlist: int = 100,
    upscales: tuple[int, ...] = (1, 2, 3, 4),
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """SIFT as a rerank stage, against the plain query in the same process.

    1. Extraction per upscale factor: keypoints per image, images without
       any, ms per image (what the default factor was chosen from).
    2. Gallery ingest into fresh Edge collections: pixels (the baseline) and
       sift (descriptors as uint8 multivectors), seconds and bytes on disk.
    3. Latency p50 over ``queries`` test images: a plain pixels query (k=10),
       the shortlist query, and the rerank of a ``shortlist``-candidate list
       by ``maxsim`` (scored in Qdrant) and ``lowe`` (client side), each with
       and without SIFT on the query image.
    """
    from models.sift import SiftExtractor

    from .indexer import ingest
    from .query import Searcher
    from .rerank import RerankConfig

    test = load_split("test", data_dir)
    sample = test.images[:1000]
    extraction = []
    for u in upscales:
        sift = SiftExtractor(upscale=u)
        sift.prepare()
        t0 = time.perf_counter()
        counts = np.array([len(sift.descriptors(img)) for img in sample])
        extraction.append({
            "upscale": u, "images": len(sample), "keypoints_mean": float(counts.mean()),
            "no_keypoints_fraction": float((counts == 0).mean()),
            "ms_per_image": 1000 * (time.perf_counter() - t0) / len(sample),
        })
        log(f"sift x{u}: {counts.mean():.1f} keypoints/image, {(counts == 0).mean():.1%} without any")

    q_images = test.images[:queries]
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp, open_store(None, home=tmp) as store:
        ingests = {}
        for method in ("pixels", "sift"):
            log(f"{method}: ingesting {gallery} images ...")
            embedder = SiftExtractor() if method == "sift" else get_embedder(method)
            report = ingest(store, embedder, limit=gallery, data_dir=data_dir)
            ingests[method] = {
                "points": report.points_total,
                "embed_s": report.seconds_embed,
                "write_s": report.seconds_write,
                "index_s": report.seconds_index,
                "total_s": report.seconds_embed + report.seconds_write + report.seconds_index,
                "disk_bytes": _dir_bytes(Path(tmp) / "collections" / schema.collection_name(method)),
            }
        searcher = Searcher(store, data_dir=data_dir)
        reranker = searcher.reranker
        embedder = searcher.embedder("pixels")
        vectors = embedder.embed(q_images)
        flt = None
        lists = [searcher.search_vectors("pixels", v[None], shortlist, flt)[0] for v in vectors]
        descs = [reranker.query_descriptors(img) for img in q_images]
        idx = list(range(len(q_images)))
        latency = {
            "plain_query_k10": _p50(lambda i: searcher.query_image("pixels", q_images[i], 10), idx),
            "shortlist_query": _p50(lambda i: searcher.query_image("pixels", q_images[i], shortlist), idx),
            "sift_on_query_image": _p50(lambda i: reranker.query_descriptors(q_images[i]), idx),
        }
        for mode in ("maxsim", "lowe"):
            config = RerankConfig(shortlist=shortlist, mode=mode)
            latency[f"rerank_{mode}"] = _p50(lambda i, c=config: reranker.rerank(lists[i], descs[i], c), idx)
            latency[f"query_with_rerank_{mode}"] = _p50(
                lambda i, c=config: searcher.query_image("pixels", q_images[i], 10, rerank=c), idx
            )
    base = latency["plain_query_k10"]
    rows = [
        ("plain query (pixels, k=10)", "plain_query_k10"),
        (f"first stage only (k={shortlist})", "shortlist_query"),
        ("SIFT on the query image", "sift_on_query_image"),
        (f"rerank {shortlist} by maxsim (in Qdrant)", "rerank_maxsim"),
        (f"rerank {shortlist} by lowe (client side)", "rerank_lowe"),
        ("query + SIFT + maxsim rerank, end to end", "query_with_rerank_maxsim"),
        ("query + SIFT + lowe rerank, end to end", "query_with_rerank_lowe"),
    ]
    lines = ["| step | p50 ms | vs plain query |", "|---|---:|---:|"]
    lines += [f"| {label} | {latency[key]:.2f} | {latency[key] / base:.1f}x |" for label, key in rows]
    lines += ["", "| collection | points | ingest s (extract/embed + write + index) | vs pixels | MB on disk |",
              "|---|---:|---:|---:|---:|"]
    for method, ing in ingests.items():
        lines.append(
            f"| {schema.collection_name(method)} | {ing['points']} | {ing['total_s']:.0f} ({ing['embed_s']:.0f} + "
            f"{ing['write_s']:.0f} + {ing['index_s']:.0f}) | {ing['total_s'] / ingests['pixels']['total_s']:.1f}x | "
            f"{ing['disk_bytes'] / 1e6:.0f} |"
        )
    lines += ["", "| upscale | keypoints / image | images without keypoints | ms / image |", "|---:|---:|---:|---:|"]
    lines += [f"| {e['upscale']}x | {e['keypoints_mean']:.1f} | {e['no_keypoints_fraction']:.1%} | {e['ms_per_image']:.2f} |"
              for e in extraction]
    result = {
        "benchmark": "rerank", "environment": _environment(), "gallery": gallery, "queries": len(q_images),
        "shortlist": shortlist, "latency_p50_ms": latency, "ingest": ingests, "extraction": extraction,
        "table": "\n".join(lines),
    }
    _write_json(out, result)
    return result


# -- search-mode benchmark: quantisation, rescoring, fusion on the built store --

#: per method: (label, quantization, rescore, oversampling; None: the default)
MODES: tuple[tuple[str, str, bool, float | None], ...] = (
    ("{m}", "none", True, None),
    ("{m} int8 + rescore", "int8", True, None),
    ("{m} int8 + rescore, oversampling 1", "int8", True, 1.0),
    ("{m} int8, no rescore", "int8", False, None),
    ("{m} binary + rescore", "binary", True, None),
    ("{m} binary + rescore, oversampling 4", "binary", True, 4.0),
    ("{m} binary, no rescore", "binary", False, None),
)
#: (label, methods, rescore_with, fusion, fusion weights)
COMBINED_MODES: tuple[tuple[str, str, str | None, str, tuple[float, ...] | None], ...] = (
    ("pixels, rescored by siamese", "pixels", "siamese", "rrf", None),
    ("autoencoder, rescored by siamese", "autoencoder", "siamese", "rrf", None),
    ("autoencoder+siamese RRF", "autoencoder+siamese", None, "rrf", None),
    ("autoencoder+siamese RRF, weights 1,2", "autoencoder+siamese", None, "rrf", (1.0, 2.0)),
    ("autoencoder+siamese DBSF", "autoencoder+siamese", None, "dbsf", None),
    ("pixels+autoencoder+siamese RRF", "pixels+autoencoder+siamese", None, "rrf", None),
)


def run_modes_bench(
    store: Store,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    methods: tuple[str, ...] = ("pixels", "autoencoder", "siamese"),
    queries: int = 200,
    k: int = 10,
    shortlist: int = 100,
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Every search mode on the collections ``fmsearch ingest`` built, end to
    end (embed one test image + search, k=10), in the same process.

    The modes are timed round-robin (each query image through every mode
    before the next image), so machine noise falls on all of them alike;
    each p50 is reported as a ratio to the plain query of the same first
    method. Bytes: what a search reads per vector (float32, int8 or one bit
    per dimension) and, on the embedded store, the collection's bytes on disk
    per point (originals, quantised copy, HNSW graph and payload together).
    Modes whose collections are not built are listed as skipped, with why.
    """
    from fmsearch.errors import CollectionNotFoundError, InvalidArgumentError

    from .edge_store import EdgeStore
    from .evaluate import vector_bytes
    from .query import Searcher
    from .store import QuantizationParams

    test = load_split("test", data_dir)
    images = test.images[:queries]
    runs: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []

    def disk_per_point(name: str) -> float | None:
        if not isinstance(store, EdgeStore):
            return None
        info = store.info(name)
        return _dir_bytes(store.home / "collections" / name) / max(info.points, 1)

    plain = Searcher(store, prefix=prefix, data_dir=data_dir)  # every mode shares its loaded models
    for method in methods:
        for label, quant, rescore, oversampling in MODES:
            searcher = plain.variant(quantization=quant, quantization_params=QuantizationParams(rescore, oversampling))
            try:
                info = searcher.collection(method)
            except (CollectionNotFoundError, InvalidArgumentError) as err:  # not built, or not offered
                skipped.append({"mode": label.format(m=method), "why": str(err)})
                continue
            params = searcher.effective_quantization_params()
            if params is not None and params.rescore and oversampling is None:
                label += f", oversampling {params.oversampling:g} (the default)"
            runs.append({
                "mode": label.format(m=method), "base": method,
                "settings": {"method": method, "quantization": quant, "rescore": rescore,
                             "oversampling": None if params is None else params.oversampling},
                "call": lambda img, s=searcher, m=method: s.search(m, image=img, k=k),
                "bytes_searched": vector_bytes(info.dim, quant)["searched"],
                "bytes_float32": 4 * info.dim, "disk_bytes_per_point": disk_per_point(info.name),
            })
    for label, spec, rescore_with, fusion, weights in COMBINED_MODES:
        names = spec.split("+")
        if not set(names) | {rescore_with or names[0]} <= set(methods):
            continue
        try:
            infos = [plain.collection(m) for m in (*names, *([rescore_with] if rescore_with else []))]
        except CollectionNotFoundError as err:
            skipped.append({"mode": label, "why": str(err)})
            continue
        runs.append({
            "mode": label, "base": names[0],
            "settings": {"method": spec, "fusion": fusion, "fusion_weights": weights, "rescore_with": rescore_with,
                         "shortlist": shortlist},
            "call": lambda img, s=spec, r=rescore_with, f=fusion, w=weights: plain.search(
                s, image=img, k=k, shortlist=shortlist, rescore_with=r, fusion=f, weights=w),
            "bytes_searched": sum(4 * i.dim for i in infos),
            "bytes_float32": sum(4 * i.dim for i in infos),
            "disk_bytes_per_point": None if not isinstance(store, EdgeStore)
            else sum(disk_per_point(i.name) for i in infos),
        })
    if not runs:
        raise CollectionNotFoundError("no collection to benchmark; run `fmsearch ingest` first")
    log(f"timing {len(runs)} modes round-robin over {len(images)} test images ...")
    for run in runs:  # warm-up: models loaded, shards opened
        run["call"](images[0])
    times: list[list[float]] = [[] for _ in runs]
    for img in images:
        for j, run in enumerate(runs):
            t0 = time.perf_counter()
            run["call"](img)
            times[j].append((time.perf_counter() - t0) * 1000)
    p50 = {run["mode"]: statistics.median(t) for run, t in zip(runs, times, strict=True)}
    rows = []
    for run in runs:
        base = p50.get(run["base"])
        rows.append({
            "mode": run["mode"], "settings": run["settings"], "p50_ms": p50[run["mode"]],
            "vs_plain": None if base is None else p50[run["mode"]] / base,
            "bytes_searched": run["bytes_searched"], "bytes_float32": run["bytes_float32"],
            "disk_bytes_per_point": run["disk_bytes_per_point"],
        })
    lines = [
        "| mode | p50 ms | vs plain query of its first method | bytes / vector searched | disk bytes / point |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = "-" if r["vs_plain"] is None else f"{r['vs_plain']:.2f}x"
        disk = "-" if r["disk_bytes_per_point"] is None else f"{r['disk_bytes_per_point']:.0f}"
        lines.append(f"| {r['mode']} | {r['p50_ms']:.2f} | {ratio} | {r['bytes_searched']} | {disk} |")
    result = {
        "benchmark": "modes", "environment": _environment(), "backend": store.location, "queries": len(images),
        "k": k, "shortlist": shortlist, "modes": rows, "skipped": skipped, "table": "\n".join(lines),
    }
    _write_json(out, result)
    return result


# -- quantisation benchmark: why each quantisation is offered or not --


def run_quantization_bench(
    *,
    methods: tuple[str, ...] = ("pixels", "autoencoder", "siamese"),
    gallery: int = 60_000,
    queries: int = 1000,
    oversamplings: tuple[float, ...] = (1, 2, 4, 8, 16),
    out: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Recall@10 of k=10 searches against exact search, for every method and
    quantisation, offered or not (:data:`schema.QUANTIZATION_OFFERS`).

    Each method's gallery is embedded once and written to fresh Edge
    collections in a temporary store: plain, int8 and binary (the same HNSW
    settings as ``fmsearch ingest``). The reference is numpy's exact top 10
    over the float32 vectors; each quantised collection is searched without
    rescore, then with rescore at each oversampling. A method's own values
    (e.g. that pixels are never negative) are reported beside.
    """
    from .store import QuantizationParams

    train, test = load_split("train", data_dir), load_split("test", data_dir)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp, open_store(None, home=tmp) as store:
        for method in methods:
            embedder = get_embedder(method)
            embedder.prepare()
            log(f"{method}: embedding {gallery} gallery and {queries} query images ...")
            g = embedder.embed(train.images[:gallery])
            q = embedder.embed(test.images[:queries])
            exact = np.argsort(-(q @ g.T), axis=1, kind="stable")[:, :10]
            labels = [{schema.LABEL: int(x)} for x in train.labels[:gallery]]

            def recall(points: list[list], exact=exact) -> float:
                return float(np.mean([len({p.id for p in pts} & set(ref.tolist())) / 10
                                      for pts, ref in zip(points, exact, strict=True)]))

            for quant in schema.QUANTIZATIONS:
                spec = schema.spec_for(embedder.describe(), "bench_", planned=gallery, quantization=quant, offered_only=False)
                time_ingest(store, spec, g, labels)
                search = lambda params, name=spec.name: store.query_batch(  # noqa: E731
                    name, q, 10, with_payload=False, quantization=params)
                row: dict[str, Any] = {
                    "method": method, "dim": int(g.shape[1]), "quantization": quant,
                    "offered": quant == "none" or quant in schema.QUANTIZATION_OFFERS.get(method, ()),
                    "negative_fraction": float((g < 0).mean()),
                }
                if quant == "none":
                    row["recall_hnsw"] = recall(search(None))
                else:
                    row["recall_no_rescore"] = recall(search(QuantizationParams(rescore=False)))
                    row["recall_rescore"] = {f"{o:g}": recall(search(QuantizationParams(True, float(o)))) for o in oversamplings}
                rows.append(row)
                log(f"{method} {quant}: done")
                store.delete(spec.name)
    head = " | ".join(f"rescore, oversampling {o:g}" for o in oversamplings)
    lines = [
        f"| method | dim | values < 0 | quantisation | offered | HNSW, float32 | no rescore | {head} |",
        "|---|---:|---:|---|---|---:|---:|" + "---:|" * len(oversamplings),
    ]
    for r in rows:
        if "recall_rescore" in r:
            hnsw = "-"
            cells = [f"{r['recall_no_rescore']:.4f}"] + [f"{v:.4f}" for v in r["recall_rescore"].values()]
        else:
            hnsw, cells = f"{r['recall_hnsw']:.4f}", ["-"] * (len(oversamplings) + 1)
        lines.append(
            f"| {r['method']} | {r['dim']} | {r['negative_fraction']:.0%} | {r['quantization']} | "
            f"{'yes' if r['offered'] else 'no'} | {hnsw} | " + " | ".join(cells) + " |"
        )
    result = {
        "benchmark": "quantization", "environment": _environment(), "gallery": gallery, "queries": queries,
        "k": 10, "rows": rows, "table": "\n".join(lines),
    }
    _write_json(out, result)
    return result
