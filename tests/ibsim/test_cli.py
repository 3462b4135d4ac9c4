"""The simulator's command line (ibsim.cli): its options, and `python -m ibsim` as a process of
its own, as users and benchmarks run it."""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from ibsim.cli import UsageError, add_arguments, config_from
from ibsim.gateway import Faults, SimConfig
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


def options(*argv: str) -> dict:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return vars(parser.parse_args(argv))


def test_options_become_the_configuration():
    config = config_from(
        options("--port", "0", "--account", "DU1, DU2", "--time-scale", "600", "--latency",
                "0.5", "--drop-after", "3", "--message-rate", "0", "--no-identify")
    )  # fmt: skip
    assert (config.port, config.accounts, config.time_scale, config.latency_s) == (
        0,
        ("DU1", "DU2"),
        600.0,
        0.5,
    )
    assert config.faults == Faults(drop_after_requests=3)
    assert (config.message_rate, config.identify) == (0, False)
    assert config_from(options()) == SimConfig(faults=Faults())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--time-scale", "-1"), "--time-scale must be positive"),
        (("--port", "70000"), "--port must be between 0 and 65535"),
        (("--account", " , "), "--account must not be empty"),
        (("--latency", "-0.1"), "--latency must not be negative"),
    ],
)
def test_a_bad_option_is_a_usage_error(argv, message):
    with pytest.raises(UsageError) as info:
        config_from(options(*argv))
    assert str(info.value) == message


def test_the_stats_file_holds_the_counters(tmp_path, ib_factory):
    stats = tmp_path / "stats.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", "0", "--stats-file", str(stats)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        port = int(re.search(r":(\d+) ", proc.stdout.readline()).group(1))
        ib = ib_factory(SimpleNamespace(port=port))
        ib.reqCurrentTime()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counts = json.loads(stats.read_text()) if stats.exists() else {}
            if counts.get("connections") == 1 and counts.get("messages", 0) > 0:
                break
            time.sleep(0.2)
        assert counts["connections"] == 1 and counts["messages"] > 0
        assert counts["errors"] == {"2104": 1, "2106": 1, "2158": 1}  # the farm notices
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
