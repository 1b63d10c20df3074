"""A search mode: how a query is answered, named once.

A mode is one method's collection, plain or quantised, or several methods'
lists fused, each optionally searched again with its query expanded by its
first hits, rescored by another method's vectors and reranked by SIFT. The
same value drives a query (:meth:`Searcher.search`), an
evaluation (its settings in ``metrics.json``), a benchmark row, and the
labels and output names in reports.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from typing import Any

import numpy as np

from fmsearch.errors import InvalidArgumentError
from fmsearch.models.registry import check_method
from fmsearch.search.fusion import DEFAULT_FUSION, FUSIONS
from fmsearch.search.rerank import (
    DEFAULT_RATIO,
    DEFAULT_RERANK_MODE,
    DEFAULT_SHORTLIST,
    DEFAULT_WEIGHT,
    MAX_SHORTLIST,
    RerankConfig,
)
from fmsearch.store import QuantizationParams, schema

#: the most hits a query can be expanded by
MAX_EXPAND = 100
#: a mode as every face spells it, flat (``fmsearch query``'s options, ``POST /api/search``'s fields), with the
#: defaults of each: :meth:`SearchMode.from_options` is the one place they become a mode
OPTIONS: dict[str, Any] = {
    "quantization": "none",
    "rescore": True,
    "oversampling": None,
    "fusion": DEFAULT_FUSION,
    "fusion_weights": None,
    "rescore_with": None,
    "shortlist": DEFAULT_SHORTLIST,
    "rerank": None,
    "rerank_mode": DEFAULT_RERANK_MODE,
    "rerank_weight": DEFAULT_WEIGHT,
    "ratio": DEFAULT_RATIO,
    "expand": 0,
}


def parse_methods(methods: str | Sequence[str]) -> tuple[str, ...]:
    """ "a+b" (or a sequence) -> validated, distinct method names."""
    names = tuple(m.strip() for m in (methods.split("+") if isinstance(methods, str) else methods))
    if not names or any(not n for n in names):
        raise InvalidArgumentError(f"no method in {methods!r}", param="method")
    for n in names:
        check_method(n)
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"a method appears twice in {'+'.join(names)}", param="method")
    return names


@dataclass(frozen=True)
class SearchMode:
    """How a query is answered.

    Attributes:
        methods: one method, or several whose top-``shortlist`` lists are
            fused; "a+b" (a string is a sequence of names too) is accepted
            and split; stored as a tuple of names.
        quantization: search the quantised variant collection ("int8",
            "binary") instead of the plain one.
        rescore: quantised search: re-score the candidates with the float32
            originals.
        oversampling: quantised search: candidates fetched per result before
            rescoring (default :data:`schema.DEFAULT_OVERSAMPLING`).
        fusion: how fused lists combine ("rrf", "dbsf").
        fusion_weights: one weight per fused method.
        rescore_with: another method orders the candidates by its own cosine.
        shortlist: candidates a second stage sees.
        rerank: SIFT reorders the candidates last.
        expand: average query expansion: each method's query plus the stored
            vectors of its ``expand`` nearest hits, normalised, is searched
            again (0: off).
    """

    methods: Sequence[str]
    quantization: str = "none"
    rescore: bool = True
    oversampling: float | None = None
    fusion: str = DEFAULT_FUSION
    fusion_weights: tuple[float, ...] | None = None
    rescore_with: str | None = None
    shortlist: int = DEFAULT_SHORTLIST
    rerank: RerankConfig | None = None
    expand: int = 0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, where the value is made
        set_(self, "methods", parse_methods(self.methods))
        schema.check_quantization(self.quantization)
        if self.quantization == "none" and (self.oversampling is not None or not self.rescore):
            raise InvalidArgumentError(
                "oversampling and rescore settings apply to a quantization (int8 or binary) only",
                param=("oversampling", "quantization"),
            )
        QuantizationParams(self.rescore, self.oversampling)  # validates the oversampling
        if self.fusion not in FUSIONS:
            raise InvalidArgumentError(f"unknown fusion {self.fusion!r}; valid: {', '.join(FUSIONS)}", param="fusion")
        if self.fusion_weights is not None:
            set_(self, "fusion_weights", tuple(float(w) for w in self.fusion_weights))
            if len(self.methods) > 1 and len(self.fusion_weights) != len(self.methods):
                raise InvalidArgumentError(
                    f"fusion weights: {len(self.fusion_weights)} given for {len(self.methods)} methods",
                    param="fusion_weights",
                )
            if any(not np.isfinite(w) or w < 0 for w in self.fusion_weights):
                raise InvalidArgumentError(
                    f"fusion weights must be finite and >= 0, got {list(self.fusion_weights)}", param="fusion_weights"
                )
        if not 1 <= self.shortlist <= MAX_SHORTLIST:
            raise InvalidArgumentError(
                f"shortlist must be between 1 and {MAX_SHORTLIST}, got {self.shortlist}", param="shortlist"
            )
        if not 0 <= self.expand <= MAX_EXPAND:
            raise InvalidArgumentError(
                f"expand must be between 0 (off) and {MAX_EXPAND}, got {self.expand}", param="expand"
            )
        if self.rescore_with is not None:
            self._check_rescore_with(self.rescore_with)
        if self.rerank is not None and self.rerank.shortlist > self.shortlist:
            raise InvalidArgumentError(
                f"the rerank's shortlist ({self.rerank.shortlist}) cannot exceed the mode's "
                f"shortlist ({self.shortlist}), which the first stage proposes"
            )

    def _check_rescore_with(self, other: str) -> None:
        if len(self.methods) > 1:
            raise InvalidArgumentError(
                "rescore with applies to a single method, not a fusion", param=("rescore_with", "method")
            )
        check_method(other)
        if other == self.methods[0]:
            raise InvalidArgumentError(
                f"rescore with {self.rescore_with} is the method itself; name another method",
                param=("rescore_with", "method"),
            )

    @classmethod
    def from_options(cls, method: str | tuple[str, ...], **options: Any) -> SearchMode:
        """The mode of the flat :data:`OPTIONS` (a rerank stage's name in
        ``rerank``, its settings beside it), as a face receives them; the same
        options give the same (cached) value.

        Raises:
            InvalidArgumentError: an unknown option, or a bad value.
        """
        unknown = sorted(set(options) - set(OPTIONS))
        if unknown:
            raise InvalidArgumentError(f"unknown search mode options: {', '.join(unknown)}")
        weights = options.get("fusion_weights")
        flat = {**OPTIONS, **options, "fusion_weights": None if weights is None else tuple(weights)}
        mode = _from_options(method if isinstance(method, str) else tuple(method), *(flat[k] for k in OPTIONS))
        _refuse_unused(mode, flat)
        return mode

    @classmethod
    def of(cls, mode: SearchMode | str | tuple[str, ...]) -> SearchMode:
        """A mode as given, or the plain search of the methods named."""
        return mode if isinstance(mode, SearchMode) else cls(mode)

    @property
    def method(self) -> str:
        """The methods as written on the command line: "autoencoder+siamese"."""
        return "+".join(self.methods)

    @property
    def fused(self) -> bool:
        return len(self.methods) > 1

    @property
    def combined(self) -> bool:
        """A fusion of methods or a cross-method rescoring."""
        return self.fused or self.rescore_with is not None

    @property
    def second_stage(self) -> bool:
        """Whether the first stage proposes a shortlist for a later stage."""
        return self.combined or self.rerank is not None

    @property
    def quantization_params(self) -> QuantizationParams | None:
        """What a search of the quantised collection sends: rescore and
        oversampling, the default oversampling when rescoring without one
        (``None`` for the plain collections)."""
        if self.quantization == "none":
            return None
        oversampling = self.oversampling
        if self.rescore and oversampling is None:
            oversampling = schema.DEFAULT_OVERSAMPLING[self.quantization]
        return QuantizationParams(rescore=self.rescore, oversampling=oversampling)

    def with_effective_oversampling(self) -> SearchMode:
        """The same mode with the oversampling its searches use spelled out."""
        params = self.quantization_params
        return self if params is None else replace(self, oversampling=params.oversampling)

    @property
    def label(self) -> str:
        """``siamese``; ``pixels [int8, rescore, oversampling 4]``; ``proxy, expanded by 3``;
        ``autoencoder+siamese (rrf, weights 1,2, N=100)``;
        ``pixels -> rescored by siamese (N=100)``;
        ``siamese + sift (maxsim, w=1, N=100)``."""
        label = self.method
        if self.quantization != "none":
            parts = [self.quantization, "rescore" if self.rescore else "no rescore"]
            if self.oversampling:
                parts.append(f"oversampling {self.oversampling:g}")
            label += f" [{', '.join(parts)}]"
        if self.expand:
            label += f", expanded by {self.expand}"
        if self.fused:
            w = self.fusion_weights
            label += f" ({self.fusion}{', weights ' + _numbers(w) if w else ''}, N={self.shortlist})"
        if self.rescore_with:
            label += f" -> rescored by {self.rescore_with} (N={self.shortlist})"
        r = self.rerank
        if r:
            label += f" + {r.stage} ({r.mode}, w={r.weight:g}, N={r.shortlist})"
        return label

    def output_name(self, *, exact: bool = False) -> str:
        """The folder an evaluation of this mode writes to (under eval-results/):
        ``pixels``, ``pixels-exact``, ``siamese-sift-maxsim``,
        ``pixels-int8-rescore-os2``, ``autoencoder+siamese-rrf-w1,2``,
        ``pixels-rescored-siamese``, ``proxy-qe3``."""
        name = self.method + ("-exact" if exact else "")
        if self.expand:
            name += f"-qe{self.expand}"
        if self.rerank:
            name += f"-{self.rerank.stage}-{self.rerank.mode}"
        if self.quantization != "none":
            name += f"-{self.quantization}-{'rescore' if self.rescore else 'norescore'}"
            name += f"-os{self.oversampling:g}" if self.oversampling else ""
        if self.fused:
            name += f"-{self.fusion}" + (f"-w{_numbers(self.fusion_weights, ',')}" if self.fusion_weights else "")
        if self.rescore_with:
            name += f"-rescored-{self.rescore_with}"
        return name

    def settings(self) -> dict[str, Any]:
        """The mode as flat settings (``metrics.json``, benchmark rows)."""
        return {
            "method": self.method,
            "quantization": self.quantization,
            "rescore": self.rescore,
            "oversampling": self.oversampling,
            "fusion": self.fusion,
            "fusion_weights": None if self.fusion_weights is None else list(self.fusion_weights),
            "rescore_with": self.rescore_with,
            "shortlist": self.shortlist,
            "rerank": None if self.rerank is None else asdict(self.rerank),
            "expand": self.expand,
        }

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> SearchMode:
        """Inverse of :meth:`settings` (missing keys take their defaults)."""
        rerank = settings.get("rerank")
        return cls(
            settings["method"],
            quantization=settings.get("quantization", "none"),
            rescore=settings.get("rescore", True),
            oversampling=settings.get("oversampling"),
            fusion=settings.get("fusion", DEFAULT_FUSION),
            fusion_weights=settings.get("fusion_weights"),
            rescore_with=settings.get("rescore_with"),
            shortlist=settings.get("shortlist", DEFAULT_SHORTLIST),
            rerank=None if not rerank else RerankConfig(**rerank),
            expand=settings.get("expand", 0),
        )

    @property
    def key(self) -> tuple:
        """What identifies the mode in a comparison of runs: the fields that
        change its results, with the oversampling its searches use."""
        m = self.with_effective_oversampling()
        quantised = m.quantization != "none"
        return (
            m.method,
            m.quantization,
            m.rescore if quantised else None,
            m.oversampling if quantised else None,
            m.fusion if m.fused else None,
            m.fusion_weights if m.fused else None,
            m.rescore_with,
            m.shortlist if m.combined else None,
            m.rerank,
            m.expand,
        )


@lru_cache(maxsize=1024)
def _from_options(
    method,
    quantization,
    rescore,
    oversampling,
    fusion,
    fusion_weights,
    rescore_with,
    shortlist,
    rerank,
    rerank_mode,
    rerank_weight,
    ratio,
    expand,
) -> SearchMode:
    stage = None
    if rerank is not None:
        stage = RerankConfig(stage=rerank, shortlist=shortlist, mode=rerank_mode, weight=rerank_weight, ratio=ratio)
    return SearchMode(
        method,
        quantization=quantization,
        rescore=rescore,
        oversampling=oversampling,
        fusion=fusion,
        fusion_weights=fusion_weights,
        rescore_with=rescore_with,
        shortlist=shortlist,
        rerank=stage,
        expand=expand,
    )


#: the flat options that apply only to some modes: the option -> (whether the mode uses it, what it needs)
_APPLIES: dict[str, tuple[Callable[[SearchMode], bool], str]] = {
    "fusion": (lambda m: m.fused, "methods joined by +"),
    "fusion_weights": (lambda m: m.fused, "methods joined by +"),
    "shortlist": (lambda m: m.second_stage, "a second stage (a rerank, a fusion or rescore with)"),
    "rerank_mode": (lambda m: m.rerank is not None, "a rerank"),
    "rerank_weight": (lambda m: m.rerank is not None, "a rerank"),
    "ratio": (lambda m: m.rerank is not None, "a rerank"),
}


def _refuse_unused(mode: SearchMode, flat: dict[str, Any]) -> None:
    """Refuse an option set away from its default that ``mode`` would not
    use (``fusion dbsf`` on one method): never silently ignored."""
    for name, (uses, needs) in _APPLIES.items():
        if flat[name] != OPTIONS[name] and not uses(mode):
            raise InvalidArgumentError(f"{name.replace('_', ' ')} applies to {needs} only", param=name)


def _numbers(values: tuple[float, ...] | None, sep: str = ",") -> str:
    return sep.join(f"{w:g}" for w in values or ())
