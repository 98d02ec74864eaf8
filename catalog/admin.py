from django.contrib import admin

from .models import Product, Shop


@admin.register(Shop)
class ShopAdmin(admin.ModelAdmin):
    list_display = ("domain", "status", "created_at")
    search_fields = ("domain",)
    exclude = ("webhook_secret", "webhook_secret_previous")


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ("title", "shop", "shopify_id", "status", "shopify_updated_at", "indexed_at", "deleted_at")
    list_filter = ("shop", "status", "update_type")
    search_fields = ("title", "handle", "=shopify_id")
    list_select_related = ("shop",)
    readonly_fields = (
        "search_hash",
        "embed_text_hash",
        "score_inputs_hash",
        "version_vector",
        "index_vector",
        "indexed_at",
        "created_at",
        "modified_at",
    )
