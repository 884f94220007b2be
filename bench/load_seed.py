"""Seed the database of the load benchmarks (issue 7): two facilities, the personas, examinees,
checkup visits with observations and screening results, AI-drafted reports (job, report, draft
revision) and a hash-chained audit log, at production volume (1,000,000 visits, 100,000 reports,
1,000,000 audit events by default).

    .venv/bin/python bench/load_seed.py                                   # full volume
    .venv/bin/python bench/load_seed.py --visits 20000 --reports 2000 --audit-events 20000
    .venv/bin/python bench/load_seed.py --sessions-only --out var/bench/load_sessions.json

It drops and recreates its own database (`medlmm_load_bench` unless --db) on the server of
BENCH_PG (postgres://postgres@127.0.0.1:5432), migrates it with manage.py, and bulk-loads with
COPY in chunks. Visits are judged by the real rule engine (`clinical.judging`), so follow-up flags
and screening rows are what an import would have stored. Audit events are chained exactly as
`audit.hashing` does (one `chain_hash` per row, continuing from the chain head), so
`manage.py audit_verify` passes on the seeded log.

`--sessions-only` seeds nothing: it mints logged-in sessions (second factor passed, as
tests/conftest.py `login()` does) in an already seeded database and writes them with sample ids
(visits, patients, users per facility) as JSON; bench/web_load.py and bench/ws_fanout.py call it.
Sessions are signed with the SECRET_KEY of MEDLMM_VAR_DIR, which the servers of those scripts
share. Not a test: it prints figures."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PG = os.environ.get("BENCH_PG", "postgres://postgres@127.0.0.1:5432")
VAR_DIR = os.environ.get("MEDLMM_VAR_DIR", "/tmp/medlmm-load-bench-var")
CHUNK = 20_000  # visits per transaction
AUDIT_CHUNK = 100_000
FACILITIES = (("LOADA", "ベンチ東京健診センター"), ("LOADB", "ベンチ大阪総合病院 健診部"))
PASSWORD = "Bench-Load-Pass-2026"  # noqa: S105  (bench personas; sessions are minted, never logged into)
# Per facility: (username suffix, role, needs TOTP). Physicians and administrators need a second factor.
PERSONAS = (("dr", "physician", True), ("staff", "staff", False), ("admin", "admin", True),
            ("auditor", "auditor", False))
TEMPLATE_MODEL = {"name": "テンプレート下書き", "version": "template-ja-v1", "location": "template-ja-v1"}


def psql(db: str, sql: str) -> None:
    subprocess.run(["psql", f"{PG}/{db}", "-qc", sql], check=True)


def setup_django(db: str, *, pool: bool = False) -> None:
    os.environ["DATABASE_URL"] = f"{PG}/{db}"
    os.environ.pop("REDIS_URL", None)  # seeding sends nothing: no broker, no channel layer
    os.environ["MEDLMM_VAR_DIR"] = VAR_DIR
    os.environ["DB_CONN_MAX_AGE"] = "60"
    if not pool:
        os.environ["DB_POOL_MAX_SIZE"] = "0"
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"
    import django

    django.setup()


def username(code: str, suffix: str) -> str:
    return f"{suffix}_{code[-1].lower()}"


# --- synthetic checkups ------------------------------------------------------------------------

def _d(value: float, places: int = 1) -> Decimal:
    return Decimal(f"{value:.{places}f}")


def _clamp(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))


def synth_values(rng: random.Random, sex: str, age: int, fasting: bool) -> dict[str, tuple[Decimal | None, str]]:
    """One visit's measured items, as `clinical.intake` would store them after normalisation."""
    male = sex == "M"
    h = _clamp(rng.gauss(170 if male else 157, 6), 140, 200)
    w = _clamp(rng.gauss(68 if male else 54, 10), 35, 140)
    cr = _clamp(rng.gauss(0.95 if male else 0.7, 0.18), 0.3, 4.0)
    egfr = _clamp(194 * cr ** -1.094 * max(age, 18) ** -0.287 * (1 if male else 0.739), 5, 150)
    none = ""
    values: dict[str, tuple[Decimal | None, str]] = {
        "height_cm": (_d(h), none), "weight_kg": (_d(w), none), "bmi": (_d(w / (h / 100) ** 2), none),
        "waist_cm": (_d(_clamp(rng.gauss(86 if male else 80, 9), 55, 150)), none),
        "sbp": (_d(_clamp(rng.gauss(118 + 0.4 * (age - 40), 16), 80, 220), 0), none),
        "dbp": (_d(_clamp(rng.gauss(76, 10), 40, 130), 0), none),
        "tg": (_d(_clamp(rng.lognormvariate(4.6, 0.5), 20, 2000), 0), none),
        "hdl": (_d(_clamp(rng.gauss(55 if male else 66, 14), 20, 150), 0), none),
        "ldl": (_d(_clamp(rng.gauss(122, 30), 40, 300), 0), none),
        "hba1c": (_d(_clamp(rng.gauss(5.6, 0.5), 4.0, 12.0)), none),
        "ast": (_d(_clamp(rng.gauss(23, 8), 8, 300), 0), none),
        "alt": (_d(_clamp(rng.gauss(22, 10), 5, 300), 0), none),
        "ggt": (_d(_clamp(rng.lognormvariate(3.3, 0.6), 8, 800), 0), none),
        "creatinine": (_d(cr, 2), none), "egfr": (_d(egfr), none),
        "uric_acid": (_d(_clamp(rng.gauss(6.0 if male else 4.6, 1.2), 1.5, 12), 1), none),
        "hb": (_d(_clamp(rng.gauss(14.8 if male else 13.0, 1.2), 7, 19)), none),
        "urine_protein": (None, rng.choice(("-", "-", "-", "-", "+-", "1+", "2+"))),
        "med_bp": (Decimal(int(rng.random() < 0.15 + 0.004 * max(0, age - 40))), none),
        "med_glucose": (Decimal(int(rng.random() < 0.06)), none),
        "med_lipid": (Decimal(int(rng.random() < 0.1)), none),
        "smoking": (Decimal(int(rng.random() < (0.25 if male else 0.08))), none),
    }
    glucose = _d(_clamp(rng.gauss(98 if fasting else 115, 14), 60, 400), 0)
    values["fbg" if fasting else "rbg"] = (glucose, none)
    return values


