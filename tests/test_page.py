"""The web page in a real browser: Debian's Chromium driven by Playwright,
against a real `fmsearch serve` on a free loopback port (the shared home:
pixels, siamese and SIFT, 300 images each; its insight folder: a siamese map,
pixels and siamese duplicates).

Without Playwright or Chromium these tests skip with the reason; where
FMSEARCH_REQUIRE_BROWSER is set (CI) they fail instead. Each test fails on a
JavaScript error or an unexpected console error, and leaves a screenshot of
its last view in its tmp folder.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image
from serving import Server

CHROMIUM = Path("/usr/bin/chromium")


def _browser_missing() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium fonts-dejavu-core)"
    return None


@pytest.fixture(scope="module")
def browser():
    missing = _browser_missing()
    if missing:
        if os.environ.get("FMSEARCH_REQUIRE_BROWSER"):
            pytest.fail(f"a browser is required here (FMSEARCH_REQUIRE_BROWSER): {missing}")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def _serving(home, *args):
    """A ready `fmsearch serve` on ``home``, stopped cleanly at the end."""
    server = Server(home, *args)
    try:
        server.wait_ready()
        yield server
    finally:
        code, log = server.stop()
        assert code == 0, log[-3000:]


@pytest.fixture(scope="module")
def server(home, insight):
    yield from _serving(home, "--insight", str(insight))


class _Page:
    """A page of the service, with what its console said."""

    def __init__(self, browser, server, shots: Path) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.shots = shots
        self.faults: list[str] = []
        self.failed_loads: list[str] = []
        self.expect_failed_loads = False  # a test of a refused request says so; elsewhere one is a fault
        self.page.on("pageerror", lambda err: self.faults.append(f"page error: {err}"))
        self.page.on("console", self._console)
        self.page.goto(server.url + "/")
        self.page.wait_for_selector("#status:has-text('Serving')")

    def _console(self, message) -> None:
        if message.type not in ("error", "warning"):
            return
        if message.text.startswith("Failed to load resource"):  # a refused request; the page says why itself
            self.failed_loads.append(message.text)
        else:
            self.faults.append(f"console {message.type}: {message.text}")

    def images_loaded(self, selector: str = "#grid img") -> list[int]:
        """The natural widths of the images, once each has loaded (0: broken)."""
        return self.page.locator(selector).evaluate_all(
            "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth, () => 0)))"
        )

    def ids(self) -> list[int]:
        return [int(i) for i in self.page.locator("#grid li").evaluate_all("cards => cards.map(c => c.dataset.id)")]

    def close(self, name: str) -> None:
        self.page.screenshot(path=str(self.shots / f"{name}.png"), full_page=True)
        self.context.close()


@pytest.fixture
def page(browser, server, tmp_path, request):
    p = _Page(browser, server, tmp_path)
    yield p
    p.close(request.node.name)
    assert not p.faults, p.faults
    assert p.expect_failed_loads or not p.failed_loads, p.failed_loads


@pytest.fixture(scope="module")
def shoe(fmnist, tmp_path_factory) -> Path:
    """A test Sneaker, scaled to 280x280, as a PNG file."""
    import numpy as np

    test = fmnist["test"]
    index = int(np.nonzero(test.labels == 7)[0][0])
    path = tmp_path_factory.mktemp("page") / "shoe.png"
    Image.fromarray(test.images[index]).resize((280, 280)).save(path)
    return path


def _search_id(p, pid: int) -> None:
    """Search by an id from the id form, and wait for the results."""
    p.fill("#query-id", str(pid))
    p.click("#id-form button[type=submit]")
    p.wait_for_selector(f"#query-caption:has-text('id {pid}')")
    p.wait_for_selector("#grid li")


def test_an_upload_shows_k_results_and_the_query_as_seen(page, shoe):
    p = page.page
    p.fill("#k", "6")
    p.set_input_files("#file", str(shoe))  # no extra click: choosing the file searches
    p.wait_for_selector("#grid li")
    assert len(page.ids()) == 6 and page.images_loaded() == [28] * 6
    assert p.locator("#query-view").is_visible() and "as fmsearch sees it" in p.inner_text("#query-caption")
    assert p.evaluate("document.getElementById('query-seen').naturalWidth") == 28
    summary = p.inner_text("#summary")
    assert "6 results, siamese" in summary and "embed" in summary and "total" in summary
    assert p.locator("#grid img").first.get_attribute("alt").endswith(f"id {page.ids()[0]}")


def test_clicking_a_result_searches_by_it(page, shoe):
    p = page.page
    p.set_input_files("#file", str(shoe))
    p.wait_for_selector("#grid li")
    first = page.ids()[0]
    p.locator("#grid li .hit").first.click()
    p.wait_for_url(f"**/?id={first}&*")
    p.wait_for_selector(f"#query-caption:has-text('id {first}')")
    assert "precision@10" in p.inner_text("#summary")  # a gallery image has a label to measure against


def test_a_class_filter_leaves_only_that_class(page):
    p = page.page
    _search_id(p, 60000)
    p.click(".chip:has-text('Sneaker')")
    p.wait_for_url("**class=Sneaker*")
    p.wait_for_selector("#grid li[data-label='Sneaker']")
    labels = p.locator("#grid li").evaluate_all("cards => cards.map(c => c.dataset.label)")
    assert labels and set(labels) == {"Sneaker"}
    assert p.locator("#grid li.other").count() == len(labels)  # the query is an Ankle boot: all outlined


def test_like_and_dislike_change_the_results_and_show_the_round(page):
    p = page.page
    p.goto(page.page.url.split("?")[0] + "?id=60001&method=siamese&k=10")
    p.wait_for_selector("#grid li")
    before = page.ids()
    p.locator("#grid li .dislike").nth(0).click()
    p.wait_for_selector("#rounds li")
    assert "round 1: 0 liked, 1 disliked, precision@10" in p.inner_text("#rounds")
    assert page.ids() != before and before[0] not in page.ids()
    p.locator("#grid li .like").nth(0).click()
    p.wait_for_selector("#rounds li:nth-child(2)")
    assert "round 2: 1 liked, 1 disliked" in p.inner_text("#rounds")


def test_the_methods_side_by_side_one_row_each(page, server):
    import httpx

    served = httpx.get(f"{server.url}/api/health").json()["methods"]
    p = page.page
    _search_id(p, 60002)
    p.click("#compare-methods")
    p.wait_for_selector(".method-row")
    rows = p.locator(".method-row").evaluate_all("rows => rows.map(r => r.dataset.method)")
    assert rows == served  # pixels and siamese here (no autoencoder: no fused row)
    assert all("precision@10" in t for t in p.locator(".method-row .label").all_inner_texts())


def test_a_sketch_drawn_with_the_mouse_finds_results(page):
    p = page.page
    box = p.locator("#canvas").bounding_box()
    x0, y0 = box["x"] + box["width"] * 0.15, box["y"] + box["height"] * 0.6
    p.mouse.move(x0, y0)
    p.mouse.down()
    for step in range(1, 11):  # the sole of a shoe, then its heel
        p.mouse.move(x0 + box["width"] * 0.07 * step, y0, steps=2)
    p.mouse.move(x0 + box["width"] * 0.7, y0 - box["height"] * 0.3, steps=5)
    p.mouse.up()
    p.click("#sketch-search")
    p.wait_for_selector("#grid li")
    assert len(page.ids()) == 10 and "sketch" in p.inner_text("#query-caption")
    lit = p.locator("#query-seen").evaluate(  # what the service saw: the stroke, not a blank image
        """img => img.decode().then(() => { const c = document.createElement("canvas"); c.width = c.height = 28;
             const g = c.getContext("2d"); g.drawImage(img, 0, 0);
             return g.getImageData(0, 0, 28, 28).data.filter((v, i) => i % 4 === 0 && v > 64).length; })"""
    )
    assert 20 < lit < 28 * 28 - 20, lit


def test_a_non_image_upload_shows_an_error_and_the_page_keeps_working(page, tmp_path):
    p = page.page
    bad = tmp_path / "notes.txt"
    bad.write_text("not an image")
    p.set_input_files("#file", str(bad))
    p.wait_for_selector("#error:not([hidden])")
    assert p.inner_text("#error") == "image: not an image file Pillow can read"
    page.expect_failed_loads = True
    assert page.failed_loads  # the refused request, which the page put in words above
    _search_id(p, 60003)
    assert p.locator("#error").is_hidden()


def test_the_back_button_restores_the_previous_search(page, shoe):
    p = page.page
    p.set_input_files("#file", str(shoe))
    p.wait_for_selector("#grid li")
    upload_ids = page.ids()
    p.fill("#query-id", "60004")
    p.click("#id-form button[type=submit]")
    p.wait_for_url("**/?id=60004&*")
    p.wait_for_selector("#query-caption:has-text('id 60004')")
    p.go_back()
    p.wait_for_selector("#query-caption:has-text('shoe.png')")
    p.wait_for_selector(f"#grid li[data-id='{upload_ids[0]}']")
    assert page.ids() == upload_ids


def test_why_after_a_sift_rerank_shows_the_sift_matches(page):
    """Results SIFT reordered are explained by SIFT's matched keypoints."""
    p = page.page
    p.check("#rerank")
    _search_id(p, 60005)
    p.wait_for_url("**rerank=sift*")
    p.locator("#grid li .why").first.click()
    p.wait_for_selector("#why[open] #why-sift:not([hidden])")
    assert "SIFT keypoints" in p.inner_text("#why-figures") and "MaxSim score" in p.inner_text("#why-figures")
    p.wait_for_selector("#why-drawing[src^='blob:']")
    assert p.evaluate("document.getElementById('why-drawing').naturalWidth") > 28
    assert p.locator("#why-views figure").count() == 0


