"""`manage.py backtest`: backtest a strategy (built-in or the user's own) on stored (or first
fetched) bars; sweeps, pictures and CSVs."""

from __future__ import annotations

import dataclasses
import functools
import json

from django.core.management.base import BaseCommand

from backtests.domain.problems import InvalidRequest
from backtests.domain.request import DEFAULT_CHUNK, BacktestRequest
from backtests.domain.strategies import STRATEGIES
from backtests.management.render import outcome_json, outcome_print
from backtests.services.backtest import backtest_submit
from fetcher.cli import console, display_path, option_of, rth_arguments, user_errors
from fetcher.exceptions import InvalidInput
from fetcher.execution.preflight import database_check

ALIASES = ("fast", "slow")  # parameters with an option of their own: --fast 10 is --param fast=10
OPTIONS: tuple[tuple[str, dict], ...] = (
    (
        "--strategy",
        {
            "default": "sma",
            "help": f"{', '.join(sorted(STRATEGIES))}, or your own: path/to/mine.py (mine.py:NAME "
            "when it defines several) or package.module:NAME",
        },
    ),
    ("--symbols", {"help": "comma-separated: AAPL,MSFT,GOOGL"}),
    ("--start", {"help": "first date, YYYY-MM-DD"}),
    ("--end", {"help": "last date, inclusive, YYYY-MM-DD (default: today)"}),
    ("--timeframe", {"default": "DAILY", "help": "DAILY, 1-HOUR, 1-MINUTE, ..."}),
    ("--what-to-show", {"default": "TRADES", "help": "TRADES, MIDPOINT, ..."}),
    (
        "--param",
        {
            "action": "append",
            "metavar": "NAME=VALUE",
            "help": "a strategy parameter (repeat for each): window=20, or a grid window=5:50:5 "
            "or window=10,20,40 (a sweep)",
        },
    ),
    ("--fast", {"help": "sma's fast window (default 10), or a grid 5:50:5: --param fast=..."}),
    ("--slow", {"help": "sma's slow window (default 30), or a grid 20:200:10: --param slow=..."}),
    (
        "--data-source",
        {
            "default": "ibkr",
            "help": "ibkr (default: fetch what is missing, then read the database), db, catalog",
        },
    ),
    ("--cash", {"default": "100000", "help": "starting cash (default 100000)"}),
    (
        "--commission",
        {
            "default": "0",
            "help": "a fraction of each fill (0.002 = 0.2%%), or ibkr (USD 0.005/share, min 1, "
            "max 1%%); default 0",
        },
    ),
    ("--trade-on-close", {"action": "store_true", "help": "fill at the signal bar's close"}),
    ("--long-short", {"action": "store_true", "help": "go short on the opposite signal"}),
    ("--plot", {"metavar": "PNG", "help": "write equity and drawdown here"}),
    ("--trades-csv", {"metavar": "PATH", "help": "write every symbol's closed trades here (CSV)"}),
    ("--equity-csv", {"metavar": "PATH", "help": "write the equity curves, every bar, here (CSV)"}),
    ("--json", {"action": "store_true", "help": "print one JSON object"}),
    ("--maximize", {"default": "Sharpe Ratio", "help": "metric ranking a sweep's points"}),
    ("--top", {"default": "5", "help": "best sweep points shown (default 5)"}),
    ("--heatmap", {"metavar": "PNG", "help": "write a sweep's heatmap here"}),
    (
        "--chunk",
        {
            "default": str(DEFAULT_CHUNK),
            "help": f"grid points per sweep task (default {DEFAULT_CHUNK})",
        },
    ),
)


def _phrased_with_options(handle):
    """A request's problems phrased with this command's options: '--fast 30 must be ...', a
    strategy's parameter as '--param window' unless it has an option of its own."""

    @functools.wraps(handle)
    def wrapper(self, *args, **opts):
        try:
            return handle(self, *args, **opts)
        except InvalidRequest as exc:
            raise InvalidInput(exc.phrase(functools.partial(_option, self, opts))) from None

    return wrapper


def _option(command: BaseCommand, opts: dict, field: str) -> str:
    given = {item.partition("=")[0].strip() for item in opts.get("param") or ()}
    own = field in REQUEST_FIELDS or field in getattr(command, "request_options", {})
    if own or (field in ALIASES and field not in given):
        return option_of(command, field)
    return f"--param {field}"


# Fields of the request itself (and --param's): any other field a problem names is a parameter.
REQUEST_FIELDS = {f.name for f in dataclasses.fields(BacktestRequest)} | {"param", "grids"}


class Command(BaseCommand):
    # A fetch's fields (FetchRequest) as this command's options.
    request_options = {"instruments": "--symbols", "use_rth": "--rth"}
    help = (
        "Backtest a strategy on stored bars (fetching what is missing first with --data-source "
        "ibkr): metrics as backtesting.py names them, trades, a stored BacktestRun. Several "
        "symbols add an equal-weight portfolio; ranges like --fast 5:50:5 run a sweep."
    )

    def add_arguments(self, parser):
        for flag, options in OPTIONS:
            parser.add_argument(flag, **options)
        rth_arguments(parser)

    @user_errors
    @_phrased_with_options
    def handle(self, *args, **opts):
        request = _request(opts)
        database_check()
        out = console()
        notes = console(stderr=True) if opts["json"] else out
        outcome = backtest_submit(request=request, notes=notes.print)
        if opts["json"]:
            self.stdout.write(json.dumps(outcome_json(outcome)))
        else:
            outcome_print(out, outcome)
        for what, path in outcome.files:
            icon = "🖼 " if path.suffix.lower() == ".png" else "📄"
            notes.print(f"{icon} {what}: {display_path(path)}")


def _request(opts: dict) -> BacktestRequest:
    """The options as a request, which reads their texts."""
    return BacktestRequest.parse(
        strategy=opts["strategy"],
        symbols=opts["symbols"],
        start=opts["start"],
        end=opts["end"],
        timeframe=opts["timeframe"],
        what_to_show=opts["what_to_show"],
        rth=opts["use_rth"],
        grids={name: opts[name] for name in ALIASES},
        params=opts["param"] or (),
        data_source=opts["data_source"],
        cash=opts["cash"],
        commission=opts["commission"],
        trade_on_close=opts["trade_on_close"],
        long_short=opts["long_short"],
        maximize=opts["maximize"],
        top=opts["top"],
        chunk=opts["chunk"],
        plot=opts["plot"],
        heatmap=opts["heatmap"],
        trades_csv=opts["trades_csv"],
        equity_csv=opts["equity_csv"],
    )
