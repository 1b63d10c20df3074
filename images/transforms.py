"""Seeded image transforms that make near-duplicates of gallery images.

Each transform takes a (28, 28) uint8 image and a numpy Generator and returns
a (28, 28) uint8 image: the kind of change a re-photographed, re-cropped or
re-encoded copy of a product picture shows. Parameters are drawn from the
ranges in :data:`DESCRIPTIONS` (the near-duplicate report lists them).
"""

from __future__ import annotations

import io
from collections.abc import Callable

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.images.fmnist import IMAGE_SIDE

Transform = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _affine(image: np.ndarray, angle: float = 0.0, scale: float = 1.0, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
    """Rotate (degrees), scale about the centre, then shift (pixels); bilinear, black fill."""
    from PIL import Image

    c = (IMAGE_SIDE - 1) / 2.0
    t = np.deg2rad(angle)
    # PIL wants the inverse map: output (x, y) -> input
    a, b = np.cos(t) / scale, np.sin(t) / scale
    inv = (a, b, c - a * (c + dx) - b * (c + dy), -b, a, c + b * (c + dx) - a * (c + dy))
    img = Image.fromarray(image).transform(
        (IMAGE_SIDE, IMAGE_SIDE), Image.Transform.AFFINE, inv, resample=Image.Resampling.BILINEAR, fillcolor=0
    )
    return np.asarray(img, np.uint8)


def rotate(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _affine(image, angle=float(rng.choice([-1, 1]) * rng.uniform(5, 15)))


def scale(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return _affine(image, scale=float(rng.choice([rng.uniform(0.85, 0.95), rng.uniform(1.05, 1.15)])))


def shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    dx, dy = rng.integers(-2, 3, size=2)
    while dx == 0 and dy == 0:
        dx, dy = rng.integers(-2, 3, size=2)
    return _affine(image, dx=float(dx), dy=float(dy))


def brightness_contrast(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    alpha, beta = rng.uniform(0.7, 1.3), rng.uniform(-30, 30)
    return np.clip(np.rint(image.astype(np.float32) * alpha + beta), 0, 255).astype(np.uint8)


def jpeg(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return reencoded(image, int(rng.integers(30, 61)))


def reencoded(image: np.ndarray, quality: int) -> np.ndarray:
    """The image after a JPEG round trip at ``quality`` (1-95)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as img:
        return np.asarray(img.convert("L"), np.uint8)


TRANSFORMS: dict[str, Transform] = {
    "rotate": rotate,
    "scale": scale,
    "shift": shift,
    "brightness_contrast": brightness_contrast,
    "jpeg": jpeg,
}
DESCRIPTIONS: dict[str, str] = {
    "rotate": "rotation by 5-15 degrees either way about the centre (bilinear)",
    "scale": "zoom by 0.85-0.95 or 1.05-1.15 about the centre",
    "shift": "translation by up to 2 px in x and y (never none)",
    "brightness_contrast": "pixel x U(0.7, 1.3) + U(-30, 30), clipped to 0-255",
    "jpeg": "JPEG re-encoding at quality 30-60",
}


def apply(name: str, images: np.ndarray, seed: int) -> np.ndarray:
    """Transform each image with its own draw from a generator seeded by ``seed``."""
    if name not in TRANSFORMS:
        raise InvalidArgumentError(f"unknown transform {name!r}; valid: {', '.join(TRANSFORMS)}")
    rng = np.random.default_rng(seed)
    fn = TRANSFORMS[name]
    return np.stack([fn(np.asarray(img, np.uint8), rng) for img in images]) if len(images) else np.asarray(images)