# the colours of a heat canvas: how many pixels are reddened (heat > 0) and blued (heat < 0)
HEAT_COLOURS = """c => { const d = c.getContext('2d').getImageData(0, 0, 28, 28).data; let red = 0, blue = 0;
  for (let i = 0; i < d.length; i += 4) { if (d[i] > d[i + 2] + 40) red++; if (d[i + 2] > d[i] + 40) blue++; }
  return [red, blue]; }"""


def test_why_shows_the_searched_methods_heatmaps(page):
    """The method searched explains its own hit: the query and the hit, each
    with its heat over it; Escape closes the panel."""
    p = page.page
    _search_id(p, 60005)
    method = p.input_value("#method")
    hit = p.locator("#grid li").nth(1)
    hit_id = hit.get_attribute("data-id")
    hit.locator(".why").click()
    p.wait_for_selector(f"#why[open] .why-method[data-method='{method}'] canvas.heat >> nth=1")
    assert f"(id {hit_id})" in p.inner_text("#why-title")
    assert f"{method}: cosine" in p.inner_text(".why-method figcaption")
    assert p.locator("#why-sift").is_hidden()
    for canvas in p.locator(".why-method canvas.heat").all():
        red, _ = canvas.evaluate(HEAT_COLOURS)
        assert red > 0  # some part made the pair similar
    p.keyboard.press("Escape")
    p.wait_for_selector("#why:not([open])", state="attached")


