"""SIFT (OpenCV): local descriptors of an image, and two ways to compare sets.

Reads top to bottom like the seed's SIFT notebook: preprocessing (upscale,
because a 28x28 image has too few pixels for SIFT's scale space), keypoints
and descriptors, then the two scores:

- **Lowe** (the seed's): match each descriptor of image A to its two nearest
  in image B (brute force, L2); a match is *good* when the nearest is closer
  than ``ratio`` x the second nearest (Lowe, 2004). Score = good matches /
  keypoints of A, in [0, 1].
- **MaxSim** (late interaction, as Qdrant's multivector comparator): for each
  descriptor of A its best cosine similarity among B's, averaged over A's
  descriptors, in [0, 1] (descriptors are non-negative).

Identical images score 1.0 with both; an image without keypoints scores 0.

Descriptors are stored as uint8: RootSIFT (Arandjelovic & Zisserman, 2012:
L1-normalise, square root, so that L2/cosine on it is the Hellinger kernel on
SIFT) times 255, or OpenCV's plain SIFT values (already 0-255).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.base import IMAGE_SHAPE, Embedder

DESCRIPTOR_DIM = 128
# Upscale factor, from `fmsearch bench rerank` (docs/methods.md, "SIFT"): at 1x
# SIFT finds ~4 keypoints per image and none on ~8% of FMNIST; 2x ~35, 3x ~45
# (never none), 4x no more than 3x at a higher cost.
DEFAULT_UPSCALE = 3
DEFAULT_RATIO = 0.75
MAX_UPSCALE = 8
# Stored for an image without keypoints: one all-zero descriptor, whose
# cosine with anything is 0 (Qdrant refuses an empty multivector).
EMPTY = np.zeros((1, DESCRIPTOR_DIM), np.uint8)


def _cv2():
    import cv2

    return cv2


@functools.cache
def _sift(max_keypoints: int):
    return _cv2().SIFT_create(nfeatures=max_keypoints)


@dataclass(frozen=True)
class Features:
    """Keypoints (OpenCV objects, in upscaled pixel coordinates) and their
    (n, 128) uint8 descriptors; the upscaled image they were found on."""

    keypoints: tuple[Any, ...]
    descriptors: np.ndarray
    image: np.ndarray

    def __len__(self) -> int:
        return len(self.descriptors)


def quantize(descriptors: np.ndarray, root: bool) -> np.ndarray:
    """OpenCV float SIFT descriptors -> uint8 (RootSIFT x 255, or plain)."""
    d = np.asarray(descriptors, np.float32).reshape(-1, DESCRIPTOR_DIM)
    if root:
        d = np.sqrt(d / np.maximum(d.sum(axis=1, keepdims=True), 1e-7)) * 255.0
    return np.clip(np.rint(d), 0, 255).astype(np.uint8)


class SiftExtractor:
    """SIFT descriptors of (28, 28) uint8 images, one multivector per image.

    Not an :class:`~fmsearch.models.base.Embedder` (an image gives a variable number of
    vectors, not one), but the same ``name``/``dim``/``describe``/``prepare``/
    ``embed`` surface, so the indexer stores it like any method.

    Args:
        upscale: integer factor the image is enlarged by (cubic) before SIFT.
        root: RootSIFT (default) or plain SIFT descriptors.
        max_keypoints: keep at most this many (strongest) keypoints; 0 = all.
    """

    name = "sift"
    dim = DESCRIPTOR_DIM
    distance = "cosine"

    def __init__(self, upscale: int = DEFAULT_UPSCALE, root: bool = True, max_keypoints: int = 0) -> None:
        if not 1 <= int(upscale) <= MAX_UPSCALE:
            raise InvalidArgumentError(
                f"SIFT upscale must be between 1 and {MAX_UPSCALE}, got {upscale}", param="upscale"
            )
        if max_keypoints < 0:
            raise InvalidArgumentError(f"max_keypoints must be >= 0, got {max_keypoints}")
        self.upscale, self.root, self.max_keypoints = int(upscale), bool(root), int(max_keypoints)

    @property
    def fingerprint(self) -> str:
        kind = "rootsift" if self.root else "sift"
        return f"sift-v1-{kind}-x{self.upscale}-n{self.max_keypoints}-opencv{_cv2().__version__.split('.')[0]}"

    def describe(self) -> dict[str, Any]:
        return {
            **Embedder.describe(self),  # type: ignore[arg-type]  # the same keys as every method
            "multivector": True,
            "datatype": "uint8",
            "upscale": self.upscale,
            "rootsift": self.root,
        }

    def prepare(self) -> None:
        _sift(self.max_keypoints)

    def features(self, image: np.ndarray) -> Features:
        """Keypoints and quantised descriptors of one (28, 28) uint8 image."""
        image = np.asarray(image)
        if image.shape != IMAGE_SHAPE or image.dtype != np.uint8:
            raise InvalidArgumentError(
                f"sift: expected a uint8 image of shape (28, 28), got {image.dtype} {image.shape}"
            )
        cv2 = _cv2()
        big = (
            image
            if self.upscale == 1
            else cv2.resize(image, None, fx=self.upscale, fy=self.upscale, interpolation=cv2.INTER_CUBIC)
        )
        keypoints, desc = _sift(self.max_keypoints).detectAndCompute(big, None)
        if desc is None or len(keypoints) == 0:
            return Features((), np.zeros((0, DESCRIPTOR_DIM), np.uint8), big)
        return Features(tuple(keypoints), quantize(desc, self.root), big)

    def descriptors(self, image: np.ndarray) -> np.ndarray:
        """(n, 128) uint8 descriptors of one image (n may be 0)."""
        return self.features(image).descriptors

    def embed(self, images: np.ndarray) -> list[np.ndarray]:
        """One stored multivector per image: its descriptors, or :data:`EMPTY`."""
        images = np.asarray(images)
        if images.shape == IMAGE_SHAPE:
            images = images[None]
        return [for_storage(self.descriptors(img)) for img in images]


def for_storage(descriptors: np.ndarray) -> np.ndarray:
    """Descriptors as stored: an image without keypoints gets :data:`EMPTY`."""
    return descriptors if len(descriptors) else EMPTY


def from_storage(vectors: np.ndarray | None) -> np.ndarray:
    """Stored multivector -> descriptors as float32, the all-zero placeholder
    dropped. A backend may hand them back cosine-normalised (qdrant-client's
    local mode does); both scores normalise each descriptor anyway."""
    if vectors is None:
        return np.zeros((0, DESCRIPTOR_DIM), np.float32)
    v = np.asarray(vectors, np.float32).reshape(-1, DESCRIPTOR_DIM)
    return v[v.any(axis=1)]


def _unit_rows(d: np.ndarray) -> np.ndarray:
    d = np.asarray(d, np.float32)
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


# The two scores.


def ratio_test(a: np.ndarray, b: np.ndarray, ratio: float = DEFAULT_RATIO) -> list[Any]:
    """Good matches of A's descriptors in B (brute force L2 on unit-normalised
    descriptors, Lowe's ratio test).

    Returns:
        OpenCV ``DMatch`` objects (queryIdx into A, trainIdx into B). B needs
        two descriptors for the test; with fewer, nothing passes. An exact
        match (distance 0) always passes.
    """
    if not 0 < ratio <= 1:
        raise InvalidArgumentError(f"ratio must be in (0, 1], got {ratio}", param="ratio")
    if len(a) == 0 or len(b) < 2:
        return []
    cv2 = _cv2()
    pairs = cv2.BFMatcher(cv2.NORM_L2).knnMatch(_unit_rows(a), _unit_rows(b), k=2)
    # An exact match (distance 0) is good even when B repeats that descriptor
    # (symmetric shapes do), so that an image matched with itself scores 1.
    return [p[0] for p in pairs if len(p) == 2 and (p[0].distance < ratio * p[1].distance or p[0].distance == 0)]


def lowe_score(a: np.ndarray, b: np.ndarray, ratio: float = DEFAULT_RATIO) -> float:
    """The seed's score: good matches / keypoints of A; 0 when A has none."""
    return len(ratio_test(a, b, ratio)) / len(a) if len(a) else 0.0


