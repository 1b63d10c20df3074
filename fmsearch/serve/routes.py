"""The endpoints: parse, call the service off the event loop, answer."""

from __future__ import annotations

import hashlib
import os
import re
import time
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from starlette.routing import Route

from fmsearch.errors import InvalidArgumentError
from fmsearch.serve.forms import Part, parse_form
from fmsearch.serve.insight import MAX_GROUPS
from fmsearch.serve.limits import UploadTooLarge
from fmsearch.serve.schemas import (
    ClassOut,
    CompareRequest,
    CompareResponse,
    Health,
    ItemOut,
    SearchRequest,
    SearchResponse,
    Timings,
)
from fmsearch.serve.service import PlainSearch, classes, decode_base64, decode_upload, mode_of, query_of
from fmsearch.store.schema import MAX_FOLDER_ID, MAX_POINT_ID

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
#: the JSON types each search field takes (what a form's text is read as)
def _json_types(spec: dict) -> set[str]:
    """Every JSON type a field's schema (or its items') allows."""
    found = {spec["type"]} if "type" in spec else set()
    for inner in (*spec.get("anyOf", ()), *([spec["items"]] if "items" in spec else ())):
        found |= _json_types(inner)
    return found


FIELD_TYPES = {name: _json_types(spec) for name, spec in SearchRequest.model_json_schema()["properties"].items()}
INTEGER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
TIMINGS = tuple(Timings.model_fields)
IMMUTABLE = "public, max-age=31536000, immutable"  # an id's image never changes


def register(app: FastAPI, errors: dict) -> Bare:
    """Add every endpoint to ``app`` (``errors``: the documented error
    answers); returns the search endpoint, for the lane that takes searches
    straight to it."""

    @app.get("/api/health", response_model=Health, responses={503: {"model": Health, "description": "Loading"}})
    async def health(request: Request):
        s = request.app.state.service
        body = Health(status=s.state, methods=s.methods, galleries=s.galleries, skipped=s.skipped, rerank=s.rerank,
                      worker=os.getpid(),
                      max_upload_bytes=request.app.state.config.max_upload_bytes)
        return JSONResponse(body.model_dump(), status_code=200 if s.state == "ready" else 503)

    @app.get("/api/collections", responses=errors)
    async def collections(request: Request) -> list[dict[str, Any]]:
        return await request.app.state.run(_ready(request).collections)

    @app.get("/api/classes", responses=errors)
    async def get_classes() -> list[ClassOut]:
        return [ClassOut(**c) for c in classes()]

    async def search(request: Request) -> Response:
        """Search by an uploaded image (a multipart form with the file field
        ``image``), or by JSON: a gallery ``id``, a base64 ``image``, or
        ``positive``/``negative`` examples; every mode of the library."""
        t0 = time.perf_counter()
        _ready(request)
        req, upload = await _read_search(request)
        answer = await _answer(request, req, upload, t0)
        return Response(to_json(answer), media_type="application/json")  # a SearchResponse, built as dicts

    # FastAPI's request machinery (dependency solving, response models) is skipped for searches: the
    # search endpoint is a bare ASGI route, which the app's lane also calls directly (app.SearchLane), and
    # FastAPI documents the same function from SearchRequest and SearchResponse.
    route = Bare.route("/api/search", search, ["POST"])
    app.router.routes.insert(0, route)
    documented = APIRouter()
    documented.add_api_route("/api/search", search, methods=["POST"], response_model=SearchResponse,
                             responses=errors, openapi_extra=SEARCH_BODY)
    _document(app, documented.routes)

    _register_images(app, errors)
    _register_insight(app, errors)

    @app.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
    async def metrics(request: Request):
        return Response(request.app.state.metrics.text(), media_type="text/plain; version=0.0.4")

    return route.app


