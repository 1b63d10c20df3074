"""Image files in, FMNIST-shaped arrays out, and back (PNG bytes for payloads).

FMNIST's own preprocessing (Xiao et al., 2017) trims the product photo, resizes
the longest edge to 28 px, centres it and negates it: a light garment on a
black background. :func:`load_image` does the same for any file Pillow reads.
"""

from __future__ import annotations

import base64
import io
import os
import warnings
from pathlib import Path

import numpy as np

from fmsearch.errors import ImageError
from fmsearch.images.fmnist import IMAGE_SIDE

# Refuse anything larger before decoding it: 40 megapixels is a large camera
# photo; a 30000 x 30000 "image" is a decompression bomb.
MAX_PIXELS = 40_000_000
MIN_SIDE = 8
# Border mean above this means a light background: negate to FMNIST polarity.
_LIGHT_BORDER = 127
# Pixels above this (after negation) count as garment when trimming.
_TRIM_THRESHOLD = 16


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a (28, 28) uint8 array in FMNIST polarity.

    Any size and colour mode Pillow reads (PNG, JPEG, BMP, TIFF, WebP, GIF's
    first frame; 16-bit, palette, RGBA, CMYK). A 28x28 input is kept pixel for
    pixel; anything else is trimmed to its content, padded to a square and
    resized with a box filter.

    Raises:
        ImageError: missing path, a directory, an empty, truncated or
            unreadable file, an image too large (decompression bomb) or too small.
    """
    p = Path(path)
    if not p.exists():
        raise ImageError(f"{p}: no such file")
    if p.is_dir():
        raise ImageError(f"{p}: is a directory, not an image")
    if p.stat().st_size == 0:
        raise ImageError(f"{p}: file is empty")
    return _decode(p, str(p))


def image_from_bytes(data: bytes, name: str = "upload") -> np.ndarray:
    """:func:`load_image` for the bytes of an image file (an upload), with
    the same guards; ``name`` is what errors call it."""
    if not data:
        raise ImageError(f"{name}: file is empty")
    return _decode(io.BytesIO(data), name)


def _decode(source, name: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as img:
                w, h = img.size
                if w * h > MAX_PIXELS:
                    raise ImageError(
                        f"{name}: {w}x{h} pixels exceeds the {MAX_PIXELS:,}-pixel limit (decompression-bomb guard)"
                    )
                if min(w, h) < MIN_SIDE:
                    raise ImageError(f"{name}: {w}x{h} pixels is too small; need at least {MIN_SIDE}x{MIN_SIDE}")
                img.seek(0)  # first frame of an animation
                img.load()
                gray = _to_gray(img)
    except ImageError:
        raise
    except UnidentifiedImageError as err:
        raise ImageError(f"{name}: not an image file Pillow can read") from err
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
        raise ImageError(f"{name}: refused by the decompression-bomb guard ({err})") from err
    except (OSError, ValueError, SyntaxError) as err:
        raise ImageError(f"{name}: unreadable or truncated image ({err})") from err
    except MemoryError:
        raise
    except Exception as err:  # noqa: BLE001 - a malformed file may raise anything in a decoder (Pillow's
        # DDS plugin raises NotImplementedError for unknown pixel formats): the file is bad, not the program
        first = str(err).splitlines()[0] if str(err) else ""
        raise ImageError(f"{name}: unreadable image ({type(err).__name__}{': ' + first if first else ''})") from err
    return to_fmnist(gray)


def png_bytes(image: np.ndarray) -> bytes:
    """A (28, 28) uint8 image as PNG file bytes."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def _to_gray(img) -> np.ndarray:
    """Any Pillow mode to a 2-D uint8 array; transparency becomes white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if hi <= lo:
            return np.zeros(arr.shape, np.uint8)
        return np.round((arr - lo) * (255.0 / (hi - lo))).astype(np.uint8)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return np.asarray(img.convert("L"), dtype=np.uint8)


def to_fmnist(gray: np.ndarray) -> np.ndarray:
    """A 2-D uint8 grayscale array to a (28, 28) uint8 FMNIST-like image."""
    from PIL import Image

    if gray.ndim != 2 or gray.dtype != np.uint8:
        raise ImageError(f"expected a 2-D uint8 image, got {gray.dtype} {gray.shape}")
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if float(border.mean()) > _LIGHT_BORDER:
        gray = 255 - gray
    if gray.shape == (IMAGE_SIDE, IMAGE_SIDE):
        return np.ascontiguousarray(gray)
    garment = gray > _TRIM_THRESHOLD
    # a tenth of np.nonzero's time on a 280x280 upload; garment is 2-D, so both are 1-D arrays
    rows: np.ndarray = np.any(garment, axis=1)
    cols: np.ndarray = np.any(garment, axis=0)
    if rows.any():
        top, left = int(rows.argmax()), int(cols.argmax())
        bottom, right = len(rows) - int(rows[::-1].argmax()), len(cols) - int(cols[::-1].argmax())
        gray = gray[top:bottom, left:right]
    h, w = gray.shape
    side = max(h, w)
    square = np.zeros((side, side), np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = gray
    resized = Image.fromarray(square).resize((IMAGE_SIDE, IMAGE_SIDE), Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.uint8)


def encode_png(image: np.ndarray) -> str:
    """A (28, 28) uint8 image as base64 PNG text (the payload's ``image``)."""
    return base64.b64encode(png_bytes(image)).decode("ascii")


def decode_png(text: str) -> np.ndarray:
    """Inverse of :func:`encode_png`."""
    from PIL import Image

    with Image.open(io.BytesIO(base64.b64decode(text))) as img:
        return np.asarray(img.convert("L"), dtype=np.uint8)


def save_png(image: np.ndarray, path: str | os.PathLike) -> None:
    """Write a (28, 28) uint8 image to a PNG file."""
    from PIL import Image

    Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8)).save(path, format="PNG")
