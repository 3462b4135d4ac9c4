"""Django admin: instruments with their chart, fetch runs with their progress, stored bars,
incidents, and beat's schedules with their actions behind permissions."""

from . import incidents, instruments, runs, schedules  # noqa: F401  (registers the model admins)
