"""Why is this a match? Occlusion heatmaps of a pair of images, for any method.

A patch of the query is covered (``fill``), every covered variant is embedded
with the method's own encoder, and the drop of its cosine similarity to the
hit's vector is the patch's share of the match; a pixel's heat is the mean
drop of the patches that cover it. The same is done to the hit against the
query. Every variant of both images is embedded in one batch, so the
explanation costs one call of the encoder (its ONNX export at query time;
occlusion needs nothing but ``embed``, so pixels is explained the same way).

Occlusion sensitivity is Zeiler and Fergus (2014); Captum's ``Occlusion``
averages a pixel's windows the same way. The patch, stride and fill are
chosen by the deletion test on a validation split (``fmsearch bench explain
--sweep``, docs/methods.md), never on the test split.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.base import IMAGE_SHAPE, Embedder
from fmsearch.search.mode import parse_methods

#: how a covered patch is filled: black (FMNIST's background, as if the garment had no such part), the
#: image's mean grey, or the image blurred (what is near stays, the detail goes)
FILLS = ("zero", "mean", "blur")
# chosen on validation queries (train 50,000-59,999, each with one of its first ten train hits) by
# `fmsearch bench explain --sweep`: the lowest mean deletion AUC of the neural methods (as a ratio to the
# random order's) among the settings whose siamese explanation takes at most EXPLAIN_BUDGET_MS
# (docs/methods.md, "Why is this a match?")
PATCH = 4
STRIDE = 4
FILL = "zero"
#: the time an explanation's encoder batch may take on the sweep's machine, leaving the service's own
#: work within the 50 ms goal
EXPLAIN_BUDGET_MS = 30.0
_SIDE = IMAGE_SHAPE[0]


def _starts(patch: int, stride: int) -> list[int]:
    """Window offsets along one side: every ``stride`` pixels, and the last
    window flush with the edge, so that every pixel is covered."""
    starts = list(range(0, _SIDE - patch + 1, stride))
    if starts[-1] != _SIDE - patch:
        starts.append(_SIDE - patch)
    return starts


def box_blur(images: np.ndarray, size: int) -> np.ndarray:
    """Each image's ``size`` x ``size`` box mean (edges repeated), as uint8."""
    pad = size // 2
    padded = np.pad(images.astype(np.float32), ((0, 0), (pad, size - 1 - pad), (pad, size - 1 - pad)), mode="edge")
    sums = padded.cumsum(1).cumsum(2)
    sums = np.pad(sums, ((0, 0), (1, 0), (1, 0)))
    h, w = images.shape[1:]
    box = sums[:, size:, size:] - sums[:, :h, size:] - sums[:, size:, :w] + sums[:, :h, :w]
    return np.rint(box / (size * size)).astype(np.uint8)


@dataclass(frozen=True)
class Occlusion:
    """How images are occluded: square ``patch`` windows every ``stride``
    pixels, filled with ``fill`` (one of :data:`FILLS`).

    Raises:
        InvalidArgumentError: a patch outside 1-28, a stride outside 1 to the
            patch (a wider stride would leave pixels no window covers), an
            unknown fill, or a blur over a patch under 3 pixels (it would blur nothing).
    """

    patch: int = PATCH
    stride: int = STRIDE
    fill: str = FILL
    _masks: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.patch, bool) or not isinstance(self.patch, int) or not 1 <= self.patch <= _SIDE:
            raise InvalidArgumentError(f"patch must be between 1 and {_SIDE} pixels, got {self.patch}", param="patch")
        if isinstance(self.stride, bool) or not isinstance(self.stride, int) or not 1 <= self.stride <= self.patch:
            raise InvalidArgumentError(
                f"stride must be between 1 and the patch ({self.patch}) pixels, got {self.stride}", param="stride"
            )
        if self.fill not in FILLS:
            raise InvalidArgumentError(f"fill must be one of {', '.join(FILLS)}, got {self.fill!r}", param="fill")
        if self.fill == "blur" and self.patch < 3:
            raise InvalidArgumentError(
                f"a blur fill needs a patch of at least 3 pixels (a box blur of {self.patch} changes nothing)",
                param="patch",
            )
        starts = _starts(self.patch, self.stride)
        masks = np.zeros((len(starts) ** 2, *IMAGE_SHAPE), dtype=bool)
        for i, (y, x) in enumerate((y, x) for y in starts for x in starts):
            masks[i, y : y + self.patch, x : x + self.patch] = True
        object.__setattr__(self, "_masks", masks)

    @property
    def variants(self) -> int:
        """Occluded variants of one image."""
        return len(self._masks)

    def occluded(self, image: np.ndarray) -> np.ndarray:
        """(variants, 28, 28) uint8: ``image`` with each window filled."""
        if self.fill == "zero":
            filler = np.zeros_like(image)
        elif self.fill == "mean":
            filler = np.full_like(image, int(round(float(image.mean()))))
        else:
            filler = box_blur(image[None], self.patch)[0]
        return np.where(self._masks, filler[None], image[None])

    def heat(self, drops: np.ndarray) -> np.ndarray:
        """(28, 28) float32: each pixel's mean drop over the windows covering it."""
        drops = np.asarray(drops, dtype=np.float32)
        covered = self._masks.sum(0).astype(np.float32)
        return (np.tensordot(drops, self._masks.astype(np.float32), axes=1) / covered).astype(np.float32)

    def settings(self) -> dict[str, Any]:
        return {"patch": self.patch, "stride": self.stride, "fill": self.fill}


