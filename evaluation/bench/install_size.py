"""What an install of fmsearch weighs: the distributions its requirements
pull in (with or without an extra), and their files' bytes, read from the
metadata of the environment this runs in."""

from __future__ import annotations

import os
import re
from importlib import metadata

from packaging.requirements import Requirement


def _name(dist_name: str) -> str:
    return re.sub(r"[-_.]+", "-", dist_name).lower()


def closure(extras: tuple[str, ...] = ()) -> tuple[set[str], set[str]]:
    """fmsearch and every distribution its requirements pull in, with
    ``extras``: those installed here, and those required but not installed
    (which cannot be weighed)."""
    seen: set[str] = set()
    missing: set[str] = set()
    todo = [("fmsearch", set(extras))]
    while todo:
        name, wanted = todo.pop()
        if _name(name) in seen or _name(name) in missing:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            missing.add(_name(name))
            continue
        seen.add(_name(name))
        for text in dist.requires or ():
            req = Requirement(text)
            markers = [{"extra": e} for e in wanted] or [{"extra": ""}]
            if req.marker is None or any(req.marker.evaluate(m) for m in markers):
                todo.append((req.name, set(req.extras)))
    return seen, missing


def dist_bytes(name: str) -> int:
    """Bytes of a distribution's installed files (its RECORD)."""
    dist = metadata.distribution(name)
    total = 0
    for f in dist.files or ():
        try:
            total += os.stat(f.locate()).st_size
        except OSError:
            pass
    return total


def install_size(extras: tuple[str, ...] = ()) -> tuple[dict[str, int], list[str]]:
    """Bytes per distribution of an install with ``extras``, largest first,
    and the required distributions not installed here (not counted)."""
    found, missing = closure(extras)
    sizes = {name: dist_bytes(name) for name in found}
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1])), sorted(missing)
