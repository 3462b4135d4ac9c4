"""docker-compose.yml, .env.example and the Makefile are right, though no Docker engine runs here."""

from __future__ import annotations

import re
import subprocess

import yaml
from django.conf import settings

from tests.support import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def test_compose_has_every_service_of_the_deployment():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker-ibkr", "worker-default", "beat", "flower"} <= set(
        services
    )


def test_the_ibkr_worker_is_one_process_on_the_ibkr_queue():
    command = compose()["services"]["worker-ibkr"]["command"]
    assert "-A ibdata_project worker" in command
    assert re.search(r"-Q ibkr(\s|$)", command)
    assert "--pool solo" in command and "--concurrency 1" in command
    assert " -E" in command  # task events, for Flower


def test_services_point_at_the_compose_databases_and_wait_for_them():
    services = compose()["services"]
    for name in ("web", "worker-ibkr", "worker-default", "beat", "flower"):
        service = services[name]
        env = service["environment"]
        assert (
            env["DATABASE_URL"].startswith("postgres://")
            and "@postgres:5432/" in env["DATABASE_URL"]
        )
        assert env["REDIS_URL"].startswith("redis://redis:6379")
        assert service["depends_on"], name
    assert services["postgres"]["healthcheck"] and services["redis"]["healthcheck"]
    for port in services["web"]["ports"] + services["flower"]["ports"]:
        assert port.startswith("127.0.0.1:"), "published ports stay on loopback"


def test_compose_queues_match_the_task_routes():
    from fetcher.queues import TASK_ROUTES, Queue

    routed = {route["queue"] for route in TASK_ROUTES.values()}
    assert routed <= {q.value for q in Queue}
    default_worker = compose()["services"]["worker-default"]["command"]
    for queue in routed - {Queue.IBKR.value}:
        assert queue in default_worker


def test_dockerfile_installs_the_hashed_lock():
    text = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in text


def test_env_example_lists_every_setting_read_from_the_environment():
    names = set(
        re.findall(
            r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', (ROOT / "ibdata_project/settings.py").read_text()
        )
    )
    example = (ROOT / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", example, re.MULTILINE))
    assert names, "settings read no variables?"
    assert names <= listed, f"missing from .env.example: {sorted(names - listed)}"


def test_env_example_values_are_accepted_by_the_settings():
    example = (ROOT / ".env.example").read_text()
    values = dict(re.findall(r"^([A-Z_]+)=(.*)$", example, re.MULTILINE))
    assert values["IBKR_PORT"] == "7497" and values["TRADING_MODE"] == "paper"
    assert values["IBKR_MARKET_DATA_TYPE"] == settings.IBKR_MARKET_DATA_TYPE


def test_make_help_lists_the_targets_the_readme_names():
    out = subprocess.run(
        ["make", "-s", "help"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    for target in ("demo", "test", "lint", "lock", "sim", "up", "down"):
        assert f"make {target}" in out
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make up" in readme and "make down" in readme


def test_lock_records_hashes_and_no_download_addresses():
    lock = (ROOT / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock
    assert not re.search(r"https?://", lock)
    assert not (ROOT / "uv.lock").exists()
