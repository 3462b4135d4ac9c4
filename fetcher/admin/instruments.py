"""Instruments in the admin: their stored series, fetches started from the list, their chart."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.timezone import localtime

from fetcher.domain.ranges import day_start
from fetcher.domain.sessions import session_table
from fetcher.domain.time import zone_info, zone_name
from fetcher.domain.timeframes import BY_CODE, TIMEFRAMES, WhatToShow
from fetcher.models import Instrument, RequestedBy, Series
from fetcher.selectors import bars_read, fetch_runs_of, instrument_series, instruments_listed
from fetcher.services.instruments import instrument_spec
from fetcher.services.submit import fetch_submit, fetch_updates_submit

from .bars import BARS_PERMISSION
from .charts import CHART_ID, PLOTLY_JS, candlestick_html, closed_hours
from .filters import held
from .forms import FetchHistoryForm, InstrumentAddForm
from .permissions import FetchActionsMixin

CHART_BARS = 2000  # bars a chart shows by default: the last ones of the range asked for
CHART_BARS_MAX = 20_000
FAR_FUTURE = 253_402_214_400  # 9999-12-31 UTC: "no end"


def _day_after_start(end: dt.date | None, tf, zone) -> int:
    """Where the range asked for ends: the start of the day after `end` (none, or the last
    day a date can name: no end)."""
    if end is None or end == dt.date.max:
        return FAR_FUTURE
    return day_start(end + dt.timedelta(days=1), tf, zone)


def run_link(run_id: int) -> str:
    return format_html(
        '<a href="{}">run {}</a>', reverse("admin:fetcher_fetchrun_change", args=[run_id]), run_id
    )


def series_key(series: Series) -> str:
    return f"{series.timeframe}-{series.what_to_show}-{int(series.rth)}"


def check_result(series: Series) -> tuple[str, str]:
    """('✅ nothing wrong' or '❌ 3 findings', 'at 2026-12-06 02:00 UTC') of a series' last check."""
    n = series.check_findings or 0
    result = "✅ nothing wrong" if not n else f"❌ {n} finding{'s' if n > 1 else ''}"
    return result, f"at {series.checked_at:%Y-%m-%d %H:%M} UTC"


def series_label(series: Series) -> str:
    session = "RTH" if series.rth else "all hours"
    return f"{BY_CODE[series.timeframe].name} {WhatToShow(series.what_to_show).name} {session}"


