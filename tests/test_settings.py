"""Settings read what the project uses and write nothing: no TWS credentials, no public secret
key, secrets made once by `manage.py init_secrets`, Flower never without a password."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

import pytest

from tests import support
from tests.support import ROOT, free_port, production_env

NO_KEY = (
    "❌ no secret key: run `python manage.py init_secrets` (it keeps one in {}), "
    "or set DJANGO_SECRET_KEY"
)
BAD_FLOWER_AUTH = (
    "❌ Flower's basic auth ({}) is empty or not user:password (comma-separated for several): "
    "Flower does not start without one"
)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return support.manage(production_env(**env), *args)


def embedded_default(**env: str) -> dict[str, str]:
    """The production settings on the embedded default: no DATABASE_URL, so SQLite under
    DATA_DIR."""
    environment = production_env(**env)
    environment.pop("DATABASE_URL", None)
    return environment


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


def test_reading_the_settings_writes_nothing(tmp_path):
    """In a fresh interpreter, with DATA_DIR and LOG_DIR empty folders and the embedded default
    (the SQLite file, STATIC_ROOT, the secrets and the log file all under them): the settings
    import, Django sets up, `manage.py help` and `check` run, and both folders stay empty."""
    data, logs = tmp_path / "data", tmp_path / "logs"
    data.mkdir()
    logs.mkdir()
    env = embedded_default(DATA_DIR=str(data), LOG_DIR=str(logs))
    imported = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from django.conf import settings; "
            "print(settings.DATABASES['default']['NAME'], settings.STATIC_ROOT)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert imported.returncode == 0, imported.stderr
    assert imported.stdout.split() == [str(data / "ibdata.sqlite3"), str(data / "static")]
    assert not list(data.iterdir()) and not list(logs.iterdir())
    for command in ("help", "check"):
        result = support.manage(env, command)
        assert result.returncode == 0, result.stderr
        assert not list(data.iterdir()), f"manage.py {command} wrote {list(data.iterdir())}"
        assert not list(logs.iterdir()), f"manage.py {command} wrote {list(logs.iterdir())}"


def test_what_a_process_needs_is_made_when_it_needs_it(tmp_path):
    """The SQLite file's folder at the first connection, the log folder at the first record."""
    data, logs = tmp_path / "no" / "data", tmp_path / "no" / "logs"
    env = embedded_default(DATA_DIR=str(data), LOG_DIR=str(logs))
    migrated = support.manage(env, "migrate", "--verbosity", "0")
    assert migrated.returncode == 0, migrated.stderr
    assert (data / "ibdata.sqlite3").is_file()
    assert not logs.exists()
    logged = support.manage(
        env,
        "shell",
        "--no-imports",
        "-c",
        "import logging; logging.getLogger('ibdata').warning('the first record')",
    )
    assert logged.returncode == 0, logged.stderr
    assert "the first record" in (logs / "ibdata.log").read_text()


