"""Image files to FMNIST-shaped arrays: every mode, and every bad file."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fmsearch.errors import ImageError
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
        img = Image.fromarray((np.asarray(base).astype(np.uint16) * 257))
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


def _png_header_only(path, width, height):
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "no such file"),
        (lambda p: p.mkdir(), "is a directory"),
        (lambda p: p.write_bytes(b""), "file is empty"),
        (lambda p: p.write_text("hello, I am text"), "not an image file"),
        (lambda p: _png_header_only(p, 30000, 30000), "decompression-bomb guard"),
        (lambda p: Image.new("L", (1, 1)).save(p, format="PNG"), "too small"),
        (lambda p: _png_header_only(p, 64, 64), "unreadable or truncated"),
    ],
    ids=["missing", "directory", "empty", "text", "bomb", "1x1", "truncated"],
)
def test_bad_files_are_refused(tmp_path, make, message):
    path = tmp_path / "bad.png"
    make(path)
    with pytest.raises(ImageError, match=message):
        load_image(path)


def test_truncated_real_png(fmnist, tmp_path):
    img = np.kron(fmnist["train"].images[0], np.ones((8, 8), np.uint8))  # 224x224
    Image.fromarray(img).save(tmp_path / "big.png")
    data = (tmp_path / "big.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageError, match="cut.png: unreadable or truncated"):
        load_image(tmp_path / "cut.png")
