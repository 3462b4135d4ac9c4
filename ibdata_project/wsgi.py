"""WSGI entry point: the web server's. It signs sessions with the installation's secret key, so
without one it stops at start-up with one line saying what to run (gunicorn runs with --preload,
so the line comes once, from the master, before any worker starts)."""

import os
import sys

from django.core.exceptions import ImproperlyConfigured
from django.core.wsgi import get_wsgi_application

from ibdata_project.installation import secret_key_check

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")
try:
    secret_key_check()
except ImproperlyConfigured as exc:
    sys.exit(f"❌ {exc}")
application = get_wsgi_application()