def test_init_secrets_makes_each_secret_once_owner_only_and_the_settings_read_it(tmp_path):
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

    data = tmp_path / "a"
    key_file, flower_file = data / ".secret_key", data / ".flower_auth"
    first = manage("init_secrets", DATA_DIR=str(data))
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        f"✅ made {key_file} (owner-only)",
        f"✅ made {flower_file} (owner-only)",
    ]
    key, flower = key_file.read_text(), flower_file.read_text()
    assert len(key) >= 50
    user, _, password = flower.partition(":")
    assert user == "flower" and len(password) >= 20
    for path in (key_file, flower_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path

    flower_file.chmod(0o644)
    again = manage("init_secrets", DATA_DIR=str(data))
    assert again.returncode == 0 and again.stdout == "", again.stdout + again.stderr
    assert (key_file.read_text(), flower_file.read_text()) == (key, flower)
    assert stat.S_IMODE(flower_file.stat().st_mode) == 0o600  # owner-only again

    assert secret(data) == key
    manage("init_secrets", DATA_DIR=str(tmp_path / "b"))
    assert secret(tmp_path / "b") != key

    flower_file.write_text("")  # holds nothing to keep: made anew
    remade = manage("init_secrets", DATA_DIR=str(data))
    assert remade.stdout.splitlines() == [f"✅ made {flower_file} (owner-only)"]
    assert flower_file.read_text().startswith("flower:") and key_file.read_text() == key


def test_without_init_secrets_the_settings_load_with_no_key(tmp_path):
    """Commands that sign nothing run; what needs the key says which command makes it."""
    checked = manage("check", DATA_DIR=str(tmp_path))
    assert checked.returncode == 0, checked.stderr
    signing = manage(
        "shell",
        "--no-imports",
        "-c",
        "from ibdata_project.installation import secret_key_check; secret_key_check()",
        DATA_DIR=str(tmp_path),
    )
    assert signing.returncode == 2
    assert signing.stderr.strip() == NO_KEY.format(tmp_path / ".secret_key")
    assert not list(tmp_path.iterdir())


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


def flower(tmp_path, *options: str, **env: str) -> subprocess.CompletedProcess:
    """`celery -A ibdata_project flower` as `make up` runs it, on a free port; a Flower that
    starts runs until the timeout, which fails the test."""
    return subprocess.run(
        [sys.executable, "-m", "celery", "-A", "ibdata_project", "flower", *options],
        cwd=ROOT,
        env=production_env(
            DATA_DIR=str(tmp_path / "data"),
            LOG_DIR=str(tmp_path / "logs"),
            FLOWER_PORT=str(free_port()),
            **env,
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("kept", "given", "source"),
    [
        (None, "", None),  # init_secrets never ran
        ("", "", "file"),  # an empty file: Flower would take any empty credentials
        ("flower", "", "file"),
        ("flower:", "", "file"),
        (":password", "", "file"),
        (None, "ops", "FLOWER_BASIC_AUTH"),
        (None, "ops:pw,", "FLOWER_BASIC_AUTH"),
    ],
)
def test_flower_refuses_to_start_without_a_well_formed_password(tmp_path, kept, given, source):
    kept_file = tmp_path / "data" / ".flower_auth"
    if kept is not None:
        kept_file.parent.mkdir()
        kept_file.write_text(kept)
    result = flower(tmp_path, FLOWER_BASIC_AUTH=given)
    assert result.returncode != 0
    if source is None:
        expected = (
            "❌ Flower has no password: run `python manage.py init_secrets` (it keeps one in "
            f"{kept_file}), or set FLOWER_BASIC_AUTH"
        )
    else:
        expected = BAD_FLOWER_AUTH.format(kept_file if source == "file" else source)
    assert result.stderr.strip().splitlines() == [expected]


def test_flower_refuses_an_empty_basic_auth_from_its_command_line(tmp_path):
    result = flower(tmp_path, "--basic_auth=", FLOWER_BASIC_AUTH="ops:a-good-password")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [BAD_FLOWER_AUTH.format("Flower's options")]


@pytest.mark.parametrize("name", ["ib-insync", "ibapi", ""])
def test_an_unknown_client_library_is_refused_in_one_line(tmp_path, name):
    result = manage("check", IBKR_CLIENT=name, DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    assert result.stderr == (
        f"❌ IBKR_CLIENT={name!r} is not a client library: use ib_insync or ib_async\n"
    )


@pytest.mark.parametrize("name", ["ib_insync", "ib_async"])
def test_either_client_library_is_taken(tmp_path, name):
    result = manage(
        "shell",
        "--no-imports",
        "-c",
        "from django.conf import settings; print(settings.IBKR_CLIENT)",
        IBKR_CLIENT=name,
        DATA_DIR=str(tmp_path),
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


@pytest.mark.parametrize(
    ("url", "database", "error"),
    [
        ("s3:///catalog", "postgres://u@127.0.0.1/x", "names no bucket: s3://bucket/prefix"),
        ("gs://bucket/catalog", "postgres://u@127.0.0.1/x", "use s3://bucket/prefix or a folder"),
        ("s3://bucket/catalog", "", "needs PostgreSQL (DATABASE_URL)"),
    ],
)
def test_a_catalog_url_the_project_cannot_use_is_refused_in_one_line(
    tmp_path, url, database, error
):
    result = manage("check", DATA_CATALOG_URL=url, DATABASE_URL=database, DATA_DIR=str(tmp_path))
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"❌ DATA_CATALOG_URL={url!r}") and error in line


@pytest.mark.parametrize(
    ("name", "value", "error"),
    [
        ("IBKR_PORT", "abc", "❌ IBKR_PORT: 'abc' is not a whole number"),
        ("IBKR_REQUEST_TIMEOUT", "soon", "❌ IBKR_REQUEST_TIMEOUT: 'soon' is not a number"),
        (
            "DATABASE_URL",
            "mysql://ibdata:s3cret@db/ibdata",
            "❌ DATABASE_URL (mysql) is not a PostgreSQL or SQLite URL: "
            "postgres://user@host:5432/name, or sqlite:////absolute/path.sqlite3",
        ),
        (
            "DATABASE_URL",
            "ibdata",
            "❌ DATABASE_URL (no scheme) is not a PostgreSQL or SQLite URL: "
            "postgres://user@host:5432/name, or sqlite:////absolute/path.sqlite3",
        ),
        (
            "REDIS_URL",
            "127.0.0.1:6379",
            "❌ REDIS_URL (no scheme) is not a Redis URL: redis://host:6379/0 (rediss:// with TLS)",
        ),
        (
            "FETCH_STALE_AFTER_S",
            "2",
            "❌ FETCH_STALE_AFTER_S=2 is too short: a running run beats every 2 s, so at least 6",
        ),
        ("IBKR_PORT", "0", "❌ IBKR_PORT=0 is out of range: from 1 to 65535"),
        ("IBKR_PACING_MARGIN_S", "-1", "❌ IBKR_PACING_MARGIN_S=-1 is out of range: at least 0"),
        ("IBKR_CONNECT_TIMEOUT", "0", "❌ IBKR_CONNECT_TIMEOUT=0 is out of range: more than 0"),
    ],
    ids=[
        "port",
        "timeout",
        "database-scheme",
        "database-bare",
        "redis",
        "stale",
        "port-range",
        "margin-range",
        "timeout-range",
    ],
)
def test_a_setting_of_the_wrong_kind_is_refused_in_one_line(tmp_path, name, value, error):
    """A typo in `.env` or the environment: one line naming the setting (never a password the
    URL holds), exit code 2, no traceback."""
    result = manage("check", DATA_DIR=str(tmp_path), **{name: value})
    assert result.returncode == 2
    assert result.stderr.splitlines() == [error]
    assert "s3cret" not in result.stderr


def test_make_up_refuses_a_web_port_of_the_wrong_kind_in_one_line(tmp_path):
    """`make up` (scripts/stack.py) reads the deployment's own knobs first: before starting
    anything, one line."""
    result = subprocess.run(
        [sys.executable, "scripts/stack.py", "up"],
        cwd=ROOT,
        env=production_env(WEB_PORT="80000", DATA_DIR=str(tmp_path)),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == ["❌ WEB_PORT=80000 is out of range: from 1 to 65535"]
