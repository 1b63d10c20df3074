"""The endpoints: parse, call the service off the event loop, answer."""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
from dataclasses import asdict, replace
from typing import Any

from fastapi import FastAPI, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from fmsearch.errors import InvalidArgumentError
from fmsearch.serve.limits import UploadTooLarge
from fmsearch.serve.schemas import (
    ClassOut,
    CompareRequest,
    CompareResponse,
    Health,
    HitOut,
    SearchRequest,
    SearchResponse,
)
from fmsearch.serve.service import PlainSearch, classes, decode_base64, decode_upload, mode_of
from fmsearch.store.schema import MAX_POINT_ID

#: multipart fields that may repeat, and the request field each fills
REPEATED = {"class": "classes", "exclude_class": "exclude_classes", "classes": "classes",
            "exclude_classes": "exclude_classes", "positive": "positive", "negative": "negative",
            "fusion_weights": "fusion_weights"}
MULTIPART_FIELDS = {k: v for k, v in SearchRequest.model_json_schema()["properties"].items() if k != "image"}
SEARCH_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": SearchRequest.model_json_schema()},
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "image": {"type": "string", "format": "binary", "description": "An image file."},
        **{k: v for k, v in MULTIPART_FIELDS.items() if k not in ("classes", "exclude_classes")},
        "class": {"type": "array", "items": {"type": "string"}, "description": "Only this class (repeatable)."},
        "exclude_class": {"type": "array", "items": {"type": "string"}, "description": "Never this class."},
    }}},
}}}
IMMUTABLE = "public, max-age=31536000, immutable"  # an id's image never changes


def register(app: FastAPI, errors: dict) -> None:
    """Add every endpoint to ``app`` (``errors``: the documented error answers)."""

    @app.get("/api/health", response_model=Health, responses={503: {"model": Health, "description": "Loading"}})
    async def health(request: Request):
        s = request.app.state.service
        body = Health(status=s.state, methods=s.methods, skipped=s.skipped, rerank=s.rerank)
        return JSONResponse(body.model_dump(), status_code=200 if s.state == "ready" else 503)

    @app.get("/api/collections", responses=errors)
    async def collections(request: Request) -> list[dict[str, Any]]:
        return await request.app.state.run(_ready(request).collections)

    @app.get("/api/classes", responses=errors)
    async def get_classes() -> list[ClassOut]:
        return [ClassOut(**c) for c in classes()]

    @app.post("/api/search", response_model=SearchResponse, responses=errors, openapi_extra=SEARCH_BODY)
    async def search(request: Request):
        t0 = time.perf_counter()
        _ready(request)
        req, upload = await _read_search(request)
        request.state.method = req.method
        async with asyncio.timeout(request.app.state.config.request_timeout_s):
            return await _answer(request, req, upload, t0)

    @app.get("/api/images/{pid}.png", responses={**errors, 200: {"content": {"image/png": {}}}},
             response_class=Response)
    async def image(request: Request, pid: int = Path(ge=0, le=MAX_POINT_ID)):
        png = await request.app.state.run(_ready(request).image_png, pid)
        etag = '"' + hashlib.sha256(png).hexdigest()[:20] + '"'
        headers = {"ETag": etag, "Cache-Control": IMMUTABLE}
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers=headers)
        return Response(png, media_type="image/png", headers=headers)

    @app.post("/api/compare", response_model=CompareResponse, responses=errors)
    async def compare(request: Request, body: CompareRequest):
        figures, _ = await request.app.state.run(_ready(request).compare, body)
        ids = isinstance(body.a, int) and isinstance(body.b, int)
        drawing = (f"/api/compare.png?a={body.a}&b={body.b}&ratio={body.ratio:g}&upscale={body.upscale}"
                   f"&plain={str(body.plain).lower()}") if ids else None
        return CompareResponse(**figures, drawing_url=drawing)

    @app.get("/api/compare.png", responses={**errors, 200: {"content": {"image/png": {}}}}, response_class=Response)
    async def compare_png(request: Request, a: int = Query(ge=0, le=MAX_POINT_ID),
                          b: int = Query(ge=0, le=MAX_POINT_ID), ratio: float = 0.75,
                          upscale: int = Query(3, ge=1, le=8), plain: bool = False):
        body = CompareRequest(a=a, b=b, ratio=ratio, upscale=upscale, plain=plain)
        _, png = await request.app.state.run(_ready(request).compare, body)
        return Response(png, media_type="image/png", headers={"Cache-Control": IMMUTABLE})

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics(request: Request):
        return Response(request.app.state.metrics.text(), media_type="text/plain; version=0.0.4")


