"""The one place where a run's and its items' counters move (requests, bars, chunks, errors)."""

from __future__ import annotations

from django.db.models import F
from django.utils import timezone

from fetcher.models import FetchRun, FetchRunItem


def fetch_run_progress_add(
    *,
    run_id: int,
    item_id: int | None = None,
    chunks_planned: int = 0,
    chunks_done: int = 0,
    bars: int = 0,
    requests: int = 0,
    errors: int = 0,
) -> None:
    """Add to a run's counters (and to its item's, for what items count); progress also tells
    that the run's executor is alive, so the heartbeat moves too."""
    item_counts = {
        "chunks_planned": chunks_planned,
        "chunks_done": chunks_done,
        "bars_stored": bars,
    }
    item_changes = {name: F(name) + n for name, n in item_counts.items() if n}
    if item_id is not None and item_changes:
        FetchRunItem.objects.filter(pk=item_id).update(**item_changes)
    run_counts = {**item_counts, "requests_made": requests, "errors_count": errors}
    FetchRun.objects.filter(pk=run_id).update(
        **{name: F(name) + n for name, n in run_counts.items() if n}, heartbeat_at=timezone.now()
    )
