"""Fetch runs and their requests in the admin: progress, errors, cancel and retry. Read-only:
a run is a record of what happened, and only the fetch changes it."""

from __future__ import annotations

from django.contrib import admin, messages
from django.urls import reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.timezone import localtime

from fetcher.domain.timeframes import BY_CODE
from fetcher.exceptions import InvalidInput
from fetcher.models import FetchChunk, FetchRun, GatewayState, RequestedBy, RunStatus
from fetcher.selectors import (
    FINISHED_RUN,
    UNFINISHED_CHUNK,
    fetch_run_chunk_counts,
    fetch_run_chunk_errors,
    fetch_run_requests_per_gateway,
    fetch_run_summary,
    gateway_health,
)
from fetcher.services.fetch_runs import fetch_run_cancel
from fetcher.services.submit import fetch_retry_submit

from .filters import held
from .instruments import run_link
from .permissions import FetchActionsMixin

REFRESH_S = 2  # how often a going run's page reloads
CHUNK_ERRORS_SHOWN = 50


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows only the fetch writes: viewed, never added, edited or deleted here."""

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


def duration_label(run: FetchRun) -> str:
    if run.started_at is None:
        return "-"
    seconds = int(((run.finished_at or timezone.now()) - run.started_at).total_seconds())
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02}:{seconds:02}" if hours else f"{minutes}:{seconds:02}"


@admin.register(FetchRun)
class FetchRunAdmin(FetchActionsMixin, ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "instruments_label",
        "timeframe_label",
        "status",
        "progress",
        "bars",
        "errors",
        "duration",
        "source",
    )
    list_display_links = ("id", "created_at")
    list_filter = held("status", "requested_by", "timeframe", "source")
    search_fields = ("instruments",)
    actions = ["retry_failed_chunks", "cancel_runs"]
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "status",
                    "error",
                    "instruments",
                    ("timeframe", "what_to_show", "use_rth"),
                    ("start", "end", "since_head"),
                    "requested_by",
                    ("chunks_done", "chunks_planned", "requests_made"),
                    ("bars_stored", "errors_count", "recoveries"),
                    ("created_at", "started_at", "finished_at", "heartbeat_at"),
                )
            },
        ),
        (
            "Gateway",
            {"fields": ("source", "account", "gateway_host", "gateway_port", "server_version")},
        ),
        ("Celery", {"fields": ("task_id",), "classes": ("collapse",)}),
    )

    @admin.display(description="instruments")
    def instruments_label(self, run: FetchRun) -> str:
        names = run.instruments or []
        return ", ".join(names[:5]) + (f" +{len(names) - 5}" if len(names) > 5 else "")

    @admin.display(description="timeframe", ordering="timeframe")
    def timeframe_label(self, run: FetchRun) -> str:
        return BY_CODE[run.timeframe].name

    @admin.display(description="progress")
    def progress(self, run: FetchRun) -> str:
        if not run.chunks_planned:
            return "-" if run.status in (RunStatus.PENDING, RunStatus.RUNNING) else "0 requests"
        return format_html(
            '<progress value="{}" max="{}" style="width: 4em"></progress> {}/{}',
            run.chunks_done,
            run.chunks_planned,
            run.chunks_done,
            run.chunks_planned,
        )

    @admin.display(description="bars", ordering="bars_stored")
    def bars(self, run: FetchRun) -> str:
        return f"{run.bars_stored:,}"

    @admin.display(description="errors", ordering="errors_count")
    def errors(self, run: FetchRun) -> str:
        return f"{run.errors_count:,}"

    @admin.display(description="duration")
    def duration(self, run: FetchRun) -> str:
        return duration_label(run)

    def change_view(self, request, object_id, form_url="", extra_context=None):
        run = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if run is not None:
            counts = fetch_run_chunk_counts(run_id=run.pk)
            going = run.status not in FINISHED_RUN
            extra.update(
                items=fetch_run_summary(run_id=run.pk).items,
                chunk_counts=sorted(counts.items()),
                per_gateway=[
                    (name, n)
                    for name, (n, _) in fetch_run_requests_per_gateway(run_id=run.pk).items()
                ],
                retryable=not going and any(counts.get(s) for s in UNFINISHED_CHUNK),
                chunk_errors=fetch_run_chunk_errors(run_id=run.pk, limit=CHUNK_ERRORS_SHOWN),
                chunks_url=reverse("admin:fetcher_fetchchunk_changelist")
                + f"?run__id__exact={run.pk}",
                going=going,
                can_fetch=self.has_fetch_permission(request),
                refresh_s=REFRESH_S,
                duration=duration_label(run),
                changelist_url=reverse("admin:fetcher_fetchrun_changelist"),
            )
        return super().change_view(request, object_id, form_url, extra)

    @admin.action(description="Retry failed chunks (as a new run)", permissions=["fetch"])
    def retry_failed_chunks(self, request, queryset):
        for run in queryset.order_by("pk"):
            try:
                retries = fetch_retry_submit(run_id=run.pk, requested_by=RequestedBy.ADMIN)
            except InvalidInput as exc:
                self.message_user(request, str(exc), messages.WARNING)
                continue
            links = format_html(
                ", ".join("{}" for _ in retries), *map(run_link, (r.run_id for r in retries))
            )
            self.message_user(
                request,
                format_html("Failed requests of run {} queued again: {}.", run.pk, links),
                messages.SUCCESS,
            )

    @admin.action(description="Cancel", permissions=["fetch"])
    def cancel_runs(self, request, queryset):
        for run in queryset.order_by("pk"):
            try:
                fetch_run_cancel(run_id=run.pk)
            except InvalidInput as exc:
                self.message_user(request, str(exc), messages.WARNING)
            else:
                self.message_user(request, f"Run {run.pk} cancelled.", messages.SUCCESS)


@admin.register(FetchChunk)
class FetchChunkAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "run",
        "instrument",
        "window",
        "duration",
        "status",
        "attempts",
        "bars_received",
        "gateway",
        "error",
    )
    list_filter = (*held("status"), "gateway")
    list_select_related = ("run", "instrument")
    show_full_result_count = False  # chunks pile up over the years: no second COUNT a page

    @admin.display(description="window", ordering="window_start")
    def window(self, chunk: FetchChunk) -> str:
        return format_html(
            "{}<br>{}",
            date_format(localtime(chunk.window_start), "DATETIME_FORMAT"),
            date_format(localtime(chunk.window_end), "DATETIME_FORMAT"),
        )

    @admin.display(description="last error", ordering="last_error_code")
    def error(self, chunk: FetchChunk) -> str:
        if not chunk.last_error:
            return "-"
        code = f"{chunk.last_error_code}: " if chunk.last_error_code is not None else ""
        return code + chunk.last_error


@admin.register(GatewayState)
class GatewayStateAdmin(ReadOnlyAdmin):
    """Each gateway's health, as its ibkr worker tells it every heartbeat."""

    list_display = (
        "name",
        "health",
        "address",
        "client_id",
        "kind",
        "since",
        "seen_at",
        "worker",
        "last_error",
    )

    @admin.display(description="health")
    def health(self, state: GatewayState) -> str:
        return gateway_health(state, timezone.now())

    @admin.display(description="address")
    def address(self, state: GatewayState) -> str:
        return f"{state.host}:{state.port}"

    @admin.display(description="kind")
    def kind(self, state: GatewayState) -> str:
        if state.server_version is None:
            return "-"
        return "simulator" if state.simulated else f"TWS / IB Gateway (v{state.server_version})"