class Layout:
    """Where visit i (0-based) belongs, without keeping a million rows in memory: patient i % P,
    the k-th most recent year (k = i // P); patients alternate between the two facilities."""

    def __init__(self, visits: int, patients: int, facility_ids: Sequence[int], seed: int = 7) -> None:
        self.visits, self.patients, self.facility_ids = visits, patients, list(facility_ids)
        rng = random.Random(seed)
        self.sex = [rng.choice("MF") for _ in range(patients)]
        self.birth = [dt.date(1950, 1, 1) + dt.timedelta(days=rng.randrange(0, 365 * 48)) for _ in range(patients)]
        self.course = [self._course(rng, self.birth[p]) for p in range(patients)]

    @staticmethod
    def _course(rng: random.Random, birth: dt.date) -> str:
        r = rng.random()
        if 2025 - birth.year >= 40:
            return "tokutei" if r < 0.5 else ("dock" if r < 0.8 else "teiki")
        return "teiki" if r < 0.7 else "dock"

    def patient_of(self, visit_index: int) -> int:
        return visit_index % self.patients

    def facility_of_patient(self, p: int) -> int:
        return self.facility_ids[p % len(self.facility_ids)]

    def exam_date(self, visit_index: int, rng: random.Random) -> dt.date:
        year = 2025 - visit_index // self.patients
        return dt.date(year, rng.randint(1, 12), rng.randint(1, 28))


# --- generic COPY ----------------------------------------------------------------------------

