"""What `manage.py backtest` shows of a BacktestOutcome: rich tables, or one JSON object."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from fetcher.cli import narrow_table
from fetcher.domain.timeframes import BY_CODE
from fetcher.models import GatewayKind

from ..domain.metrics import DURATIONS, METRICS, TIMES, annualised_note, duration_text, time_text
from ..services.backtest import BacktestOutcome
from ..services.runs import Outcome

TRADES_SHOWN = 10  # last trades listed per symbol
SWEEP_COLUMNS = ("Return [%]", "Max. Drawdown [%]", "# Trades")  # beside the ranking metric


def outcome_print(out: Console, outcome: BacktestOutcome) -> None:
    """The runs' metrics side by side and each symbol's last trades; a sweep's best points."""
    if outcome.sweep:
        out.print(_sweep_table(outcome))
        return
    _header_print(out, outcome)
    columns = [*outcome.singles, *([outcome.portfolio] if outcome.portfolio else [])]
    table = _table("Backtest Results")
    table.add_column("Metric", overflow="fold")
    for o in columns:
        label = o.label if o is not outcome.portfolio else "Portfolio"
        table.add_column(label, justify="right", overflow="fold")
    for key in (k for k in METRICS if any(k in o.metrics for o in columns)):
        table.add_row(key, *[_cell(key, o.metrics.get(key)) for o in columns])
    table.add_row("Run", *[str(o.run.pk) for o in columns])
    out.print(table)
    note = annualised_note(
        min(o.ts[0] for o in outcome.singles), max(o.ts[-1] for o in outcome.singles)
    )
    if note:
        out.print(f"⚠️  {note}")
    for o in outcome.singles:
        _trades_print(out, o)


def outcome_json(outcome: BacktestOutcome) -> dict:
    """The request, then the metrics under backtesting.py's names and the closed trades: of the
    one symbol, of each symbol and the portfolio; or a sweep's best points (metrics only)."""
    request = outcome.request
    strategy = request.strategy_spec
    named = {"strategy": strategy.name}
    if not strategy.builtin:
        named["strategy_source"] = strategy.reference
    if outcome.sweep:
        sweep = outcome.sweep
        return {
            **named,
            "symbol": sweep.label,
            "maximize": request.maximize,
            "points": len(sweep.runs),
            "group": outcome.group,
            "best": [
                {"params": r.params, "run_id": r.pk, **_ordered(r.metrics)} for r in sweep.best
            ],
        }
    head = {
        **named,
        "params": request.params,
        "timeframe": request.timeframe.name,
        "start": request.start.isoformat(),
        "end": request.end.isoformat(),
        "data_source": request.data_source.value,
    }
    if outcome.portfolio is None:
        return {**head, **_run_json(outcome.singles[0])}
    return {
        **head,
        "symbols": {o.run.symbol: _run_json(o) for o in outcome.singles},
        "portfolio": _run_json(outcome.portfolio),
    }


def _header_print(out: Console, outcome: BacktestOutcome) -> None:
    """What was asked, in a line; where each symbol's bars came from, a line each."""
    request, first = outcome.request, outcome.singles[0].run
    trading = request.trading
    out.print(
        f"{request.title} · {first.get_timeframe_display()} {first.start} to "
        f"{first.end} · cash {trading.cash:,.0f} · commission {trading.commission.label}"
        + (" · trade on close" if trading.trade_on_close else "")
        + (" · long/short" if trading.long_short else " · long only")
    )
    for o in outcome.singles:
        run = o.run
        source = GatewayKind(run.source).label if run.source else "unknown source"
        out.print(
            f"  {o.label}: {run.bars:,} bars {_when(time_text(o.ts[0]))} to "
            f"{_when(time_text(o.ts[-1]))} "
            f"from {run.get_data_source_display()} ({source})"
        )


def _trades_print(out: Console, outcome: Outcome) -> None:
    trades = outcome.run.trades
    table = _table(
        f"Trades of {outcome.label}: {len(trades)} closed"
        + (f", the last {TRADES_SHOWN}" if len(trades) > TRADES_SHOWN else "")
    )
    utc = " (UTC)" if BY_CODE[outcome.run.timeframe].intraday else ""
    for column in (f"Entry{utc}", f"Exit{utc}"):  # a time stays on one line
        table.add_column(column, justify="right", no_wrap=True)
    for column in ("Size", "Entry Price", "Exit Price", "P&L", "Return [%]"):
        table.add_column(column, justify="right", overflow="fold")
    for t in trades[-TRADES_SHOWN:]:
        table.add_row(
            _when(t["EntryTime"]),
            _when(t["ExitTime"]),
            f"{t['Size']:,}",
            f"{t['EntryPrice']:,.2f}",
            f"{t['ExitPrice']:,.2f}",
            f"{t['PnL']:,.2f}",
            f"{t['ReturnPct'] * 100:.2f}",
        )
    out.print(table)
    held = outcome.result.open_trade
    if held:
        side = "long" if held.size > 0 else "short"
        out.print(
            f"  Open at the end (in the equity, not in the trades): {side} {abs(held.size):,} "
            f"since {_when(time_text(outcome.ts[held.entry_bar]))} at {held.entry_price:,.2f}"
        )


def _sweep_table(outcome: BacktestOutcome) -> Table:
    request, sweep = outcome.request, outcome.sweep
    metric, names = request.maximize, list(request.grids)
    table = _table(f"Best {len(sweep.best)} of {len(sweep.runs)} by {metric}")
    for name in [*names, metric, *SWEEP_COLUMNS, "Run"]:
        table.add_column(name, justify="right", overflow="fold")
    for run in sweep.best:
        table.add_row(
            *[str(run.params[n]) for n in names],
            *[_cell(k, run.metrics.get(k)) for k in (metric, *SWEEP_COLUMNS)],
            str(run.pk),
        )
    return table


def _table(title: str) -> Table:
    return narrow_table(title)


def _run_json(o: Outcome) -> dict:
    """A run: what it is, its metrics, then its closed trades (backtesting.py's columns, times
    UTC)."""
    run = o.run
    return {
        "symbol": run.symbol,
        "run_id": run.pk,
        "bars": run.bars,
        "source": run.source,
        **_ordered(run.metrics),
        "trades": run.trades,
    }


def _ordered(metrics: dict) -> dict:
    """Metrics in backtesting.py's order (PostgreSQL's jsonb keeps its own)."""
    return {key: metrics[key] for key in METRICS if key in metrics}


def _when(text: str) -> str:
    """A bar time as short as it can be: daily bars start at midnight, bars of a minute or
    more at a whole minute."""
    return text.removesuffix(" 00:00:00").removesuffix(":00")


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
