"""Django admin: backtest runs, read-only (they are made by `manage.py backtest`), with their
trades and equity curve as CSV downloads."""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from .models import BacktestRun
from .services.exports import equity_csv, trades_csv

# The downloads of a run's page: (URL name suffix, file name, what).
DOWNLOADS = (("trades", "trades.csv", "Trades"), ("equity", "equity.csv", "Equity curve"))


@admin.register(BacktestRun)
class BacktestRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "kind",
        "strategy",
        "params",
        "symbol",
        "timeframe",
        "start",
        "end",
        "source",
        "return_pct",
        "sharpe",
        "trades_count",
    )
    list_filter = ("kind", "strategy", "timeframe", "data_source", "source")
    search_fields = ("symbol", "group")
    readonly_fields = ["downloads", *(f.name for f in BacktestRun._meta.fields)]

    @admin.display(description="Return [%]")
    def return_pct(self, run: BacktestRun) -> str:
        return _number(run.metrics.get("Return [%]"))

    @admin.display(description="Sharpe")
    def sharpe(self, run: BacktestRun) -> str:
        return _number(run.metrics.get("Sharpe Ratio"))

    @admin.display(description="# Trades")
    def trades_count(self, run: BacktestRun) -> str:
        return str(run.metrics.get("# Trades", "-"))

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

    def get_urls(self):
        views = [
            path(
                f"<int:run_id>/{file}",
                self.admin_site.admin_view(self._download(name)),
                name=f"backtests_backtestrun_{name}_csv",
            )
            for name, file, _ in DOWNLOADS
        ]
        return views + super().get_urls()

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


def _number(value) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"
