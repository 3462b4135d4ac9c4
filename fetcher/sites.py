"""The admin site: Django's, plus the Bars list, which ModelAdmin cannot register (composite key)."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.admin.apps import AdminConfig
from django.urls import path, reverse


class IbdataAdminSite(admin.AdminSite):
    site_header = "ibdata"
    site_title = "ibdata admin"
    index_title = "Historical bars, fetches and backtests"
    # the lists' columns and filters get the page's width (the breadcrumbs and the index lead
    # everywhere the side bar did)
    enable_nav_sidebar = False
    site_url = None  # there is no site beside the admin: no "View site" link to a 404

    # The Bars list is imported when the URLs and the index are built, not with this module:
    # INSTALLED_APPS loads the site before the models it lists are ready.

    def get_urls(self):
        from fetcher.admin.bars import bars_changelist_view

        bars = self.admin_view(bars_changelist_view)
        return [path("fetcher/bar/", bars, name="fetcher_bar_changelist"), *super().get_urls()]

    def get_app_list(self, request, app_label=None):
        from fetcher.admin.bars import BARS_PERMISSION

        apps = super().get_app_list(request, app_label)
        if not request.user.has_perm(BARS_PERMISSION):
            return apps
        for app in apps:
            if app["app_label"] == "fetcher":
                app["models"].append(
                    {
                        "name": "Bars",
                        "object_name": "Bar",
                        "perms": {"view": True},
                        "admin_url": reverse("admin:fetcher_bar_changelist", current_app=self.name),
                        "add_url": None,
                        "view_only": True,
                    }
                )
                app["models"].sort(key=lambda m: m["name"])
        return apps


class IbdataAdminConfig(AdminConfig):
    """django.contrib.admin with this site (INSTALLED_APPS names this in its place)."""

    default_site = "fetcher.sites.IbdataAdminSite"
