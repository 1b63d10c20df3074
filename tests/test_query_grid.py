"""Every search mode x every query field, through every face.

One query (by an id, by an image, by examples) in each mode, with each field
of :class:`~fmsearch.search.query.Query` set in turn, asked of the Python API
(:meth:`Searcher.search`), the CLI (``fmsearch query --json``) and the
service (``POST /api/search``; an image as a multipart upload, the
micro-batched path for plain modes). The three give the same hits, or the
same one-line refusal. And each field visibly takes effect where it is
honoured (a field silently dropped by one mode is the bug this catches):
``k`` and ``offset`` page the same ranked list, ``min_score`` cuts it,
``classes``/``exclude_classes`` change it, and ``exact`` and a quantised
mode's settings reach every store request the search makes.
"""

from __future__ import annotations

import json
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.errors import FmsearchError
from fmsearch.images.files import load_image, png_bytes

pytest.importorskip("fastapi", reason="fmsearch serve's dependencies are not installed")
from test_serve import _client as serving_client  # noqa: E402

from fmsearch.search import Query, Searcher, SearchMode  # noqa: E402
from fmsearch.serve.config import ServeConfig  # noqa: E402
from fmsearch.store import StoreSettings, open_store  # noqa: E402
from fmsearch.store.edge import EdgeStore  # noqa: E402

pytestmark = pytest.mark.slow

#: each mode as the service's JSON spells it (the CLI's flags are the same names)
MODES = {
    "plain": dict(method="pixels"),
    "int8": dict(method="pixels", quantization="int8"),
    "int8-no-rescore": dict(method="pixels", quantization="int8", rescore=False),
    "int8-oversampling-2": dict(method="pixels", quantization="int8", oversampling=2.0),
    "rrf": dict(method="pixels+siamese"),
    "dbsf-weighted": dict(method="pixels+siamese", fusion="dbsf", fusion_weights=[1.0, 2.0]),
    "rescore-with": dict(method="pixels", rescore_with="siamese", shortlist=50),
    "rerank-sift": dict(method="pixels", rerank="sift", shortlist=30),
    "expand": dict(method="siamese", expand=3),
}
#: test image 0 (an Ankle boot) by its id and as a file; train images as examples
SOURCES = {"id": dict(id=60000), "image": dict(image=True), "examples": dict(positive=[3, 5], negative=[7])}
FIELDS = ("none", "k", "offset", "min_score", "classes", "exclude_classes", "exact")


@pytest.fixture(scope="module")
def grid(serve_home, fmnist, tmp_path_factory):
    """The three faces over the same collections: the API on a copy of the
    home (its store stays open), the CLI on the home, the service on its
    serving copy; and the query image as a PNG file."""
    root = tmp_path_factory.mktemp("grid")
    shutil.copytree(serve_home, root / "api")
    image_file = root / "query.png"
    image_file.write_bytes(png_bytes(fmnist["test"].images[0]))
    store = open_store(None, home=root / "api")
    client = serving_client(ServeConfig(store_settings=StoreSettings(home=str(serve_home))))
    yield {"searcher": Searcher(store), "home": serve_home, "image": image_file, "client": client, "baselines": {}}
    client.__exit__(None, None, None)
    store.close()


@contextmanager
def store_calls():
    """Every search request the embedded store is sent meanwhile: (collection,
    exact, quantization params)."""
    calls: list[tuple[str, bool, object]] = []
    query_batch, recommend = EdgeStore.query_batch, EdgeStore.recommend

    def spy(original):
        def wrapper(self, name, *args, exact=False, quantization=None, **kwargs):
            calls.append((name, exact, quantization))
            return original(self, name, *args, exact=exact, quantization=quantization, **kwargs)

        return wrapper

    EdgeStore.query_batch, EdgeStore.recommend = spy(query_batch), spy(recommend)
    try:
        yield calls
    finally:
        EdgeStore.query_batch, EdgeStore.recommend = query_batch, recommend


def _hits(hits) -> list[tuple[int, int, float, str | None]]:
    return [(h["id"], h["rank"], round(h["score"], 5), h["class_name"]) for h in hits]


def _refusal(text: str) -> str:
    """A refusal's words as every face says them: the CLI names an argument
    by its flag (--rescore-with), the API by its name (rescore with)."""
    return text.removeprefix("Error: ").replace("--", "").replace("-", " ").replace("_", " ").lower()


def ask_api(grid, mode: dict, query: dict):
    q = {**query, "image": load_image(grid["image"]) if query.get("image") else None}
    q = {k: tuple(v) if isinstance(v, list) else v for k, v in q.items()}
    try:
        found = grid["searcher"].search(SearchMode.from_options(**mode), Query(**q))
    except FmsearchError as err:
        return "refused", _refusal(str(err))
    return "hits", _hits([vars(h) for h in found])


def _flags(mode: dict, query: dict, image: Path) -> list[str]:
    args = []
    for name, value in {**mode, **query}.items():
        flag = "--" + name.replace("_", "-")
        if name == "image":
            args.append(str(image))
        elif name == "k":
            args += ["-k", str(value)]
        elif name in ("positive", "negative"):
            args += [a for v in value for a in (flag, str(v))]
        elif name in ("classes", "exclude_classes"):
            args += [a for v in value for a in ("--class" if name == "classes" else "--exclude-class", v)]
        elif name == "fusion_weights":
            args += [flag, ",".join(f"{w:g}" for w in value)]
        elif isinstance(value, bool):
            args.append(flag if value else f"--no-{name}")
        else:
            args += [flag, repr(value) if isinstance(value, float) else str(value)]
    return args


