"""Proxy method: the siamese method's tower trained with a normalised-softmax
loss with an additive cosine margin (CosFace; Wang et al., 2018) instead of
triplets.

Each class has a learned unit vector, its proxy; the loss pulls every
embedding towards its class's proxy by a margin over the others, so that
every image of a batch is compared with all ten classes at once instead of
with a few mined triplets. The served embedding averages the tower's
vectors of the image and of its mirror image (FMNIST garments are close to
left-right symmetric), then normalises.

Reads top to bottom: the loss, the served network, training, the Embedder.
The design experiments behind the settings are in docs/methods.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from fmsearch.models import augment as aug
from fmsearch.models.artifact_embedder import ArtifactEmbedder
from fmsearch.models.siamese import MARGIN as TRIPLET_MARGIN
from fmsearch.models.siamese import build_embedding_network, fit_recorded, semi_hard_triplet_loss

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 64
#: the softmax's scale s and the additive cosine margin m
SCALE = 16.0
MARGIN = 0.2
N_CLASSES = 10
TOWER_NAME = "proxy_tower"
#: the losses a proxy run can train with: the margin softmax alone, or with
#: the siamese method's semi-hard triplet loss on the same embeddings added
#: (weight 1 each; the "ID + triplet" recipe of Luo et al., 2019)
LOSSES = ("cosface", "cosface+triplet")


def margin_softmax_loss(labels, cosines, scale: float = SCALE, margin: float = MARGIN):
    """Mean over the batch of -log softmax(s * (cos - m * onehot))[label]:
    ``cosines`` (B, C) between each embedding and each class's proxy."""
    from keras import ops

    labels = ops.reshape(ops.cast(labels, "int32"), (-1,))
    onehot = ops.one_hot(labels, ops.shape(cosines)[-1], dtype=cosines.dtype)
    logits = scale * (cosines - margin * onehot)
    return ops.mean(-ops.sum(onehot * ops.log_softmax(logits, axis=-1), axis=-1))


def flip_averaged(tower, name: str = "proxy_embedding"):
    """The served network: unit(tower(x) + tower(mirror of x)). The mirror
    is a fixed, non-trainable 28x28 permutation matrix on the rows (a Dense
    layer, so the artifact holds only Keras's own layers and loads in safe
    mode, and exports to ONNX as one MatMul); exact in float."""
    import keras
    from keras import layers

    inputs = keras.Input((28, 28, 1), name="image")
    mirror = layers.Dense(28, use_bias=False, trainable=False, name="mirror")
    rows = layers.Reshape((28, 28))(inputs)
    mirrored = layers.Reshape((28, 28, 1))(mirror(rows))
    mirror.set_weights([np.eye(28, dtype=np.float32)[::-1]])
    both = layers.Add()([tower(inputs), tower(mirrored)])
    return keras.Model(inputs, layers.UnitNormalization(name="embedding")(both), name=name)


def class_proxies():
    """The learned class proxies: a dense layer of unit columns (the
    constraint renormalises them after each step), so that its outputs are
    the cosines between a unit embedding and each class's proxy."""
    import keras

    return keras.layers.Dense(
        N_CLASSES, use_bias=False, kernel_constraint=keras.constraints.UnitNorm(axis=0), name="proxies"
    )


def train(
    images: np.ndarray,
    labels: np.ndarray,
    *,
    epochs: int = 40,
    batch_size: int = 256,
    seed: int = 0,
    learning_rate: float = 1e-3,
    augment: str = "flip-shift",
    loss: str = "cosface",
    verbose: int = 1,
    log: Callable[[str], None] = logger.info,
) -> tuple[Any, dict[str, Any]]:
    """Train the tower with the margin softmax over learned class proxies;
    Adam with a cosine decay of the rate to 0. Returns the served network
    (:func:`flip_averaged`) and the card's record."""
    import keras

    keras.utils.set_random_seed(seed)
    labels = np.asarray(labels, np.int32)
    tower = build_embedding_network(EMBEDDING_DIM, name=TOWER_NAME)
    inputs = keras.Input((28, 28, 1))
    proxies = class_proxies()
    embedding = tower(inputs)
    with_triplets = loss == "cosface+triplet"
    outputs = {"cosines": proxies(embedding), **({"embedding": embedding} if with_triplets else {})}
    trainer = keras.Model(inputs, outputs)
    data = aug.batches(images, labels, batch_size, augment, seed, outputs=tuple(outputs))
    losses = {"cosines": margin_softmax_loss, "embedding": lambda y, e: semi_hard_triplet_loss(y, e, TRIPLET_MARGIN)}
    run = fit_recorded(
        trainer,
        tower,
        images,
        labels,
        {k: losses[k] for k in outputs},
        steps=epochs * len(data),
        epochs=epochs,
        learning_rate=learning_rate,
        verbose=verbose,
        log=log,
        x=data,
    )
    record = {
        "method": "proxy",
        "loss": "normalised softmax over learned class proxies with an additive cosine margin (CosFace)"
        + (
            ", plus the semi-hard triplet loss (margin 0.2, squared distances) on the embeddings"
            if with_triplets
            else ""
        ),
        "losses_trained": loss,
        "scale": SCALE,
        "margin": MARGIN,
        "embedding_dim": EMBEDDING_DIM,
        "tower": "the siamese tower: 3 blocks of two 3x3 convolutions (32, 64, 128) with batch norm, "
        "flatten, dense 64, batch norm, unit norm",
        "served": "unit(tower(x) + tower(mirror of x))",
        "epochs": epochs,
        "batch_size": batch_size,
        "seed": seed,
        "learning_rate": learning_rate,
        "augmentation": aug.describe(augment),
        "augment": augment,
        **run,
    }
    return flip_averaged(tower), record


class ProxyEmbedder(ArtifactEmbedder):
    """The proxy-trained tower's 64-d embedding, averaged with its mirror image's."""

    name = "proxy"
