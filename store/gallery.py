"""Which gallery a call is about: FMNIST, or a user's folder of images.

Both are one small interface, :class:`Gallery`: the collection of each
method, the range of point ids, the classes, the image of an id, and what
the gallery offers (quantised collections, the SIFT rerank, train and test
splits). Which one a call is about is decided once, where the user names it
(:func:`open_gallery`, from ``--collection``, a request's ``collection`` or
the Python API's ``gallery=``), and the value is passed on: the Searcher,
evaluation, gallery insight and the service ask it instead of branching on
which gallery they hold (docs/development.md counts the branches left).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fmsearch.errors import CollectionNotFoundError, InvalidArgumentError, UnknownClassError
from fmsearch.images.fmnist import CLASS_NAMES, SPLIT_SIZES, class_index, load_split
from fmsearch.store import schema
from fmsearch.store.base import Store


class Gallery(ABC):
    """A gallery: a set of images, one collection per method."""

    #: "fmnist", or the folder gallery's name
    name: str
    #: FMNIST's collection prefix in this store
    prefix: str
    #: quantised variant collections (``fmsearch ingest --quantization``)
    offers_quantization: bool
    #: the SIFT rerank stage (it reads FMNIST's descriptor collection)
    offers_rerank: bool
    #: train and test splits: evaluation queries the test split, duplicates scan a split; a gallery without
    #: them is evaluated with some of its own images held out
    has_splits: bool
    #: the payload fields its collections index
    payload_indexes: dict[str, str]

    @property
    @abstractmethod
    def words(self) -> dict[str, str]:
        """How a report names its gallery images and its queries."""

    @abstractmethod
    def collection(self, method: str, quantization: str = "none") -> str:
        """The collection that holds ``method``'s vectors (a quantised
        variant when asked and offered).

        Raises:
            InvalidArgumentError: the quantisation is not offered.
        """

    @abstractmethod
    def not_found(self, method: str, err: CollectionNotFoundError) -> CollectionNotFoundError:
        """The error to raise when ``method``'s collection is missing (the
        store's ``err``, or one that says how to ingest it)."""

    @abstractmethod
    def check_id(self, pid: int) -> int:
        """Refuse a point id that no image of this gallery can have."""

    @abstractmethod
    def classes(self, metadata: dict[str, Any]) -> list[str]:
        """The class names (index = label), from a collection's metadata."""

    @abstractmethod
    def label(self, name: str, classes: list[str]) -> int:
        """The label of class ``name`` among ``classes``.

        Raises:
            UnknownClassError: naming the valid classes.
        """

    @abstractmethod
    def image_of(self, pid: int) -> np.ndarray | None:
        """The (28, 28) image of an id its collections do not hold (an
        FMNIST test image, from the data files), or None."""

    @abstractmethod
    def describe(self, pid: int) -> dict[str, Any] | None:
        """The payload fields of an id its collections do not hold (an FMNIST
        test image's split, index, label and class, from the data files), or None."""

    @abstractmethod
    def scope(self, split: str) -> str:
        """What a scan of ``split`` covers, in words ("split train", "gallery shop")."""

    @abstractmethod
    def check_queries(self, n: int | None) -> None:
        """Refuse a number of evaluation queries the gallery cannot give
        (None: every test image)."""


@dataclass(frozen=True)
class FmnistGallery(Gallery):
    """Fashion-MNIST: collections ``<prefix><method>``, ids 0-69999 (test
    ids from 60000), its ten classes; the data files give any id's image."""

    prefix: str = schema.DEFAULT_PREFIX
    data_dir: str | os.PathLike | None = None
    name: str = field(default="fmnist", init=False)
    offers_quantization: bool = field(default=True, init=False)
    offers_rerank: bool = field(default=True, init=False)
    has_splits: bool = field(default=True, init=False)
    payload_indexes: dict[str, str] = field(default_factory=lambda: dict(schema.PAYLOAD_INDEXES), init=False)

    def collection(self, method: str, quantization: str = "none") -> str:
        schema.check_offered(method, quantization)
        return schema.collection_name(method, self.prefix, quantization)

    def not_found(self, method: str, err: CollectionNotFoundError) -> CollectionNotFoundError:
        return err

    def check_id(self, pid: int) -> int:
        schema.split_index(pid)
        return pid

    def classes(self, metadata: dict[str, Any]) -> list[str]:
        return list(CLASS_NAMES)

    def label(self, name: str, classes: list[str]) -> int:
        return class_index(name)

    def image_of(self, pid: int) -> np.ndarray | None:
        split, index = schema.split_index(pid)
        return load_split(split, self.data_dir).images[index]

    def describe(self, pid: int) -> dict[str, Any] | None:
        split, index = schema.split_index(pid)
        label = int(load_split(split, self.data_dir).labels[index])
        return {schema.SPLIT: split, schema.INDEX: index, schema.LABEL: label, schema.CLASS_NAME: CLASS_NAMES[label]}

    def scope(self, split: str) -> str:
        return f"split {split}"

    @property
    def words(self) -> dict[str, str]:
        return {"gallery": "train images", "queries": "test images"}

    def check_queries(self, n: int | None) -> None:
        n_test = SPLIT_SIZES["test"]
        if n is not None and not 1 <= n <= n_test:
            raise InvalidArgumentError(
                f"queries must be between 1 and {n_test} (the test split), or all of them; got {n}", param="queries"
            )


