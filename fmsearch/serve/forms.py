"""A search from a ``multipart/form-data`` body: parsed by python-multipart
through Starlette's form parser (the one ``Request.form()`` runs), then typed.

A form's values are all text; each is read as the JSON type its field
takes, strictly: ``k=1.5`` or ``exact=yes`` is refused (422), not coerced,
and ``exact=true`` is taken. ``class`` and ``exclude_class`` repeat (or
take comma-separated names).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from fmsearch.errors import InvalidArgumentError
from fmsearch.serve.schemas import SearchRequest

#: most parts a search form may have (every field, classes repeated)
MAX_PARTS = 200
#: multipart fields that may repeat, and the request field each fills
REPEATED = {
    "class": "classes",
    "exclude_class": "exclude_classes",
    "classes": "classes",
    "exclude_classes": "exclude_classes",
    "positive": "positive",
    "negative": "negative",
    "fusion_weights": "fusion_weights",
}
INTEGER = re.compile(r"[+-]?[0-9]+")
NUMBER = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def _json_types(spec: dict[str, Any]) -> set[str]:
    """Every JSON type a field's schema (or its items') allows."""
    found = {spec["type"]} if "type" in spec else set()
    for inner in (*spec.get("anyOf", ()), *([spec["items"]] if "items" in spec else ())):
        found |= _json_types(inner)
    return found


#: the JSON types each search field takes (what a form's text is read as)
FIELD_TYPES = {name: _json_types(spec) for name, spec in SearchRequest.model_json_schema()["properties"].items()}


async def read_form(request: Request) -> tuple[SearchRequest, bytes | None]:
    """The search a multipart form asks for, validated, and its ``image`` file's bytes.

    Raises:
        InvalidArgumentError: a malformed form (400), a file in another field
            than ``image``, a field given twice.
        pydantic.ValidationError: a field of the wrong type or out of range (422).
    """
    parser = _Closed(request.headers, request.stream(), max_files=1, max_fields=MAX_PARTS)
    try:
        form = await parser.parse()
    except MultiPartException as err:  # python-multipart's refusal, as Starlette words it
        raise InvalidArgumentError(f"the multipart form is malformed: {err.message}") from err
    if not parser.closed:
        await form.close()
        raise InvalidArgumentError("the multipart form is truncated (no closing boundary)")
    try:
        data: dict[str, Any] = {}
        upload = None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != "image":
                    raise InvalidArgumentError(f"a file in field {name!r}: only 'image' takes a file, once")
                upload = await value.read()
            elif name == "image":
                raise InvalidArgumentError("the image field must be a file in a multipart form")
            elif name in REPEATED:
                field = REPEATED[name]
                data.setdefault(field, []).extend(_typed(field, v) for v in value.split(",") if v.strip())
            elif name in data:
                raise InvalidArgumentError(f"field {name!r} is given twice")
            else:
                data[name] = _typed(name, value)
    finally:
        await form.close()
    return SearchRequest.model_validate(data, strict=True), upload


class _Closed(MultiPartParser):
    """Starlette's parser, noting whether the form reached its closing
    boundary: python-multipart takes a body cut off before it as the parts
    it got whole (its ``finalize`` does not check yet), which would drop
    fields silently."""

    closed = False

    def on_end(self) -> None:
        self.closed = True


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
