"""Backtest runs: what was asked, on which bars (and where they came from), what came out."""

from __future__ import annotations

from django.db import models

from fetcher.models import (
    TIMEFRAME_CHOICES,
    WHAT_TO_SHOW_CHOICES,
    FetchRun,
    GatewayKind,
    Instrument,
)

from .domain.bars import DataSource


class RunKind(models.TextChoices):
    SINGLE = "single"  # one symbol, one parameter set
    PORTFOLIO = "portfolio"  # the equal-weight line of several symbols
    SWEEP = "sweep"  # one point of a parameter grid


class BacktestRun(models.Model):
    """One backtest: parameters, data range and source of its bars, metrics (backtesting.py's
    names), closed trades and equity curve. Runs of one command share a `group`."""

    group = models.CharField(max_length=32, db_index=True, help_text="runs of one command")
    kind = models.CharField(max_length=16, choices=RunKind.choices, default=RunKind.SINGLE)
    strategy = models.CharField(max_length=100)
    strategy_source = models.CharField(
        max_length=500,
        blank=True,
        default="",
        help_text="a user's own strategy: its file (path:NAME) or module:NAME; empty: built in",
    )
    params = models.JSONField(default=dict)
    symbol = models.CharField(max_length=200, help_text="the symbol, or the portfolio's symbols")
    instrument = models.ForeignKey(Instrument, null=True, blank=True, on_delete=models.SET_NULL)
    timeframe = models.SmallIntegerField(choices=TIMEFRAME_CHOICES)
    what_to_show = models.SmallIntegerField(choices=WHAT_TO_SHOW_CHOICES)
    rth = models.BooleanField(default=True)
    start = models.DateField(help_text="first date asked for")
    end = models.DateField(help_text="last date asked for, inclusive")
    first_bar = models.DateTimeField(null=True, blank=True)
    last_bar = models.DateTimeField(null=True, blank=True)
    bars = models.IntegerField(default=0)
    # where the bars were read: fetched first when missing (ibkr), or as stored
    data_source = models.CharField(max_length=16, choices=[(s.value, s.label) for s in DataSource])
    source = models.CharField(
        max_length=16,
        choices=GatewayKind.choices,
        blank=True,
        default="",
        help_text="the gateway kind that served the bars",
    )
    account = models.CharField(max_length=32, blank=True, default="")
    fetch_run = models.ForeignKey(
        FetchRun,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        help_text="the fetch that filled the range first (--data-source ibkr)",
    )
    cash = models.FloatField()
    commission = models.CharField(max_length=80)
    trade_on_close = models.BooleanField(default=False)
    long_short = models.BooleanField(default=False)
    metrics = models.JSONField(default=dict, help_text="backtesting.py's statistic names")
    trades = models.JSONField(default=list, blank=True)
    equity = models.JSONField(
        default=list, blank=True, help_text="[[epoch seconds, equity], ...] (at most 2,000 points)"
    )
    elapsed_ms = models.FloatField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "pk"]
        indexes = [models.Index(fields=["group", "kind"])]

    def __str__(self) -> str:
        return f"Backtest {self.pk} {self.strategy} {self.symbol} {self.params}"
