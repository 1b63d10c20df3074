"""``POST /api/search``: parse, validate, search (micro-batched where it
can be), answer."""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from fmsearch.errors import InvalidArgumentError
from fmsearch.search.query import ImageSource
from fmsearch.serve.deps import ReadyService, Serving, ServingDep
from fmsearch.serve.errors import ERRORS, UnsupportedMedia
from fmsearch.serve.forms import read_form
from fmsearch.serve.limits import UploadTooLarge
from fmsearch.serve.schemas import SearchRequest, SearchResponse, Timings
from fmsearch.serve.service import (
    PlainSearch,
    SearchService,
    decode_base64,
    decode_upload,
    query_of,
)

router = APIRouter(prefix="/api", responses=ERRORS)

_FORM_FIELDS = {
    k: v
    for k, v in SearchRequest.model_json_schema()["properties"].items()
    if k not in ("image", "classes", "exclude_classes")
}
#: the body, documented: JSON, or a multipart form with the file in ``image``
SEARCH_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": SearchRequest.model_json_schema()},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "An image file.",
                        },
                        **_FORM_FIELDS,
                        "class": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Only this class (repeatable).",
                        },
                        "exclude_class": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "Never this class.",
                        },
                    },
                }
            },
        },
    }
}
TIMINGS = tuple(Timings.model_fields)


@router.post("/search", response_model=SearchResponse, response_class=Response, openapi_extra=SEARCH_BODY)
async def search(request: Request, s: ServingDep, service: ReadyService) -> Response:
    """Search by an uploaded image (a multipart form with the file field
    ``image``), or by JSON: a gallery ``id``, a base64 ``image``, or
    ``positive``/``negative`` examples; every mode of the library."""
    t0 = time.perf_counter()
    req, upload = await read_search(request)
    answer = await _answer(request, s, service, req, upload, t0)
    # the answer is built as dicts and written by orjson: no response-model pass over every hit
    return Response(orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


async def read_search(request: Request) -> tuple[SearchRequest, bytes | None]:
    """The search a request asks for (JSON, or a multipart form with an
    ``image`` file), validated; and the uploaded file's bytes, if any.

    Raises:
        InvalidArgumentError: a body that is not JSON or not a form (400).
        UnsupportedMedia: neither JSON nor a multipart form (415).
    """
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        raw = await read_body(request)
        try:  # orjson: no NaN or Infinity, nesting at most 1,024 deep (a ValueError, not a RecursionError)
            data = orjson.loads(raw or b"null")
        except ValueError as err:
            raise InvalidArgumentError(f"the body is not JSON ({str(err).splitlines()[0]})") from err
        if not isinstance(data, dict):
            raise InvalidArgumentError("the body must be a JSON object")
        return SearchRequest.model_validate(data, strict=True), None  # JSON has types: no coercion
    if kind == "multipart/form-data":
        return await read_form(request)
    raise UnsupportedMedia(f"send application/json or multipart/form-data, not {kind or 'nothing'}")


async def read_body(request: Request) -> bytes:
    """The body; over the upload limit is a 413 (limits.BodyLimit answers it,
    whatever is raised here), anything else unreadable a 400."""
    try:
        return await request.body()
    except UploadTooLarge:
        raise
    except Exception as err:  # noqa: BLE001 - a client gone, a broken stream: the request's fault
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise InvalidArgumentError(f"the body cannot be read: {why}") from err


async def _answer(
    request: Request,
    s: Serving,
    service: SearchService,
    req: SearchRequest,
    upload: bytes | None,
    t0: float,
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    if upload is not None and req.image is not None:
        raise InvalidArgumentError("give the image once: a file or base64, not both")
    source: ImageSource | None = (
        partial(decode_upload, upload)
        if upload is not None
        else partial(decode_base64, req.image)
        if req.image is not None
        else None
    )
    mode = service.mode_for(req)
    service.check_method(mode, req.collection)
    request.state.method = mode.method  # a metrics label: only methods served (a bounded set)
    batched = (
        s.config.batching
        and source is not None
        and req.id is None
        and not req.positive
        and not req.negative
        and not mode.second_stage
    )
    if batched:
        query = query_of(req, source)  # no examples to decode: cheap on the event loop
        query.check(mode)
        item = PlainSearch(query, service.filter_for(mode, query, req.collection))
        hits, batch_timings, plans = await s.batcher.submit((mode, req.exact, req.collection), item)
        timings.update(batch_timings)
    else:
        plans = []
        hits = await s.run(service.search, req, source, timings, plans)
    timings["total"] = time.perf_counter() - t0
    where = "" if req.collection is None else f"?collection={req.collection}"
    by = "id" if req.id is not None else "examples" if (req.positive or req.negative) else "image"
    return {
        "hits": [{**vars(h), "image_url": f"/api/images/{h.id}.png{where}"} for h in hits],
        "query": {
            "by": by,
            "id": req.id,
            "collection": req.collection,
            "method": mode.method,
            "mode": mode.label,
            "k": req.k,
            "offset": req.offset,
            "min_score": req.min_score,
            "classes": req.classes,
            "exclude_classes": req.exclude_classes,
            "exact": req.exact,
            "batched": batched,
        },
        "timings_ms": {k: 1000 * timings.get(k, 0.0) for k in TIMINGS},
        "plan": [p.describe() for p in plans],
    }