def test_the_results_stay_usable_while_an_explanation_is_on_its_way(page):
    """An explanation held back by the network: meanwhile a result is
    searched by, and its results close the panel; the late answer is not
    drawn over a newer one."""
    p = page.page
    held = []
    p.route("**/api/explain", lambda route: held.append(route))
    _search_id(p, 60005)
    p.locator("#grid li .why").first.click()
    p.wait_for_selector("#why[open] #why-status:has-text('Explaining with')")
    third = p.locator("#grid li").nth(2).get_attribute("data-id")
    p.click("#grid li:nth-child(3) .hit")  # not modal: the results can be used
    p.wait_for_selector(f"#query-caption:has-text('id {third}')")
    assert p.locator("#why[open]").count() == 0 and len(held) == 1  # new results: the panel closed
    with p.expect_response("**/api/explain"):
        held[0].continue_()  # the old answer arrives now
    p.unroute("**/api/explain")
    second = p.locator("#grid li").nth(1)
    second_id = second.get_attribute("data-id")
    second.locator(".why").click()
    p.wait_for_selector("#why[open] .why-method canvas.heat >> nth=1")
    assert f"(id {second_id})" in p.inner_text("#why-title") and p.locator(".why-method").count() == 1


def test_why_of_a_fusion_or_a_rescored_list_explains_each_method(page):
    p = page.page
    p.select_option("#fuse", "pixels")
    _search_id(p, 60010)
    p.wait_for_url("**fusion=rrf*")
    p.locator("#grid li .why").first.click()
    p.wait_for_selector("#why[open] .why-method[data-method='pixels']")
    methods = p.locator(".why-method").evaluate_all("fs => fs.map(f => f.dataset.method)")
    assert methods == [p.input_value("#method"), "pixels"]
    assert p.locator(".why-method canvas.heat").count() == 4
    p.select_option("#fuse", "")  # a rescored list: the shortlist's method, and the one that ordered it
    p.select_option("#rescore-with", "pixels")
    p.wait_for_url("**rescore_with=pixels*")
    p.wait_for_selector("#grid li")
    p.locator("#grid li .why").first.click()
    p.wait_for_selector("#why[open] .why-method[data-method='pixels']")
    methods = p.locator(".why-method").evaluate_all("fs => fs.map(f => f.dataset.method)")
    assert methods == [p.input_value("#method"), "pixels"]


