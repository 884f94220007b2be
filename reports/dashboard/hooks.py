"""The dashboard's nav link, through clinical.extensions (clinical never imports reports)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from clinical.extensions import Action, nav_link_providers
from clinical.scoping import facility_ids_for


def _dashboard_link(user: Any) -> Action | None:
    if facility_ids_for(user, "administer_facility"):
        return Action(label=_("AI品質"), url=reverse("reports_quality_dashboard"))
    return None


def install() -> None:
    if _dashboard_link not in nav_link_providers:
        nav_link_providers.append(_dashboard_link)
