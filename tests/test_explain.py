"""Why is this a match? Occlusion heatmaps (search/explain.py), the deletion
test (evaluation/faithfulness.py), `fmsearch explain`, POST /api/explain and
the explain bench suite."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.errors import InvalidArgumentError
from fmsearch.evaluation import faithfulness
from fmsearch.models.base import Embedder
from fmsearch.models.pixels import PixelEmbedder
from fmsearch.models.registry import get_embedder
from fmsearch.search.explain import FILL, PATCH, STRIDE, Occlusion, box_blur, explain_pair

BATCH = 2 + 2 * Occlusion().variants  # the default explanation's batch


class Counting(Embedder):
    """Pixels, counting the calls of embed_batch and the images in each."""

    name = "counting"
    dim = 784

    def __init__(self) -> None:
        self.batches: list[int] = []

    @property
    def fingerprint(self) -> str:
        return "counting"

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        self.batches.append(len(images))
        return images.reshape(len(images), -1).astype(np.float32)


def _garment(fmnist, index: int = 0) -> np.ndarray:
    return fmnist["test"].images[index].copy()


@pytest.mark.parametrize("method", ["pixels", "autoencoder", "siamese", "distilled"])
@pytest.mark.parametrize(
    "occlusion, side",
    [(Occlusion(), PATCH), (Occlusion(7, 3, "zero"), 7)],
    ids=["default-window-sized-square", "7x7-windows-7x7-square"],
)
def test_a_pair_differing_in_one_region_gets_its_heat_there(fmnist, method, occlusion, side):
    """The hit is the query with one square added in the top left corner,
    where the query is blank: the hit's most negative heat (what held the
    pair apart) lies in that square, and most of its negative heat within a
    window's reach of it. The square is a window's size: a difference larger
    than the window is partly left in place by every window, and a network
    still sees it (docs/methods.md: the heat's resolution is the window's)."""
    region = (slice(0, side), slice(0, side))
    blank = [i for i in range(40) if fmnist["test"].images[i][region].max() <= 10][:4]
    inside = np.zeros((28, 28), dtype=bool)
    inside[region] = True
    reach = np.zeros((28, 28), dtype=bool)
    reach[: side + occlusion.patch - 1, : side + occlusion.patch - 1] = True  # and the windows overlapping it
    embedder = get_embedder(method)
    assert len(blank) == 4
    for i in blank:
        query = _garment(fmnist, i)
        hit = query.copy()
        hit[region] = 255
        heat = explain_pair(embedder, query, hit, occlusion).hit_heat
        y, x = np.unravel_index(np.argmin(heat), heat.shape)
        negative = np.clip(-heat, 0, None)
        assert inside[y, x], (method, i, y, x)
        assert negative[reach].sum() >= 0.5 * negative.sum(), (method, i)


def test_every_variant_of_both_images_is_embedded_in_one_batch(fmnist):
    counting = Counting()
    occlusion = Occlusion(7, 3, "zero")
    e = explain_pair(counting, _garment(fmnist), _garment(fmnist, 1), occlusion)
    assert counting.batches == [2 + 2 * occlusion.variants] == [e.batch] == [130]


def test_the_heat_is_the_mean_drop_of_the_windows_covering_a_pixel(fmnist):
    """Against a brute force: each window occluded alone, its drop spread
    over its pixels, averaged by how many windows cover each."""
    query, hit = _garment(fmnist), _garment(fmnist, 2)
    occlusion = Occlusion(6, 4, "mean")
    pixels = PixelEmbedder()
    e = explain_pair(pixels, query, hit, occlusion)
    h = pixels.embed(hit)[0]
    s0 = float(pixels.embed(query)[0] @ h)
    total, count = np.zeros((28, 28)), np.zeros((28, 28))
    starts = [0, 4, 8, 12, 16, 20, 22]  # every 4, and the last flush with the edge
    fill = int(round(float(query.mean())))
    for y in starts:
        for x in starts:
            covered = query.copy()
            covered[y : y + 6, x : x + 6] = fill
            total[y : y + 6, x : x + 6] += s0 - float(pixels.embed(covered)[0] @ h)
            count[y : y + 6, x : x + 6] += 1
    assert occlusion.variants == len(starts) ** 2 and count.min() >= 1
    np.testing.assert_allclose(e.query_heat, total / count, atol=1e-5)
    assert e.similarity == pytest.approx(s0, abs=1e-6)


def test_fills():
    image = np.zeros((28, 28), dtype=np.uint8)
    image[10:20, 10:20] = 200
    assert Occlusion(28, 28, "zero").occluded(image).max() == 0
    assert set(np.unique(Occlusion(28, 28, "mean").occluded(image))) == {round(200 * 100 / 784)}
    blurred = box_blur(image[None], 3)[0]
    assert blurred[15, 15] == 200 and blurred[10, 10] == round(200 * 4 / 9) and blurred[0, 0] == 0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"patch": 0}, "patch must be between 1 and 28 pixels, got 0"),
        ({"patch": 29}, "patch must be between 1 and 28 pixels, got 29"),
        ({"patch": 4, "stride": 5}, "stride must be between 1 and the patch (4) pixels, got 5"),
        ({"patch": 7, "stride": 0}, "stride must be between 1 and the patch (7) pixels, got 0"),
        ({"fill": "grey"}, "fill must be one of zero, mean, blur, got 'grey'"),
        ({"patch": True}, "patch must be between 1 and 28 pixels, got True"),
    ],
)
def test_bad_occlusions_are_refused(kwargs, message):
    with pytest.raises(InvalidArgumentError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Occlusion(**kwargs)


def test_images_of_another_shape_are_refused():
    with pytest.raises(InvalidArgumentError, match="the hit must be a 28x28 uint8 image"):
        explain_pair(PixelEmbedder(), np.zeros((28, 28), np.uint8), np.zeros((28, 27), np.uint8))


# -- the deletion test --------------------------------------------------------


def test_deleting_removes_the_order_a_step_at_a_time():
    image = np.full((28, 28), 9, dtype=np.uint8)
    order = faithfulness.centre_order()
    seq = faithfulness.deleted(image, order, step=16)
    assert seq.shape == (50, 28, 28) and seq[0].min() == 9 and seq[-1].max() == 0
    assert [int((s == 0).sum()) for s in seq[:3]] == [0, 16, 32]
    assert seq[1].reshape(-1)[order[:16]].max() == 0 and seq[1].reshape(-1)[order[16:]].min() == 9
    y, x = divmod(int(order[0]), 28)
    assert {y, x} <= {13, 14}


def test_the_garment_order_takes_the_lit_pixels_first(fmnist):
    images = fmnist["test"].images[:3]
    orders = faithfulness.garment_orders(images, np.random.default_rng(0))
    for image, order in zip(images, orders, strict=True):
        lit = int((image > 0).sum())
        assert sorted(order.tolist()) == list(range(784))
        assert image.reshape(-1)[order[:lit]].min() > 0 and image.reshape(-1)[order[lit:]].max() == 0


def test_auc_and_its_degenerate_inputs():
    assert faithfulness.auc(np.ones((2, 50))).tolist() == [1.0, 1.0]
    assert faithfulness.auc(np.linspace(1, 0, 50)[None])[0] == pytest.approx(0.5)
    assert faithfulness.auc(np.zeros((0, 50))).shape == (0,)
    ratio, lo, hi = faithfulness.bootstrap_ratio(np.ones(10), np.ones(10) * 2, np.random.default_rng(0))
    assert (ratio, lo, hi) == (0.5, 0.5, 0.5)
    assert np.isnan(faithfulness.bootstrap_ratio(np.zeros(0), np.zeros(0), np.random.default_rng(0))[0])


def test_the_heatmaps_order_beats_a_random_one(fmnist):
    """The test can fail: a heatmap of no use would score as random does."""
    siamese = get_embedder("siamese")
    queries = fmnist["test"].images[:8]
    hits = fmnist["test"].images[8:16]
    heats = np.stack([explain_pair(siamese, q, h).query_heat for q, h in zip(queries, hits, strict=True)])
    targets = siamese.embed(hits)
    aucs = faithfulness.deletion_aucs(siamese, queries, targets, heats, np.random.default_rng(0))
    assert set(aucs) == set(faithfulness.ORDERS)
    assert aucs["heatmap"].mean() < 0.8 * aucs["random"].mean()
    assert (aucs["heatmap"] < aucs["random"]).mean() >= 0.75


# -- the faces ----------------------------------------------------------------


def test_the_cli_explains_a_pair_and_draws_it(home, tmp_path):
    out = tmp_path / "pair.png"
    r = CliRunner().invoke(main, ["--home", str(home), "explain", "60000", "5", "-m", "siamese", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "A (query): id 60000 (test 0, Ankle boot)" in r.output and "siamese cosine similarity" in r.output
    assert "what made A close to B: rows" in r.output and f"{BATCH} images in one batch" in r.output
    from PIL import Image

    drawing = Image.open(out)
    assert drawing.size == (28 * 8 * 2 + 8, 28 * 8) and drawing.mode == "RGB"


def test_the_cli_json_holds_the_heatmaps_and_an_image_file_works(home, fmnist, tmp_path):
    from PIL import Image

    path = tmp_path / "query.png"
    Image.fromarray(fmnist["test"].images[0]).resize((56, 56)).save(path)
    r = CliRunner().invoke(main, ["--home", str(home), "explain", str(path), "5", "-m", "pixels", "--json"])
    assert r.exit_code == 0, r.output
    body = json.loads(r.output)
    assert body["a"] == str(path) and body["b"].startswith("id 5 (train 5,")
    assert np.array(body["query_heat"]).shape == (28, 28) == np.array(body["hit_heat"]).shape
    assert (body["patch"], body["stride"], body["fill"], body["method"]) == (PATCH, STRIDE, FILL, "pixels")


def test_api_and_cli_heatmaps_agree(home, serve_home, fmnist, tmp_path):
    """The service answers what `fmsearch explain --json` prints, for an id
    pair and for an upload (a real `fmsearch serve`, as the page meets it)."""
    import base64

    import httpx
    from PIL import Image
    from serving import Server

    path = tmp_path / "query.png"
    Image.fromarray(fmnist["test"].images[3]).resize((84, 84)).save(path)
    upload = base64.b64encode(path.read_bytes()).decode()
    cases = [(["60003", "17"], {"a": 60003, "b": 17}), ([str(path), "17"], {"a": upload, "b": 17})]
    server = Server(serve_home)
    try:
        server.wait_ready()
        answers = [
            httpx.post(f"{server.url}/api/explain", json={**body, "method": "siamese"}, timeout=30) for _, body in cases
        ]
    finally:
        code, log = server.stop()
    assert code == 0, log[-2000:]
    for (args, _), api in zip(cases, answers, strict=True):
        r = CliRunner().invoke(main, ["--home", str(home), "explain", *args, "-m", "siamese", "--json"])
        assert r.exit_code == 0 and api.status_code == 200, (r.output, api.text)
        cli, body = json.loads(r.output), api.json()
        assert body["similarity"] == pytest.approx(cli["similarity"], abs=1e-5)
        for side in ("query_heat", "hit_heat"):
            np.testing.assert_allclose(np.array(body[side]), np.array(cli[side]), atol=1e-4)
        assert (body["patch"], body["stride"], body["fill"], body["batch"]) == (PATCH, STRIDE, FILL, BATCH)
        assert np.abs(np.array(body["query_heat"])).max() > 0


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"a": 60000, "b": 5, "method": "proxy"}, 400, "proxy is not served"),
        ({"a": 60000, "b": 5, "method": "pixels+siamese"}, 400, "is a fusion, and an explanation is of one"),
        ({"a": 60000, "b": 5, "method": "nope"}, 400, "unknown method 'nope'"),
        ({"a": 60000, "b": 70000, "method": "siamese"}, 400, "point id 70000 is out of range"),
        ({"a": "!!", "b": 5, "method": "siamese"}, 400, "a: not base64"),
        ({"a": 60000, "b": 5, "method": "siamese", "patch": 0}, 422, "patch: Input should be greater than or equal"),
        ({"a": 60000, "b": 5, "method": "siamese", "patch": 7, "stride": 8}, 400, "stride must be between 1 and the"),
        ({"a": 60000, "b": 5, "method": "siamese", "fill": "grey"}, 422, "fill: Input should be 'zero', 'mean' or"),
        ({"a": 60000, "b": 5, "method": "siamese", "colour": 1}, 422, "colour: Extra inputs are not permitted"),
        ({"a": 60000, "method": "siamese"}, 422, "b: Field required"),
        ({"a": 60000, "b": 5, "collection": "nope"}, 400, "nope"),
        (
            {"a": 60000, "b": 5, "method": "siamese", "patch": 1, "stride": 1},
            400,
            "the service explains with at most 196 windows an image, and patch 1 stride 1 makes 784",
        ),
    ],
)
def test_the_api_refuses_bad_pairs_in_one_line(client, body, status, message):
    r = client.post("/api/explain", json=body)
    assert r.status_code == status, r.text
    answer = r.json()
    assert set(answer) == {"error"} and message in answer["error"] and "\n" not in answer["error"]


def test_the_api_explains_with_the_default_method_and_takes_an_upload(client, fmnist):
    import base64

    from fmsearch.images.files import png_bytes

    upload = base64.b64encode(png_bytes(fmnist["test"].images[0])).decode()
    by_upload = client.post("/api/explain", json={"a": upload, "b": 5}).json()
    by_id = client.post("/api/explain", json={"a": 60000, "b": 5}).json()
    assert by_upload["method"] == by_id["method"] == client.get("/api/health").json()["default_method"]
    assert by_upload["a"] == "upload a" and by_id["a"] == "id 60000"
    np.testing.assert_allclose(np.array(by_upload["query_heat"]), np.array(by_id["query_heat"]), atol=1e-5)


@pytest.fixture(scope="module")
def client(serve_home):
    from test_serve import _client

    from fmsearch.serve.config import ServeConfig
    from fmsearch.store import StoreSettings

    c = _client(ServeConfig(store_settings=StoreSettings(home=serve_home)))
    yield c
    c.__exit__(None, None, None)


def test_a_folder_gallerys_ids_are_explained_from_its_collection(gallery_home, fmnist, tmp_path):
    from fmsearch.store import open_store
    from fmsearch.store.gallery import open_gallery

    with open_store(home=gallery_home) as store:
        ids = sorted(store.ids(open_gallery(store, "shop").collection("siamese")))
    args = ["--home", str(gallery_home), "explain", "-m", "siamese", "--collection", "shop", "--json"]
    r = CliRunner().invoke(main, [*args, str(ids[0]), str(ids[1])])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["b"] == f"id {ids[1]}" and np.array(json.loads(r.output)["hit_heat"]).shape == (28, 28)
    from PIL import Image

    png = tmp_path / "a.png"
    Image.fromarray(fmnist["test"].images[0]).save(png)
    files = ["--home", str(gallery_home), "explain", "-m", "siamese", "--collection", "nope", str(png), str(png)]
    r = CliRunner().invoke(main, files)  # a gallery named is a gallery checked, whatever A and B are
    assert r.exit_code == 1 and "gallery nope has no siamese collection" in r.output
    missing = next(i for i in range(len(ids) + 1) if i not in ids)
    r = CliRunner().invoke(main, [*args, str(ids[0]), str(missing)])
    assert r.exit_code == 1 and r.output == f"Error: no image with id {missing} in gallery shop\n"


# -- the bench suite ----------------------------------------------------------


def test_the_bench_measures_real_pairs_and_the_service(home, tmp_path):
    """A small run of `fmsearch bench explain` on the shared home: pairs of
    test queries and their train hits, the three orders' AUCs, the goals,
    and the service's time of an explanation against a search."""
    from fmsearch.evaluation.bench.explain import run_explain_bench
    from fmsearch.store import StoreSettings

    result = run_explain_bench(StoreSettings(home=home), methods=("pixels", "siamese"), pairs=4, requests=3)
    rows = {r["method"]: r for r in result.data["rows"]}
    assert set(rows) == {"pixels", "siamese"} and all(r["pairs"] == 4 for r in rows.values())
    assert all(0 < r["ms_p50"] and r["batch"] == BATCH for r in rows.values())
    assert rows["siamese"]["auc_heatmap"] < rows["siamese"]["auc_random"]
    service = result.data["service"]
    assert service["requests"] == 3 and service["explain_ms_p50"] > 0 and service["search_ms_p50"] > 0
    assert [g["goal"].split(":")[0] for g in result.data["goals"]] == ["siamese", "siamese"]  # pixels: no goal
    assert "POST /api/explain (siamese)" in result.table and "x random (95% CI)" in result.table
    path = result.write(tmp_path)
    assert json.loads(path.read_text())["occlusion"] == {"patch": PATCH, "stride": STRIDE, "fill": FILL}


