"""Benchmark (issue 3): 110,000 synthetic checkup visits, CSV → validated, written and judged in
PostgreSQL, end to end, against two baselines measured in the same run on the same rows:
a naive per-row ORM import (measured on a sample, extrapolated) and PostgreSQL COPY of the same
visit and observation rows (the practical limit: no validation, no judging). Also prints the
speed of the rule engine alone.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres .venv/bin/python bench/checkup_import.py [N]

It creates and drops its own database `medlmm_bench`. Not a test: it prints figures."""

from __future__ import annotations

import csv
import datetime as dt
import io
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
N = int(sys.argv[1]) if len(sys.argv) > 1 else 110_000
NAIVE_SAMPLE = 1_000
BENCH_DB = "medlmm_bench"
base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
server = base.rsplit("/", 1)[0]
subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=True)
subprocess.run(["psql", f"{server}/postgres", "-qc", f"CREATE DATABASE {BENCH_DB}"], check=True)
os.environ["DATABASE_URL"] = f"{server}/{BENCH_DB}"
os.environ.pop("REDIS_URL", None)
os.environ.setdefault("MEDLMM_VAR_DIR", "/tmp/medlmm-bench-var")
os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

import django  # noqa: E402

django.setup()
from django.core.management import call_command  # noqa: E402
from django.db import connection, transaction  # noqa: E402

from clinical.intake.items import BY_KEY  # noqa: E402
from clinical.intake.services import import_batch_create, import_batch_run  # noqa: E402
from clinical.intake.table import parse_rows, read_rows  # noqa: E402
from clinical.judging import age_on, visit_input  # noqa: E402
from clinical.models import CheckupVisit, Facility, Observation, Patient, User  # noqa: E402
from clinical.screening import judge_many, load_ruleset  # noqa: E402

COLUMNS = ["受診者番号", "受診日", "コース", "空腹時", "身長(cm)", "体重(kg)", "腹囲(cm)", "BMI", "収縮期血圧(mmHg)",
           "拡張期血圧(mmHg)", "中性脂肪(mg/dL)", "HDLコレステロール", "LDLコレステロール", "空腹時血糖", "HbA1c(%)",
           "AST", "ALT", "γ-GT", "クレアチニン", "血色素量", "尿蛋白", "服薬1(血圧)", "服薬2(血糖)", "服薬3(脂質)",
           "喫煙"]


def synth(rng: random.Random, mrn: str) -> list[str]:
    h = min(200.0, max(140.0, rng.gauss(163, 9)))
    w = min(130.0, max(38.0, rng.gauss(62, 11)))
    return [mrn, f"R6.{rng.randint(4, 12)}.{rng.randint(1, 28)}", "特定健診", str(rng.randint(0, 1)), f"{h:.1f}",
            f"{w:.1f}", f"{rng.gauss(84, 9):.1f}", f"{w / (h / 100) ** 2:.1f}", str(int(rng.gauss(128, 16))),
            str(int(rng.gauss(80, 10))), str(max(20, int(rng.lognormvariate(4.7, 0.5)))),
            str(max(25, int(rng.gauss(60, 14)))), str(max(40, int(rng.gauss(120, 30)))),
            str(max(60, int(rng.gauss(98, 14)))),
            f"{rng.gauss(5.6, 0.5):.1f}", str(max(8, int(rng.gauss(24, 8)))), str(max(5, int(rng.gauss(22, 10)))),
            str(int(rng.lognormvariate(3.4, 0.6))), f"{max(0.3, rng.gauss(0.85, 0.2)):.2f}",
            f"{rng.gauss(14, 1.5):.1f}",
            rng.choice(["-", "-", "-", "±", "+", "2+"]), *(rng.choice("0001") for _ in range(3)), rng.choice("001")]


