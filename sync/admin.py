"""The ops and merchant console on the Django admin: declarative classes; every action calls a
service and says what it did. Merchants (staff, not superusers) see only their shops' rows."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from .access import is_merchant, scope_to_shops, visible_shop_ids
from .actions import webhook_events_reprocess
from .dlq import dead_letter_discard, dead_letter_replay
from .models import DeadLetter, ShopMembership, SyncRun, WebhookEvent
from .templatetags.shopsync_admin import duration

TONES = {"applied": "ok", "done": "ok", "stale": "warn", "pending": "neutral", "dead": "bad", "failed": "bad"}


def pill(text: str, tone: str | None = None):
    tone = tone or TONES.get(text, "neutral")
    return format_html('<span class="ss-pill {}">{}</span>', tone, text) if text else "—"


class ShopScopedAdmin(admin.ModelAdmin):
    """Rows, filters, object pages and actions limited to the shops the user may see."""

    shop_lookup = "shop"
    change_list_template = "admin/shopsync/change_list.html"

    def get_queryset(self, request) -> QuerySet:
        return scope_to_shops(super().get_queryset(request), request.user, shop_lookup=self.shop_lookup)

    def has_module_permission(self, request) -> bool:
        return super().has_module_permission(request) or is_merchant(request.user)

    def has_view_permission(self, request, obj=None) -> bool:
        return super().has_view_permission(request, obj) or is_merchant(request.user)

    def has_operate_permission(self, request) -> bool:
        """Run the console's actions: ops (superusers) and merchants, on their own shops."""
        return visible_shop_ids(request.user) is None or is_merchant(request.user)

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def say(self, request, result, *, partial: bool | None = None) -> None:
        failed = partial if partial is not None else bool(getattr(result, "problems", None))
        self.message_user(request, str(result), messages.WARNING if failed else messages.SUCCESS)


@admin.register(WebhookEvent)
class WebhookEventAdmin(ShopScopedAdmin):
    """Read-only audit of deliveries: what arrived, verbatim, and what became of it."""

    list_display = (
        "id",
        "topic",
        "shop_domain",
        "received_at",
        "triggered_at",
        "status_pill",
        "outcome_pill",
        "attempts",
        "error_short",
    )
    list_filter = ("status", "outcome", "topic", ("shop", admin.RelatedOnlyFieldListFilter))
    # "=subject_id": the deliveries about one product, inventory item or order, by its Shopify id.
    search_fields = ("webhook_id", "event_id", "shop_domain", "=subject_id")
    date_hierarchy = "received_at"
    actions = ["reprocess"]
    fields = (
        ("topic", "shop_domain", "api_version"),
        ("webhook_id", "event_id", "subject_id"),
        ("triggered_at", "received_at", "processed_at", "stored_at"),
        ("status", "outcome", "attempts", "next_attempt_at", "duplicate_deliveries"),
        "note",
        "error",
        "headers_verbatim",
        "body_verbatim",
    )
    readonly_fields = tuple(name for row in fields for name in (row if isinstance(row, tuple) else (row,)))

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            return queryset.defer("body", "headers")  # the list never shows them
        return queryset

    @admin.display(description="status", ordering="status")
    def status_pill(self, event: WebhookEvent):
        return pill(event.status)

    @admin.display(description="outcome", ordering="outcome")
    def outcome_pill(self, event: WebhookEvent):
        return pill(event.outcome)

    @admin.display(description="error")
    def error_short(self, event: WebhookEvent) -> str:
        return (event.error[:80] + "…") if len(event.error) > 80 else event.error

    @admin.display(description="headers (as received)")
    def headers_verbatim(self, event: WebhookEvent):
        return format_html(
            "<pre class='ss-raw'>{}</pre>", json.dumps(event.headers, indent=2, ensure_ascii=False)
        )

    @admin.display(description="body (as received)")
    def body_verbatim(self, event: WebhookEvent):
        raw = bytes(event.body)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = f"(not UTF-8: {len(raw)} bytes) {raw!r}"
        return format_html("<pre class='ss-raw' style='white-space:pre-wrap'>{}</pre>", text)

    @admin.action(description="Reprocess selected events", permissions=["operate"])
    def reprocess(self, request, queryset: QuerySet) -> None:
        self.say(request, webhook_events_reprocess(event_ids=list(queryset.values_list("pk", flat=True))))


class OpenFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "resolved"

    def lookups(self, request, model_admin):
        return [("open", "open"), ("resolved", "resolved")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(resolved_at__isnull=True)
        if self.value() == "resolved":
            return queryset.filter(resolved_at__isnull=False)
        return queryset


@admin.register(DeadLetter)
class DeadLetterAdmin(ShopScopedAdmin):
    list_display = (
        "id",
        "event_link",
        "shop",
        "error_short",
        "failures",
        "replays",
        "last_failed",
        "next_replay",
        "state",
    )
    list_filter = (OpenFilter, "kind", "resolution", ("shop", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("event", "shop")
    search_fields = ("error", "error_class", "event__webhook_id")
    actions = ["replay", "discard"]
    readonly_fields = (
        "event_link",
        "shop",
        "kind",
        "error_class",
        "error",
        "failures",
        "first_failed_at",
        "last_failed_at",
        "next_replay_at",
        "replays",
        "last_replayed_at",
        "resolved_at",
        "resolution",
    )
    fields = readonly_fields

    def get_queryset(self, request) -> QuerySet:
        return super().get_queryset(request).defer("event__body", "event__headers")

    @admin.display(description="event")
    def event_link(self, letter: DeadLetter):
        event = letter.event
        url = reverse("admin:sync_webhookevent_change", args=[event.pk])
        return format_html('<a href="{}">#{} {}</a>', url, event.pk, event.topic)

    @admin.display(description="error")
    def error_short(self, letter: DeadLetter):
        message = (letter.error[:110] + "…") if len(letter.error) > 110 else letter.error
        return format_html(
            "<b>{}</b> · {}<br><span class='ss-muted'>{}</span>",
            letter.error_class,
            message,
            letter.get_kind_display(),
        )

    @admin.display(description="last failed", ordering="last_failed_at")
    def last_failed(self, letter: DeadLetter) -> str:
        return f"{duration((timezone.now() - letter.last_failed_at).total_seconds())} ago"

    @admin.display(description="next replay", ordering="next_replay_at")
    def next_replay(self, letter: DeadLetter) -> str:
        if letter.next_replay_at is None or letter.resolved_at is not None:
            return "—"
        wait = (letter.next_replay_at - timezone.now()).total_seconds()
        return f"in {duration(wait)}" if wait > 0 else "due"

    @admin.display(description="state", ordering="resolved_at")
    def state(self, letter: DeadLetter):
        if letter.resolved_at is None:
            return pill("open", "bad")
        return pill(letter.resolution or "resolved", "ok" if "applied" in letter.resolution else "neutral")

    @admin.action(description="Replay selected entries", permissions=["operate"])
    def replay(self, request, queryset: QuerySet) -> None:
        result = dead_letter_replay(ids=list(queryset.values_list("pk", flat=True)))
        self.say(request, result, partial=bool(result.skipped))

    @admin.action(description="Discard selected entries (give up on them)", permissions=["operate"])
    def discard(self, request, queryset: QuerySet) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        discarded = dead_letter_discard(ids=ids)
        self.say(request, f"discarded {discarded} of {len(ids)}", partial=discarded < len(ids))


@admin.register(SyncRun)
class SyncRunAdmin(ShopScopedAdmin):
    list_display = (
        "id",
        "kind",
        "shop",
        "status_pill",
        "cursor",
        "expected",
        "summary",
        "created_at",
        "finished_at",
    )
    list_filter = ("kind", "status", ("shop", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("shop",)
    readonly_fields = (
        "shop",
        "kind",
        "status",
        "source",
        "repair",
        "started_by",
        "created_at",
        "started_at",
        "finished_at",
        "expected",
        "cursor",
        "counts",
        "errors",
        "summary",
    )
    fields = readonly_fields

    @admin.display(description="status", ordering="status")
    def status_pill(self, run: SyncRun):
        return pill(run.status, {"done": "ok", "failed": "bad"}.get(run.status, "neutral"))


class ShopMembershipInline(admin.TabularInline):
    """Which staff users (merchants) see this shop; only superusers manage it."""

    model = ShopMembership
    extra = 0
    autocomplete_fields = ("user",)
