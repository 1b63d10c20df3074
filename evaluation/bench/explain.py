"""Explain suite (``fmsearch bench explain``): are the occlusion heatmaps
faithful, and what does one cost?

Pairs are real: each query's hit is one of the first ten train images the
method's collection in the configured store answers (exact search, the query
left out), at a rank drawn uniformly from 1 to 10, the page's first row. For each
pair the query's heatmap is computed (:func:`~fmsearch.search.searcher.Searcher.explain`)
and the deletion test (:mod:`~fmsearch.evaluation.faithfulness`) is run with
the heatmap's order, a random order and a centre-first order; each AUC is
that of the same pair, so the ratio of the means is measured on equal terms.

- ``--sweep``: the patch, stride and fill are chosen here, on validation
  queries (train 50,000-59,999, never the test split): every setting of
  :data:`GRID`, the deletion AUC and the time of each, and the choice: the
  lowest mean ratio to the random order over the methods among the settings
  whose siamese explanation fits :data:`~fmsearch.search.explain.EXPLAIN_BUDGET_MS`
  (timed first, in a pass of its own, every setting in turn each round).
- the default run: 500 test queries per method (``--pairs``) with the
  chosen setting, each order's AUC with its spread, and one explanation's time in
  ``fmsearch serve`` (started as a command) against a search by id of the
  same server, requests alternated.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from fmsearch.errors import FmsearchError, InvalidArgumentError
from fmsearch.evaluation import markdown
from fmsearch.evaluation.bench.serve import _Server
from fmsearch.evaluation.bench.timing import BenchResult, environment
from fmsearch.evaluation.faithfulness import ORDERS, bootstrap_ratio, deletion_aucs
from fmsearch.images.fmnist import SPLIT_SIZES
from fmsearch.search.explain import EXPLAIN_BUDGET_MS, FILLS, Occlusion, explain_pair
from fmsearch.search.searcher import Searcher
from fmsearch.store import QueryFilter, StoreSettings

logger = logging.getLogger(__name__)

METHODS = ("pixels", "autoencoder", "siamese", "proxy", "distilled", "ensemble")
#: the methods the sweep chooses for (the ensemble, thirty network passes an image, is measured with
#: the choice but too slow to sweep)
SWEEP_METHODS = ("autoencoder", "siamese", "proxy", "distilled")
#: (patch, stride) of the sweep, each with every fill
GRID = ((3, 3), (4, 4), (5, 3), (5, 5), (7, 3), (7, 4), (7, 7), (9, 4), (9, 5))
#: the train ids the sweep's queries come from: held out of the test split (the shipped models were
#: trained on all 60,000 train images; the settings chosen are the occlusion's, not the models')
VALIDATION = (50_000, 60_000)
#: the method whose explanation the service's goal times
SERVICE_METHOD = "siamese"
#: the sweep times each setting's siamese explanation on this many validation images, this many rounds
TIMED_PAIRS = 20
TIMED_ROUNDS = 30
GOAL_RATIO = 0.7
GOAL_SERVICE_MS = 50.0


def query_hit_pairs(
    searcher: Searcher, method: str, query_ids: Sequence[int], rng: np.random.Generator
) -> list[tuple[int, int, int]]:
    """(query id, hit id, rank): each query's hit at a rank drawn from 1 to
    10 among the method's exact top 10 of the train images (the query itself
    left out), as the collection stores their vectors."""
    ids = [int(q) for q in query_ids]
    vectors = np.concatenate([searcher.vector_of(method, q) for q in ids]) if ids else np.zeros((0, 1))
    filters = [QueryFilter(split="train", exclude_ids=(q,)) for q in ids]
    pairs = []
    for qid, hits in zip(ids, searcher.search_vectors(method, vectors, 10, filters, exact=True), strict=True):
        if hits:
            hit = hits[min(int(rng.integers(0, 10)), len(hits) - 1)]
            pairs.append((qid, hit.id, hit.rank))
    return pairs


def _measure(
    searcher: Searcher,
    method: str,
    pairs: list[tuple[int, int, int]],
    occlusion: Occlusion,
    rng: np.random.Generator,
    baselines: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Explain every pair, then the deletion AUCs of each order of
    :data:`~fmsearch.evaluation.faithfulness.ORDERS` (all but the heatmap's
    taken from ``baselines`` when given: they do not depend on the occlusion)."""
    embedder = searcher.embedder(method)
    queries = np.stack([searcher.image_of(method, q) for q, _, _ in pairs])
    hits = np.stack([searcher.image_of(method, h) for _, h, _ in pairs])
    searcher.explain(method, queries[0], hits[0], occlusion)  # warm: the model loads once
    heats, ms = [], []
    for q, h in zip(queries, hits, strict=True):
        e = searcher.explain(method, q, h, occlusion)
        heats.append(e.query_heat)
        ms.append(e.ms)
    targets = embedder.embed(hits)
    orders = ORDERS if baselines is None else ("heatmap",)
    aucs = {**(baselines or {}), **deletion_aucs(embedder, queries, targets, np.stack(heats), rng, orders)}
    return {"aucs": aucs, "ms": ms, "batch": 2 + 2 * occlusion.variants}


