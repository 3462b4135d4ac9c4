"""The Celery application: configured from Django settings, tasks discovered per app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")

app = Celery("ibdata")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
