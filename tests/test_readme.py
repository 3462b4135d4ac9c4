"""The README's first steps as a newcomer pastes them, in a fresh copy of the project: its
"Using it" commands against the built-in simulator, and the demo store's admin."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support import ROOT, answers, free_port, http_get

# What a newcomer's shell has: none of the suite's own settings.
SUITE_ONLY = ("DATABASE_URL", "REDIS_URL", "DATA_DIR", "LOG_DIR", "DJANGO_SETTINGS_MODULE")


def readme_block(heading: str) -> str:
    """The first ```bash block under a README heading."""
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index(f"\n{heading}\n") :]
    return re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)


def newcomer_env(**overrides: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in SUITE_ONLY and not name.startswith(("IBKR_", "DJANGO_", "CELERY_"))
    }
    return env | overrides


@pytest.fixture(scope="module")
def fresh_copy(tmp_path_factory) -> Path:
    """The project's tracked files, as a clone has them, beside this checkout's environment."""
    copy = tmp_path_factory.mktemp("clone") / "ibdata"
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True
    ).stdout.split(b"\0")
    for name in filter(None, (t.decode() for t in tracked)):
        if (ROOT / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, copy / name)
    (copy / ".venv").symlink_to(Path(sys.prefix))  # what `make install` made
    return copy


def test_the_readme_using_it_commands_work_as_pasted(fresh_copy):
    commands = readme_block("## Using it")
    assert commands.startswith("source .venv/bin/activate")
    run = subprocess.run(
        ["bash", "-e", "-c", commands],
        cwd=fresh_copy,
        env=newcomer_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "Traceback" not in run.stderr
    out = run.stdout
    assert "✅ Connected to the built-in gateway simulator (IBKR_HOST=sim)" in out
    assert "✅ AAPL:" in out and "✅ GOOGL:" in out and "Fetch Summary" in out
    # The simulator's bars went to a store of their own, not to the real store's data/.
    assert (fresh_copy / ".env").is_file()
    assert (fresh_copy / "data" / "sim" / "ibdata.sqlite3").is_file()
    assert not (fresh_copy / "data" / "ibdata.sqlite3").exists()


def test_the_demo_store_admin_serves_styled_pages(fresh_copy):
    """`make admin` (manage.py demo --admin): the demo's own store, a first user, the admin with
    its static files, DEBUG off."""
    python = str(fresh_copy / ".venv" / "bin" / "python")
    refused = subprocess.run(
        [python, "manage.py", "demo", "--admin"],
        cwd=fresh_copy,
        env=newcomer_env(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert refused.stderr.strip().splitlines() == [
        "❌ the demo's store has no admin user: run make admin on a terminal, or set "
        "DJANGO_SUPERUSER_USERNAME and DJANGO_SUPERUSER_PASSWORD"
    ]
    port = free_port()
    env = newcomer_env(DJANGO_SUPERUSER_USERNAME="newcomer", DJANGO_SUPERUSER_PASSWORD="pw-1234!")
    server = subprocess.Popen(
        [python, "manage.py", "demo", "--admin", "--port", str(port)],
        cwd=fresh_copy,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not answers(f"http://127.0.0.1:{port}/admin/login/"):
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the admin never answered"
            time.sleep(0.3)
        status, page = http_get(f"http://127.0.0.1:{port}/admin/login/")
        assert status == 200 and "Log in" in page
        css = re.search(r'href="(/static/admin/css/[^"]+\.css)"', page).group(1)
        assert http_get(f"http://127.0.0.1:{port}{css}")[0] == 200
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)
    # The user it made is in the demo's store, data/demo/.
    assert (fresh_copy / "data" / "demo" / "ibdata.sqlite3").is_file()
