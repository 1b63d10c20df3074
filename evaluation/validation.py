"""Design figures on the validation split: trained artifacts measured on the
last N train images against the rest (never the test split), alone, with
the image and its mirror averaged, over small shifts, with query expansion,
and combined.

An artifact is measured only when its card says it was trained on the
first ``60,000 - N`` train images (``fmsearch train --validation N``): one
trained on the images it would be measured on would report its memory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.images.fmnist import load_split
from fmsearch.models.artifacts import read_card
from fmsearch.models.augment import offsets, shifted
from fmsearch.models.base import l2_normalize
from fmsearch.models.registry import get_embedder
from fmsearch.models.training import vector_precision


@dataclass(frozen=True)
class Row:
    """One measured variant: its name, P@1 and P@10."""

    variant: str
    p_at_1: float
    p_at_10: float


def check_trained_apart(artifact: str | os.PathLike, validation: int, n_train: int) -> dict:
    """The artifact's card, if it was trained on ``[:n_train - validation]`` only.

    Raises:
        InvalidArgumentError: it was trained on (some of) the validation images.
    """
    card = read_card(artifact)
    held = card.get("validation", {})
    if held.get("queries") != validation or card.get("trained_on", {}).get("images") != n_train - validation:
        raise InvalidArgumentError(
            f"{artifact} was not trained with --validation {validation} (its card says it saw "
            f"{card.get('trained_on', {}).get('images', '?')} train images): it would be measured on images it "
            "was trained on"
        )  # no param: the path may hold the word
    return card


def _vectors(embedder, images: np.ndarray, mirror: bool, shifts: int = 0) -> np.ndarray:
    """The artifact's vectors; ``mirror``: each averaged with its mirror
    image's; ``shifts``: the mirror-averaged vectors also averaged over the
    image moved ``shifts`` pixels each way (as ``fmsearch combine --shifts``)."""
    if shifts:
        views = [_vectors(embedder, shifted(images, dy, dx), True) for dy, dx in offsets(shifts)]
        return l2_normalize(sum(views[1:], start=views[0]))
    v = embedder.embed(images)
    return l2_normalize(v + embedder.embed(np.ascontiguousarray(images[:, :, ::-1]))) if mirror else v


def validation_rows(
    artifacts: list[str | os.PathLike],
    *,
    validation: int = 10_000,
    limit: int | None = None,
    mirror: bool = False,
    shifts: int = 0,
    expand: tuple[int, ...] = (0,),
    data_dir: str | os.PathLike | None = None,
) -> list[Row]:
    """Each artifact (its method from its card) alone and, with ``mirror``,
    with each image's vector averaged with its mirror image's; with
    ``shifts``, also mirror-averaged and averaged over the image moved
    ``shifts`` pixels up, down, left and right; with two or more artifacts,
    their vectors concatenated (equal weight), of each variant asked for.
    Each at every query expansion in ``expand`` (0: none). ``limit``: the artifacts
    were trained with ``--limit`` (the split is then of the first ``limit``)."""
    train = load_split("train", data_dir)
    if limit is not None and limit < 3:
        raise InvalidArgumentError(
            f"limit must be at least 3 (1 validation image, 2 to train on), got {limit}", param="limit"
        )
    n = len(train) if limit is None else min(limit, len(train))
    if not 1 <= validation <= n - 2:
        raise InvalidArgumentError(f"validation must be between 1 and {n - 2}, got {validation}", param="validation")
    if any(e < 0 for e in expand):
        raise InvalidArgumentError(f"expand values must be >= 0, got {list(expand)}", param="expand")
    cut = n - validation
    images = train.images[:n]
    labels = (train.labels[:cut], train.labels[cut:n], (1, 10))
    # (mirror-averaged, shift pixels) of each measured variant
    variants = [(False, 0)] + [(True, 0)] * mirror + [(True, shifts)] * bool(shifts)
    spaces: list[tuple[tuple[bool, int], str, np.ndarray, np.ndarray]] = []
    for artifact in artifacts:
        card = check_trained_apart(artifact, validation, n)
        embedder = get_embedder(card["method"], weights=artifact)
        name = f"{card['method']} ({Path(artifact).parent.name}/{Path(artifact).name})"
        for variant in variants:
            m, s = variant
            label = name + (", mirror-averaged" if m else "") + (f", shift-averaged ({s} px)" if s else "")
            spaces.append(
                (variant, label, _vectors(embedder, images[:cut], m, s), _vectors(embedder, images[cut:], m, s))
            )
    if len(artifacts) > 1:  # each artifact's variant concatenated: the mirror-averaged and the shifted, else the plain
        for variant in variants[1:] or variants:
            same = [s for s in spaces if s[0] == variant]
            spaces.append(
                (
                    variant,
                    " + ".join(s[1] for s in same) + ", concatenated",
                    l2_normalize(np.hstack([s[2] for s in same])),
                    l2_normalize(np.hstack([s[3] for s in same])),
                )
            )
    rows = []
    for _, name, g, q in spaces:
        for e in expand:
            p = vector_precision(q, g, *labels, expand=e)
            rows.append(Row(name + (f", expanded by {e}" if e else ""), p["P@1"], p["P@10"]))
    return rows
