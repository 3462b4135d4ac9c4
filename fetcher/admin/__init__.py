"""Django admin: instruments with their chart, fetch runs with their progress, stored bars."""

from . import instruments, runs  # noqa: F401  (registers the model admins)
