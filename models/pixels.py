"""The raw-pixel baseline: the 784 grey values as a vector, cosine distance."""

from __future__ import annotations

import numpy as np

from fmsearch.models.base import Embedder


class PixelEmbedder(Embedder):
    """Flattened pixels scaled to [0, 1]; L2-normalised by the base class."""

    name = "pixels"
    dim = 784
    default_batch_size = 4096

    @property
    def fingerprint(self) -> str:
        # No artifact: the transform itself is the model. Bump on any change.
        return "pixels-v1"

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1).astype(np.float32) / 255.0
