"""``fmsearch map``: a 2-D map of a method's gallery."""

from __future__ import annotations

import json
from pathlib import Path

import click

from .common import domain_errors, echo_json, pass_settings


@click.command("map")
@click.option("--method", "-m", required=True, help="The collection to map: its method (pixels, siamese, ...).")
@click.option(
    "--points",
    type=int,
    default=None,
    help="Map a seeded sample of this many stored points [default: every point, up to 70,000].",
)
@click.option(
    "--algorithm",
    type=click.Choice(["umap", "tsne"]),
    default=None,
    help="The projection [default tsne: it kept more neighbours in less time, docs/insight.md].",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the sample and the projection.")
@click.option(
    "--out", type=click.Path(file_okay=False), default=None, help="Output directory [default eval-results/map-METHOD]."
)
@click.option("--json", "as_json", is_flag=True, help="Print the map's figures as JSON.")
@pass_settings
@domain_errors
def command(settings, method, points, algorithm, seed, out, as_json) -> None:
    """Project METHOD's stored vectors to 2-D (UMAP or openTSNE, seeded; the
    map extra) and measure how well the map keeps neighbours: the share of
    each point's 10 nearest neighbours (cosine) still among its 10 nearest
    on the map. Writes map.json (id, x, y, label of each point) and map.png;
    `fmsearch serve` shows the map on its page (--insight).
    """
    from fmsearch.evaluation.plots import gallery_map
    from fmsearch.evaluation.projection import DEFAULT_ALGORITHM, MAX_POINTS, MapConfig, make_map
    from fmsearch.models.registry import check_method

    config = MapConfig(check_method(method), points or MAX_POINTS, algorithm or DEFAULT_ALGORITHM, seed)
    out = Path(out or config.out_dir)
    data = make_map(
        settings.store(),
        config,
        prefix=settings.store_settings.prefix,
        on_step=None if as_json else lambda text: click.echo(text, err=True),
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "map.json").write_text(json.dumps(data, separators=(",", ":")))
    gallery_map(data, out / "map.png")
    figures = {k: v for k, v in data.items() if k not in ("ids", "x", "y", "labels", "collection_metadata")}
    if as_json:
        echo_json({**figures, "out": str(out)})
        return
    click.echo(
        f"{data['collection']}: {data['points']} points mapped with {config.algorithm} in "
        f"{data['seconds']:.1f} s; neighbour keeping@10 {data['neighbour_keeping@10']:.3f}"
    )
    click.echo(f"wrote {out}/map.json, map.png")
