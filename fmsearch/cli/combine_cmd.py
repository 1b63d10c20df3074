"""``fmsearch combine``: build the ensemble method from trained artifacts."""

from __future__ import annotations

import click

from .common import data_dir_option, domain_errors


@click.command("combine")
@click.argument("members", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="trained-models",
    show_default=True,
    help="Output directory; the shipped weights live in models/weights.",
)
@click.option(
    "--shifts",
    type=click.IntRange(0, 27),
    default=0,
    show_default=True,
    metavar="PIXELS",
    help="Also average each member's vector over the image moved PIXELS up, down, left and right "
    "(test-time shifts; 0: none). Costs five times the embedding time.",
)
@click.option("--no-eval", is_flag=True, help="Skip the test-split precision check recorded in the card.")
@data_dir_option
@domain_errors
def command(members, out, shifts, no_eval, data_dir) -> None:
    """Build the ensemble method from trained siamese and proxy artifacts
    (MEMBERS: .keras files made by `fmsearch train`): each member's vector
    averaged with its mirror image's (and, with --shifts, over the image
    moved a few pixels), concatenated and normalised, in one network. No
    training; writes OUT/ensemble.keras, its card (the members' cards, to
    retrain them) and its ONNX export."""
    from fmsearch.models.ensemble import build

    card = build(list(members), out, data_dir=data_dir, evaluate=not no_eval, shifts=shifts)
    click.echo(
        f"wrote {out}/ensemble.keras ({len(card['members'])} members, {card['embedding_dim']}-d, sha256 "
        f"{card['artifact_sha256'][:16]}...)"
    )
    if "eval_test_split_numpy_exact" in card:
        click.echo(
            "test split, exact: " + ", ".join(f"{k} {v:.4f}" for k, v in card["eval_test_split_numpy_exact"].items())
        )
