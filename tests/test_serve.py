"""`fmsearch serve`: the API through the framework's test client, a real
server process, concurrency, and the published contract fuzzed."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from fmsearch.cli import main
from fmsearch.images.files import png_bytes

fastapi = pytest.importorskip("fastapi", reason="fmsearch serve's dependencies are not installed")
from fastapi.testclient import TestClient  # noqa: E402

from fmsearch.serve.app import create_app  # noqa: E402
from fmsearch.serve.config import ServeConfig  # noqa: E402

KEY = "s3cret-serve-key"


@pytest.fixture(scope="module")
def serve_home(home, tmp_path_factory) -> Path:
    """The shared home (pixels, siamese, sift: 300 points each), copied, with
    the pixels int8 variant added."""
    copy = tmp_path_factory.mktemp("serve") / "home"
    shutil.copytree(home, copy)
    result = CliRunner().invoke(main, ["--home", str(copy), "ingest", "-m", "pixels", "--limit", "300",
                                       "--quantization", "int8"])
    assert result.exit_code == 0, result.output
    return copy


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
    c = _client(ServeConfig(home=str(serve_home)))
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
    by_json = _search(client, image=base64.b64encode(_png(image)).decode(), method="pixels", k=5,
                      classes=["Sneaker", "Sandal"])
    assert [h["id"] for h in by_json["hits"]] == [h["id"] for h in body["hits"]]
    by_id = _search(client, id=3, method="siamese", k=4, exclude_classes=["Trouser"])
    assert len(by_id["hits"]) == 4 and 3 not in [h["id"] for h in by_id["hits"]]
    assert all(h["class_name"] != "Trouser" and h["image_url"] == f"/api/images/{h['id']}.png" for h in by_id["hits"])


@pytest.mark.parametrize("mode, check", [
    (dict(method="pixels+siamese", fusion="rrf", fusion_weights=[1, 2]), "method_ranks"),
    (dict(method="pixels", rescore_with="siamese", shortlist=50), "first_score"),
    (dict(method="pixels", rerank="sift", shortlist=30, rerank_mode="maxsim"), "rerank_score"),
    (dict(method="pixels", quantization="int8", oversampling=2), None),
    (dict(method="siamese", positive=[3, 5], negative=[7]), None),
])
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
            expected = s.search(mode_of(SearchRequest(**mode)), pid=60001, k=5)
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
    assert {k: body[k] for k in ("keypoints_a", "keypoints_b", "good_matches", "lowe_score", "maxsim_score")} == \
           {k: cli[k] for k in ("keypoints_a", "keypoints_b", "good_matches", "lowe_score", "maxsim_score")}
    drawing = client.get(body["drawing_url"])
    assert drawing.status_code == 200 and drawing.content.startswith(b"\x89PNG")


def test_metrics_count_requests(client):
    before = _count(client.get("/metrics").text, 'endpoint="/api/classes"')
    client.get("/api/classes")
    client.get("/api/classes")
    text = client.get("/metrics").text
    assert _count(text, 'endpoint="/api/classes"') == before + 2
    assert "fmsearch_request_seconds_bucket" in text and "fmsearch_embed_batch_size_count" in text


def _count(text: str, label: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("fmsearch_requests_total{") and label in line)


# -- bad requests: 4xx, one line --------------------------------------------------------

BAD = [
    (dict(json={"id": 1, "method": "nope"}), 400, "unknown method 'nope'"),
    (dict(json={"id": 1, "method": "autoencoder"}), 400, "autoencoder is not served: not ingested"),
    (dict(json={"id": 1, "method": "pixels", "classes": ["Hat"]}), 400, "unknown class 'Hat'"),
    (dict(json={"id": 70000, "method": "pixels"}), 422, "id: Input should be less than or equal to 69999"),
    (dict(json={"id": 1, "method": "pixels", "k": 0}), 422, "k: Input should be greater than or equal to 1"),
    (dict(json={"id": 1, "method": "pixels", "k": "many"}), 422, "k: Input should be a valid integer"),
    (dict(json={"method": "pixels"}), 400, "give exactly one of an image or an id"),
    (dict(json={"image": "!!!", "method": "pixels"}), 400, "image: not base64"),
    (dict(json={"image": base64.b64encode(b"not an image").decode(), "method": "pixels"}), 400,
     "image: not an image file"),
    (dict(files={"image": ("x.png", b"not an image", "image/png")}, data={"method": "pixels"}), 400,
     "image: not an image file"),
    (dict(json={"id": 1, "method": "pixels", "rescore_with": "pixels"}), 400, "is the method itself"),
    (dict(json={"id": 1, "method": "pixels+siamese", "rescore_with": "siamese"}), 400, "applies to a single method"),
    (dict(json={"id": 1, "method": "pixels", "quantization": "binary"}), 400, "binary quantisation is not offered"),
    (dict(json={"id": 1, "method": "pixels", "oversampling": 2}), 400, "apply to a quantization"),
    (dict(json={"id": 1, "method": "pixels", "rerank": "sift", "k": 50, "shortlist": 20}), 400, "shortlist"),
    (dict(json={"id": 1, "method": "pixels", "positive": [3]}), 400, "make a recommend query"),
    (dict(json={"id": 1, "method": "pixels", "colour": "red"}), 422, "colour: Extra inputs are not permitted"),
    (dict(content=b"{", headers={"content-type": "application/json"}), 400, "the body is not JSON"),
    (dict(content=b"id=1", headers={"content-type": "text/plain"}), 415, "send application/json or multipart"),
]


@pytest.mark.parametrize("request_, status, message", BAD, ids=[m for _, _, m in BAD])
def test_bad_requests_get_4xx_and_one_line(client, request_, status, message):
    r = client.post("/api/search", **request_)
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and message in body["error"] and "\n" not in body["error"]


def test_bad_ids_elsewhere(client):
    for path, status in (("/api/images/70000.png", 422), ("/api/images/x.png", 422), ("/api/nothing", 404)):
        r = client.get(path)
        assert r.status_code == status and set(r.json()) == {"error"}
    r = client.post("/api/compare", json={"a": 1, "b": "!!"})
    assert r.status_code == 400 and "b: not base64" in r.json()["error"]


def test_an_oversize_upload_is_refused_before_it_is_read(serve_home):
    c = _client(ServeConfig(home=str(serve_home), max_upload_bytes=4096))
    try:
        r = c.post("/api/search", files={"image": ("big.png", b"x" * 100_000, "image/png")}, data={"method": "pixels"})
        assert r.status_code == 413 and "over the limit of 4,096 bytes" in r.json()["error"]

        def chunks():  # no length given: cut off once past the limit
            yield b'{"method": "pixels", "image": "'
            for _ in range(100):
                yield b"A" * 1000
        r = c.post("/api/search", content=chunks(), headers={"content-type": "application/json"})
        assert r.status_code == 413
    finally:
        c.__exit__(None, None, None)


def test_api_key_is_required_and_never_logged(serve_home, caplog):
    c = _client(ServeConfig(home=str(serve_home), api_key=KEY))
    try:
        with caplog.at_level(logging.DEBUG):
            assert c.get("/api/classes").status_code == 401
            assert c.get("/api/classes", headers={"X-API-Key": "wrong"}).status_code == 401
            assert c.get("/api/classes", headers={"X-API-Key": KEY}).status_code == 200
            assert c.get("/api/classes", headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
            r = c.post("/api/search", json={"id": 1, "method": "pixels"}, headers={"X-API-Key": "wrong"})
            assert r.status_code == 401 and set(r.json()) == {"error"}
        assert KEY not in caplog.text and "wrong" not in caplog.text
        assert c.get("/openapi.json").status_code == 200  # the contract is public; the API is not
    finally:
        c.__exit__(None, None, None)


def test_a_request_past_the_timeout_is_503(serve_home, fmnist):
    c = _client(ServeConfig(home=str(serve_home), request_timeout_s=0.001))
    try:
        r = c.post("/api/search", json={"id": 60001, "method": "pixels", "rerank": "sift", "k": 5})
        assert r.status_code == 503 and "timeout" in r.json()["error"]
    finally:
        c.__exit__(None, None, None)


# -- concurrency: batching never mixes answers up --------------------------------------------


def test_concurrent_requests_get_the_answers_of_sequential_ones(client, fmnist):
    import httpx

    images = fmnist["test"].images[:50]
    requests = [dict(image=base64.b64encode(_png(images[i % 50])).decode(), method=("pixels", "siamese")[i % 2],
                     k=5, classes=[["Sneaker"], []][i % 3 % 2]) for i in range(200)]
    expected = [[h["id"] for h in _search(client, **r)["hits"]] for r in requests]

    async def all_at_once():
        transport = httpx.ASGITransport(app=client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
            answers = await asyncio.gather(*(ac.post("/api/search", json=r) for r in requests))
        return [[h["id"] for h in a.json()["hits"]] for a in answers]

    assert asyncio.run(all_at_once()) == expected
    assert "fmsearch_embed_batch_size_bucket" in client.get("/metrics").text
