"""An Embedder over a trained artifact (autoencoder, siamese), run by ONNX
Runtime from its export, or by TensorFlow from the ``.keras`` file."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.artifacts import default_artifact, has_onnx, load_verified, read_card, verified_onnx
from fmsearch.models.base import Embedder
from fmsearch.models.onnx_runtime import check_threads, load_session
from fmsearch.models.tf_runtime import import_tensorflow

#: how an artifact runs: its ONNX export when it has one (auto), or either by name
RUNTIMES = ("auto", "onnx", "tensorflow")


def to_model_input(images: np.ndarray) -> np.ndarray:
    """(N, 28, 28) uint8 -> (N, 28, 28, 1) float32 in [0, 1]."""
    return (np.asarray(images, dtype=np.float32) / 255.0)[..., None]


class ArtifactEmbedder(Embedder):
    """Embeds with the encoder stored in an artifact.

    The card is read at construction (cheap: dim and fingerprint, no model);
    the model is loaded on first use. ``runtime="auto"`` runs the ONNX export
    with ONNX Runtime when the artifact has one, else the ``.keras`` file with
    TensorFlow (one traced graph for every call). Both give the same vectors
    within the difference the card records, so a collection is the same
    collection whichever runtime embedded it: the fingerprint is the
    ``.keras`` file's digest either way.

    Args:
        weights: the ``.keras`` artifact (default: the shipped one).
        runtime: "auto", "onnx" or "tensorflow".
        threads: ONNX Runtime threads per inference (default: one per core).
        spin: ONNX Runtime's threads spin-wait between calls (its default).
    """

    default_batch_size = 1024

    def __init__(
        self,
        weights: str | os.PathLike | None = None,
        runtime: str = "auto",
        threads: int | None = None,
        spin: bool = True,
    ) -> None:
        if runtime not in RUNTIMES:
            raise InvalidArgumentError(f"unknown runtime {runtime!r}; valid: {', '.join(RUNTIMES)}", param="runtime")
        self.path = Path(weights) if weights else default_artifact(self.name)
        self.card = read_card(self.path)
        made_by = self.card.get("method")
        if made_by != self.name:  # another method's network would fill this method's collection
            raise InvalidArgumentError(
                f"{self.path} holds the {made_by} method's network, not {self.name}'s; pass one made for {self.name}"
            )
        self.dim = int(self.card["embedding_dim"])
        self.runtime = runtime
        self.threads = check_threads(threads)
        if self.threads is not None and runtime == "tensorflow":
            raise InvalidArgumentError("threads apply to ONNX Runtime, not to the tensorflow runtime", param="threads")
        self.spin = spin
        self._forward: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def fingerprint(self) -> str:
        return f"{self.name}-sha256:{self.card['artifact_sha256']}"

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "artifact": self.path.name}

    @property
    def runs_on(self) -> str:
        """The runtime embedding uses: "onnx" or "tensorflow"."""
        if self.runtime == "auto":
            return "onnx" if has_onnx(self.path, self.card) else "tensorflow"
        return self.runtime

    def _load_tensorflow(self) -> Callable[[np.ndarray], np.ndarray]:
        tf = import_tensorflow(f"running {self.name}'s .keras file")
        model = load_verified(self.path)
        # One traced graph with a free batch size: no retracing, no per-call
        # Keras overhead (predict() costs tens of ms per call).
        spec = tf.TensorSpec((None, 28, 28, 1), tf.float32)
        self._graph = tf.function(lambda x: model(x, training=False), input_signature=[spec])
        return lambda x: self._graph(x).numpy()

    def _loaded(self) -> Callable[[np.ndarray], np.ndarray]:
        """The forward pass, loaded on first use."""
        if self._forward is None:
            if self.runs_on == "onnx":
                self._forward = load_session(verified_onnx(self.path, self.card), self.threads, self.spin)
            else:
                self._forward = self._load_tensorflow()
        return self._forward

    def prepare(self) -> None:
        self._loaded()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        return self._loaded()(to_model_input(images))
