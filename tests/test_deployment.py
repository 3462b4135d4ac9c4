"""docker-compose.yml, .env.example and the Makefile are right, though no Docker engine runs here."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path

import yaml
from django.conf import settings

from tests.support import ROOT


def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


APP_SERVICES = (
    "init",
    "web",
    "worker-ibkr",
    "worker-ibkr-2",
    "worker-default",
    "beat",
    "flower",
    "ibsim",
    "ibsim2",
)
GATEWAY_CONTAINERS = ("ibgateway", "ibgateway2")  # the only ones that see a TWS login
PROFILED = {"ibgateway", "ibsim", "ibgateway2", "ibsim2", "worker-ibkr-2"}
# The modules that read the environment: Django's settings, where they come from, the deployment.
ENV_READERS = ("settings.py", "environment.py", "deploy.py")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def env_example() -> dict[str, str]:
    return dict(re.findall(r"^([A-Z_]+)=(.*)$", (ROOT / ".env.example").read_text(), re.M))


def names_read() -> set[str]:
    """Every variable the project reads from the environment (`env("NAME"...)`)."""
    return {
        name
        for module in ENV_READERS
        for name in re.findall(
            r'env(?:\.\w+)?\(\s*"([A-Z_]+)"', (ROOT / "ibdata_project" / module).read_text()
        )
    }


def interpolated(value, env: dict[str, str]) -> str:
    """A compose value as `docker compose` reads it with this .env (${VAR:-default} only)."""
    return re.sub(r"\$\{(\w+)(?::-([^}]*))?\}", lambda m: env.get(m[1]) or m[2] or "", str(value))


def test_compose_has_every_service_of_the_deployment():
    services = compose()["services"]
    assert {"postgres", "redis", "web", "worker-ibkr", "worker-default", "beat", "flower"} <= set(
        services
    )
    # the gateway containers only when asked for
    assert services["ibgateway"]["profiles"] == ["ibgateway"]
    assert services["ibgateway"]["image"].startswith("ghcr.io/gnzsnz/ib-gateway:")
    assert services["ibsim"]["profiles"] == ["sim"]
    assert "-m ibsim --host 0.0.0.0 --port 7497" in services["ibsim"]["command"]
    assert all("profiles" not in s for n, s in services.items() if n not in PROFILED)


def test_every_service_but_beat_has_a_healthcheck_and_ports_stay_on_loopback():
    services = compose()["services"]
    for name, service in services.items():
        # beat answers nothing a healthcheck could ask; init is a one-shot the others wait for
        if name not in ("beat", "init"):
            assert service.get("healthcheck", {}).get("test"), name
        for port in service.get("ports", []):
            assert port.split(":")[0] in LOOPBACK, f"{name} publishes {port} beyond loopback"
    web = services["web"]
    assert "gunicorn ibdata_project.wsgi" in web["command"] and "runserver" not in web["command"]
    assert "collectstatic" in web["command"] and "migrate" in web["command"]
    assert "--preload" in web["command"]  # a missing secret key: one line, from the master
    assert services["flower"]["command"] == "celery -A ibdata_project flower"
    assert services["flower"]["environment"]["FLOWER_ADDRESS"] == "0.0.0.0"  # in its container
    assert services["flower"]["ports"] == ["127.0.0.1:5555:5555"]


def test_services_run_as_an_unprivileged_user():
    users = re.findall(r"^USER\s+(\S+)", (ROOT / "Dockerfile").read_text(), re.M)
    assert users and users[-1] not in ("root", "0", "0:0")
    for name in APP_SERVICES:
        assert str(compose()["services"][name].get("user", users[-1])).split(":")[0] not in (
            "root",
            "0",
        ), name


def test_the_tws_login_reaches_the_ib_gateway_container_only():
    services = compose()["services"]
    gateway_env = services["ibgateway"]["environment"]
    assert gateway_env["TWS_USERID"] == "${TWS_USERNAME:-}"
    assert gateway_env["TWS_PASSWORD"] == "${TWS_PASSWORD:-}"
    assert gateway_env["READ_ONLY_API"] == "yes"
    for name, service in services.items():
        assert "env_file" not in service, f"{name} would get all of .env, TWS login included"
        if name in GATEWAY_CONTAINERS:
            continue
        text = yaml.safe_dump(service.get("environment", {}))
        assert "TWS_USERNAME" not in text and "TWS_PASSWORD" not in text, name
        assert "TWS_USERID" not in text, name


def test_dockerignore_keeps_secrets_data_logs_and_the_virtualenv_out_of_the_image():
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", "data/", "logs/", ".venv", "test-artifacts/"} <= ignored


def test_env_example_does_not_point_the_containers_at_their_own_loopback():
    """`cp .env.example .env && docker compose up`: .env's IBKR_HOST=127.0.0.1 is this machine's
    way to the gateway; inside a container it would be the container itself."""
    env = env_example()
    assert env["IBKR_HOST"] == "127.0.0.1"
    services = compose()["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert "${IBKR_HOST" not in str(environment["IBKR_HOST"]), name
        host = interpolated(environment["IBKR_HOST"], env)
        port = interpolated(environment["IBKR_PORT"], env)
        assert host not in LOOPBACK, f"{name} would look for the gateway in its own container"
        assert (host, port) == ("ibgateway", "4004")
        assert env["COMPOSE_PROFILES"] == "ibgateway"  # ... which `docker compose up` starts
        # without a .env at all, the same
        assert interpolated(environment["IBKR_HOST"], {}) == "ibgateway"


def test_the_containers_get_every_setting_the_project_reads():
    names = names_read()
    # the compose Redis is broker and result store; gunicorn listens on 8000 in its container;
    # Flower's address and port are set on its service
    fixed = {
        "CELERY_BROKER_URL",
        "CELERY_RESULT_BACKEND",
        "WEB_PORT",
        "FLOWER_ADDRESS",
        "FLOWER_PORT",
    }
    for name in APP_SERVICES:
        environment = compose()["services"][name]["environment"]
        assert names - fixed <= set(environment), (
            f"{name}: {sorted(names - fixed - set(environment))}"
        )


def test_compose_makes_the_secrets_first_and_the_web_and_flower_wait_for_it():
    """The one-shot `init` runs `manage.py init_secrets` on the services' ./data; the web server
    and Flower (which refuse to start without what it makes) start after it succeeded."""
    services = compose()["services"]
    init = services["init"]
    assert init["command"] == "python manage.py init_secrets"
    assert "./data:/data" in init["volumes"] and init["environment"]["DATA_DIR"] == "/data"
    assert init["depends_on"] == {} and init["restart"] == "no" and "profiles" not in init
    for name in ("web", "flower"):
        assert services[name]["depends_on"]["init"] == {
            "condition": "service_completed_successfully"
        }, name
        assert services[name]["volumes"] == init["volumes"], name


def test_the_ibkr_worker_is_one_process_on_the_ibkr_queue():
    command = interpolated(compose()["services"]["worker-ibkr"]["command"], env_example())
    assert "-A ibdata_project worker" in command
    assert re.search(r"-Q ibkr(\s|$)", command)
    assert "--pool solo" in command and "--concurrency 1" in command
    assert " -E" in command  # task events, for Flower


def test_compose_shows_two_gateways_each_with_its_worker_and_login():
    """The two gateways of docker-compose.yml's header: each worker serves its own gateway of
    COMPOSE_IBKR_GATEWAYS (by its queue), one process each; the second login reaches the second
    IB Gateway alone."""
    from fetcher.domain.gateways import gateway_for_queues, gateways_parse

    services = compose()["services"]
    env = {
        "COMPOSE_IBKR_GATEWAYS": "paper1=ibgateway:4004:10,paper2=ibgateway2:4004:10",
        "COMPOSE_IBKR_QUEUE": "ibkr.paper1",
    }
    gateways = gateways_parse(interpolated(services["web"]["environment"]["IBKR_GATEWAYS"], env))
    served = []
    for name in ("worker-ibkr", "worker-ibkr-2"):
        command = interpolated(services[name]["command"], env)
        assert "--pool solo" in command and "--concurrency 1" in command, name
        queues = set(re.search(r"-Q (\S+)", command)[1].split(","))
        served.append(gateway_for_queues(gateways, queues))
    assert [(g.name, g.host) for g in served] == [("paper1", "ibgateway"), ("paper2", "ibgateway2")]
    assert set(services["worker-ibkr-2"]["profiles"]) == {"gateway2", "sim2"}
    assert services["ibgateway2"]["profiles"] == ["gateway2"]
    assert services["ibgateway2"]["environment"]["TWS_USERID"] == "${TWS_USERNAME_2:-}"
    assert services["ibsim2"]["profiles"] == ["sim2"]
    assert "-m ibsim --host 0.0.0.0 --port 7497" in services["ibsim2"]["command"]


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


def test_installed_modules_are_compiled_so_no_process_compiles_them_again():
    """make install (and the image) compile the packages and the project's modules: with
    PYTHONDONTWRITEBYTECODE set nothing else ever would, and every process started (a command,
    a worker, each test's subprocess) would spend seconds compiling them again."""
    import celery
    import django
    import pandas

    import fetcher.models

    for module in (django, pandas, celery, fetcher.models):
        compiled = Path(importlib.util.cache_from_source(module.__file__))
        assert compiled.exists(), f"{module.__name__} is not compiled: run make install"
    text = (ROOT / "Dockerfile").read_text()
    assert "--compile-bytecode" in text and "python -m compileall" in text


def test_env_example_lists_every_setting_read_from_the_environment():
    names = names_read()
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
    for target in ("demo", "admin", "test", "lint", "lock", "sim", "up", "down"):
        assert f"make {target}" in out
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
    assert "make up" in readme and "make down" in readme and "make admin" in readme


def test_lock_records_hashes_and_no_download_addresses():
    lock = (ROOT / "requirements.lock").read_text()
    assert "--hash=sha256:" in lock
    assert not re.search(r"https?://", lock)
    assert not (ROOT / "uv.lock").exists()
