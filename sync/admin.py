from django.contrib import admin

from .models import DeadLetter, WebhookEvent


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    """Read-only audit of deliveries: what arrived, verbatim, and what became of it."""

    list_display = (
        "id",
        "topic",
        "shop_domain",
        "received_at",
        "triggered_at",
        "status",
        "outcome",
        "attempts",
    )
    list_filter = ("status", "outcome", "topic")
    search_fields = ("webhook_id", "event_id", "shop_domain")
    date_hierarchy = "received_at"

    def get_queryset(self, request):
        return super().get_queryset(request).defer("body", "headers")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = (
        "id",
        "event",
        "kind",
        "error_class",
        "failures",
        "last_failed_at",
        "next_replay_at",
        "resolved_at",
    )
    list_filter = ("kind", "resolution")
    list_select_related = ("event",)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
