"""The admin dashboard page: one selector call, chart geometry, a template. No logic here."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from .access import visible_shop_ids
from .charts import outcome_bar, throughput_chart
from .selectors import THROUGHPUT_HOURS, WINDOW_HOURS, dashboard_stats


def dashboard_view(request: HttpRequest) -> TemplateResponse:
    """GET /admin/dashboard/ (wrapped in admin_view: staff login required)."""
    shop_ids = visible_shop_ids(request.user)
    stats = dashboard_stats(shop_ids=shop_ids)
    context = {
        **admin.site.each_context(request),
        "title": "Sync dashboard",
        "stats": stats,
        "throughput": throughput_chart(stats.throughput),
        "outcomes": outcome_bar(stats.outcomes),
        "throughput_hours": THROUGHPUT_HOURS,
        "window_hours": WINDOW_HOURS,
        "scope": "all shops" if shop_ids is None else f"{len(shop_ids)} shop(s)",
    }
    return TemplateResponse(request, "admin/shopsync/dashboard.html", context)