def copy_dicts(model: Any, rows: Sequence[dict[str, Any]]) -> None:
    """COPY rows given as {attname: value} into the model's table; fields a row leaves out take
    their model default, so a column added later with a default does not break the seeding."""
    from django.db import connection
    from django.db.models import JSONField
    from psycopg.types.json import Jsonb

    if not rows:
        return
    fields = [f for f in model._meta.concrete_fields if not (f.primary_key and f.attname not in rows[0])]
    defaults: dict[str, Any] = {}
    for f in fields:
        if f.attname not in rows[0]:
            if not f.has_default() and not f.null:
                raise RuntimeError(f"{model.__name__}.{f.attname}: no value and no default")
            defaults[f.attname] = f.get_default() if f.has_default() else None
    json_fields = {f.attname for f in fields if isinstance(f, JSONField)}
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor, cursor.cursor.copy(
            f"COPY {model._meta.db_table} ({columns}) FROM STDIN") as copy:
        for row in rows:
            values = []
            for f in fields:
                value = row[f.attname] if f.attname in row else defaults[f.attname]
                if f.attname in json_fields and value is not None:
                    value = Jsonb(value)
                values.append(value)
            copy.write_row(values)


def setval(*models: Any) -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            sql = f"SELECT setval(pg_get_serial_sequence(%s, 'id'), GREATEST((SELECT max(id) FROM {table}), 1))"  # noqa: S608
            cursor.execute(sql, [table])


# --- seeding ------------------------------------------------------------------------------------

