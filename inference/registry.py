"""Registry actions (house rule 1): enable, disable, shadow, unshadow and promote a model version.
Each needs a reason and is audited with who, why and the state before and after, in the same
transaction as the change.

The rule these actions keep: for each task at most one enabled, non-shadow version — the version
*in force*, whose drafts reach physicians. A second one would make the choice depend on row order,
so enabling or unshadowing a version where another is in force is refused; **promote** is the one
way to replace the version in force.

Promote: the promoted version becomes enabled and non-shadow, and every other version in force
for any of its tasks is switched to **shadow** (not disabled). It keeps drafting the same studies
for comparison only, so the quality dashboard compares the new version against the old one on the
same inputs, and rolling back is one promote of the old version. An administrator who does not
want the comparison disables the shadow afterwards. A promotion that would leave another task of a
demoted version with no version in force is refused unless the administrator says they accept it
(`accept_uncovered`): nobody loses drafts for a task they did not mean to touch, yet a version
serving two tasks can still be replaced by two single-task versions, one promotion at a time."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.db import models, transaction
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from audit.kinds import EventKind
from audit.services import audit_record
from inference.models import ModelVersion
from inference.selectors import is_registry_admin

MAX_REASON = 500


class RegistryAction(models.TextChoices):
    ENABLE = "enable", gettext_lazy("有効にする")
    DISABLE = "disable", gettext_lazy("無効にする")
    SHADOW = "shadow", gettext_lazy("シャドーにする（比較用、医師には届かない）")
    UNSHADOW = "unshadow", gettext_lazy("シャドーを解除する")
    PROMOTE = "promote", gettext_lazy("昇格する（このタスクで使用する版にする）")


class RegistryRefused(ValueError):
    """The action is not allowed; the message says why and what to do instead."""


@dataclass
class RegistryChange:
    model_version: ModelVersion
    action: str
    demoted: list[ModelVersion] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)  # tasks left with no version in force


def _state(mv: ModelVersion) -> dict[str, bool]:
    return {"enabled": mv.enabled, "shadow": mv.shadow}


def _in_force(mv: ModelVersion) -> bool:
    return mv.enabled and not mv.shadow


def _rivals(mv: ModelVersion, registry: list[ModelVersion]) -> list[ModelVersion]:
    """Other versions in force for any task of `mv`."""
    tasks = set(mv.tasks or [])
    return [o for o in registry if o.pk != mv.pk and _in_force(o) and tasks & set(o.tasks or [])]


def _names(versions: list[ModelVersion]) -> str:
    return "、".join(str(v) for v in versions)


def _lock_registry() -> list[ModelVersion]:
    # The registry is a handful of rows: locking all of them, in one order, serialises concurrent
    # actions without deadlocks, and every rule below is checked against rows nobody else can move.
    return list(ModelVersion.objects.select_for_update().order_by("pk"))


def _checked_reason(actor: Any, reason: str) -> str:
    if not is_registry_admin(actor):
        raise RegistryRefused(_("モデル登録を変更する権限がありません。"))
    reason = (reason or "").strip()
    if not reason:
        raise RegistryRefused(_("理由を入力してください。"))
    if len(reason) > MAX_REASON:
        raise RegistryRefused(_("理由は%(n)d文字以内にしてください。") % {"n": MAX_REASON})
    return reason


def _save(mv: ModelVersion, *, enabled: bool, shadow: bool) -> None:
    ModelVersion.objects.filter(pk=mv.pk).update(enabled=enabled, shadow=shadow)
    mv.enabled, mv.shadow = enabled, shadow


def _audit(mv: ModelVersion, *, actor: Any, action: str, before: dict[str, bool], reason: str,
           **extra: Any) -> None:
    audit_record(kind=EventKind.UPDATE, user=actor, object_type="inference.modelversion", object_id=mv.pk,
                 details={"action": action, "model": str(mv), "tasks": list(mv.tasks or []), "before": before,
                          "after": _state(mv), "reason": reason, **extra})


def _refuse_second_in_force(mv: ModelVersion, registry: list[ModelVersion]) -> None:
    rivals = _rivals(mv, registry)
    if rivals:
        raise RegistryRefused(_("同じタスクで使用中の版（%(rivals)s）があります。比較するならシャドーとして有効にし、"
                                "切り替えるなら「昇格」を使ってください。") % {"rivals": _names(rivals)})


def model_version_change(*, model_version: ModelVersion, action: str, actor: Any, reason: str,
                         accept_uncovered: bool = False) -> RegistryChange:
    """Apply one registry action (RegistryAction) to `model_version`. `accept_uncovered`: promote
    even if a demoted version's other tasks are left with no version in force."""
    reason = _checked_reason(actor, reason)
    if action not in RegistryAction.values:
        raise RegistryRefused(_("操作が正しくありません。"))
    with transaction.atomic():
        registry = _lock_registry()
        mv = next((m for m in registry if m.pk == model_version.pk), None)
        if mv is None:
            raise RegistryRefused(_("このモデルは登録されていません。"))
        before = _state(mv)
        change = RegistryChange(model_version=mv, action=action)
        extra: dict[str, Any] = {}
        if action == RegistryAction.PROMOTE:
            change.demoted, change.uncovered = _promote(mv, registry, actor=actor, reason=reason,
                                                        accept_uncovered=accept_uncovered)
            extra = {"demoted": [{"id": d.pk, "model": str(d)} for d in change.demoted],
                     "uncovered_tasks": change.uncovered}
        else:
            enabled, shadow = _next_state(mv, action, registry)
            _save(mv, enabled=enabled, shadow=shadow)
        _audit(mv, actor=actor, action=action, before=before, reason=reason, **extra)
    model_version.enabled, model_version.shadow = mv.enabled, mv.shadow
    return change


