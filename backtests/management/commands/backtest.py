"""`manage.py backtest`: backtest a strategy on stored (or first fetched) bars; sweeps and pictures."""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import uuid

from django.core.management.base import BaseCommand
from django.utils import timezone
from rich.table import Table

from backtests.domain.bars import BarsRequest, DataSource
from backtests.domain.commissions import commission_parse
from backtests.domain.engine import TradingConfig
from backtests.domain.metrics import DURATIONS, METRICS, TIMES, duration_text, time_text
from backtests.domain.problems import InvalidRequest
from backtests.domain.strategies import STRATEGIES, strategy_get
from backtests.domain.sweeps import grid_parse, sweep_points
from backtests.selectors import backtest_runs_of_group
from backtests.services.bars import (
    backtest_bars,
    backtest_fetch_wait,
    backtest_missing,
)
from backtests.services.pictures import equity_picture_write, sweep_heatmap_write
from backtests.services.runs import backtest_execute, backtest_portfolio
from backtests.services.sweeps import metric_check, sweep_best, sweep_chunks_send, sweep_wait
from fetcher.cli import (
    check_broker,
    check_database,
    console,
    display_path,
    parse_date,
    rth_arguments,
    submit_preflight,
    tasks_in_process,
    user_errors,
)
from fetcher.domain.instruments import instrument_specs_parse
from fetcher.domain.requests import FetchRequest
from fetcher.domain.timeframes import WhatToShow, timeframe_parse
from fetcher.exceptions import InvalidInput
from fetcher.models import GatewayKind, RequestedBy
from fetcher.services.submit import fetch_submit

FETCH_TIMEOUT_S = 3600.0
SWEEP_TIMEOUT_S = 3600.0
SWEEP_CHUNK_POINTS = 10  # grid points per task
TRADES_SHOWN = 10  # last trades listed per symbol


def _flag(field: str) -> str:
    """The option that gives a request's field: data_source -> --data-source."""
    return "--" + field.replace("_", "-")


def _phrased_with_flags(handle):
    """A request's problems phrased with this command's options: '--fast 30 must be ...'."""

    @functools.wraps(handle)
    def wrapper(self, *args, **opts):
        try:
            return handle(self, *args, **opts)
        except InvalidRequest as exc:
            raise InvalidInput(exc.phrase(_flag)) from None

    return wrapper


