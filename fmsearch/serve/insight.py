"""What ``fmsearch map``, ``fmsearch duplicates`` and ``fmsearch
label-issues`` wrote, served as they are: the service reads their files from
its insight folder (``--insight``, default eval-results) and never computes
them itself (a map of 60,000 images takes minutes)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from fmsearch.errors import ResultNotFoundError
from fmsearch.models.registry import check_method, method_names

#: the duplicates run served for a method: the first of these splits that was run
SPLITS = ("all", "train", "test")
#: groups sent to the page at most (label conflicts come first in the file)
MAX_GROUPS = 200
#: likely label errors sent to the page at most (the likeliest first in the file)
MAX_SUSPECTS = 200


class Insight:
    """The map and duplicates files under one folder, read when asked and
    kept until the file changes."""

    def __init__(self, directory: str) -> None:
        self.directory = Path(directory)
        self._cache: dict[Path, tuple[float, Any]] = {}
        self._lock = threading.Lock()

    def _read(self, path: Path, parse):
        stamp = path.stat().st_mtime
        with self._lock:
            cached = self._cache.get(path)
        if cached and cached[0] == stamp:
            return cached[1]
        value = parse(path.read_bytes())
        with self._lock:
            self._cache[path] = (stamp, value)
        return value

    def _run(self, task: str, method: str) -> Path | None:
        """The file of the method's run of ``task`` (duplicates,
        label-issues) over FMNIST: the first split in SPLITS that was run."""
        file = f"{task.replace('-', '_')}.json"
        return next((p for s in SPLITS if (p := self.directory / f"{task}-{method}-{s}" / file).is_file()), None)

    def available(self) -> dict[str, list[str]]:
        """The methods with a map, a duplicates run and a label-issues run."""
        names = method_names()
        maps = [m for m in names if (self.directory / f"map-{m}" / "map.json").is_file()]
        return {
            "maps": maps,
            "duplicates": [m for m in names if self._run("duplicates", m)],
            "label_issues": [m for m in names if self._run("label-issues", m)],
        }

    def map_json(self, method: str) -> bytes:
        """The method's map.json, as written."""
        path = self.directory / f"map-{check_method(method)}" / "map.json"
        if not path.is_file():
            raise ResultNotFoundError(
                f"no map of {method} here: make one with `fmsearch map --method {method}` "
                "and serve its folder (--insight)"
            )
        return self._read(path, bytes)

    def duplicates(self, method: str, limit: int = MAX_GROUPS) -> dict[str, Any]:
        """The method's duplicates run: its figures and its first ``limit``
        groups (label conflicts first), without the pair lists."""
        path = self._run("duplicates", check_method(method))
        if path is None:
            raise ResultNotFoundError(
                f"no duplicates run of {method} here: make one with `fmsearch duplicates "
                f"--method {method}` and serve its folder (--insight)"
            )
        data = self._read(path, json.loads)
        groups = [{k: v for k, v in g.items() if k != "pairs"} for g in data["groups"][:limit]]
        return {
            "method": method,
            "date": data["date"],
            "collection": data["collection"],
            "settings": data["settings"],
            "summary": data["summary"],
            "cost": data["cost"],
            "groups_total": len(data["groups"]),
            "groups": groups,
        }

    def label_issues(self, method: str, limit: int = MAX_SUSPECTS) -> dict[str, Any]:
        """The method's label-issues run: its figures and its first ``limit``
        likely label errors (the likeliest first: the flagged ones, then the
        next by margin), each with its neighbours."""
        path = self._run("label-issues", check_method(method))
        if path is None:
            raise ResultNotFoundError(
                f"no label-issues run of {method} here: make one with `fmsearch label-issues "
                f"--method {method}` and serve its folder (--insight)"
            )
        data = self._read(path, json.loads)
        return {
            "method": method,
            "date": data["date"],
            "collection": data["collection"],
            "scope": data["scope"],
            "pool": data["pool"],
            "settings": data["settings"],
            "summary": {k: v for k, v in data["summary"].items() if k != "per_class"},
            "cost": data["cost"],
            "suspects_total": len(data["suspects"]),
            "suspects": data["suspects"][:limit],
        }
