"""Choosing the rule sets in force at a facility, per checkup course (house rule 1). The choice
changes how every later visit is judged, so it is checked, explained and audited with the versions
before and after and the administrator's reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import transaction
from django.utils.translation import gettext as _

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.judging import rulesets_in_force
from clinical.models import Course, Facility, FacilityRuleSet, User
from clinical.scoping import facility_ids_for, role_at
from clinical.screening import RuleSetError, available_rulesets, load_ruleset
from clinical.screening.model import LEVELS
from clinical.services_admin import AdminRefused

MAX_REASON = 500


def ruleset_label(name: str) -> dict[str, Any]:
    """What the audit trail keeps of a rule set: its id and the version of the shipped file."""
    ruleset = load_ruleset(name)
    return {"id": ruleset.id, "version": ruleset.version}


def _checked(course: str, names: Sequence[str]) -> list[str]:
    chosen = sorted(set(names))
    if not chosen:
        raise AdminRefused(_("判定基準を1つ以上選んでください。"))
    unknown = [n for n in chosen if n not in available_rulesets()]
    if unknown:
        raise AdminRefused(_("登録されていない判定基準です: %(names)s") % {"names": ", ".join(unknown)})
    try:
        kinds = {load_ruleset(n).kind for n in chosen}
    except RuleSetError as exc:
        raise AdminRefused(_("判定基準を読み込めません: %(error)s") % {"error": exc}) from exc
    if course == Course.TOKUTEI and LEVELS not in kinds:
        # 特定健診 is defined by the MHLW 保健指導判定値・受診勧奨判定値 (and its 階層化).
        raise AdminRefused(_("特定健診には厚生労働省の判定値（保健指導判定値・受診勧奨判定値）の判定基準が必要です。"))
    return chosen


def facility_rulesets_set(
    *, facility: Facility, course: str, rulesets: Sequence[str], reason: str, actor: User,
) -> FacilityRuleSet:
    """Put `rulesets` in force for `course` at `facility`. Visits judged from now on use them;
    results already stored keep the rule set and version they were judged with."""
    if facility.pk not in facility_ids_for(actor, "administer_facility"):
        raise AdminRefused(_("この施設を管理する権限がありません。"))
    if course not in Course.values:
        raise AdminRefused(_("コースが正しくありません。"))
    reason = reason.strip()
    if not reason:
        raise AdminRefused(_("変更の理由を入力してください。"))
    if len(reason) > MAX_REASON:
        raise AdminRefused(_("理由は%(n)d文字以内にしてください。") % {"n": MAX_REASON})
    chosen = _checked(course, rulesets)
    with transaction.atomic():
        FacilityRuleSet.objects.select_for_update().filter(facility=facility, course=course).first()
        before = list(rulesets_in_force([facility.pk])[facility.pk][course])
        if sorted(before) == chosen:
            raise AdminRefused(_("変更はありません（同じ判定基準がすでに使われています）。"))
        row, _created = FacilityRuleSet.objects.update_or_create(
            facility=facility, course=course, defaults={"rulesets": chosen, "changed_by": actor})
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, facility.pk), facility_id=facility.pk,
                     object_type="clinical.facilityruleset", object_id=row.pk,
                     details={"course": course, "before": [ruleset_label(n) for n in before],
                              "after": [ruleset_label(n) for n in chosen], "reason": reason})
    return row
