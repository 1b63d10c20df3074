"""The one tree of domain errors.

Every error a user can cause (bad input, missing data, unreachable server)
is an ``FmsearchError``; the CLI turns it into a one-line message and a
non-zero exit. Anything else is a bug and keeps its traceback.

Messages speak the library's words ("batch size must be at least 1"), never
a face's: an error about arguments names them in ``params`` (their Python
names, ``batch_size``), so that the CLI can say ``--batch-size`` instead.
"""

from __future__ import annotations


class FmsearchError(Exception):
    """Base class of every error fmsearch reports to a user.

    Args:
        message: what is wrong, in one line of domain words.
        param: the argument at fault (or several), by its Python name, whose
            words (underscores as spaces) the message uses for it.
    """

    def __init__(self, message: str = "", *, param: str | tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.params: tuple[str, ...] = (param,) if isinstance(param, str) else tuple(param or ())


class DatasetError(FmsearchError):
    """An FMNIST file is missing, truncated, corrupt or fails its checksum."""


class ImageError(FmsearchError):
    """A query image cannot be read or is not a usable picture."""


class UnknownMethodError(FmsearchError):
    """A method name that the registry does not know."""


class UnknownClassError(FmsearchError):
    """A class name that is not one of the ten FMNIST classes."""


class InvalidArgumentError(FmsearchError):
    """A value outside its valid range (k, ids, batch sizes, ...)."""


class StoreError(FmsearchError):
    """The vector store failed: unreachable server, broken shard, ..."""


class CollectionNotFoundError(StoreError):
    """A collection that does not exist (usually: not ingested yet);
    ``collection`` names it, so that a face can word it without the store's
    location."""

    def __init__(self, message: str = "", *, collection: str | None = None) -> None:
        super().__init__(message)
        self.collection = collection


class CollectionMismatchError(StoreError):
    """A collection built by another model or method than the one asked for."""


class ModelError(FmsearchError):
    """A model artifact is missing, corrupt, altered, or its weights unavailable."""


class StoreLockedError(StoreError):
    """Another process holds a collection of the embedded store."""


class ResultNotFoundError(FmsearchError):
    """An analysis result (a map, a duplicates run) that has not been made."""