class Command(BaseCommand):
    help = (
        "Backtest a strategy on stored bars (fetching what is missing first with --data-source "
        "ibkr): metrics as backtesting.py names them, trades, a stored BacktestRun. Several "
        "symbols add an equal-weight portfolio; ranges like --fast 5:50:5 run a sweep."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--strategy", default="sma", help=f"one of: {', '.join(sorted(STRATEGIES))}"
        )
        parser.add_argument("--symbols", help="comma-separated: AAPL,MSFT,GOOGL")
        parser.add_argument("--start", help="first date, YYYY-MM-DD")
        parser.add_argument("--end", help="last date, inclusive, YYYY-MM-DD (default: today)")
        parser.add_argument("--timeframe", default="DAILY", help="DAILY, 1-HOUR, 1-MINUTE, ...")
        parser.add_argument("--what-to-show", default="TRADES", help="TRADES, MIDPOINT, ...")
        rth_arguments(parser)
        parser.add_argument("--fast", help="fast SMA window (default 10), or a grid 5:50:5")
        parser.add_argument("--slow", help="slow SMA window (default 30), or a grid 20:200:10")
        parser.add_argument(
            "--data-source",
            default="ibkr",
            help="ibkr (default: fetch what is missing, then read the database), db, catalog",
        )
        parser.add_argument("--cash", default="100000", help="starting cash (default 100000)")
        parser.add_argument(
            "--commission",
            default="0",
            help="a fraction of each fill (0.002 = 0.2%%), or ibkr (USD 0.005/share, min 1, "
            "max 1%%); default 0",
        )
        parser.add_argument(
            "--trade-on-close", action="store_true", help="fill at the signal bar's close"
        )
        parser.add_argument(
            "--long-short", action="store_true", help="go short on the opposite signal"
        )
        parser.add_argument("--plot", metavar="PNG", help="write equity and drawdown here")
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--maximize", default="Sharpe Ratio", help="metric ranking a sweep's points"
        )
        parser.add_argument("--top", default="5", help="best sweep points shown (default 5)")
        parser.add_argument("--heatmap", metavar="PNG", help="write a sweep's heatmap here")
        parser.add_argument(
            "--chunk",
            default=str(SWEEP_CHUNK_POINTS),
            help=f"grid points per sweep task (default {SWEEP_CHUNK_POINTS})",
        )

    @user_errors
    @_phrased_with_flags
    def handle(self, *args, **opts):
        strategy = strategy_get(opts["strategy"])
        if not opts["symbols"] or not opts["symbols"].strip():
            raise InvalidInput("no symbols given: use --symbols AAPL,MSFT")
        specs = instrument_specs_parse(opts["symbols"])
        timeframe = timeframe_parse(opts["timeframe"])
        what = WhatToShow.parse(opts["what_to_show"])
        today = timezone.now().date()
        start = parse_date(opts["start"], "--start")
        end = parse_date(opts["end"], "--end") or today
        if start is None:
            raise InvalidInput("no --start given: use --start 2024-01-01 (and --end)")
        if end < start:
            raise InvalidInput(f"empty range: --end {end} is before --start {start}")
        if start > today:
            raise InvalidInput(f"--start {start} is in the future (today is {today})")
        data_source = opts["data_source"].strip().lower()
        if data_source not in list(DataSource):
            raise InvalidInput(
                f"--data-source {opts['data_source']!r}: use one of {', '.join(DataSource)}"
            )
        data_source = DataSource(data_source)
        trading = TradingConfig(
            cash=_cash(opts["cash"]),
            commission=commission_parse(opts["commission"]),
            trade_on_close=opts["trade_on_close"],
            long_short=opts["long_short"],
        )
        grids = {
            name: grid_parse(opts.get(name), name) or [default]
            for name, default in strategy.defaults.items()
        }
        sweep = any(len(values) > 1 for values in grids.values())
        opts["top"] = _positive_int(opts["top"], "--top")
        opts["chunk"] = _positive_int(opts["chunk"], "--chunk")
        if sweep:
            if len(specs) > 1:
                raise InvalidInput("a sweep takes one symbol: give --symbols one symbol")
            points, skipped = sweep_points(strategy, grids)
            metric = metric_check(opts["maximize"], METRICS)
        else:
            params = strategy.params_resolve({k: v[0] for k, v in grids.items()})
        check_database()
        out = console()
        notes = console(stderr=True) if opts["json"] else out

        fetch_run_id = None
        if data_source == DataSource.IBKR:
            missing = backtest_missing(
                specs=specs,
                timeframe=timeframe,
                what_to_show=what,
                rth=opts["use_rth"],
                start=start,
                end=end,
            )
            if missing:
                submit_preflight()
                labels = ",".join(s.label for s in missing)
                notes.print(f"Fetching the missing {timeframe.name} bars of {labels} first ...")
                # The fetch `manage.py fetch` makes: in this process, or on the ibkr worker.
                request = FetchRequest(
                    instruments=tuple(missing),
                    timeframe=timeframe,
                    what_to_show=what,
                    use_rth=opts["use_rth"],
                    start=start,
                    end=end,
                )
                handle = fetch_submit(request=request, requested_by=RequestedBy.BACKTEST)
                run = backtest_fetch_wait(run_id=handle.run_id, timeout_s=FETCH_TIMEOUT_S)
                fetch_run_id = run.pk
                notes.print(f"✅ fetch run {run.pk}: {run.bars_stored} bars stored")
        requests = [
            BarsRequest(
                spec=spec,
                timeframe=timeframe,
                what_to_show=what,
                rth=opts["use_rth"],
                start=start,
                end=end,
                data_source=data_source,
            )
            for spec in specs
        ]
        barsets = [backtest_bars(request=r) for r in requests]
        group = uuid.uuid4().hex
        if sweep:
            self._sweep(
                opts,
                strategy,
                requests[0],
                barsets[0],
                points,
                skipped,
                trading,
                group,
                metric,
                notes,
            )
            return
        outcomes = [
            backtest_execute(
                barset=b,
                strategy=strategy,
                params=params,
                trading=trading,
                group=group,
                fetch_run_id=fetch_run_id,
            )
            for b in barsets
        ]
        portfolio = None
        if len(barsets) > 1:
            portfolio = backtest_portfolio(
                barsets=barsets,
                strategy=strategy,
                params=params,
                trading=trading,
                group=group,
                fetch_run_id=fetch_run_id,
            )
        picture = None
        if opts["plot"]:
            curves = [(o.label, o.ts, o.result.equity) for o in outcomes]
            if portfolio:
                curves.append((portfolio.label, portfolio.ts, portfolio.result.equity))
            title = f"{strategy.name} {_params_text(params)} · {timeframe.name} {start} to {end}"
            picture = equity_picture_write(path=opts["plot"], title=title, curves=curves)
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    _json_of(
                        strategy.name,
                        params,
                        outcomes,
                        portfolio,
                        timeframe.name,
                        start,
                        end,
                        data_source,
                    )
                )
            )
        else:
            self._report(out, strategy.name, params, trading, outcomes, portfolio)
        if picture:
            notes.print(f"🖼  Equity and drawdown: {display_path(picture)}")

    def _sweep(
        self, opts, strategy, request, barset, points, skipped, trading, group, metric, notes
    ):
        notes.print(
            f"Sweep of {len(points)} points on {barset.label} ({len(barset.bars)} "
            f"{barset.timeframe.name} bars)"
            + (f"; {skipped} points skipped (invalid parameters)" if skipped else "")
            + (" in this process" if tasks_in_process() else " on the backtests queue")
        )
        if not tasks_in_process():
            check_broker()
        sweep_chunks_send(
            bars=request,
            strategy=strategy.name,
            points=points,
            trading=trading,
            group=group,
            chunk_size=opts["chunk"],
        )
        sweep_wait(group=group, total=len(points), timeout_s=SWEEP_TIMEOUT_S)
        runs = backtest_runs_of_group(group=group)
        best = sweep_best(runs=runs, metric=metric, limit=opts["top"])
        picture = None
        if opts["heatmap"]:
            names = list(strategy.defaults)
            picture = sweep_heatmap_write(
                path=opts["heatmap"],
                runs=runs,
                x=names[0],
                y=names[-1],
                metric=metric,
                title=f"{strategy.name} on {barset.label}: {metric}",
            )
        if opts["json"]:
            self.stdout.write(
                json.dumps(
                    {
                        "strategy": strategy.name,
                        "symbol": barset.label,
                        "maximize": metric,
                        "points": len(runs),
                        "group": group,
                        "best": [
                            {"params": r.params, "run_id": r.pk, **_ordered(r.metrics)}
                            for r in best
                        ],
                    }
                )
            )
        else:
            table = Table(
                title=f"Best {len(best)} of {len(runs)} by {metric}",
                title_justify="left",
                title_style="bold",
            )
            names = list(strategy.defaults)
            for name in [*names, metric, "Return [%]", "Max. Drawdown [%]", "# Trades", "Run"]:
                table.add_column(name, justify="right")
            for run in best:
                table.add_row(
                    *[str(run.params[n]) for n in names],
                    *[
                        _cell(k, run.metrics.get(k))
                        for k in (metric, "Return [%]", "Max. Drawdown [%]", "# Trades")
                    ],
                    str(run.pk),
                )
            console().print(table)
        if picture:
            notes.print(f"🖼  Heatmap: {display_path(picture)}")

    def _report(self, out, name, params, trading, outcomes, portfolio) -> None:
        columns = [*outcomes, *([portfolio] if portfolio else [])]
        first = outcomes[0].run
        out.print(
            f"{name} {_params_text(params)} · {first.get_timeframe_display()} {first.start} to "
            f"{first.end} · cash {trading.cash:,.0f} · commission {trading.commission.label}"
            + (" · trade on close" if trading.trade_on_close else "")
            + (" · long/short" if trading.long_short else " · long only")
        )
        for o in outcomes:
            run = o.run
            source = GatewayKind(run.source).label if run.source else "unknown source"
            out.print(
                f"  {o.label}: {run.bars} bars {time_text(o.ts[0])} to {time_text(o.ts[-1])} "
                f"from {run.get_data_source_display()} ({source})"
            )
        table = Table(title="Backtest Results", title_justify="left", title_style="bold")
        table.add_column("Metric")
        for o in columns:
            table.add_column(o.label if o is not portfolio else "Portfolio", justify="right")
        keys = [k for k in METRICS if any(k in o.metrics for o in columns)]
        for key in keys:
            table.add_row(key, *[_cell(key, o.metrics.get(key)) for o in columns])
        table.add_row("Run", *[str(o.run.pk) for o in columns])
        out.print(table)
        for o in outcomes:
            self._trades(out, o)

    def _trades(self, out, outcome) -> None:
        trades = outcome.run.trades
        table = Table(
            title=f"Trades of {outcome.label}: {len(trades)} closed"
            + (f", the last {TRADES_SHOWN}" if len(trades) > TRADES_SHOWN else ""),
            title_justify="left",
            title_style="bold",
        )
        for column in ("Entry", "Exit", "Size", "Entry Price", "Exit Price", "PnL", "Return [%]"):
            table.add_column(column, justify="right")
        for t in trades[-TRADES_SHOWN:]:
            table.add_row(
                _when(t["EntryTime"]),
                _when(t["ExitTime"]),
                str(t["Size"]),
                f"{t['EntryPrice']:.2f}",
                f"{t['ExitPrice']:.2f}",
                f"{t['PnL']:,.2f}",
                f"{t['ReturnPct'] * 100:.2f}",
            )
        out.print(table)
        held = outcome.result.open_trade
        if held:
            side = "long" if held.size > 0 else "short"
            out.print(
                f"  Open at the end (in the equity, not in the trades): {side} {abs(held.size)} "
                f"since {time_text(outcome.ts[held.entry_bar])} at {held.entry_price:.2f}"
            )


