"""``multipart/form-data`` bodies (RFC 7578), parsed from memory.

The service reads a search's whole body anyway (an image is decoded from
all of its bytes, and the upload limit bounds it), so a form is split with
``bytes.find`` in one pass rather than streamed through a callback parser:
about 1 us for a 28x28 upload against about 60 us for Starlette's
``Request.form()`` here (``fmsearch bench serve`` measures the whole
path). Header parameters are read here too (quoted strings with escapes;
RFC 7578 forbids the RFC 2231 ``name*=`` forms in a form-data part): about
1 us against 10 us for python-multipart's ``parse_options_header``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fmsearch.errors import InvalidArgumentError

#: most parts a search form may have (every field, classes repeated)
MAX_PARTS = 200
#: one ``; key=value`` parameter of a header, the value a token or a quoted string
PARAM = re.compile(rb';\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;]*))')
ESCAPE = re.compile(rb"\\(.)")


@dataclass(frozen=True)
class Part:
    """One part of a form: a field's text, or a file's bytes."""

    name: str
    value: str | bytes
    filename: str | None = None

    @property
    def is_file(self) -> bool:
        return self.filename is not None


def parse_header(value: bytes) -> tuple[bytes, dict[bytes, bytes]]:
    """A header's value (``form-data; name="a"``) as its lower-cased first
    word and its parameters (keys lower-cased, quoted values unescaped)."""
    kind, _, rest = value.partition(b";")
    params = {}
    for m in PARAM.finditer(b";" + rest):
        quoted = m.group(2)
        if quoted is None:
            params[m.group(1).lower()] = m.group(3)
        else:
            params[m.group(1).lower()] = ESCAPE.sub(rb"\1", quoted) if b"\\" in quoted else quoted
    return kind.strip().lower(), params


def boundary_of(content_type: str) -> bytes:
    """The boundary a ``multipart/form-data`` content type names."""
    _, params = parse_header(content_type.encode("latin-1"))
    boundary = params.get(b"boundary")
    if not boundary or len(boundary) > 70:
        raise InvalidArgumentError("the multipart form names no valid boundary in its content type")
    return boundary


def parse_form(body: bytes, content_type: str, max_parts: int = MAX_PARTS) -> list[Part]:
    """The parts of a multipart form ``body``, in order.

    Raises:
        InvalidArgumentError: a malformed form (no boundary, truncated, a
            part without a name), or more than ``max_parts`` parts.
    """
    dash = b"--" + boundary_of(content_type)
    delimiter = b"\r\n" + dash
    if body.startswith(dash):
        pos = len(dash)
    else:  # a preamble before the first boundary is allowed, and ignored
        first = body.find(delimiter)
        if first < 0:
            raise InvalidArgumentError("the multipart form has no part (its boundary is not in the body)")
        pos = first + len(delimiter)
    parts: list[Part] = []
    while not body.startswith(b"--", pos):  # "--" after a boundary closes the form
        eol = body.find(b"\r\n", pos)
        if eol < 0 or body[pos:eol].strip(b" \t"):
            raise InvalidArgumentError("the multipart form is malformed after a boundary")
        end = body.find(delimiter, eol + 2)
        if end < 0:
            raise InvalidArgumentError("the multipart form is truncated (no closing boundary)")
        if len(parts) == max_parts:
            raise InvalidArgumentError(f"the multipart form has more than {max_parts} parts")
        parts.append(_part(body, eol + 2, end))
        pos = end + len(delimiter)
    return parts


def _part(body: bytes, start: int, end: int) -> Part:
    head_end = body.find(b"\r\n\r\n", start, end)
    if head_end < 0:
        raise InvalidArgumentError("a part of the multipart form has no headers")
    disposition = None
    for line in body[start:head_end].split(b"\r\n"):
        key, _, value = line.partition(b":")
        if key.strip().lower() == b"content-disposition":
            disposition = value.strip()
    if disposition is None:
        raise InvalidArgumentError("a part of the multipart form has no Content-Disposition header")
    kind, params = parse_header(disposition)
    name = params.get(b"name")
    if kind != b"form-data" or name is None:
        raise InvalidArgumentError("a part of the multipart form is not a named form-data field")
    content = body[head_end + 4 : end]
    filename = params.get(b"filename")
    try:
        if filename is not None:
            return Part(name.decode(), content, filename.decode())
        return Part(name.decode(), content.decode())
    except UnicodeDecodeError as err:
        raise InvalidArgumentError(f"a field of the multipart form is not UTF-8 text ({err.reason})") from err
