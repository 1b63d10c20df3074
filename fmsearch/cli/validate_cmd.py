"""``fmsearch validate``: design figures of trained artifacts on the validation split."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors, parse_numbers


@click.command("validate")
@click.argument("weights", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--validation",
    type=int,
    default=10_000,
    show_default=True,
    metavar="N",
    help="The held-out last N train images the artifacts were trained without (train --validation N).",
)
@click.option(
    "--limit", type=int, default=None, help="The artifacts were trained with --limit N: the split is of the first N."
)
@click.option(
    "--mirror", is_flag=True, help="Also each artifact with each image's vector averaged with its mirror image's."
)
@click.option(
    "--shifts",
    type=click.IntRange(0, 27),
    default=0,
    show_default=True,
    metavar="PIXELS",
    help="Also each artifact mirror-averaged and averaged over the image moved PIXELS up, down, left and "
    "right (as combine --shifts; 0: not measured).",
)
@click.option(
    "--expand",
    default="0",
    show_default=True,
    metavar="N,...",
    help="Query expansions to measure (0: none), as the search mode --expand N runs them.",
)
@data_dir_option
@domain_errors
def command(weights, validation, limit, mirror, shifts, expand, data_dir) -> None:
    """P@1 and P@10 of each trained artifact (WEIGHTS: .keras files made by
    `fmsearch train --validation N`) on the last N train images against the
    others, never the test split; with several, also their vectors
    concatenated. Prints a markdown table."""
    from fmsearch.evaluation.markdown import table
    from fmsearch.evaluation.validation import validation_rows

    expansions = parse_numbers(expand, "--expand", int) or ()  # --expand has a default: never None
    rows = validation_rows(
        list(weights),
        validation=validation,
        limit=limit,
        mirror=mirror,
        shifts=shifts,
        expand=expansions,
        data_dir=data_dir,
    )
    click.echo(
        table(["variant", "P@1", "P@10"], [[r.variant, f"{r.p_at_1:.4f}", f"{r.p_at_10:.4f}"] for r in rows], "lrr")
    )