def test_the_sweep_chooses_the_best_setting_within_the_budget(home, monkeypatch):
    from fmsearch.evaluation.bench import explain as bench
    from fmsearch.store import StoreSettings

    def sweep():
        return bench.run_explain_sweep(
            StoreSettings(home=home), methods=("pixels",), pairs=3, grid=((7, 7), (28, 28)), rounds=3
        )

    monkeypatch.setattr(bench, "EXPLAIN_BUDGET_MS", float("inf"))  # every setting fits, on any machine
    result = sweep()
    assert len(result.data["rows"]) == 2 * 3  # two windows x three fills
    assert "validation: train 50000-59999" in result.table
    timed = {(t["patch"], t["stride"], t["fill"]): t["ms_p50"] for t in result.data["siamese_ms"]}
    fits = result.data["rows"]
    assert all(timed[r["patch"], r["stride"], r["fill"]] > 0 for r in fits)
    chosen = result.data["chosen"]
    assert (chosen["patch"], chosen["stride"], chosen["fill"]) in {(r["patch"], r["stride"], r["fill"]) for r in fits}
    assert chosen["mean_ratio_random"] == min(r["ratio_random"] for r in fits)
    monkeypatch.setattr(bench, "EXPLAIN_BUDGET_MS", 0.0)  # nothing fits: nothing is chosen, and it says so
    result = sweep()
    assert result.data["chosen"] is None and "no setting chosen: none fits the budget" in result.table


@pytest.mark.parametrize(
    "args, message",
    [
        (["--sweep", "--no-service"], "--no-service is for the default run"),
        (["--methods", "proxy", "--no-service"], "collection fmnist_proxy not found"),
        (["--pairs", "0", "--methods", "pixels", "--no-service"], "--pairs must be between 1 and 10000, got 0"),
    ],
)
def test_the_bench_refuses_in_one_line(home, args, message):
    r = CliRunner().invoke(main, ["--home", str(home), "bench", "explain", *args])
    assert r.exit_code == 1 and r.output.count("\n") == 1 and message in r.output, r.output


def test_a_service_that_does_not_answer_is_one_line():
    from serving import free_port

    from fmsearch.errors import FmsearchError
    from fmsearch.evaluation.bench.explain import _post

    with pytest.raises(FmsearchError, match="the service did not answer http://127.0.0.1:"):
        _post(f"http://127.0.0.1:{free_port()}/api/explain", {"a": 1, "b": 2})
