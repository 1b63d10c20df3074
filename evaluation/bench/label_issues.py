"""The label-issues suite: ``fmsearch label-issues --inject-noise`` at a
gallery size beyond FMNIST's, where the index's graph should win most.

The gallery is the scale suite's jittered one: a method's vectors of the
60,000 train images, then copies of them with Gaussian noise, each point
carrying its original's class; stored as a folder gallery (``jittered``)
in a temporary embedded store. The run itself is the command, in a process
of its own (so that its time and peak memory are its own), with cleanlab's
Datalab beside it on the same vectors and labels.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from fmsearch import environment as env_vars
from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation.bench import galleries
from fmsearch.evaluation.bench.timing import BenchResult, environment
from fmsearch.evaluation.label_issues import K
from fmsearch.evaluation.report import detection_table
from fmsearch.images.fmnist import CLASS_NAMES, load_split
from fmsearch.store import schema
from fmsearch.store.edge import EdgeStore

logger = logging.getLogger(__name__)

GALLERY = "jittered"
_WRITE_BATCH = 2000


def _build(home: Path, method: str, points: int, data_dir, log: Callable[[str], None]) -> dict[str, float]:
    """The jittered gallery of ``points`` stored in ``home``; its timings."""
    from fmsearch.models import get_embedder

    embedder = get_embedder(method)
    train = load_split("train", data_dir)
    base = min(points, len(train))
    log(f"{method}: embedding the {base:,} train images, jittered to {points:,} points ...")
    t0 = time.perf_counter()
    vectors = galleries.jittered(embedder.embed(train.images[:base]), points, seed=0)
    labels = train.labels[galleries.sources(points, base)]
    t1 = time.perf_counter()
    name = schema.gallery_collection(GALLERY, method)
    spec = schema.folder_spec_for(embedder.describe(), GALLERY, "(jittered vectors)", list(CLASS_NAMES), name, points)
    with EdgeStore(home) as store:
        store.create(spec)
        for lo in range(0, points, _WRITE_BATCH):
            ids = list(range(lo, min(points, lo + _WRITE_BATCH)))
            payloads = [
                {schema.LABEL: int(labels[i]), schema.CLASS_NAME: CLASS_NAMES[int(labels[i])], schema.PATH: f"{i}"}
                for i in ids
            ]
            store.upsert(name, ids, vectors[lo : lo + len(ids)], payloads)
        t2 = time.perf_counter()
        store.finalize(name)
        store.set_metadata(name, {schema.META_COMPLETE: True})
    log(f"{name}: {points:,} points stored and indexed")
    return {"embed_s": t1 - t0, "upsert_s": t2 - t1, "index_s": time.perf_counter() - t2}


def run_label_issues_bench(
    *,
    method: str = "autoencoder",
    points: int = 300_000,
    rate: float = 0.02,
    seed: int = 3,
    mode: str = "uniform",
    data_dir=None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """The jittered gallery built, then ``fmsearch label-issues`` on it with
    injected noise and cleanlab beside it; the time ratio is cleanlab's time
    over fmsearch's, both measured in this run."""
    with tempfile.TemporaryDirectory(prefix="fmsearch-label-issues-") as tmp:
        home = Path(tmp) / "home"
        build = _build(home, method, points, data_dir, log)
        args = ["label-issues", "-m", method, "--collection", GALLERY, "--out", str(Path(tmp) / "out")]
        args += ["--inject-noise", str(rate), "--noise", mode, "--seed", str(seed), "--json"]
        log(f"fmsearch label-issues on {points:,} points, cleanlab beside it ...")
        done = subprocess.run(  # the store built here, whatever the caller's environment names
            [sys.executable, "-m", "fmsearch", "--home", str(home), *args],
            capture_output=True,
            text=True,
            env=env_vars.without_store(),
        )
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines() or ["no output"]
            raise InvalidArgumentError(f"fmsearch label-issues failed on the jittered gallery: {lines[-1]}")
        run = json.loads(done.stdout.strip().splitlines()[-1])
    ours = {**run["detection"], "seconds": run["cost"]["seconds"], "peak_rss_mb": run["cost"]["peak_rss_mb"]}
    rows = {f"fmsearch (the index's graph, k={K})": ours, **run["reference"]["rows"]}
    cleanlab_s = run["reference"]["rows"]["cleanlab Datalab, its own kNN graph (scikit-learn, exact)"]["seconds"]
    data = {
        **environment(),
        "settings": {"method": method, "points": points, "rate": rate, "seed": seed, "mode": mode},
        "build": build,
        "rows": rows,
        "cleanlab_over_fmsearch_time": cleanlab_s / ours["seconds"],
    }
    table = detection_table(list(rows.items()))
    table += f"\n\ncleanlab's time / fmsearch's: {data['cleanlab_over_fmsearch_time']:.2f}x ({points:,} points)"
    return BenchResult("label-issues", data, table)
