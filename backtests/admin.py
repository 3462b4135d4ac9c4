"""Django admin: backtest runs, read-only (they are made by `manage.py backtest`): a sweep as one
row of the list, a run's page with its metrics, trades and equity and drawdown chart (times in
the exchange's zone), its trades and equity curve as CSV downloads."""

from __future__ import annotations

import datetime as dt

import numpy as np
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from fetcher.admin.charts import PLOTLY_JS, closed_hours, equity_html
from fetcher.admin.filters import held
from fetcher.domain.sessions import session_table
from fetcher.domain.time import zone_info, zone_name
from fetcher.domain.timeframes import BY_CODE

from .domain.metrics import DURATIONS, METRICS, TIMES
from .models import BacktestRun, RunKind
from .selectors import SweepSummary, backtest_runs_listed, sweep_summary
from .services.exports import equity_csv, trades_csv

# The downloads of a run's page: (URL name suffix, file name, what).
DOWNLOADS = (("trades", "trades.csv", "Trades"), ("equity", "equity.csv", "Equity curve"))
TRADES_SHOWN = 200  # the last trades a run's page lists (the CSV has them all)


class SweepsFolded(ChangeList):
    """The runs list with each sweep as one row; `?group=...` lists a sweep's every point."""

    def get_queryset(self, request, exclude_parameters=None):
        runs = super().get_queryset(request, exclude_parameters)
        return runs if "group" in self.params else backtest_runs_listed(queryset=runs)


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "what",
        "symbol",
        "timeframe_label",
        "period",
        "source",
        "return_pct",
        "sharpe",
        "trades_count",
    )
    list_filter = (*held("kind"), "strategy", *held("timeframe", "data_source", "source"))
    search_fields = ("symbol", "group")
    fieldsets = (
        (
            None,
            {
                "fields": (
                    ("kind", "strategy", "strategy_source"),
                    "params",
                    ("symbol", "instrument"),
                    ("timeframe", "what_to_show", "rth"),
                    ("start", "end"),
                    ("first_bar", "last_bar", "bars"),
                    ("data_source", "source", "account", "fetch_run"),
                    ("cash_label", "commission", "trade_on_close", "long_short"),
                    ("group", "created_at", "elapsed"),
                    "downloads",
                )
            },
        ),
    )
    readonly_fields = [
        "downloads",
        "cash_label",
        "elapsed",
        *(f.name for f in BacktestRun._meta.fields),
    ]

    def get_changelist(self, request, **kwargs):
        return SweepsFolded

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        return lookup == "group" or super().lookup_allowed(lookup, value, request)

    # --- the list's columns ------------------------------------------------------------

    @admin.display(description="strategy and parameters")
    def what(self, run: BacktestRun):
        points = getattr(run, "sweep_points", None)
        if run.kind != RunKind.SWEEP or not points:
            params = ", ".join(f"{k}={v}" for k, v in run.params.items())
            label = f"{run.strategy} {params}"
            return label if run.kind == RunKind.SINGLE else f"{label} (portfolio)"
        grid = _sweep(run).grid
        ranges = ", ".join(f"{k} {v[0]}..{v[-1]}" for k, v in grid.items())
        return format_html(
            '{} sweep {}: <a href="?group={}" class="sweep-points">{} points</a>',
            run.strategy,
            ranges,
            run.group,
            f"{points:,}",
        )

    @admin.display(description="timeframe", ordering="timeframe")
    def timeframe_label(self, run: BacktestRun) -> str:
        return BY_CODE[run.timeframe].name

    @admin.display(description="dates", ordering="start")
    def period(self, run: BacktestRun) -> str:
        return f"{run.start} to {run.end}"

    @admin.display(description="Return [%]")
    def return_pct(self, run: BacktestRun) -> str:
        return _number(self._shown(run).metrics.get("Return [%]"))

    @admin.display(description="Sharpe")
    def sharpe(self, run: BacktestRun) -> str:
        return _number(self._shown(run).metrics.get("Sharpe Ratio"))

    @admin.display(description="trades")
    def trades_count(self, run: BacktestRun) -> str:
        return str(self._shown(run).metrics.get("# Trades", "-"))

    @staticmethod
    def _shown(run: BacktestRun) -> BacktestRun:
        """The run whose figures a row shows: a sweep's best point by Sharpe."""
        if run.kind == RunKind.SWEEP and getattr(run, "sweep_points", None):
            return _sweep(run).best or run
        return run

    @admin.display(description="cash")
    def cash_label(self, run: BacktestRun) -> str:
        return f"{run.cash:,.2f}"

    @admin.display(description="computed in")
    def elapsed(self, run: BacktestRun) -> str:
        return f"{run.elapsed_ms / 1000:,.2f} s"

    @admin.display(description="Downloads")
    def downloads(self, run: BacktestRun) -> str:
        if not run.pk or not run.equity:
            return "none (a sweep point keeps its metrics only)"
        links = [
            format_html(
                '<a href="{}" id="download-{}">{} ({})</a>',
                reverse(f"admin:backtests_backtestrun_{name}_csv", args=[run.pk]),
                name,
                what,
                file,
            )
            for name, file, what in DOWNLOADS
        ]
        return format_html(" · ".join(["{}"] * len(links)), *links)

    # --- a run's page: metrics, trades, equity and drawdown ------------------------------

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if run is not None:
            times = RunTimes(run)
            trades = run.trades[-TRADES_SHOWN:]
            extra.update(
                zone=times.zone,
                intraday=times.intraday,
                metrics_rows=_pairs([(k, times.metric(k, run.metrics[k])) for k in _ordered(run)]),
                trades_total=len(run.trades),
                trades_rows=[times.trade(t) for t in trades],
                equity_html=times.equity_chart(run),
            )
        return super().change_view(request, object_id, form_url, extra)

    def get_urls(self):
        views = [
            path(
                f"<int:run_id>/{file}",
                self.admin_site.admin_view(self._download(name)),
                name=f"backtests_backtestrun_{name}_csv",
            )
            for name, file, _ in DOWNLOADS
        ]
        plotly = path(
            "plotly.min.js",
            self.admin_site.admin_view(self.plotly_js),
            name="backtests_plotly_js",
        )
        return [plotly, *views, *super().get_urls()]

    def plotly_js(self, request):
        """plotly.js from the installed plotly package, for those who may view runs."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        response = FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript")
        response["Cache-Control"] = "private, max-age=86400"
        return response

    def _download(self, name: str):
        def view(request, run_id: int) -> HttpResponse:
            run = BacktestRun.objects.filter(pk=run_id).first()
            if run is None:
                raise Http404(f"no backtest run {run_id}")
            if not self.has_view_permission(request, run):
                raise PermissionDenied
            response = HttpResponse(content_type="text/csv; charset=utf-8")
            response["Content-Disposition"] = f'attachment; filename="backtest-{run.pk}-{name}.csv"'
            if name == "trades":
                trades_csv(response, [(run.symbol, run.trades)])
            else:
                ts, equity = zip(*run.equity, strict=True) if run.equity else ((), ())
                equity_csv(response, [(run.symbol, ts, equity)])
            return response

        return view

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class RunTimes:
    """A run's times as its page shows them: intraday ones in the exchange's zone (labelled),
    daily ones as dates; figures rounded."""

    def __init__(self, run: BacktestRun):
        instrument = run.instrument
        self.zone = zone_name(instrument.time_zone if instrument else "")
        self.timeframe = BY_CODE[run.timeframe]
        self.intraday = self.timeframe.intraday
        # a portfolio keeps no instrument: its times are taken as US equities' (New York)
        self.sessions = session_table(
            sec_type=instrument.sec_type if instrument else "STK",
            exchange=instrument.exchange if instrument else "SMART",
            primary_exchange=instrument.primary_exchange if instrument else "",
            time_zone=instrument.time_zone if instrument else "",
        )

    def when(self, utc_text: str) -> str:
        """'2024-03-27 13:30:00' (UTC, as stored) -> '2024-03-27 09:30 EDT', or the date."""
        if not self.intraday:
            return utc_text[:10]
        moment = dt.datetime.fromisoformat(utc_text).replace(tzinfo=dt.UTC)
        return f"{moment.astimezone(zone_info(self.zone)):%Y-%m-%d %H:%M %Z}"

    def metric(self, key: str, value) -> str:
        if value is None:
            return "-"
        if key in TIMES:
            return self.when(value)
        if key in DURATIONS:
            return str(value).removesuffix(" 00:00:00") if not self.intraday else str(value)
        if isinstance(value, int):
            return f"{value:,}"
        return f"{value:,.2f}"

    def trade(self, trade: dict) -> tuple[str, ...]:
        return (
            self.when(trade["EntryTime"]),
            self.when(trade["ExitTime"]),
            f"{trade['Size']:,}",
            f"{trade['EntryPrice']:,.2f}",
            f"{trade['ExitPrice']:,.2f}",
            f"{trade['PnL']:,.2f}",
            f"{trade['ReturnPct'] * 100:,.2f}",
            f"{trade.get('Commission', 0):,.2f}",
        )

    def equity_chart(self, run: BacktestRun) -> str:
        if not run.equity:
            return ""
        points = np.asarray(run.equity, dtype=np.float64)
        ts = points[:, 0].astype(np.int64)
        zone = self.zone if self.intraday else "UTC"
        breaks = closed_hours(self.sessions, ts, timeframe=self.timeframe, use_rth=run.rth)
        return equity_html(
            ts, points[:, 1], zone=zone, breaks=breaks, title=f"{run.symbol}: equity and drawdown"
        )


def _sweep(run: BacktestRun) -> SweepSummary:
    """A sweep's summary, read once per row (its columns each need it)."""
    if not hasattr(run, "_sweep_summary"):
        run._sweep_summary = sweep_summary(group=run.group)
    return run._sweep_summary


def _ordered(run: BacktestRun) -> list[str]:
    return [k for k in METRICS if k in run.metrics]


def _pairs(rows: list[tuple[str, str]]) -> list[tuple]:
    """Rows two by two: the metrics table has two columns of name and value."""
    half = (len(rows) + 1) // 2
    left, right = rows[:half], rows[half:]
    return [(*a, *(right[i] if i < len(right) else ("", ""))) for i, a in enumerate(left)]


def _number(value) -> str:
    return f"{value:,.2f}" if isinstance(value, int | float) else "-"
