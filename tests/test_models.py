"""The method interface and the raw-pixel baseline."""

from __future__ import annotations

import numpy as np
import pytest

from fmsearch.errors import InvalidArgumentError, UnknownMethodError
from fmsearch.models import Embedder, get_embedder, l2_normalize, method_names


def test_registry_lists_and_rejects():
    assert "pixels" in method_names()
    assert isinstance(get_embedder("pixels"), Embedder)
    with pytest.raises(
        UnknownMethodError,
        match="unknown method 'pixls'; valid methods: pixels, autoencoder, siamese, proxy, distilled, ensemble, "
        "resnet101",
    ):
        get_embedder("pixls")


def test_pixels_embed_is_scaled_unit_and_deterministic(fmnist):
    emb = get_embedder("pixels")
    imgs = fmnist["train"].images[:10]
    v = emb.embed(imgs, batch_size=3)  # batches of 3, 3, 3, 1 in the base class
    assert v.shape == (10, 784) and v.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    flat = imgs.reshape(10, -1).astype(np.float64)
    np.testing.assert_allclose(v, flat / np.linalg.norm(flat, axis=1, keepdims=True), atol=1e-6)
    assert np.array_equal(v, emb.embed(imgs))
    assert emb.embed(imgs[0]).shape == (1, 784)
    assert emb.describe() == {"method": "pixels", "dim": 784, "distance": "cosine", "fingerprint": "pixels-v1"}


def test_blank_image_gets_a_defined_unit_vector():
    v = get_embedder("pixels").embed(np.zeros((2, 28, 28), np.uint8))
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-6)
    assert np.isfinite(v).all()
    np.testing.assert_allclose(l2_normalize(np.array([[3.0, 4.0]])), [[0.6, 0.8]])


@pytest.mark.parametrize(
    "images, message",
    [
        (np.zeros((2, 28, 27), np.uint8), r"shape \(N, 28, 28\)"),
        (np.zeros((2, 28, 28), np.float32), "uint8"),
        (np.zeros((28,), np.uint8), "uint8 images"),
    ],
)
def test_bad_input_shapes(images, message):
    with pytest.raises(InvalidArgumentError, match=message):
        get_embedder("pixels").embed(images)


def test_bad_batch_size():
    with pytest.raises(InvalidArgumentError, match="batch size must be at least 1"):
        get_embedder("pixels").embed(np.zeros((2, 28, 28), np.uint8), batch_size=-1)


def test_empty_batch():
    assert get_embedder("pixels").embed(np.zeros((0, 28, 28), np.uint8)).shape == (0, 784)


def test_the_method_to_lead_with():
    """The page and the service lead with the distilled method where it is
    served, else the best of the others; `--method all` leaves the ensemble
    out (it is ingested by name) and takes every other method."""
    from fmsearch.models.registry import BY_NAME_ONLY, all_methods, lead_method

    assert lead_method(["pixels", "siamese", "distilled", "ensemble"]) == "distilled"
    assert lead_method(["pixels", "siamese", "ensemble"]) == "ensemble"
    assert lead_method(["pixels", "siamese"]) == "siamese"
    assert lead_method(["pixels"]) == "pixels"
    assert lead_method([]) is None
    assert all_methods() == tuple(m for m in method_names() if m != "ensemble") and BY_NAME_ONLY == ("ensemble",)
