"""Settings read what the project uses and nothing more: no TWS credentials (not even from .env,
which is never exported), no public secret key."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

from tests import support
from tests.support import ROOT, production_env


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return support.manage(production_env(**env), *args)


def test_settings_never_read_tws_credentials(tmp_path):
    result = manage(
        "diffsettings",
        "--all",
        TWS_USERNAME="someone",
        TWS_PASSWORD="hunter2",
        DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert "hunter2" not in result.stdout and "someone" not in result.stdout
    assert "TWS_PASSWORD" not in result.stdout and "TWS_USERNAME" not in result.stdout


def test_an_unset_secret_key_is_generated_once_per_installation_owner_only(tmp_path):
    def secret(data_dir) -> str:
        result = manage(
            "shell",
            "--no-imports",
            "-c",
            "from django.conf import settings; print(settings.SECRET_KEY)",
            DATA_DIR=str(data_dir),
        )
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    first, again = secret(tmp_path / "a"), secret(tmp_path / "a")
    assert first == again and len(first) >= 50
    assert secret(tmp_path / "b") != first
    key_file = tmp_path / "a" / ".secret_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() == first


def test_a_secret_key_is_required_beyond_loopback(tmp_path):
    result = manage(
        "check", DJANGO_ALLOWED_HOSTS="ibdata.example.com,127.0.0.1", DATA_DIR=str(tmp_path)
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "❌ DJANGO_SECRET_KEY must be set when the admin is served beyond loopback "
        "(DJANGO_ALLOWED_HOSTS names ibdata.example.com)"
    )
    assert not (tmp_path / ".secret_key").exists()
    given = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.SECRET_KEY)",
        DJANGO_ALLOWED_HOSTS="ibdata.example.com",
        DJANGO_SECRET_KEY="k" * 60,
        DATA_DIR=str(tmp_path),
    )
    assert given.returncode == 0 and given.stdout.strip() == "k" * 60


def test_dotenv_is_read_but_never_exported(tmp_path):
    """ibdata_project/environment.py, as it runs with a `.env` beside the project: its values
    are read (the environment wins), none reaches os.environ, the TWS login is not even read."""
    project = tmp_path / "project"
    (project / "ibdata_project").mkdir(parents=True)
    shutil.copy(ROOT / "ibdata_project" / "environment.py", project / "ibdata_project")
    (project / ".env").write_text(
        "TWS_USERNAME=someone\nTWS_PASSWORD=hunter2\nLOG_LEVEL=DEBUG\nTRADING_MODE=live\n"
    )
    names = ("TWS_USERNAME", "TWS_PASSWORD", "LOG_LEVEL", "TRADING_MODE")
    code = (
        "import json, os, runpy\n"
        f"module = runpy.run_path({str(project / 'ibdata_project' / 'environment.py')!r})\n"
        "env = module['env']\n"
        f"names = {names!r}\n"
        "print(json.dumps({\n"
        "    'exported': [name for name in names if name in os.environ],\n"
        "    'read': {name: env(name, default=None) for name in names},\n"
        "    'data_dir': str(module['DATA_DIR']),\n"
        "}))\n"
    )
    env = {name: value for name, value in production_env().items() if name not in names}
    env |= {"TRADING_MODE": "paper"}
    env.pop("DATA_DIR", None)
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen["exported"] == ["TRADING_MODE"]  # the one the environment itself had
    assert seen["read"] == {
        "TWS_USERNAME": None,
        "TWS_PASSWORD": None,
        "LOG_LEVEL": "DEBUG",  # from .env
        "TRADING_MODE": "paper",  # the environment wins over .env
    }
    assert seen["data_dir"] == str(project / "data")
