"""What a result letter says, gathered from a signed report: the examinee, the judged values of the
visit, trend charts up to the exam date, the signed text and its signature, the 受診勧奨 notice and
the amendment. Reads only; outputs come from signed reports (`signed_for_output`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from django.utils import translation
from django.utils.functional import Promise
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy as _lazy

from clinical.charts import threshold_lines, trend_svg
from clinical.intake.items import BY_KEY
from clinical.judging import age_on
from clinical.models import CheckupVisit, Observation, Patient, ScreeningResult
from clinical.screening import RuleSet, RuleSetError, load_ruleset
from clinical.screening.model import LEVELS, OP_SYMBOL
from clinical.selectors_checkups import patient_trends
from reports import corrections, selectors
from reports.letters.follow_up import FollowUp, follow_up_for
from reports.models import Report, SignOff

KIND_LABELS: dict[str, Promise] = {
    "checkup_summary": _lazy("健診総合所見"),
    "cxr": _lazy("胸部X線検査"),
    "ecg": _lazy("心電図検査"),
    "fundus": _lazy("眼底検査"),
    "ct": _lazy("CT検査"),
}
OUTCOME_LABELS: dict[str, Promise] = {
    "normal": _lazy("基準内"), "guidance": _lazy("保健指導"), "referral": _lazy("受診勧奨"),
    "ungraded": _lazy("判定なし"),
}
CHART_ITEMS = ("sbp", "dbp", "hba1c", "fbg", "ldl", "tg", "hdl", "egfr", "ast", "alt", "ggt", "bmi")
MAX_CHARTS = 6  # two rows of three on the second page; more would push the comment off it


class NotSigned(Exception):
    """The report exists and is in the user's scope, but nothing of it is signed yet."""

    reason = "not_signed"

    def __init__(self, report: Report) -> None:
        super().__init__(f"report {report.pk} is not signed")
        self.report = report

    @property
    def message(self) -> str:
        return _("この所見はまだ署名されていません。結果報告書と FHIR 出力は、医師が署名した所見からだけ作成できます。")


class CorrectedAfterSigning(NotSigned):
    """Signed, but the visit's values were corrected after the latest signature: the letter's table
    (current values) and the signed comment (old values) could disagree, so nothing goes out until
    an amendment is signed after the correction."""

    reason = "corrected_after_signing"

    @property
    def message(self) -> str:
        return corrections.output_refusal_message(self.report)


def signed_for_output(user: Any, pk: int) -> tuple[Report, SignOff]:
    """The report and its latest sign-off. Outside the user's facilities: 404 (audited by the
    scoping helper); in scope but unsigned: NotSigned, so the caller can say why; signed before a
    correction of its values: CorrectedAfterSigning."""
    report = selectors.report_for(user, pk)
    signoff = selectors.latest_signoff(report)
    if report.status not in selectors.SIGNED or signoff is None:
        raise NotSigned(report)
    if report.source_changed_at is not None and report.source_changed_at > signoff.signed_at:
        raise CorrectedAfterSigning(report)
    return report, signoff


@dataclass(frozen=True)
class Judged:
    text: str
    css: str  # "o-referral", "grade-D": the colour of the outcome or grade


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    value: str
    unit: str
    judgements: tuple[Judged | None, ...]  # one per rule-set column
    reference: str
    flagged: bool


@dataclass(frozen=True)
class Column:
    ruleset: str
    title: str
    version: str
    verified: bool
    legend: str  # what the grades mean, for the footnote


@dataclass(frozen=True)
class Amendment:
    signed_at: datetime
    reason: str
    first_signed_at: datetime


@dataclass
class Letter:
    report_id: int
    kind: str
    kind_label: str
    facility_name: str
    patient_name: str
    patient_kana: str
    mrn: str
    birth_date: date | None
    sex: str
    age: int | None
    exam_date: date | None
    course: str
    comment: str
    physician: str
    signed_at: datetime
    sha256: str
    amendment: Amendment | None
    columns: list[Column] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    charts: list[SafeString] = field(default_factory=list)
    follow_up: FollowUp | None = None
    study: str = ""

    @property
    def is_visit(self) -> bool:
        return self.kind == "checkup_summary"

    @property
    def sha_short(self) -> str:
        return self.sha256[:12]


