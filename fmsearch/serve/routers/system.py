"""What the service serves: health, the collections, the classes; and its metrics."""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from fmsearch.models.registry import lead_method
from fmsearch.serve.deps import ReadyService, ServingDep
from fmsearch.serve.errors import ERRORS
from fmsearch.serve.schemas import ClassOut, Health
from fmsearch.serve.service import classes

router = APIRouter(prefix="/api", responses=ERRORS)
open_router = APIRouter()


@router.get("/health", response_model=Health, responses={503: {"model": Health, "description": "Loading"}})
async def health(s: ServingDep) -> JSONResponse:
    """Whether this worker is ready (200) or not (503, ``status`` says why),
    and what it serves."""
    service = s.service
    body = Health.model_validate(
        {
            "status": service.state,
            "methods": service.methods,
            "default_method": lead_method(service.methods),
            "galleries": {
                name: {**gallery, "default_method": lead_method(gallery["methods"])}
                for name, gallery in service.galleries.items()
            },
            "skipped": service.skipped,
            "rerank": service.rerank,
            "worker": os.getpid(),
            "max_upload_bytes": s.config.max_upload_bytes,
        }
    )
    return JSONResponse(body.model_dump(), status_code=200 if service.state == "ready" else 503)


@router.get("/collections")
async def collections(s: ServingDep, service: ReadyService) -> list[dict[str, Any]]:
    """What ``fmsearch collections --json`` prints."""
    return await s.run(service.collections)


@router.get("/classes")
async def get_classes() -> list[ClassOut]:
    """The ten FMNIST classes."""
    return [ClassOut(**c) for c in classes()]


@open_router.get("/metrics", response_class=Response, responses={200: {"content": {"text/plain": {}}}})
async def metrics(s: ServingDep) -> Response:
    """Prometheus text of this worker process."""
    return Response(s.metrics.text(), media_type="text/plain; version=0.0.4")
