"""``fmsearch query``: nearest gallery images to an image file or a gallery id."""

from __future__ import annotations

import click

from .common import (
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    graph_search_options,
    id_or_image,
    mode_options,
    model_options,
    parse_point_id,
    pass_settings,
    search_mode,
)


@click.command("query")
@click.argument("image_path", required=False, type=click.Path(dir_okay=True))
@click.option(
    "--id",
    "id_",
    metavar="ID",
    default=None,
    help="Query with FMNIST item ID (train 0-59999, test 60000-69999); the item itself is excluded.",
)
@click.option(
    "--method",
    "-m",
    required=True,
    help="Embedding method, e.g. pixels; or methods joined by + (autoencoder+siamese), whose results are fused.",
)
@click.option("--positive", multiple=True, help="Recommend: a positive example, gallery id or image path (repeatable).")
@click.option("--negative", multiple=True, help="Recommend: a negative example, gallery id or image path (repeatable).")
@click.option("-k", "k", type=int, default=10, show_default=True, help="Number of results (1-1000).")
@click.option("--offset", type=int, default=0, show_default=True, help="Skip this many results first (the next page).")
@click.option("--min-score", type=float, default=None, help="Leave out results scoring below this.")
@click.option("--class", "classes", multiple=True, help="Only this class (repeatable), e.g. --class Sneaker.")
@click.option("--exclude-class", "exclude_classes", multiple=True, help="Never this class (repeatable).")
@click.option("--exact", is_flag=True, help="Exact search instead of HNSW.")
@graph_search_options
@click.option("--json", "as_json", is_flag=True, help="One JSON object per hit.")
@click.option(
    "--collection",
    "gallery",
    default=None,
    help="Search this folder gallery (fmsearch ingest --images) instead of FMNIST; --id is then its point id.",
)
@mode_options
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(
    settings,
    image_path,
    id_,
    method,
    positive,
    negative,
    k,
    offset,
    min_score,
    classes,
    exclude_classes,
    exact,
    hnsw_ef,
    acorn,
    as_json,
    gallery,
    weights,
    input_size,
    runtime,
    threads,
    data_dir,
    **mode,
) -> None:
    """Find the gallery images most similar to IMAGE_PATH (or --id).

    With --rerank sift, METHOD proposes --shortlist candidates and SIFT
    reorders them by the fused score; results show both scores.
    """
    from functools import partial

    from fmsearch.images.files import load_image
    from fmsearch.search.query import Query
    from fmsearch.search.searcher import Searcher

    search = search_mode(method, **mode)
    query = Query(
        image=None if image_path is None else partial(load_image, image_path),  # read once checked
        id=None if id_ is None else parse_point_id(id_),
        positive=tuple(id_or_image(e) for e in positive),
        negative=tuple(id_or_image(e) for e in negative),
        k=k,
        offset=offset,
        min_score=min_score,
        classes=classes,
        exclude_classes=exclude_classes,
        exact=exact,
    )
    query.check(search)
    searcher = Searcher(
        settings.store(),
        gallery=settings.gallery(gallery, data_dir),
        hnsw_ef=hnsw_ef,
        acorn=acorn,
        options=embedder_options(
            (*search.methods, *([search.rescore_with] if search.rescore_with else [])),
            weights,
            input_size,
            runtime,
            threads,
        ),
    )
    hits = searcher.search(search, query)
    _show(hits, search, as_json, folder=any(h.path is not None for h in hits))  # hits with paths: the path table


def _show(hits, mode, as_json: bool, folder: bool = False) -> None:
    two_scores = mode.rerank is not None or mode.rescore_with is not None
    if as_json:
        from dataclasses import asdict

        for hit in hits:
            row = asdict(hit)
            if not two_scores:  # the second-stage fields only when a second stage ran
                row.pop("first_score"), row.pop("rerank_score")
            for key in ("method_ranks", "path"):  # a fusion's hits have ranks, a folder image's a path
                if row[key] is None:
                    row.pop(key)
            if folder:  # no FMNIST split and index
                row.pop("split"), row.pop("index")
            echo_json(row)
        return
    if folder and mode.rescore_with is None and mode.rerank is None:
        click.echo(f"{'rank':>4}  {'id':>16}  {'score':>7}  {'class':<12}  path")
        for h in hits:
            click.echo(f"{h.rank:>4}  {h.id:>16}  {h.score:>7.4f}  {h.class_name or '-':<12}  {h.path}")
        if not hits:
            click.echo("(no results)")
        return
    if mode.rescore_with is not None and mode.rerank is None:
        click.echo(f"{'rank':>4}  {'id':>6}  {mode.rescore_with[:7]:>7}  {mode.method[:7]:>7}  class")
        for h in hits:
            click.echo(f"{h.rank:>4}  {h.id:>6}  {h.score:>7.4f}  {h.first_score:>7.4f}  {h.class_name}")
    elif mode.rerank is not None:
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
