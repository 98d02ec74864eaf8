"""URL routes: the webhook ingress, the admin (and its sync dashboard), and a health check."""

from django.conf import settings
from django.contrib import admin
from django.urls import path

from sync.dashboard import dashboard_view
from sync.views import ShopifyWebhookView, healthz

# There is no public site behind the admin: no "View site" link to a 404.
admin.site.site_url = None

urlpatterns = [
    path("webhooks/shopify", ShopifyWebhookView.as_view(), name="shopify-webhook"),
    path("healthz", healthz, name="healthz"),
    path("admin/dashboard/", admin.site.admin_view(dashboard_view), name="sync-dashboard"),
    path("admin/", admin.site.urls),
]

if settings.BENCH_ROUTES:
    # Only for bench/ingest.py: a trivial POST view served by the same process, as the baseline.
    from bench.views import trivial_post

    urlpatterns.append(path("bench/trivial", trivial_post))
