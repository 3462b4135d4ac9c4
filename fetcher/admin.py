"""Django admin: instruments, fetch runs with their progress, and fetches started from there."""

from __future__ import annotations

from django.contrib import admin, messages

from .domain.timeframes import TIMEFRAMES
from .models import FetchChunk, FetchRun, FetchRunItem, Instrument, RequestedBy
from .services.fetch_runs import fetch_run_create, fetch_run_enqueue
from .services.instruments import instrument_spec


@admin.register(Instrument)
class InstrumentAdmin(admin.ModelAdmin):
    list_display = (
        "symbol",
        "sec_type",
        "exchange",
        "primary_exchange",
        "currency",
        "con_id",
        "long_name",
        "active",
    )
    list_filter = ("sec_type", "active", "currency")
    search_fields = ("symbol", "local_symbol", "long_name", "con_id")
    readonly_fields = ("con_id", "head_timestamps", "created_at", "updated_at")
    actions = ["fetch_daily_update"]

    @admin.action(description="Fetch DAILY bars (update from the last stored bar)")
    def fetch_daily_update(self, request, queryset):
        specs = [instrument_spec(i) for i in queryset]
        run = fetch_run_create(
            specs=specs, timeframe=TIMEFRAMES["DAILY"], requested_by=RequestedBy.ADMIN
        )
        fetch_run_enqueue(run_id=run.pk)
        self.message_user(
            request, f"Fetch run {run.pk} queued for {len(specs)} instruments.", messages.SUCCESS
        )


class FetchRunItemInline(admin.TabularInline):
    model = FetchRunItem
    extra = 0
    can_delete = False
    fields = (
        "spec",
        "status",
        "instrument",
        "chunks_done",
        "chunks_planned",
        "bars_stored",
        "note",
        "error",
    )
    readonly_fields = fields


@admin.register(FetchRun)
class FetchRunAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "created_at",
        "requested_by",
        "timeframe",
        "status",
        "progress_pct",
        "bars_stored",
        "errors_count",
    )
    list_filter = ("status", "requested_by", "timeframe")
    readonly_fields = [f.name for f in FetchRun._meta.fields]
    inlines = [FetchRunItemInline]

    @admin.display(description="progress")
    def progress_pct(self, run: FetchRun) -> str:
        return f"{run.chunks_done}/{run.chunks_planned}"

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(FetchChunk)
class FetchChunkAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "run",
        "instrument",
        "window_start",
        "window_end",
        "duration",
        "status",
        "attempts",
        "bars_received",
        "last_error_code",
    )
    list_filter = ("status",)
    readonly_fields = [f.name for f in FetchChunk._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False
