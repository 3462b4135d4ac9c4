"""Django admin: backtest runs, read-only (they are made by `manage.py backtest`)."""

from __future__ import annotations

from django.contrib import admin

from .models import BacktestRun


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
    readonly_fields = [f.name for f in BacktestRun._meta.fields]

    @admin.display(description="Return [%]")
    def return_pct(self, run: BacktestRun) -> str:
        return _number(run.metrics.get("Return [%]"))

    @admin.display(description="Sharpe")
    def sharpe(self, run: BacktestRun) -> str:
        return _number(run.metrics.get("Sharpe Ratio"))

    @admin.display(description="# Trades")
    def trades_count(self, run: BacktestRun) -> str:
        return str(run.metrics.get("# Trades", "-"))

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


def _number(value) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "-"
