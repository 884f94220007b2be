"""What inference adds to clinical screens through clinical.extensions (clinical never imports us)."""

from __future__ import annotations

from typing import Any

from django.urls import reverse
from django.utils.translation import gettext as _

from clinical.extensions import Action, nav_link_providers, visit_action_providers
from clinical.scoping import facility_ids_for


def _draft_action(visit: Any, user: Any) -> Action | None:
    from inference.models import ModelVersion

    if visit.facility_id not in facility_ids_for(user):
        return None
    if not ModelVersion.objects.filter(enabled=True).exists():
        return None
    return Action(label=_("下書きを作成"), url=reverse("inference_job_create"), method="post",
                  fields=(("visit", str(visit.pk)), ("next", reverse("visit_detail", args=[visit.pk]))))


def _worklist_link(user: Any) -> Action | None:
    # facility_ids_for is cached on the user object: the nav costs one query per permission per request.
    if facility_ids_for(user, "sign_reports") or facility_ids_for(user, "administer_facility"):
        return Action(label=_("下書き一覧"), url=reverse("inference_worklist"))
    return None


def _models_link(user: Any) -> Action | None:
    if facility_ids_for(user, "administer_facility"):
        return Action(label=_("モデル登録"), url=reverse("inference_model_list"))
    return None


def install() -> None:
    if _draft_action not in visit_action_providers:
        visit_action_providers.append(_draft_action)
    for link in (_worklist_link, _models_link):
        if link not in nav_link_providers:
            nav_link_providers.append(link)
