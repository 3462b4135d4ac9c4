"""What the admin's fetch actions require beyond Django's view permissions: starting, updating,
cancelling or retrying a fetch is `fetcher.fetch_bars`, never implied by viewing runs."""

from __future__ import annotations

FETCH_PERMISSION = "fetcher.fetch_bars"


class FetchActionsMixin:
    """For a ModelAdmin whose actions are declared `@admin.action(permissions=["fetch"])`:
    Django offers and runs them only for users with FETCH_PERMISSION."""

    def has_fetch_permission(self, request) -> bool:
        return request.user.has_perm(FETCH_PERMISSION)
