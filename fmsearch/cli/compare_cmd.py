"""``fmsearch compare``: SIFT keypoints and Lowe-ratio matches of two images."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors, echo_json, point_id_or_none


def _load(arg: str, data_dir):
    """An image path, or a gallery id (train 0-59999, test 60000-69999)."""
    from pathlib import Path

    from ingest.fmnist import CLASS_NAMES, load_split
    from ingest.images import load_image
    from search.schema import split_index

    pid = point_id_or_none(arg)
    if pid is not None and not Path(arg).exists():
        split, index = split_index(pid)  # a negative or too large id: one line
        data = load_split(split, data_dir)
        return data.images[index], f"id {pid} ({split} {index}, {CLASS_NAMES[int(data.labels[index])]})"
    return load_image(arg), arg


# "-1" is an (out-of-range) id, not an unknown option: refused in one line, not with usage
@click.command("compare", context_settings={"ignore_unknown_options": True})
@click.argument("image_a")
@click.argument("image_b")
@click.option("--out", type=click.Path(dir_okay=False), default=None, help="Write the drawing of the matches to this PNG.")
@click.option("--ratio", type=float, default=0.75, show_default=True, help="Lowe's ratio: a match is good when nearest < ratio x second nearest.")
@click.option("--upscale", type=int, default=3, show_default=True, help="Enlarge the 28x28 images this many times before SIFT.")
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
    from models.sift import SiftExtractor, draw_matches, maxsim_score, ratio_test

    img_a, name_a = _load(image_a, data_dir)
    img_b, name_b = _load(image_b, data_dir)
    extractor = SiftExtractor(upscale=upscale, root=not plain)
    fa, fb = extractor.features(img_a), extractor.features(img_b)
    good = ratio_test(fa.descriptors, fb.descriptors, ratio)
    lowe = len(good) / len(fa) if len(fa) else 0.0
    result = {
        "a": name_a, "b": name_b, "keypoints_a": len(fa), "keypoints_b": len(fb),
        "good_matches": len(good), "ratio": ratio, "lowe_score": lowe,
        "maxsim_score": maxsim_score(fa.descriptors, fb.descriptors),
        "upscale": upscale, "descriptors": "sift" if plain else "rootsift",
    }
    if out:
        from PIL import Image

        try:
            Image.fromarray(draw_matches(fa, fb, good)).save(out, format="PNG")
        except OSError as err:
            raise click.ClickException(f"cannot write {out}: {err.strerror or err}") from err
        result["out"] = out
    if as_json:
        echo_json(result)
        return
    click.echo(f"A: {name_a}: {len(fa)} keypoints")
    click.echo(f"B: {name_b}: {len(fb)} keypoints")
    click.echo(f"good matches (Lowe ratio {ratio:g}): {len(good)}")
    click.echo(f"Lowe score = good matches / keypoints of A = {len(good)}/{len(fa)} = {lowe:.4f}")
    click.echo(f"MaxSim score = {result['maxsim_score']:.4f}")
    if out:
        click.echo(f"wrote {out}")
