"""The admin's forms: what a fetch asks for (a FetchRequest, checked as the CLI's is), and a new
instrument."""

from __future__ import annotations

from django import forms

from fetcher.domain.instruments import SEC_TYPES, InstrumentSpec
from fetcher.domain.requests import FetchRequest, RequestInvalid
from fetcher.domain.timeframes import TIMEFRAMES, WhatToShow
from fetcher.models import Instrument

# The whatToShow values a fetch stores (the CLI's --what-to-show).
FETCHABLE = [w for w in WhatToShow if w <= WhatToShow.ADJUSTED_LAST]


class FetchHistoryForm(forms.Form):
    """'Fetch history...': the options of `manage.py fetch` for the selected instruments."""

    timeframe = forms.ChoiceField(choices=[(name, name) for name in TIMEFRAMES], initial="DAILY")
    start = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="first date, in the exchange's time zone. Empty: after the last stored bar, "
        "or as far back as the gateway has data (daily and larger) / the last 30 days (intraday)",
    )
    end = forms.DateField(
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text="last date, inclusive. Empty: today",
    )
    what_to_show = forms.ChoiceField(
        choices=[(w.name, w.name) for w in FETCHABLE],
        initial=WhatToShow.TRADES.name,
        help_text="forex pairs have no trades: MIDPOINT, BID or ASK",
    )
    use_rth = forms.BooleanField(
        required=False,
        initial=True,
        label="Regular trading hours only",
        help_text="unticked: extended hours too (stored as a separate series)",
    )

    def __init__(self, *args, specs: list[InstrumentSpec], **kwargs):
        super().__init__(*args, **kwargs)
        self.specs = specs
        if all(s.sec_type == "CASH" for s in specs):
            self.fields["what_to_show"].initial = WhatToShow.MIDPOINT.name

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        try:
            self.request = FetchRequest(
                instruments=tuple(self.specs),
                timeframe=TIMEFRAMES[data["timeframe"]],
                what_to_show=WhatToShow[data["what_to_show"]],
                use_rth=data["use_rth"],
                start=data.get("start"),
                end=data.get("end"),
            )
        except RequestInvalid as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.problem)
        return data


class InstrumentAddForm(forms.ModelForm):
    """A contract to fetch, before the gateway qualifies it: its first fetch fills in the
    conId, names and time zone (and finds the row again by these four fields)."""

    sec_type = forms.ChoiceField(choices=[(s, s) for s in SEC_TYPES], initial="STK")

    class Meta:
        model = Instrument
        fields = ("symbol", "sec_type", "exchange", "primary_exchange", "currency")
        help_texts = {
            "symbol": "AAPL; a forex pair is its base currency: EUR (currency USD, "
            "exchange IDEALPRO); an index: SPX (exchange CBOE)",
            "exchange": "SMART for stocks; IDEALPRO for forex; the listing exchange otherwise",
        }

    def clean(self):
        data = super().clean()
        for name in ("symbol", "exchange", "primary_exchange", "currency"):
            if data.get(name):
                data[name] = data[name].strip().upper()
        return data
