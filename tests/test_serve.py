"""`fmsearch serve`: the API through the framework's test client, a real
server process, concurrency, and the published contract fuzzed."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import shutil
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image
from serving import Server as _Server

from fmsearch.cli import main
from fmsearch.errors import InvalidArgumentError
from fmsearch.images.files import png_bytes
from fmsearch.store import StoreSettings

fastapi = pytest.importorskip("fastapi", reason="fmsearch serve's dependencies are not installed")
from fastapi.testclient import TestClient  # noqa: E402

from fmsearch.serve.app import create_app  # noqa: E402
from fmsearch.serve.config import ServeConfig  # noqa: E402

KEY = "s3cret-serve-key"


def _client(config: ServeConfig):
    client = TestClient(create_app(config))
    client.__enter__()
    headers = {"X-API-Key": config.api_key} if config.api_key else {}
    deadline = time.monotonic() + 60
    while client.get("/api/health", headers=headers).status_code != 200:
        assert time.monotonic() < deadline, client.get("/api/health", headers=headers).json()
        time.sleep(0.05)
    return client


@pytest.fixture(scope="module")
def client(serve_home):
    c = _client(ServeConfig(store_settings=StoreSettings(home=serve_home)))
    yield c
    c.__exit__(None, None, None)


def _png(image: np.ndarray) -> bytes:
    return png_bytes(image)


def _search(client, **body):
    r = client.post("/api/search", json=body)
    assert r.status_code == 200, r.text
    return r.json()


# -- every endpoint ----------------------------------------------------------------


def test_health_collections_classes(client, serve_home):
    health = client.get("/api/health").json()
    assert health["status"] == "ready" and health["methods"] == ["pixels", "siamese"] and health["rerank"]
    assert "not ingested" in health["skipped"]["autoencoder"]
    names = [c["collection"] for c in client.get("/api/collections").json()]
    assert names == ["fmnist_pixels", "fmnist_pixels_int8", "fmnist_siamese", "fmnist_sift"]
    assert client.get("/api/classes").json()[7] == {"label": 7, "name": "Sneaker"}


def test_search_by_upload_and_by_id_with_class_filters(client, fmnist):
    image = fmnist["test"].images[0]
    files = {"image": ("q.png", _png(image), "image/png")}
    r = client.post("/api/search", files=files, data={"method": "pixels", "k": "5", "class": ["Sneaker", "Sandal"]})
    assert r.status_code == 200, r.text
    body = r.json()
    assert len(body["hits"]) == 5 and {h["class_name"] for h in body["hits"]} <= {"Sneaker", "Sandal"}
    assert body["query"]["by"] == "image" and body["query"]["batched"] is True
    assert set(body["timings_ms"]) == {"decode", "embed", "search", "rerank", "total"}
    by_json = _search(
        client, image=base64.b64encode(_png(image)).decode(), method="pixels", k=5, classes=["Sneaker", "Sandal"]
    )
    assert [h["id"] for h in by_json["hits"]] == [h["id"] for h in body["hits"]]
    by_id = _search(client, id=3, method="siamese", k=4, exclude_classes=["Trouser"])
    assert len(by_id["hits"]) == 4 and 3 not in [h["id"] for h in by_id["hits"]]
    assert all(h["class_name"] != "Trouser" and h["image_url"] == f"/api/images/{h['id']}.png" for h in by_id["hits"])


def test_the_answer_says_how_the_store_searched(client, fmnist):
    """Each answer's ``plan``: the filter-aware default's strategy per
    collection searched, batched or not; a fusion has one per method."""
    image = fmnist["test"].images[0]
    files = {"image": ("q.png", _png(image), "image/png")}
    batched = client.post("/api/search", files=files, data={"method": "pixels", "class": ["Bag"]}).json()
    assert batched["query"]["batched"] and len(batched["plan"]) == 1
    assert batched["plan"][0].startswith("scan of the filtered points: filter keeps ~"), batched["plan"]
    by_id = _search(client, id=60000, method="siamese")  # only the query itself left out: 300 points, cheap to scan
    assert by_id["plan"] == ["scan of the filtered points: filter keeps ~300 points (100.0% of 300)"]
    unfiltered = _search(client, image=base64.b64encode(_png(image)).decode(), method="siamese", k=3)
    assert unfiltered["plan"] == ["graph at ef 128 (no filter)"]
    fused = _search(client, id=60000, method="pixels+siamese", fusion="rrf", classes=["Bag"])
    assert len(fused["plan"]) == 2 and all(p.startswith("scan") for p in fused["plan"])
    liked = _search(client, positive=[60000], method="siamese")
    assert len(liked["plan"]) == 1 and "as asked" not in liked["plan"][0]


@pytest.mark.parametrize(
    "mode, check",
    [
        (dict(method="pixels+siamese", fusion="rrf", fusion_weights=[1, 2]), "method_ranks"),
        (dict(method="pixels", rescore_with="siamese", shortlist=50), "first_score"),
        (dict(method="pixels", rerank="sift", shortlist=30, rerank_mode="maxsim"), "rerank_score"),
        (dict(method="pixels", quantization="int8", oversampling=2), None),
        (dict(method="siamese", expand=3), None),
        (dict(method="pixels+siamese", expand=2), "method_ranks"),
        (dict(method="siamese", positive=[3, 5], negative=[7]), None),
    ],
)
def test_every_mode_gives_what_the_library_gives(client, serve_home, fmnist, mode, check):
    """The service's hits for each mode are the Searcher's (the CLI's path)."""
    from fmsearch.search import Searcher
    from fmsearch.serve.schemas import SearchRequest
    from fmsearch.serve.service import mode_of
    from fmsearch.store import open_store

    body = _search(client, id=60001, k=5, **mode) if "positive" not in mode else _search(client, k=5, **mode)
    assert len(body["hits"]) == 5
    if check:
        assert all(h[check] is not None for h in body["hits"])
    with open_store(None, home=serve_home) as store:
        s = Searcher(store)
        if "positive" in mode:
            expected = s.recommend("siamese", [3, 5], [7], k=5)
        else:
            expected = s.search(mode_of(SearchRequest(**mode), "siamese"), id=60001, k=5)
    assert [h["id"] for h in body["hits"]] == [h.id for h in expected]


def test_pagination_is_stable_and_min_score_cuts(client, fmnist):
    image = base64.b64encode(_png(fmnist["test"].images[9])).decode()
    for method in ("siamese", "pixels+siamese"):
        whole = _search(client, image=image, method=method, k=20)["hits"]
        page1 = _search(client, image=image, method=method, k=10)["hits"]
        page2 = _search(client, image=image, method=method, k=10, offset=10)["hits"]
        assert not {h["id"] for h in page1} & {h["id"] for h in page2}
        assert [h["id"] for h in page2] == [h["id"] for h in whole[10:]] and page2[0]["rank"] == 11
    cut = whole[4]["score"]
    kept = _search(client, image=image, method="pixels+siamese", k=20, min_score=cut)["hits"]
    assert [h["id"] for h in kept] == [h["id"] for h in whole[:5]]


def test_image_endpoint_is_cacheable(client, fmnist):
    r = client.get("/api/images/60003.png")  # a test image: from the data files
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    with Image.open(io.BytesIO(r.content)) as img:
        assert np.array_equal(np.asarray(img), fmnist["test"].images[3])
    assert "immutable" in r.headers["cache-control"]
    again = client.get("/api/images/60003.png", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    stored = client.get("/api/images/3.png")  # a gallery image: from the payload
    with Image.open(io.BytesIO(stored.content)) as img:
        assert np.array_equal(np.asarray(img), fmnist["train"].images[3])


def test_compare_matches_the_cli(client, home):
    body = client.post("/api/compare", json={"a": 60000, "b": 60001}).json()
    cli = json.loads(CliRunner().invoke(main, ["compare", "60000", "60001", "--json"]).output)
    assert {k: body[k] for k in ("keypoints_a", "keypoints_b", "good_matches", "lowe_score", "maxsim_score")} == {
        k: cli[k] for k in ("keypoints_a", "keypoints_b", "good_matches", "lowe_score", "maxsim_score")
    }
    drawing = client.get(body["drawing_url"])
    assert drawing.status_code == 200 and drawing.content.startswith(b"\x89PNG")


def test_metrics_count_requests(client, fmnist):
    before = _count(client.get("/metrics").text, 'endpoint="/api/classes"')
    client.get("/api/classes")
    client.get("/api/classes")
    searches = _count(client.get("/metrics").text, 'endpoint="/api/search",method="pixels",status="200"')
    upload = {"image": ("q.png", _png(fmnist["test"].images[0]), "image/png")}
    assert client.post("/api/search", files=upload, data={"method": "pixels"}).json()["query"]["batched"]
    for junk in ("x1", "x2", "x3"):  # a method nobody serves is refused and never becomes a label
        assert client.post("/api/search", json={"id": 3, "method": junk}).status_code == 400
    text = client.get("/metrics").text
    assert _count(text, 'endpoint="/api/classes"') == before + 2
    assert _count(text, 'endpoint="/api/search",method="pixels",status="200"') == searches + 1
    assert 'method="x1"' not in text and _count(text, 'endpoint="/api/search",method="-",status="400"') >= 3
    batches = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith('fmsearch_embed_batch_size_count{method="pixels"}')
    ]
    assert "fmsearch_request_seconds_bucket" in text and batches and batches[0] >= 1


def _count(text: str, label: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("fmsearch_requests_total{") and label in line
    )


# -- bad requests: 4xx, one line --------------------------------------------------------

BOUNDARY = "test-boundary-42"


def _form(*fields: tuple[str, str], image: bytes | None = None) -> bytes:
    """A multipart body written out by hand (fields may repeat)."""
    body = b"".join(
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode() for k, v in fields
    )
    if image is not None:
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n\r\n'.encode()
            + image
            + b"\r\n"
        )
    return body + f"--{BOUNDARY}--\r\n".encode()


