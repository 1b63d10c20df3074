"""A query: what to search for and which hits to return, validated once.

The CLI (``fmsearch query``), the Python API (:meth:`Searcher.search`), the
service (``POST /api/search``) and evaluation all build a :class:`Query` and
hand it, with a :class:`~fmsearch.search.mode.SearchMode`, to the Searcher.
The rules that tie the two together (which mode a recommend query can take)
and the paging (``offset``, ``min_score``) are written here, once, so that no
face honours a field another one drops.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar, cast

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.search.mode import SearchMode

#: the most results a query can ask for (k + offset)
MAX_K = 1000

#: an image not decoded yet (an uploaded file's bytes, read when searched, off the event loop)
ImageSource = Callable[[], np.ndarray]
#: a recommend example: a gallery id (its stored vector) or a (28, 28) image (embedded)
Example = int | np.ndarray


class Ranked(Protocol):
    """A ranked hit (a dataclass with a score and a rank, as :class:`~fmsearch.search.searcher.Hit`)."""

    @property
    def score(self) -> float: ...

    @property
    def rank(self) -> int: ...


H = TypeVar("H", bound=Ranked)


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _sequence(value: Any, name: str) -> tuple:
    """A field of several values as a tuple; a string or a lone value is refused, not split."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes, np.ndarray)) or not isinstance(value, (list, tuple)):
        raise InvalidArgumentError(f"{name.replace('_', ' ')} must be a list, got {value!r:.40}", param=name)
    return tuple(value)


def check_k(k: int) -> int:
    """Validate a result count."""
    if not 1 <= k <= MAX_K:
        raise InvalidArgumentError(f"k must be between 1 and {MAX_K}, got {k}", param="k")
    return k


