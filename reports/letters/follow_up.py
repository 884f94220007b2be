"""What the 受診勧奨 notice tells the examinee to do next: which department for which flagged item,
and by when. The examinee reads this without a physician beside them, so it names a department
and a time frame instead of repeating the judgement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

# Item key → (area, department). Grouped by area so three lipid items give one line, not three.
_INTERNAL = _lazy("内科")
_AREAS: dict[str, tuple[Promise, Promise]] = {
    **dict.fromkeys(("sbp", "dbp"), (_lazy("血圧"), _lazy("内科・循環器内科"))),
    **dict.fromkeys(("fbg", "rbg", "hba1c"), (_lazy("血糖"), _lazy("内科・糖尿病内科"))),
    **dict.fromkeys(("tg", "hdl", "ldl", "non_hdl"), (_lazy("脂質"), _INTERNAL)),
    **dict.fromkeys(("ast", "alt", "ggt"), (_lazy("肝機能"), _lazy("内科・消化器内科"))),
    **dict.fromkeys(("egfr", "creatinine", "urine_protein"), (_lazy("腎機能"), _lazy("内科・腎臓内科"))),
    "uric_acid": (_lazy("尿酸"), _INTERNAL),
    "hb": (_lazy("貧血"), _INTERNAL),
}

# The MHLW programme: blood pressure of 160/100 or more means "see a doctor now"; 140–159/90–99
# means lifestyle first (shared/standards/checkup-judgement.md, section A). Other flagged items get
# a month, this project's default (a facility that wants another frame changes it here).
_URGENT_AT: dict[str, Decimal] = {"sbp": Decimal(160), "dbp": Decimal(100)}


@dataclass(frozen=True)
class Referral:
    area: str
    department: str
    items: tuple[str, ...]  # item labels, as on the judgement table


@dataclass(frozen=True)
class FollowUp:
    referrals: tuple[Referral, ...]
    reasons: tuple[str, ...]
    urgent: bool

    @property
    def by_when(self) -> str:
        if self.urgent:
            return _("できるだけ早く")
        return _("1か月以内を目安に")


def follow_up_for(flagged: Mapping[str, str], values: Mapping[str, Decimal | None],
                  reasons: tuple[str, ...]) -> FollowUp:
    """`flagged`: item key → item label for every item a rule set flagged for follow-up."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for key, label in flagged.items():
        area, department = _AREAS.get(key, (label, _INTERNAL))
        grouped.setdefault((str(area), str(department)), []).append(label)
    referrals = tuple(Referral(area, dept, tuple(labels)) for (area, dept), labels in grouped.items())
    urgent = any((v := values.get(key)) is not None and v >= limit for key, limit in _URGENT_AT.items())
    return FollowUp(referrals=referrals, reasons=reasons, urgent=urgent)
