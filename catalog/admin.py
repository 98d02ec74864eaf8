"""Admin for shops and products: read-only views of the stored truth, with its sync state, the
answer to "why is this stale?", an activity timeline, and actions that call services."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.db.models import Count, Q, QuerySet
from django.http import HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from search.backends.base import WRITERS
from sync.access import visible_shop_ids
from sync.actions import products_rescore_now, products_resync, sync_run_start, upload_store
from sync.admin import ShopMembershipInline, ShopScopedAdmin, pill
from sync.models import SyncRun
from sync.product_status import (
    FAILED,
    IN_SYNC,
    PENDING,
    STALE_IN_INDEX,
    SYNC_STATES,
    annotate_sync_state,
    product_events,
    product_sync_report,
    product_timeline,
    sync_state_sets,
)
from sync.templatetags.shopsync_admin import duration

from .models import Product, Shop

STATE_TONES = {IN_SYNC: "ok", PENDING: "neutral", FAILED: "bad", STALE_IN_INDEX: "warn"}


class BackfillForm(forms.Form):
    export = forms.FileField(
        help_text="a Shopify product CSV export, a REST JSON file or bulk-operation JSONL"
    )


@admin.register(Shop)
class ShopAdmin(ShopScopedAdmin):
    shop_lookup = "pk"
    list_display = ("domain", "name", "status", "live_products", "created_at")
    search_fields = ("domain", "name")
    exclude = ("webhook_secret", "webhook_secret_previous")
    inlines = [ShopMembershipInline]
    actions = ["start_reconcile", "start_backfill"]

    def get_queryset(self, request) -> QuerySet:
        return (
            super()
            .get_queryset(request)
            .annotate(live=Count("products", filter=Q(products__deleted_at__isnull=True)))
        )

    def has_change_permission(self, request, obj=None) -> bool:  # secrets and memberships: ops only
        return request.user.is_superuser

    @admin.display(description="products", ordering="live")
    def live_products(self, shop: Shop) -> int:
        return shop.live

    @admin.action(
        description="Reconcile the index with the stored truth (and repair drift)", permissions=["operate"]
    )
    def start_reconcile(self, request, queryset: QuerySet) -> None:
        runs = [
            sync_run_start(shop=shop, kind=SyncRun.Kind.RECONCILE, user=request.user) for shop in queryset
        ]
        self.say(
            request,
            f"started {len(runs)} of {queryset.count()} reconcile runs: "
            + ", ".join(f"#{r.pk}" for r in runs),
        )

    @admin.action(description="Start a backfill from an export file…", permissions=["operate"])
    def start_backfill(self, request, queryset: QuerySet):
        if queryset.count() != 1:
            self.say(request, "choose exactly one shop to backfill", partial=True)
            return None
        return HttpResponseRedirect(reverse("admin:catalog_shop_backfill", args=[queryset.get().pk]))

    def get_urls(self):
        own = [
            path(
                "<int:shop_id>/backfill/",
                self.admin_site.admin_view(self.backfill_view),
                name="catalog_shop_backfill",
            )
        ]
        return own + super().get_urls()

    def backfill_view(self, request, shop_id: int):
        """Upload an export and start a backfill run of this shop."""
        shop = get_object_or_404(self.get_queryset(request), pk=shop_id)
        if not self.has_operate_permission(request):
            return HttpResponseRedirect(reverse("admin:catalog_shop_changelist"))
        form = BackfillForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            target = upload_store(upload=form.cleaned_data["export"])
            run = sync_run_start(shop=shop, kind=SyncRun.Kind.BACKFILL, user=request.user, source=str(target))
            self.say(
                request,
                f"started backfill run #{run.pk} of {shop.domain} from {form.cleaned_data['export'].name}",
            )
            return HttpResponseRedirect(reverse("admin:sync_syncrun_change", args=[run.pk]))
        context = {
            **self.admin_site.each_context(request),
            "title": f"Backfill {shop.domain}",
            "form": form,
            "shop": shop,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/shopsync/backfill.html", context)


class SyncStateFilter(admin.SimpleListFilter):
    title = "sync state"
    parameter_name = "sync"

    def lookups(self, request, model_admin):
        return [(state, state) for state in SYNC_STATES]

    def queryset(self, request, queryset):
        return queryset.filter(sync_state=self.value()) if self.value() in SYNC_STATES else queryset


@admin.register(Product)
class ProductAdmin(ShopScopedAdmin):
    list_display = (
        "title",
        "shop_name",
        "status",
        "state_pill",
        "freshness",
        "vector",
        "trend",
        "trend_why",
        "update",
    )
    list_filter = (("shop", admin.RelatedOnlyFieldListFilter), "status", SyncStateFilter, "update_type")
    search_fields = ("title", "handle", "=shopify_id", "=id")
    list_select_related = ("shop",)
    list_per_page = 50
    actions = ["resync", "rescore"]
    change_form_template = "admin/catalog/product/change_form.html"
    readonly_fields = (
        "shop",
        "shopify_id",
        "handle",
        "title",
        "vendor",
        "product_type",
        "tags",
        "status",
        "shopify_updated_at",
        "deleted_at",
        "last_updated_source",
        "update_type",
        "search_hash",
        "embed_text_hash",
        "score_inputs_hash",
        "trend_score",
        "trend_explanation",
        "trend_scored_at",
        "embedding_model",
        "embedded_at",
        "version_vector",
        "index_vector",
        "indexed_at",
        "created_at",
        "modified_at",
    )
    fields = readonly_fields

    def get_queryset(self, request) -> QuerySet:
        queryset = super().get_queryset(request)
        if request.resolver_match and request.resolver_match.url_name.endswith("changelist"):
            queryset = queryset.defer("body_html", "images", "metafields", "options", "embedding")
            # The changelist asks for its queryset twice per page: the event scans run once.
            sets = getattr(request, "_shopsync_state_sets", None)
            if sets is None:
                sets = request._shopsync_state_sets = sync_state_sets(shop_ids=visible_shop_ids(request.user))
            return annotate_sync_state(queryset, failed=sets[0], waiting=sets[1])
        return queryset

    @admin.display(description="sync", ordering="sync_state")
    def state_pill(self, product: Product):
        state = getattr(product, "sync_state", "")
        return pill(state, STATE_TONES.get(state))

    @admin.display(description="freshness", ordering="indexed_at")
    def freshness(self, product: Product) -> str:
        now = timezone.now()
        if getattr(product, "sync_state", IN_SYNC) == STALE_IN_INDEX:
            return f"behind for {duration((now - product.modified_at).total_seconds())}"
        if product.indexed_at is None:
            return "never indexed"
        return f"indexed {duration((now - product.indexed_at).total_seconds())} ago"

    @admin.display(description="version vector (index)")
    def vector(self, product: Product):
        vv, iv = product.version_vector or {}, product.index_vector or {}
        parts = [(w, vv[w], iv.get(w, 0)) for w in WRITERS if w in vv]
        if not parts:
            return "—"
        return format_html_join(
            " · ",
            '<span title="stored {1}, index {2}" class="{3}">{0} {1}{4}</span>',
            ((w, s, i, "ss-warn" if s > i else "", f" ({i})" if s > i else "") for w, s, i in parts),
        )

    @admin.display(description="shop", ordering="shop__domain")
    def shop_name(self, product: Product):
        domain = product.shop.domain
        return format_html('<span title="{}">{}</span>', domain, domain.removesuffix(".myshopify.com"))

    @admin.display(description="trend", ordering="trend_score")
    def trend(self, product: Product) -> str:
        return "—" if product.trend_score is None else f"{product.trend_score:.2f}"

    @admin.display(description="why")
    def trend_why(self, product: Product):
        text = product.trend_explanation
        if not text:
            return "—"
        short = text if len(text) <= 60 else text[:59] + "…"  # the whole of it on hover
        return format_html('<span title="{}">{}</span>', text, short)

    @admin.display(description="update", ordering="update_type")
    def update(self, product: Product) -> str:
        return product.update_type or "—"  # manual / auto; the filter explains them

    @admin.action(
        description="Resync: rewrite the index document from the stored product", permissions=["operate"]
    )
    def resync(self, request, queryset: QuerySet) -> None:
        result = products_resync(product_ids=list(queryset.values_list("pk", flat=True)))
        # The timeline of each product the index took shows who resynced it (not of those it refused).
        for product in queryset.filter(pk__in=result.done_ids).select_related(None).only("pk", "title"):
            self.log_change(request, product, [{"changed": {"fields": ["index document (resync)"]}}])
        self.say(request, result)

    @admin.action(description="Rescore: recompute the trend score now", permissions=["operate"])
    def rescore(self, request, queryset: QuerySet) -> None:
        self.say(request, products_rescore_now(product_ids=list(queryset.values_list("pk", flat=True))))

    def change_view(self, request, object_id, form_url="", extra_context=None):
        product = self.get_object(request, object_id)
        extra = dict(extra_context or {})
        if product is not None:
            events = product_events(product)
            extra["sync_report"] = product_sync_report(product, events)
            extra["timeline"] = product_timeline(product, events)
            extra["state_tone"] = STATE_TONES.get(extra["sync_report"].state)
            extra["now"] = timezone.now()
        return super().change_view(request, object_id, form_url, extra_context=extra)
