"""App config for the fetcher: instruments, bars, fetch runs and the IBKR layer."""

from django.apps import AppConfig


class FetcherConfig(AppConfig):
    name = "fetcher"
    default_auto_field = "django.db.models.BigAutoField"
