"""Writing a validated file: new visits, corrected visits, their observations and judgements, in
the caller's transaction. Brand-new visits take the bulk path (COPY on PostgreSQL); corrections
are upserts, each audited with what changed from what to what."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from django.utils import timezone

from audit.kinds import EventKind
from audit.services import audit_record
from clinical.bulk import allocate_ids, copy_rows, is_postgresql
from clinical.intake.items import BY_KEY
from clinical.intake.table import ParsedVisit
from clinical.judging import Judged, VisitMeta, judge_visits, rulesets_in_force, store_judgements
from clinical.models import CheckupVisit, ImportBatch, Observation, VisitStatus
from clinical.scoping import role_at
from clinical.signals import visits_arrived, visits_corrected

Values = dict[str, tuple[Decimal | None, str]]
OBS_COLUMNS = ("visit_id", "item", "jlac10", "value_num", "value_text", "unit", "source", "source_row")


@dataclass(frozen=True)
class WriteResult:
    visits: int
    created: int
    corrected: int
    observations: int


def write_visits(batch: ImportBatch, visits: list[ParsedVisit],
                 patients: dict[str, tuple[int, str, date]]) -> WriteResult:
    facility = batch.facility
    source = f"{batch.file_name}#{batch.pk}"
    keyed = [((patients[v.mrn][0], v.exam_date, v.course), v) for v in visits]
    dates = {k[1] for k, _v in keyed}
    wanted = {k for k, _v in keyed}
    existing = {
        (pid, d, c): (vid, fasting)
        for vid, pid, d, c, fasting in CheckupVisit.objects.filter(facility=facility, exam_date__in=dates)
        .values_list("id", "patient_id", "exam_date", "course", "fasting")
        if (pid, d, c) in wanted
    }
    new = [(k, v) for k, v in keyed if k not in existing]
    old = [(k, v) for k, v in keyed if k in existing]

    # --- new visits: ids first, judge, then everything in bulk -------------------------------------
    if is_postgresql():
        new_ids = allocate_ids(CheckupVisit, len(new))
    else:
        objs = [CheckupVisit(facility=facility, patient_id=k[0], exam_date=k[1], course=k[2], fasting=v.fasting,
                             status=VisitStatus.MEASURED) for k, v in new]
        CheckupVisit.objects.bulk_create(objs, batch_size=5000)
        new_ids = [o.pk for o in objs]
    metas = [_meta(vid, v, patients) for vid, (_k, v) in zip(new_ids, new, strict=True)]
    rulesets = rulesets_in_force([facility.pk])[facility.pk]
    judged_new = judge_visits(metas, {vid: v.values for vid, (_k, v) in zip(new_ids, new, strict=True)},
                              rulesets=rulesets)
    observations = [(vid, item, BY_KEY[item].jlac10[0], num, text, BY_KEY[item].unit, source, v.row)
                    for vid, (_k, v) in zip(new_ids, new, strict=True) for item, (num, text) in v.values.items()]
    if is_postgresql():
        now = timezone.now()
        follow = {j.visit_id: j.follow_up for j in judged_new}
        copy_rows(CheckupVisit, ("id", "facility_id", "patient_id", "exam_date", "course", "fasting", "status",
                                 "follow_up", "created_at", "updated_at"),
                  ((vid, facility.pk, k[0], k[1], k[2], v.fasting, VisitStatus.SCREENED, follow[vid], now, now)
                   for vid, (k, v) in zip(new_ids, new, strict=True)))
        copy_rows(Observation, OBS_COLUMNS, observations)
    else:
        Observation.objects.bulk_create([Observation(**dict(zip(OBS_COLUMNS, o, strict=True))) for o in observations],
                                        batch_size=5000)
    store_judgements(judged_new, fresh=True)
    if new_ids:
        visits_arrived.send(sender=ImportBatch, visit_ids=new_ids)

    # --- existing visits: only what changed, each change audited ----------------------------------
    corrected = _correct(batch, old, existing, patients, source, rulesets)
    return WriteResult(visits=len(visits), created=len(new), corrected=corrected[0],
                       observations=len(observations) + corrected[1])


def _meta(vid: int, v: ParsedVisit, patients: dict[str, tuple[int, str, date]],
          fasting: bool | None = None) -> VisitMeta:
    _pid, sex, birth = patients[v.mrn]
    return (vid, v.course, v.fasting if v.fasting is not None else fasting, v.exam_date, sex, birth)


def _correct(batch: ImportBatch, old: list[tuple[tuple[int, date, str], ParsedVisit]],
             existing: dict[tuple[int, date, str], tuple[int, bool | None]],
             patients: dict[str, tuple[int, str, date]], source: str,
             rulesets: dict[str, tuple[str, ...]]) -> tuple[int, int]:
    if not old:
        return 0, 0
    before: dict[int, Values] = {}
    for vid, item, num, text in Observation.objects.filter(
            visit_id__in=[existing[k][0] for k, _v in old]).values_list("visit_id", "item", "value_num", "value_text"):
        before.setdefault(vid, {})[item] = (num, text)
    upserts: list[Observation] = []
    metas: list[VisitMeta] = []
    merged: dict[int, Values] = {}
    role = role_at(batch.created_by, batch.facility_id)
    n_corrected = 0
    corrections: dict[int, dict[str, list[str]]] = {}
    for key, v in old:
        vid, fasting = existing[key]
        prior = before.get(vid, {})
        changed: dict[str, list[str]] = {}
        for item, new_value in v.values.items():
            if item in prior and same_value(prior[item], new_value):
                continue
            if item in prior:
                changed[item] = [show_value(prior[item]), show_value(new_value)]
            upserts.append(Observation(visit_id=vid, item=item, jlac10=BY_KEY[item].jlac10[0],
                                       value_num=new_value[0], value_text=new_value[1], unit=BY_KEY[item].unit,
                                       source=source, source_row=v.row))
        if v.fasting is not None and v.fasting != fasting:
            changed["fasting"] = [str(fasting), str(v.fasting)]
            CheckupVisit.objects.filter(id=vid).update(fasting=v.fasting)
        if changed or any(item not in prior for item in v.values):
            metas.append(_meta(vid, v, patients, fasting))
            merged[vid] = {**prior, **v.values}
        if changed:
            n_corrected += 1
            corrections[vid] = changed
            # A corrected value is an audited update of the same visit, never a second visit.
            audit_record(kind=EventKind.UPDATE, user=batch.created_by, role=role, facility_id=batch.facility_id,
                         object_type="clinical.checkupvisit", object_id=vid, patient_id=key[0],
                         details={"changed": changed, "source": source})
    Observation.objects.bulk_create(
        upserts, batch_size=5000, update_conflicts=True, unique_fields=["visit", "item"],
        update_fields=["value_num", "value_text", "unit", "jlac10", "source", "source_row"])
    judged: list[Judged] = judge_visits(metas, merged, rulesets=rulesets)
    store_judgements(judged)
    if corrections:
        # After the re-judgement: receivers rebuild what a report is checked against from the
        # corrected rows. Still inside the import's transaction, so a failed file flags nothing.
        visits_corrected.send(sender=ImportBatch, visit_ids=list(corrections), changes=corrections,
                              actor=batch.created_by)
    return n_corrected, len(upserts)


def same_value(a: tuple[Decimal | None, str], b: tuple[Decimal | None, str]) -> bool:
    # 6.8 and 6.80 are the same measurement; compare numerically, and text exactly.
    if (a[0] is None) != (b[0] is None):
        return False
    return (a[0] is None or Decimal(a[0]) == Decimal(b[0] or 0)) and (a[1] or "") == (b[1] or "")


def show_value(v: tuple[Decimal | None, str]) -> str:
    return v[1] if v[0] is None else format(Decimal(v[0]).normalize(), "f")