def _register_images(app: FastAPI, errors: dict) -> None:
    """The endpoints about images: gallery images, ids' labels, an upload as
    the methods see it, SIFT comparisons and their drawings."""

    @app.get("/api/images/{pid}.png", responses={**errors, 200: {"content": {"image/png": {}}}},
             response_class=Response)
    async def image(request: Request, pid: int = Path(ge=0, le=MAX_FOLDER_ID), collection: str | None = Query(
            None, description="A folder gallery: its image of this id (ids past 69999 need it).")):
        png = await request.app.state.run(_ready(request).image_png, pid, collection)
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

    @app.post("/api/compare.png", responses={**errors, 200: {"content": {"image/png": {}}}}, response_class=Response)
    async def compare_png_of(request: Request, body: CompareRequest):
        """The match drawing of any two images (ids or base64 image files)."""
        _, png = await request.app.state.run(_ready(request).compare, body)
        return Response(png, media_type="image/png")

    @app.get("/api/items/{pid}", response_model=ItemOut, response_model_exclude_none=True, responses=errors)
    async def item(request: Request, pid: int = Path(ge=0, le=MAX_FOLDER_ID), collection: str | None = Query(
            None, description="A folder gallery: its image of this id (its path and class).")):
        """A gallery or test image's split, index and class; a folder gallery's
        image's path and class."""
        return await request.app.state.run(_ready(request).item, pid, collection)

    @app.post("/api/preview", responses={**errors, 200: {"content": {"image/png": {}}}}, response_class=Response,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
    async def preview(request: Request):
        """An image file (the body, as it is) as fmsearch sees it: the 28x28
        FMNIST-style image every method embeds, as PNG."""
        data = await _read(request.body())
        png = await request.app.state.run(_ready(request).preview, data)
        return Response(png, media_type="image/png")

    @app.get("/api/compare.png", responses={**errors, 200: {"content": {"image/png": {}}}}, response_class=Response)
    async def compare_png(request: Request, a: int = Query(ge=0, le=MAX_POINT_ID),
                          b: int = Query(ge=0, le=MAX_POINT_ID), ratio: float = 0.75,
                          upscale: int = Query(3, ge=1, le=8), plain: bool = False):
        body = CompareRequest(a=a, b=b, ratio=ratio, upscale=upscale, plain=plain)
        _, png = await request.app.state.run(_ready(request).compare, body)
        return Response(png, media_type="image/png", headers={"Cache-Control": IMMUTABLE})


def _register_insight(app: FastAPI, errors: dict) -> None:
    """The gallery's map and its duplicates, as `fmsearch map` and
    `fmsearch duplicates` wrote them (404 until they have run)."""

    @app.get("/api/insight", responses=errors)
    async def insight(request: Request) -> dict[str, list[str]]:
        """The methods this service has a map of (``maps``) and a duplicates
        run of (``duplicates``)."""
        return await request.app.state.run(request.app.state.insight.available)

    @app.get("/api/map/{method}", responses={**errors, 200: {"content": {"application/json": {}}}},
             response_class=Response)
    async def gallery_map(request: Request, method: str):
        """The method's map.json: ``ids``, ``x``, ``y``, ``labels`` (one entry per
        mapped image), ``class_names``, ``settings`` and ``neighbour_keeping@10``."""
        body = await request.app.state.run(request.app.state.insight.map_json, method)
        return Response(body, media_type="application/json")

    @app.get("/api/duplicates/{method}", responses=errors)
    async def duplicates(request: Request, method: str,
                         limit: int = Query(MAX_GROUPS, ge=1, le=MAX_GROUPS)) -> dict[str, Any]:
        """The method's duplicates run: its settings, counts and cost, and its
        first ``limit`` groups (label conflicts first), each with ``ids``,
        ``labels``, ``classes``, ``splits``, ``conflict``, ``min_score``, ``max_score``."""
        return await request.app.state.run(request.app.state.insight.duplicates, method, limit)


class Bare:
    """An ASGI app that calls ``endpoint(request)`` and sends its response,
    without FastAPI's dependency solving and response-model machinery."""

    def __init__(self, endpoint) -> None:
        self.endpoint = endpoint
        self.route_: Route | None = None

    @classmethod
    def route(cls, path: str, endpoint, methods: list[str]) -> Route:
        bare = cls(endpoint)
        bare.route_ = Route(path, bare, methods=methods)
        return bare.route_

    async def __call__(self, scope, receive, send) -> None:
        scope["route"] = self.route_  # as FastAPI's routes record themselves (the metrics' endpoint label)
        response = await self.endpoint(Request(scope, receive))
        await response(scope, receive, send)


def _document(app: FastAPI, routes: list) -> None:
    """Publish ``routes`` in the app's OpenAPI document beside its own."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=[*app.routes, *routes])
            if app.state.config.api_key is not None:  # every /api request needs it: /docs can send it
                schema.setdefault("components", {})["securitySchemes"] = {
                    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"}}
                for path, operations in schema["paths"].items():
                    for operation in operations.values() if path.startswith("/api/") else ():
                        operation["security"] = [{"apiKey": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


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
    content_type = request.headers.get("content-type", "")
    kind = content_type.split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await _read(request.body())
        try:  # orjson: no NaN or Infinity, nesting at most 1,024 deep (a ValueError, not a RecursionError)
            data = orjson.loads(raw or b"null")
        except ValueError as err:
            raise InvalidArgumentError(f"the body is not JSON ({str(err).splitlines()[0]})") from err
        if not isinstance(data, dict):
            raise InvalidArgumentError("the body must be a JSON object")
        return SearchRequest.model_validate(data, strict=True), None  # JSON has types: no coercion
    if kind == "multipart/form-data":
        return form_request(parse_form(await _read(request.body()), content_type))
    raise UnsupportedMedia(f"send application/json or multipart/form-data, not {kind or 'nothing'}")


async def _read(reading):
    """Await reading the body; over the upload limit is a 413 (limits.BodyLimit
    answers it, whatever is raised here), anything else unreadable a 400."""
    try:
        return await reading
    except UploadTooLarge:
        raise
    except Exception as err:  # noqa: BLE001 - a client gone, a broken stream: the request's fault
        raise InvalidArgumentError(f"the body cannot be read: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


def form_request(parts: list[Part]) -> tuple[SearchRequest, bytes | None]:
    """A search from a multipart form's parts: the ``image`` file, and fields
    typed as the JSON schema types them (a form's values are all text, read
    strictly: ``k=1.5`` or ``exact=yes`` is refused, not coerced)."""
    data: dict[str, Any] = {}
    upload = None
    for part in parts:
        if part.is_file:
            if part.name != "image" or upload is not None:
                raise InvalidArgumentError(f"a file in field {part.name!r}: only 'image' takes a file, once")
            upload = part.value
        elif part.name == "image":
            raise InvalidArgumentError("the image field must be a file in a multipart form")
        elif part.name in REPEATED:
            field = REPEATED[part.name]
            data.setdefault(field, []).extend(_typed(field, v) for v in part.value.split(",") if v.strip())
        elif part.name in data:
            raise InvalidArgumentError(f"field {part.name!r} is given twice")
        else:
            data[part.name] = _typed(part.name, part.value)
    return SearchRequest.model_validate(data, strict=True), upload


def _typed(field: str, text: str) -> Any:
    """A form value as its field's JSON type; left as text where it is not
    one (strict validation then names the field)."""
    kinds = FIELD_TYPES.get(field, ())
    value = text.strip()
    if "boolean" in kinds and value in ("true", "false"):
        return value == "true"
    if "integer" in kinds and INTEGER.fullmatch(value):
        return int(value) if len(value) <= 20 else text  # longer is out of every field's range: left to refuse
    if "number" in kinds and NUMBER.fullmatch(value):
        return float(value)
    return text


async def _answer(request: Request, req: SearchRequest, upload: bytes | None, t0: float) -> dict[str, Any]:
    state = request.app.state
    service, timings = state.service, {}
    if upload is not None and req.image is not None:
        raise InvalidArgumentError("give the image once: a file or base64, not both")
    source = (partial(decode_upload, upload) if upload is not None
              else partial(decode_base64, req.image) if req.image is not None else None)
    mode = mode_of(req)
    service.check_method(mode, req.collection)
    request.state.method = mode.method  # a metrics label: only methods served (a bounded set)
    batched = (state.config.batching and source is not None and req.id is None and not req.positive
               and not req.negative and not mode.second_stage)
    if batched:
        query = query_of(req, source)  # no examples to decode: cheap on the event loop
        query.check(mode)
        item = PlainSearch(query, service.filter_for(mode, query, req.collection))
        hits, batch_timings = await state.batcher.submit((mode, req.exact, req.collection), item)
        timings.update(batch_timings)
    else:
        hits = await state.run(service.search, req, source, timings)
    timings["total"] = time.perf_counter() - t0
    where = "" if req.collection is None else f"?collection={req.collection}"
    by = "id" if req.id is not None else "examples" if (req.positive or req.negative) else "image"
    return {
        "hits": [{**vars(h), "image_url": f"/api/images/{h.id}.png{where}"} for h in hits],
        "query": {"by": by, "id": req.id, "collection": req.collection, "method": mode.method, "mode": mode.label,
                  "k": req.k,
                  "offset": req.offset, "min_score": req.min_score, "classes": req.classes,
                  "exclude_classes": req.exclude_classes, "exact": req.exact, "batched": batched},
        "timings_ms": {k: 1000 * timings.get(k, 0.0) for k in TIMINGS},
    }


def to_json(answer: Any) -> bytes:
    """An answer as JSON bytes (numpy numbers as numbers), by orjson."""
    return orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