def maxsim_score(a: np.ndarray, b: np.ndarray) -> float:
    """Mean over A's descriptors of the best cosine with B's (what Qdrant's
    MaxSim comparator sums; :mod:`fmsearch.search.rerank` divides by ``len(a)``)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    return float((_unit_rows(a) @ _unit_rows(b).T).max(axis=1).mean())


@dataclass(frozen=True)
class PairComparison:
    """Two images compared with SIFT: their features, the good matches of
    A's descriptors in B (Lowe's ratio test), and both scores."""

    a: Features
    b: Features
    matches: list[Any]
    ratio: float
    lowe_score: float
    maxsim_score: float

    def drawing(self) -> np.ndarray:
        """The two images side by side with the good matches drawn (RGB uint8)."""
        return draw_matches(self.a, self.b, self.matches)


def compare(
    image_a: np.ndarray, image_b: np.ndarray, extractor: SiftExtractor | None = None, ratio: float = DEFAULT_RATIO
) -> PairComparison:
    """Compare two (28, 28) uint8 images: Lowe score = good matches /
    keypoints of A; MaxSim = mean over A's descriptors of the best cosine
    with B's. Both in [0, 1]; identical images score 1, an image without
    keypoints 0."""
    extractor = extractor or SiftExtractor()
    fa, fb = extractor.features(image_a), extractor.features(image_b)
    good = ratio_test(fa.descriptors, fb.descriptors, ratio)
    lowe = len(good) / len(fa) if len(fa) else 0.0
    return PairComparison(fa, fb, good, ratio, lowe, maxsim_score(fa.descriptors, fb.descriptors))


def draw_matches(a: Features, b: Features, matches: list[Any], zoom: int = 3) -> np.ndarray:
    """The two (upscaled) images side by side, matches drawn as lines (like
    the seed's figures); RGB uint8, enlarged ``zoom`` times for viewing."""
    cv2 = _cv2()
    canvas = cv2.drawMatches(
        a.image,
        list(a.keypoints),
        b.image,
        list(b.keypoints),
        matches,
        None,
        matchColor=(0, 255, 0),
        singlePointColor=(255, 0, 0),
        flags=cv2.DrawMatchesFlags_DEFAULT,
    )
    canvas = cv2.cvtColor(canvas, cv2.COLOR_BGR2RGB)
    return cv2.resize(canvas, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