#: a DDS header whose pixel format Pillow does not know
DDS = (
    b"DDS "
    + struct.pack("<7I44s", 124, 0x1007, 32, 32, 0, 0, 0, b"\0" * 44)
    + struct.pack("<8I", 32, 0x40000000, 0, 0, 0, 0, 0, 0)
    + struct.pack("<5I", 0x1000, 0, 0, 0, 0)
    + b"\0" * 4096
)

BAD = [
    (dict(json={"id": 1, "method": "nope"}), 400, "unknown method 'nope'"),
    (dict(json={"id": 1, "method": "autoencoder"}), 400, "autoencoder is not served: not ingested"),
    (dict(json={"id": 1, "method": "pixels", "classes": ["Hat"]}), 400, "unknown class 'Hat'"),
    (dict(json={"id": 70000, "method": "pixels"}), 400, "point id 70000 is out of range; valid ids: 0-59999"),
    (dict(json={"id": 1, "method": "pixels", "k": 0}), 422, "k: Input should be greater than or equal to 1"),
    (dict(json={"id": 1, "method": "pixels", "k": "many"}), 422, "k: Input should be a valid integer"),
    (dict(json={"method": "pixels"}), 400, "give exactly one of: an image, id, or positive examples"),
    (dict(json={"image": "!!!", "method": "pixels"}), 400, "image: not base64"),
    (
        dict(json={"image": base64.b64encode(b"not an image").decode(), "method": "pixels"}),
        400,
        "image: not an image file",
    ),
    (
        dict(files={"image": ("x.png", b"not an image", "image/png")}, data={"method": "pixels"}),
        400,
        "image: not an image file",
    ),
    (dict(json={"id": 1, "method": "pixels", "rescore_with": "pixels"}), 400, "is the method itself"),
    (dict(json={"id": 1, "method": "pixels+siamese", "rescore_with": "siamese"}), 400, "applies to a single method"),
    (dict(json={"id": 1, "method": "pixels", "quantization": "binary"}), 400, "binary quantisation is not offered"),
    (dict(json={"id": 1, "method": "pixels", "oversampling": 2}), 400, "apply to a quantization"),
    (dict(json={"id": 1, "method": "pixels", "rerank": "sift", "k": 50, "shortlist": 20}), 400, "shortlist"),
    (dict(json={"id": 1, "method": "pixels", "positive": [3]}), 400, "give exactly one of: an image, id, or positive"),
    (
        dict(json={"method": "pixels", "positive": [3], "expand": 2}),
        400,
        "expand does not apply to a recommend query (positive/negative examples)",
    ),
    (dict(json={"id": 1, "method": "pixels", "expand": 101}), 422, "expand: Input should be less than or equal to 100"),
    (dict(json={"id": 1, "method": "pixels", "fusion": "dbsf"}), 400, "fusion applies to methods joined by + only"),
    (dict(json={"id": 1, "method": "pixels", "rerank_mode": "lowe"}), 400, "rerank mode applies to a rerank only"),
    (dict(json={"id": 1, "method": "pixels", "colour": "red"}), 422, "colour: Extra inputs are not permitted"),
    (dict(content=b"{", headers={"content-type": "application/json"}), 400, "the body is not JSON"),
    (dict(content=b"id=1", headers={"content-type": "text/plain"}), 415, "send application/json or multipart"),
    (dict(json={"id": 1, "method": "pixels", "rerank_mode": "AAA"}), 422, "rerank_mode: Input should be"),
    (dict(json={"id": 1, "method": "pixels", "k": 1.5}), 422, "k: Input should be a valid integer"),
    # a form's values are text, read as their JSON types strictly: nothing is coerced
    (dict(content=_form(("id", "1"), ("method", "pixels"), ("k", "1.5"))), 422, "k: Input should be"),
    (
        dict(content=_form(("id", "1")).replace(b'name="id"', b'name="id"; filename="a.txt"')),
        400,
        "a file in field 'id'",
    ),
    (dict(content=_form(("id", "1"), ("method", "pixels"), ("exact", "yes"))), 422, "exact: Input should be"),
    (dict(content=_form(("id", "1"), ("k", "2"), ("k", "3"))), 400, "field 'k' is given twice"),
    (dict(content=_form(("id", "1"))[:-20]), 400, "truncated"),
    (
        dict(content=b"--other\r\n\r\nx", headers={"content-type": f"multipart/form-data; boundary={BOUNDARY}"}),
        400,
        "the multipart form is malformed: Invalid multipart data",
    ),
    (
        dict(content=b"x", headers={"content-type": "multipart/form-data"}),
        400,
        "the multipart form is malformed: Missing boundary",
    ),
    (dict(content=_form(("method", "pixels"), image=b"")), 400, "image: file is empty"),
    # what a fuzzer found: nesting deeper than a parser's stack, a number too long for int(), a decoder
    # that raises something else than its documented errors (Pillow's DDS plugin: NotImplementedError)
    (dict(content=b"[" * 100_000, headers={"content-type": "application/json"}), 400, "the body is not JSON"),
    (dict(content=_form(("id", "1"), ("method", "pixels"), ("k", "1" * 5000))), 422, "k: Input should be"),
    (
        dict(files={"image": ("x.dds", DDS, "image/x-dds")}, data={"method": "pixels"}),
        400,
        "image: unreadable image (NotImplementedError",
    ),
    (
        dict(content=b'{"id": 1, "method": "pixels", "min_score": NaN}', headers={"content-type": "application/json"}),
        400,
        "the body is not JSON",
    ),
    (
        dict(content=_form(("id", "1"), ("method", "pixels"), ("min_score", "1e999"))),
        422,
        "min_score: Input should be a finite number",
    ),
    (
        dict(json={"id": 1, "method": "pixels", "k": 1000, "offset": 1}),
        422,
        "offset must be between 0 and 0 for k=1000",
    ),
    (dict(json={"method": "pixels", "positive": [1] * 65}), 422, "positive: List should have at most 64 items"),
]


