"""The gateway simulator as a process of its own, for benchmarks (`manage.py ibsim --port 0`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def start_simulator(*options: str) -> tuple[subprocess.Popen, int]:
    """Start `manage.py ibsim --port 0 OPTIONS...`; return the process and the port it took."""
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), "ibsim", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "ibdata_project.settings"},
    )
    line = proc.stdout.readline()
    m = re.search(r"listening on [\d.]+:(\d+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"simulator did not start: {line.strip()}")
    return proc, int(m.group(1))