@dataclass(frozen=True)
class Query:
    """One search's question, as every face asks it.

    Exactly one source: an ``image`` (a (28, 28) uint8 array, or an
    :data:`ImageSource` that decodes one when the query is searched), a
    gallery ``id`` (its stored vector; the point itself is excluded), or
    ``positive`` examples (with optional ``negative`` ones: a recommend
    query; example ids are excluded).

    Attributes:
        k: results returned (1-1000).
        offset: results skipped first: page 2 of ten is ``k=10, offset=10``,
            ranks 11-20 of the same search (``k + offset`` at most 1000).
        min_score: hits scoring below it are left out (before paging).
        classes: only these classes (names, validated by the gallery).
        exclude_classes: never these classes.
        exact: exact search instead of the HNSW graph, in every stage.
        split: only gallery points of this split ("train"), for evaluation.
    """

    image: np.ndarray | ImageSource | None = None
    id: int | None = None
    positive: tuple[Example, ...] = ()
    negative: tuple[Example, ...] = ()
    k: int = 10
    offset: int = 0
    min_score: float | None = None
    classes: tuple[str, ...] = ()
    exclude_classes: tuple[str, ...] = ()
    exact: bool = False
    split: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, where the value is made
        for name in ("positive", "negative", "classes", "exclude_classes"):
            set_(self, name, _sequence(getattr(self, name), name))
        for name in ("classes", "exclude_classes"):
            if not all(isinstance(c, str) for c in getattr(self, name)):
                raise InvalidArgumentError(f"{name.replace('_', ' ')} must be class names", param=name)
        for name in ("positive", "negative"):
            if not all(_is_int(e) or isinstance(e, np.ndarray) for e in getattr(self, name)):
                raise InvalidArgumentError(f"{name} examples must be gallery ids or images", param=name)
        for name in ("k", "offset"):
            if not _is_int(getattr(self, name)):
                raise InvalidArgumentError(f"{name} must be an integer, got {getattr(self, name)!r}", param=name)
        if self.split not in (None, "train", "test"):
            raise InvalidArgumentError(f"split must be train or test, got {self.split!r}", param="split")
        sources = (self.image is not None) + (self.id is not None) + bool(self.positive or self.negative)
        if sources != 1:
            raise InvalidArgumentError(
                "give exactly one of: an image, id, or positive examples (a recommend query)", param=("id", "positive")
            )
        if self.negative and not self.positive:
            raise InvalidArgumentError("give at least one positive example", param="positive")
        if self.id is not None:
            if not _is_int(self.id):
                raise InvalidArgumentError(f"an id must be an integer point id, got {self.id!r}", param="id")
            set_(self, "id", int(self.id))
        check_k(self.k)
        if not 0 <= self.offset <= MAX_K - self.k:
            raise InvalidArgumentError(
                f"offset must be between 0 and {MAX_K - self.k} for k={self.k}, got {self.offset}", param="offset"
            )
        if self.min_score is not None and (
            isinstance(self.min_score, bool)
            or not isinstance(self.min_score, (int, float, np.number))
            or not math.isfinite(self.min_score)
        ):
            raise InvalidArgumentError(f"min score must be a finite number, got {self.min_score}", param="min_score")

    @classmethod
    def of(cls, query: Query | None, fields: dict[str, Any]) -> Query:
        """The query given, or one made of keyword ``fields``; not both."""
        if query is None:
            return cls(**fields)
        if fields:
            raise InvalidArgumentError(f"give a Query or its fields, not both (got {', '.join(sorted(fields))})")
        return query

    @property
    def recommend(self) -> bool:
        """Whether this is a recommend query (positive/negative examples)."""
        return bool(self.positive)

    @property
    def source(self) -> str:
        """What the query searches by: "image", "id" or "examples"."""
        return "examples" if self.recommend else "id" if self.id is not None else "image"

    @property
    def limit(self) -> int:
        """How many ranked hits a search must find before paging."""
        return self.k + self.offset

    @property
    def example_ids(self) -> tuple[int, ...]:
        """The gallery ids the results leave out: the query's own id, or the
        ids among its examples."""
        if self.id is not None:
            return (self.id,)
        return tuple(int(e) for e in (*self.positive, *self.negative) if isinstance(e, (int, np.integer)))

    def check(self, mode: SearchMode) -> None:
        """Refuse, in one line, what ``mode`` cannot do for this query: a
        recommend query is one Qdrant request on one method's collection
        (plain or quantised), so it takes no fusion, cross-method rescoring,
        rerank or expansion; a rerank must see at least the results asked."""
        if self.recommend:
            if mode.fused:
                raise InvalidArgumentError(
                    "a recommend query (positive/negative examples) searches one method: "
                    "no fusion of methods joined by +"
                )
            for param, used in (
                ("rescore_with", mode.rescore_with is not None),
                ("rerank", mode.rerank is not None),
                ("expand", mode.expand > 0),
            ):
                if used:
                    raise InvalidArgumentError(
                        f"{param.replace('_', ' ')} does not apply to a recommend query (positive/negative examples)",
                        param=param,
                    )
        if mode.rerank is not None:
            mode.rerank.check_holds(self.limit)
        if mode.second_stage and mode.shortlist < self.limit:
            raise InvalidArgumentError(
                f"shortlist must be between k + offset ({self.limit}) and {MAX_K}, got {mode.shortlist}",
                param="shortlist",
            )

    def decoded(self, timings: dict[str, float] | None = None) -> Query:
        """The query with its image decoded (an :data:`ImageSource` is read
        now; ``timings["decode"]`` gets the seconds)."""
        if not callable(self.image):
            return self
        t0 = time.perf_counter()
        image = self.image()
        if timings is not None:
            timings["decode"] = timings.get("decode", 0.0) + time.perf_counter() - t0
        return replace(self, image=image)

    @property
    def decoded_image(self) -> np.ndarray | None:
        """The image of a :meth:`decoded` query (None: it asks by an id or by examples).

        Raises:
            TypeError: the image is not decoded yet (a caller skipped :meth:`decoded`).
        """
        if callable(self.image):
            raise TypeError("the query's image is not decoded yet: search query.decoded()")
        return self.image

    def page(self, hits: Sequence[H]) -> list[H]:
        """The hits this query returns from a search's first :attr:`limit`:
        those scoring at least ``min_score``, then ``offset`` skipped and
        ``k`` kept, ranked from ``offset + 1``."""
        kept = [h for h in hits if self.min_score is None or h.score >= self.min_score]
        window = enumerate(kept[self.offset : self.limit], start=self.offset + 1)
        return [cast(H, replace(cast(Any, h), rank=r)) for r, h in window]  # a dataclass, as Ranked says
