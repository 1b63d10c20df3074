"""The collection schema: the one place that spells names, payload keys and ids.

This is the contract with services that call Qdrant directly (docs/schema.md,
"Collection schema"); changing anything here is a breaking change and bumps
``SCHEMA_VERSION``.

- Collection: ``<prefix><method>``, prefix ``fmnist_`` by default.
- Vector: one unnamed dense vector per point, L2-normalised, cosine distance;
  for ``sift`` a multivector instead: the image's 128-d SIFT descriptors as
  uint8, MaxSim comparator, cosine, no HNSW (it is only scored by id).
- Point id: index in the train split, or ``60000 + index`` for the test split.
- Payload: ``label`` (int 0-9), ``class_name`` (keyword), ``split``
  ("train"/"test"), ``index`` (int), ``image`` (base64 PNG of the 28x28 image).
- Payload indexes: ``label`` (integer), ``class_name`` and ``split`` (keyword).
- Collection metadata: ``fmsearch_schema``, ``method``, ``fingerprint``,
  ``dim``, ``distance``, ``complete``, ``points_planned``, ``created_at``
  (and ``quantization``, ``distribution``, a SIFT collection's settings).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

from fmsearch.errors import CollectionMismatchError, InvalidArgumentError
from fmsearch.images.fmnist import CLASS_NAMES, SPLIT_SIZES

SCHEMA_VERSION = 1
DEFAULT_PREFIX = "fmnist_"
TEST_ID_OFFSET = SPLIT_SIZES["train"]
MAX_POINT_ID = SPLIT_SIZES["train"] + SPLIT_SIZES["test"] - 1

LABEL = "label"
CLASS_NAME = "class_name"
SPLIT = "split"
INDEX = "index"
IMAGE = "image"
# What a query returns per hit: everything but the (large) image.
HIT_FIELDS = (LABEL, CLASS_NAME, SPLIT, INDEX)
PAYLOAD_INDEXES: dict[str, str] = {LABEL: "integer", CLASS_NAME: "keyword", SPLIT: "keyword"}

# Collection metadata keys.
META_SCHEMA = "fmsearch_schema"
META_METHOD = "method"
META_DIM = "dim"
META_FINGERPRINT = "fingerprint"
#: every planned point is written and indexed
META_COMPLETE = "complete"
META_PLANNED = "points_planned"
META_QUANTIZATION = "quantization"
META_DISTRIBUTION = "distribution"
#: the float32 vectors are memory-mapped from disk, not held in RAM
META_ON_DISK = "vectors_on_disk"
META_CREATED = "created_at"
#: what must agree between a collection and the model queried against it
MODEL_KEYS = (META_METHOD, META_DIM, META_FINGERPRINT)

# Index settings both backends build with (Qdrant's defaults).
HNSW_M = 16
HNSW_EF_CONSTRUCT = 100
#: below this many KB of vectors matching a filter (per segment), a search
#: scans them instead of walking the graph (Qdrant's default)
FULL_SCAN_THRESHOLD_KB = 10_000
#: the payload fields whose index gets Qdrant's filter-aware graph links
#: (payload_m): the class filter's field only. The other indexed fields serve
#: the query planner without links (class_name repeats label's partition;
#: split is one block, the whole gallery), and fmsearch's planner scans a
#: narrow filter by them (fmsearch.store.planner). A second linked field can
#: cost label its links: Qdrant always builds the links of the first field it
#: meets, and those of the next ones only where its graph's connectivity test
#: asks for them, in an order that varies from build to build (at a million
#: siamese points, label and group linked: other-class recall@10 0.597 at ef
#: 128; docs/scale.md, ``--linked-fields``).
LINKED_FIELDS: tuple[str, ...] = (LABEL,)
#: collection metadata: the index settings it was built with (what the search planner reads)
META_INDEX = "index"
#: int8 quantisation maps this central share of the values to the 256 levels
INT8_QUANTILE = 0.99
DISTANCES = ("cosine", "dot", "euclid")
DATATYPES = ("float32", "uint8")
#: Qdrant quantisation of a collection's vectors (the float32 originals are
#: kept for rescoring); a quantised collection is ``<prefix><method>_<q>``.
QUANTIZATIONS = ("none", "int8", "binary")


def collection_name(method: str, prefix: str = DEFAULT_PREFIX, quantization: str = "none") -> str:
    """The collection that holds one method's vectors (quantised: a variant
    beside the plain one, ``fmnist_pixels_int8``)."""
    check_quantization(quantization)
    return f"{prefix}{method}" if quantization == "none" else f"{prefix}{method}_{quantization}"


#: The quantisations offered per method. The others lose too much of the
#: neighbour order to be worth their bytes; measured by
#: `fmsearch bench quantization` (docs/search-modes.md).
QUANTIZATION_OFFERS: dict[str, tuple[str, ...]] = {
    "pixels": ("int8",),
    "autoencoder": ("int8", "binary"),
    "siamese": (),
    "proxy": (),
    "distilled": (),
    "ensemble": (),
    "resnet101": (),
}
NOT_OFFERED_WHY: dict[tuple[str, str], str] = {
    ("pixels", "binary"): "pixel values are never negative, so one sign bit per dimension keeps only the silhouette",
    (
        "resnet101",
        "binary",
    ): "its pooled ReLU features are never negative, so one sign bit per dimension keeps almost nothing",
    (
        "resnet101",
        "int8",
    ): "its recall against exact search has not been measured (no ImageNet weights where the offers "
    "were measured); measure it with `fmsearch bench quantization --methods resnet101`",
    ("siamese", "int8"): "its 64-d vectors lie so close within a class that int8 loses their order "
    "(recall@10 against exact reaches only 0.90, with rescore and oversampling 16)",
    ("siamese", "binary"): "64 bits per image cannot order its neighbours (recall@10 against exact under 0.4)",
    ("proxy", "int8"): "with rescore it keeps recall@10 against exact at 0.986 at the default oversampling of 4 "
    "(0.997 at 8), under the 0.99 an offer needs at its default",
    (
        "proxy",
        "binary",
    ): "64 bits per image cannot order its neighbours (recall@10 against exact 0.50 at oversampling 16)",
    ("distilled", "int8"): "with rescore it keeps recall@10 against exact at 0.981 at the default oversampling of 4 "
    "(0.990 at 8), under the 0.99 an offer needs at its default",
    ("distilled", "binary"): "192 bits per image cannot order its neighbours (recall@10 against exact 0.62 at "
    "oversampling 16)",
    ("ensemble", "int8"): "with rescore it keeps recall@10 against exact at 0.982 at the default oversampling of 4 "
    "(0.993 at 8), under the 0.99 an offer needs at its default",
    ("ensemble", "binary"): "192 bits per image cannot order its neighbours (recall@10 against exact 0.68 at "
    "oversampling 16)",
}
# Folder galleries: a user's own images (`fmsearch ingest --images DIR --collection NAME`).
#: payload of a folder image: its path relative to the folder (POSIX separators), the SHA-256 of its
#: file, its class (the first-level subfolder, when the folder follows the image-folder convention:
#: ``label`` is that class's index in the collection's ``classes`` metadata) and the 28x28 image
PATH = "path"
SHA256 = "sha256"
FOLDER_PAYLOAD_INDEXES: dict[str, str] = {LABEL: "integer", CLASS_NAME: "keyword", PATH: "keyword"}
#: collection metadata of a folder gallery: its name, its classes (index = label), the folder it was
#: ingested from (what `fmsearch add` takes paths relative to)
META_GALLERY = "gallery"
META_CLASSES = "classes"
META_ROOT = "root"
#: a gallery name: lower-case letters, digits and dashes (no underscore: ``<gallery>_<method>`` splits one
#: way), at most 40 characters
GALLERY_NAME = re.compile(r"[a-z0-9][a-z0-9-]{0,39}")
#: point ids of folder images fit 53 bits: exact as JSON numbers in every client, JavaScript's included
FOLDER_ID_BITS = 53
MAX_FOLDER_ID = 2**FOLDER_ID_BITS - 1


def check_gallery(name: str) -> str:
    """A gallery name, checked."""
    if not isinstance(name, str) or not GALLERY_NAME.fullmatch(name):
        raise InvalidArgumentError(
            f"collection name {name!r} must be 1-40 lower-case letters, digits or dashes, "
            "starting with a letter or digit",
            param="collection",
        )
    return name


def gallery_collection(gallery: str, method: str) -> str:
    """The collection that holds one method's vectors of a folder gallery:
    ``<gallery>_<method>``, beside FMNIST's ``<prefix><method>``."""
    return f"{check_gallery(gallery)}_{method}"