@pytest.mark.parametrize("request_, status, message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_get_4xx_and_one_line(client, request_, status, message):
    if "content" in request_ and "headers" not in request_:
        request_ = {**request_, "headers": {"content-type": f"multipart/form-data; boundary={BOUNDARY}"}}
    r = client.post("/api/search", **request_)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and message in body["error"] and "\n" not in body["error"]


def test_bad_ids_elsewhere(client):
    for path, status in (
        ("/api/images/70000.png", 400),
        ("/api/images/x.png", 422),
        ("/api/nothing", 404),
        ("/api/items/70000", 400),
        ("/api/images/9007199254740992.png", 422),
    ):
        r = client.get(path)
        assert r.status_code == status and set(r.json()) == {"error"}, (path, r.text)
    assert "point id 70000 is out of range" in client.get("/api/images/70000.png").json()["error"]
    r = client.post("/api/compare", json={"a": 1, "b": "!!"})
    assert r.status_code == 400 and "b: not base64" in r.json()["error"]


def test_a_server_error_is_logged_and_answered_without_details(serve_home, caplog):
    """500 {"error": "internal error"} on the search route and every other; the
    traceback goes to the log, the details never to the client; a wrong verb is a 405 in JSON."""
    from fmsearch.serve.service import SearchService

    class Broken(SearchService):
        def search(self, *args, **kwargs):
            raise RuntimeError("secret detail one")

        def collections(self):
            raise RuntimeError("secret detail two")

    config = ServeConfig(store_settings=StoreSettings(home=serve_home))
    c = TestClient(create_app(config, Broken(config)), raise_server_exceptions=False)
    c.__enter__()
    try:
        while c.get("/api/health").status_code != 200:
            time.sleep(0.05)
        with caplog.at_level(logging.ERROR):
            for r in (c.post("/api/search", json={"id": 3, "method": "pixels"}), c.get("/api/collections")):
                assert r.status_code == 500 and r.json() == {"error": "internal error"}
        assert "secret detail one" in caplog.text and "secret detail two" in caplog.text
        assert "Traceback" in caplog.text or any(rec.exc_info for rec in caplog.records)
        r = c.get("/api/search")
        assert r.status_code == 405 and set(r.json()) == {"error"}
    finally:
        c.__exit__(None, None, None)


def test_serve_hnsw_ef_and_acorn_reach_the_store(serve_home, monkeypatch):
    """fmsearch serve --hnsw-ef and --acorn: every search the service makes uses them."""
    from fmsearch.store.edge import EdgeStore

    seen, query_batch = [], EdgeStore.query_batch
    monkeypatch.setattr(
        EdgeStore,
        "query_batch",
        lambda self, *a, **kw: seen.append((kw.get("hnsw_ef"), kw.get("acorn"))) or query_batch(self, *a, **kw),
    )
    c = _client(ServeConfig(store_settings=StoreSettings(home=serve_home), hnsw_ef=700, acorn=True))
    try:
        seen.clear()
        body = _search(c, id=60000, method="pixels", classes=["Bag"])
        assert seen and set(seen) == {(700, True)}, seen
        assert body["plan"][0].startswith("as asked at ef 700 + ACORN"), body["plan"]
    finally:
        c.__exit__(None, None, None)
    with pytest.raises(InvalidArgumentError, match="hnsw ef must be 1-100000"):
        ServeConfig(hnsw_ef=0)


def test_serve_prefer_grpc_reaches_the_store_the_service_opens(serve_home, monkeypatch):
    """fmsearch --prefer-grpc serve: the command's check and the service's
    load both open the server with gRPC (the service used to drop it). The
    server backend is stood in for by the embedded home, recording how it was asked."""
    import fmsearch.serve.run
    import fmsearch.store.server
    from fmsearch.serve.service import SearchService
    from fmsearch.store.edge import EdgeStore

    opened, configs = [], []
    monkeypatch.setattr(
        fmsearch.store.server,
        "ServerStore",
        lambda url, **kw: opened.append((url, kw.get("prefer_grpc"))) or EdgeStore(serve_home),
    )
    monkeypatch.setattr(fmsearch.serve.run, "serve", lambda config, *a, **kw: configs.append(config))
    url = "http://127.0.0.1:9"
    result = CliRunner().invoke(
        main, ["--qdrant-url", url, "--prefer-grpc", "serve", "--methods", "pixels", "--port", "0"]
    )
    assert result.exit_code == 0, result.output
    service = SearchService(configs[0])
    try:
        service.load()
        assert service.methods == ["pixels"]
    finally:
        service.close()
    assert opened == [(url, True), (url, True)]


def test_the_serve_config_round_trips_the_store_settings(monkeypatch):
    """What a worker process reads is what the command made, store settings included."""
    from fmsearch.serve.config import CONFIG_ENV

    config = ServeConfig(
        store_settings=StoreSettings(
            url="http://q:6333", api_key="k", prefer_grpc=True, retries=5, timeout=7, prefix="p_"
        ),
        methods=("pixels",),
        cors_origins=("http://a",),
        hnsw_ef=64,
    )
    monkeypatch.setenv(CONFIG_ENV, config.to_env())
    assert ServeConfig.from_env() == config
    assert ServeConfig.from_env().store_settings.prefer_grpc is True
    monkeypatch.delenv(CONFIG_ENV)
    with pytest.raises(InvalidArgumentError, match=f"{CONFIG_ENV} is not set"):
        ServeConfig.from_env()


def test_an_oversize_upload_is_answered_413(serve_home):
    """On every route that reads a body, with and without a length (the test
    client sends the body whole: that it is refused before it is read whole
    is shown on a real server, test_a_real_server_refuses_what_it_should)."""
    c = _client(ServeConfig(store_settings=StoreSettings(home=serve_home), max_upload_bytes=4096))
    try:
        r = c.post("/api/search", files={"image": ("big.png", b"x" * 100_000, "image/png")}, data={"method": "pixels"})
        assert r.status_code == 413 and "over the limit of 4,096 bytes" in r.json()["error"]

        def chunks():  # no length given: cut off once past the limit
            yield b'{"method": "pixels", "image": "'
            for _ in range(100):
                yield b"A" * 1000

        for path in ("/api/search", "/api/compare"):
            r = c.post(path, content=chunks(), headers={"content-type": "application/json"})
            assert r.status_code == 413 and "over the limit" in r.json()["error"], (path, r.text)
        r = c.post("/api/compare", content=b"{" + b" " * 5000 + b"}", headers={"content-type": "application/json"})
        assert r.status_code == 413
    finally:
        c.__exit__(None, None, None)


def test_api_key_is_required(serve_home):
    """Every /api route, the search route included (that the key is never
    logged is shown on a real server with its access log on)."""
    c = _client(ServeConfig(store_settings=StoreSettings(home=serve_home), api_key=KEY))
    try:
        assert c.get("/api/classes").status_code == 401
        assert c.get("/api/classes", headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.get("/api/classes", headers={"X-API-Key": KEY}).status_code == 200
        assert c.get("/api/classes", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        for r in (
            c.post("/api/search", json={"id": 1, "method": "pixels"}, headers={"X-API-Key": "wrong"}),
            c.post("/api/compare", json={"a": 1, "b": 2}),
            c.get("/api/images/1.png"),
        ):
            assert r.status_code == 401 and set(r.json()) == {"error"}
        contract = c.get("/openapi.json").json()  # the contract is public, and says how to send the key
        assert contract["components"]["securitySchemes"]["apiKey"]["name"] == "X-API-Key"
        assert contract["paths"]["/api/search"]["post"]["security"] == [{"apiKey": []}]
    finally:
        c.__exit__(None, None, None)


def test_a_request_past_the_timeout_is_503(serve_home):
    """On the search route and every other; the others go on being answered."""
    from fmsearch.serve.service import SearchService

    class Slow(SearchService):
        def search(self, *args, **kwargs):
            time.sleep(1)
            return super().search(*args, **kwargs)

        def compare(self, *args, **kwargs):
            time.sleep(1)
            return super().compare(*args, **kwargs)

    config = ServeConfig(store_settings=StoreSettings(home=serve_home), request_timeout_s=0.3)
    c = TestClient(create_app(config, Slow(config)))
    c.__enter__()
    try:
        while c.get("/api/health").status_code != 200:
            time.sleep(0.05)
        for r in (
            c.post("/api/search", json={"id": 3, "method": "pixels"}),
            c.post("/api/compare", json={"a": 1, "b": 2}),
        ):
            assert r.status_code == 503 and r.json() == {
                "error": "the request ran past the 0.3 s timeout and was cancelled"
            }
        assert c.get("/api/classes").status_code == 200
    finally:
        c.__exit__(None, None, None)


# -- concurrency: batching never mixes answers up --------------------------------------------


def test_concurrent_requests_get_the_answers_of_sequential_ones(client, fmnist):
    import httpx

    images = fmnist["test"].images[:50]
    requests = [
        dict(
            image=base64.b64encode(_png(images[i % 50]) if i % 37 else DDS).decode(),
            method=("pixels", "siamese")[i % 2],
            k=5,
            classes=[["Sneaker"], []][i % 3 % 2],
        )
        for i in range(200)
    ]  # every 37th an image that does not decode: its own 400, nobody else's

    def outcome(r) -> tuple[int, list[int] | str]:
        return (r.status_code, [h["id"] for h in r.json()["hits"]] if r.status_code == 200 else r.json()["error"])

    expected = [outcome(client.post("/api/search", json=r)) for r in requests]
    assert sum(status == 400 for status, _ in expected) == 6

    def batches() -> tuple[float, float]:
        lines = client.get("/metrics").text.splitlines()
        return tuple(
            sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(f"fmsearch_embed_batch_size_{part}"))
            for part in ("count", "sum")
        )

    count0, sum0 = batches()

    async def all_at_once():
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            return await asyncio.gather(*(ac.post("/api/search", json=r) for r in requests))

    assert [outcome(r) for r in asyncio.run(all_at_once())] == expected
    count, total = batches()
    assert total - sum0 == 200 and count - count0 < 100  # every request batched, most of them with others


def test_one_bad_item_fails_only_its_own_answer_in_a_batch(client, fmnist, monkeypatch):
    """A batch request refused because of one item (here the store refuses
    any request holding a filter on label 99) is run again item by item: the
    others get their hits, paged as their own queries say."""
    from fmsearch.search.mode import SearchMode
    from fmsearch.search.query import Query
    from fmsearch.serve.service import PlainSearch
    from fmsearch.store import QueryFilter

    service = client.app.state.serving.service
    store, query_batch = service.searcher.store, service.searcher.store.query_batch

    def refusing(name, vectors, limit, flt=None, **params):
        if any(f is not None and f.labels == (99,) for f in (flt if isinstance(flt, list) else [flt])):
            raise InvalidArgumentError("no label 99")
        return query_batch(name, vectors, limit, flt, **params)

    monkeypatch.setattr(store, "query_batch", refusing)
    image = fmnist["test"].images[0]
    items = [
        PlainSearch(Query(image=lambda: image, k=5), QueryFilter()),
        PlainSearch(Query(image=lambda: image, k=5), QueryFilter(labels=(99,))),
        PlainSearch(Query(image=lambda: image, k=3, offset=2), QueryFilter()),
    ]
    answers = service.search_batch(SearchMode("pixels"), False, items, {})
    assert isinstance(answers[1], InvalidArgumentError) and "no label 99" in str(answers[1])
    assert [len(a) for a in (answers[0], answers[2])] == [5, 3]
    assert [h.id for h in answers[2]] == [h.id for h in answers[0]][2:5] and answers[2][0].rank == 3
    alone = service.search_batch(SearchMode("pixels"), False, [items[0]], {})[0]
    assert [h.id for h in answers[0]] == [h.id for h in alone]


def test_the_rerank_and_missing_collections_are_worded_for_the_service(serve_home, tmp_path):
    """Without fmnist_sift a rerank is refused as not served (400); a collection the
    serving copy lacks is named without where the copy lives."""
    from fmsearch.errors import CollectionNotFoundError
    from fmsearch.serve.errors import error_answer

    home = tmp_path / "home"
    shutil.copytree(serve_home, home, ignore=shutil.ignore_patterns("fmnist_sift"))
    c = _client(ServeConfig(store_settings=StoreSettings(home=home)))
    try:
        assert c.get("/api/health").json()["rerank"] is False
        r = c.post("/api/search", json={"id": 1, "method": "pixels", "rerank": "sift"})
        assert r.status_code == 400 and r.json()["error"].startswith("the sift rerank is not served")
    finally:
        c.__exit__(None, None, None)
    err = CollectionNotFoundError("collection fmnist_x not found in embedded:/tmp/secret", collection="fmnist_x")
    answer = error_answer(err, 30)
    assert answer.status_code == 404 and b"/tmp" not in answer.body and b"fmnist_x" in answer.body


def test_serve_refuses_at_once_what_would_fail(serve_home, tmp_path):
    """One line, exit 1, nothing started: no wanted method ingested, a rerank stage as a
    method, an unknown method, an address that is taken or unknown."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for args, message in (
            (
                ["--home", str(tmp_path / "empty"), "serve"],
                "nothing to serve: pixels, autoencoder, siamese, proxy, distilled, ensemble, resnet101 "
                "are not ingested",
            ),
            (
                ["--home", str(serve_home), "serve", "--methods", "autoencoder"],
                "nothing to serve: autoencoder is not ingested",
            ),
            (["--home", str(serve_home), "serve", "--methods", "sift"], "sift is a rerank stage, not a search method"),
            (["--home", str(serve_home), "serve", "--methods", "nope"], "unknown method 'nope'"),
            (
                ["--home", str(serve_home), "serve", "--port", str(port)],
                f"cannot listen on 127.0.0.1:{port}: Address already in use",
            ),
            (["--home", str(serve_home), "serve", "--host", "nosuch.invalid"], "cannot listen on nosuch.invalid:8000"),
        ):
            result = CliRunner().invoke(main, args)
            assert result.exit_code == 1 and message in result.output, result.output
            assert result.output.count("\n") == 1 and "Traceback" not in result.output


# -- a real server process ---------------------------------------------------------------------


def _example():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / "search_client.py"
    spec = importlib.util.spec_from_file_location("search_client", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
@pytest.mark.parametrize("server, workers", [("granian", 1), ("granian", 2), ("uvicorn", 1), ("uvicorn", 2)])
def test_a_real_server_answers_and_stops_cleanly(serve_home, fmnist, tmp_path, server, workers):
    """Start, ready, search (the example client too), SIGTERM: exit 0, every
    worker's serving copy removed, and the store opens again at once (no
    stale lock)."""
    import httpx

    from fmsearch.store.edge import EdgeStore

    copies = tmp_path / "tmp"
    copies.mkdir()
    server = _Server(serve_home, "--workers", str(workers), "--server", server, tmp=copies)
    try:
        server.wait_ready(workers)
        assert len(list(copies.glob("fmsearch-serve-*"))) == workers  # one serving copy per worker
        Image.fromarray(fmnist["test"].images[0]).resize((280, 280)).save(tmp_path / "q.png")
        with open(tmp_path / "q.png", "rb") as f:
            r = httpx.post(
                f"{server.url}/api/search",
                files={"image": ("q.png", f)},
                data={"method": "siamese", "k": "5", "class": ["Ankle boot"]},
                timeout=30,
            )
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert len(hits) == 5 and {h["class_name"] for h in hits} == {"Ankle boot"}
        example = _example().search_by_image(server.url, tmp_path / "q.png", "siamese", 5, ["Ankle boot"])
        assert [h["id"] for h in example] == [h["id"] for h in hits]
        assert httpx.get(f"{server.url}/openapi.json").json()["paths"].keys() >= {"/api/search", "/api/health"}
    finally:
        code, log = server.stop()
    assert code == 0, log[-3000:]
    assert log.count("loaded siamese (onnx)") == workers and "Traceback" not in log
    assert not list(copies.glob("fmsearch-serve-*"))
    with EdgeStore(serve_home, lock_timeout=0) as store:  # would fail at once if a lock were left held
        assert store.info("fmnist_siamese").points == 300


def test_the_app_takes_no_request_before_its_service_has_loaded(serve_home):
    """Start-up is atomic: the service loads in the application's start-up, which a server finishes
    before it accepts a connection, so the first request meets a loaded service (until 2026-12-06 the
    load ran beside a started application, whose health answered 503 meanwhile)."""
    from fmsearch.serve.service import SearchService

    class Slow(SearchService):
        def load(self) -> None:
            time.sleep(1)
            super().load()

    config = ServeConfig(store_settings=StoreSettings(home=serve_home))
    with TestClient(create_app(config, Slow(config))) as c:
        r = c.get("/api/health")
        assert r.status_code == 200 and r.json()["status"] == "ready", r.text
        assert c.post("/api/search", json={"id": 3, "method": "pixels"}).status_code == 200


@pytest.mark.slow
@pytest.mark.parametrize("server", ["granian", "uvicorn"])
def test_after_the_first_ready_no_request_meets_a_loading_worker(serve_home, tmp_path, server):
    """Start-up is atomic: with two workers, from the first 200 of /api/health on, 16 clients (each
    request on a new connection, so that both workers' accept loops get them) never get a 503."""
    import concurrent.futures

    import httpx

    server_ = _Server(serve_home, "--workers", "2", "--server", server, tmp=tmp_path)
    statuses: list[int] = []
    try:
        deadline = time.monotonic() + 90
        while True:
            assert server_.proc.poll() is None and time.monotonic() < deadline, "the server did not start"
            try:
                if httpx.get(f"{server_.url}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.01)

        def drive() -> list[int]:
            seen, end = [], time.monotonic() + 3
            while time.monotonic() < end:
                seen.append(httpx.get(f"{server_.url}/api/health", timeout=10).status_code)
            return seen

        with concurrent.futures.ThreadPoolExecutor(16) as pool:
            for seen in pool.map(lambda _: drive(), range(16)):
                statuses += seen
    finally:
        server_.stop()
    assert len(statuses) >= 32 and statuses.count(503) == 0, (statuses.count(503), len(statuses))
    assert set(statuses) == {200}


def _raw(port: int, head: bytes, body_parts, read_after: int = 1) -> bytes:
    """Send a request's head and then its body parts over a plain socket,
    stopping once the server has answered; the answer's first bytes."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sock.settimeout(0.05)
        answer = b""
        for part in body_parts:
            try:
                answer += sock.recv(65536)
            except (TimeoutError, BlockingIOError):
                pass
            if answer:
                break
            try:
                sock.sendall(part)
            except (BrokenPipeError, ConnectionResetError):
                break
        sock.settimeout(10)
        try:
            while b"\r\n\r\n" not in answer:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer


@pytest.mark.slow
def test_a_real_server_refuses_what_it_should(serve_home, tmp_path):
    """With an API key and the access log on: a request without the key or
    with a wrong one is 401, and the key is in no line the server writes;
    an oversize upload is answered 413 long before its body has been sent
    (with a length: at once; chunked, on any route: once past the limit)."""
    import httpx

    limit = 1 << 20
    server = _Server(serve_home, "--api-key", KEY, "--access-log", "--max-upload", str(limit))
    try:
        server.wait_ready_with({"X-API-Key": KEY})
        assert httpx.get(f"{server.url}/api/classes").status_code == 401
        assert httpx.get(f"{server.url}/api/classes", headers={"X-API-Key": "wrong-" + KEY}).status_code == 401
        assert httpx.get(f"{server.url}/api/classes", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
        ok = httpx.post(
            f"{server.url}/api/search", json={"id": 1, "method": "pixels", "k": 3}, headers={"X-API-Key": KEY}
        )
        assert ok.status_code == 200, ok.text
        auth = f"X-API-Key: {KEY}\r\n".encode()
        hundred_mb = 100 * limit
        head = (
            (
                f"POST /api/search HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                f"Content-Length: {hundred_mb}\r\n"
            ).encode()
            + auth
            + b"\r\n"
        )
        answer = _raw(server.port, head, [b"A" * 65536] * 1600)  # would be 100 MB; stops at the answer
        assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
        for path in ("/api/search", "/api/compare"):
            head = (
                (
                    f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    f"Transfer-Encoding: chunked\r\n"
                ).encode()
                + auth
                + b"\r\n"
            )
            chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
            answer = _raw(server.port, head, [chunk] * 1600)
            assert answer.startswith(b"HTTP/1.1 413"), (path, answer[:200])
    finally:
        code, log = server.stop()
    assert code == 0, log[-3000:]
    assert "/api/classes" in log  # the access log was on: it had every chance to show the key
    assert KEY not in log and "Traceback" not in log


@pytest.mark.slow
def test_the_published_contract_holds_under_fuzzing(serve_home, tmp_path):
    """schemathesis drives a real server from its own /openapi.json: no 5xx,
    no answer that breaks the schema, invalid requests refused."""
    import subprocess
    import sys
    from pathlib import Path as P

    st = P(sys.executable).with_name("schemathesis")
    if not st.exists():
        pytest.skip("schemathesis is not installed (the test extra)")
    server = _Server(serve_home)
    try:
        server.wait_ready()
        done = subprocess.run(
            [
                str(st),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
                "negative_data_rejection",
                "--max-examples",
                "15",
                "--seed",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
                "--report-dir",
                str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=540,
        )
    finally:
        server.stop()
    assert done.returncode == 0, done.stdout[-4000:]
    assert "generated" in done.stdout


# -- the form parser (python-multipart, through Starlette) ---------------------------------------------


def test_forms_parse_what_clients_send(client, fmnist):
    """A lower-case header name, extra part headers, a repeated field, the boundary quoted in the content
    type, and an epilogue after the close: the same hits as the form a client library writes."""
    png = _png(fmnist["test"].images[0])
    body = (
        b'--b0\r\nContent-Disposition: form-data; name="class"\r\n\r\nSneaker\r\n'
        b'--b0\r\ncontent-disposition: form-data; name="class"\r\n\r\nBag\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="method"\r\n\r\npixels\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n'
        b"Content-Type: image/png\r\n\r\n" + png + b"\r\n--b0--\r\nepilogue"
    )
    r = client.post("/api/search", content=body, headers={"content-type": 'multipart/form-data; boundary="b0"'})
    assert r.status_code == 200, r.text
    assert r.json()["query"]["classes"] == ["Sneaker", "Bag"]
    plain = client.post(
        "/api/search",
        files={"image": ("q.png", png, "image/png")},
        data={"method": "pixels", "class": ["Sneaker", "Bag"]},
    )
    assert [h["id"] for h in r.json()["hits"]] == [h["id"] for h in plain.json()["hits"]]


@pytest.mark.parametrize(
    "body, message",
    [
        # python-multipart refuses a preamble before the first boundary (RFC 2046 allows one; no client sends it)
        (b'preamble\r\n--b0\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b0--', "Invalid multipart data"),
        (b"--b0\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b0--", 'field "name" must be provided'),
        (b'--b0\r\nContent-Disposition: form-data; name="a"\r\n\r\nx', "truncated"),
        (b'--b0junk\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n--b0--', "Invalid multipart data"),
        (
            b"".join(b'--b0\r\nContent-Disposition: form-data; name="a"\r\n\r\nx\r\n' for _ in range(201)) + b"--b0--",
            "Too many fields. Maximum number of fields is 200",
        ),
        (
            b"".join(
                b'--b0\r\nContent-Disposition: form-data; name="image"; filename="q.png"\r\n\r\nx\r\n' for _ in range(2)
            )
            + b"--b0--",
            "Too many files. Maximum number of files is 1",
        ),
    ],
)
def test_forms_refuse_malformed_bodies(client, body, message):
    r = client.post("/api/search", content=body, headers={"content-type": "multipart/form-data; boundary=b0"})
    assert r.status_code == 400 and set(r.json()) == {"error"}, r.text
    assert message in r.json()["error"] and "\n" not in r.json()["error"]


# -- the benchmark ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_serve_benchmark_measures_every_series(serve_home, tmp_path):
    """`fmsearch bench serve`, shortened: wrk drives a real service, the
    comparisons and the reference endpoint (a process of its own) run, every
    point answers without errors, and the table and JSON carry the figures."""
    import os
    import shutil as sh

    if sh.which("wrk") is None:
        if os.environ.get("FMSEARCH_REQUIRE_WRK"):
            pytest.fail("wrk is required here (FMSEARCH_REQUIRE_WRK) but not installed")
        pytest.skip("wrk is not installed (apt-get install wrk): the serve benchmark cannot run")
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(serve_home),
            "bench",
            "serve",
            "--methods",
            "siamese,siamese+sift",
            "--clients",
            "2",
            "--uploads",
            "28",
            "--workers",
            "2",
            "--duration",
            "1",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "serve.json").read_text())
    assert {(p["series"], p["method"], p["workers"]) for p in data["points"]} == {
        ("service", "siamese", 2),
        ("service", "siamese+sift", 2),
    }
    assert {(c["series"], c["method"], c["workers"]) for c in data["comparisons"]} == {
        ("no batching", "siamese", 2),
        ("one worker", "siamese", 1),
        ("uvicorn", "siamese", 2),
        ("reference", "siamese", 2),
    }
    points = data["points"] + [p for c in data["comparisons"] for runs in c["rounds"].values() for p in runs]
    assert len(points) == 2 + 4 * 2 * 3  # each comparison: the two servers in turn, three rounds
    for p in points:
        assert p["requests"] > 0 and p["errors"] == 0 and p["p50_ms"] <= p["p99_ms"], p
        assert 0 < p["client_cpu"] < 2.5, p
    for c in data["comparisons"]:
        assert c["ratio"] == pytest.approx(c["other"]["rps"] / c["service"]["rps"])
    (share,) = data["reference_share"]
    assert share["share"] == pytest.approx(share["service_rps"] / share["reference_rps"])
    assert "cli" not in data  # a command-line query's wall time is the embed suite's
    stages = data["stages"]  # the work thread's steps, measured apart through a loaded service
    assert set(stages["decode_ms"]) == {"28"} and set(stages["embed_ms"]) == set(stages["search_ms"]) == {"siamese"}
    assert all(v > 0 for part in stages.values() for v in part.values()), stages
    assert data["goals"] == []  # the goals are set at 16 clients (test_the_goals_stand_beside_their_ceiling)
    assert "| reference | 2 | siamese | 28x28 |" in result.output and "median wall" not in result.output


def test_the_goals_stand_beside_their_ceiling(monkeypatch):
    """A goal is met only with its rate, its p99 and no errors; its ceiling is
    the cores over the three steps' CPU per request."""
    from fmsearch.evaluation.bench import serve as bench

    monkeypatch.setattr(bench.os, "cpu_count", lambda: 2)
    stages = {"decode_ms": {"28": 0.05}, "embed_ms": {"siamese": 0.55}, "search_ms": {"siamese": 0.2}}
    point = {
        "series": "service",
        "method": "siamese",
        "size": 28,
        "clients": 16,
        "rps": 3100.0,
        "p99_ms": 19.0,
        "errors": 0,
    }
    (goal,) = bench._goals([point, {**point, "clients": 4}, {**point, "series": "reference"}], stages)
    assert goal["met"] and goal["ceiling_rps"] == pytest.approx(2500)
    assert not bench._goals([{**point, "p99_ms": 21.0}], stages)[0]["met"]
    assert not bench._goals([{**point, "errors": 1}], stages)[0]["met"]
    assert bench._goals([{**point, "size": 280}], stages)[0]["ceiling_rps"] is None  # no decode cost measured


def test_the_serve_suite_without_wrk_says_so_before_anything_runs(monkeypatch, tmp_path):
    from fmsearch.cli import bench_cmd

    monkeypatch.setattr(bench_cmd.shutil, "which", lambda name: None)
    for suite in ("serve", "all"):
        result = CliRunner().invoke(main, ["--home", str(tmp_path), "bench", suite, "--out-dir", str(tmp_path / "out")])
        assert result.exit_code == 1 and result.output == (
            "Error: the serve suite drives the service with wrk, which is not installed (apt-get install wrk)\n"
        )
        assert not (tmp_path / "out").exists()  # no suite ran


def test_the_page_and_what_it_asks_of_the_api(client, fmnist):
    """The page is served with a policy that loads nothing from elsewhere; its
    files, the item labels, the 28x28 preview and the drawing of an upload
    against an id are there."""
    r = client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in r.headers["content-security-policy"] and '<script type="module"' in r.text
    for path, kind in (
        ("/static/app.js", "javascript"),
        ("/static/insight.js", "javascript"),
        ("/static/style.css", "text/css"),
        ("/static/icon.svg", "image/svg+xml"),
    ):
        r = client.get(path)
        assert r.status_code == 200 and kind in r.headers["content-type"], path
    assert client.get("/static/index.html").status_code == 404  # the page only at /, with its policy
    assert client.get("/api/items/60000").json() == {
        "id": 60000,
        "split": "test",
        "index": 0,
        "label": 9,
        "class_name": "Ankle boot",
    }
    assert client.get("/api/items/70000").status_code == 400
    big = Image.fromarray(fmnist["test"].images[0]).resize((280, 280))
    buf = io.BytesIO()
    big.save(buf, format="PNG")
    r = client.post("/api/preview", content=buf.getvalue())
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (28, 28)
    r = client.post("/api/preview", content=b"not an image")
    assert r.status_code == 400 and r.json() == {"error": "image: not an image file Pillow can read"}
    upload = base64.b64encode(buf.getvalue()).decode()
    r = client.post("/api/compare.png", json={"a": upload, "b": 60000})
    assert r.status_code == 200 and Image.open(io.BytesIO(r.content)).width > 56
    assert client.post("/api/compare.png", json={"a": "!!", "b": 1}).status_code == 400


def test_the_serve_suite_refuses_in_one_line_what_cannot_be_served(tmp_path):
    """A rerank stage as a method, and a service that cannot start (nothing
    ingested): one line each, exit 1, no traceback."""
    import shutil as sh

    if sh.which("wrk") is None:
        pytest.skip("wrk is not installed (apt-get install wrk)")
    for args, message in (
        (
            ["--methods", "sift"],
            "Error: sift is a rerank stage, not a search method: it reorders another method's results (rerank sift)\n",
        ),
        (
            ["--methods", "pixels", "--clients", "1", "--uploads", "28", "--duration", "1"],
            "Error: `fmsearch serve` did not become ready: nothing to serve: pixels is not ingested",
        ),
    ):
        result = CliRunner().invoke(
            main, ["--home", str(tmp_path / "empty"), "bench", "serve", *args, "--out-dir", str(tmp_path / "out")]
        )
        assert result.exit_code == 1 and result.output.startswith(message), result.output
        assert result.output.count("\n") == 1 and "Traceback" not in result.output


def test_the_reference_endpoint_that_cannot_load_says_why(tmp_path):
    """The bare reference endpoint (its own granian process, nothing of the
    service) answers 500 with why it failed to load, and the benchmark stops
    on it at once with that reason, in one line."""
    from fmsearch.errors import FmsearchError
    from fmsearch.evaluation.bench.serve import _Server

    server = _Server.reference(StoreSettings(home=str(tmp_path / "empty")), ["pixels"], 1)
    with pytest.raises(FmsearchError) as err:
        with server:
            pass
    assert str(err.value) == (
        "the reference endpoint did not become ready: failed: collection fmnist_pixels not "
        f"found in embedded:{tmp_path / 'empty'}; run `fmsearch ingest` first"
    )
    assert server.proc.poll() is not None  # stopped on the way out


def test_the_map_and_duplicates_are_served_as_written(serve_home, insight, tmp_path):
    """The insight folder's files: what exists, the map as written, the
    duplicates with conflicts first, the likely label errors likeliest
    first; what was not made is a 404 that says how to make it; an unknown
    method a 400."""
    c = _client(ServeConfig(store_settings=StoreSettings(home=serve_home), insight_dir=str(insight)))
    try:
        assert c.get("/api/insight").json() == {
            "maps": ["siamese"],
            "duplicates": ["pixels", "siamese"],
            "label_issues": ["pixels"],
        }
        issues = c.get("/api/label-issues/pixels").json()
        written = json.loads((insight / "label-issues-pixels-train" / "label_issues.json").read_text())
        assert issues["suspects"] == written["suspects"][:200] and issues["suspects_total"] == len(written["suspects"])
        assert issues["summary"]["flagged"] == written["summary"]["flagged"] > 0 and issues["scope"] == "split train"
        assert len(c.get("/api/label-issues/pixels", params={"limit": 2}).json()["suspects"]) == 2
        r = c.get("/api/label-issues/siamese")
        assert r.status_code == 404 and r.json()["error"].startswith(
            "no label-issues run of siamese here: make one with `fmsearch label-issues --method siamese`"
        )
        assert c.get("/api/label-issues/pixels", params={"limit": 0}).status_code == 422
        r = c.get("/api/map/siamese")
        assert r.status_code == 200 and r.headers["content-type"] == "application/json"
        assert r.content == (insight / "map-siamese" / "map.json").read_bytes()
        dup = c.get("/api/duplicates/pixels").json()
        written = json.loads((insight / "duplicates-pixels-train" / "duplicates.json").read_text())
        assert dup["summary"] == written["summary"] and dup["groups_total"] == len(written["groups"])
        assert [g["ids"] for g in dup["groups"]] == [g["ids"] for g in written["groups"]]
        assert dup["groups"][0]["conflict"] and "pairs" not in dup["groups"][0]
        assert len(c.get("/api/duplicates/pixels", params={"limit": 2}).json()["groups"]) == 2
        r = c.get("/api/map/pixels")
        assert r.status_code == 404
        assert r.json()["error"].startswith("no map of pixels here: make one with `fmsearch map --method pixels`")
        r = c.get("/api/duplicates/nope")
        assert r.status_code == 400 and r.json()["error"].startswith("unknown method 'nope'")
        assert c.get("/api/map/..%2F..%2Fetc").status_code in (400, 404)
    finally:
        c.__exit__(None, None, None)
    empty = _client(ServeConfig(store_settings=StoreSettings(home=serve_home), insight_dir=str(tmp_path / "none")))
    try:
        assert empty.get("/api/insight").json() == {"maps": [], "duplicates": [], "label_issues": []}
    finally:
        empty.__exit__(None, None, None)


def test_a_folder_gallery_is_served_beside_fmnist(gallery_home, fmnist):
    """Its methods and classes in the health answer; searches by upload and by
    its ids with its own classes; its images and items by collection; what
    does not fit refused in one line."""
    from fmsearch.store import schema

    c = _client(ServeConfig(store_settings=StoreSettings(home=gallery_home)))
    try:
        health = c.get("/api/health").json()
        assert health["methods"] == ["pixels", "siamese"]
        shop = health["galleries"]["shop"]
        assert (
            shop["methods"] == ["pixels", "siamese"]
            and "Sneaker" in shop["classes"]
            and "T-shirt-top" in shop["classes"]
        )
        # no distilled method here: a search that names none takes the best served, as the page does
        assert health["default_method"] == shop["default_method"] == "siamese"
        unnamed = c.post("/api/search", json={"id": 60001, "k": 2})
        assert unnamed.status_code == 200 and unnamed.json()["query"]["method"] == "siamese", unnamed.text
        sneaker = int(np.nonzero(fmnist["test"].labels[:120] == 7)[0][0])
        r = c.post(
            "/api/search",
            files={"image": ("s.png", _png(fmnist["test"].images[sneaker]), "image/png")},
            data={"method": "siamese", "k": "3", "collection": "shop"},
        )
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        assert hits[0]["path"] == f"Sneaker/{sneaker:04d}.png" and hits[0]["score"] > 0.999
        assert hits[0]["id"] == schema.folder_point_id(hits[0]["path"]) and hits[0]["split"] is None
        assert hits[0]["image_url"] == f"/api/images/{hits[0]['id']}.png?collection=shop"
        assert r.json()["query"]["collection"] == "shop"
        by_id = _search(c, id=hits[0]["id"], collection="shop", method="pixels", k=5, classes=["Bag"])
        assert by_id["hits"] and {h["class_name"] for h in by_id["hits"]} == {"Bag"}
        png = c.get(hits[0]["image_url"])
        assert png.status_code == 200 and np.array_equal(
            np.asarray(Image.open(io.BytesIO(png.content))), fmnist["test"].images[sneaker]
        )
        item = c.get(f"/api/items/{hits[0]['id']}", params={"collection": "shop"}).json()
        assert item == {
            "id": hits[0]["id"],
            "label": shop["classes"].index("Sneaker"),
            "class_name": "Sneaker",
            "path": hits[0]["path"],
        }
        assert c.get("/api/items/60000").json()["split"] == "test"  # FMNIST's answer as before
        for request_, status, message in (
            (dict(json={"id": hits[0]["id"], "method": "siamese"}), 400, f"point id {hits[0]['id']} is out of range"),
            (dict(json={"id": 1, "collection": "nope"}), 400, "collection 'nope' is not a folder gallery this service"),
            (dict(json={"id": hits[0]["id"], "collection": "shop", "rerank": "sift"}), 400, "searched without it"),
            (dict(json={"id": 5, "collection": "shop"}), 400, "no image with id 5 in"),
            (
                dict(json={"id": hits[0]["id"], "collection": "shop", "classes": ["Sneakr"]}),
                400,
                "unknown class 'Sneakr' in gallery shop",
            ),
        ):
            r = c.post("/api/search", **request_)
            assert r.status_code == status and message in r.json()["error"], (request_, r.text)
        r = c.get(f"/api/images/{hits[0]['id']}.png")
        assert r.status_code == 400 and f"point id {hits[0]['id']} is out of range" in r.json()["error"]
    finally:
        c.__exit__(None, None, None)