def letter_for(report: Report, signoff: SignOff) -> Letter:
    """Everything the letter template shows, from `signoff` (the latest signature of `report`).
    In Japanese whatever the reader's UI language: the letter is the examinee's, and labels
    (sex, course, judgements) are fixed into plain strings here, not at render time."""
    with translation.override("ja"):
        return _letter(report, signoff)


def _letter(report: Report, signoff: SignOff) -> Letter:
    patient: Patient | None = report.patient or (report.visit.patient if report.visit else None)
    letter = Letter(
        report_id=report.pk, kind=report.kind, kind_label=str(KIND_LABELS.get(report.kind, report.kind)),
        facility_name=report.facility.name,
        patient_name=patient.full_name if patient else "", patient_kana=patient.full_name_kana if patient else "",
        mrn=patient.mrn if patient else "", birth_date=patient.birth_date if patient else None,
        sex=patient.get_sex_display() if patient else "", age=None, exam_date=None, course="",
        comment=signoff.revision.text, physician=physician_name(signoff.physician), signed_at=signoff.signed_at,
        sha256=signoff.content_sha256, amendment=_amendment(signoff),
    )
    if report.visit is not None:
        _add_visit(letter, report.visit, patient)
    elif report.study is not None:
        letter.exam_date = report.study.study_date
        letter.study = " ".join(p for p in (report.study.modalities.replace("\\", "/"),
                                            report.study.study_description) if p)
    if patient is not None and letter.exam_date is not None:
        letter.age = age_on(patient.birth_date, letter.exam_date)
    return letter


def physician_name(user: Any) -> str:
    return str(getattr(user, "display_name", "") or user.get_username())


def _amendment(signoff: SignOff) -> Amendment | None:
    if signoff.amends_id is None:
        return None
    first = SignOff.objects.filter(report_id=signoff.report_id).order_by("signed_at").values_list(
        "signed_at", flat=True).first()
    return Amendment(signed_at=signoff.signed_at, reason=signoff.reason, first_signed_at=first or signoff.signed_at)


def ruleset_or_none(name: str) -> RuleSet | None:
    try:
        return load_ruleset(name)
    except (RuleSetError, OSError):
        return None  # a result judged by a rule set this build no longer ships: shown without its legend


def _add_visit(letter: Letter, visit: CheckupVisit, patient: Patient | None) -> None:
    letter.exam_date = visit.exam_date
    letter.course = visit.get_course_display()
    observations = {o.item: o for o in Observation.objects.filter(visit=visit)}
    screenings = sorted(ScreeningResult.objects.filter(visit=visit), key=lambda s: s.ruleset)
    rulesets = [(s, ruleset_or_none(s.ruleset)) for s in screenings]
    letter.columns = [_column(s, rs) for s, rs in rulesets]
    sex = patient.sex if patient else "M"
    flagged: dict[str, str] = {}
    for key in BY_KEY:
        obs = observations.get(key)
        item = BY_KEY[key]
        if obs is None or item.kind == "flag":
            continue  # questionnaire answers (medication, smoking) are not results to judge
        cells = tuple(_judged(s, rs, key) for s, rs in rulesets)
        follow = any(rs is not None and s.items.get(key) in rs.follow_up for s, rs in rulesets)
        if follow:
            flagged[key] = item.label
        value = obs.value_text if obs.value_num is None else format(obs.value_num.normalize(), "f")
        letter.rows.append(Row(key=key, label=item.label, value=value, unit=obs.unit or item.unit,
                               judgements=cells, reference=reference_text(rulesets, key, sex, visit.fasting),
                               flagged=follow))
    if visit.follow_up or flagged:
        reasons = tuple(str(r) for s in screenings if s.follow_up for r in s.reasons)
        values = {k: o.value_num for k, o in observations.items()}
        letter.follow_up = follow_up_for(flagged, values, reasons)
    if patient is not None:
        letter.charts = _charts(patient, visit, set(observations), flagged)


