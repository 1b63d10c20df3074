"""The click commands: happy paths, and every bad input as one clean line."""

from __future__ import annotations

import json

import click
import pytest
from click.testing import CliRunner

from fmsearch.cli import main
from fmsearch.cli.common import parse_ks
from fmsearch.images.files import save_png


def run(home, *args):
    return CliRunner().invoke(main, ["--home", str(home), *args])


def test_help_lists_commands():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0
    for cmd in ("ingest", "query", "evaluate", "collections", "data", "bench"):
        assert cmd in result.output


def test_collections(home):
    result = run(home, "collections")
    assert result.exit_code == 0
    assert "fmnist_pixels" in result.output and "300" in result.output and "complete" in result.output
    rows = [json.loads(line) for line in run(home, "collections", "--json").output.splitlines()]
    assert [r["collection"] for r in rows] == ["fmnist_pixels", "fmnist_siamese", "fmnist_sift"]
    assert rows[0] == {
        **rows[0],
        "collection": "fmnist_pixels",
        "points": 300,
        "dim": 784,
        "method": "pixels",
        "complete": True,
    }


def test_query_by_id_table_and_json(home):
    result = run(home, "query", "--id", "60000", "--method", "pixels", "-k", "10")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].split() == ["rank", "id", "score", "class"] and len(lines) == 11
    hits = [
        json.loads(line)
        for line in run(home, "query", "--id", "5", "-m", "pixels", "-k", "4", "--json").output.splitlines()
    ]
    assert len(hits) == 4 and 5 not in [h["id"] for h in hits]
    assert set(hits[0]) == {"rank", "id", "score", "label", "class_name", "split", "index"}


def test_query_class_filter(home):
    out = run(home, "query", "--id", "60000", "-m", "pixels", "--class", "Sneaker", "--json").output
    hits = [json.loads(line) for line in out.splitlines()]
    assert len(hits) == 10 and {h["class_name"] for h in hits} == {"Sneaker"}


def test_query_expand(home):
    """--expand N gives the Searcher's expanded search; a bad N is one line."""
    from fmsearch.search import Searcher, SearchMode
    from fmsearch.store import open_store

    out = run(home, "query", "--id", "60003", "-m", "siamese", "-k", "5", "--expand", "3", "--json").output
    with open_store(None, home=home) as store:
        expected = Searcher(store).search(SearchMode("siamese", expand=3), id=60003, k=5)
    assert [json.loads(line)["id"] for line in out.splitlines()] == [h.id for h in expected]
    result = run(home, "query", "--id", "60003", "-m", "siamese", "--expand", "-1")
    assert result.exit_code == 1 and result.output.strip() == "Error: --expand must be between 0 (off) and 100, got -1"


def test_ingest_on_disk_reaches_the_collection(tmp_path, fmnist):
    """ingest --on-disk: the collection's vectors are memory-mapped, as its
    metadata and the engine's own configuration say; asked of a collection
    built in memory, it is refused in one line (nothing changed) until
    --recreate rebuilds it."""
    from test_modes import vectors_on_disk

    from fmsearch.store.edge import EdgeStore

    def ingest(*args):
        return CliRunner().invoke(
            main, ["--home", str(tmp_path), "ingest", "-m", "pixels", "--limit", "100", "--quantization", "int8", *args]
        )

    assert ingest().exit_code == 0
    result = ingest("--on-disk")
    assert result.exit_code == 1 and result.output.strip() == (
        "Error: fmnist_pixels_int8 exists with its vectors in memory; ingest again with --recreate to rebuild it "
        "with them on disk"
    ), result.output
    with EdgeStore(tmp_path) as store:
        info = store.info("fmnist_pixels_int8")
        assert info.metadata["complete"] is True and info.metadata["vectors_on_disk"] is False
        assert not vectors_on_disk(store, "fmnist_pixels_int8")
    result = ingest("--on-disk", "--recreate")
    assert result.exit_code == 0, result.output
    with EdgeStore(tmp_path) as store:
        assert store.info("fmnist_pixels_int8").metadata["vectors_on_disk"] is True
        assert vectors_on_disk(store, "fmnist_pixels_int8") and store.count("fmnist_pixels_int8") == 100


