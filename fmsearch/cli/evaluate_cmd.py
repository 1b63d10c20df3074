"""``fmsearch evaluate``: retrieval quality and speed on the FMNIST test split."""

from __future__ import annotations

import click

from .common import (
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    model_options,
    pass_settings,
    quantization_options,
    quantization_params,
    rerank_config,
    rerank_options,
)


def _queries(value: str) -> int | None:
    if value == "all":
        return None
    try:
        return int(value)
    except ValueError as err:
        raise click.BadParameter(f"expected a number or 'all', got {value!r}") from err


@click.command("evaluate")
@click.option("--method", "-m", required=True, help="Method whose collection to evaluate; methods joined by + are fused.")
@click.option("--fusion", type=click.Choice(["rrf", "dbsf"]), default="rrf", show_default=True, help="How fused methods combine.")
@click.option("--fusion-weights", default=None, help="Comma-separated weight per fused method.")
@click.option("--rescore-with", default=None, help="Another method orders --method's shortlist (see fmsearch query).")
@click.option("--task", type=click.Choice(["category", "near-duplicate"]), default="category", show_default=True,
              help="category: test images query the train gallery, relevant = same class. near-duplicate: "
              "transformed gallery images, relevant = the source image; measured without and with --rerank sift.")
@click.option("--sources", type=int, default=1000, show_default=True, help="near-duplicate: gallery images transformed per transform.")
@click.option("--queries", default="all", show_default=True, help="Number of test images as queries (seeded random subset), or 'all'.")
@click.option("--k", "k_list", default="1,5,10,20", show_default=True, help="Comma-separated K values.")
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the query subset, R-precision and grid samples.")
@click.option("--exact", is_flag=True, help="Exact search instead of HNSW.")
@click.option("--hnsw-ef", type=click.IntRange(1, 100000), default=None, help="HNSW search breadth (default 128).")
@click.option("--batch-size", type=int, default=256, show_default=True, help="Queries per batch request.")
@click.option("--out", type=click.Path(file_okay=False), default=None, help="Output directory [default eval-results/METHOD[-exact], plus the mode's settings].")
@click.option("--json", "as_json", is_flag=True, help="Print metrics.json as one JSON object.")
@rerank_options
@quantization_options
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(settings, method, fusion, fusion_weights, rescore_with, task, sources, queries, k_list, seed, exact, hnsw_ef, batch_size, out, as_json,
            rerank, shortlist, rerank_mode, rerank_weight, ratio, quantization, oversampling, rescore,
            weights, input_size, data_dir) -> None:
    """Evaluate METHOD: test images query the train gallery.

    Writes metrics.json, report.md, pr_curve.png and results_grid.png to --out.
    """
    from tqdm import tqdm

    from search.evaluate import EvalConfig, evaluate
    from search.metrics import parse_ks
    from search.query import parse_methods
    from search.report import write_report

    names = parse_methods(method)
    if task == "near-duplicate":
        if len(names) > 1 or rescore_with:
            raise click.UsageError("--task near-duplicate takes a single --method")
        if quantization != "none" or oversampling is not None or not rescore:
            raise click.UsageError("--task near-duplicate searches the plain collection: no --quantization options")
        _near_duplicate(settings, method, sources, seed, exact, batch_size, out, as_json,
                        rerank_config("sift", shortlist, rerank_mode, rerank_weight, ratio),
                        embedder_options(method, weights, input_size), data_dir)
        return
    from .query_cmd import _weights
    config = EvalConfig(
        method=method, queries=_queries(queries), ks=parse_ks(k_list), seed=seed,
        exact=exact, batch_size=batch_size, hnsw_ef=hnsw_ef,
        rerank=rerank_config(rerank, shortlist, rerank_mode, rerank_weight, ratio),
        quantization=quantization, rescore=rescore, oversampling=oversampling,
        fusion=fusion, rescore_with=rescore_with, shortlist=shortlist,
        fusion_weights=None if fusion_weights is None else tuple(_weights(fusion_weights)),
    )
    quantization_params(quantization, rescore, oversampling)
    config.validate()
    suffix = f"-{rerank}-{rerank_mode}" if rerank else ""
    if quantization != "none":
        suffix += f"-{quantization}-{'rescore' if rescore else 'norescore'}" + (f"-os{oversampling:g}" if oversampling else "")
    if len(names) > 1:
        suffix += f"-{fusion}" + (f"-w{','.join(f'{w:g}' for w in config.fusion_weights)}" if config.fusion_weights else "")
    if rescore_with:
        suffix += f"-rescored-{rescore_with}"
    out = out or f"eval-results/{method}{'-exact' if exact else ''}{suffix}"
    store = settings.store()
    bar = tqdm(total=0, unit="query", desc=f"evaluate {method}", disable=None)
    try:
        result = evaluate(
            store, config, prefix=settings.prefix, data_dir=data_dir,
            options={m: embedder_options(m, weights, input_size) for m in (*names, *([rescore_with] if rescore_with else []))},
            progress=bar.update, on_plan=lambda n: bar.reset(total=n),
        )
    finally:
        bar.close()
    data = write_report(result, store, out, data_dir)
    if as_json:
        echo_json(data)
        return
    click.echo(f"{method} on {data['collection']}: {data['queries']} queries, {data['search']}")
    first = data.get("first_stage")
    click.echo(f"{'K':>4}  {'P@K':>7}  {'R@K':>7}  {'F1@K':>7}  {'mAP@K':>7}" + ("  P@K without rerank" if first else ""))
    for k, m in data["metrics"].items():
        extra = f"  {first['metrics'][k]['precision']:>7.4f}" if first else ""
        click.echo(f"{k:>4}  {m['precision']:>7.4f}  {m['recall']:>7.4f}  {m['f1']:>7.4f}  {m['map']:>7.4f}{extra}")
    ann = data["ann_recall_at_10"]["value"]
    ann_text = "n/a (exact)" if data["search"] == "exact" else "n/a (a fusion or a rescoring has no single exact reference)"
    lat = data["latency"]
    click.echo(
        f"top-1 accuracy {data['top1_accuracy']:.4f}; R-precision "
        f"{'n/a' if data['r_precision']['value'] is None else format(data['r_precision']['value'], '.4f')}; "
        f"recall@10 vs exact {ann_text if ann is None else f'{ann:.4f}'}"
    )
    click.echo(
        f"latency p50 {lat['p50_ms']:.2f} ms, p95 {lat['p95_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms; "
        f"batch {data['throughput']['queries_per_s']:.0f} queries/s"
    )
    click.echo(f"wrote {out}/metrics.json, report.md, pr_curve.png, results_grid.png")