def legacy_gallery_collection(gallery: str, method: str, prefix: str = DEFAULT_PREFIX) -> str:
    """Where a folder gallery's collection was named before it had a name of
    its own, under FMNIST's prefix (``fmnist_<gallery>_<method>``); such a
    collection keeps serving its gallery."""
    return f"{prefix}{check_gallery(gallery)}_{method}"


def folder_point_id(rel_path: str) -> int:
    """Deterministic point id of a folder image: the first 53 bits of the
    SHA-256 of its relative path (re-ingesting a path replaces its point)."""
    digest = hashlib.sha256(rel_path.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") >> (64 - FOLDER_ID_BITS)


def make_folder_payload(
    rel_path: str, sha256: str, image_png: str, class_name: str | None, classes: list[str]
) -> dict[str, Any]:
    """The payload of one folder image (``label`` and ``class_name`` only
    when it has a class)."""
    payload: dict[str, Any] = {PATH: rel_path, SHA256: sha256, IMAGE: image_png}
    if class_name is not None:
        payload[LABEL] = classes.index(class_name)
        payload[CLASS_NAME] = class_name
    return payload


#: Oversampling of a rescored quantised search when none is given: int8
#: keeps recall@10 >= 0.99 on every collection it is offered for; binary is
#: the most its 1-bit codes need on the autoencoder (docs/search-modes.md).
DEFAULT_OVERSAMPLING: dict[str, float] = {"int8": 4.0, "binary": 16.0}


def check_offered(method: str, quantization: str) -> str:
    """Refuse a quantisation that is not offered for ``method``, saying why."""
    check_quantization(quantization)
    if quantization == "none" or quantization in QUANTIZATION_OFFERS.get(method, (quantization,)):
        return quantization
    why = NOT_OFFERED_WHY.get((method, quantization), "it was not measured to keep the neighbour order")
    offered = ", ".join(QUANTIZATION_OFFERS.get(method, ())) or "none"
    raise InvalidArgumentError(
        f"{quantization} quantisation is not offered for {method}: {why} (offered: {offered})", param="quantization"
    )


def check_quantization(quantization: str) -> str:
    if quantization not in QUANTIZATIONS:
        raise InvalidArgumentError(
            f"unknown quantization {quantization!r}; valid: {', '.join(QUANTIZATIONS)}", param="quantization"
        )
    return quantization


def vector_bytes(dim: int, quantization: str = "none") -> dict[str, Any]:
    """Bytes per vector: the float32 original, and what a search of the
    collection reads (int8: a byte a dimension; binary: a bit)."""
    searched = {"none": 4 * dim, "int8": dim, "binary": -(-dim // 8)}[check_quantization(quantization)]
    return {"float32": 4 * dim, "searched": searched, "quantization": quantization}


def point_id(split: str, index: int) -> int:
    """Deterministic point id of an FMNIST item (re-ingesting never duplicates)."""
    if split not in SPLIT_SIZES or not 0 <= index < SPLIT_SIZES[split]:
        raise InvalidArgumentError(f"no item {index} in split {split!r}")
    return index if split == "train" else TEST_ID_OFFSET + index


def point_ids(split: str, indices: np.ndarray) -> np.ndarray:
    """Vectorised :func:`point_id`."""
    return indices.astype(np.int64) + (0 if split == "train" else TEST_ID_OFFSET)


def split_index(pid: int) -> tuple[str, int]:
    """Inverse of :func:`point_id`.

    Raises:
        InvalidArgumentError: the id is outside 0..69999.
    """
    if not 0 <= pid <= MAX_POINT_ID:
        raise InvalidArgumentError(
            f"point id {pid} is out of range; valid ids: 0-{TEST_ID_OFFSET - 1} (train), "
            f"{TEST_ID_OFFSET}-{MAX_POINT_ID} (test)"
        )
    return ("train", pid) if pid < TEST_ID_OFFSET else ("test", pid - TEST_ID_OFFSET)


def make_payload(split: str, index: int, label: int, image_png: str) -> dict[str, Any]:
    """The payload of one point."""
    return {
        LABEL: int(label),
        CLASS_NAME: CLASS_NAMES[int(label)],
        SPLIT: split,
        INDEX: int(index),
        IMAGE: image_png,
    }


@dataclass(frozen=True)
class CollectionSpec:
    """What a collection is created with."""

    name: str
    dim: int
    distance: str = "cosine"
    metadata: dict[str, Any] = field(default_factory=dict)
    #: each point holds a set of vectors, compared by MaxSim
    multivector: bool = False
    datatype: str = "float32"
    #: build an HNSW graph (off for collections only scored by id)
    hnsw: bool = True
    quantization: str = "none"
    #: distribution on a Qdrant cluster (a server option; the embedded store is one shard)
    shards: int = 1
    replicas: int = 1
    write_consistency: int = 1
    #: payload field -> index kind ("integer" or "keyword")
    payload_indexes: dict[str, str] = field(default_factory=lambda: dict(PAYLOAD_INDEXES))
    #: indexed fields that get filter-aware graph links (see LINKED_FIELDS)
    linked_fields: tuple[str, ...] = LINKED_FIELDS
    #: the graph: links per point, build breadth, the planner's full-scan threshold
    hnsw_m: int = HNSW_M
    ef_construct: int = HNSW_EF_CONSTRUCT
    full_scan_threshold_kb: int = FULL_SCAN_THRESHOLD_KB
    #: a segment holding fewer KB of vectors is searched without a graph (None: Qdrant's default, 10,000)
    indexing_threshold_kb: int | None = None
    #: keep the original vectors on disk (memory-mapped) rather than in RAM
    on_disk: bool = False

    def __post_init__(self) -> None:
        for key in ("shards", "replicas", "write_consistency"):
            if getattr(self, key) < 1:
                raise InvalidArgumentError(
                    f"{key.replace('_', ' ')} must be at least 1, got {getattr(self, key)}", param=key
                )
        for key, low in (
            ("hnsw_m", 2),
            ("ef_construct", 4),
            ("full_scan_threshold_kb", 1),
            ("indexing_threshold_kb", 1),
        ):
            if getattr(self, key) is not None and getattr(self, key) < low:
                raise InvalidArgumentError(
                    f"{key.replace('_', ' ')} must be at least {low}, got {getattr(self, key)}", param=key
                )
        if set(self.linked_fields) - set(self.payload_indexes):
            raise InvalidArgumentError(
                f"linked fields {sorted(set(self.linked_fields) - set(self.payload_indexes))} have no payload index",
                param="linked_fields",
            )
        if self.write_consistency > self.replicas:
            raise InvalidArgumentError(
                f"write consistency ({self.write_consistency}) cannot exceed replicas ({self.replicas})",
                param=("write_consistency", "replicas"),
            )
        if self.dim < 1:
            raise InvalidArgumentError(f"vector size must be at least 1, got {self.dim}")
        if self.distance not in DISTANCES:
            raise InvalidArgumentError(f"unknown distance {self.distance!r}; valid: {', '.join(DISTANCES)}")
        check_quantization(self.quantization)
        if self.datatype not in DATATYPES:
            raise InvalidArgumentError(f"unknown datatype {self.datatype!r}; valid: {', '.join(DATATYPES)}")

    def index_record(self) -> dict[str, Any]:
        """The index settings a collection records in its metadata
        (:data:`META_INDEX`), for the search planner and for the reader."""
        return {
            "hnsw_m": self.hnsw_m if self.hnsw else 0,
            "ef_construct": self.ef_construct,
            "full_scan_threshold_kb": self.full_scan_threshold_kb,
            "linked_fields": list(self.linked_fields),
        }


def recorded_linked_fields(metadata: dict[str, Any]) -> tuple[str, ...]:
    """The linked fields a collection's metadata records; a collection
    built before they were recorded had :data:`LINKED_FIELDS` at most."""
    record = metadata.get(META_INDEX)
    fields = record.get("linked_fields") if isinstance(record, dict) else None
    return tuple(str(f) for f in fields) if isinstance(fields, list) else LINKED_FIELDS


def spec_for(
    model: dict[str, Any],
    prefix: str = DEFAULT_PREFIX,
    planned: int = 0,
    quantization: str = "none",
    *,
    offered_only: bool = True,
    on_disk: bool = False,
) -> CollectionSpec:
    """The spec of the collection for a model's :meth:`Embedder.describe`
    (``offered_only=False``: any quantisation, for the benchmark that
    measures why some are not offered; ``on_disk``: the float32 vectors
    memory-mapped from disk)."""
    if quantization != "none" and model.get("multivector"):
        raise InvalidArgumentError(f"quantization does not apply to {model[META_METHOD]}", param="quantization")
    if offered_only:
        check_offered(model["method"], quantization)
    metadata = {
        META_SCHEMA: SCHEMA_VERSION,
        **model,
        META_QUANTIZATION: quantization,
        META_ON_DISK: bool(on_disk),
        META_COMPLETE: False,
        META_PLANNED: int(planned),
        META_CREATED: datetime.now(UTC).isoformat(timespec="seconds"),
    }
    return CollectionSpec(
        name=collection_name(model[META_METHOD], prefix, quantization),
        dim=int(model[META_DIM]),
        distance=model["distance"],
        metadata=metadata,
        multivector=bool(model.get("multivector", False)),
        datatype=str(model.get("datatype", "float32")),
        hnsw=not model.get("multivector", False),
        quantization=quantization,
        on_disk=bool(on_disk),
    )


def check_compatible(collection: str, metadata: dict[str, Any], model: dict[str, Any]) -> None:
    """Refuse to mix vectors of different models in one collection or query.

    Raises:
        CollectionMismatchError: method, dimension or fingerprint differ; the
            message says to rebuild the collection with the model.
    """
    for key in MODEL_KEYS:
        if metadata.get(key) != model.get(key):
            raise CollectionMismatchError(
                f"collection {collection} was built with {key}={metadata.get(key)!r} but the current model has "
                f"{key}={model.get(key)!r}; ingest {model.get(META_METHOD)} again with recreate to rebuild it",
                param="recreate",
            )


def folder_spec_for(
    model: dict[str, Any], gallery: str, root: str, classes: list[str], name: str, planned: int = 0
) -> CollectionSpec:
    """The spec of a folder gallery's collection ``name`` for a model's
    :meth:`Embedder.describe`."""
    spec = spec_for(model, planned=planned)
    metadata = {**spec.metadata, META_GALLERY: check_gallery(gallery), META_ROOT: root, META_CLASSES: list(classes)}
    return CollectionSpec(
        name=name,
        dim=spec.dim,
        distance=spec.distance,
        metadata=metadata,
        multivector=spec.multivector,
        datatype=spec.datatype,
        hnsw=spec.hnsw,
        payload_indexes=dict(FOLDER_PAYLOAD_INDEXES),
    )
