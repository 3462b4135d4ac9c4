"""`manage.py init_secrets`: make this installation's secret key and Flower password, once."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from fetcher.cli import display_path
from ibdata_project.installation import installation_secrets_init


class Command(BaseCommand):
    help = (
        "Make what this installation generates once, owner-only under DATA_DIR: Django's secret "
        "key (.secret_key) and Flower's password (.flower_auth, user 'flower'). Those already "
        "made are kept. make demo, make up, make test and docker compose run it first."
    )

    def handle(self, *args, **options):
        for path in installation_secrets_init():
            self.stdout.write(f"✅ made {display_path(path)} (owner-only)")
