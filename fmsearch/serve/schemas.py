"""The shapes of requests and answers: what ``/openapi.json`` publishes.

A search names the same things ``fmsearch query`` takes, by the names the
library uses (``classes``, ``rescore_with``, ``fusion_weights``, ...).
"""

from __future__ import annotations

from dataclasses import MISSING, fields
from typing import Literal, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, create_model, model_validator

from fmsearch.models.registry import DEFAULT_METHOD
from fmsearch.search.explain import FILL, FILLS, PATCH, STRIDE
from fmsearch.search.fusion import FUSIONS
from fmsearch.search.mode import MAX_EXPAND
from fmsearch.search.mode import OPTIONS as MODE
from fmsearch.search.query import MAX_K
from fmsearch.search.rerank import RERANK_MODES, RERANK_STAGES
from fmsearch.search.searcher import Hit
from fmsearch.store.schema import MAX_FOLDER_ID, QUANTIZATIONS

Example = int | str  # a gallery id, or a base64-encoded image file
Fill = Literal[FILLS]  # type: ignore[valid-type]  # the occlusion's fills, named once in search/explain.py
#: at most this many positive (and as many negative) examples in a recommend query: each is retrieved
#: or decoded and embedded one at a time, on the threads every search shares
MAX_EXAMPLES = 64
#: at most this many class names in a filter (there are ten classes)
MAX_CLASSES = 100


class SearchRequest(BaseModel):
    """A search: by a gallery ``id``, by an ``image`` (base64 of an image
    file; in a multipart request, the file field ``image``), or by
    ``positive``/``negative`` examples (a recommend query)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    id: int | None = Field(
        None,
        ge=0,
        le=MAX_FOLDER_ID,
        description="Gallery id: train 0-59999, test 60000-69999; "
        "in a folder gallery (collection), one of its point ids.",
    )
    collection: str | None = Field(
        None, description="Search this folder gallery (fmsearch ingest --images) instead of FMNIST: its name."
    )
    image: str | None = Field(None, description="Base64 of an image file (PNG, JPEG, ...), any size.")
    method: str | None = Field(
        None,
        description=f"A method, or methods joined by + (a fusion) [default: {DEFAULT_METHOD} where it is served, "
        "else the best method served: /api/health's default_method, or the gallery's].",
    )
    k: int = Field(10, ge=1, le=MAX_K)
    offset: int = Field(
        0, ge=0, le=MAX_K - 1, description=f"Skip this many results: the next page (k + offset <= {MAX_K})."
    )
    min_score: float | None = Field(None, description="Leave out results scoring below this.")
    classes: list[str] = Field(default_factory=list, max_length=MAX_CLASSES, description="Only these classes.")
    exclude_classes: list[str] = Field(default_factory=list, max_length=MAX_CLASSES, description="Never these classes.")
    exact: bool = False
    # the search mode, flat, with its defaults from search.mode.OPTIONS (SearchMode.from_options makes it)
    fusion: Literal[FUSIONS] = MODE["fusion"]  # type: ignore[valid-type]
    fusion_weights: list[float] | None = MODE["fusion_weights"]
    rescore_with: str | None = MODE["rescore_with"]
    shortlist: int = Field(MODE["shortlist"], ge=1, le=MAX_K)
    rerank: Literal[RERANK_STAGES] | None = Field(  # type: ignore[valid-type]
        MODE["rerank"], description="A second stage reordering the shortlist."
    )
    rerank_mode: Literal[RERANK_MODES] = MODE["rerank_mode"]  # type: ignore[valid-type]
    rerank_weight: float = MODE["rerank_weight"]
    ratio: float = MODE["ratio"]
    quantization: Literal[QUANTIZATIONS] = MODE["quantization"]  # type: ignore[valid-type]
    oversampling: float | None = MODE["oversampling"]
    rescore: bool = MODE["rescore"]
    expand: int = Field(
        MODE["expand"],
        ge=0,
        le=MAX_EXPAND,
        description="Average query expansion by the N nearest hits' stored vectors (0: off).",
    )
    positive: list[Example] = Field(
        default_factory=list, max_length=MAX_EXAMPLES, description="Recommend: ids or base64 images."
    )
    negative: list[Example] = Field(
        default_factory=list, max_length=MAX_EXAMPLES, description="Recommend: ids or base64 images."
    )

    @model_validator(mode="after")
    def _one_page(self) -> SearchRequest:
        if self.k + self.offset > MAX_K:
            raise ValueError(f"offset must be between 0 and {MAX_K - self.k} for k={self.k}, got {self.offset}")
        return self


def _hit_fields() -> dict:
    """The fields of a :class:`Hit`, as the library defines them (one owner)."""
    hints = get_type_hints(Hit)
    return {f.name: (hints[f.name], ... if f.default is MISSING else f.default) for f in fields(Hit)}


#: a hit as the API answers it: the library's Hit, and where its image is
HitOut = create_model("HitOut", image_url=(str, ...), **_hit_fields())


class Timings(BaseModel):
    decode: float = 0.0
    embed: float = 0.0
    search: float = 0.0
    rerank: float = 0.0
    total: float = 0.0


class SearchResponse(BaseModel):
    hits: list[HitOut]  # type: ignore[valid-type]  # a model made at import from Hit's fields (one owner)
    query: dict = Field(description="What was understood: the mode, k, the filters, what the query was.")
    timings_ms: Timings
    plan: list[str] = Field(
        default_factory=list,
        description="How the store ran each collection's search: the filter-aware default's strategy "
        "(graph, wide graph, scan), or the service's --hnsw-ef/--acorn as asked; its ef and the filter's "
        "estimated share of the collection.",
    )


class ErrorBody(BaseModel):
    error: str = Field(description="What is wrong, in one line.")


class GalleryOut(BaseModel):
    methods: list[str] = Field(description="Its methods served.")
    default_method: str | None = Field(None, description="The method a search of it that names none uses.")
    classes: list[str] = Field(description="Its classes (label = index); empty without class subfolders.")


class Health(BaseModel):
    status: str
    methods: list[str] = Field(default_factory=list, description="Methods loaded and served.")
    default_method: str | None = Field(
        None, description="The method to lead with among those served: distilled where it is served."
    )
    galleries: dict[str, GalleryOut] = Field(default_factory=dict, description="Folder galleries served, by name.")
    skipped: dict[str, str] = Field(default_factory=dict, description="Methods not served, and why.")
    rerank: bool = Field(False, description="Whether the SIFT rerank stage is available.")
    worker: int = Field(description="The process that answered (several workers share the port, each loads its own).")
    max_upload_bytes: int = Field(description="The largest body the service reads.")


class ClassOut(BaseModel):
    label: int
    name: str


class ItemOut(BaseModel):
    """A gallery (train) or test image, by its id; a folder gallery's image:
    its path, and its class when it has one."""

    id: int
    split: str | None = None
    index: int | None = None
    label: int | None = None
    class_name: str | None = None
    path: str | None = None


class CompareRequest(BaseModel):
    """Two images, each a gallery id or base64 of an image file."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    a: Example
    b: Example
    ratio: float = 0.75
    upscale: int = Field(3, ge=1, le=8)
    plain: bool = False


