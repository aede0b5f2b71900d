"""What an operator deploys from this repository besides the code: docker-compose.yml
(a devnet, PostgreSQL, two gateways over one index, three workers, Prometheus and
Grafana) and the Grafana dashboard. Checked as files here; `docker-compose config`
validates the compose file where docker-compose is installed (`make install`
installs it); the dashboard's metric names are checked against live scrapes in
tests/python/e2e/test_gateway.py."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = ROOT / "docker-compose.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "shardex.json"


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _flag(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]


def test_compose_runs_a_devnet_postgresql_two_gateways_over_one_index_and_three_workers() -> None:
    services = compose()["services"]
    gateways = sorted(s for s in services if s.startswith("gateway-"))
    workers = sorted(s for s in services if s.startswith("worker-"))
    assert {"devnet", "postgres", "deploy", "prometheus", "grafana"} <= set(services)
    assert gateways == ["gateway-1", "gateway-2"] and workers == ["worker-1", "worker-2", "worker-3"]
    for name, svc in services.items():
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
    # The gateways share one PostgreSQL index and announce where workers reach them.
    dbs = {_flag(services[g]["command"], "--db") for g in gateways}
    assert len(dbs) == 1 and dbs.pop().startswith("postgresql+psycopg://shardex:shardex@postgres:5432/")
    for name in gateways + workers:
        svc = services[name]
        assert _flag(svc["command"], "--public-url").startswith(f"http://{name}:")
        assert _flag(svc["command"], "--host") == "0.0.0.0"
        assert svc["environment"]["SHARDEX_CONFIG"] == "/deployment/config.toml"
        assert svc["depends_on"]["deploy"]["condition"] == "service_completed_successfully"
    # Each worker its own key and its own data; the deployer's key is none of theirs.
    keys = [services[w]["environment"]["SHARDEX_PRIVATE_KEY"] for w in workers]
    assert len(set(keys)) == 3 and services["deploy"]["environment"]["SHARDEX_PRIVATE_KEY"] not in keys
    assert len({v for w in workers for v in services[w]["volumes"] if not v.startswith("deployment:")}) == 3
    host_ports = [p.split(":")[0] for svc in services.values() for p in svc.get("ports", [])]
    assert len(host_ports) == len(set(host_ports))
    # Prometheus scrapes exactly these gateways and workers at the ports they serve on.
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    assert targets == {f"{n}:{_flag(services[n]['command'], '--port')}" for n in gateways + workers}


def test_compose_mounts_only_files_this_repository_has() -> None:
    services = compose()["services"]
    for svc in services.values():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), source
        if "build" in svc:
            assert (ROOT / svc["build"] / "Dockerfile").is_file()
    dockerfile = (ROOT / "Dockerfile").read_text()
    for copied in re.findall(r"^COPY (\S+)", dockerfile, re.MULTILINE):
        assert (ROOT / copied).exists(), copied
    assert "'.[postgres]'" in dockerfile  # the gateways' driver


@pytest.mark.skipif(not (shutil.which("docker-compose") or shutil.which("docker")), reason="no docker here")
def test_docker_compose_accepts_the_file() -> None:
    command = ["docker-compose"] if shutil.which("docker-compose") else ["docker", "compose"]
    proc = subprocess.run([*command, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True, cwd=ROOT,
                          check=False)
    if proc.returncode != 0 and "unknown command" in proc.stderr:
        pytest.skip("docker has no compose plugin and docker-compose is not installed")
    assert proc.returncode == 0, proc.stderr


def dashboard_metrics() -> set[str]:
    """Every metric name the dashboard's queries read (Prometheus functions and labels excluded)."""
    names = set()
    for panel in json.loads(DASHBOARD.read_text())["panels"]:
        for target in panel.get("targets", []):
            names |= set(re.findall(r"\b(shardex_[a-z0-9_]+)", target["expr"]))
    return names


def test_the_dashboard_is_importable_as_is() -> None:
    d = json.loads(DASHBOARD.read_text())
    assert d["uid"] == "shardex" and d["title"] == "Shardex" and d["schemaVersion"] >= 36
    ids = [p["id"] for p in d["panels"]]
    assert len(ids) == len(set(ids))
    # One datasource variable, so it imports into any Grafana with a Prometheus, provisioned or not.
    assert [v["type"] for v in d["templating"]["list"]] == ["datasource"]
    for p in d["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == "${datasource}" and p["targets"], p["title"]
        for t in p["targets"]:
            assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
    # Every row of the grid is filled without overlap.
    cells = set()
    for p in d["panels"]:
        g = p["gridPos"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine and g["x"] + g["w"] <= 24, p["title"]
        cells |= mine
    assert {"shardex_indexer_writer", "shardex_worker_replicas_total"} <= dashboard_metrics()


def test_the_colocation_panels_read_what_the_controller_exports() -> None:
    from worker.colocation.controller import ColocationController

    exported = set(re.findall(r"^(shardex_colocation_[a-z0-9_]+)", ColocationController(slo_p99_ms=100).render_metrics(),
                              re.MULTILINE))
    used = {m for m in dashboard_metrics() if m.startswith("shardex_colocation_")}
    assert used and used <= exported, used - exported