def _column(result: ScreeningResult, ruleset: RuleSet | None) -> Column:
    if ruleset is None:
        return Column(result.ruleset, result.ruleset, result.ruleset_version, False, "")
    legend = "" if ruleset.kind == LEVELS else "、".join(f"{g} {label}" for g, label in ruleset.grade_labels.items())
    return Column(ruleset.id, ruleset.title, result.ruleset_version, ruleset.verified, legend)


def _judged(result: ScreeningResult, ruleset: RuleSet | None, key: str) -> Judged | None:
    outcome = result.items.get(key)
    if not outcome:
        return None
    if outcome in OUTCOME_LABELS:
        return Judged(str(OUTCOME_LABELS[outcome]), f"o-{outcome}")
    label = ruleset.grade_labels.get(outcome, "") if ruleset else ""
    return Judged(f"{outcome} {label}".strip(), f"grade-{outcome}")


def reference_text(rulesets: list[tuple[ScreeningResult, RuleSet | None]], key: str, sex: str,
               fasting: bool | None) -> str:
    """The thresholds a reader compares the value with: 保健指導/受診勧奨判定値 where a LEVELS
    set judges the item, else the grade-A band of a 判定区分 table."""
    for _result, rs in rulesets:
        if rs is None or rs.kind != LEVELS:
            continue
        for rule in rs.items:
            if rule.field != key or not rule.levels or (
                    rule.fasting is not None and fasting is not None and rule.fasting != fasting):
                continue
            level = rule.levels[sex]
            parts = [_("保健指導 %(t)s") % {"t": _threshold(level.guidance.op, level.guidance.value)}]
            if level.referral is not None:
                parts.append(_("受診勧奨 %(t)s") % {"t": _threshold(level.referral.op, level.referral.value)})
            return " / ".join(parts)
    for _result, rs in rulesets:
        if rs is None or rs.kind == LEVELS:
            continue
        for rule in rs.items:
            if rule.field == key and rule.bands:
                band = next((b for b in rule.bands[sex] if b.grade == "A"), None)
                if band is not None:
                    return _("A判定 %(t)s") % {"t": band.written}
    return ""


def _threshold(op: str, value: float | str) -> str:
    shown = f"{value:g}" if isinstance(value, float | int) else str(value)
    return f"{OP_SYMBOL.get(op, op)}{shown}"


def _charts(patient: Patient, visit: CheckupVisit, measured: set[str], flagged: dict[str, str]) -> list[SafeString]:
    """Trends up to this visit (a reprint of an old letter must not show later visits), flagged
    items first."""
    series = patient_trends(patient=patient)
    mhlw = ruleset_or_none("mhlw-2024")
    keys = [k for k in CHART_ITEMS if k in measured]
    keys.sort(key=lambda k: k not in flagged)
    charts = []
    for key in keys[:MAX_CHARTS]:
        points: list[tuple[date, Decimal]] = [(d, v) for d, v in series.get(key, []) if d <= visit.exam_date]
        if not points:
            continue
        item = BY_KEY[key]
        lines = threshold_lines(mhlw, key, patient.sex, visit.fasting) if mhlw else []
        # trend_svg escapes every text it writes (titles, labels, units), so the markup is safe.
        charts.append(mark_safe(_styled(trend_svg(item.label, item.unit, points, lines))))  # noqa: S308
    return charts


# weasyprint does not apply the page's stylesheet inside inline SVG: each chart carries its own.
_SVG_STYLE = (
    "<style>text{font-family:'Noto Sans CJK JP',sans-serif;font-size:10px}"
    ".series{fill:none;stroke:#1f5fa8;stroke-width:2}.pt{fill:#1f5fa8}"
    ".th{stroke-dasharray:4 3;stroke-width:1.2}.th.guidance{stroke:#b26a00}.th.referral{stroke:#c0392b}"
    ".thl{font-size:9px}.thl.guidance{fill:#b26a00}.thl.referral{fill:#c0392b}"
    ".axis{stroke:#9aa3ad}.t{font-weight:700;font-size:11px}.d{fill:#5b6470;font-size:9px}.v{font-size:9px}"
    "</style>"
)


def _styled(svg: str) -> str:
    head = svg.index(">") + 1
    return svg[:head] + _SVG_STYLE + svg[head:]
