"""Galleries of any size made from FMNIST, for the scale suite.

Point ``i`` of a gallery of N is a copy of train image ``i % 60000``: copy
0 (the first 60,000 points) is the real gallery, every later copy is
changed a little, so a larger gallery holds the smaller ones as its prefix
and every size is a superset of the last. Two kinds:

- **vectors**: the real embeddings, each later copy with Gaussian noise per
  dimension and re-normalised: the store's own cost, nothing embedded;
- **images**: the real images, each later copy flipped, shifted and
  brightened at random, then embedded for real: the end-to-end cost.

Everything is deterministic in its seed: copy ``c`` draws from its own
generator ``(seed, c)``, so a prefix does not depend on the size asked for.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models import augment

KINDS = ("vectors", "images")
#: noise per dimension of a jittered copy: for the 64-d siamese embeddings a
#: noise norm of about 0.08, half the median distance of an image to its
#: nearest neighbour in the train split (0.163)
JITTER = 0.01
#: the values of the payload field that stands for a 1% attribute
GROUPS = 100


def _copies(n: int, base: int) -> Iterator[tuple[int, int, int]]:
    """(copy, lo, hi) blocks of a gallery of ``n`` over ``base`` originals."""
    if n < 1 or base < 1:
        raise InvalidArgumentError(f"a gallery needs at least one point and one original, got {n} and {base}")
    for c, lo in enumerate(range(0, n, base)):
        yield c, lo, min(n, lo + base)


def sources(n: int, base: int) -> np.ndarray:
    """The original (train index) behind each of ``n`` points."""
    return np.arange(n) % base


def jittered(base: np.ndarray, n: int, seed: int, noise: float = JITTER) -> np.ndarray:
    """``n`` unit vectors: the (normalised) rows of ``base``, then copies of
    them with Gaussian noise of std ``noise`` per dimension, re-normalised."""
    base = np.asarray(base, np.float32)
    out = np.empty((n, base.shape[1]), np.float32)
    for c, lo, hi in _copies(n, len(base)):
        rows = base[: hi - lo]
        if c:
            rows = rows + np.random.default_rng([seed, c]).normal(scale=noise, size=rows.shape).astype(np.float32)
        out[lo:hi] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


def augmented(images: np.ndarray, n: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first point, uint8 images) blocks of an image gallery of ``n``: the
    originals, then copies flipped (p 0.5), shifted up to 2 px and scaled in
    brightness by up to 20%."""
    for c, lo, hi in _copies(n, len(images)):
        block = images[: hi - lo]
        if c:
            rng = np.random.default_rng([seed, c])
            block = augment.brightness(augment.shift(augment.flip(block, rng), rng), rng)
        yield lo, block


def groups(n: int, seed: int) -> np.ndarray:
    """The 1% attribute of each point: uniform over :data:`GROUPS` values."""
    out = np.empty(n, np.int64)
    for c, lo, hi in _copies(n, 60_000):
        out[lo:hi] = np.random.default_rng([seed, c, GROUPS]).integers(0, GROUPS, hi - lo)
    return out
