"""Django admin: instruments with their chart, fetch runs with their progress, stored bars,
incidents."""

from . import incidents, instruments, runs  # noqa: F401  (registers the model admins)
