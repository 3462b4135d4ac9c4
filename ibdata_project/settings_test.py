"""Settings of the test suite (pyproject's DJANGO_SETTINGS_MODULE): production's, plus only what
tests need. Tests of production behaviour run their processes with ibdata_project.settings."""

from ibdata_project.settings import *  # noqa: F403

# The test client signs sessions: a key of the tests' own, so the suite needs no installation
# (`manage.py init_secrets`) and never reads the one a developer's data/ holds.
SECRET_KEY = "ibdata-tests-only-not-a-secret-0123456789-abcdefghijklmnopqrstuvwxyz"
# Users are made in many tests; the production hasher is slow on purpose.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
