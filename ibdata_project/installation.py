"""What each installation makes once and keeps, owner-only, under DATA_DIR: Django's secret key
and Flower's password. `python manage.py init_secrets` makes them (`make demo`, `make up`,
`make test` and docker compose run it); the settings and Flower only read them."""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from ibdata_project.environment import DATA_DIR

INIT_COMMAND = "python manage.py init_secrets"
SECRET_KEY_FILE = DATA_DIR / ".secret_key"
FLOWER_AUTH_FILE = DATA_DIR / ".flower_auth"
OWNER_ONLY = 0o600

KEPT: dict[Path, Callable[[], str]] = {
    SECRET_KEY_FILE: lambda: secrets.token_urlsafe(50),
    FLOWER_AUTH_FILE: lambda: f"flower:{secrets.token_urlsafe(18)}",
}


def installation_secrets_init() -> list[Path]:
    """Make each kept value that is missing (or empty: it holds nothing to keep) and return the
    files made; those already there stay as they are, owner-only. Safe to run again."""
    made = []
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    for path, make in KEPT.items():
        if path.exists() and not path.read_text().strip():
            path.unlink()
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, OWNER_ONLY)
        except FileExistsError:
            if stat.S_IMODE(path.stat().st_mode) != OWNER_ONLY:
                path.chmod(OWNER_ONLY)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
        made.append(path)
    return made


def kept_read(path: Path) -> str | None:
    """The value kept in `path`, or None when `init_secrets` has not made it."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        return None


def secret_key_check() -> None:
    """For the web server, which signs sessions with it: ImproperlyConfigured naming the command
    to run when the settings have no secret key."""
    from django.conf import settings

    settings.ALLOWED_HOSTS  # noqa: B018 (read first: the settings' own errors stay theirs)
    try:
        settings.SECRET_KEY  # noqa: B018 (Django refuses an empty one when it is read)
    except ImproperlyConfigured as exc:
        raise ImproperlyConfigured(
            f"no secret key: run `{INIT_COMMAND}` (it keeps one in {SECRET_KEY_FILE}), "
            "or set DJANGO_SECRET_KEY"
        ) from exc
