"""The web page at ``/``: static HTML, CSS and a JavaScript module over the
HTTP API (no build step, nothing fetched from elsewhere: it works offline)."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from starlette.staticfiles import StaticFiles

WEB = Path(__file__).with_name("web")
#: the page loads only its own files; images come from the API, data: and blob: URLs (uploads, drawings)
POLICY = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def mount_page(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files under ``/static``."""

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(
            WEB / "index.html", headers={"Content-Security-Policy": POLICY, "Cache-Control": "no-cache"}
        )

    app.mount("/static", StaticFiles(directory=WEB / "static"), name="static")  # the page's files, not the page
