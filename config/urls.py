"""URL routes: the webhook ingress, the admin, and a health check."""
from django.contrib import admin
from django.urls import path

from sync.views import ShopifyWebhookView, healthz

urlpatterns = [
    path("webhooks/shopify", ShopifyWebhookView.as_view(), name="shopify-webhook"),
    path("healthz", healthz, name="healthz"),
    path("admin/", admin.site.urls),
]
