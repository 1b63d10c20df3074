"""Training-time augmentation of 28x28 images, in numpy, one batch at a time.

Horizontal flips, shifts (a random 28x28 crop of the image padded with
zeros) and random erasing (Zhong et al., 2020: a rectangle of random size,
aspect and place set to noise). In an ad-hoc probe on this 2-core machine
(not a command in this repo), Keras's RandomFlip and RandomTranslation
layers cost 40% of a training step of the embedding tower (513 ms against
305 ms per batch of 256); these batch-wise numpy ops, erasing included, cost
about 3 ms per batch of 256.
"""

from __future__ import annotations

import numpy as np

from fmsearch.errors import InvalidArgumentError


def flip(images: np.ndarray, rng: np.random.Generator, p: float = 0.5) -> np.ndarray:
    """Mirror each (N, 28, 28) image left-right with probability ``p``."""
    out = images.copy()
    chosen = rng.random(len(images)) < p
    out[chosen] = images[chosen, :, ::-1]
    return out


def shift(images: np.ndarray, rng: np.random.Generator, pad: int = 2) -> np.ndarray:
    """Move each image by up to ``pad`` pixels each way (zeros come in)."""
    if pad == 0:
        return images.copy()
    dy, dx = rng.integers(0, 2 * pad + 1, size=(2, len(images)))
    return moved(images, dy, dx, pad)


def moved(images: np.ndarray, dy: np.ndarray, dx: np.ndarray, pad: int) -> np.ndarray:
    """Each image i the 28x28 window at (``dy[i]``, ``dx[i]``), each in
    0..2 ``pad``, of the image padded with ``pad`` zeros (``pad``, ``pad``:
    unmoved)."""
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (pad, pad), (pad, pad)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(1, 2))  # (n, 2p+1, 2p+1, h, w)
    return windows[np.arange(n), dy, dx].copy()


def brightness(images: np.ndarray, rng: np.random.Generator, spread: float = 0.2) -> np.ndarray:
    """Scale each uint8 image's intensity by a factor drawn uniformly from
    ``1 +- spread`` (clipped to 0-255)."""
    factors = rng.uniform(1 - spread, 1 + spread, size=(len(images), 1, 1))
    return np.clip(np.rint(images * factors), 0, 255).astype(np.uint8)


def erase(
    images: np.ndarray,
    rng: np.random.Generator,
    p: float = 0.5,
    area: tuple[float, float] = (0.02, 0.25),
    aspect: tuple[float, float] = (0.3, 3.3),
) -> np.ndarray:
    """Random erasing: with probability ``p``, one rectangle covering
    ``area`` of the image, of aspect ``aspect``, filled with uniform noise."""
    out = images.copy()
    n, h, w = images.shape
    for i in np.flatnonzero(rng.random(n) < p):
        for _ in range(10):  # a rectangle that fits, as in the paper
            a = rng.uniform(*area) * h * w
            r = np.exp(rng.uniform(np.log(aspect[0]), np.log(aspect[1])))
            eh, ew = int(round(np.sqrt(a * r))), int(round(np.sqrt(a / r)))
            if 0 < eh < h and 0 < ew < w:
                y, x = rng.integers(0, h - eh + 1), rng.integers(0, w - ew + 1)
                out[i, y : y + eh, x : x + ew] = rng.integers(0, 256, size=(eh, ew), dtype=np.uint8)
                break
    return out


def offsets(pixels: int) -> list[tuple[int, int]]:
    """The test-time shifts (dy, dx) of a shift average: none, then
    ``pixels`` up, down, left and right (just none for 0)."""
    if pixels < 0:
        raise InvalidArgumentError(f"shifts must be >= 0 pixels, got {pixels}", param="shifts")
    return [(0, 0)] + ([(0, pixels), (0, -pixels), (pixels, 0), (-pixels, 0)] if pixels else [])


def shifted(images: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Every (N, 28, 28) image moved ``dy`` pixels down and ``dx`` right;
    zeros come in (the Keras twin is the ensemble's shift layers)."""
    n, h, w = images.shape
    padded = np.pad(images, ((0, 0), (max(dy, 0), max(-dy, 0)), (max(dx, 0), max(-dx, 0))))
    return np.ascontiguousarray(padded[:, max(-dy, 0) : max(-dy, 0) + h, max(-dx, 0) : max(-dx, 0) + w])


#: the augmentations a training run can ask for, by name
AUGMENTATIONS = ("none", "flip-shift", "flip-shift-erase")


def augment(images: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """One batch of (N, 28, 28) uint8 images augmented by ``kind``."""
    if kind not in AUGMENTATIONS:
        raise InvalidArgumentError(f"unknown augmentation {kind!r}; valid: {', '.join(AUGMENTATIONS)}", param="augment")
    if kind == "none":
        return images
    out = shift(flip(images, rng), rng)
    return erase(out, rng) if kind == "flip-shift-erase" else out


def describe(kind: str) -> str:
    """How a model card words an augmentation."""
    return {
        "none": "none",
        "flip-shift": "horizontal flip (p 0.5), shift up to 2 px (zero padding)",
        "flip-shift-erase": "horizontal flip (p 0.5), shift up to 2 px (zero padding), "
        "random erasing (p 0.5, 2-25% of the image, aspect 0.3-3.3, noise)",
    }[kind]


def batches(
    images: np.ndarray, labels: np.ndarray, batch_size: int, kind: str, seed: int, outputs: tuple[str, ...] = ()
):
    """A Keras ``PyDataset``: each epoch a new shuffle, each batch augmented
    as it is drawn; (x, y) with x (B, 28, 28, 1) float32 in [0, 1] and y the
    labels, or a dict of them, one per named output of a multi-output model."""
    from fmsearch.models.artifact_embedder import to_model_input

    def draw(idx: np.ndarray, rng: np.random.Generator):
        y = labels[idx]
        return to_model_input(augment(images[idx], rng, kind)), ({o: y for o in outputs} if outputs else y)

    return shuffled(len(images), batch_size, seed, draw)


def shuffled(n: int, batch_size: int, seed: int, draw):
    """A Keras ``PyDataset`` over ``n`` examples: each epoch a new shuffle
    (from ``seed``), batch ``i`` being ``draw(its indices, the generator)``,
    which returns what the model fits on, (x, y)."""
    import keras

    class Batches(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            self.rng = np.random.default_rng(seed)
            self.order = self.rng.permutation(n)

        def __len__(self) -> int:
            return int(np.ceil(n / batch_size))

        def __getitem__(self, i: int):
            return draw(self.order[i * batch_size : (i + 1) * batch_size], self.rng)

        def on_epoch_end(self) -> None:
            self.order = self.rng.permutation(n)

    return Batches()
