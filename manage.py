#!/usr/bin/env python
"""Django's command-line entry point for ibdata."""

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "ibdata_project.settings")
    from django.core.exceptions import ImproperlyConfigured
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(sys.argv)
    except ImproperlyConfigured as exc:  # a setting the user must fix: one line, no traceback
        sys.stderr.write(f"❌ {exc}\n")
        sys.exit(2)


if __name__ == "__main__":
    main()
