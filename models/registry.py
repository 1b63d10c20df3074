"""Two registries: embedding methods (a name resolves to an
:class:`~fmsearch.models.base.Embedder`, whose collection is searched) and
rerank stages (a name resolves to the extractor whose per-image descriptors a
stage scores by id, never searched); and which options each takes."""

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
    "distilled": "fmsearch.models.distilled:DistilledEmbedder",
    "ensemble": "fmsearch.models.ensemble:EnsembleEmbedder",
    "resnet101": "fmsearch.models.resnet:ResNet101Embedder",
}
# rerank stages: name -> the extractor of the descriptors its collection holds (local descriptors, a
# multivector per image), which reorder another method's shortlist; ingested like a method, never searched
_STAGES: dict[str, str] = {
    "sift": "fmsearch.models.sift:SiftExtractor",
}
#: methods whose model is trained here (``fmsearch train``) and shipped
TRAINABLE = ("autoencoder", "siamese", "proxy", "distilled")
#: methods built from trained artifacts, without training (``fmsearch combine``), and shipped
COMBINED = ("ensemble",)
#: every method with a shipped ``.keras`` artifact and its ONNX export
SHIPPED = ("autoencoder", "siamese", "proxy", "distilled", *COMBINED)
#: the method the page, the service and the README lead with: the best quality at one network's cost
#: (docs/evaluation.md); where a home does not hold it, the first of :data:`LEADS` it holds
DEFAULT_METHOD = "distilled"
#: the order in which a default method is picked among those a home holds
LEADS = (DEFAULT_METHOD, "ensemble", "proxy", "siamese", "autoencoder", "pixels", "resnet101")
#: methods that ``--method all`` leaves out, ingested by name only: the distilled method comes within
#: half a point of the ensemble's P@1 at a quarter of its evaluation time (docs/evaluation.md)
BY_NAME_ONLY = ("ensemble",)
#: methods whose weights come from a download that may be out of reach:
#: ingesting every method skips them, with the reason, when they cannot load
DOWNLOADED = ("resnet101",)
#: the constructor options each method takes
OPTIONS: dict[str, tuple[str, ...]] = {
    "pixels": (),
    "autoencoder": ("weights", "runtime", "threads", "spin"),
    "siamese": ("weights", "runtime", "threads", "spin"),
    "proxy": ("weights", "runtime", "threads", "spin"),
    "distilled": ("weights", "runtime", "threads", "spin"),
    "ensemble": ("weights", "runtime", "threads", "spin"),
    "resnet101": ("weights", "input_size"),
}
#: the constructor options each rerank stage's extractor takes
STAGE_OPTIONS: dict[str, tuple[str, ...]] = {
    "sift": ("upscale", "root", "max_keypoints"),
}


def method_names() -> tuple[str, ...]:
    """Every embedding method, in a stable order."""
    return tuple(_METHODS)


def all_methods() -> tuple[str, ...]:
    """What ``--method all`` means: every method but those ingested by name
    only (:data:`BY_NAME_ONLY`)."""
    return tuple(m for m in _METHODS if m not in BY_NAME_ONLY)


def lead_method(available) -> str | None:
    """The method to lead with among ``available``: :data:`DEFAULT_METHOD`
    where it is there, else the first of :data:`LEADS`, else the first given."""
    available = list(available)
    return next((m for m in LEADS if m in available), available[0] if available else None)


def stage_names() -> tuple[str, ...]:
    """Every rerank stage, in a stable order."""
    return tuple(_STAGES)


def check_method(name: str) -> str:
    """Return ``name`` if it is an embedding method.

    Raises:
        InvalidArgumentError: it is a rerank stage (searched with another method).
        UnknownMethodError: listing the valid names.
    """
    if name in _STAGES:
        raise InvalidArgumentError(
            f"{name} is a rerank stage, not a search method: it reorders another method's results (rerank {name})"
        )
    if name not in _METHODS:
        raise UnknownMethodError(f"unknown method {name!r}; valid methods: {', '.join(_METHODS)}")
    return name


def check_stage(name: str) -> str:
    """Return ``name`` if it is a rerank stage.

    Raises:
        InvalidArgumentError: listing the valid stages.
    """
    if name not in _STAGES:
        raise InvalidArgumentError(f"unknown rerank stage {name!r}; valid: {', '.join(_STAGES)}", param="rerank")
    return name


def _build(target: str, options: dict[str, Any]) -> Any:
    module_name, cls_name = target.split(":")
    return getattr(importlib.import_module(module_name), cls_name)(**options)


def get_embedder(name: str, **options: Any) -> Embedder:
    """Build the embedder of a method.

    Args:
        name: a method name (see :func:`method_names`).
        **options: passed to the method's constructor.

    Raises:
        UnknownMethodError: the name is unknown; InvalidArgumentError: it is a stage.
    """
    return _build(_METHODS[check_method(name)], options)


def get_extractor(stage: str, **options: Any) -> Any:
    """Build the descriptor extractor of a rerank stage (what its collection
    is ingested with: ``describe``, ``embed_batch`` to multivectors)."""
    return _build(_STAGES[check_stage(stage)], options)


def get_ingestible(name: str, **options: Any) -> Any:
    """What ``fmsearch ingest --method NAME`` writes a collection with: a
    method's embedder, or a rerank stage's extractor."""
    return get_extractor(name, **options) if name in _STAGES else get_embedder(name, **options)


def model_options(name: str, **given: Any) -> dict[str, Any]:
    """The constructor options of a method or a stage among ``given``
    (``None``: not given), refusing one it does not take.

    Raises:
        UnknownMethodError, InvalidArgumentError.
    """
    takes = STAGE_OPTIONS[name] if name in _STAGES else OPTIONS[check_method(name)]
    options = {k: v for k, v in given.items() if v is not None}
    for key in options:
        if key not in takes:
            raise InvalidArgumentError(f"{key.replace('_', ' ')} does not apply to {name}", param=key)
    return options
