"""Flower's settings, taken from Django's: `celery -A ibdata_project flower`, run from here, reads this file.

Flower reads FLOWER_* variables, then this file (its default --conf), then its command line,
so an option given there still wins. Every name below that is one of Flower's options is one.
"""

from django.conf import settings as _django

address = _django.FLOWER_ADDRESS
port = _django.FLOWER_PORT
basic_auth = _django.FLOWER_BASIC_AUTH
# Task pages come from task events: ask the workers to send them if they were started without -E.
enable_events = True
