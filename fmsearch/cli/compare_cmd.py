"""``fmsearch compare``: SIFT keypoints and Lowe-ratio matches of two images."""

from __future__ import annotations

import click

from fmsearch.models.sift import DEFAULT_RATIO, DEFAULT_UPSCALE

from .common import data_dir_option, domain_errors, echo_json, id_or_image, write_png


def _load(arg: str, data_dir):
    """An image path, or a gallery id (train 0-59999, test 60000-69999)."""
    from fmsearch.search.searcher import fmnist_item

    image = id_or_image(arg)
    if not isinstance(image, int):
        return image, arg
    item = fmnist_item(image, data_dir)  # a negative or too large id: one line
    return item.image, f"id {item.id} ({item.split} {item.index}, {item.class_name})"


# "-1" is an (out-of-range) id, not an unknown option: refused in one line, not with usage
@click.command("compare", context_settings={"ignore_unknown_options": True})
@click.argument("image_a")
@click.argument("image_b")
@click.option(
    "--out", type=click.Path(dir_okay=False), default=None, help="Write the drawing of the matches to this PNG."
)
@click.option(
    "--ratio",
    type=float,
    default=DEFAULT_RATIO,
    show_default=True,
    help="Lowe's ratio: a match is good when nearest < ratio x second nearest.",
)
@click.option(
    "--upscale",
    type=int,
    default=DEFAULT_UPSCALE,
    show_default=True,
    help="Enlarge the 28x28 images this many times before SIFT.",
)
@click.option("--plain", is_flag=True, help="Plain SIFT descriptors instead of RootSIFT.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@data_dir_option
@domain_errors
def command(image_a, image_b, out, ratio, upscale, plain, as_json, data_dir) -> None:
    """Compare IMAGE_A and IMAGE_B with SIFT (each a path or a gallery id).

    \b
    Lowe score = good matches / keypoints of IMAGE_A, where a descriptor of A
                 matches its nearest descriptor of B (L2) and the match is good
                 when that distance < RATIO x the distance to the second nearest.
    MaxSim     = mean over A's descriptors of the best cosine with B's.
    Both are in [0, 1]; identical images score 1, an image without keypoints 0.
    """
    from fmsearch.models.sift import SiftExtractor, compare

    img_a, name_a = _load(image_a, data_dir)
    img_b, name_b = _load(image_b, data_dir)
    c = compare(img_a, img_b, SiftExtractor(upscale=upscale, root=not plain), ratio)
    result = {
        "a": name_a,
        "b": name_b,
        "keypoints_a": len(c.a),
        "keypoints_b": len(c.b),
        "good_matches": len(c.matches),
        "ratio": ratio,
        "lowe_score": c.lowe_score,
        "maxsim_score": c.maxsim_score,
        "upscale": upscale,
        "descriptors": "sift" if plain else "rootsift",
    }
    if out:
        write_png(c.drawing(), out)
        result["out"] = out
    if as_json:
        echo_json(result)
        return
    click.echo(f"A: {name_a}: {len(c.a)} keypoints")
    click.echo(f"B: {name_b}: {len(c.b)} keypoints")
    click.echo(f"good matches (Lowe ratio {ratio:g}): {len(c.matches)}")
    click.echo(f"Lowe score = good matches / keypoints of A = {len(c.matches)}/{len(c.a)} = {c.lowe_score:.4f}")
    click.echo(f"MaxSim score = {c.maxsim_score:.4f}")
    if out:
        click.echo(f"wrote {out}")
