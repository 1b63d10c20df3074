"""Batches of gallery images with their split, index and label."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.images.fmnist import SPLITS, load_split


@dataclass(frozen=True)
class ImageBatch:
    """A slice of one split: ``images[i]`` is item ``indices[i]`` of ``split``."""

    split: str
    indices: np.ndarray  # (n,) int64
    images: np.ndarray  # (n, 28, 28) uint8
    labels: np.ndarray  # (n,) uint8


def resolve_splits(split: str) -> tuple[str, ...]:
    """ "train", "test" or "all" to the tuple of split names."""
    if split == "all":
        return SPLITS
    if split not in SPLITS:
        raise InvalidArgumentError(f"unknown split {split!r}; valid: train, test, all", param="split")
    return (split,)


def plan(split: str, limit: int | None, data_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """How many items of each split an ingest covers (the first ``limit`` of each)."""
    if limit is not None and limit < 1:
        raise InvalidArgumentError(f"limit must be at least 1, got {limit}", param="limit")
    sizes = {}
    for name in resolve_splits(split):
        n = len(load_split(name, data_dir))
        sizes[name] = n if limit is None else min(limit, n)
    return sizes


def iter_batches(
    sizes: dict[str, int],
    batch_size: int,
    data_dir: str | os.PathLike | None = None,
    start: dict[str, int] | None = None,
) -> Iterator[ImageBatch]:
    """Yield the planned items in order, ``batch_size`` at a time.

    Args:
        sizes: items per split, from :func:`plan`.
        batch_size: items per batch (>= 1).
        data_dir: see :func:`fmsearch.images.fmnist.locate`.
        start: per split, the index to start from (to skip what is stored).
    """
    if batch_size < 1:
        raise InvalidArgumentError(f"batch size must be at least 1, got {batch_size}", param="batch_size")
    for name, n in sizes.items():
        data = load_split(name, data_dir)
        for lo in range((start or {}).get(name, 0), n, batch_size):
            hi = min(lo + batch_size, n)
            yield ImageBatch(name, np.arange(lo, hi, dtype=np.int64), data.images[lo:hi], data.labels[lo:hi])
