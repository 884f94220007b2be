"""What the review screen puts beside the draft: the visit's judged values with their trends, or the
study's images and ECG traces. Reads only; the view decides who may see them (and audits it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import OuterRef, Subquery

from clinical.charts import threshold_lines, trend_svg
from clinical.dicom.models import Instance, Series, Study
from clinical.intake.items import BY_KEY
from clinical.models import CheckupVisit
from clinical.screening import load_ruleset
from clinical.selectors_checkups import patient_trends, visit_detail

RULESET = "mhlw-2024"
# Trends drawn when nothing is flagged: the items a checkup summary most often talks about.
DEFAULT_TRENDS = ("sbp", "dbp", "hba1c", "ldl", "tg", "hdl", "egfr")
MAX_TRENDS = 6


@dataclass(frozen=True)
class ValueRow:
    key: str
    label: str
    value: str
    unit: str
    outcome: str  # "normal" | "guidance" | "referral" | ""


def visit_values(visit: CheckupVisit) -> tuple[list[ValueRow], Any]:
    """The visit's measured values in the intake order, with the MHLW judgement of each, and the
    judgement itself (follow-up flag and reasons) or None."""
    detail = visit_detail(visit=visit)
    judged = detail["screenings"].get(RULESET)
    order = list(BY_KEY)
    rows = []
    for key, obs in sorted(detail["observations"].items(), key=lambda kv: order.index(kv[0]) if kv[0] in BY_KEY
                           else len(order)):
        item = BY_KEY.get(key)
        value = obs.value_text if obs.value_num is None else format(obs.value_num.normalize(), "f")
        rows.append(ValueRow(key=key, label=item.label if item else key, value=value, unit=obs.unit,
                             outcome=str(judged.items.get(key, "")) if judged else ""))
    return rows, judged


def visit_trends(visit: CheckupVisit, rows: list[ValueRow]) -> list[str]:
    """SVG trend charts (clinical.charts, escaped there) for the items judged outside the normal
    range, or the usual items when none is; at most MAX_TRENDS."""
    flagged = [r.key for r in rows if r.outcome in ("guidance", "referral")]
    keys = [k for k in (flagged or DEFAULT_TRENDS) if k in BY_KEY][:MAX_TRENDS]
    series = patient_trends(patient=visit.patient)
    ruleset = load_ruleset(RULESET)
    charts = []
    for key in keys:
        points = series.get(key)
        if points:
            item = BY_KEY[key]
            charts.append(trend_svg(item.label, item.unit, points,
                                    threshold_lines(ruleset, key, visit.patient.sex, visit.fasting)))
    return charts


@dataclass(frozen=True)
class KeyImage:
    label: str
    url: str  # WADO-RS rendered, same origin, scoped and audited by the DICOMweb view


def study_images(study: Study, limit: int = 4) -> tuple[list[KeyImage], list[int]]:
    """The first image of each of the first `limit` series (a preview; the full viewer is one link
    away) and the ids of the ECG waveform instances. Three queries however large the study."""
    first = (Instance.objects.filter(series=OuterRef("pk"), has_waveform=False, number_of_frames__gt=0)
             .order_by("instance_number", "id").values("pk")[:1])
    series = list(Series.objects.filter(study=study).annotate(first_image=Subquery(first))
                  .filter(first_image__isnull=False).order_by("series_number", "id")[:limit])
    by_pk = {i.pk: i for i in Instance.objects.filter(pk__in=[s.first_image for s in series])
             .only("pk", "sop_instance_uid")}
    images = [KeyImage(label=f"{s.modality} #{s.series_number if s.series_number is not None else '—'} "
                             f"{s.series_description}",
                       url=(f"/dicomweb/studies/{study.study_instance_uid}/series/{s.series_instance_uid}"
                            f"/instances/{by_pk[s.first_image].sop_instance_uid}/rendered"))
              for s in series]
    ecgs = list(Instance.objects.filter(study=study, has_waveform=True).order_by("id").values_list("pk", flat=True))
    return images, ecgs
