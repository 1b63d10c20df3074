"""The one interface every embedding method implements."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from fmsearch.errors import InvalidArgumentError

IMAGE_SHAPE = (28, 28)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows to unit length; an all-zero row becomes the constant unit vector.

    A blank image has no direction; mapping it to a fixed unit vector keeps
    cosine and dot product defined (and equal) for every stored point.
    """
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    zero = norms[:, 0] == 0
    out = vectors / np.where(norms == 0, 1.0, norms)
    if zero.any():
        out[zero] = 1.0 / np.sqrt(vectors.shape[1])
    return out.astype(np.float32, copy=False)


class Embedder(ABC):
    """Images (N, 28, 28) uint8 -> L2-normalised vectors (N, dim) float32.

    Subclasses set ``name``, ``dim`` and ``fingerprint`` and implement
    :meth:`embed_batch`; batching, input checks and normalisation live here.
    """

    name: ClassVar[str]
    distance: ClassVar[str] = "cosine"
    dim: int
    default_batch_size: int = 512

    @property
    @abstractmethod
    def fingerprint(self) -> str:
        """Identifies the exact model (method, version, artifact digest)."""

    @abstractmethod
    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        """Embed one batch; need not normalise (the base class does)."""

    def prepare(self) -> None:  # noqa: B027 - a hook: most embedders have nothing to load
        """Load whatever the model needs now, so failures come before any write."""

    def describe(self) -> dict[str, Any]:
        """What a collection records about the model that filled it."""
        return {
            "method": self.name,
            "dim": self.dim,
            "distance": self.distance,
            "fingerprint": self.fingerprint,
        }

    def embed(self, images: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """Embed any number of images in batches.

        Args:
            images: (N, 28, 28) or a single (28, 28) uint8 array.
            batch_size: images per call of :meth:`embed_batch`.

        Returns:
            (N, dim) float32, each row of unit length.

        Raises:
            InvalidArgumentError: wrong shape or dtype, or batch_size < 1.
        """
        images = np.asarray(images)
        if images.shape == IMAGE_SHAPE:
            images = images[None]
        if images.ndim != 3 or images.shape[1:] != IMAGE_SHAPE or images.dtype != np.uint8:
            raise InvalidArgumentError(
                f"{self.name}: expected uint8 images of shape (N, 28, 28), got {images.dtype} {images.shape}"
            )
        size = batch_size or self.default_batch_size
        if size < 1:
            raise InvalidArgumentError(f"batch size must be at least 1, got {size}")
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        parts = []
        for lo in range(0, len(images), size):
            out = np.asarray(self.embed_batch(images[lo : lo + size]), dtype=np.float32)
            if out.shape != (min(size, len(images) - lo), self.dim):
                raise RuntimeError(f"{self.name} returned shape {out.shape}")
            parts.append(out)
        return l2_normalize(np.concatenate(parts))