def _summary(aucs: dict[str, np.ndarray], ms: list[float], rng: np.random.Generator) -> dict[str, Any]:
    heat, rand, garment, centre = aucs["heatmap"], aucs["random"], aucs["garment"], aucs["centre"]
    ratio, lo, hi = bootstrap_ratio(heat, rand, rng)
    per_pair = heat / np.where(rand != 0, rand, np.nan)
    return {
        "pairs": len(heat),
        **{f"auc_{k}": float(v.mean()) for k, v in aucs.items()},
        **{f"auc_{k}_sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in aucs.items()},
        "ratio_random": ratio,
        "ratio_random_ci95": [lo, hi],
        "ratio_garment": float(heat.mean() / garment.mean()),
        "ratio_centre": float(heat.mean() / centre.mean()),
        "pair_ratio_quartiles": [float(q) for q in np.nanquantile(per_pair, [0.25, 0.5, 0.75])],
        "beats_random": float((heat < rand).mean()),
        "beats_centre": float((heat < centre).mean()),
        "ms_p50": statistics.median(ms),
        "ms_p95": float(np.quantile(ms, 0.95)),
    }


def _check(pairs: int, seed: int, split: tuple[int, int]) -> None:
    """Refuse a number of pairs the split cannot give, or a negative seed, before any work."""
    if not 1 <= pairs <= split[1] - split[0]:
        raise InvalidArgumentError(f"pairs must be between 1 and {split[1] - split[0]}, got {pairs}", param="pairs")
    if seed < 0:
        raise InvalidArgumentError(f"seed must be at least 0, got {seed}", param="seed")


def _ids(lo: int, hi: int, n: int, rng: np.random.Generator) -> list[int]:
    _check(n, 0, (lo, hi))
    return sorted(int(i) for i in rng.choice(np.arange(lo, hi), size=n, replace=False))


def run_explain_bench(
    settings: StoreSettings,
    *,
    methods: Sequence[str] | None = None,
    pairs: int = 500,
    seed: int = 0,
    service: bool = True,
    requests: int = 100,
    data_dir: str | None = None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Faithfulness of the chosen occlusion on ``pairs`` test queries per
    method, in the store ``settings`` open (closed before the service, which
    opens it, starts), and (``service``) one explanation's time in the service.

    Raises:
        CollectionNotFoundError: a method is not ingested in the store.
        FmsearchError: the service did not start, or does not serve siamese.
    """
    methods = tuple(methods or METHODS)
    occlusion = Occlusion()
    test = (SPLIT_SIZES["train"], SPLIT_SIZES["train"] + SPLIT_SIZES["test"])
    _check(pairs, seed, test)
    timed = service and SERVICE_METHOD in methods
    if service and not timed:
        log(f"the service is not timed: its goal is {SERVICE_METHOD}'s, and --methods leaves it out")
    rows = []
    with settings.open() as store:
        searcher = Searcher(store, prefix=settings.prefix, data_dir=data_dir)
        for method in methods:
            searcher.collection(method)  # not ingested: refused before any work
        for i, method in enumerate(methods):
            rng = np.random.default_rng([seed, i])
            t0 = time.perf_counter()
            chosen = query_hit_pairs(searcher, method, _ids(*test, pairs, rng), rng)
            measured = _measure(searcher, method, chosen, occlusion, rng)
            rows.append(
                {"method": method, "batch": measured["batch"], **_summary(measured["aucs"], measured["ms"], rng)}
            )
            log(_said(rows[-1], time.perf_counter() - t0))
        rng = np.random.default_rng([seed, 99])
        service_pairs = query_hit_pairs(searcher, SERVICE_METHOD, _ids(*test, requests, rng), rng) if timed else []
    times = None
    if service_pairs:
        times = _service_times(settings, service_pairs, data_dir)
        log(f"service: {times['explain_ms_p50']:.1f} ms an explanation, {times['search_ms_p50']:.1f} ms a search")
    data = {
        "environment": environment(),
        "occlusion": occlusion.settings(),
        "split": "test",
        "pairs_per_method": pairs,
        "seed": seed,
        "rows": rows,
        "service": times,
        "goals": _goals(rows, times),
    }
    return BenchResult("explain", data, _table(data))


def _said(r: dict[str, Any], seconds: float) -> str:
    return (
        f"{r['method']}: deletion AUC {r['auc_heatmap']:.3f} against random {r['auc_random']:.3f} "
        f"(x{r['ratio_random']:.3f}), garment first {r['auc_garment']:.3f}, centre {r['auc_centre']:.3f}; "
        f"{r['ms_p50']:.1f} ms an explanation; "
        f"{seconds:.0f} s"
    )


def _post(url: str, body: dict[str, Any]) -> float:
    """Milliseconds a JSON POST takes, its answer read.

    Raises:
        FmsearchError: the service answered with an error, or not at all (one line).
    """
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=60) as answer:
            answer.read()
    except urllib.error.HTTPError as err:
        raise FmsearchError(f"the service answered {url} with {err.code}: {err.read()[:200]!r}") from err
    except OSError as err:  # refused, reset, timed out
        raise FmsearchError(f"the service did not answer {url}: {err}") from err
    return (time.perf_counter() - t0) * 1000


def _service_times(served: StoreSettings, pairs: list[tuple[int, int, int]], data_dir: str | None) -> dict[str, Any]:
    """One explanation's time in ``fmsearch serve`` (one worker, one client),
    against a search by the same id in the same server, alternated."""
    explain, search = [], []
    with _Server.service(served, [SERVICE_METHOD], 1, data_dir=data_dir) as server:
        for q, h, _ in pairs[:5]:  # warm: the first requests load what they need
            _post(f"{server.url}/api/explain", {"a": q, "b": h, "method": SERVICE_METHOD})
            _post(f"{server.url}/api/search", {"id": q, "method": SERVICE_METHOD, "k": 10})
        for q, h, _ in pairs:
            explain.append(_post(f"{server.url}/api/explain", {"a": q, "b": h, "method": SERVICE_METHOD}))
            search.append(_post(f"{server.url}/api/search", {"id": q, "method": SERVICE_METHOD, "k": 10}))
    return {
        "method": SERVICE_METHOD,
        "requests": len(pairs),
        "explain_ms_p50": statistics.median(explain),
        "explain_ms_p95": float(np.quantile(explain, 0.95)),
        "search_ms_p50": statistics.median(search),
        "search_ms_p95": float(np.quantile(search, 0.95)),
        "ratio_to_search": statistics.median(explain) / statistics.median(search),
    }


def _goals(rows: list[dict[str, Any]], service: dict[str, Any] | None) -> list[dict[str, Any]]:
    goals = [
        {
            "goal": f"{r['method']}: deletion AUC <= {GOAL_RATIO}x the random order's",
            "measured": r["ratio_random"],
            "met": r["ratio_random"] <= GOAL_RATIO,
        }
        for r in rows
        if r["method"] != "pixels"
    ]
    if service is not None:
        goals.append(
            {
                "goal": f"{SERVICE_METHOD}: one explanation <= {GOAL_SERVICE_MS:g} ms in the service (median)",
                "measured": service["explain_ms_p50"],
                "met": service["explain_ms_p50"] <= GOAL_SERVICE_MS,
            }
        )
    return goals


def _table(data: dict[str, Any]) -> str:
    o = data["occlusion"]
    head = ["method", "pairs", "heatmap AUC", "random AUC", "garment AUC", "centre AUC", "x random (95% CI)",
            "x garment", "x centre", "per-pair x random quartiles", "beats random", "ms (p50, p95)",
            "batch"]  # fmt: skip
    rows = [
        [
            r["method"],
            r["pairs"],
            f"{r['auc_heatmap']:.3f} ± {r['auc_heatmap_sd']:.3f}",
            f"{r['auc_random']:.3f} ± {r['auc_random_sd']:.3f}",
            f"{r['auc_garment']:.3f} ± {r['auc_garment_sd']:.3f}",
            f"{r['auc_centre']:.3f} ± {r['auc_centre_sd']:.3f}",
            f"{r['ratio_random']:.3f} ({r['ratio_random_ci95'][0]:.3f}-{r['ratio_random_ci95'][1]:.3f})",
            f"{r['ratio_garment']:.3f}",
            f"{r['ratio_centre']:.3f}",
            " / ".join(f"{q:.2f}" for q in r["pair_ratio_quartiles"]),
            f"{r['beats_random']:.1%}",
            f"{r['ms_p50']:.1f}, {r['ms_p95']:.1f}",
            r["batch"],
        ]
        for r in data["rows"]
    ]
    parts = [
        f"Deletion test, {data['split']} split, patch {o['patch']} stride {o['stride']} fill {o['fill']} "
        "(AUC: mean ± sd over the pairs; lower is better)",
        markdown.table(head, rows),
    ]
    s = data["service"]
    if s:
        parts.append(
            markdown.table(
                ["in `fmsearch serve`", "p50 ms", "p95 ms"],
                [
                    [f"POST /api/explain ({s['method']})", f"{s['explain_ms_p50']:.1f}", f"{s['explain_ms_p95']:.1f}"],
                    ["POST /api/search by id (baseline)", f"{s['search_ms_p50']:.1f}", f"{s['search_ms_p95']:.1f}"],
                ],
            )
        )
    goals = [[g["goal"], f"{g['measured']:.3f}", "met" if g["met"] else "missed"] for g in data["goals"]]
    parts.append(markdown.table(["goal", "measured", "met"], goals))
    return "\n\n".join(parts)


def run_explain_sweep(
    settings: StoreSettings,
    *,
    methods: Sequence[str] | None = None,
    pairs: int = 100,
    seed: int = 0,
    grid: Sequence[tuple[int, int]] = GRID,
    rounds: int = TIMED_ROUNDS,
    data_dir: str | None = None,
    log: Callable[[str], None] = logger.info,
) -> BenchResult:
    """Every setting of ``grid`` (patch, stride) x the fills on validation
    queries, each setting's siamese explanation timed ``rounds`` times, and
    the setting chosen (see the module's docstring)."""
    methods = tuple(methods or SWEEP_METHODS)
    _check(pairs, seed, VALIDATION)
    settings_grid = [Occlusion(p, s, f) for p, s in grid for f in FILLS]
    rows = []
    with settings.open() as store:
        searcher = Searcher(store, prefix=settings.prefix, data_dir=data_dir)
        for method in methods:
            searcher.collection(method)
        rng = np.random.default_rng([seed, 98])
        timed = _ids(*VALIDATION, TIMED_PAIRS, rng)
        budget_ms = _budget_times(searcher, timed, settings_grid, rounds)
        log("siamese ms an explanation: " + ", ".join(f"{k[0]}/{k[1]}/{k[2]} {v:.1f}" for k, v in budget_ms.items()))
        for i, method in enumerate(methods):
            rng = np.random.default_rng([seed, i])
            chosen = query_hit_pairs(searcher, method, _ids(*VALIDATION, pairs, rng), rng)
            baselines = None
            for occlusion in settings_grid:
                orders_rng = np.random.default_rng([seed, i, 1])
                measured = _measure(searcher, method, chosen, occlusion, orders_rng, baselines)
                baselines = {k: v for k, v in measured["aucs"].items() if k != "heatmap"}
                summary = _summary(measured["aucs"], measured["ms"], rng)
                rows.append({"method": method, **occlusion.settings(), "batch": measured["batch"], **summary})
                log(
                    f"{method} patch {occlusion.patch} stride {occlusion.stride} fill {occlusion.fill}: "
                    f"x{summary['ratio_random']:.3f} random, {summary['ms_p50']:.1f} ms"
                )
    data = {
        "environment": environment(),
        "split": f"validation: train {VALIDATION[0]}-{VALIDATION[1] - 1}",
        "pairs_per_method": pairs,
        "seed": seed,
        "budget_ms": EXPLAIN_BUDGET_MS,
        "siamese_ms": [{"patch": k[0], "stride": k[1], "fill": k[2], "ms_p50": v} for k, v in budget_ms.items()],
        "rows": rows,
        "chosen": _choose(rows, budget_ms),
    }
    return BenchResult("explain-sweep", data, _sweep_table(data))


def _budget_times(searcher: Searcher, ids: list[int], grid: list[Occlusion], rounds: int) -> dict[tuple, float]:
    """The siamese explanation's median time per setting, the settings taken
    in turn round after round (so that a machine's drift falls on all alike),
    on validation images; the choice's budget is read against these."""
    images = [searcher.image_of(SERVICE_METHOD, i) for i in ids]
    embedder = searcher.embedder(SERVICE_METHOD)
    explain_pair(embedder, images[0], images[1], grid[0])  # warm
    times: dict[tuple, list[float]] = {(o.patch, o.stride, o.fill): [] for o in grid}
    for r in range(rounds):
        a, b = images[r % len(images)], images[(r + 1) % len(images)]
        for o in grid:
            times[o.patch, o.stride, o.fill].append(explain_pair(embedder, a, b, o).ms)
    return {k: statistics.median(v) for k, v in times.items()}


def _choose(rows: list[dict[str, Any]], budget_ms: dict[tuple, float]) -> dict[str, Any] | None:
    """The setting of the lowest mean ratio to random over the methods, among
    those whose siamese explanation fits the budget (None: none fits)."""
    by_setting: dict[tuple, list[dict[str, Any]]] = {}
    for r in rows:
        by_setting.setdefault((r["patch"], r["stride"], r["fill"]), []).append(r)
    fits = [
        (statistics.mean(r["ratio_random"] for r in group), key)
        for key, group in by_setting.items()
        if budget_ms.get(key, float("inf")) <= EXPLAIN_BUDGET_MS
    ]
    if not fits:
        return None
    ratio, (patch, stride, fill) = min(fits)
    return {
        "patch": patch,
        "stride": stride,
        "fill": fill,
        "mean_ratio_random": ratio,
        "siamese_ms": budget_ms[patch, stride, fill],
    }


def _sweep_table(data: dict[str, Any]) -> str:
    methods = list(dict.fromkeys(r["method"] for r in data["rows"]))
    cells: dict[tuple, dict[str, str]] = {}
    for r in data["rows"]:
        cells.setdefault((r["patch"], r["stride"], r["fill"], r["batch"]), {})[r["method"]] = (
            f"{r['ratio_random']:.3f} ({r['ms_p50']:.0f} ms)"
        )
    timed = {(t["patch"], t["stride"], t["fill"]): t["ms_p50"] for t in data["siamese_ms"]}
    head = ["patch", "stride", "fill", "batch", "siamese ms (timed)", *[f"{m}: x random (ms)" for m in methods]]
    rows = [[*key, f"{timed[key[:3]]:.1f}", *[c.get(m, "-") for m in methods]] for key, c in cells.items()]
    chosen = data["chosen"]
    said = (
        f"chosen: patch {chosen['patch']}, stride {chosen['stride']}, fill {chosen['fill']} "
        f"(mean x{chosen['mean_ratio_random']:.3f} random; siamese {chosen['siamese_ms']:.1f} ms, "
        f"within {data['budget_ms']:g} ms)"
        if chosen
        else "no setting chosen: none fits the budget"
    )
    return f"Occlusion settings on the {data['split']} ({data['pairs_per_method']} pairs per method)\n\n" + (
        markdown.table(head, rows) + "\n\n" + said
    )


__all__ = ["GRID", "METHODS", "query_hit_pairs", "run_explain_bench", "run_explain_sweep"]