def _cash(text: str) -> float:
    try:
        cash = float(text)
    except ValueError:
        raise InvalidInput(f"--cash {text!r} is not a number") from None
    if not math.isfinite(cash) or cash <= 0:
        raise InvalidInput(f"--cash {text!r} must be a positive amount")
    return cash


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidInput(f"{name} {text!r} is not a whole number") from None
    if value < 1:
        raise InvalidInput(f"{name} {text!r} must be at least 1")
    return value


def _when(text: str) -> str:
    """A bar time as short as it can be: daily bars start at midnight."""
    return text.removesuffix(" 00:00:00")


def _ordered(metrics: dict) -> dict:
    """Metrics in backtesting.py's order (PostgreSQL's jsonb keeps its own)."""
    return {key: metrics[key] for key in METRICS if key in metrics}


def _params_text(params: dict) -> str:
    return " ".join(f"{k}={v}" for k, v in params.items())


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if key in TIMES:
        return time_text(value)
    if key in DURATIONS:
        return duration_text(value)
    if isinstance(value, int):
        return str(value)
    return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.2f}"


def _json_of(strategy, params, outcomes, portfolio, timeframe, start, end, data_source) -> dict:
    def one(o) -> dict:
        return {
            "symbol": o.run.symbol,
            "run_id": o.run.pk,
            "bars": o.run.bars,
            "source": o.run.source,
            **_ordered(o.run.metrics),
        }

    head = {
        "strategy": strategy,
        "params": params,
        "timeframe": timeframe,
        "start": start.isoformat() if isinstance(start, dt.date) else start,
        "end": end.isoformat() if isinstance(end, dt.date) else end,
        "data_source": data_source,
    }
    if portfolio is None:
        return {**head, **one(outcomes[0])}
    return {
        **head,
        "symbols": {o.run.symbol: one(o) for o in outcomes},
        "portfolio": one(portfolio),
    }