class NotReady(Exception):
    """The service is still loading (or could not load): answered 503."""


class UnsupportedMedia(Exception):
    """A body that is neither JSON nor a multipart form: answered 415."""


def _ready(request: Request):
    service = request.app.state.service
    if service.state != "ready":
        raise NotReady(f"the service is {service.state}")
    return service


async def _read_search(request: Request) -> tuple[SearchRequest, bytes | None]:
    """The search a request asks for (JSON, or a multipart form with an
    ``image`` file), validated; and the uploaded file's bytes, if any."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await _read(request.body())
        try:
            data = json.loads(raw or b"null")
        except (ValueError, UnicodeDecodeError) as err:
            raise InvalidArgumentError(f"the body is not JSON ({err})") from err
        if not isinstance(data, dict):
            raise InvalidArgumentError("the body must be a JSON object")
        return SearchRequest.model_validate(data), None
    if kind == "multipart/form-data":
        return await _read_form(request)
    raise UnsupportedMedia(f"send application/json or multipart/form-data, not {kind or 'nothing'}")


async def _read(reading):
    """Await reading the body; over the upload limit is a 413 (whatever wraps
    it on the way), anything else unreadable a 400."""
    try:
        return await reading
    except Exception as err:  # noqa: BLE001 - sorted below
        cause: BaseException | None = err
        while cause is not None:
            if isinstance(cause, UploadTooLarge):
                raise cause from None
            cause = cause.__cause__ or cause.__context__
        raise InvalidArgumentError(f"the body cannot be read: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


async def _read_form(request: Request) -> tuple[SearchRequest, bytes | None]:
    form = await _read(request.form(max_files=1, max_fields=200))
    data: dict[str, Any] = {}
    upload = None
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            if key != "image":
                raise InvalidArgumentError(f"a file in field {key!r}: only 'image' takes a file")
            upload = await value.read()
        elif key in REPEATED:
            data.setdefault(REPEATED[key], []).extend(v for v in value.split(",") if v.strip())
        elif key == "image":
            raise InvalidArgumentError("the image field must be a file in a multipart form")
        else:
            data[key] = value
    return SearchRequest.model_validate(data), upload


async def _answer(request: Request, req: SearchRequest, upload: bytes | None, t0: float) -> SearchResponse:
    state = request.app.state
    service, timings = state.service, {}
    image, by = None, "id" if req.id is not None else "examples" if (req.positive or req.negative) else "image"
    if upload is not None and req.image is not None:
        raise InvalidArgumentError("give the image once: a file or base64, not both")
    if upload is not None or req.image is not None:
        t = time.perf_counter()
        image = await (state.run(decode_upload, upload) if upload is not None else state.run(decode_base64, req.image))
        timings["decode"] = time.perf_counter() - t
    mode = mode_of(req)
    service.check_method(mode)
    batched = (state.config.batching and image is not None and req.id is None and not req.positive
               and not req.negative and not mode.second_stage)
    if batched:
        hits = await _batched(request, req, mode, image, timings)
    else:
        hits = await state.run(service.search, req, image, timings)
    timings["total"] = time.perf_counter() - t0
    return SearchResponse(
        hits=[HitOut(**asdict(h), image_url=f"/api/images/{h.id}.png") for h in hits],
        query={"by": by, "id": req.id, "method": mode.method, "mode": mode.label, "k": req.k, "offset": req.offset,
               "min_score": req.min_score, "classes": req.classes, "exclude_classes": req.exclude_classes,
               "exact": req.exact, "batched": batched},
        timings_ms={k: 1000 * v for k, v in timings.items()},
    )


async def _batched(request: Request, req: SearchRequest, mode, image, timings: dict) -> list:
    """A plain search of an upload, batched with the others of its kind."""
    service = request.app.state.service
    item = PlainSearch(image, req.k + req.offset, service.filter_for(req))
    hits, batch_timings, _ = await request.app.state.batcher.submit((mode, req.exact), item)
    timings.update(batch_timings)
    if req.min_score is not None:
        hits = [h for h in hits if h.score >= req.min_score]
    return [replace(h, rank=r) for r, h in enumerate(hits[req.offset : req.offset + req.k], start=req.offset + 1)]
