"""`make up` / `make down`: the Procfile's processes for real, on free ports, and nothing left
after; what they refuse to start without, and a `make down` with nothing up."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys

import pytest

from tests.support import (
    DEPLOYED_SHAPE,
    ROOT,
    answers,
    deployed_env,
    free_port,
    http_get,
    manage,
    production_env,
)

AUTH = "ops:stack-test-password"


def procfile() -> dict[str, str]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    return dict(
        re.match(r"^([\w-]+):\s*(.+)$", line).groups() for line in lines if line[:1].isalpha()
    )


def test_the_procfile_runs_each_process_of_the_deployment_and_honcho_accepts_it():
    processes = procfile()
    assert set(processes) == {"web", "ibkr", "default", "beat", "flower"}
    assert processes["web"].startswith("gunicorn ibdata_project.wsgi ")
    assert "--bind 127.0.0.1:${WEB_PORT:-8000}" in processes["web"]
    assert " --preload " in processes["web"]  # a missing secret key: one line, from the master
    ibkr = processes["ibkr"]
    assert re.search(r"-Q ibkr(\s|$)", ibkr) and "--pool solo --concurrency 1" in ibkr
    assert re.search(r"-Q default,backtests(\s|$)", processes["default"])
    assert all(" -E" in processes[name] for name in ("ibkr", "default"))  # events, for Flower
    assert "django_celery_beat.schedulers:DatabaseScheduler" in processes["beat"]
    assert processes["flower"] == "celery -A ibdata_project flower"  # settings via flowerconfig
    check = subprocess.run(
        [sys.executable, "-m", "honcho", "check", "-f", "Procfile"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stderr
    assert "Valid procfile detected" in check.stderr


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


@DEPLOYED_SHAPE[0]
@DEPLOYED_SHAPE[1]
@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("clean_broker")
def test_make_up_starts_every_process_and_make_down_leaves_none(sim, tmp_path):
    web_port, flower_port = free_port(), free_port()
    while flower_port == web_port:
        flower_port = free_port()
    env = deployed_env(
        tmp_path,
        sim,
        DJANGO_SETTINGS_MODULE="ibdata_project.settings",  # production's, not the suite's
        WEB_PORT=str(web_port),
        FLOWER_PORT=str(flower_port),
        FLOWER_BASIC_AUTH=AUTH,
        IBKR_CLIENT_ID="61",
        CELERY_WORKER_CONCURRENCY="1",
    )
    logs = tmp_path / "logs"
    web, flower = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{flower_port}"

    def make(target: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            ["make", "-s", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
        )

    def started() -> list[int]:
        """The process groups honcho started (each process runs in a session of its own)."""
        log = logs / "stack.log"
        return [int(pid) for pid in re.findall(r"started \(pid=(\d+)\)", log.read_text())]

    try:
        up = make("up")
        assert up.returncode == 0, up.stdout + up.stderr
        key_file = tmp_path / "data" / ".secret_key"  # made by `make up` (init_secrets)
        assert f"made {key_file}" in up.stdout and len(key_file.read_text()) >= 50
        assert f"{web}/admin/" in up.stdout and f"{flower}/" in up.stdout
        assert "manage.py createsuperuser" in up.stdout and "make down" in up.stdout
        # what the ibkr worker says of its gateway: connected, to the simulator, named as such
        assert (
            f"✅ gateway default (127.0.0.1:{sim.port}): connected to the ibdata simulator "
            "(synthetic bars) since "
        ) in up.stdout
        assert http_get(f"{web}/admin/login/")[0] == 200  # gunicorn
        assert http_get(f"{web}/static/admin/css/base.css")[0] == 200  # whitenoise
        assert http_get(f"{flower}/api/workers")[0] == 401
        status, body = http_get(f"{flower}/api/workers?refresh=1", AUTH)
        assert status == 200
        assert {name.split("@")[0] for name in json.loads(body)} == {"ibkr", "default"}
        assert "beat: Starting..." in (logs / "stack.log").read_text()
        assert len(started()) == 5

        down = make("down")
        assert down.returncode == 0, down.stdout + down.stderr
        assert "stopped" in down.stdout
        assert not [pgid for pgid in started() if group_alive(pgid)], "left after make down"
        assert not answers(f"{web}/") and not answers(f"{flower}/")
        assert not (logs / "stack.pid").exists()
    finally:  # whatever failed, leave nothing running: honcho, then each process
        pid_file = logs / "stack.pid"
        honcho = [int(pid_file.read_text().split()[0])] if pid_file.exists() else []
        for pgid in honcho + (started() if (logs / "stack.log").exists() else []):
            if group_alive(pgid):
                os.killpg(pgid, signal.SIGKILL)


def make(target: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", target], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )


def test_make_down_with_nothing_up_exits_0_without_a_traceback(tmp_path):
    logs = tmp_path / "logs"
    env = production_env(LOG_DIR=str(logs))
    down = make("down", env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert down.stdout == "ibdata is not up: nothing to stop.\n" and down.stderr == ""
    logs.mkdir()
    (logs / "stack.pid").write_text("")  # a mark cut short: nothing can be stopped by it
    down = make("down", env)
    assert down.returncode == 0, down.stdout + down.stderr
    assert "Traceback" not in down.stdout + down.stderr
    assert "nothing to stop" in down.stdout


def test_the_web_process_refuses_to_start_without_a_secret_key(tmp_path):
    """The Procfile's web command, with DATA_DIR where `manage.py init_secrets` never ran."""
    command = procfile()["web"].replace("${WEB_PORT:-8000}", str(free_port()))
    env = production_env(DATA_DIR=str(tmp_path / "data"), LOG_DIR=str(tmp_path / "logs"))
    env["PATH"] = f"{os.path.dirname(sys.executable)}{os.pathsep}{env['PATH']}"
    web = subprocess.run(
        ["bash", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert web.returncode != 0
    assert web.stderr.strip().splitlines() == [
        "❌ no secret key: run `python manage.py init_secrets` (it keeps one in "
        f"{tmp_path / 'data' / '.secret_key'}), or set DJANGO_SECRET_KEY"
    ]


def stack_up(env: dict[str, str]) -> subprocess.CompletedProcess:
    """`scripts/stack.py up` as `make up` runs it, its output captured."""
    return subprocess.run(
        [sys.executable, "scripts/stack.py", "up"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_stack_up_says_what_is_missing_before_starting_anything(tmp_path):
    """`scripts/stack.py up` without `make up`'s init_secrets: one line, nothing started."""
    logs = tmp_path / "logs"
    env = production_env(DATA_DIR=str(tmp_path / "data"), LOG_DIR=str(logs))
    up = stack_up(env)
    assert up.returncode == 1
    assert up.stderr.strip().splitlines() == [
        "❌ Flower has no password: run `python manage.py init_secrets` (it keeps one in "
        f"{tmp_path / 'data' / '.flower_auth'}), or set FLOWER_BASIC_AUTH"
    ]
    assert not logs.exists()


def test_stack_up_on_a_database_that_does_not_exist_says_how_to_create_it(tmp_path):
    """Your own DATABASE_URL naming a database not created yet: one line with createdb."""
    logs = tmp_path / "logs"
    env = production_env(
        DATA_DIR=str(tmp_path / "data"),
        LOG_DIR=str(logs),
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/ibdata_never_created",
    )
    assert manage(env, "init_secrets").returncode == 0
    up = stack_up(env)
    assert up.returncode == 1
    [line] = up.stderr.strip().splitlines()
    assert 'database "ibdata_never_created" does not exist' in line
    assert line.endswith(
        "Create it: createdb -h 127.0.0.1 -p 5432 -U postgres ibdata_never_created"
    )
    assert not (logs / "stack.pid").exists()
