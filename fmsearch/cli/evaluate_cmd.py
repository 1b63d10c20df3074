"""``fmsearch evaluate``: retrieval quality and speed on the FMNIST test split."""

from __future__ import annotations

import click

from .common import (
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    graph_search_options,
    mode_options,
    model_options,
    parse_ks,
    pass_settings,
    search_mode,
)


def _queries(value: str) -> int | None:
    """--queries: a count of test images (for a folder gallery, of its
    images held out as queries), or 'all' (None); the gallery checks it."""
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError as err:
        raise click.BadParameter(f"expected a number or 'all', got {value!r}") from err


@click.command("evaluate")
@click.option(
    "--method", "-m", required=True, help="Method whose collection to evaluate; methods joined by + are fused."
)
@click.option(
    "--task",
    type=click.Choice(["category", "near-duplicate"]),
    default="category",
    show_default=True,
    help="category: test images query the train gallery, relevant = same class. near-duplicate: "
    "transformed gallery images, relevant = the source image; measured without and with --rerank sift.",
)
@click.option(
    "--sources",
    type=int,
    default=1000,
    show_default=True,
    help="near-duplicate: gallery images transformed per transform.",
)
@click.option(
    "--queries",
    default="all",
    show_default=True,
    help="Number of test images as queries (seeded random subset), or 'all'.",
)
@click.option("--k", "ks", default="1,5,10,20", show_default=True, help="Comma-separated K values.")
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the query subset, R-precision and grid samples."
)
@click.option("--exact", is_flag=True, help="Exact search instead of HNSW.")
@graph_search_options
@click.option("--batch-size", type=int, default=256, show_default=True, help="Queries per batch request.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default=None,
    help="Output directory [default eval-results/METHOD[-exact], plus the mode's settings].",
)
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json as one JSON object.")
@click.option(
    "--collection",
    "gallery",
    default=None,
    help="Evaluate a folder gallery with classes instead: --queries "
    "N of its images, held out, query the rest (category task, one method).",
)
@mode_options
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(
    settings,
    method,
    task,
    sources,
    queries,
    ks,
    seed,
    exact,
    hnsw_ef,
    acorn,
    batch_size,
    out,
    as_json,
    gallery,
    weights,
    input_size,
    runtime,
    threads,
    data_dir,
    **mode,
) -> None:
    """Evaluate METHOD: test images query the train gallery.

    Writes metrics.json, report.md, pr_curve.png, results_grid.png and
    confusion.png (the retrieval confusion matrix) to --out.
    """
    if task == "near-duplicate":
        _refuse_unused(NEAR_DUPLICATE_TAKES, "--task near-duplicate")
        _near_duplicate(
            settings,
            method,
            sources,
            seed,
            exact,
            batch_size,
            out,
            as_json,
            mode,
            embedder_options((method,), weights, input_size, runtime, threads),
            data_dir,
        )
        return
    from fmsearch.evaluation.category import EvalConfig, evaluate
    from fmsearch.evaluation.report import write_report

    search = search_mode(method, **mode)
    config = EvalConfig(
        search,
        queries=_queries(queries),
        ks=parse_ks(ks),
        seed=seed,
        exact=exact,
        batch_size=batch_size,
        hnsw_ef=hnsw_ef,
        acorn=acorn,
        gallery=gallery,
    )
    out = out or config.out_dir
    store = settings.store()
    methods = (*search.methods, *([search.rescore_with] if search.rescore_with else []))
    with _progress(f"evaluate {method}") as bar:
        result = evaluate(
            store,
            config,
            prefix=settings.store_settings.prefix,
            data_dir=data_dir,
            options=embedder_options(methods, weights, input_size, runtime, threads),
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
        )
    data = write_report(result, store, out, data_dir)
    if as_json:
        echo_json(data)
        return
    _show(data, method, out)


#: what the near-duplicate task takes: one method's plain collection of FMNIST's gallery, searched
#: without and with the SIFT rerank (its settings); any other option given is refused, not ignored
NEAR_DUPLICATE_TAKES = (
    "method",
    "task",
    "sources",
    "seed",
    "exact",
    "batch_size",
    "out",
    "as_json",
    "shortlist",
    "rerank_mode",
    "rerank_weight",
    "ratio",
    "weights",
    "input_size",
    "runtime",
    "threads",
    "data_dir",
)


