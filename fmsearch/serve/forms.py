"""A search from a ``multipart/form-data`` body: parsed by python-multipart
(the parser Starlette's ``Request.form()`` runs), then typed.

Its parts are kept in memory, as bytes: Starlette's form parser would spool
the file into a temporary file first and read it back (an upload is at most
the service's limit, which ``BodyLimit`` enforces before the parser sees a
byte), and that spooling was most of the parser's cost on the event loop.

A form's values are all text; each is read as the JSON type its field
takes, strictly: ``k=1.5`` or ``exact=yes`` is refused (422), not coerced,
and ``exact=true`` is taken. ``class`` and ``exclude_class`` repeat (or
take comma-separated names).
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Request
from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

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
#: a refusal's start, and python-multipart's refusal, as Starlette's form parser words them
PREFIX = "the multipart form is malformed: "
MALFORMED = f"{PREFIX}Invalid multipart data."
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
    form = _Form(request.headers.get("content-type", ""))
    async for chunk in request.stream():
        form.write(chunk)
    data: dict[str, Any] = {}
    upload = None
    for name, value, is_file in form.finish():
        if is_file:
            if name != "image" or upload is not None:
                raise InvalidArgumentError(f"a file in field {name!r}: only 'image' takes a file, once")
            upload = bytes(value)
            continue
        text = value.decode("utf-8", errors="replace")
        if name == "image":
            raise InvalidArgumentError("the image field must be a file in a multipart form")
        elif name in REPEATED:
            field = REPEATED[name]
            data.setdefault(field, []).extend(_typed(field, v) for v in text.split(",") if v.strip())
        elif name in data:
            raise InvalidArgumentError(f"field {name!r} is given twice")
        else:
            data[name] = _typed(name, text)
    return SearchRequest.model_validate(data, strict=True), upload


class _Form:
    """python-multipart's parser fed a body, its parts kept as (name, bytes,
    is a file). Refuses (400) a form without a boundary, a part without a
    name, more than :data:`MAX_PARTS` fields or one file, and a body cut off before its
    closing boundary (python-multipart takes one as the parts it got whole:
    its ``finalize`` does not check yet, which would drop fields silently)."""

    def __init__(self, content_type: str) -> None:
        _, options = parse_options_header(content_type)
        boundary = options.get(b"boundary")
        if not boundary:
            raise InvalidArgumentError(f"{PREFIX}Missing boundary in multipart.")
        self.parts: list[tuple[str, bytearray, bool]] = []
        self.closed = False
        self._header, self._value, self._disposition = b"", b"", b""
        self._parser = MultipartParser(
            boundary,
            {
                "on_part_begin": self._begin,
                "on_part_data": self._data,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_end": self._end,
            },
        )

    def write(self, chunk: bytes) -> None:
        try:
            self._parser.write(chunk)
        except FormParserError as err:
            raise InvalidArgumentError(MALFORMED) from err

    def finish(self) -> list[tuple[str, bytearray, bool]]:
        """The parts, once the body has ended at the closing boundary."""
        try:
            self._parser.finalize()
        except FormParserError as err:
            raise InvalidArgumentError(MALFORMED) from err
        if not self.closed:
            raise InvalidArgumentError("the multipart form is truncated (no closing boundary)")
        return self.parts

    def _begin(self) -> None:
        self._disposition = b""

    def _data(self, data: bytes, start: int, end: int) -> None:
        self.parts[-1][1].extend(data[start:end])

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        if b"name" not in options:
            raise InvalidArgumentError(f'{PREFIX}The Content-Disposition header field "name" must be provided.')
        is_file = b"filename" in options
        if sum(p[2] == is_file for p in self.parts) >= (1 if is_file else MAX_PARTS):
            many = (
                "files. Maximum number of files is 1" if is_file else f"fields. Maximum number of fields is {MAX_PARTS}"
            )
            raise InvalidArgumentError(f"{PREFIX}Too many {many}.")
        self.parts.append((options[b"name"].decode("utf-8", errors="replace"), bytearray(), is_file))

    def _end(self) -> None:
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
