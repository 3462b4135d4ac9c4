"""Where ibdata's settings come from: the process's environment over the project's `.env`, which
is read but never exported, so nothing in it (a TWS login) reaches the processes ibdata starts."""

from __future__ import annotations

import os
from collections import ChainMap
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
DOTENV = BASE_DIR / ".env"
# The TWS login: only the IB Gateway container uses it (docker-compose.yml hands it over there).
NEVER_READ = frozenset({"TWS_USERNAME", "TWS_PASSWORD", "TWS_USERNAME_2", "TWS_PASSWORD_2"})


def dotenv_read(path: Path) -> dict[str, str]:
    """The variables of a `.env` file, parsed as django-environ parses them, less the TWS login;
    put in no environment."""
    if not path.is_file():
        return {}

    class Parsed(environ.Env):
        ENVIRON: dict[str, str] = {}  # read_env's target instead of os.environ

    Parsed.read_env(path, overwrite=True)
    return {name: value for name, value in Parsed.ENVIRON.items() if name not in NEVER_READ}


KINDS = {int: "a whole number", float: "a number"}


class Env(environ.Env):
    """django-environ's reader, where a value that is not of its kind (IBKR_PORT=abc), or out of
    its range (`low`, `high`: at least, at most; `above`: more than), is a setting to fix, said
    in one line (ImproperlyConfigured: manage.py prints it, no traceback)."""

    def int(self, var, default=environ.Env.NOTSET, *, low=None, high=None):
        return _within(var, super().int(var, default), low, high, None)

    def float(self, var, default=environ.Env.NOTSET, *, low=None, high=None, above=None):
        return _within(var, super().float(var, default), low, high, above)

    def get_value(self, var, cast=None, default=environ.Env.NOTSET, parse_default=False):
        try:
            return super().get_value(var, cast=cast, default=default, parse_default=parse_default)
        except ValueError:
            value = self.ENVIRON.get(var, default)
            kind = KINDS.get(cast, f"a valid {var}")
            raise ImproperlyConfigured(f"{var}: {value!r} is not {kind}") from None


def _within(var: str, value, low, high, above):
    if above is not None and value <= above:
        raise ImproperlyConfigured(f"{var}={value:g} is out of range: more than {above:g}")
    if (low is not None and value < low) or (high is not None and value > high):
        if high is None:
            bound = f"at least {low:g}"
        else:
            bound = f"at most {high:g}" if low is None else f"from {low:g} to {high:g}"
        raise ImproperlyConfigured(f"{var}={value:g} is out of range: {bound}")
    return value


# The one django-environ reader. Looked up live: a variable a process sets before a module reads
# it (scripts/stack.py's local services) counts; the environment wins over `.env`.
env = Env()
env.ENVIRON = ChainMap(os.environ, dotenv_read(DOTENV))

# The Parquet catalog, the SQLite file of the embedded default and the generated secrets; logs.
DATA_DIR = Path(env("DATA_DIR", default=str(BASE_DIR / "data"))).resolve()
LOG_DIR = Path(env("LOG_DIR", default=str(BASE_DIR / "logs"))).resolve()