def _next_state(mv: ModelVersion, action: str, registry: list[ModelVersion]) -> tuple[bool, bool]:
    if action == RegistryAction.ENABLE:
        if mv.enabled:
            raise RegistryRefused(_("すでに有効です。"))
        if not mv.shadow:
            _refuse_second_in_force(mv, registry)
        return True, mv.shadow
    if action == RegistryAction.DISABLE:
        if not mv.enabled:
            raise RegistryRefused(_("すでに無効です。"))
        return False, mv.shadow
    if action == RegistryAction.SHADOW:
        if mv.shadow:
            raise RegistryRefused(_("すでにシャドーです。"))
        return mv.enabled, True
    if not mv.shadow:  # UNSHADOW
        raise RegistryRefused(_("シャドーではありません。"))
    if mv.enabled:
        _refuse_second_in_force(mv, registry)
    return mv.enabled, False


def _promote(mv: ModelVersion, registry: list[ModelVersion], *, actor: Any, reason: str,
             accept_uncovered: bool) -> tuple[list[ModelVersion], list[str]]:
    rivals = _rivals(mv, registry)
    if _in_force(mv) and not rivals:
        raise RegistryRefused(_("すでにこのタスクで使用中の版です。"))
    rival_ids = {r.pk for r in rivals}
    stays = [m for m in registry if _in_force(m) and m.pk not in rival_ids and m.pk != mv.pk]
    uncovered = sorted({t for r in rivals for t in (r.tasks or [])
                        if t not in (mv.tasks or []) and not any(t in (m.tasks or []) for m in stays)})
    if uncovered and not accept_uncovered:
        raise RegistryRefused(_("%(rivals)s はタスク %(tasks)s にも使われています。昇格すると %(tasks)s に使用中の版が"
                                "なくなります。それでよければ「使用中の版がなくなるタスクがあっても昇格する」を"
                                "選んでください。") % {"rivals": _names(rivals), "tasks": ", ".join(uncovered)})
    _save(mv, enabled=True, shadow=False)
    for rival in rivals:
        before = _state(rival)
        _save(rival, enabled=True, shadow=True)
        _audit(rival, actor=actor, action="demoted_to_shadow", before=before, reason=reason,
               promoted={"id": mv.pk, "model": str(mv)}, uncovered_tasks=uncovered)
    return rivals, uncovered


# --- one name per action, for scripts and tests ------------------------------------------------------


def model_version_enable(*, model_version: ModelVersion, actor: Any, reason: str) -> RegistryChange:
    return model_version_change(model_version=model_version, action=RegistryAction.ENABLE, actor=actor, reason=reason)


def model_version_disable(*, model_version: ModelVersion, actor: Any, reason: str) -> RegistryChange:
    return model_version_change(model_version=model_version, action=RegistryAction.DISABLE, actor=actor,
                                reason=reason)


def model_version_set_shadow(*, model_version: ModelVersion, shadow: bool, actor: Any, reason: str) -> RegistryChange:
    action = RegistryAction.SHADOW if shadow else RegistryAction.UNSHADOW
    return model_version_change(model_version=model_version, action=action, actor=actor, reason=reason)


def model_version_promote(*, model_version: ModelVersion, actor: Any, reason: str,
                          accept_uncovered: bool = False) -> RegistryChange:
    return model_version_change(model_version=model_version, action=RegistryAction.PROMOTE, actor=actor,
                                reason=reason, accept_uncovered=accept_uncovered)
