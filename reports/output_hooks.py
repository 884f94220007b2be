"""What the outputs add to the screens of layers below (clinical never imports reports)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from clinical.extensions import Action, nav_link_providers
from clinical.scoping import facility_ids_for


def _print_link(user: Any) -> Action | None:
    from reports.printing import PERM

    if facility_ids_for(user, PERM):  # cached on the user: no extra query per page
        return Action(label=_("結果報告書の一括印刷"), url=reverse("report_print_start"))
    return None


def install() -> None:
    if _print_link not in nav_link_providers:
        nav_link_providers.append(_print_link)