def main() -> None:
    t0 = time.perf_counter()
    call_command("migrate", verbosity=0)
    facility = Facility.objects.create(code="BENCH", name="ベンチ健診センター")
    user = User.objects.create(username="bench", display_name="ベンチ")
    rng = random.Random(110)
    Patient.objects.bulk_create(
        [Patient(facility=facility, mrn=f"B{i:07d}", family_name="山田", given_name="太郎",
                 family_name_kana="ヤマダ",
                 given_name_kana="タロウ", sex=rng.choice("MF"), birth_date=dt.date(1950 + i % 45, 1 + i % 12, 1))
         for i in range(N)], batch_size=10_000)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(COLUMNS)
    for i in range(N):
        writer.writerow(synth(rng, f"B{i:07d}"))
    path = Path(os.environ["MEDLMM_VAR_DIR"]) / f"bench-{N}.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(out.getvalue(), encoding="utf-8")
    print(f"setup: {N:,} examinees and a {path.stat().st_size / 1e6:.1f} MB CSV in {time.perf_counter() - t0:.1f} s")

    # --- ours, end to end (what the Celery task runs) -------------------------------------------
    t = time.perf_counter()
    with path.open("rb") as f:
        batch = import_batch_create(facility=facility, file_name=path.name, content=f, actor=user, enqueue=False)
    import_batch_run(batch_id=batch.pk)
    ours = time.perf_counter() - t
    batch.refresh_from_db()
    assert batch.status == "succeeded", batch.errors[:3]
    n_obs = Observation.objects.count()
    print(f"ours: {N:,} visits, {n_obs:,} observations, judged, in {ours:.1f} s = {N / ours:,.0f} visits/s "
          f"({batch.message})")

    # --- the rule engine alone --------------------------------------------------------------------
    header, rows = read_rows(path)
    parsed = parse_rows(header, rows)
    patients = {mrn: (sex, birth) for mrn, sex, birth in Patient.objects.values_list("mrn", "sex", "birth_date")}
    inputs = [visit_input(i, patients[v.mrn][0], age_on(patients[v.mrn][1], v.exam_date), v.fasting, v.values)
              for i, v in enumerate(parsed.visits)]
    ruleset = load_ruleset("mhlw-2024")
    t = time.perf_counter()
    judge_many(inputs, ruleset)
    judging = time.perf_counter() - t
    print(f"judging alone: {N / judging:,.0f} visits/s (goal ≥ 50,000)")

    # --- baseline: PostgreSQL COPY of the same rows -------------------------------------------
    pid = dict(Patient.objects.values_list("mrn", "id"))
    visit_rows = [(i + 1, facility.pk, pid[v.mrn], v.exam_date, v.course, v.fasting) for i, v in
                  enumerate(parsed.visits)]
    obs_rows = [(i + 1, item, BY_KEY[item].jlac10[0], num, text, BY_KEY[item].unit, "copy", v.row)
                for i, v in enumerate(parsed.visits) for item, (num, text) in v.values.items()]
    _truncate()
    t = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        now = dt.datetime.now(dt.UTC)
        with cursor.cursor.copy("COPY clinical_checkupvisit (id, facility_id, patient_id, exam_date, course, fasting, "
                                "status, follow_up, created_at, updated_at) FROM STDIN") as copy:
            for r in visit_rows:
                copy.write_row((*r, "measured", False, now, now))
        with cursor.cursor.copy("COPY clinical_observation (visit_id, item, jlac10, value_num, value_text, unit, "
                                "source, source_row) FROM STDIN") as copy:
            for o in obs_rows:
                copy.write_row(o)
    copy_s = time.perf_counter() - t
    print(f"baseline COPY (same {N:,} visits + {len(obs_rows):,} observations, no validation, no judging): "
          f"{copy_s:.1f} s = {N / copy_s:,.0f} visits/s")

    # --- baseline: naive per-row ORM import, on a sample -----------------------------------------
    _truncate()
    sample = parsed.visits[:NAIVE_SAMPLE]
    t = time.perf_counter()
    for v in sample:
        with transaction.atomic():
            patient = Patient.objects.get(facility=facility, mrn=v.mrn)
            visit, _ = CheckupVisit.objects.get_or_create(facility=facility, patient=patient, exam_date=v.exam_date,
                                                          course=v.course, defaults={"fasting": v.fasting})
            for item, (num, text) in v.values.items():
                Observation.objects.update_or_create(visit=visit, item=item, defaults={
                    "value_num": num, "value_text": text, "unit": BY_KEY[item].unit, "jlac10": BY_KEY[item].jlac10[0]})
    naive_rate = NAIVE_SAMPLE / (time.perf_counter() - t)
    naive_s = N / naive_rate
    print(f"baseline naive ORM (per row get/get_or_create/update_or_create, no judging; {NAIVE_SAMPLE:,}-row sample): "
          f"{naive_rate:,.0f} visits/s → {naive_s:,.0f} s extrapolated for {N:,}")
    print()
    print(f"RESULT end-to-end {ours:.1f} s for {N:,} visits ({N / ours:,.0f} visits/s; goal ≤ 60 s)")
    print(f"RESULT ratio vs naive ORM: {naive_s / ours:.1f}× faster")
    print(f"RESULT ratio vs COPY (practical limit): {ours / copy_s:.2f}× the COPY time")
    print(f"RESULT judging alone: {N / judging:,.0f} visits/s (goal ≥ 50,000)")
    connection.close()
    subprocess.run(["psql", f"{server}/postgres", "-qc", f"DROP DATABASE IF EXISTS {BENCH_DB}"], check=False)


def _truncate() -> None:
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE clinical_screeningresult, clinical_observation, clinical_checkupvisit CASCADE")


if __name__ == "__main__":
    main()
