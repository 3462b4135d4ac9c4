"""The Celery application: configured from Django settings, tasks discovered per app."""

import os

from celery import Celery
from celery.signals import worker_ready, worker_shutdown

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")

app = Celery("ibdata")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def _ibkr_worker_ready(sender=None, **_):
    """An ibkr worker connects to the gateway at start-up, consumes the ibkr queue only while
    connected, and resumes runs whose worker died (their heartbeat is stale)."""
    from fetcher.execution.worker import ibkr_worker_start

    ibkr_worker_start(sender)


@worker_shutdown.connect
def _ibkr_worker_shutdown(sender=None, **_):
    from fetcher.execution.worker import gateway_loop_stop

    gateway_loop_stop()
