"""List filters that offer only what is there: the values some row holds, not every choice."""

from __future__ import annotations

from django.contrib import admin
from django.db import models
from django.utils.translation import gettext as _


class ExistingChoicesFilter(admin.ChoicesFieldListFilter):
    """A choices field's filter listing the choices some row holds (a store of DAILY bars
    offers DAILY, not the 23 timeframes)."""

    def __init__(self, field, request, params, model, model_admin, field_path):
        super().__init__(field, request, params, model, model_admin, field_path)
        held = set(model._default_manager.order_by().values_list(field_path, flat=True).distinct())
        self.held = [(value, title) for value, title in field.flatchoices if value in held]

    def has_output(self) -> bool:
        return bool(self.held)

    def get_facet_counts(self, pk_attname, filtered_qs):
        return {
            f"{i}__c": models.Count(pk_attname, filter=models.Q((self.lookup_kwarg, value)))
            for i, (value, _title) in enumerate(self.held)
        }

    def choices(self, changelist):
        counts = self.get_facet_queryset(changelist) if changelist.add_facets else None
        yield {
            "selected": self.lookup_val is None,
            "query_string": changelist.get_query_string(
                remove=[self.lookup_kwarg, self.lookup_kwarg_isnull]
            ),
            "display": _("All"),
        }
        for i, (value, title) in enumerate(self.held):
            yield {
                "selected": self.lookup_val is not None and str(value) in self.lookup_val,
                "query_string": changelist.get_query_string(
                    {self.lookup_kwarg: value}, [self.lookup_kwarg_isnull]
                ),
                "display": f"{title} ({counts[f'{i}__c']})" if counts else title,
            }


def held(*fields: str) -> tuple:
    """list_filter entries for choices fields, each listing only the values rows hold (a
    plain field's own filter, AllValuesFieldListFilter, already does)."""
    return tuple((name, ExistingChoicesFilter) for name in fields)
