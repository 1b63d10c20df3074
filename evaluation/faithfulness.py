"""Is an explanation faithful? The deletion test (Petsiuk et al. 2018, RISE).

The query's pixels are removed (set to black, FMNIST's background) in an
order, a step at a time; after each step the query is embedded again and its
cosine similarity to the hit recorded. A heatmap that finds what made the
pair similar removes it first, so the similarity falls fast and the area
under the curve is small. The baselines are the same curve for a random
order; for a random order of the garment's own pixels first (those not
black already: on FMNIST about half the pixels are background, whose
removal changes nothing, so the plain random order is an easy one to beat);
and for a centre-first order (a guess that knows where garments are).
The curves are of raw cosine similarities: they start at the pair's and
end at what a blank image scores against the hit, the same for every order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from fmsearch.models.base import IMAGE_SHAPE, Embedder

PIXELS = IMAGE_SHAPE[0] * IMAGE_SHAPE[1]
#: pixels removed per step: 49 steps remove all 784
STEP = 16
ORDERS = ("heatmap", "random", "garment", "centre")


def heat_order(heat: np.ndarray) -> np.ndarray:
    """Pixel indices, hottest first (ties by index)."""
    return np.argsort(-np.asarray(heat, dtype=np.float64).ravel(), kind="stable")


def centre_order() -> np.ndarray:
    """Pixel indices nearest the image's centre first (ties by index)."""
    yy, xx = np.mgrid[0 : IMAGE_SHAPE[0], 0 : IMAGE_SHAPE[1]]
    centre = ((IMAGE_SHAPE[0] - 1) / 2, (IMAGE_SHAPE[1] - 1) / 2)
    return np.argsort(((yy - centre[0]) ** 2 + (xx - centre[1]) ** 2).ravel(), kind="stable")


def random_orders(n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random pixel orders, (n, 784)."""
    return np.stack([rng.permutation(PIXELS) for _ in range(n)]) if n else np.zeros((0, PIXELS), dtype=np.int64)


def garment_orders(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Per image, its non-black pixels in a random order, then the black ones
    (removing those changes nothing), (n, 784)."""
    orders = []
    for image in images:
        lit = np.flatnonzero(image.reshape(-1))
        dark = np.flatnonzero(image.reshape(-1) == 0)
        orders.append(np.concatenate([rng.permutation(lit), rng.permutation(dark)]))
    return np.stack(orders) if orders else np.zeros((0, PIXELS), dtype=np.int64)


def deleted(image: np.ndarray, order: np.ndarray, step: int = STEP) -> np.ndarray:
    """(steps + 1, 28, 28): ``image``, then with the first ``step``, ``2 x
    step``, ... pixels of ``order`` set to 0, to the blank image."""
    steps = -(-PIXELS // step)
    seq = np.repeat(image.reshape(1, -1), steps + 1, axis=0)
    rank = np.empty(PIXELS, dtype=np.int64)
    rank[order] = np.arange(PIXELS)
    removed = rank[None, :] < (np.arange(steps + 1)[:, None] * step)
    seq[removed] = 0
    return seq.reshape(steps + 1, *IMAGE_SHAPE)


def deletion_curves(
    embedder: Embedder,
    images: np.ndarray,
    targets: np.ndarray,
    orders: np.ndarray,
    step: int = STEP,
    batch: int = 4096,
) -> np.ndarray:
    """Each image's deletion curve: (n, steps + 1) cosine similarities of the
    image, pixels removed in its order, to its target vector.

    Args:
        embedder: the method whose similarity is followed.
        images: (n, 28, 28) uint8. targets: (n, dim) unit vectors. orders: (n, 784).
    """
    n = len(images)
    steps = -(-PIXELS // step)
    curves = np.zeros((n, steps + 1), dtype=np.float32)
    per = max(1, batch // (steps + 1))
    for lo in range(0, n, per):
        chunk = range(lo, min(n, lo + per))
        seqs = np.concatenate([deleted(images[i], orders[i], step) for i in chunk])
        vectors = embedder.embed(seqs, batch_size=len(seqs)).reshape(len(chunk), steps + 1, -1)
        curves[lo : lo + len(chunk)] = np.einsum("nsd,nd->ns", vectors, targets[lo : lo + len(chunk)])
    return curves


def auc(curves: np.ndarray) -> np.ndarray:
    """Each curve's area under it, over the fraction removed from 0 to 1
    (trapezoids, equal steps); an empty input gives an empty array."""
    curves = np.asarray(curves, dtype=np.float64)
    if curves.size == 0:
        return np.zeros(len(curves))
    inner = curves[:, 1:-1].sum(1)
    return (inner + (curves[:, 0] + curves[:, -1]) / 2) / (curves.shape[1] - 1)


def bootstrap_ratio(
    num: np.ndarray, den: np.ndarray, rng: np.random.Generator, rounds: int = 2000
) -> tuple[float, float, float]:
    """mean(num) / mean(den) over the pairs, and its 95% bootstrap interval
    (pairs resampled with replacement)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    if not len(num):
        return float("nan"), float("nan"), float("nan")
    idx = rng.integers(0, len(num), size=(rounds, len(num)))
    ratios = num[idx].mean(1) / den[idx].mean(1)
    lo, hi = np.quantile(ratios, [0.025, 0.975])
    return float(num.mean() / den.mean()), float(lo), float(hi)


def deletion_aucs(
    embedder: Embedder,
    images: np.ndarray,
    targets: np.ndarray,
    heats: np.ndarray,
    rng: np.random.Generator,
    orders: Sequence[str] = ORDERS,
) -> dict[str, np.ndarray]:
    """Per pair, the deletion AUC of each of ``orders`` (of :data:`ORDERS`)."""
    n = len(images)
    made: dict[str, Callable[[], np.ndarray]] = {
        "heatmap": lambda: np.stack([heat_order(h) for h in heats]) if n else np.zeros((0, PIXELS), dtype=np.int64),
        "random": lambda: random_orders(n, rng),
        "garment": lambda: garment_orders(images, rng),
        "centre": lambda: np.repeat(centre_order()[None], n, axis=0),
    }
    return {name: auc(deletion_curves(embedder, images, targets, made[name]())) for name in orders}


__all__ = [
    "ORDERS",
    "STEP",
    "auc",
    "bootstrap_ratio",
    "centre_order",
    "deleted",
    "deletion_aucs",
    "deletion_curves",
    "garment_orders",
    "heat_order",
    "random_orders",
]
