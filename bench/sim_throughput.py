"""Bars per second the gateway simulator serves to one ib_insync client (docs/benchmarks.md).

The simulator runs in its own process (`manage.py ibsim`), as it would for users; one
ib_insync client asks for 1-minute bars (extended hours, 960 a session) over a long range
in requests of the largest allowed duration ('1 D'), several in flight at once, no
latency, no throttle. The reference, measured in the same run, is the client's own
ceiling: the same HISTORICAL_DATA messages fed straight into ib_insync's decoder with no
socket and no simulator. ratio = served / ceiling. The client's 45 requests/s throttle and
the simulator's 50 messages/s rule are both switched off here: with 960 bars a request they
alone would cap any gateway at about 43,000 bars/s.

    .venv/bin/python bench/sim_throughput.py [--sessions 250] [--in-flight 8] [--format-date 1]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import simproc  # noqa: E402


def start_simulator() -> tuple[subprocess.Popen, int]:
    return simproc.start_simulator("--message-rate", "0")


def session_ends(n: int) -> list[str]:
    """Ends of the extended sessions (20:00 New York; 17:00 after an early close), as UTC
    endDateTime strings, of the last n NYSE sessions before 2024-07-01."""
    import exchange_calendars as xcals
    import pandas as pd

    cal = xcals.get_calendar("XNYS", start="2022-01-01", end="2024-06-30")
    ends = []
    for day in cal.sessions[-n:]:
        close = cal.session_close(day).tz_convert("America/New_York")
        eth_end = (
            close + pd.Timedelta(hours=4)
            if close.hour == 16
            else close.normalize() + pd.Timedelta(hours=17)
        )
        ends.append(eth_end.tz_convert("UTC").strftime("%Y%m%d-%H:%M:%S"))
    return ends


async def fetch_all(
    port: int, ends: list[str], in_flight: int, format_date: int
) -> tuple[int, float, list]:
    from ib_insync import IB, Stock

    ib = IB()
    ib.RaiseRequestErrors = True
    await ib.connectAsync("127.0.0.1", port, clientId=77, readonly=True, timeout=10)
    # Measure the simulator, not the message-rate rule: with 960 bars a request, the 45/s
    # client throttle alone caps any gateway at about 43,000 bars/s.
    ib.client.MaxRequests = 0
    contract = Stock("AAPL", "SMART", "USD")
    queue = list(ends)
    total = 0
    raw_messages: list = []

    # keep the decoded HISTORICAL_DATA fields for the decoder-only reference
    original = ib.client.decoder.handlers[17]

    def spy(fields):
        raw_messages.append(list(fields))
        original(fields)

    ib.client.decoder.handlers[17] = spy

    async def worker():
        nonlocal total
        while queue:
            end = queue.pop()
            bars = await ib.reqHistoricalDataAsync(
                contract, end, "1 D", "1 min", "TRADES", False, formatDate=format_date, timeout=0
            )
            total += len(bars)

    # warm up: the simulator builds its calendars and price walk on first use
    await ib.reqHistoricalDataAsync(
        contract, ends[0], "1 D", "1 min", "TRADES", False, formatDate=format_date
    )
    raw_messages.clear()
    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(in_flight)))
    elapsed = time.perf_counter() - started
    ib.disconnect()
    return total, elapsed, raw_messages


def decoder_ceiling(raw_messages: list) -> tuple[int, float]:
    """Feed the captured messages straight into a fresh ib_insync decoder."""
    from ib_insync import IB

    asyncio.set_event_loop(asyncio.new_event_loop())  # the wrapper makes futures
    ib = IB()
    wrapper, decoder = ib.wrapper, ib.client.decoder
    decoder.serverVersion = 176
    total = 0
    started = time.perf_counter()
    for fields in raw_messages:
        req_id = int(fields[1])
        wrapper.startReq(req_id, container=[])
        decoder.interpret(list(fields))
        total += int(fields[4])
    return total, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=250, help="sessions of 1-minute bars")
    parser.add_argument("--in-flight", type=int, default=8, help="requests in flight at once")
    parser.add_argument(
        "--format-date",
        type=int,
        default=2,
        choices=(1, 2),
        help="2 (epoch seconds) is what the fetcher asks for; 1 is the client default",
    )
    args = parser.parse_args()

    proc, port = start_simulator()
    try:
        ends = session_ends(args.sessions)
        bars, elapsed, raw = asyncio.run(fetch_all(port, ends, args.in_flight, args.format_date))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    ref_bars, ref_elapsed = decoder_ceiling(raw)
    served = bars / elapsed
    ceiling = ref_bars / ref_elapsed
    print(f"{'what':<44}{'bars':>10}{'seconds':>10}{'bars/s':>12}")
    print(
        f"{'simulator -> socket -> ib_insync (served)':<44}{bars:>10}{elapsed:>10.2f}{served:>12,.0f}"
    )
    print(
        f"{'ib_insync decoder alone (reference)':<44}{ref_bars:>10}{ref_elapsed:>10.2f}{ceiling:>12,.0f}"
    )
    print(f"target: served >= 100,000 bars/s -> {'met' if served >= 100_000 else 'MISSED'}")
    print(
        f"bars={bars} requests={len(ends)} bars_per_s={served:.0f} "
        f"decoder_bars_per_s={ceiling:.0f} ratio={served / ceiling:.2f} format_date={args.format_date}"
    )


if __name__ == "__main__":
    main()
