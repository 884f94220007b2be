"""Reads for the AI quality dashboard: what physicians did with each model version's drafts.

Numbers come from ReportQuality rows (written at each sign-off, reports/quality.py) and, for the
draft counts, from the model-written revisions. Shadow versions never reach physicians, so they
are compared on the same visits/studies: the distance from the shadow's draft to the text the
physician signed, against the distance from the draft of the version in force."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncWeek

from inference.models import InferenceJob, JobStatus, ModelVersion
from ml.textdiff import edit_distance
from reports.models import Report, ReportQuality, ReportRevision, ReportStatus, RevisionKind, SignOff

SHADOW_SAMPLE = 500  # most recent comparable targets per shadow version; enough for a stable mean


@dataclass
class ModelRow:
    model_version: ModelVersion
    task: str
    drafts: int = 0
    signed: int = 0
    signed_without_edits: int = 0
    mean_edit_distance: float | None = None
    sentences_kept: int = 0
    sentences_edited: int = 0
    sentences_deleted: int = 0
    sentences_added: int = 0
    grounding_warnings: int = 0
    median_seconds_to_sign: float | None = None

    @property
    def unedited_share(self) -> float | None:
        return self.signed_without_edits / self.signed if self.signed else None

    @property
    def kept_share(self) -> float | None:
        total = self.sentences_kept + self.sentences_edited + self.sentences_deleted
        return self.sentences_kept / total if total else None


@dataclass
class WeekPoint:
    week: datetime
    signed: int
    mean_edit_distance: float
    unedited_share: float


@dataclass
class ShadowRow:
    shadow: ModelVersion
    task: str
    compared: int = 0
    shadow_mean_distance: float | None = None
    in_force_mean_distance: float | None = None
    shadow_closer: int = 0
    examples: list[int] = field(default_factory=list)  # report ids, for drilling down


def _quality(facility_ids: Sequence[int], since: datetime | None, until: datetime | None) -> Q:
    q = Q(facility_id__in=facility_ids, is_amendment=False, model_version__isnull=False)
    if since:
        q &= Q(signed_at__gte=since)
    if until:
        q &= Q(signed_at__lt=until)
    return q


def model_rows(facility_ids: Sequence[int], *, since: datetime | None = None,
               until: datetime | None = None) -> list[ModelRow]:
    """One row per (model version, task): drafts written, what happened at sign-off."""
    drafts_q = Q(report__facility_id__in=facility_ids, kind=RevisionKind.DRAFT, author_model_version__isnull=False)
    if since:
        drafts_q &= Q(created_at__gte=since)
    if until:
        drafts_q &= Q(created_at__lt=until)
    drafts = {(r["author_model_version"], r["report__kind"]): r["n"] for r in
              ReportRevision.objects.filter(drafts_q).values("author_model_version", "report__kind")
              .annotate(n=Count("id"))}
    signed = {(r["model_version"], r["task"]): r for r in
              ReportQuality.objects.filter(_quality(facility_ids, since, until)).values("model_version", "task")
              .annotate(n=Count("id"), unedited=Count("id", filter=Q(edit_distance=0)), dist=Avg("edit_distance"),
                        kept=Sum("sentences_kept"), edited=Sum("sentences_edited"),
                        deleted=Sum("sentences_deleted"), added=Sum("sentences_added"),
                        warnings=Sum("grounding_warnings"))}
    seconds: dict[tuple[int, str], list[float]] = defaultdict(list)
    timed = ReportQuality.objects.filter(_quality(facility_ids, since, until), seconds_to_sign__isnull=False)
    for mv, task, s in timed.values_list("model_version", "task", "seconds_to_sign"):
        if s is not None:
            seconds[(mv, task)].append(s)
    keys = sorted(set(drafts) | set(signed), key=lambda k: (k[1], k[0]))
    versions = ModelVersion.objects.in_bulk([k[0] for k in keys])
    rows = []
    for key in keys:
        row = ModelRow(model_version=versions[key[0]], task=key[1], drafts=drafts.get(key, 0))
        agg = signed.get(key)
        if agg:
            row.signed, row.signed_without_edits = agg["n"], agg["unedited"]
            row.mean_edit_distance = float(agg["dist"]) if agg["dist"] is not None else None
            row.sentences_kept, row.sentences_edited = agg["kept"] or 0, agg["edited"] or 0
            row.sentences_deleted, row.sentences_added = agg["deleted"] or 0, agg["added"] or 0
            row.grounding_warnings = agg["warnings"] or 0
        if seconds.get(key):
            row.median_seconds_to_sign = statistics.median(seconds[key])
        rows.append(row)
    return rows


def weekly(facility_ids: Sequence[int], *, since: datetime | None = None,
           until: datetime | None = None) -> dict[tuple[int, str], list[WeekPoint]]:
    """Per (model version, task), per week of signing: signed count, mean edit distance, unedited share."""
    series: dict[tuple[int, str], list[WeekPoint]] = defaultdict(list)
    rows = (ReportQuality.objects.filter(_quality(facility_ids, since, until))
            .annotate(week=TruncWeek("signed_at")).values("model_version", "task", "week")
            .annotate(n=Count("id"), dist=Avg("edit_distance"), unedited=Count("id", filter=Q(edit_distance=0)))
            .order_by("model_version", "task", "week"))
    for r in rows:
        series[(r["model_version"], r["task"])].append(
            WeekPoint(r["week"], r["n"], float(r["dist"] or 0), r["unedited"] / r["n"] if r["n"] else 0.0))
    return dict(series)


def shadow_rows(facility_ids: Sequence[int]) -> list[ShadowRow]:
    """Each shadow version's drafts against the text the physician first signed for the same
    visit/study and task, beside the draft the physician actually started from. Five queries per
    shadow version, whatever the sample size."""
    out: list[ShadowRow] = []
    shadows = ModelVersion.objects.filter(shadow=True, jobs__facility_id__in=facility_ids).distinct()
    for shadow in shadows.order_by("name", "version"):
        jobs = list(InferenceJob.objects.filter(model_version=shadow, status=JobStatus.SUCCEEDED,
                                                facility_id__in=facility_ids)
                    .exclude(report_text="").order_by("-finished_at")
                    .values_list("visit_id", "study_id", "task", "report_text")[: SHADOW_SAMPLE * 4])
        signed = ReportStatus.SIGNED, ReportStatus.AMENDED
        reports = Report.objects.filter(Q(visit_id__in={j[0] for j in jobs if j[0]})
                                        | Q(study_id__in={j[1] for j in jobs if j[1]}),
                                        status__in=signed, facility_id__in=facility_ids)
        by_target = {(r.visit_id, r.study_id, r.kind): r.pk for r in reports}
        finals = {s.report_id: s.revision.text for s in
                  SignOff.objects.filter(report_id__in=by_target.values(), amends__isnull=True)
                  .select_related("revision")}
        drafts = {r.report_id: r.text for r in
                  ReportRevision.objects.filter(report_id__in=by_target.values(), kind=RevisionKind.DRAFT)
                  .order_by("report_id", "-number")}  # the last dict entry wins: the first draft
        pairs: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for visit_id, study_id, task, text in jobs:
            report_id = by_target.get((visit_id, None, task) if visit_id else (None, study_id, task))
            if report_id is None or report_id not in finals or report_id not in drafts:
                continue
            if len(pairs[task]) < SHADOW_SAMPLE:
                final = finals[report_id]
                pairs[task].append((report_id, edit_distance(text, final), edit_distance(drafts[report_id], final)))
        for task, items in sorted(pairs.items()):
            out.append(ShadowRow(
                shadow=shadow, task=task, compared=len(items),
                shadow_mean_distance=statistics.fmean(i[1] for i in items),
                in_force_mean_distance=statistics.fmean(i[2] for i in items),
                shadow_closer=sum(1 for i in items if i[1] < i[2]), examples=[i[0] for i in items[:5]]))
    return out
