from __future__ import annotations

from typing import Any

from django.http import HttpRequest


def memberships(request: HttpRequest) -> dict[str, Any]:
    """The signed-in user's roles, for the navigation bar. Lazy: pages that never show the bar
    never pay the query."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def roles() -> list[Any]:
        return list(user.memberships.select_related("facility").order_by("facility__code", "role"))

    def links() -> list[Any]:
        from clinical.extensions import nav_links

        return nav_links(user)

    return {"my_memberships": roles, "extra_nav": links}
