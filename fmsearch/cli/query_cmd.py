"""``fmsearch query``: nearest gallery images to an image file or a gallery id."""

from __future__ import annotations

import click

from .common import (
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    model_options,
    pass_settings,
    rerank_config,
    rerank_options,
)


@click.command("query")
@click.argument("image_path", required=False, type=click.Path(dir_okay=True))
@click.option("--id", "point_id", type=int, default=None, help="Query with FMNIST item ID (train 0-59999, test 60000-69999); the item itself is excluded.")
@click.option("--method", "-m", required=True, help="Embedding method, e.g. pixels.")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of results (1-1000).")
@click.option("--class", "classes", multiple=True, help="Only this class (repeatable), e.g. --class Sneaker.")
@click.option("--exclude-class", "exclude_classes", multiple=True, help="Never this class (repeatable).")
@click.option("--exact", is_flag=True, help="Exact search instead of HNSW.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@rerank_options
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(settings, image_path, point_id, method, k, classes, exclude_classes, exact, as_json,
            rerank, shortlist, rerank_mode, rerank_weight, ratio, weights, input_size, data_dir) -> None:
    """Find the gallery images most similar to IMAGE_PATH (or --id).

    With --rerank sift, METHOD proposes --shortlist candidates and SIFT
    reorders them by the fused score; results show both scores.
    """
    from ingest.images import load_image
    from search.query import Searcher, check_k

    if (image_path is None) == (point_id is None):
        raise click.UsageError("give exactly one of IMAGE_PATH or --id")
    check_k(k)
    reranking = rerank_config(rerank, shortlist, rerank_mode, rerank_weight, ratio)
    if reranking is not None:
        reranking.validate(k)
    searcher = Searcher(settings.store(), prefix=settings.prefix, data_dir=data_dir,
                        options={method: embedder_options(method, weights, input_size)})
    if point_id is not None:
        hits = searcher.query_id(method, point_id, k, classes=classes, exclude_classes=exclude_classes, exact=exact,
                               rerank=reranking)
    else:
        image = load_image(image_path)
        hits = searcher.query_image(method, image, k, classes=classes, exclude_classes=exclude_classes, exact=exact,
                                    rerank=reranking)
    if as_json:
        from dataclasses import asdict

        for hit in hits:
            row = asdict(hit)
            if reranking is None:  # rerank fields only when a rerank stage ran
                row.pop("first_score"), row.pop("rerank_score")
            echo_json(row)
        return
    if reranking is not None:
        click.echo(f"{'rank':>4}  {'id':>6}  {'fused':>7}  {method[:7]:>7}  {'sift':>7}  class")
        for h in hits:
            click.echo(f"{h.rank:>4}  {h.id:>6}  {h.score:>7.3f}  {h.first_score:>7.4f}  {h.rerank_score:>7.4f}  {h.class_name}")
    else:
        click.echo(f"{'rank':>4}  {'id':>6}  {'score':>7}  class")
        for h in hits:
            click.echo(f"{h.rank:>4}  {h.id:>6}  {h.score:>7.4f}  {h.class_name}")
    if not hits:
        click.echo("(no results)")