def test_a_refused_explanation_is_said_in_the_panel(page):
    p = page.page
    page.expect_failed_loads = True
    p.route(
        "**/api/explain",
        lambda route: route.fulfill(status=400, content_type="application/json", body='{"error": "no such thing"}'),
    )
    _search_id(p, 60005)
    p.locator("#grid li .why").first.click()
    p.wait_for_selector("#why-status:has-text('no such thing')")
    assert p.locator("#why-views figure").count() == 0 and p.locator("#error").is_hidden()


def test_the_grid_works_from_the_keyboard(page):
    p = page.page
    p.fill("#query-id", "60006")
    p.press("#query-id", "Enter")
    p.wait_for_selector("#grid li")
    first = page.ids()[0]
    p.locator("#grid li .hit").first.focus()
    p.keyboard.press("Enter")
    p.wait_for_url(f"**/?id={first}&*")
    labelled = p.locator("label[for]").evaluate_all("ls => ls.map(l => l.htmlFor)")
    assert {"file", "query-id", "method", "k", "quantization"} <= set(labelled)


def test_a_file_over_the_limit_and_an_unreachable_service_are_said_in_words(page, tmp_path):
    p = page.page
    big = tmp_path / "big.png"
    big.write_bytes(b"\0" * (20 * 2**20 + 1))  # over the service's default limit: refused before it is sent
    p.set_input_files("#file", str(big))
    p.wait_for_selector("#error:not([hidden])")
    assert p.inner_text("#error") == "big.png is 20,971,521 bytes, over the service's limit of 20,971,520 bytes"
    page.expect_failed_loads = True
    p.route("**/api/search", lambda route: route.abort())  # the service gone, as the browser sees it
    p.fill("#query-id", "60007")
    p.click("#id-form button[type=submit]")
    p.wait_for_selector("#error:has-text('cannot be reached')")
    assert p.inner_text("#error") == "The service cannot be reached: is fmsearch serve running?"