def seed_people() -> dict[str, Any]:
    """Facilities, personas (TOTP devices where the role needs a second factor), the template model,
    through the services, as an administrator would create them (so these are audited)."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from audit.context import RequestContext, acting, new_request_id
    from clinical import services
    from inference.services import model_version_register
    from ml.schemas import TASKS

    facilities: dict[str, Any] = {}
    users: dict[str, Any] = {}
    with acting(RequestContext(request_id=new_request_id(), channel="command")):
        for code, name in FACILITIES:
            facility = services.facility_create(code=code, name=name)
            facilities[code] = facility
            for suffix, role, totp in PERSONAS:
                user = services.user_create(username=username(code, suffix), password=PASSWORD,
                                            display_name=f"{role} {code}")
                services.membership_grant(user=user, facility=facility, role=role)
                if totp:
                    TOTPDevice.objects.create(user=user, name="bench", confirmed=True)
                users[user.username] = user
        mv = model_version_register(name=TEMPLATE_MODEL["name"], version=TEMPLATE_MODEL["version"], engine="template",
                                    location=TEMPLATE_MODEL["location"], tasks=list(TASKS),
                                    modalities=["CR", "DX", "OP", "CT", "ECG"],
                                    options={"chunk_chars": 4, "delay": 0.0}, queue="default", enabled=True)
    return {"facilities": facilities, "users": users, "model": mv}


def seed_patients(layout: Layout) -> None:
    from django.db import transaction
    from django.utils import timezone

    from clinical.demo.names import FAMILY, GIVEN_F, GIVEN_M
    from clinical.models import Facility, Patient

    codes = dict(Facility.objects.values_list("id", "code"))
    now = timezone.now()
    rng = random.Random(11)
    for start in range(0, layout.patients, 50_000):
        rows = []
        for p in range(start, min(layout.patients, start + 50_000)):
            family, family_kana = rng.choice(FAMILY)
            given, given_kana = rng.choice(GIVEN_M if layout.sex[p] == "M" else GIVEN_F)
            fid = layout.facility_of_patient(p)
            rows.append({"id": p + 1, "facility_id": fid, "mrn": f"{codes[fid][-1]}{p + 1:08d}",
                         "family_name": family, "given_name": given, "family_name_kana": family_kana,
                         "given_name_kana": given_kana, "sex": layout.sex[p], "birth_date": layout.birth[p],
                         "created_at": now, "updated_at": now})
        with transaction.atomic():
            copy_dicts(Patient, rows)


def seed_visits(layout: Layout, *, reports: int, model: Any, physicians: dict[int, int],
                timings: dict[str, float]) -> tuple[int, int]:
    """Visits with observations and judgements; the first `reports` visits (the most recent year)
    also get a succeeded template job, a report and its draft revision. Returns (observations, reports)."""
    from django.db import transaction
    from django.utils import timezone

    from clinical.bulk import copy_rows
    from clinical.intake.items import BY_KEY
    from clinical.intake.writer import OBS_COLUMNS
    from clinical.judging import judge_visits, store_judgements
    from clinical.models import CheckupVisit, Observation, VisitStatus

    rng = random.Random(1_000_003)
    now = timezone.now()
    n_obs = n_reports = 0
    for start in range(0, layout.visits, CHUNK):
        t = time.perf_counter()
        stop = min(layout.visits, start + CHUNK)
        metas: list[tuple[int, str, bool | None, dt.date, str, dt.date]] = []
        values: dict[int, dict[str, tuple[Decimal | None, str]]] = {}
        visit_rows = []
        for i in range(start, stop):
            p = layout.patient_of(i)
            vid = i + 1
            day = layout.exam_date(i, rng)
            age = day.year - layout.birth[p].year
            fasting = rng.random() < 0.8
            values[vid] = synth_values(rng, layout.sex[p], age, fasting)
            metas.append((vid, layout.course[p], fasting, day, layout.sex[p], layout.birth[p]))
            visit_rows.append((vid, layout.facility_of_patient(p), p + 1, day, layout.course[p], fasting))
        judged = judge_visits(metas, values)
        follow = {j.visit_id: j.follow_up for j in judged}
        gen = time.perf_counter()
        source = f"bench-load-seed.csv#{start // CHUNK + 1}"
        with transaction.atomic():
            copy_rows(CheckupVisit, ("id", "facility_id", "patient_id", "exam_date", "course", "fasting", "status",
                                     "follow_up", "created_at", "updated_at"),
                      ((*r, VisitStatus.SCREENED, follow[r[0]], now, now) for r in visit_rows))
            obs = [(vid, item, BY_KEY[item].jlac10[0], num, text, BY_KEY[item].unit, source, vid - start)
                   for vid, vals in values.items() for item, (num, text) in vals.items()]
            copy_rows(Observation, OBS_COLUMNS, obs)
            store_judgements(judged, fresh=True)
            n_obs += len(obs)
            first_report, last_report = start, min(stop, reports)
            if first_report < last_report:
                _seed_reports(range(first_report, last_report), layout, judged, model, physicians, rng, now)
                n_reports += last_report - first_report
        timings["visits_generate_judge_s"] = timings.get("visits_generate_judge_s", 0) + gen - t
        timings["visits_copy_s"] = timings.get("visits_copy_s", 0) + time.perf_counter() - gen
        if (stop // CHUNK) % 10 == 0 or stop == layout.visits:
            print(f"  visits {stop:,}/{layout.visits:,} ({n_obs:,} observations, {n_reports:,} reports)", flush=True)
    return n_obs, n_reports


def _draft(task: str, reasons: list[str], follow_up: bool) -> tuple[dict[str, Any], str]:
    from ml.schemas import Finding, FollowUp, ParsedDraft, draft_to_text

    findings = [Finding(text=r, location=None, severity="mild", confidence=0.8) for r in reasons[:6]]
    impression = ("受診勧奨判定値を超える項目があります。" if follow_up
                  else "今回の健診では大きな異常は認められませんでした。")
    recommendation = "医療機関を受診してください。" if follow_up else ""
    data = {"findings": [{"text": f.text, "location": f.location, "severity": f.severity, "confidence": f.confidence}
                         for f in findings],
            "impression": impression, "follow_up": {"needed": follow_up, "recommendation": recommendation}}
    parsed = ParsedDraft(task=task, findings=tuple(findings), impression=impression,
                         follow_up=FollowUp(needed=follow_up, recommendation=recommendation), data=data)
    return data, draft_to_text(parsed)


def _seed_reports(indexes: range, layout: Layout, judged: list[Any], model: Any, physicians: dict[int, int],
                  rng: random.Random, now: dt.datetime) -> None:
    from inference.models import InferenceJob, JobStatus
    from reports.models import Priority, Report, ReportRevision, ReportStatus, RevisionKind

    by_visit = {j.visit_id: j for j in judged}
    label = f"{model.name} {model.version} ({model.engine})"
    jobs, reports, revisions = [], [], []
    for i in indexes:
        vid = i + 1
        p = layout.patient_of(i)
        fid = layout.facility_of_patient(p)
        j = by_visit[vid]
        reasons = [reason for row in j.rows for reason in row[4]]
        findings, text = _draft("checkup_summary", reasons, j.follow_up)
        created = now - dt.timedelta(seconds=rng.uniform(0, 90 * 86400))
        issues = ([{"text": "140", "unit": "mmHg", "start": 10, "end": 13, "reason": "not_in_sources",
                    "candidates": []}] if rng.random() < 0.03 else [])
        grounding = {"checked": True, "sources": {}, "issues": issues}
        inputs = {"sha256": uuid.uuid4().hex * 2, "summary": {"visit": vid, "items": len(j.rows)}}
        jobs.append({"id": vid, "facility_id": fid, "patient_id": p + 1, "visit_id": vid, "study_id": None,
                     "model_version_id": model.pk, "task": "checkup_summary", "status": JobStatus.SUCCEEDED,
                     "attempts": 1, "lease_expires_at": None, "worker_id": "bench-seed",
                     "queued_at": created - dt.timedelta(seconds=20), "started_at": created - dt.timedelta(seconds=15),
                     "first_token_at": created - dt.timedelta(seconds=14), "finished_at": created,
                     "prompt_tokens": 900, "completion_tokens": len(text), "partial_text": text, "error": "",
                     "prompt_version": "", "inputs": inputs, "reference_data": {}, "findings": findings,
                     "report_text": text, "grounding": grounding, "created_by_id": None})
        r = rng.random()
        priority = Priority.CRITICAL if r < 0.01 else (Priority.FOLLOW_UP if j.follow_up else Priority.ROUTINE)
        reports.append({"id": vid, "facility_id": fid, "patient_id": p + 1, "visit_id": vid, "study_id": None,
                        "kind": "checkup_summary",
                        "status": ReportStatus.IN_REVIEW if rng.random() < 0.3 else ReportStatus.DRAFT,
                        "priority": int(priority),
                        "assigned_physician_id": physicians[fid] if rng.random() < 0.4 else None,
                        "signed_at": None, "created_at": created, "updated_at": created})
        revisions.append({"id": vid, "report_id": vid, "number": 1, "kind": RevisionKind.DRAFT, "parent_id": None,
                          "amendment_reason": "", "text": text, "findings": findings, "reference_data": {},
                          "grounding": grounding, "inputs": inputs, "prompt_version": "", "author_user_id": None,
                          "author_model_version_id": model.pk, "author_model_label": label, "source_job_id": vid,
                          "created_at": created})
    copy_dicts(InferenceJob, jobs)
    copy_dicts(Report, reports)
    copy_dicts(ReportRevision, revisions)


def seed_audit(count: int, layout: Layout, reports: int, people: dict[str, Any], days: int) -> None:
    """`count` events over the last `days` days, chained after the events the setup wrote, exactly
    as `audit.services.audit_record` chains them (`audit.hashing.chain_hash`)."""
    from django.db import connection, transaction
    from psycopg.types.json import Jsonb

    from audit.hashing import chain_hash
    from audit.models import AuditChainHead, AuditEvent
    from clinical.models import Membership

    roles = {(m.user_id, m.facility_id): m.role for m in Membership.objects.all()}
    by_role: dict[tuple[int, str], Any] = {}
    for user in people["users"].values():
        for (uid, fid), role in roles.items():
            if uid == user.pk:
                by_role[(fid, role)] = user
    all_users = list(people["users"].values())
    fids = layout.facility_ids
    rng = random.Random(424242)
    end = time.time()
    span = days * 86400.0
    step = span / max(count, 1)
    columns = ("seq", "occurred_at", "kind", "outcome", "user_id", "username", "role", "facility_id", "source_ip",
               "request_id", "channel", "object_type", "object_id", "patient_id", "details", "prev_hash", "hash")
    for start in range(0, count, AUDIT_CHUNK):
        stop = min(count, start + AUDIT_CHUNK)
        with transaction.atomic():
            AuditChainHead.objects.bulk_create([AuditChainHead(id=1)], ignore_conflicts=True)
            head = AuditChainHead.objects.select_for_update().get(id=1)
            seq, prev = head.last_seq, head.last_hash
            with connection.cursor() as cursor, cursor.cursor.copy(
                    f"COPY {AuditEvent._meta.db_table} ({', '.join(columns)}) FROM STDIN") as copy:
                for i in range(start, stop):
                    seq += 1
                    when = dt.datetime.fromtimestamp(end - span + (i + rng.random() * 0.9) * step, dt.UTC)
                    fields = _audit_fields(rng, layout, reports, by_role, all_users, fids)
                    fields["seq"] = seq
                    fields["occurred_at"] = when
                    digest = chain_hash(prev, fields)
                    copy.write_row([*(fields[c] if c != "details" else Jsonb(fields[c]) for c in columns[:15]),
                                    prev, digest])
                    prev = digest
            head.last_seq, head.last_hash = seq, prev
            head.save(update_fields=["last_seq", "last_hash"])
        if (stop // AUDIT_CHUNK) % 5 == 0 or stop == count:
            print(f"  audit events {stop:,}/{count:,}", flush=True)


def _audit_fields(rng: random.Random, layout: Layout, reports: int, by_role: dict[tuple[int, str], Any],
                  all_users: list[Any], fids: list[int]) -> dict[str, Any]:
    """One event of the mix a checkup center's day produces: mostly record reads, then searches,
    report edits, logins, audit reviews."""
    r = rng.random()
    fid = rng.choice(fids)
    fields: dict[str, Any] = {"kind": "phi_read", "outcome": "success", "facility_id": fid, "object_type": "",
                              "object_id": "", "patient_id": None, "details": {}, "channel": "web",
                              "request_id": uuid.UUID(int=rng.getrandbits(128)).hex,
                              "source_ip": f"10.{fids.index(fid) + 1}.{rng.randint(0, 15)}.{rng.randint(2, 250)}"}
    if r < 0.5 or (r < 0.8 and not reports):  # a visit page
        i = rng.randrange(layout.visits)
        p = layout.patient_of(i)
        fid = layout.facility_of_patient(p)
        role = "staff" if rng.random() < 0.5 else "physician"
        fields.update(facility_id=fid, object_type="clinical.checkupvisit", object_id=str(i + 1), patient_id=p + 1)
    elif r < 0.62:  # the visit worklist
        role = "staff"
        fields.update(kind="phi_search", facility_id=None, object_type="clinical.checkupvisit",
                      details={"filters": {"follow_up": "True"} if rng.random() < 0.3 else {},
                               "page": rng.randint(1, 5), "results": rng.randint(1000, 500_000)})
    elif r < 0.8:  # a report: read in review, saved (a new revision), or its draft stream watched
        i = rng.randrange(reports)
        p = layout.patient_of(i)
        fid = layout.facility_of_patient(p)
        role = "physician"
        kind, obj, details = rng.choice((
            ("phi_read", "reports.report", {"view": "review"}),
            ("update", "reports.report", {"revision": rng.randint(2, 4), "kind": "edit"}),
            ("phi_read", "inference.inferencejob", {"view": "job_stream"}),
        ))
        fields.update(kind=kind, facility_id=fid, object_type=obj, object_id=str(i + 1), patient_id=p + 1,
                      details=details)
    elif r < 0.95:  # logins, logouts, second factor, failures
        user = rng.choice(all_users)
        kind = rng.choice(("login", "login", "logout", "second_factor", "login_failed"))
        fields.update(kind=kind, facility_id=None, object_type="user", object_id=str(user.pk),
                      user_id=user.pk, username=user.username, role="")
        if kind == "login_failed":
            fields.update(outcome="failure", user_id=None, object_type="", object_id="",
                          details={"reason": "invalid_credentials"})
        return fields
    else:  # an auditor's search
        role = "auditor"
        i = rng.randrange(layout.visits)
        fields.update(kind="phi_search", object_type="audit.auditevent",
                      details={"filters": {"patient_ids": [layout.patient_of(i) + 1]}, "before": None,
                               "results": rng.randint(0, 50)})
    user = by_role[(fields["facility_id"] or fid, role)]
    fields.update(user_id=user.pk, username=user.username, role=role)
    return fields


# --- sessions -----------------------------------------------------------------------------------

def mint_sessions(per_user: int, samples: int) -> dict[str, Any]:
    """Sessions of every persona, logged in and past the second factor (django-otp's device id in
    the session, as `login()` in tests/conftest.py), and sample ids per facility for the clients."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.plugins.otp_totp.models import TOTPDevice

    from clinical.models import Facility, Membership, User

    out: dict[str, Any] = {"cookie_name": settings.SESSION_COOKIE_NAME, "facilities": {}, "sessions": {}}
    for code, _name in FACILITIES:
        facility = Facility.objects.get(code=code)
        visits = _sample(facility.pk, "clinical_checkupvisit", samples)
        patients = _sample(facility.pk, "clinical_patient", samples)
        members = {m.role: m.user for m in Membership.objects.filter(facility=facility).select_related("user")}
        out["facilities"][code] = {
            "id": facility.pk, "visits": visits, "patients": patients,
            "users": {role: {"id": u.pk, "username": u.username} for role, u in members.items()},
        }
    for user in User.objects.filter(memberships__facility__code__in=[c for c, _n in FACILITIES]).distinct():
        device = TOTPDevice.objects.filter(user=user, confirmed=True).first()
        keys = []
        for _ in range(per_user):
            session = SessionStore()
            session[SESSION_KEY] = str(user.pk)
            session[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
            session[HASH_SESSION_KEY] = user.get_session_auth_hash()
            if device is not None:
                session[DEVICE_ID_SESSION_KEY] = device.persistent_id
            session.save()
            keys.append(session.session_key)
        out["sessions"][user.username] = keys
    return out


def _sample(facility_id: int, table: str, n: int) -> list[int]:
    """A uniform random sample of a facility's ids: prefilter at random, then sort only those."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table} WHERE facility_id = %s", [facility_id])  # noqa: S608
        row = cursor.fetchone()
        total = max(1, int(row[0]) if row else 1)
        cursor.execute(f"SELECT id FROM (SELECT id FROM {table} WHERE facility_id = %s AND random() < %s) s "  # noqa: S608
                       "ORDER BY random() LIMIT %s", [facility_id, min(1.0, 2.0 * n / total), n])
        return [r[0] for r in cursor.fetchall()]


def write_sessions(args: argparse.Namespace) -> None:
    data = mint_sessions(args.sessions_per_user, args.samples)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    print(f"sessions for {len(data['sessions'])} users ({args.sessions_per_user} each, second factor passed) "
          f"written to {args.out}; one per user:")
    for user, keys in sorted(data["sessions"].items()):
        print(f"  {user:<10} Cookie: {data['cookie_name']}={keys[0]}")


# --- main ---------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--db", default="medlmm_load_bench")
    parser.add_argument("--visits", type=int, default=1_000_000)
    parser.add_argument("--patients", type=int, default=0, help="default: visits / 5 (five years per examinee)")
    parser.add_argument("--reports", type=int, default=100_000)
    parser.add_argument("--audit-events", type=int, default=1_000_000)
    parser.add_argument("--audit-days", type=int, default=365)
    parser.add_argument("--no-vacuum", action="store_true", help="skip VACUUM ANALYZE at the end")
    parser.add_argument("--sessions-only", action="store_true", help="seed nothing; mint sessions (see above)")
    parser.add_argument("--sessions-per-user", type=int, default=4)
    parser.add_argument("--samples", type=int, default=2000, help="visit and patient ids per facility in the JSON")
    parser.add_argument("--out", default=str(ROOT / "var" / "bench" / "load_sessions.json"))
    args = parser.parse_args(argv)

    if args.sessions_only:
        setup_django(args.db)
        write_sessions(args)
        return
    patients = args.patients or max(1, args.visits // 5)
    if args.reports > args.visits:
        parser.error("--reports cannot exceed --visits (one report per visit)")
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    psql("postgres", f"DROP DATABASE IF EXISTS {args.db} WITH (FORCE)")
    psql("postgres", f"CREATE DATABASE {args.db}")
    env = {**os.environ, "DATABASE_URL": f"{PG}/{args.db}", "MEDLMM_VAR_DIR": VAR_DIR, "DB_CONN_MAX_AGE": "0",
           "DJANGO_SETTINGS_MODULE": "config.settings"}
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True)
    timings["migrate_s"] = time.perf_counter() - t0
    setup_django(args.db)

    from django.db import connection

    from clinical.models import CheckupVisit, Patient
    from inference.models import InferenceJob
    from reports.models import Report, ReportRevision

    t = time.perf_counter()
    people = seed_people()
    facility_ids = [people["facilities"][code].pk for code, _n in FACILITIES]
    physicians = {people["facilities"][code].pk: people["users"][username(code, "dr")].pk for code, _n in FACILITIES}
    layout = Layout(args.visits, patients, facility_ids)
    seed_patients(layout)
    timings["people_patients_s"] = time.perf_counter() - t
    print(f"{len(people['users'])} personas, {patients:,} examinees in {timings['people_patients_s']:.1f} s",
          flush=True)

    t = time.perf_counter()
    n_obs, n_reports = seed_visits(layout, reports=args.reports, model=people["model"], physicians=physicians,
                                   timings=timings)
    timings["visits_reports_s"] = time.perf_counter() - t
    print(f"{args.visits:,} visits, {n_obs:,} observations, {n_reports:,} reports in "
          f"{timings['visits_reports_s']:.1f} s", flush=True)

    t = time.perf_counter()
    seed_audit(args.audit_events, layout, args.reports, people, args.audit_days)
    setval(Patient, CheckupVisit, InferenceJob, Report, ReportRevision)
    timings["audit_s"] = time.perf_counter() - t
    print(f"{args.audit_events:,} chained audit events in {timings['audit_s']:.1f} s", flush=True)
    connection.close()

    t = time.perf_counter()
    if not args.no_vacuum:
        # A steady-state database has been vacuumed and analysed: fresh statistics and visibility maps.
        psql(args.db, "VACUUM (ANALYZE)")
    timings["vacuum_analyze_s"] = time.perf_counter() - t
    timings["total_s"] = time.perf_counter() - t0
    size = subprocess.run(["psql", f"{PG}/{args.db}", "-tAc", f"SELECT pg_size_pretty(pg_database_size('{args.db}'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    summary = {"db": args.db, "visits": args.visits, "patients": patients, "observations": n_obs,
               "reports": n_reports, "audit_events": args.audit_events, "db_size": size,
               "timings_s": {k: round(v, 1) for k, v in timings.items()}}
    out = ROOT / "var" / "bench" / "load_seed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False), encoding="utf-8")
    print(f"RESULT seeded {args.db} ({size}) in {timings['total_s']:.1f} s: "
          + ", ".join(f"{k} {v:.1f}" for k, v in timings.items() if k != "total_s"))
    print(f"verify the audit chain with: DATABASE_URL={PG}/{args.db} .venv/bin/python manage.py audit_verify")
    write_sessions(args)


if __name__ == "__main__":
    main()
