"""The gallery's map, its duplicates and its likely label errors, as
``fmsearch map``, ``fmsearch duplicates`` and ``fmsearch label-issues``
wrote them (404 until they have run)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import Response

from fmsearch.serve.deps import ServingDep
from fmsearch.serve.errors import ERRORS
from fmsearch.serve.insight import MAX_GROUPS, MAX_SUSPECTS

router = APIRouter(prefix="/api", responses=ERRORS)


@router.get("/insight")
async def insight(s: ServingDep) -> dict[str, list[str]]:
    """The methods this service has a map of (``maps``), a duplicates run
    of (``duplicates``) and a label-issues run of (``label_issues``)."""
    return await s.run(s.insight.available)


@router.get("/map/{method}", responses={200: {"content": {"application/json": {}}}}, response_class=Response)
async def gallery_map(s: ServingDep, method: str) -> Response:
    """The method's map.json: ``ids``, ``x``, ``y``, ``labels`` (one entry per
    mapped image), ``class_names``, ``settings`` and ``neighbour_keeping@10``."""
    return Response(await s.run(s.insight.map_json, method), media_type="application/json")


@router.get("/duplicates/{method}")
async def duplicates(
    s: ServingDep, method: str, limit: Annotated[int, Query(ge=1, le=MAX_GROUPS)] = MAX_GROUPS
) -> dict[str, Any]:
    """The method's duplicates run: its settings, counts and cost, and its
    first ``limit`` groups (label conflicts first), each with ``ids``,
    ``labels``, ``classes``, ``splits``, ``conflict``, ``min_score``, ``max_score``."""
    return await s.run(s.insight.duplicates, method, limit)


@router.get("/label-issues/{method}")
async def label_issues(
    s: ServingDep, method: str, limit: Annotated[int, Query(ge=1, le=MAX_SUSPECTS)] = MAX_SUSPECTS
) -> dict[str, Any]:
    """The method's label-issues run: its settings, counts and cost, and its
    first ``limit`` likely label errors (the likeliest first), each with
    ``id``, ``given``, ``suggested``, ``margin``, ``vote_share``, ``outlier``
    and ``neighbours`` (``id``, ``class``, ``score``)."""
    return await s.run(s.insight.label_issues, method, limit)
