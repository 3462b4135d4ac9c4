"""The simulator's command line (ibsim.cli): its options, and `python -m ibsim` as a process of
its own, as users and benchmarks run it."""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

from ibsim.cli import UsageError, add_arguments, config_from
from ibsim.gateway import Faults, SimConfig
from tests.support import ROOT


@contextlib.contextmanager
def ibsim_process(*options: str):
    """`python -m ibsim --port 0 OPTIONS`: the process and its first line, stopped with SIGTERM."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "ibsim", "--port", "0", *options],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        yield proc, proc.stdout.readline()
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.communicate(timeout=30)


def port_of(line: str) -> SimpleNamespace:
    return SimpleNamespace(port=int(re.search(r"listening on 127\.0\.0\.1:(\d+)", line).group(1)))


def test_python_m_ibsim_serves_ib_insync_and_stops_on_sigterm(ib_factory):
    with ibsim_process("--account", "DU7654321") as (proc, line):
        ib = ib_factory(port_of(line))
        assert ib.managedAccounts() == ["DU7654321"]
        ib.disconnect()
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


def test_the_gateway_life_options_become_faults():
    config = config_from(
        options("--restart-after-requests", "100", "--restart-down-s", "3",
                "--log-off-after-requests", "200", "--farm-outage-after-requests", "300",
                "--farm-outage-s", "4", "--competing-session-after-requests", "400",
                "--competing-session-s", "5", "--spurious-200-after-requests", "500",
                "--spurious-200-s", "6", "--no-data-rate", "0.02", "--no-data-seed", "9",
                "--no-permission", "aapl, MSFT", "--logged-off")
    )  # fmt: skip
    assert config.faults == Faults(
        restart_after_requests=100,
        restart_down_s=3.0,
        log_off_after_requests=200,
        farm_outage_after_requests=300,
        farm_outage_s=4.0,
        competing_after_requests=400,
        competing_s=5.0,
        spurious_200_after_requests=500,
        spurious_200_s=6.0,
        no_data_rate=0.02,
        no_data_seed=9,
    )
    assert config.no_permission == {"AAPL", "MSFT"} and config.logged_off


def test_help_names_the_source_of_each_fault():
    result = subprocess.run(
        [sys.executable, "-m", "ibsim", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    text = " ".join(result.stdout.split())
    for option, source in [
        ("--restart-after-requests", "IBC issues 290, 316"),
        ("--log-off-after-requests", "IBC issues 205, 290"),
        ("--farm-outage-after-requests", "twsapi list message 51396"),
        ("--competing-session-after-requests", "ibkr.info article 1719"),
        ("--spurious-200-after-requests", "ib_insync issue 330"),
        ("--no-data-rate", "ibdata issue 17"),
        ("--no-permission", "ib_insync issues 19, 234, 461"),
    ]:
        assert source in text.split(option, 2)[2].split(" --", 1)[0], option


def test_a_logged_off_simulator_logs_in_on_sigusr1(ib_factory):
    with ibsim_process("--logged-off") as (proc, line):
        assert "logged off (SIGUSR1 logs in) on 127.0.0.1:" in line
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=2).close()
                break
            except ConnectionRefusedError:
                time.sleep(0.1)
        assert ib_factory(SimpleNamespace(port=port)).reqCurrentTime()


def test_now_sets_the_simulated_present():
    assert config_from(options("--now", "2024-06-07T20:00Z")).now == 1_717_790_400
    assert config_from(options("--now", "2024-06-07T16:00-04:00")).now == 1_717_790_400
    assert config_from(options()).now is None  # the real present


def test_python_m_ibsim_now_serves_that_present(ib_factory):
    with ibsim_process("--now", "2024-06-07T20:00Z") as (_, line):
        assert "present 2024-06-07T20:00:00Z" in line
        ib = ib_factory(port_of(line))
        assert 0 <= ib.reqCurrentTime().timestamp() - 1_717_790_400 < 60


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (("--time-scale", "-1"), "--time-scale must be positive"),
        (("--port", "70000"), "--port must be between 0 and 65535"),
        (("--account", " , "), "--account must not be empty"),
        (("--latency", "-0.1"), "--latency must not be negative"),
        (("--no-data-rate", "1.5"), "--no-data-rate must be between 0 and 1"),
        (("--restart-after-requests", "-1"), "--restart-after-requests must not be negative"),
        (("--farm-outage-s", "-2"), "--farm-outage-s must not be negative"),
        (
            ("--now", "2024-06-07T20:00"),
            "--now '2024-06-07T20:00' has no time zone: e.g. 2024-06-07T20:00Z",
        ),
        (
            ("--now", "yesterday"),
            "--now 'yesterday' is not an ISO 8601 time: e.g. 2024-06-07T20:00Z",
        ),
    ],
)
def test_a_bad_option_is_a_usage_error(argv, message):
    with pytest.raises(UsageError) as info:
        config_from(options(*argv))
    assert str(info.value) == message


def test_the_stats_file_holds_the_counters(tmp_path, ib_factory):
    stats = tmp_path / "stats.json"
    with ibsim_process("--stats-file", str(stats)) as (_, line):
        ib = ib_factory(port_of(line))
        ib.reqCurrentTime()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            counts = json.loads(stats.read_text()) if stats.exists() else {}
            if counts.get("connections") == 1 and counts.get("messages", 0) > 0:
                break
            time.sleep(0.2)
        assert counts["connections"] == 1 and counts["messages"] > 0
        assert counts["errors"] == {"2104": 1, "2106": 1, "2158": 1}  # the farm notices
