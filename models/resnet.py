"""ImageNet-pretrained ResNet101 as a frozen feature extractor (2048-d, avg pool).

The 28x28 grayscale image is repeated to 3 channels, resized to
``input_size`` (default 224, the resolution ImageNet weights were trained
at) and passed through ``keras.applications.resnet.preprocess_input``.

Weights: ``"imagenet"`` (Keras downloads and caches them in
``~/.keras/models``), a local weights file, or ``"none"`` (random init, seed
0), which is recorded as untrained in the collection and is meant for tests.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np

from fmsearch.errors import InvalidArgumentError, ModelError
from fmsearch.models.artifacts import sha256_file
from fmsearch.models.base import Embedder
from fmsearch.models.tf_runtime import import_tensorflow

DEFAULT_INPUT_SIZE = 224


class ResNet101Embedder(Embedder):
    """2048-d average-pooled ResNet101 features."""

    name = "resnet101"
    dim = 2048
    default_batch_size = 32

    def __init__(self, weights: str | os.PathLike | None = "imagenet", input_size: int = DEFAULT_INPUT_SIZE) -> None:
        if not 32 <= int(input_size) <= 512:
            raise InvalidArgumentError(f"ResNet101 input size must be between 32 and 512, got {input_size}")
        self.input_size = int(input_size)
        weights = "imagenet" if weights is None else weights
        if str(weights).lower() == "none":
            self.weights, self.weights_kind = None, "untrained"
        elif str(weights) == "imagenet":
            self.weights, self.weights_kind = "imagenet", "imagenet"
        else:
            path = Path(weights)
            if not path.is_file():
                raise ModelError(f"ResNet101 weights file {path} not found")
            self.weights, self.weights_kind = str(path), "file"
        self._forward: Callable[[np.ndarray], Any] | None = None  # a tf.function: images -> a tensor

    @property
    def fingerprint(self) -> str:
        if self.weights_kind == "file":
            tag = "sha256:" + sha256_file(cast(str, self.weights))[:16]  # a "file" kind always has its path
        elif self.weights_kind == "untrained":
            tag = "untrained-seed0"
        else:
            tag = "imagenet-keras"
        return f"resnet101-{tag}-{self.input_size}px"

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "weights": self.weights_kind,
            "untrained": self.weights is None,
            "input_size": self.input_size,
        }

    def prepare(self) -> None:
        """Build the network now (downloading ImageNet weights if needed)."""
        self._loaded()

    def _loaded(self) -> Callable[[np.ndarray], Any]:
        """The traced forward pass, built on first use."""
        if self._forward is not None:
            return self._forward
        tf = import_tensorflow("ResNet101")
        import keras

        if self.weights is None:
            keras.utils.set_random_seed(0)
        try:
            model = keras.applications.ResNet101(
                include_top=False,
                pooling="avg",
                weights=self.weights,
                input_shape=(self.input_size, self.input_size, 3),
            )
        except Exception as err:  # download failures surface as several types
            text = str(err).splitlines()[0] if str(err) else type(err).__name__
            if "URL fetch failure" in text:
                text = "the download from storage.googleapis.com failed (offline?)"
            raise ModelError(
                f"ResNet101 weights ({self.weights_kind}) cannot be loaded: {text[:200]}; "
                "pass a local file instead (or 'none' for an untrained network)",
                param="weights",
            ) from err
        size = self.input_size

        @tf.function(input_signature=[tf.TensorSpec((None, 28, 28), tf.uint8)])
        def forward(images):
            x = tf.cast(images, tf.float32)[..., None]
            x = tf.image.resize(tf.repeat(x, 3, axis=-1), (size, size))
            x = keras.applications.resnet.preprocess_input(x)
            return model(x, training=False)

        self._forward = forward
        return forward

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        return self._loaded()(images).numpy()
