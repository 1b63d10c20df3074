"""Resolve a method name to an :class:`~fmsearch.models.base.Embedder`, and
say which options each method takes."""

from __future__ import annotations

import importlib
from typing import Any

from fmsearch.errors import InvalidArgumentError, UnknownMethodError
from fmsearch.models.base import Embedder

# name -> "module:Class"; imported only when asked for, so that TensorFlow
# never loads for a method that does not need it.
_METHODS: dict[str, str] = {
    "pixels": "fmsearch.models.pixels:PixelEmbedder",
    "autoencoder": "fmsearch.models.autoencoder:AutoencoderEmbedder",
    "siamese": "fmsearch.models.siamese:SiameseEmbedder",
    "proxy": "fmsearch.models.proxy:ProxyEmbedder",
    "ensemble": "fmsearch.models.ensemble:EnsembleEmbedder",
    "resnet101": "fmsearch.models.resnet:ResNet101Embedder",
    # local descriptors, a multivector per image: a rerank stage, not a first stage
    "sift": "fmsearch.models.sift:SiftExtractor",
}
#: methods that only rerank another method's shortlist (a SIFT rerank)
RERANK_ONLY = ("sift",)
#: methods whose model is trained here (``fmsearch train``) and shipped
TRAINABLE = ("autoencoder", "siamese", "proxy")
#: methods built from trained artifacts, without training (``fmsearch combine``), and shipped
COMBINED = ("ensemble",)
#: every method with a shipped ``.keras`` artifact and its ONNX export
SHIPPED = TRAINABLE + COMBINED
#: methods whose weights come from a download that may be out of reach:
#: ingesting every method skips them, with the reason, when they cannot load
DOWNLOADED = ("resnet101",)
#: the constructor options each method takes
OPTIONS: dict[str, tuple[str, ...]] = {
    "pixels": (),
    "autoencoder": ("weights", "runtime", "threads", "spin"),
    "siamese": ("weights", "runtime", "threads", "spin"),
    "proxy": ("weights", "runtime", "threads", "spin"),
    "ensemble": ("weights", "runtime", "threads", "spin"),
    "resnet101": ("weights", "input_size"),
    "sift": ("upscale", "root", "max_keypoints"),
}


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


def model_options(method: str, **given: Any) -> dict[str, Any]:
    """The constructor options of ``method`` among ``given`` (``None``: not
    given), refusing one the method does not take.

    Raises:
        UnknownMethodError, InvalidArgumentError.
    """
    options = {k: v for k, v in given.items() if v is not None}
    for key in options:
        if key not in OPTIONS[check_method(method)]:
            raise InvalidArgumentError(f"{key.replace('_', ' ')} does not apply to {method}", param=key)
    return options