def test_with_an_api_key_the_page_asks_for_it_and_then_searches(browser, home, tmp_path):
    from playwright.sync_api import expect

    key = "page-test-key"
    server = Server(home, "--api-key", key)
    try:
        server.wait_ready_with({"X-API-Key": key})
        context = browser.new_context()
        p = context.new_page()
        faults: list[str] = []
        p.on("pageerror", lambda err: faults.append(str(err)))
        p.goto(server.url + "/")
        p.wait_for_selector("#key-form:not([hidden])")
        assert "API key" in p.inner_text("#error")
        p.fill("#api-key", key)
        p.click("#key-form button[type=submit]")
        p.wait_for_selector("#status:has-text('Serving')")
        _search_id(p, 60008)
        assert len(p.locator("#grid li").all()) == 10 and not faults
        expect(p.locator("#grid img:not([src^='blob:']), #query-seen:not([src^='blob:'])")).to_have_count(0)
        widths = p.locator("#grid img, #query-seen").evaluate_all(  # fetched with the key: an <img> cannot send it
            "imgs => Promise.all(imgs.map(i => i.decode().then(() => i.naturalWidth, () => 0)))"
        )
        assert widths == [28] * 11
        p.screenshot(path=str(tmp_path / "api-key.png"))
        context.close()
    finally:
        code, log = server.stop()
    assert code == 0 and key not in log


def test_excluding_a_class_and_a_refused_mode_leave_the_page_as_it_was(page):
    p = page.page
    _search_id(p, 60000)  # an Ankle boot
    chip = p.locator(".chip:has-text('Ankle boot')")
    chip.click()
    p.wait_for_url("**class=Ankle*")
    chip.click()  # again: never this class
    p.wait_for_url("**exclude=Ankle*")
    p.wait_for_selector("#grid li")
    labels = p.locator("#grid li").evaluate_all("cards => cards.map(c => c.dataset.label)")
    assert labels and "Ankle boot" not in labels
    before, url = page.ids(), p.url
    page.expect_failed_loads = True
    p.select_option("#quantization", "binary")  # not offered for siamese: refused in words
    p.wait_for_selector("#error:not([hidden])")
    assert "binary quantisation is not offered" in p.inner_text("#error")
    assert page.ids() == before and p.url == url and "id 60000" in p.inner_text("#query-caption")


def test_the_keyboard_keeps_its_place(page):
    p = page.page
    _search_id(p, 60001)
    chip = p.locator(".chip:has-text('Trouser')")
    chip.focus()
    p.keyboard.press("Space")
    p.wait_for_url("**class=Trouser*")
    assert p.evaluate("document.activeElement.dataset.key") == "chip:Trouser"
    p.locator("#grid li .hit").first.focus()
    first = page.ids()[0]
    p.keyboard.press("Enter")
    p.wait_for_url(f"**/?id={first}&*")
    p.wait_for_selector(f"#query-caption:has-text('id {first}')")
    assert p.evaluate("document.activeElement.className") == "hit"  # on the new list's first result


def test_back_to_the_page_before_any_search_clears_it(page):
    p = page.page
    _search_id(p, 60002)
    p.go_back()
    p.wait_for_selector("#query-view", state="hidden")
    assert page.ids() == [] and p.url.endswith("/")


def test_query_expansion_is_a_mode_of_the_page(page, server):
    """Expand by top N: the page asks the service for the expanded search,
    shows its hits (the API's own answer to the same request), and keeps N
    in the URL; back to 0 is the plain search again."""
    import json
    import urllib.request

    p = page.page
    _search_id(p, 60003)
    plain = page.ids()
    p.fill("#expand", "5")
    p.dispatch_event("#expand", "change")
    p.wait_for_url("**expand=5*")
    request = urllib.request.Request(
        server.url + "/api/search",
        method="POST",
        data=json.dumps({"id": 60003, "method": "siamese", "k": 10, "expand": 5}).encode(),
        headers={"content-type": "application/json"},
    )
    expected = [h["id"] for h in json.loads(urllib.request.urlopen(request).read())["hits"]]
    p.wait_for_function(
        "ids => [...document.querySelectorAll('#grid li')].map(c => +c.dataset.id).join() === ids.join()", arg=expected
    )
    assert expected != plain  # the expansion changes this query's list: the test could tell the two apart
    p.fill("#expand", "0")
    p.dispatch_event("#expand", "change")
    p.wait_for_function(
        "ids => [...document.querySelectorAll('#grid li')].map(c => +c.dataset.id).join() === ids.join()", arg=plain
    )
    assert "expand" not in p.url