def test_query_hnsw_ef_and_acorn_reach_the_store(home, monkeypatch):
    """--hnsw-ef and --acorn are how every query of the command searches the
    graph, a recommend query's too; out of range ef is refused in one line."""
    from fmsearch.store.edge import EdgeStore

    seen = []
    for name in ("query_batch", "recommend"):

        def spy(self, *a, _real=getattr(EdgeStore, name), **kw):  # noqa: B008 - binds this turn's method
            seen.append((kw.get("hnsw_ef"), kw.get("acorn")))
            return _real(self, *a, **kw)

        monkeypatch.setattr(EdgeStore, name, spy)
    for args, want in (
        (["--id", "60000", "--hnsw-ef", "512"], (512, False)),
        (["--id", "60000", "--class", "Sneaker", "--hnsw-ef", "1024", "--acorn"], (1024, True)),
        (["--positive", "60000", "--class", "Bag", "--acorn"], (None, True)),
        (["--id", "60000"], (None, False)),
    ):
        seen.clear()
        result = CliRunner().invoke(main, ["--home", str(home), "query", "-m", "pixels", *args])
        assert result.exit_code == 0, result.output
        assert seen and set(seen) == {want}, (args, seen)
    result = CliRunner().invoke(main, ["--home", str(home), "query", "--id", "60000", "-m", "pixels", "--hnsw-ef", "0"])
    assert result.exit_code != 0 and "--hnsw-ef" in result.output and "Traceback" not in result.output


def test_query_image_file(home, fmnist, tmp_path):
    save_png(fmnist["train"].images[17], tmp_path / "q.png")
    hits = [
        json.loads(x)
        for x in run(home, "query", str(tmp_path / "q.png"), "-m", "pixels", "-k", "2", "--json").output.splitlines()
    ]
    assert hits[0]["id"] == 17


def test_missing_collection(tmp_path):
    result = run(tmp_path / "empty-home", "query", "--id", "3", "-m", "pixels")
    assert result.exit_code == 1
    assert "collection fmnist_pixels not found" in result.output and "fmsearch ingest" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize(
    "args, env, message",
    [
        (["--retries", "11"], {}, "--retries must be 0-10, got 11"),
        (["--retries", "-1"], {}, "--retries must be 0-10, got -1"),
        (["--timeout", "0"], {}, "--timeout must be 1-3600 seconds, got 0"),
        (["--timeout", "3601"], {}, "--timeout must be 1-3600 seconds, got 3601"),
        (["--prefix", "../x_"], {}, "--prefix must be letters, digits, '_' and '-', got '../x_'"),
        ([], {"FMSEARCH_PREFIX": "a b"}, "--prefix must be letters, digits, '_' and '-', got 'a b'"),
        (
            ["--qdrant-url", "qdrant:6333"],
            {},
            "a Qdrant URL starts with http:// or https:// (or local:PATH), got 'qdrant:6333'",
        ),
    ],
)
def test_bad_store_settings_are_one_line(tmp_path, args, env, message):
    """The store settings are checked once, where the group makes them, before any command runs."""
    result = CliRunner().invoke(main, ["--home", str(tmp_path / "h"), *args, "collections"], env=env)
    assert result.exit_code == 1 and result.output == f"Error: {message}\n"
    assert not (tmp_path / "h").exists()


def test_store_settings_reach_the_command(tmp_path):
    """Every global store option, from its flag or its variable, is in the one value a command gets."""
    from fmsearch.store import StoreSettings

    seen = []
    cmd = click.command("probe")(click.pass_obj(lambda settings: seen.append(settings.store_settings)))
    main.add_command(cmd)
    try:
        result = CliRunner().invoke(
            main,
            ["--qdrant-url", "http://q:6333", "--retries", "0", "--timeout", "5", "probe"],
            env={
                "QDRANT_PREFER_GRPC": "1",
                "FMSEARCH_PREFIX": "p_",
                "QDRANT_API_KEY": "k",
                "FMSEARCH_HOME": str(tmp_path),
            },
        )
    finally:
        main.commands.pop("probe")
    assert result.exit_code == 0, result.output
    assert seen == [
        StoreSettings(
            url="http://q:6333", api_key="k", prefer_grpc=True, retries=0, timeout=5, prefix="p_", home=str(tmp_path)
        )
    ]


@pytest.mark.slow
def test_unreachable_server_names_it_and_hides_the_key():
    url = "http://127.0.0.1:9"  # discard port: nothing listens
    result = CliRunner().invoke(
        main, ["--qdrant-url", url, "--qdrant-api-key", "s3cret-key", "--timeout", "2", "collections"]
    )
    assert result.exit_code == 1
    assert f"cannot reach Qdrant at {url}" in result.output
    assert "s3cret-key" not in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("args", [["query", "-m", "pixels"], ["query", "x.png", "--id", "3", "-m", "pixels"]])
