"""The administration link in the navigation bar, through the same hook other apps use."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from clinical.extensions import Action, nav_link_providers
from clinical.scoping import facility_ids_for


def _administration_link(user: Any) -> Action | None:
    # facility_ids_for caches per user object: the menu asks the database once per permission.
    if facility_ids_for(user, "administer_facility"):
        return Action(label=_("管理"), url=reverse("administration_home"))
    return None


def install() -> None:
    if _administration_link not in nav_link_providers:
        nav_link_providers.append(_administration_link)
