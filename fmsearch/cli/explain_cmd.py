"""``fmsearch explain``: why two images are close under a method (occlusion heatmaps)."""

from __future__ import annotations

import click

from fmsearch.search.explain import FILL, FILLS, PATCH, STRIDE

from .common import (
    data_dir_option,
    domain_errors,
    echo_json,
    embedder_options,
    id_or_image,
    model_options,
    pass_settings,
    write_png,
)


def _name(searcher, arg: str, example) -> str:
    if not isinstance(example, int):
        return arg
    described = searcher.gallery.describe(example)
    if not described:
        return f"id {example}"
    return f"id {example} ({described['split']} {described['index']}, {described['class_name']})"


def _where(heat) -> str:
    """The rows and columns of the pixels holding at least half the largest heat."""
    import numpy as np

    top = float(heat.max())
    if top <= 0:
        return "no part (occluding any part leaves the similarity as high or higher)"
    rows, cols = np.nonzero(heat >= top / 2)
    return f"rows {rows.min()}-{rows.max()}, columns {cols.min()}-{cols.max()} (at least half its peak heat)"


# "-1" is an (out-of-range) id, not an unknown option: refused in one line, not with usage
@click.command("explain", context_settings={"ignore_unknown_options": True})
@click.argument("image_a")
@click.argument("image_b")
@click.option("--method", "-m", required=True, help="The method whose similarity is explained, e.g. siamese.")
@click.option(
    "--collection",
    "gallery",
    default=None,
    help="Ids are this folder gallery's (fmsearch ingest --images) instead of FMNIST's.",
)
@click.option("--out", default=None, help="Write the two heatmaps over the images to this PNG.")
@click.option("--patch", type=int, default=PATCH, show_default=True, help="Occluded square's side in pixels (1-28).")
@click.option("--stride", type=int, default=STRIDE, show_default=True, help="Pixels between windows (1 to --patch).")
@click.option("--fill", default=FILL, show_default=True, help=f"What fills a window: {', '.join(FILLS)}.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object, the heatmaps included.")
@model_options
@data_dir_option
@pass_settings
@domain_errors
def command(
    settings, image_a, image_b, method, gallery, out, patch, stride, fill, as_json, weights, input_size, runtime,
    threads, data_dir,
) -> None:  # fmt: skip
    """Why IMAGE_A (the query) and IMAGE_B (a hit) are close under METHOD:
    each a path or a gallery id.

    \b
    Windows of --patch x --patch pixels, every --stride pixels, are filled
    (--fill) in one image at a time; every variant of both is embedded in
    one batch. A pixel's heat is the mean cosine similarity lost when the
    windows covering it are filled: red, that part made the pair similar;
    blue, it held them apart. The defaults were chosen on validation
    queries by `fmsearch bench explain --sweep` (docs/methods.md).
    """
    from fmsearch.search.explain import Occlusion, one_method
    from fmsearch.search.searcher import Searcher

    occlusion = Occlusion(patch, stride, fill)  # refused before the model loads
    one_method(method)
    examples = [id_or_image(image_a), id_or_image(image_b)]
    searcher = Searcher(
        settings.store(),
        gallery=settings.gallery(gallery, data_dir),
        options=embedder_options((method,), weights, input_size, runtime, threads),
    )
    if gallery is not None:  # named: it must exist, whatever A and B are
        searcher.collection(method)
    e = searcher.explain(method, examples[0], examples[1], occlusion)
    names = [_name(searcher, arg, ex) for arg, ex in zip((image_a, image_b), examples, strict=True)]
    result = {"a": names[0], "b": names[1], **e.to_dict()}
    if out:
        write_png(e.drawing(), out)
        result["out"] = out
    if as_json:
        echo_json(result)
        return
    click.echo(f"A (query): {names[0]}")
    click.echo(f"B (hit):   {names[1]}")
    click.echo(f"{method} cosine similarity: {e.similarity:.4f}")
    click.echo(f"what made A close to B: {_where(e.query_heat)}")
    click.echo(f"what made B close to A: {_where(e.hit_heat)}")
    click.echo(
        f"occlusion: {patch}x{patch} windows every {stride} px, filled {fill}; "
        f"{e.batch} images in one batch, {e.ms:.1f} ms"
    )
    if out:
        click.echo(f"wrote {out} (red: made them similar, blue: held them apart)")