def _map_position(p, data: dict, row: int) -> tuple[float, float]:
    """Where the page draws a map point, in page coordinates (from the view it publishes)."""
    xmin, ymin, scale, pad = (float(v) for v in p.get_attribute("#map", "data-view").split(","))
    p.locator("#map").scroll_into_view_if_needed()  # a click lands only inside the viewport
    box = p.locator("#map").bounding_box()
    width = float(p.evaluate("document.getElementById('map').width"))
    cx = pad + (data["x"][row] - xmin) * scale
    cy = width - pad - (data["y"][row] - ymin) * scale
    return box["x"] + cx * box["width"] / width, box["y"] + cy * box["height"] / width


def test_the_map_marks_the_search_and_a_click_on_a_point_searches_by_it(page, insight):
    import json

    import numpy as np

    p = page.page
    data = json.loads((insight / "map-siamese" / "map.json").read_text())
    p.wait_for_selector("#map-caption:has-text('Click a point to search by it')")
    assert "siamese: 300 images, tsne (neighbour keeping@10" in p.inner_text("#map-caption")
    assert p.locator("#map-legend li").count() == 10
    _search_id(p, data["ids"][7])
    hits = page.ids()
    p.wait_for_selector(f"#map[data-marked^='{data['ids'][7]},']")
    # every hit is one of the 300 mapped images: the query and all its results are marked
    assert p.get_attribute("#map", "data-marked") == ",".join(map(str, [data["ids"][7], *hits]))
    assert f"the query (yellow) and {len(hits)} of its {len(hits)} results" in p.inner_text("#map-caption")
    # the point farthest from any other: a click on it can mean only it
    xy = np.column_stack([data["x"], data["y"]])
    gaps = np.linalg.norm(xy[:, None] - xy[None], axis=2) + np.eye(len(xy)) * 1e9
    row = int(np.argmax(gaps.min(axis=1)))
    p.mouse.click(*_map_position(p, data, row))
    p.wait_for_selector(f"#query-caption:has-text('id {data['ids'][row]}:')")
    p.wait_for_url(f"**/?id={data['ids'][row]}&*")
    p.wait_for_selector(f"#map[data-marked^='{data['ids'][row]},']")
    p.mouse.click(*_map_position(p, data, row), delay=0)  # the same point again: the same search, no fault


def test_the_duplicates_view_shows_conflicts_first_and_searches_by_a_copy(page, insight):
    import json

    p = page.page
    p.wait_for_selector("#dup-summary:has-text('siamese, score >= 0.99')")
    assert p.locator("#dup-rows li.conflict").count() == 0 and p.locator("#dup-rows li").count() > 0
    p.select_option("#method", "pixels")
    written = json.loads((insight / "duplicates-pixels-train" / "duplicates.json").read_text())
    conflicts = written["summary"]["conflict_groups"]
    p.wait_for_selector("#dup-summary:has-text('pixels, score >= 0.96')")
    assert f"{conflicts} with conflicting labels" in p.inner_text("#dup-summary")
    rows = p.locator("#dup-rows li")
    assert rows.count() == min(len(written["groups"]), 50)
    kinds = rows.evaluate_all("rows => rows.map(r => r.classList.contains('conflict'))")
    assert kinds == [True] * conflicts + [False] * (len(kinds) - conflicts)  # conflicts first
    first = written["groups"][0]
    assert rows.first.get_attribute("data-ids") == ",".join(map(str, first["ids"]))
    assert "conflicting labels: " in rows.first.inner_text()
    assert page.images_loaded("#dup-rows li:first-child img") == [28] * len(first["ids"])
    # pixels has no map here: the page says how to make one
    assert "No map of pixels yet: make one with `fmsearch map --method pixels`" in p.inner_text("#map-caption")
    assert p.locator("#map").is_hidden()
    p.locator("#dup-rows li:first-child button").nth(1).click()
    p.wait_for_selector(f"#query-caption:has-text('id {first['ids'][1]}:')")
    p.wait_for_selector("#grid li")


