"""An Embedder over a trained ``.keras`` artifact (autoencoder, siamese)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.models.artifacts import default_artifact, load_verified, read_card
from fmsearch.models.base import Embedder
from fmsearch.models.tf_runtime import import_tensorflow


def to_model_input(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28, 1) float32 in [0, 1]."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., None]


class KerasEmbedder(Embedder):
    """Embeds with the encoder stored in an artifact.

    The card is read at construction (cheap: dim and fingerprint, no
    TensorFlow); the model is loaded on the first :meth:`embed_batch` and its
    forward pass compiled once, so later calls (one image included) reuse it.
    """

    default_batch_size = 1024

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        self.path = Path(weights) if weights else default_artifact(self.name)
        self.card = read_card(self.path)
        self.dim = int(self.card["embedding_dim"])
        self._forward = None

    @property
    def fingerprint(self) -> str:
        return f"{self.name}-sha256:{self.card['artifact_sha256']}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "artifact": self.path.name}

    def custom_objects(self) -> dict[str, Any]:
        return {}

    def _load(self):
        tf = import_tensorflow()

        model = load_verified(self.path, self.custom_objects())
        # One traced graph with a free batch size: no retracing, no per-call
        # Keras overhead (predict() costs tens of ms per call).
        spec = tf.TensorSpec((None, 28, 28, 1), tf.float32)
        return tf.function(lambda x: model(x, training=False), input_signature=[spec])

    def prepare(self) -> None:
        if self._forward is None:
            self._forward = self._load()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        self.prepare()
        return self._forward(to_model_input(images)).numpy()
