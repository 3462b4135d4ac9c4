"""The Bars list: read-only, filtered by series, paged by key (no OFFSET, no COUNT over bars)."""

from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.utils.http import urlencode

from fetcher.domain.time import epoch, from_epoch
from fetcher.domain.timeframes import BY_CODE
from fetcher.models import TIMEFRAME_CHOICES, WHAT_TO_SHOW_CHOICES
from fetcher.selectors import bars_page, instruments_with_bars, series_values_stored

BARS_PERMISSION = "fetcher.view_bar"
PAGE_SIZE = 100
FILTERS = ("instrument", "timeframe", "what_to_show", "rth")

# The largest value each filter's column holds: a larger number names no row, and is said as
# such instead of reaching the database (SQLite cannot even take it).
LARGEST = {"instrument": 2**31 - 1, "timeframe": 2**15 - 1, "what_to_show": 2**15 - 1}


def cursor_text(key: tuple | None) -> str:
    if key is None:
        return ""
    instrument_id, timeframe, what_to_show, rth, ts = key
    return f"{instrument_id}.{timeframe}.{what_to_show}.{int(rth)}.{epoch(ts)}"


def cursor_parse(text: str) -> tuple | None:
    if not text:
        return None
    try:
        instrument_id, timeframe, what_to_show, rth, ts = (int(p) for p in text.split("."))
        numbers = {
            "instrument": instrument_id,
            "timeframe": timeframe,
            "what_to_show": what_to_show,
        }
        if not all(_fits(value, name) for name, value in numbers.items()):
            raise ValueError
        key = (instrument_id, timeframe, what_to_show, bool(rth), from_epoch(ts))
    except (ValueError, OverflowError, OSError):  # a number, or an instant, out of range
        raise ValueError(f"malformed page cursor {text!r}") from None
    return key


def _fits(value: int, name: str) -> bool:
    return 0 <= value <= LARGEST[name]


def _int(request, name: str) -> int | None:
    text = request.GET.get(name, "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {text!r}") from None
    if not _fits(value, name):
        raise ValueError(f"{name} must be a number from 0 to {LARGEST[name]:,}, not {text!r}")
    return value


def bars_changelist_view(request):
    """Stored bars, newest first in primary-key order, one page of PAGE_SIZE at a time."""
    if not request.user.has_perm(BARS_PERMISSION):
        raise PermissionDenied
    errors = []
    try:
        filters = {
            "instrument_id": _int(request, "instrument"),
            "timeframe": _int(request, "timeframe"),
            "what_to_show": _int(request, "what_to_show"),
            "rth": {"1": True, "0": False}.get(request.GET.get("rth", "")),
        }
        older = cursor_parse(request.GET.get("older", ""))
        newer = cursor_parse(request.GET.get("newer", ""))
    except ValueError as exc:
        errors.append(str(exc))
        filters, older, newer = {}, None, None
    page = bars_page(**filters, older_than=older, newer_than=newer, size=PAGE_SIZE)
    kept = {name: request.GET[name] for name in FILTERS if request.GET.get(name) and not errors}

    def link(**cursor) -> str:
        return "?" + urlencode({**kept, **cursor})

    context = {
        **admin.site.each_context(request),
        "title": "Bars",
        "page": page,
        "rows": [
            (bar, BY_CODE[bar.timeframe].name, bar.get_what_to_show_display()) for bar in page.bars
        ],
        "errors": errors,
        "selected": kept,
        "instruments": instruments_with_bars(),
        # the filters offer what is stored
        "timeframes": _stored(TIMEFRAME_CHOICES, "timeframe"),
        "what_to_show_choices": _stored(WHAT_TO_SHOW_CHOICES, "what_to_show"),
        "first_url": link(),
        "older_url": link(older=cursor_text(page.older)) if page.older else "",
        "newer_url": link(newer=cursor_text(page.newer)) if page.newer else "",
        "page_size": PAGE_SIZE,
        "generated": dt.datetime.now(dt.UTC),
    }
    return TemplateResponse(request, "admin/fetcher/bar/change_list.html", context)


def _stored(choices, field: str) -> list[tuple]:
    held = series_values_stored(field)
    return [(value, name) for value, name in choices if value in held]
