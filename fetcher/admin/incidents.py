"""Incidents the admins were told of (fetcher.services.alerts): open or over, read-only."""

from __future__ import annotations

from django.contrib import admin

from fetcher.models import Incident

from .filters import held
from .runs import ReadOnlyAdmin

MESSAGE_SHOWN_CHARS = 160


class StateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("over", "over")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(closed_at=None)
        if self.value() == "over":
            return queryset.exclude(closed_at=None)
        return queryset


@admin.register(Incident)
class IncidentAdmin(ReadOnlyAdmin):
    """Only the alerts service writes incidents; they close themselves when it is over."""

    list_display = (
        "kind",
        "key",
        "state",
        "opened_at",
        "occurrences",
        "mailed",
        "closed_at",
        "latest",
    )
    list_filter = (StateFilter, *held("kind"))
    search_fields = ("key", "message", "last_message")
    date_hierarchy = "opened_at"

    @admin.display(description="state")
    def state(self, incident: Incident) -> str:
        return "open" if incident.closed_at is None else "over"

    @admin.display(description="admins told", boolean=True)
    def mailed(self, incident: Incident) -> bool:
        return incident.notified_at is not None

    @admin.display(description="latest")
    def latest(self, incident: Incident) -> str:
        text = " ".join((incident.last_message or incident.message).split())
        return text[:MESSAGE_SHOWN_CHARS] + ("..." if len(text) > MESSAGE_SHOWN_CHARS else "")