def _refuse_unused(takes: tuple[str, ...], task: str) -> None:
    """A usage error naming the first option given (on the command line or
    by its environment variable) that ``task`` does not take."""
    from click.core import ParameterSource

    ctx = click.get_current_context()
    for param in ctx.command.params:
        source = ctx.get_parameter_source(param.name or "")
        if param.name not in takes and source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            raise click.UsageError(f"{task} does not take {param.opts[0]}")


def _progress(desc: str):
    from tqdm import tqdm

    return tqdm(total=0, unit="query", desc=desc, disable=None)


def _show(data: dict, method: str, out: str) -> None:
    click.echo(f"{method} on {data['collection']}: {data['queries']} queries, {data['search']}")
    first = data.get("first_stage")
    click.echo(
        f"{'K':>4}  {'P@K':>7}  {'R@K':>7}  {'F1@K':>7}  {'mAP@K':>7}" + ("  P@K without rerank" if first else "")
    )
    for k, m in data["metrics"].items():
        extra = f"  {first['metrics'][k]['precision']:>7.4f}" if first else ""
        click.echo(f"{k:>4}  {m['precision']:>7.4f}  {m['recall']:>7.4f}  {m['f1']:>7.4f}  {m['map']:>7.4f}{extra}")
    ann = data["ann_recall_at_10"]["value"]
    ann_text = (
        "n/a (exact)" if data["search"] == "exact" else "n/a (a fusion or a rescoring has no single exact reference)"
    )
    lat = data["latency"]
    rp = data["r_precision"]["value"]
    click.echo(
        f"top-1 accuracy {data['top1_accuracy']:.4f}; R-precision {'n/a' if rp is None else format(rp, '.4f')}; "
        f"recall@10 vs exact {ann_text if ann is None else f'{ann:.4f}'}"
    )
    click.echo(
        f"latency p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms; "
        f"batch {data['throughput']['queries_per_s']:.0f} queries/s"
    )
    click.echo(f"wrote {out}/metrics.json, report.md, pr_curve.png, results_grid.png, confusion.png")


def _near_duplicate(settings, method, sources, seed, exact, batch_size, out, as_json, mode, options, data_dir) -> None:
    from fmsearch.evaluation.near_duplicate import (
        NearDuplicateConfig,
        evaluate_near_duplicates,
    )
    from fmsearch.evaluation.report import write_near_duplicate_report
    from fmsearch.search.rerank import RerankConfig

    if "+" in method:
        raise click.UsageError("--task near-duplicate takes a single --method")
    rerank = RerankConfig(
        shortlist=mode["shortlist"], mode=mode["rerank_mode"], weight=mode["rerank_weight"], ratio=mode["ratio"]
    )
    config = NearDuplicateConfig(
        method=method, sources=sources, seed=seed, rerank=rerank, exact=exact, batch_size=batch_size
    )
    out = out or config.out_dir
    with _progress(f"near-duplicate {method}") as bar:
        data = evaluate_near_duplicates(
            settings.store(),
            config,
            prefix=settings.store_settings.prefix,
            data_dir=data_dir,
            options=options,
            progress=bar.update,
            on_plan=lambda n: bar.reset(total=n),
        )
    write_near_duplicate_report(data, out)
    if as_json:
        echo_json(data)
        return
    click.echo(
        f"{method} + SIFT {rerank.mode} rerank (w={rerank.weight:g}, N={rerank.shortlist}), "
        f"{data['sources']} sources per transform"
    )
    click.echo(f"{'transform':<20}  {'R@1':>6}  {'R@1 rr':>6}  {'R@10':>6}  {'R@10 rr':>7}")
    for name, v in {**data["per_transform"], "mean": data["mean"]}.items():
        click.echo(
            f"{name:<20}  {v['recall@1']:>6.4f}  {v['recall@1_reranked']:>6.4f}  "
            f"{v['recall@10']:>6.4f}  {v['recall@10_reranked']:>7.4f}"
        )
    click.echo(f"wrote {out}/metrics.json, report.md, recall.png")
