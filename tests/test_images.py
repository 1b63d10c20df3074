"""Image files to FMNIST-shaped arrays: every mode, and every bad file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fmsearch.images.files import decode_png, encode_png, load_image, save_png


def _garment(size=(60, 40), light_background=True):
    """A dark rectangle ("garment") on a light page, or the FMNIST polarity."""
    w, h = size
    img = np.full((h, w), 255 if light_background else 0, np.uint8)
    img[h // 8 : 7 * h // 8, w // 3 : 2 * w // 3] = 30 if light_background else 225
    return img


def test_28x28_png_is_kept_pixel_for_pixel(fmnist, tmp_path):
    img = fmnist["train"].images[0]
    save_png(img, tmp_path / "a.png")
    assert np.array_equal(load_image(tmp_path / "a.png"), img)


def test_png_payload_round_trip(fmnist):
    img = fmnist["test"].images[123]
    assert np.array_equal(decode_png(encode_png(img)), img)


def test_light_background_is_inverted_trimmed_and_resized(tmp_path):
    Image.fromarray(_garment()).save(tmp_path / "g.jpg", quality=95)
    out = load_image(tmp_path / "g.jpg")
    assert out.shape == (28, 28) and out.dtype == np.uint8
    # light garment on a dark background, filling the height (longest side)
    assert out[14, 14] > 200 and out[14, 0] < 20 and out[0, 14] > 200


def test_dark_background_is_not_inverted(tmp_path):
    Image.fromarray(_garment(light_background=False)).save(tmp_path / "d.png")
    out = load_image(tmp_path / "d.png")
    assert out[14, 14] > 200 and out[14, 0] < 20


@pytest.mark.parametrize(
    "mode",
    ["RGB", "RGBA", "P", "I;16", "CMYK", "1"],
)
def test_colour_modes(tmp_path, mode):
    base = Image.fromarray(_garment())
    if mode == "RGBA":
        img = base.convert("RGBA")
        alpha = np.where(np.asarray(base) > 128, 0, 255).astype(np.uint8)  # page transparent
        img.putalpha(Image.fromarray(alpha))
    elif mode == "I;16":
        img = Image.fromarray(np.asarray(base).astype(np.uint16) * 257)
    else:
        img = base.convert(mode)
    path = tmp_path / ("x.jpg" if mode == "CMYK" else "x.tiff" if mode == "I;16" else "x.png")
    img.save(path)
    out = load_image(path)
    assert out.shape == (28, 28) and out[14, 14] > 180 and out[14, 0] < 40


def test_animated_gif_uses_first_frame(tmp_path):
    frames = [Image.fromarray(_garment()), Image.fromarray(np.zeros((40, 60), np.uint8))]
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=100)
    out = load_image(tmp_path / "a.gif")
    assert out[14, 14] > 180