class ExplainRequest(BaseModel):
    """Why are two images close under a method? ``a`` is the query (a gallery
    id or base64 of an image file), ``b`` the hit (the same)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    a: Example
    b: Example
    method: str | None = Field(
        None, description="The method whose similarity is explained [default: the gallery's default method]."
    )
    collection: str | None = Field(None, description="A folder gallery: its ids (as in a search).")
    patch: int = Field(PATCH, ge=1, le=28, description=f"Occluded square's side in pixels [{PATCH}].")
    stride: int = Field(STRIDE, ge=1, le=28, description=f"Pixels between windows, at most the patch [{STRIDE}].")
    fill: Fill = Field(FILL, description=f"What a window is filled with [{FILL}].")


class ExplainResponse(BaseModel):
    """The two heatmaps (28 rows of 28): per pixel, the cosine similarity
    lost when its neighbourhood is occluded (positive: it made the pair
    similar); ``fmsearch explain --json`` prints the same."""

    a: str
    b: str
    method: str
    similarity: float
    query_heat: list[list[float]]
    hit_heat: list[list[float]]
    patch: int
    stride: int
    fill: str
    batch: int = Field(description="Images embedded, in one batch.")
    ms: float = Field(description="The explanation's time (the occlusion and the batch), in ms.")


class CompareResponse(BaseModel):
    a: str
    b: str
    keypoints_a: int
    keypoints_b: int
    good_matches: int
    ratio: float
    lowe_score: float
    maxsim_score: float
    upscale: int
    descriptors: str
    drawing_url: str | None = None