@dataclass(frozen=True)
class Explanation:
    """Why ``query`` and ``hit`` are close under ``method``: their cosine
    similarity and, per pixel, the similarity lost when the pixel's
    neighbourhood is occluded (positive: that part made them similar;
    negative: that part held them apart)."""

    method: str
    similarity: float
    query_heat: np.ndarray
    hit_heat: np.ndarray
    query_image: np.ndarray
    hit_image: np.ndarray
    occlusion: Occlusion
    batch: int  # images embedded, in one call
    ms: float

    def to_dict(self, decimals: int = 5) -> dict[str, Any]:
        """The JSON the CLI prints and the service answers (heat rounded)."""
        return {
            "method": self.method,
            "similarity": round(self.similarity, 6),
            "query_heat": np.round(self.query_heat, decimals).tolist(),
            "hit_heat": np.round(self.hit_heat, decimals).tolist(),
            **self.occlusion.settings(),
            "batch": self.batch,
            "ms": round(self.ms, 2),
        }

    def drawing(self, scale: int = 8, gap: int = 8) -> np.ndarray:
        """RGB uint8: the query, then the hit, each with its heat laid over
        it on one shared scale (red: made them similar, blue: held them apart)."""
        top = max(float(np.abs(self.query_heat).max()), float(np.abs(self.hit_heat).max()), 1e-12)
        sides = [
            overlay(img, heat / top, scale)
            for img, heat in ((self.query_image, self.query_heat), (self.hit_image, self.hit_heat))
        ]
        spacer = np.full((sides[0].shape[0], gap, 3), 255, dtype=np.uint8)
        return np.concatenate([sides[0], spacer, sides[1]], axis=1)


def overlay(image: np.ndarray, heat: np.ndarray, scale: int = 8) -> np.ndarray:
    """RGB uint8 of a grey ``image`` with ``heat`` (in [-1, 1]) over it: red
    for positive, blue for negative, opaque in proportion to its size."""
    grey = np.repeat(image.astype(np.float32)[..., None], 3, axis=2)
    colour = np.where(heat[..., None] >= 0, np.array([255.0, 40.0, 0.0]), np.array([0.0, 90.0, 255.0]))
    alpha = np.clip(np.abs(heat), 0.0, 1.0)[..., None] * 0.75
    rgb = np.rint(grey * (1 - alpha) + colour * alpha).astype(np.uint8)
    return rgb.repeat(scale, axis=0).repeat(scale, axis=1)


def one_method(method: str) -> str:
    """``method``, refused where it names methods joined by + (a fusion has
    no one similarity to explain: each of its methods has)."""
    methods = parse_methods(method)
    if len(methods) > 1:
        raise InvalidArgumentError(
            f"method {method} is a fusion, and an explanation is of one similarity: explain each of "
            f"{', '.join(methods)}",
            param="method",
        )
    return method


def _image(image: np.ndarray, which: str) -> np.ndarray:
    image = np.asarray(image)
    if image.shape != IMAGE_SHAPE or image.dtype != np.uint8:
        raise InvalidArgumentError(f"the {which} must be a 28x28 uint8 image, got {image.dtype} {image.shape}")
    return image


def explain_pair(
    embedder: Embedder, query: np.ndarray, hit: np.ndarray, occlusion: Occlusion | None = None
) -> Explanation:
    """Occlusion heatmaps of the pair (``query``, ``hit``) under ``embedder``.

    Args:
        embedder: the method's encoder (only ``embed`` is called, once: one
            batch where it is no larger than the method's batch size).
        query, hit: (28, 28) uint8 images.
        occlusion: patch, stride and fill (default: those chosen on the validation split).

    Returns:
        The :class:`Explanation`.

    Raises:
        InvalidArgumentError: an image of another shape or type.
    """
    occlusion = occlusion or Occlusion()
    query, hit = _image(query, "query"), _image(hit, "hit")
    start = time.perf_counter()
    n = occlusion.variants
    batch = np.concatenate([query[None], hit[None], occlusion.occluded(query), occlusion.occluded(hit)])
    # one batch, up to the method's own batch size (resnet101's is 32: its 224 px inputs are large)
    vectors = embedder.embed(batch, batch_size=min(len(batch), embedder.default_batch_size))
    q, h = vectors[0], vectors[1]
    similarity = float(q @ h)
    query_heat = occlusion.heat(similarity - vectors[2 : 2 + n] @ h)
    hit_heat = occlusion.heat(similarity - vectors[2 + n :] @ q)
    ms = (time.perf_counter() - start) * 1000
    return Explanation(embedder.name, similarity, query_heat, hit_heat, query, hit, occlusion, len(batch), ms)


__all__ = ["FILLS", "Explanation", "Occlusion", "box_blur", "explain_pair", "one_method", "overlay"]
