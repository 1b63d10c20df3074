"""``fmsearch train``: train a method and write its artifact and model card."""

from __future__ import annotations

import click

from fmsearch.models.augment import AUGMENTATIONS
from fmsearch.models.registry import TRAINABLE
from fmsearch.models.siamese import MINING

from .common import data_dir_option, domain_errors


@click.command("train")
@click.option("--method", "-m", required=True, type=click.Choice(TRAINABLE), help="Method to train.")
@click.option("--epochs", type=int, default=15, show_default=True)
@click.option("--batch-size", type=int, default=256, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--mining",
    type=click.Choice(sorted(MINING)),
    default=None,
    help="siamese: how triplets are mined within each batch [default semi-hard].",
)
@click.option(
    "--learning-rate", type=float, default=1e-3, show_default=True, help="Adam's initial rate (cosine decay to 0)."
)
@click.option(
    "--init",
    type=click.Path(dir_okay=False),
    default=None,
    help="siamese: continue training this artifact (its card is kept in the new card).",
)
@click.option(
    "--augment",
    type=click.Choice(AUGMENTATIONS),
    default=None,
    help="proxy: the training images' augmentation [default flip-shift].",
)
@click.option(
    "--loss",
    default=None,
    help="proxy: cosface (the margin softmax) or cosface+triplet [default cosface]; distilled: relational+cosface "
    "(the teacher's in-batch cosines, with the margin softmax on the labels), cosine (to the teacher's vectors) "
    "or cosine+cosface [default relational+cosface].",
)
@click.option(
    "--teacher",
    type=click.Path(dir_okay=False),
    default=None,
    help="distilled: the artifact whose vectors the student learns [default: the shipped ensemble].",
)
@click.option(
    "--views",
    type=int,
    default=None,
    help="distilled: shifted copies of each train image the teacher embeds, besides the image [default 0].",
)
@click.option("--limit", type=int, default=None, help="Train on the first N train images only (for quick checks).")
@click.option(
    "--validation",
    type=int,
    default=None,
    metavar="N",
    help="Hold out the last N train images (after --limit): train on the rest, record their P@1 and P@10 "
    "against it in the card. Design choices are made by this figure, never by the test split.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="trained-models",
    show_default=True,
    help="Output directory; the shipped weights live in models/weights.",
)
@click.option("--no-eval", is_flag=True, help="Skip the test-split precision check recorded in the card.")
@data_dir_option
@domain_errors
def command(
    method,
    epochs,
    batch_size,
    seed,
    mining,
    learning_rate,
    init,
    augment,
    loss,
    teacher,
    views,
    limit,
    validation,
    out,
    no_eval,
    data_dir,
) -> None:
    """Train METHOD on the FMNIST train split; writes OUT/METHOD.keras and its card."""
    from fmsearch.models.training import train_method

    card = train_method(
        method,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        out=out,
        limit=limit,
        data_dir=data_dir,
        evaluate=not no_eval,
        mining=mining,
        learning_rate=learning_rate,
        init=init,
        validation=validation,
        augment=augment,
        loss=loss,
        teacher=teacher,
        views=views,
        log=click.echo,
    )
    click.echo(
        f"wrote {out}/{method}.keras (sha256 {card['artifact_sha256'][:16]}...), final loss {card['final_loss']:.4f}, "
        f"{card['wall_time_s']:.0f}s"
    )
    if "validation" in card:
        v = card["validation"]
        click.echo(
            f"validation ({v['split']}): P@1 {v['P@1']:.4f}, P@10 {v['P@10']:.4f}"
            + (
                f"; tower alone P@1 {v['tower_alone']['P@1']:.4f}, P@10 {v['tower_alone']['P@10']:.4f}"
                if "tower_alone" in v
                else ""
            )
        )
    if "eval_test_split_numpy_exact" in card:
        click.echo(
            "test split, exact: " + ", ".join(f"{k} {v:.4f}" for k, v in card["eval_test_split_numpy_exact"].items())
        )
