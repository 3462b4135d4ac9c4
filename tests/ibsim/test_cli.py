"""The simulator's command line (ibsim.cli): its options, and `python -m ibsim` as a process of
its own, as users and benchmarks run it."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from types import SimpleNamespace

from tests.support import ROOT


def test_python_m_ibsim_serves_ib_insync_and_stops_on_sigterm(ib_factory):
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", "0", "--account", "DU7654321"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline()
        port = int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1))
        ib = ib_factory(SimpleNamespace(port=port))
        assert ib.managedAccounts() == ["DU7654321"]
        ib.disconnect()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "simulator stopped" in out


def test_a_bad_option_is_one_line_and_exit_2():
    result = subprocess.run(
        [sys.executable, "-m", "ibsim", "--time-scale", "0"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == "ibsim: --time-scale must be positive"
    assert result.stdout == ""


def test_a_taken_port_is_one_line_and_exit_2(sim):
    result = subprocess.run(
        [sys.executable, "-m", "ibsim", "--port", str(sim.port)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.startswith(f"ibsim: cannot listen on 127.0.0.1:{sim.port}")
    assert len(result.stderr.strip().splitlines()) == 1
