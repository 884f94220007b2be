"""The model registry's actions for administrators: one page per version with its state, what it
is in force for, its history and a form (action + reason). Thin: check, call inference.registry,
render. Non-administrators get 403, as on the registry list; an unknown version is 404."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from inference import registry, selectors
from inference.models import ModelVersion


class RegistryActionForm(forms.Form):
    action = forms.ChoiceField(label=gettext_lazy("操作"), choices=registry.RegistryAction.choices,
                               widget=forms.RadioSelect,
                               error_messages={"required": gettext_lazy("操作を選んでください。")})
    reason = forms.CharField(label=gettext_lazy("理由"), max_length=registry.MAX_REASON,
                             widget=forms.Textarea(attrs={"rows": 3}),
                             help_text=gettext_lazy("監査ログに記録されます（例：検証結果、不具合の報告番号）。"),
                             error_messages={"required": gettext_lazy("理由を入力してください。")})
    accept_uncovered = forms.BooleanField(
        label=gettext_lazy("使用中の版がなくなるタスクがあっても昇格する"), required=False,
        help_text=gettext_lazy("昇格でシャドーになる版が他のタスクにも使われている場合だけ必要です。"))


def _action_label(action: str) -> str:
    labels = {**dict(registry.RegistryAction.choices), "demoted_to_shadow": _("シャドーに切替（別の版の昇格による）"),
              EventKind.CREATE: _("登録"), EventKind.UPDATE: _("更新")}
    return str(labels.get(action, action))


def require_registry_admin(request: HttpRequest) -> None:
    if not selectors.is_registry_admin(request.user):
        audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="inference.modelversion",
                     object_id=request.path[:64], details={"perm": "administer_facility"})
        raise PermissionDenied


def _version(pk: int) -> ModelVersion:
    mv = selectors.model_versions().filter(pk=pk).first()
    if mv is None:
        raise Http404
    return mv


def _page(request: HttpRequest, mv: ModelVersion, form: RegistryActionForm | None = None,
          status: int = 200) -> HttpResponse:
    versions = list(selectors.model_versions())
    in_force = selectors.versions_in_force(versions)
    return render(request, "inference/model_detail.html", {
        "mv": mv, "form": form or RegistryActionForm(),
        "in_force_for": sorted(t for t, v in in_force.items() if v.pk == mv.pk),
        "others": [(t, in_force.get(t)) for t in (mv.tasks or [])],
        "history": [(e, _action_label(e.action)) for e in selectors.model_version_history(mv.pk)],
    }, status=status)


@login_required
def model_detail(request: HttpRequest, pk: int) -> HttpResponse:
    require_registry_admin(request)
    mv = _version(pk)
    if request.method != "POST":
        return _page(request, mv)
    form = RegistryActionForm(request.POST)
    if not form.is_valid():
        return _page(request, mv, form, status=400)
    action, reason = form.cleaned_data["action"], form.cleaned_data["reason"]
    actor: Any = request.user
    try:
        change = registry.model_version_change(model_version=mv, action=action, actor=actor, reason=reason,
                                               accept_uncovered=form.cleaned_data["accept_uncovered"])
    except registry.RegistryRefused as exc:
        # Refusals leave a trail too: someone tried to change what drafts physicians see.
        audit_record(kind=EventKind.UPDATE, outcome=Outcome.DENIED, object_type="inference.modelversion",
                     object_id=mv.pk, details={"action": action, "refused": str(exc), "reason": reason})
        form.add_error(None, str(exc))
        return _page(request, mv, form, status=409)
    label = registry.RegistryAction(action).label
    if change.demoted:
        messages.success(request, _("%(model)s：%(action)s。%(demoted)s はシャドーに切り替えました"
                                    "（比較用に下書きを続けます）。")
                         % {"model": mv, "action": label, "demoted": "、".join(str(d) for d in change.demoted)})
    else:
        messages.success(request, _("%(model)s：%(action)s。") % {"model": mv, "action": label})
    if change.uncovered:
        messages.warning(request, _("タスク %(tasks)s には使用中の版がありません。")
                         % {"tasks": ", ".join(change.uncovered)})
    return redirect("inference_model_detail", pk=mv.pk)
