"""The endpoints about images: gallery images, ids' labels, an upload as
the methods see it, SIFT comparisons and their drawings, and why a pair
matches under a method (occlusion heatmaps)."""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import Response

from fmsearch.serve.deps import ReadyService, ServingDep
from fmsearch.serve.errors import ERRORS
from fmsearch.serve.routers.search import read_body
from fmsearch.serve.schemas import CompareRequest, CompareResponse, ExplainRequest, ExplainResponse, ItemOut
from fmsearch.store.schema import MAX_FOLDER_ID, MAX_POINT_ID

router = APIRouter(prefix="/api", responses=ERRORS)
IMMUTABLE = "public, max-age=31536000, immutable"  # an id's image never changes
PNG: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}
Id = Annotated[int, Path(ge=0, le=MAX_FOLDER_ID)]
PointId = Annotated[int, Query(ge=0, le=MAX_POINT_ID)]


@router.get("/images/{pid}.png", responses=PNG, response_class=Response)
async def image(
    request: Request,
    s: ServingDep,
    service: ReadyService,
    pid: Id,
    collection: Annotated[
        str | None,
        Query(description="A folder gallery: its image of this id (ids past 69999 need it)."),
    ] = None,
) -> Response:
    """Image ``pid`` as PNG, with an ``ETag`` (a matching ``If-None-Match`` gets 304)."""
    png = await s.run(service.image_png, pid, collection)
    etag = '"' + hashlib.sha256(png).hexdigest()[:20] + '"'
    headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(png, media_type="image/png", headers=headers)


@router.post("/explain", response_model=ExplainResponse)
async def explain(s: ServingDep, service: ReadyService, body: ExplainRequest) -> ExplainResponse:
    """Why ``a`` (the query) and ``b`` (a hit) are close under ``method``:
    occlusion heatmaps of both, computed with the method's encoder (one
    batch) in a thread of their own, so that searches never wait for one;
    what ``fmsearch explain --json`` prints."""
    return ExplainResponse(**await s.explain(service.explain, body))


@router.post("/compare", response_model=CompareResponse)
async def compare(s: ServingDep, service: ReadyService, body: CompareRequest) -> CompareResponse:
    """SIFT comparison of two images (ids or base64 image files): the
    figures ``fmsearch compare --json`` prints."""
    figures, _ = await s.run(service.compare, body)
    ids = isinstance(body.a, int) and isinstance(body.b, int)
    drawing = (
        (
            f"/api/compare.png?a={body.a}&b={body.b}&ratio={body.ratio:g}&upscale={body.upscale}"
            f"&plain={str(body.plain).lower()}"
        )
        if ids
        else None
    )
    return CompareResponse(**figures, drawing_url=drawing)


@router.post("/compare.png", responses=PNG, response_class=Response)
async def compare_png_of(s: ServingDep, service: ReadyService, body: CompareRequest) -> Response:
    """The match drawing of any two images (ids or base64 image files)."""
    _, png = await s.run(service.compare, body)
    return Response(png, media_type="image/png")


@router.get("/compare.png", responses=PNG, response_class=Response)
async def compare_png(
    s: ServingDep,
    service: ReadyService,
    a: PointId,
    b: PointId,
    ratio: float = 0.75,
    upscale: Annotated[int, Query(ge=1, le=8)] = 3,
    plain: bool = False,
) -> Response:
    """The match drawing of two gallery ids, cacheable."""
    body = CompareRequest(a=a, b=b, ratio=ratio, upscale=upscale, plain=plain)
    _, png = await s.run(service.compare, body)
    return Response(png, media_type="image/png", headers={"Cache-Control": IMMUTABLE})


@router.get("/items/{pid}", response_model=ItemOut, response_model_exclude_none=True)
async def item(
    s: ServingDep,
    service: ReadyService,
    pid: Id,
    collection: Annotated[
        str | None,
        Query(description="A folder gallery: its image of this id (its path and class)."),
    ] = None,
) -> dict[str, Any]:
    """A gallery or test image's split, index and class; a folder gallery's
    image's path and class."""
    return await s.run(service.item, pid, collection)


@router.post(
    "/preview",
    responses=PNG,
    response_class=Response,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
        }
    },
)
async def preview(request: Request, s: ServingDep, service: ReadyService) -> Response:
    """An image file (the body, as it is) as fmsearch sees it: the 28x28
    FMNIST-style image every method embeds, as PNG."""
    png = await s.run(service.preview, await read_body(request))
    return Response(png, media_type="image/png")