@admin.register(Instrument)
class InstrumentAdmin(FetchActionsMixin, admin.ModelAdmin):
    list_display = (
        "symbol_label",
        "source",
        "bars",
        "bar_range",
        "last_fetch",
        "last_check",
        "active",
    )
    list_filter = (
        "sec_type",
        "exchange",
        "currency",
        *held("series__source", "series__timeframe"),
        "active",
    )
    search_fields = ("symbol", "local_symbol", "long_name", "=con_id")
    actions = ["fetch_history", "update_to_latest"]
    ordering = ("symbol", "sec_type")

    def get_queryset(self, request):
        return instruments_listed(queryset=super().get_queryset(request))

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = InstrumentAddForm
        return super().get_form(request, obj, change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        # A qualified contract is what the gateway says it is: only `active` is ours to edit.
        if obj.con_id is not None:
            return [f.name for f in Instrument._meta.fields if f.name not in ("active", "id")]
        return ("con_id", "head_timestamps", "created_at", "updated_at")

    def get_fields(self, request, obj=None):
        if obj is None:
            return InstrumentAddForm.Meta.fields
        return super().get_fields(request, obj)

    # --- the list's columns ------------------------------------------------------------

    @admin.display(description="instrument", ordering="symbol")
    def symbol_label(self, instrument: Instrument) -> str:
        return format_html(
            "{}<br><small>{} · {} · {}</small>",
            instrument,
            instrument.sec_type,
            instrument.exchange,
            instrument.currency,
        )

    @admin.display(description="source")
    def source(self, instrument: Instrument) -> str:
        return ", ".join(sorted({s.get_source_display() for s in instrument.series.all()})) or "-"

    @admin.display(description="bars per timeframe")
    def bars(self, instrument: Instrument) -> str:
        series = [s for s in instrument.series.all() if s.bar_count]
        if not series:
            return "-"
        return format_html_join(
            mark_safe("<br>"), "{}: {}", ((series_label(s), f"{s.bar_count:,}") for s in series)
        )

    @admin.display(description="first and last bar", ordering="first_bar")
    def bar_range(self, instrument: Instrument) -> str:
        if instrument.first_bar is None:
            return "-"
        return format_html(
            "{}<br>{}",
            date_format(localtime(instrument.first_bar), "DATETIME_FORMAT"),
            date_format(localtime(instrument.last_bar), "DATETIME_FORMAT"),
        )

    @admin.display(description="last fetch")
    def last_fetch(self, instrument: Instrument) -> str:
        if instrument.last_fetch_run is None:
            return "-"
        return format_html(
            "{} ({})", instrument.last_fetch_status, run_link(instrument.last_fetch_run)
        )

    @admin.display(description="last check")
    def last_check(self, instrument: Instrument) -> str:
        """Each series' last `bars check`: all well, or how many findings, and when."""
        checked = [s for s in instrument.series.all() if s.checked_at is not None]
        if not checked:
            return "-"
        return format_html_join(
            mark_safe("<br>"),
            '<span class="series-check">{}: {} {}</span>',
            ((series_label(s), *check_result(s)) for s in checked),
        )

    # --- actions -----------------------------------------------------------------------

    @admin.action(description="Fetch history...", permissions=["fetch"])
    def fetch_history(self, request, queryset):
        instruments = list(queryset)
        specs = [instrument_spec(i) for i in instruments]
        if "apply" in request.POST:
            form = FetchHistoryForm(request.POST, specs=specs)
            if form.is_valid():
                handle = fetch_submit(request=form.request, requested_by=RequestedBy.ADMIN)
                data = form.cleaned_data
                self.message_user(
                    request,
                    format_html(
                        "Fetch {} queued: {} {} of {}.",
                        run_link(handle.run_id),
                        data["timeframe"],
                        data["what_to_show"],
                        ", ".join(s.label for s in specs),
                    ),
                    messages.SUCCESS,
                )
                return None
        else:
            form = FetchHistoryForm(specs=specs)
        context = {
            **self.admin_site.each_context(request),
            "title": "Fetch history",
            "opts": self.model._meta,
            "form": form,
            "instruments": instruments,
            "action": "fetch_history",
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/fetcher/instrument/fetch_history.html", context)

    @admin.action(
        description="Update to latest (from the last stored bar to now)", permissions=["fetch"]
    )
    def update_to_latest(self, request, queryset):
        handles, nothing_stored = fetch_updates_submit(
            instruments=list(queryset), requested_by=RequestedBy.ADMIN
        )
        for run in fetch_runs_of(run_ids=[h.run_id for h in handles]):
            self.message_user(
                request,
                format_html(
                    "Update {} queued: {} {} of {}.",
                    run_link(run.pk),
                    BY_CODE[run.timeframe].name,
                    WhatToShow(run.what_to_show).name,
                    ", ".join(run.instruments),
                ),
                messages.SUCCESS,
            )
        if nothing_stored:
            names = ", ".join(str(i) for i in nothing_stored)
            self.message_user(
                request,
                f"Nothing stored yet for {names}: there is no last bar to update from; "
                "use Fetch history... first.",
                messages.WARNING,
            )

    # --- the instrument page: its chart --------------------------------------------------

    def get_urls(self):
        plotly_js = self.admin_site.admin_view(self.plotly_js)
        return [
            path("plotly.min.js", plotly_js, name="fetcher_plotly_js"),
            *super().get_urls(),
        ]

    def plotly_js(self, request):
        """plotly.js from the installed plotly package: the chart works offline. Only for
        those who may see the chart (BARS_PERMISSION)."""
        if not request.user.has_perm(BARS_PERMISSION):
            raise PermissionDenied
        response = FileResponse(PLOTLY_JS.open("rb"), content_type="text/javascript")
        response["Cache-Control"] = "private, max-age=86400"
        return response

    def change_view(self, request, object_id, form_url="", extra_context=None):
        instrument = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        # the chart is stored bars: shown to those who may read them (BARS_PERMISSION)
        extra["chart_allowed"] = request.user.has_perm(BARS_PERMISSION)
        if instrument is not None and extra["chart_allowed"]:
            extra.update(self.chart_context(request, instrument))
        return super().change_view(request, object_id, form_url, extra)

    def chart_context(self, request, instrument: Instrument) -> dict:
        """The chart of one stored series: the one asked for in the query string (series,
        start, end, bars), the DAILY one, or the first; the last bars of the range only."""
        stored = instrument_series(instrument_id=instrument.pk)
        all_series = [s for s in stored if s.bar_count]
        context = {
            "chart_series": all_series,
            "chart_id": CHART_ID,
            "series_checks": [
                (series_label(s), *check_result(s), s.check_report)
                for s in stored
                if s.checked_at is not None
            ],
        }
        if not all_series:
            return context
        by_key = {series_key(s): s for s in all_series}
        default = next((s for s in all_series if s.timeframe == TIMEFRAMES["DAILY"].code), None)
        series = by_key.get(request.GET.get("series", "")) or default or all_series[0]
        tf = BY_CODE[series.timeframe]
        errors = []
        try:
            start = self._date(request, "start")
            end = self._date(request, "end")
            limit = int(request.GET.get("bars") or CHART_BARS)
            if not 1 <= limit <= CHART_BARS_MAX:
                raise ValueError(f"bars must be between 1 and {CHART_BARS_MAX:,}")
        except ValueError as exc:
            errors.append(str(exc))
            start = end = None
            limit = CHART_BARS
        if start and end and end < start:
            errors.append(f"end date {end} is before start date {start}")
            start = end = None
        zone = zone_info(instrument.time_zone)
        batch = bars_read(
            instrument_id=instrument.pk,
            timeframe=series.timeframe,
            what_to_show=series.what_to_show,
            rth=series.rth,
            start=day_start(start, tf, zone) if start else 0,
            end=_day_after_start(end, tf, zone),
            last=limit,
        )
        title = f"{instrument} {series_label(series)}: {len(batch):,} bars"
        sessions = session_table(
            sec_type=instrument.sec_type,
            exchange=instrument.exchange,
            primary_exchange=instrument.primary_exchange,
            time_zone=instrument.time_zone,
        )
        chart = ""
        if len(batch):
            chart = candlestick_html(
                batch,
                timeframe=tf,
                title=title,
                zone=zone_name(instrument.time_zone),
                breaks=closed_hours(sessions, batch.ts, timeframe=tf, use_rth=series.rth),
            )
        context.update(
            chart_key=series_key(series),
            chart_label=series_label(series),
            chart_bar_count=series.bar_count,
            chart_shown=len(batch),
            chart_limit=limit,
            chart_start=start,
            chart_end=end,
            chart_errors=errors,
            chart_html=chart,
            chart_series_options=[(series_key(s), series_label(s)) for s in all_series],
        )
        return context

    @staticmethod
    def _date(request, name: str) -> dt.date | None:
        text = request.GET.get(name, "").strip()
        if not text:
            return None
        try:
            return dt.date.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{name} must be a date YYYY-MM-DD, not {text!r}") from None