def _near_duplicate(settings, method, sources, seed, exact, batch_size, out, as_json, rerank, options, data_dir) -> None:
    from tqdm import tqdm

    from search.near_duplicate import NearDuplicateConfig, evaluate_near_duplicates, write_near_duplicate_report

    config = NearDuplicateConfig(method=method, sources=sources, seed=seed, rerank=rerank, exact=exact, batch_size=batch_size)
    config.validate()
    out = out or f"eval-results/near-duplicate-{method}-sift-{rerank.mode}"
    bar = tqdm(total=0, unit="query", desc=f"near-duplicate {method}", disable=None)
    try:
        data = evaluate_near_duplicates(
            settings.store(), config, prefix=settings.prefix, data_dir=data_dir, options={method: options},
            progress=bar.update, on_plan=lambda n: bar.reset(total=n),
        )
    finally:
        bar.close()
    write_near_duplicate_report(data, out)
    if as_json:
        echo_json(data)
        return
    click.echo(f"{method} + SIFT {rerank.mode} rerank (w={rerank.weight:g}, N={rerank.shortlist}), "
               f"{data['sources']} sources per transform")
    click.echo(f"{'transform':<20}  {'R@1':>6}  {'R@1 rr':>6}  {'R@10':>6}  {'R@10 rr':>7}")
    for name, v in {**data["per_transform"], "mean": data["mean"]}.items():
        click.echo(f"{name:<20}  {v['recall@1']:>6.4f}  {v['recall@1_reranked']:>6.4f}  "
                   f"{v['recall@10']:>6.4f}  {v['recall@10_reranked']:>7.4f}")
    click.echo(f"wrote {out}/metrics.json, report.md, recall.png")
