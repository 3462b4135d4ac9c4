"""How ibdata's processes are served on a machine, apart from Django's settings: the web
server's port and processes, Flower's address, port and basic auth. scripts/stack.py (`make up`)
hands WEB_PORT and WEB_CONCURRENCY to the Procfile's web process, flowerconfig.py gives Flower
the rest; docker-compose.yml sets them per container."""

from __future__ import annotations

from django.core.exceptions import ImproperlyConfigured

from ibdata_project.environment import env
from ibdata_project.installation import FLOWER_AUTH_FILE, INIT_COMMAND, kept_read

# `make up` serves the admin with gunicorn on 127.0.0.1:WEB_PORT, in WEB_CONCURRENCY processes.
WEB_PORT = env.int("WEB_PORT", default=8000, low=1, high=65535)
WEB_CONCURRENCY = env.int("WEB_CONCURRENCY", default=2, low=1)

# Flower (`celery -A ibdata_project flower` reads these through flowerconfig.py): on loopback,
# behind basic auth. FLOWER_BASIC_AUTH is "user:password" (comma-separated for several); unset,
# user "flower" with the password `manage.py init_secrets` kept in DATA_DIR/.flower_auth.
FLOWER_ADDRESS = env("FLOWER_ADDRESS", default="127.0.0.1")
FLOWER_PORT = env.int("FLOWER_PORT", default=5555, low=1, high=65535)
FLOWER_BASIC_AUTH = env("FLOWER_BASIC_AUTH", default="")


def flower_basic_auth() -> list[str]:
    """Flower's credentials, each "user:password": FLOWER_BASIC_AUTH, else the kept password.
    ImproperlyConfigured, saying what to do, when there are none or one is malformed."""
    if FLOWER_BASIC_AUTH:
        return flower_credentials_check(FLOWER_BASIC_AUTH.split(","), "FLOWER_BASIC_AUTH")
    kept = kept_read(FLOWER_AUTH_FILE)
    if kept is None:
        raise ImproperlyConfigured(
            f"Flower has no password: run `{INIT_COMMAND}` (it keeps one in {FLOWER_AUTH_FILE}), "
            "or set FLOWER_BASIC_AUTH"
        )
    return flower_credentials_check(kept.split(","), str(FLOWER_AUTH_FILE))


def flower_credentials_check(credentials: list[str], source: str) -> list[str]:
    """`credentials` when there is at least one and each has a user and a password; never "no
    auth" (Flower takes an empty list for that, and an empty password for anyone's)."""
    pairs = [credential.partition(":") for credential in credentials]
    if not pairs or not all(user and password for user, _, password in pairs):
        raise ImproperlyConfigured(
            f"Flower's basic auth ({source}) is empty or not user:password (comma-separated for "
            "several): Flower does not start without one"
        )
    return credentials
