"""The upload limit: a body over it is refused before it is read whole."""

from __future__ import annotations

import json


class UploadTooLarge(Exception):
    """The request body is over the service's limit."""


class BodyLimit:
    """ASGI middleware: a request whose ``Content-Length`` is over
    ``max_bytes`` is answered 413 at once (one within it goes on untouched:
    HTTP/1.1 servers read a body's stated length and no more); a body sent without a length
    (chunked) is cut off as soon as it passes the limit, and answered 413
    whatever the application made of the cut (FastAPI's body parsing turns
    it into a 400 of its own)."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and length.isdigit():
            if int(length) > self.max_bytes:
                await self._refuse(send, int(length))
            else:  # the server reads no more than the length it was told: nothing to count
                await self.app(scope, receive, send)
            return
        seen, cut = 0, False

        async def limited_receive():
            nonlocal seen, cut
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    cut = True
                    raise UploadTooLarge(self._message(seen))
            return message

        async def limited_send(message) -> None:
            if not cut:
                await send(message)
            elif message["type"] == "http.response.start":  # the answer to a cut body: ours, not the app's
                await self._refuse(send, seen)

        await self.app(scope, limited_receive, limited_send)

    def _message(self, size: int) -> str:
        return f"the upload of {size:,} bytes or more is over the limit of {self.max_bytes:,} bytes"

    async def _refuse(self, send, size: int) -> None:
        body = json.dumps({"error": self._message(size)}).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