def test_image_xor_id(home, args):
    result = run(home, *args)
    assert result.exit_code == 1 and "give exactly one of: an image, --id, or --positive examples" in result.output
    assert result.output.strip().splitlines() == [result.output.strip()]  # one line, no usage text


def test_cli_runs_against_server_code_path(tmp_path, fmnist):
    url = f"local:{tmp_path / 'q'}"
    result = CliRunner().invoke(main, ["--qdrant-url", url, "ingest", "-m", "pixels", "--limit", "50"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["--qdrant-url", url, "query", "--id", "3", "-m", "pixels", "-k", "3", "--json"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 3


def test_data_command(fmnist):
    result = CliRunner().invoke(main, ["data", "--no-download"])
    assert result.exit_code == 0
    assert "train: 60000 images verified" in result.output and "test: 10000 images verified" in result.output


def test_bench_search_suite_small(tmp_path, fmnist):
    """The benchmark runs and reports sane values (no timing asserts); the
    class filter and the ingest split are timed on the real galleries only."""
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "search",
            "--sizes",
            "1000",
            "--synthetic",
            "2000",
            "--no-local",
            "--queries",
            "10",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "search.json").read_text())
    assert [r["points"] for r in data["rows"]] == [1000, 2000]
    assert all(0.9 <= r["hnsw_recall_at_10"] <= 1.0 for r in data["rows"])
    assert [("edge_filtered" in r, "local" in r) for r in data["rows"]] == [(True, False), (False, False)]
    assert "| pixels 1k |" in result.output and "| pixels 1k | qdrant-edge |" in result.output


def test_bench_search_suite_has_the_store_suites_figures(tmp_path, fmnist):
    """What the store suite measured (merged in): both stores' ingest split
    and their class-filtered query on the same gallery, local over Edge."""
    result = CliRunner().invoke(
        main, ["bench", "search", "--sizes", "1000", "--synthetic", "0", "--queries", "10", "--out-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    (row,) = json.loads((tmp_path / "search.json").read_text())["rows"]
    assert row["edge_filtered"]["n"] == 10 and row["local_filtered"]["n"] == 10
    assert all(row[k]["upsert_s"] > 0 for k in ("edge_ingest", "local_ingest"))
    assert (
        "| pixels 1k | qdrant-client local |" in result.output and "| pixels 1k | **local / edge** |" in result.output
    )
    assert not (tmp_path / "store.json").exists()


@pytest.mark.slow
def test_bench_embed_suite_small(tmp_path, fmnist):
    """Embed suite on the shipped siamese artifact: a row per method, ingest
    of the asked gallery, ratio against pixels; Keras against ONNX Runtime at
    each batch size with the vectors' difference; command-line query times;
    the installs' sizes (no timing asserts)."""
    result = CliRunner().invoke(
        main, ["bench", "embed", "--methods", "pixels,siamese", "--gallery", "1000", "--out-dir", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "embed.json").read_text())
    assert [(r["method"], r["dim"]) for r in data["rows"]] == [("pixels", 784), ("siamese", 64)]
    assert all(r["ingest"]["points"] == 1000 and not r["ingest"]["projected"] for r in data["rows"])
    assert all(r["ingest"]["load_s"] > 0 and r["ingest"]["overlap"]["speedup"] > 0 for r in data["rows"])
    assert data["rows"][0]["ingest_vs_pixels"] == 1.0
    assert all(r["images_per_s_batched"] > 0 for r in data["rows"])
    (runtime,) = data["runtimes"]
    assert runtime["method"] == "siamese" and set(runtime["batches"]) == {"1", "16", "64", "1024"}
    assert runtime["max_abs_diff"] <= 1e-5  # the training extra is installed where the tests run
    assert all(c["keras_ms"] > 0 and c["onnx_ms"] > 0 for c in runtime["batches"].values())
    assert set(data["cli_query"]) == {"pixels", "siamese"} and data["cli_query"]["pixels"]["vs_pixels"] == 1.0
    sizes = data["install_bytes"]
    assert 0 < sizes["default"]["total"] < sizes["with [train]"]["total"]
    assert "tensorflow" in sizes["with [train]"]["largest"] and "tensorflow" not in sizes["default"]["largest"]


def test_bench_embed_unknown_method(tmp_path):
    result = CliRunner().invoke(main, ["bench", "embed", "--methods", "pixels,nope", "--out-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "nope" in result.output and "Traceback" not in result.output


def test_bench_modes_suite_on_the_built_store(tmp_path, fmnist):
    """The modes suite times what `fmsearch ingest` built: a row per built
    mode, the ones not built listed as skipped, the plain query as the 1.0x
    baseline and the bytes each mode reads (no timing asserts)."""
    home = tmp_path / "home"
    for extra in ((), ("--quantization", "int8")):
        result = CliRunner().invoke(main, ["--home", str(home), "ingest", "-m", "pixels", "--limit", "300", *extra])
        assert result.exit_code == 0, result.output
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(home),
            "bench",
            "modes",
            "--methods",
            "pixels",
            "--queries",
            "10",
            "--out-dir",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((tmp_path / "out" / "modes.json").read_text())
    rows = {r["mode"]: r for r in data["modes"]}
    assert list(rows) == [
        "pixels",
        "pixels, expanded by 3",
        "pixels, expanded by 10",
        "pixels [int8, rescore, oversampling 4]",
        "pixels [int8, rescore, oversampling 1]",
        "pixels [int8, no rescore]",
    ]
    assert rows["pixels"]["vs_plain"] == 1.0
    assert [r["settings"].get("expand") for r in rows.values()] == [0, 3, 10, 0, 0, 0]
    assert [r["settings"].get("oversampling") for r in rows.values()] == [None, None, None, 4.0, 1.0, None]
    assert [r["bytes_searched"] for r in rows.values()] == [3136, 3136, 3136, 784, 784, 784]
    assert all(r["disk_bytes_per_point"] > r["bytes_float32"] for r in rows.values())
    assert {s["mode"] for s in data["skipped"]} == {
        "pixels [binary, rescore, oversampling 16]",
        "pixels [binary, rescore, oversampling 4]",
        "pixels [binary, no rescore]",
    }
    assert "skipped pixels [binary, no rescore]: binary quantisation is not offered for pixels" in result.output


def test_bench_quantization_suite_small(tmp_path, fmnist):
    """Every quantisation of a method, offered or not, against numpy's exact
    top 10 (no timing asserts)."""
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "quantization",
            "--methods",
            "pixels",
            "--gallery",
            "1000",
            "--queries",
            "10",
            "--out-dir",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "quantization.json").read_text())["rows"]
    assert [(r["quantization"], r["offered"]) for r in rows] == [("none", True), ("int8", True), ("binary", False)]
    assert rows[0]["negative_fraction"] == 0.0  # why binary is not offered for pixels
    assert set(rows[1]["recall_rescore"]) == {"1", "2", "4", "8", "16"}
    assert all(0 <= v <= 1 for r in rows[1:] for v in (r["recall_no_rescore"], *r["recall_rescore"].values()))
    assert "| pixels | 784 | 0% | binary | no |" in result.output


def test_bench_modes_suite_without_collections(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "--home",
            str(tmp_path),
            "bench",
            "modes",
            "--methods",
            "pixels",
            "--queries",
            "10",
            "--out-dir",
            str(tmp_path / "out"),
        ],
    )
    assert result.exit_code != 0
    assert "run `fmsearch ingest` first" in result.output and "Traceback" not in result.output


#: each suite's own options (and --out-dir, --data-dir): nothing another suite takes
SUITE_OPTIONS = {
    "search": {"--sizes", "--synthetic", "--local", "--queries"},
    "embed": {"--methods", "--gallery"},
    "rerank": {"--gallery", "--queries"},
    "modes": {"--methods", "--queries"},
    "quantization": {"--methods", "--gallery", "--queries"},
    "serve": {"--methods", "--clients", "--uploads", "--workers", "--duration"},
    "scale": {
        "--sizes",
        "--kinds",
        "--methods",
        "--queries",
        "--linked-fields",
        "--on-disk",
        "--quantization",
        "--full-scan-threshold",
        "--reference",
    },
    "label-issues": {"--method", "--points", "--inject-noise", "--noise", "--seed"},
    "explain": {"--methods", "--pairs", "--sweep", "--seed", "--service"},
    "all": set(),
}


def test_bench_help_lists_one_subcommand_per_suite():
    result = CliRunner().invoke(main, ["bench", "--help"])
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.split("Commands:")[1].strip().splitlines()]
    assert listed == sorted(SUITE_OPTIONS)
    assert "--suite" not in result.output


@pytest.mark.parametrize("suite", SUITE_OPTIONS)
def test_each_bench_subcommand_has_only_its_own_options(suite):
    from fmsearch.cli.bench_cmd import command

    opts = {o for p in command.commands[suite].params for o in p.opts if o.startswith("--")}
    assert opts == SUITE_OPTIONS[suite] | {"--out-dir", "--data-dir"}
    result = CliRunner().invoke(main, ["bench", suite, "--help"])
    assert result.exit_code == 0 and all(o in result.output for o in SUITE_OPTIONS[suite])


@pytest.mark.parametrize(
    "args, message",
    [
        (["search", "--gallery", "1000"], "No such option '--gallery'"),
        (["search", "--methods", "pixels"], "No such option '--methods'"),
        (["embed", "--queries", "10"], "No such option '--queries'"),
        (["embed", "--sizes", "1000"], "No such option '--sizes'"),
        (["rerank", "--methods", "pixels"], "No such option '--methods'"),
        (["modes", "--gallery", "1000"], "No such option '--gallery'"),
        (["quantization", "--clients", "16"], "No such option '--clients'"),
        (["serve", "--queries", "10"], "No such option '--queries'"),
        (["serve", "--gallery", "1000"], "No such option '--gallery'"),
        (["scale", "--synthetic", "0"], "No such option '--synthetic'"),
        (["scale", "--workers", "1"], "No such option '--workers'"),
        (["all", "--methods", "pixels"], "No such option '--methods'"),
        (["all", "--queries", "10"], "No such option '--queries'"),
        (["--suite", "search"], "No such option '--suite'"),
        (["store"], "No such command 'store'"),
    ],
)
def test_each_bench_subcommand_refuses_another_suites_option(args, message, tmp_path):
    result = CliRunner().invoke(main, ["bench", *args, "--out-dir", str(tmp_path / "out")])
    assert result.exit_code == 2 and f"Error: {message}" in result.output, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_neural_ingest_and_query_in_a_real_process(tmp_path, fmnist):
    """The installed command, as a user runs it, with the shipped siamese
    model: ingest, query, and nothing on stderr but the progress bar
    (TensorFlow's start-up lines are kept off the terminal)."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "FMSEARCH_HOME": str(tmp_path)}
    env.pop("FMSEARCH_TF_LOGS", None)
    cmd = [sys.executable, "-m", "fmsearch"]
    ingest = subprocess.run(
        [*cmd, "ingest", "--method", "siamese", "--limit", "200"], env=env, capture_output=True, text=True
    )
    assert ingest.returncode == 0, ingest.stderr
    assert "fmnist_siamese: wrote 200 points" in ingest.stdout
    query = subprocess.run(
        [*cmd, "query", "--id", "60000", "--method", "siamese", "-k", "3", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert query.returncode == 0, query.stderr
    hits = [json.loads(line) for line in query.stdout.splitlines()]
    assert len(hits) == 3 and all(h["split"] == "train" for h in hits)
    assert query.stderr == "", query.stderr
    assert "oneDNN" not in ingest.stderr and "absl" not in ingest.stderr


@pytest.mark.parametrize(
    "text, expected",
    [("1,5,10,20", (1, 5, 10, 20)), ("10, 1,5,5", (1, 5, 10)), ("3", (3,))],
)
def test_parse_ks(text, expected):
    assert parse_ks(text) == expected


@pytest.mark.parametrize("text", ["", "a,b", "0,5", "-1", "1.5"])
def test_parse_ks_rejects(text):
    with pytest.raises(click.UsageError, match="--k"):
        parse_ks(text)


def test_recommend_honours_offset_and_min_score(home):
    """`query --positive ... --offset N --min-score S` pages and cuts the
    recommend list as it does any other query's (they were silently dropped)."""

    def ids(*args):
        result = run(
            home, "query", "--positive", "3", "--positive", "5", "--negative", "7", "-m", "pixels", "--json", *args
        )
        assert result.exit_code == 0, result.output
        return [(h["id"], h["rank"], h["score"]) for h in map(json.loads, result.output.splitlines())]

    whole = ids("-k", "6")
    assert [rank for _, rank, _ in ids("-k", "3", "--offset", "2")] == [3, 4, 5]
    assert ids("-k", "3", "--offset", "2") == whole[2:5]
    cut = (whole[1][2] + whole[2][2]) / 2
    assert ids("-k", "6", "--min-score", repr(cut)) == whole[:2]