def test_the_label_issues_view_shows_suspects_beside_their_neighbours(page, insight):
    import json

    p = page.page
    p.wait_for_selector("#issue-summary:has-text('No label-issues run of siamese yet')")
    assert "`fmsearch label-issues --method siamese`" in p.inner_text("#issue-summary")
    p.select_option("#method", "pixels")
    written = json.loads((insight / "label-issues-pixels-train" / "label_issues.json").read_text())
    flagged = written["summary"]["flagged"]
    p.wait_for_selector(f"#issue-summary:has-text('{flagged} of 300 images are nearer another class')")
    rows = p.locator("#issue-rows li")
    assert rows.count() == min(len(written["suspects"]), 50)
    kinds = rows.evaluate_all("rows => rows.map(r => r.classList.contains('conflict'))")
    assert kinds == [True] * min(flagged, 50) + [False] * (len(kinds) - min(flagged, 50))  # the flagged ones first
    first = written["suspects"][0]
    assert rows.first.get_attribute("data-id") == str(first["id"])
    assert f"labelled {first['given']}, nearer {first['suggested']}" in rows.first.inner_text()
    shown = 1 + min(8, len(first["neighbours"]))  # the suspect, then its neighbours
    assert page.images_loaded("#issue-rows li:first-child img") == [28] * shown
    neighbour = first["neighbours"][0]["id"]
    p.locator("#issue-rows li:first-child button").nth(1).click()
    p.wait_for_selector(f"#query-caption:has-text('id {neighbour}:')")
    p.wait_for_selector("#grid li")
    p.locator("#issue-rows li:first-child button.suspect").click()
    p.wait_for_selector(f"#query-caption:has-text('id {first['id']}:')")


@pytest.fixture(scope="module")
def gallery_server(gallery_home):
    yield from _serving(gallery_home)


def test_the_page_switches_to_a_folder_gallery(browser, gallery_server, shoe, tmp_path):
    """Its methods and classes in the controls; an upload finds its images,
    shown with their paths; a class chip of its own filters; a result clicked
    searches by its id; back to FMNIST, FMNIST's chips again."""
    p_ = _Page(browser, gallery_server, tmp_path)
    try:
        p = p_.page
        assert p.locator("#collection-row").is_visible() and "folder galleries: shop" in p.inner_text("#status")
        p.select_option("#collection", "shop")
        assert p.locator("#chips .chip").all_inner_texts()[:2] == ["Ankle boot", "Bag"]  # its own, sorted
        assert p.locator("#rerank").is_disabled() and p.locator("#insight").is_hidden()
        p.set_input_files("#file", str(shoe))
        p.wait_for_selector("#grid li[data-path]")
        paths = p.locator("#grid li").evaluate_all("cards => cards.map(c => c.dataset.path)")
        assert len(paths) == 10 and all(path.count("/") == 1 for path in paths)
        assert paths[0].startswith("Sneaker/") and p_.images_loaded() == [28] * 10
        assert paths[0] in p.inner_text("#grid li:first-child")
        p.click("#chips .chip:has-text('Bag')")
        p.wait_for_selector("#grid li[data-label='Bag']")
        p.wait_for_function("() => [...document.querySelectorAll('#grid li')].every(c => c.dataset.label === 'Bag')")
        first_id, first_path = (
            p.locator("#grid li").first.get_attribute("data-id"),
            p.locator("#grid li").first.get_attribute("data-path"),
        )
        p.click("#grid li:first-child .hit")
        p.wait_for_selector(f"#query-caption:has-text('id {first_id}: {first_path}, Bag')")
        p.wait_for_url(f"**/?collection=shop&id={first_id}&*")
        p.select_option("#collection", "")
        assert p.locator("#chips .chip").all_inner_texts()[0] == "T-shirt/top"
        _search_id(p, 60000)
        assert p.locator("#grid li[data-path]").count() == 0
    finally:
        p_.close("gallery")
    assert not p_.faults, p_.faults
    assert not p_.failed_loads, p_.failed_loads
