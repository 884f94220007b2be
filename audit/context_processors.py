from __future__ import annotations

from typing import Any

from django.core.cache import cache
from django.http import HttpRequest

from audit.selectors import reviewable_facility_ids

# How long the nav link's answer is remembered. Only the link's visibility is cached: every audit
# view checks the permission itself, so a revoked reviewer sees a link that leads to a 403.
NAV_CACHE_S = 300


def audit_review(request: HttpRequest) -> dict[str, Any]:
    """`can_review_audit` for the navigation bar. Lazy (pages without the bar never ask) and cached,
    so the bar adds no query to a page after the first."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {}

    def can_review() -> bool:
        joined = user.date_joined.timestamp() if getattr(user, "date_joined", None) else 0
        key = f"audit:nav:{user.pk}:{joined}"
        answer = cache.get(key)
        if answer is None:
            answer = bool(reviewable_facility_ids(user))
            cache.set(key, answer, NAV_CACHE_S)
        return bool(answer)

    return {"can_review_audit": can_review}
