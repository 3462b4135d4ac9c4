"""Flower's settings: `celery -A ibdata_project flower`, run from here, reads this file.

Flower reads FLOWER_* variables, then this file (its default --conf), then its command line,
so an option given there still wins. Every name below that is one of Flower's options is one;
the others start with an underscore. Flower never runs without basic auth: a missing, empty or
malformed one, wherever it comes from, stops it with one line.
"""

import sys as _sys

from django.core.exceptions import ImproperlyConfigured as _ImproperlyConfigured
from tornado.options import options as _options

from ibdata_project import deploy as _deploy


def _basic_auth_checked() -> None:
    """Run once the command line is read too: Flower's final basic_auth, whatever set it."""
    try:
        _deploy.flower_credentials_check(list(_options.basic_auth or ()), "Flower's options")
    except _ImproperlyConfigured as exc:
        _sys.exit(f"❌ {exc}")


try:
    basic_auth = _deploy.flower_basic_auth()
except _ImproperlyConfigured as _exc:
    _sys.exit(f"❌ {_exc}")
_options.add_parse_callback(_basic_auth_checked)
address = _deploy.FLOWER_ADDRESS
port = _deploy.FLOWER_PORT
# Task pages come from task events: ask the workers to send them if they were started without -E.
enable_events = True
