"""Resolve a method name to an :class:`~models.base.Embedder`."""

from __future__ import annotations

import importlib
from typing import Any

from fmsearch.errors import UnknownMethodError

from .base import Embedder

# name -> "module:Class"; imported only when asked for, so that TensorFlow
# never loads for a method that does not need it.
_METHODS: dict[str, str] = {
    "pixels": "models.pixels:PixelEmbedder",
    "autoencoder": "models.autoencoder:AutoencoderEmbedder",
    "siamese": "models.siamese:SiameseEmbedder",
    "resnet101": "models.resnet:ResNet101Embedder",
    # local descriptors, a multivector per image: a rerank stage, not a first stage
    "sift": "models.sift:SiftExtractor",
}
#: methods that only rerank another method's shortlist (`--rerank sift`)
RERANK_ONLY = ("sift",)


def method_names() -> tuple[str, ...]:
    """Every method the registry knows, in a stable order."""
    return tuple(_METHODS)


def check_method(name: str) -> str:
    """Return ``name`` if it is a known method.

    Raises:
        UnknownMethodError: listing the valid names.
    """
    if name not in _METHODS:
        raise UnknownMethodError(
            f"unknown method {name!r}; valid methods: {', '.join(_METHODS)}"
        )
    return name


def get_embedder(name: str, **options: Any) -> Embedder:  # or a SiftExtractor for "sift"
    """Build the embedder for a method.

    Args:
        name: a method name (see :func:`method_names`).
        **options: passed to the method's constructor.

    Raises:
        UnknownMethodError: the name is unknown.
    """
    module_name, cls_name = _METHODS[check_method(name)].split(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls(**options)
