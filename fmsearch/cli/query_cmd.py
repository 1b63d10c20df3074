"""``fmsearch query``: nearest gallery images to an image file or a gallery id."""

from __future__ import annotations

import click

from .common import (
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    model_options,
    parse_point_id,
    pass_settings,
    point_id_or_none,
    quantization_options,
    quantization_params,
    rerank_config,
    rerank_options,
)


@click.command("query")
@click.argument("image_path", required=False, type=click.Path(dir_okay=True))
@click.option("--id", "point_id", metavar="ID", default=None, help="Query with FMNIST item ID (train 0-59999, test 60000-69999); the item itself is excluded.")
@click.option("--method", "-m", required=True, help="Embedding method, e.g. pixels; or methods joined by + (autoencoder+siamese), whose results are fused.")
@click.option("--fusion", type=click.Choice(["rrf", "dbsf"]), default="rrf", show_default=True, help="How fused methods' lists combine: reciprocal-rank or distribution-based score fusion.")
@click.option("--fusion-weights", default=None, help="Comma-separated weight per fused method, e.g. 1,2.")
@click.option("--rescore-with", default=None, help="Another method orders --method's shortlist by its own cosine (its stored vectors).")
@click.option("--positive", multiple=True, help="Recommend: a positive example, gallery id or image path (repeatable).")
@click.option("--negative", multiple=True, help="Recommend: a negative example, gallery id or image path (repeatable).")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of results (1-1000).")
@click.option("--class", "classes", multiple=True, help="Only this class (repeatable), e.g. --class Sneaker.")
@click.option("--exclude-class", "exclude_classes", multiple=True, help="Never this class (repeatable).")
@click.option("--exact", is_flag=True, help="Exact search instead of HNSW.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@rerank_options
@quantization_options
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(settings, image_path, point_id, method, fusion, fusion_weights, rescore_with, positive, negative, k, classes, exclude_classes, exact, as_json,
            rerank, shortlist, rerank_mode, rerank_weight, ratio, quantization, oversampling, rescore,
            weights, input_size, data_dir) -> None:
    """Find the gallery images most similar to IMAGE_PATH (or --id).

    With --rerank sift, METHOD proposes --shortlist candidates and SIFT
    reorders them by the fused score; results show both scores.
    """
    from ingest.images import load_image
    from search.query import Searcher, check_k, parse_methods

    if positive or negative:
        if image_path is not None or point_id is not None or rescore_with or rerank or "+" in method:
            raise click.UsageError("--positive/--negative make a recommend query: no IMAGE_PATH, --id, fusion, --rescore-with or --rerank with them")
    elif (image_path is None) == (point_id is None):
        raise click.UsageError("give exactly one of IMAGE_PATH or --id (or --positive examples)")
    if point_id is not None:
        point_id = parse_point_id(point_id)
    check_k(k)
    reranking = rerank_config(rerank, shortlist, rerank_mode, rerank_weight, ratio)
    if reranking is not None:
        reranking.validate(k)
    qparams = quantization_params(quantization, rescore, oversampling)
    names = parse_methods(method)
    searcher = Searcher(settings.store(), prefix=settings.prefix, data_dir=data_dir,
                        options={m: embedder_options(m, weights, input_size) for m in names},
                        quantization=quantization, quantization_params=qparams)
    if positive or negative:
        hits = searcher.recommend(method, [_example(e) for e in positive], [_example(e) for e in negative], k,
                                  classes=classes, exclude_classes=exclude_classes)
    else:
        hits = searcher.search(
            names, image=None if image_path is None else load_image(image_path), pid=point_id, k=k,
            classes=classes, exclude_classes=exclude_classes, exact=exact, shortlist=shortlist,
            fusion=fusion, weights=_weights(fusion_weights), rescore_with=rescore_with, rerank=reranking,
        )
    two_scores = reranking is not None or rescore_with is not None
    if as_json:
        from dataclasses import asdict

        for hit in hits:
            row = asdict(hit)
            if not two_scores:  # the second-stage fields only when a second stage ran
                row.pop("first_score"), row.pop("rerank_score")
            echo_json(row)
        return
    if rescore_with is not None and reranking is None:
        click.echo(f"{'rank':>4}  {'id':>6}  {rescore_with[:7]:>7}  {method[:7]:>7}  class")
        for h in hits:
            click.echo(f"{h.rank:>4}  {h.id:>6}  {h.score:>7.4f}  {h.first_score:>7.4f}  {h.class_name}")
    elif reranking is not None:
        click.echo(f"{'rank':>4}  {'id':>6}  {'fused':>7}  {'first':>7}  {'sift':>7}  class")
        for h in hits:
            first = "-" if h.first_score is None else f"{h.first_score:.4f}"
            click.echo(f"{h.rank:>4}  {h.id:>6}  {h.score:>7.3f}  {first:>7}  {h.rerank_score:>7.4f}  {h.class_name}")
    else:
        click.echo(f"{'rank':>4}  {'id':>6}  {'score':>7}  class")
        for h in hits:
            click.echo(f"{h.rank:>4}  {h.id:>6}  {h.score:>7.4f}  {h.class_name}")
    if not hits:
        click.echo("(no results)")


def _example(text: str):
    """A recommend example: a gallery id, or an image path (loaded now)."""
    from pathlib import Path

    from ingest.images import load_image

    pid = point_id_or_none(text)
    if pid is not None and not Path(text).exists():
        return pid  # out of range is refused by the search, in one line
    return load_image(text)


def _weights(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        return [float(w) for w in text.split(",")]
    except ValueError as err:
        raise click.BadParameter(f"expected comma-separated numbers, got {text!r}", param_hint="--fusion-weights") from err
