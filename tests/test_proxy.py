"""The proxy method's parts: its loss against a hand-computed case, the
mirror-averaged network it serves, and the training augmentation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fmsearch.errors import InvalidArgumentError
from fmsearch.models import augment


def test_margin_softmax_loss_hand_computed():
    pytest.importorskip("keras", reason="the training extra is not installed")
    from fmsearch.models.proxy import margin_softmax_loss

    cosines = np.array([[0.8, 0.1, -0.2], [0.3, 0.5, 0.4]], np.float32)
    labels = np.array([0, 2])
    # row 0: logits 2 x (0.8 - 0.1, 0.1, -0.2) = (1.4, 0.2, -0.4), its class 0
    # row 1: logits 2 x (0.3, 0.5, 0.4 - 0.1) = (0.6, 1.0, 0.6), its class 2
    ce0 = -1.4 + math.log(math.exp(1.4) + math.exp(0.2) + math.exp(-0.4))
    ce1 = -0.6 + math.log(math.exp(0.6) + math.exp(1.0) + math.exp(0.6))
    loss = float(margin_softmax_loss(labels, cosines, scale=2.0, margin=0.1))
    assert loss == pytest.approx((ce0 + ce1) / 2, abs=1e-6)
    # with no margin and scale 1 it is plain softmax cross-entropy
    plain = -np.log(np.exp(cosines[[0, 1], [0, 2]]) / np.exp(cosines).sum(axis=1)).mean()
    assert float(margin_softmax_loss(labels, cosines, scale=1.0, margin=0.0)) == pytest.approx(plain, abs=1e-6)


def test_served_network_averages_the_image_and_its_mirror(fmnist):
    """unit(tower(x) + tower(mirror x)): the same vector for an image and its
    mirror image, equal to the sum computed by hand, unit norm."""
    pytest.importorskip("keras", reason="the training extra is not installed")
    import keras

    from fmsearch.models.artifact_embedder import to_model_input
    from fmsearch.models.proxy import flip_averaged
    from fmsearch.models.siamese import build_embedding_network

    keras.utils.set_random_seed(1)
    tower = build_embedding_network(name="proxy_tower")
    served = flip_averaged(tower)
    x = to_model_input(fmnist["test"].images[:5])
    mirrored = x[:, :, ::-1]
    out = served.predict(x, verbose=0)
    np.testing.assert_allclose(out, served.predict(mirrored, verbose=0), atol=1e-6)
    by_hand = tower.predict(x, verbose=0) + tower.predict(mirrored, verbose=0)
    np.testing.assert_allclose(out, by_hand / np.linalg.norm(by_hand, axis=1, keepdims=True), atol=1e-6)
    assert served.get_layer("mirror").trainable is False
    assert not np.allclose(out, tower.predict(x, verbose=0), atol=1e-3)  # the mirror changes the vector


def _one_pixel(n: int) -> np.ndarray:
    images = np.zeros((n, 28, 28), np.uint8)
    images[:, 10, 6] = 255
    return images


def test_flip_and_shift():
    rng = np.random.default_rng(0)
    images = _one_pixel(200)
    flipped = augment.flip(images, rng)
    moved = np.argwhere(flipped[:, 10, 21] == 255).ravel()
    assert 60 < len(moved) < 140  # about half mirrored: the pixel at column 27 - 6
    assert (flipped.sum(axis=(1, 2)) == 255).all()
    shifted = augment.shift(images, np.random.default_rng(0), pad=2)
    rows, cols = np.nonzero(shifted)[1:]
    assert (np.abs(rows - 10) <= 2).all() and (np.abs(cols - 6) <= 2).all()
    assert len(np.unique(rows * 28 + cols)) == 25  # every one of the 5 x 5 offsets is drawn
    assert shifted.shape == images.shape and shifted.dtype == np.uint8


def test_erase_covers_a_bounded_rectangle():
    rng = np.random.default_rng(0)
    images = np.full((300, 28, 28), 7, np.uint8)
    erased = augment.erase(images, rng, p=1.0)
    changed = erased != 7
    for mask in changed[:50]:
        ys, xs = np.nonzero(mask)
        if len(ys):  # noise may keep a pixel at 7; the rectangle bounds the rest
            area = (ys.max() - ys.min() + 1) * (xs.max() - xs.min() + 1)
            assert area <= 0.25 * 784 + 28
    assert changed.any(axis=(1, 2)).mean() > 0.95
    np.testing.assert_array_equal(augment.erase(images, rng, p=0.0), images)  # p=0 leaves them as they are


def test_augment_is_seeded_and_checked():
    images = np.random.default_rng(3).integers(0, 256, (64, 28, 28), dtype=np.uint8)
    a = augment.augment(images, np.random.default_rng(5), "flip-shift-erase")
    b = augment.augment(images, np.random.default_rng(5), "flip-shift-erase")
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, images)
    assert augment.augment(images, np.random.default_rng(5), "none") is images
    with pytest.raises(InvalidArgumentError, match="unknown augmentation 'rotate'"):
        augment.augment(images, np.random.default_rng(5), "rotate")
