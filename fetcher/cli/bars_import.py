"""`manage.py bars import`: its options, the instrument named (stored, qualified through the
gateway, or given by conId), the import it asks the services for, and its lines."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path

from django.core.management.base import BaseCommand

from fetcher.domain.instruments import instrument_spec_parse
from fetcher.domain.timeframes import WhatToShow, timeframe_parse
from fetcher.exceptions import GatewayUnavailable, InvalidInput
from fetcher.execution.instruments import instrument_qualify
from fetcher.execution.preflight import database_check
from fetcher.models import Instrument
from fetcher.selectors import instrument_find
from fetcher.services.barfiles import bars_import
from fetcher.services.instruments import instrument_declare
from fetcher.storage.barfiles import BAR_COLUMNS, FORMATS
from fetcher.storage.catalog import default_root

from . import UserError, console, display_path, rth_arguments
from .bars_export import progress_shown
from .runs import plural

HELP = (
    "Import bars from a CSV or Parquet file (or every such file of a folder) into one series of "
    "--instrument: the export's layout, or columns mapped with --columns. Every row is checked "
    "(OHLC rules, the timeframe's grid, the exchange's sessions, repeats, a time zone); a file "
    "with bad rows imports nothing and names them, unless --skip-bad. Imported bars are recorded "
    "as such (never in a store of simulator bars), count as stored for later fetches, and go to "
    "the catalog."
)


def add_arguments(parser) -> None:
    parser.add_argument(
        "path", metavar="FILE|FOLDER", help="a .csv or .parquet file, or a folder of them"
    )
    parser.add_argument(
        "--instrument",
        required=True,
        help="the instrument, as fetch names it: AAPL, SPY:ARCA, EUR.USD",
    )
    parser.add_argument("--sec-type", default="", help="contract type (default: stock)")
    parser.add_argument("--exchange", default="", help="contract exchange (default: SMART)")
    parser.add_argument("--currency", default="", help="contract currency (default: USD)")
    parser.add_argument(
        "--con-id", type=int, help="IBKR's conId: import without asking the gateway"
    )
    parser.add_argument(
        "--timeframe", default="DAILY", help="the bars' timeframe: DAILY (default), 1-MINUTE, ..."
    )
    parser.add_argument("--what-to-show", default="TRADES", help="TRADES (default), MIDPOINT, ...")
    rth_arguments(parser)
    parser.add_argument(
        "--format", choices=FORMATS, help="csv or parquet (default: by the file's suffix)"
    )
    parser.add_argument(
        "--columns",
        help="the file's names for ours: time=Date,open=Open,high=High,low=Low,close=Close,"
        "volume=Volume (default: our names or usual ones, any case)",
    )
    parser.add_argument(
        "--tz",
        help="the zone of times that state none: utc, exchange, or a name such as "
        "America/New_York (default: every time must state its zone)",
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="import the good rows of a file with bad ones"
    )


def handle(command: BaseCommand, opts: dict) -> int:
    timeframe = timeframe_parse(opts["timeframe"])
    what = WhatToShow.parse(opts["what_to_show"])
    columns = columns_parse(opts["columns"])
    database_check()
    instrument = instrument_named(opts)
    began = time.monotonic()
    with progress_shown("import", "rows read") as show:
        outcome = bars_import(
            path=Path(opts["path"]),
            instrument=instrument,
            timeframe=timeframe,
            what_to_show=what,
            rth=opts["use_rth"],
            fmt=opts["format"],
            columns=columns,
            tz=opts["tz"],
            skip_bad=opts["skip_bad"],
            catalog_root=default_root(),
            on_progress=show,
        )
    seconds = time.monotonic() - began
    out = console()
    for problem in outcome.problems if outcome.skipped else ():
        out.print(f"⏭️  {problem}")
    skipped = f", {plural(outcome.skipped, 'bad row')} left out" if outcome.skipped else ""
    rate = outcome.bars / seconds if seconds else 0
    out.print(
        f"✅ {outcome.label}: {plural(outcome.bars, 'bar')} imported from "
        f"{plural(outcome.files, 'file')} ({outcome.first:%Y-%m-%d %H:%M}..{outcome.last:%Y-%m-%d %H:%M} "
        f"UTC){skipped}, in {seconds:.1f} s ({rate:,.0f} bars/s); catalog {display_path(default_root())}"
    )
    return 0


def columns_parse(text: str | None) -> dict[str, str]:
    """'time=Date,open=Open' -> {"time": "Date", "open": "Open"}; InvalidInput naming a bad part."""
    if not text:
        return {}
    mapping = {}
    for part in text.split(","):
        ours, sep, theirs = part.partition("=")
        ours = ours.strip().lower()
        if not sep or not theirs.strip() or ours not in BAR_COLUMNS:
            raise InvalidInput(
                f"--columns {part.strip()!r}: use OURS=THEIRS, ours one of {', '.join(BAR_COLUMNS)}"
            )
        mapping[ours] = theirs.strip()
    return mapping


def instrument_named(opts: dict) -> Instrument:
    """The stored instrument --instrument names; else the one --con-id declares; else the gateway's
    (one line when it is down, saying to give --con-id)."""
    spec = instrument_spec_parse(
        opts["instrument"],
        sec_type=opts["sec_type"],
        exchange=opts["exchange"],
        currency=opts["currency"],
    )
    if opts["con_id"]:
        spec = replace(spec, con_id=opts["con_id"])
    found = instrument_find(spec=spec)
    if found is not None:
        return found
    if opts["con_id"]:
        return instrument_declare(spec=spec, con_id=opts["con_id"])
    try:
        return instrument_qualify(spec=spec)
    except GatewayUnavailable as exc:
        raise UserError(
            f"{spec.label} is not stored, and the gateway cannot qualify it ({exc}): start the "
            "gateway, or give --con-id (with --exchange and --currency) to import without it"
        ) from None