@dataclass(frozen=True)
class FolderGallery(Gallery):
    """A user's folder (``fmsearch ingest --images DIR --collection NAME``):
    collections ``<name>_<method>``, ids from the images' paths, its own
    classes (its first-level subfolders) recorded in each collection.

    A gallery ingested before folder galleries had names of their own is in
    ``<prefix><name>_<method>``: ``legacy`` holds those collections' names,
    which keep serving it (:func:`open_gallery` finds them)."""

    name: str
    prefix: str = schema.DEFAULT_PREFIX
    legacy: frozenset[str] = frozenset()
    offers_quantization: bool = field(default=False, init=False)
    offers_rerank: bool = field(default=False, init=False)
    has_splits: bool = field(default=False, init=False)
    payload_indexes: dict[str, str] = field(default_factory=lambda: dict(schema.FOLDER_PAYLOAD_INDEXES), init=False)

    def __post_init__(self) -> None:
        schema.check_gallery(self.name)

    def collection(self, method: str, quantization: str = "none") -> str:
        if quantization != "none":
            raise InvalidArgumentError(
                "a folder gallery is not quantised: search it without quantization", param="quantization"
            )
        old = schema.legacy_gallery_collection(self.name, method, self.prefix)
        return old if old in self.legacy else schema.gallery_collection(self.name, method)

    def not_found(self, method: str, err: CollectionNotFoundError) -> CollectionNotFoundError:
        name = self.collection(method)
        return CollectionNotFoundError(
            f"gallery {self.name} has no {method} collection ({name}); ingest it with "
            f"`fmsearch ingest --images DIR --collection {self.name} --method {method}`",
            collection=name,
        )

    def check_id(self, pid: int) -> int:
        if not 0 <= pid <= schema.MAX_FOLDER_ID:
            raise InvalidArgumentError(f"id {pid} is not a folder image's point id (0-{schema.MAX_FOLDER_ID})")
        return pid

    def classes(self, metadata: dict[str, Any]) -> list[str]:
        return list(metadata.get(schema.META_CLASSES, []))

    def label(self, name: str, classes: list[str]) -> int:
        if name not in classes:
            raise UnknownClassError(
                f"unknown class {name!r} in gallery {self.name}; its classes: "
                f"{', '.join(classes) or 'none (its folder has no class subfolders)'}"
            )
        return classes.index(name)

    def image_of(self, pid: int) -> np.ndarray | None:
        return None

    def describe(self, pid: int) -> dict[str, Any] | None:
        return None

    def scope(self, split: str) -> str:
        return f"gallery {self.name}"

    @property
    def words(self) -> dict[str, str]:
        return {
            "gallery": f"images of folder gallery {self.name} with a class (the queries held out)",
            "queries": "images of the gallery, held out",
        }

    def check_queries(self, n: int | None) -> None:
        if n is None:
            raise InvalidArgumentError(
                "queries: a folder gallery is evaluated with some of its images held out as "
                "queries: give their number, e.g. 200",
                param="queries",
            )
        if n < 1:
            raise InvalidArgumentError(f"queries must be at least 1, got {n}", param="queries")


def open_gallery(
    store: Store | None,
    name: str | None = None,
    *,
    prefix: str = schema.DEFAULT_PREFIX,
    data_dir: str | os.PathLike | None = None,
) -> Gallery:
    """The gallery a user names: FMNIST when ``name`` is None, else the
    folder gallery ``name`` (its collections of the old naming found in
    ``store``, when given).

    Raises:
        InvalidArgumentError: a bad name, or the name FMNIST's collections take.
    """
    if name is None:
        return FmnistGallery(prefix, data_dir)
    schema.check_gallery(name)
    if f"{name}_" == prefix:
        raise InvalidArgumentError(
            f"collection name {name!r} is FMNIST's (its collections are {prefix}<method>): "
            "name the folder gallery otherwise",
            param="collection",
        )
    old = schema.legacy_gallery_collection(name, "", prefix)
    legacy: frozenset[str] = frozenset()
    if store is not None:  # the gallery's own: FMNIST's collections can start alike (pixels: fmnist_pixels_int8)
        candidates = [n for n in store.collections() if n.startswith(old)]
        legacy = frozenset(n for n in candidates if store.info(n).metadata.get(schema.META_GALLERY) == name)
    return FolderGallery(name, prefix, legacy)


def gallery_collections(store: Store, gallery: Gallery) -> list[str]:
    """The collections of a folder gallery (one per method ingested).

    Raises:
        InvalidArgumentError: there is none, or ``gallery`` is FMNIST.
    """
    if not isinstance(gallery, FolderGallery):
        raise InvalidArgumentError("name a folder gallery: its collections, not FMNIST's", param="collection")
    names = [
        n
        for n in store.collections()
        if (n.startswith(f"{gallery.name}_") or n in gallery.legacy)
        and store.info(n).metadata.get(schema.META_GALLERY) == gallery.name
    ]
    if not names:
        raise InvalidArgumentError(
            f"no collection {gallery.name!r} in {store.location}; "
            f"ingest it with `fmsearch ingest --images DIR --collection {gallery.name}`"
        )
    return sorted(names)
