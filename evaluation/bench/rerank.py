"""Rerank suite: SIFT extraction per upscale factor, the SIFT gallery's
ingest, and the rerank's latency against the plain query in the same process."""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.timing import BenchResult, environment, p50_ms
from fmsearch.images.fmnist import load_split
from fmsearch.ingest.indexer import ingest
from fmsearch.models.registry import get_ingestible
from fmsearch.models.sift import SiftExtractor
from fmsearch.search.mode import SearchMode
from fmsearch.search.rerank import RERANK_MODES, RerankConfig
from fmsearch.search.searcher import Searcher
from fmsearch.store import Store, open_store, schema

logger = logging.getLogger(__name__)


def _extraction(images: np.ndarray, upscales: tuple[int, ...], log) -> list[dict[str, Any]]:
    """Keypoints per image, images without any, and ms per image, per factor."""
    out = []
    for u in upscales:
        sift = SiftExtractor(upscale=u)
        sift.prepare()
        t0 = time.perf_counter()
        counts = np.array([len(sift.descriptors(img)) for img in images])
        out.append(
            {
                "upscale": u,
                "images": len(images),
                "keypoints_mean": float(counts.mean()),
                "no_keypoints_fraction": float((counts == 0).mean()),
                "ms_per_image": 1000 * (time.perf_counter() - t0) / len(images),
            }
        )
        log(f"sift x{u}: {counts.mean():.1f} keypoints/image, {(counts == 0).mean():.1%} without any")
    return out


def _latencies(store: Store, q_images: np.ndarray, shortlist: int, data_dir) -> dict[str, float]:
    searcher = Searcher(store, data_dir=data_dir)
    reranker = searcher.reranker
    vectors = searcher.embedder("pixels").embed(q_images)
    lists = [searcher.search_vectors("pixels", v[None], shortlist)[0] for v in vectors]
    descs = [reranker.query_descriptors(img) for img in q_images]
    idx = list(range(len(q_images)))
    latency = {
        "plain_query_k10": p50_ms(lambda i: searcher.search("pixels", image=q_images[i], k=10), idx),
        "shortlist_query": p50_ms(lambda i: searcher.search("pixels", image=q_images[i], k=shortlist), idx),
        "sift_on_query_image": p50_ms(lambda i: reranker.query_descriptors(q_images[i]), idx),
    }

    def rerank_ms(config: RerankConfig) -> float:
        return p50_ms(lambda i: reranker.rerank(lists[i], descs[i], config), idx)

    def query_ms(mode: SearchMode) -> float:
        return p50_ms(lambda i: searcher.search(mode, image=q_images[i], k=10), idx)

    for name in RERANK_MODES:
        config = RerankConfig(shortlist=shortlist, mode=name)
        latency[f"rerank_{name}"] = rerank_ms(config)
        latency[f"query_with_rerank_{name}"] = query_ms(SearchMode("pixels", rerank=config))
    return latency


def run_rerank_bench(
    *,
    gallery: int = 60_000,
    queries: int = 200,
    shortlist: int = 100,
    upscales: tuple[int, ...] = (1, 2, 3, 4),
    data_dir=None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
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
    test = load_split("test", data_dir)
    extraction = _extraction(test.images[:1000], upscales, log)
    with tempfile.TemporaryDirectory(prefix="fmsearch-bench-") as tmp, open_store(None, home=tmp) as store:
        ingests = {}
        for method in ("pixels", "sift"):
            log(f"{method}: ingesting {gallery} images ...")
            report = ingest(store, get_ingestible(method), limit=gallery, data_dir=data_dir)
            ingests[method] = {
                "points": report.points_total,
                "embed_s": report.seconds_embed,
                "write_s": report.seconds_write,
                "index_s": report.seconds_index,
                "total_s": report.seconds,
                "disk_bytes": store.disk_bytes(schema.collection_name(method)),
            }
        latency = _latencies(store, test.images[:queries], shortlist, data_dir)
    data = {
        "environment": environment(),
        "gallery": gallery,
        "queries": queries,
        "shortlist": shortlist,
        "latency_p50_ms": latency,
        "ingest": ingests,
        "extraction": extraction,
    }
    return BenchResult("rerank", data, _table(latency, ingests, extraction, shortlist))


def _table(latency, ingests, extraction, shortlist: int) -> str:
    base = latency["plain_query_k10"]
    steps = [
        ("plain query (pixels, k=10)", "plain_query_k10"),
        (f"first stage only (k={shortlist})", "shortlist_query"),
        ("SIFT on the query image", "sift_on_query_image"),
        (f"rerank {shortlist} by maxsim (in Qdrant)", "rerank_maxsim"),
        (f"rerank {shortlist} by lowe (client side)", "rerank_lowe"),
        ("query + SIFT + maxsim rerank, end to end", "query_with_rerank_maxsim"),
        ("query + SIFT + lowe rerank, end to end", "query_with_rerank_lowe"),
    ]
    pixels = ingests["pixels"]["total_s"]
    return "\n\n".join(
        [
            markdown.table(
                ["step", "p50 ms", "vs plain query"],
                [[label, f"{latency[key]:.2f}", f"{latency[key] / base:.1f}x"] for label, key in steps],
            ),
            markdown.table(
                ["collection", "points", "ingest s (extract/embed + write + index)", "vs pixels", "MB on disk"],
                [
                    [
                        schema.collection_name(m),
                        i["points"],
                        f"{i['total_s']:.0f} ({i['embed_s']:.0f} + {i['write_s']:.0f} + {i['index_s']:.0f})",
                        f"{i['total_s'] / pixels:.1f}x",
                        f"{i['disk_bytes'] / 1e6:.0f}",
                    ]
                    for m, i in ingests.items()
                ],
            ),
            markdown.table(
                ["upscale", "keypoints / image", "images without keypoints", "ms / image"],
                [
                    [
                        f"{e['upscale']}x",
                        f"{e['keypoints_mean']:.1f}",
                        f"{e['no_keypoints_fraction']:.1%}",
                        f"{e['ms_per_image']:.2f}",
                    ]
                    for e in extraction
                ],
                "rrrr",
            ),
        ]
    )