def ask_cli(grid, mode: dict, query: dict):
    result = CliRunner().invoke(
        main, ["--home", str(grid["home"]), "query", "--json", *_flags(mode, query, grid["image"])]
    )
    if result.exit_code != 0:
        lines = result.output.strip().splitlines()
        assert result.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), result.output
        return "refused", _refusal(lines[0])
    return "hits", _hits([json.loads(line) for line in result.output.splitlines()])


def ask_service(grid, mode: dict, query: dict):
    client = grid["client"]
    if query.get("image"):  # an upload, as the page sends it: a multipart form
        fields = {k: v for k, v in {**mode, **query}.items() if k != "image"}
        data = {
            ("class" if k == "classes" else "exclude_class" if k == "exclude_classes" else k): [str(x) for x in v]
            if isinstance(v, list)
            else str(v).lower()
            if isinstance(v, bool)
            else str(v)
            for k, v in fields.items()
        }
        r = client.post("/api/search", data=data, files={"image": ("q.png", grid["image"].read_bytes(), "image/png")})
    else:
        r = client.post("/api/search", json={**mode, **query})
    if r.status_code != 200:
        assert 400 <= r.status_code < 500 and set(r.json()) == {"error"}, r.text
        return "refused", _refusal(r.json()["error"])
    return "hits", _hits(r.json()["hits"])


def _field(grid, mode_name: str, source: str, field: str) -> dict:
    """The query of one grid cell: its source and the one field set, with a
    value chosen from the baseline so that the field's effect shows."""
    query = dict(SOURCES[source])
    if field == "none":
        return query
    base = baseline(grid, mode_name, source)
    if base is None:  # a refused cell: any value
        value = {
            "k": 3,
            "offset": 2,
            "min_score": 0.5,
            "classes": ["Sneaker"],
            "exclude_classes": ["Ankle boot"],
            "exact": True,
        }[field]
    elif field == "min_score":  # between two distinct scores from the third on: the list is cut there
        i = next(i for i in range(2, len(base) - 1) if base[i][2] > base[i + 1][2])
        value = (base[i][2] + base[i + 1][2]) / 2
    elif field == "classes":  # a class other than the first hit's
        value = [next(c for c in ("Sneaker", "Sandal", "Bag") if c != base[0][3])]
    else:
        value = {"k": 3, "offset": 2, "exclude_classes": [base[0][3]], "exact": True}[field]
    return {**query, field: value, **({"k": 3} if field == "offset" else {})}


def baseline(grid, mode_name: str, source: str) -> list:
    """The API's hits of the cell without a field set (k=10)."""
    key = (mode_name, source)
    if key not in grid["baselines"]:
        outcome, hits = ask_api(grid, MODES[mode_name], dict(SOURCES[source]))
        grid["baselines"][key] = hits if outcome == "hits" else None
    return grid["baselines"][key]


def _check_effect(field: str, query: dict, base: list, hits: list) -> None:
    """The field changed the answer as it says (against the plain answer)."""
    ids = [h[0] for h in hits]
    if field == "none":
        assert len(hits) == 10
    elif field == "k":
        assert hits == base[:3]
    elif field == "offset":
        assert ids == [h[0] for h in base[2:5]] and [h[1] for h in hits] == [3, 4, 5]
    elif field == "min_score":
        assert ids == [h[0] for h in base if h[2] >= query["min_score"]] and len(hits) < len(base)
    elif field == "classes":
        assert hits and {h[3] for h in hits} == set(query["classes"]) != {h[3] for h in base}
    elif field == "exclude_classes":
        assert hits and query["exclude_classes"][0] not in {h[3] for h in hits}


def _check_store_calls(field: str, mode: dict, calls: list) -> None:
    """``exact`` and a quantised mode's settings reached every search request
    on the searched collections (the SIFT stage scores fixed ids)."""
    searched = [c for c in calls if not c[0].endswith("_sift")]
    assert searched
    if field == "exact":
        assert all(exact for _, exact, _ in searched), searched
    mode_value = SearchMode.from_options(**mode)
    if mode_value.quantization != "none":
        on_quantised = [q for name, _, q in searched if name.endswith("_int8")]
        assert on_quantised and all(q == mode_value.quantization_params for q in on_quantised)


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("mode_name", MODES)
def test_every_face_answers_every_mode_and_field_alike(grid, mode_name, source, field):
    mode = MODES[mode_name]
    query = _field(grid, mode_name, source, field)
    answers = {}
    for face, ask in (("api", ask_api), ("cli", ask_cli), ("service", ask_service)):
        with store_calls() as calls:
            answers[face] = ask(grid, mode, query)
        if answers[face][0] == "hits":
            _check_store_calls(field, mode, calls)
    assert answers["cli"] == answers["api"] and answers["service"] == answers["api"], answers
    outcome, found = answers["api"]
    recommend_only_refusals = {"rrf", "dbsf-weighted", "rescore-with", "rerank-sift", "expand"}
    assert (outcome == "refused") == (source == "examples" and mode_name in recommend_only_refusals), found
    if outcome == "refused":
        assert "recommend query" in found
    else:
        _check_effect(field, query, baseline(grid, mode_name, source), found)
