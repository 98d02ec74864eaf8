"""Who sees which shops: superusers see every shop; merchants (staff, not superusers) only the
shops they are members of (ShopMembership). Every admin queryset, action and the dashboard go
through `visible_shop_ids`.
"""

from __future__ import annotations

from django.db.models import QuerySet

from .models import ShopMembership


def visible_shop_ids(user) -> list[int] | None:
    """The ids of the shops `user` may see, or None for all of them (superusers)."""
    if not getattr(user, "is_active", False) or not getattr(user, "is_staff", False):
        return []
    if user.is_superuser:
        return None
    cached = getattr(user, "_shopsync_shop_ids", None)
    if cached is None:
        cached = list(ShopMembership.objects.filter(user=user).values_list("shop_id", flat=True))
        user._shopsync_shop_ids = cached  # one query per request, however many admin calls ask
    return cached


def is_merchant(user) -> bool:
    """Staff with at least one shop (and not a superuser)."""
    ids = visible_shop_ids(user)
    return ids is not None and bool(ids)


def scope_to_shops(queryset: QuerySet, user, *, shop_lookup: str = "shop") -> QuerySet:
    """`queryset` limited to the rows of the shops `user` may see."""
    ids = visible_shop_ids(user)
    if ids is None:
        return queryset
    return queryset.filter(**{f"{shop_lookup}__in": ids})
