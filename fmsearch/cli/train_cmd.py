"""``fmsearch train``: train a method and write its artifact and model card."""

from __future__ import annotations

import click

from fmsearch.models.registry import TRAINABLE
from fmsearch.models.siamese import MINING

from .common import data_dir_option, domain_errors


@click.command("train")
@click.option("--method", "-m", required=True, type=click.Choice(TRAINABLE), help="Method to train.")
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--mining", type=click.Choice(sorted(MINING)), default=None,
              help="siamese: how triplets are mined within each batch [default semi-hard].")
@click.option("--learning-rate", type=float, default=1e-3, show_default=True, help="Adam's initial rate (cosine decay to 0).")
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="siamese: continue training this artifact (its card is kept in the new card).")
@click.option("--limit", type=int, default=None, help="Train on the first N train images only (for quick checks).")
@click.option("--out", type=click.Path(file_okay=False), default="trained-models", show_default=True,
              help="Output directory; the shipped weights live in models/weights.")
@click.option("--no-eval", is_flag=True, help="Skip the test-split precision check recorded in the card.")
@data_dir_option
@domain_errors
def command(method, epochs, batch_size, seed, mining, learning_rate, init, limit, out, no_eval, data_dir) -> None:
    """Train METHOD on the FMNIST train split; writes OUT/METHOD.keras and its card."""
    from fmsearch.models.training import train_method

    card = train_method(method, epochs=epochs, batch_size=batch_size, seed=seed, out=out, limit=limit,
                        data_dir=data_dir, evaluate=not no_eval, mining=mining, learning_rate=learning_rate, init=init,
                        log=click.echo)
    click.echo(f"wrote {out}/{method}.keras (sha256 {card['artifact_sha256'][:16]}...), final loss {card['final_loss']:.4f}, "
               f"{card['wall_time_s']:.0f}s")
    if "eval_test_split_numpy_exact" in card:
        click.echo("test split, exact: " + ", ".join(f"{k} {v:.4f}" for k, v in card["eval_test_split_numpy_exact"].items()))
