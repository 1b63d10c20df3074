"""The `cluster` profile of docker-compose.yml: three Qdrant nodes in
distributed mode, and collections spread over them with --shards/--replicas.

The file check runs everywhere; the cluster itself runs only where a Docker
engine is reachable (integration suite)."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NODES = ("qdrant-node1", "qdrant-node2", "qdrant-node3")


def _compose() -> dict:
    import yaml

    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_file_defines_a_single_server_and_a_three_node_cluster():
    services = _compose()["services"]
    assert "profiles" not in services["qdrant"]  # `docker compose up` starts only the single server
    assert services["qdrant"]["ports"] == ["6333:6333", "6334:6334"]
    for i, node in enumerate(NODES, start=1):
        s = services[node]
        assert s["profiles"] == ["cluster"] and "QDRANT__CLUSTER__ENABLED=true" in s["environment"]
        assert s["image"] == services["qdrant"]["image"]
        assert f"--uri http://{node}:6335" in s["command"]
        assert ("--bootstrap" in s["command"]) == (i > 1)  # node1 starts it, the others join
    assert services["qdrant-node1"]["ports"][0] == "6343:6333"


@pytest.mark.integration
def test_collection_spread_over_the_cluster(tmp_path, fmnist):
    try:
        import docker

        docker.from_env().ping()
    except Exception as err:
        pytest.skip(f"no Docker engine reachable ({type(err).__name__}): the cluster needs one")
    from click.testing import CliRunner
    from testcontainers.compose import DockerCompose

    from fmsearch.cli import main
    from fmsearch.store import open_store

    with DockerCompose(ROOT, profiles=["cluster"], services=list(NODES), wait=True) as compose:
        url = (
            f"http://{compose.get_service_host('qdrant-node1', 6333)}:{compose.get_service_port('qdrant-node1', 6333)}"
        )
        result = CliRunner().invoke(
            main,
            [
                "--qdrant-url",
                url,
                "ingest",
                "-m",
                "pixels",
                "--limit",
                "600",
                "--shards",
                "3",
                "--replicas",
                "2",
                "--write-consistency",
                "2",
            ],
        )
        assert result.exit_code == 0, result.output
        with open_store(url) as store:
            info = store.info("fmnist_pixels")
            assert info.points == 600 and info.metadata["distribution"]["shards"] == 3
            real = store._real("fmnist_pixels")
            cluster = store.client.get_collection(real).config.params
            assert (cluster.shard_number, cluster.replication_factor) == (3, 2)
        home = tmp_path / "home"
        assert (
            CliRunner().invoke(main, ["--home", str(home), "ingest", "-m", "pixels", "--limit", "300"]).exit_code == 0
        )
        result = CliRunner().invoke(
            main, ["--home", str(home), "migrate", "--to", url, "--recreate", "--shards", "3", "--replicas", "2"]
        )
        assert result.exit_code == 0 and "fmnist_pixels: 300 of 300 points" in result.output, result.output
