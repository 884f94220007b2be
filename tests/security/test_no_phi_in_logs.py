"""No PHI in logs: the audit trail records who saw whom by id; the application logs carry request
ids and row numbers only. Driven through the paths that log the most: failed logins, a patient
read, a failed import, and a 404 for another facility's patient — all at DEBUG."""

from __future__ import annotations

import datetime as dt
import logging
import traceback
from collections.abc import Callable

import pytest
from django.test import Client

from clinical.models import ImportBatch
from tests.checkups.conftest import HEADER, run_file  # noqa: F401  (the import fixture)
from tests.conftest import Personas
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

BIRTH = dt.date(1961, 2, 3)


def _record_text(record: logging.LogRecord) -> str:
    parts = [record.getMessage(), repr(record.args)]
    if record.exc_info:
        parts.append("".join(traceback.format_exception(*record.exc_info)))
    if record.exc_text:
        parts.append(record.exc_text)
    return "\n".join(parts)


def test_no_patient_name_mrn_or_birth_date_reaches_any_log_record(
    caplog: pytest.LogCaptureFixture, personas: Personas, client_for: Callable[[str], Client],
    run_file: Callable[..., ImportBatch],  # noqa: F811
) -> None:
    mine = PatientFactory.create(facility=personas.facility_a, mrn="PHI-777", family_name="篠原", given_name="玲奈",
                                 family_name_kana="シノハラ", given_name_kana="レイナ", birth_date=BIRTH)
    theirs = PatientFactory.create(facility=personas.facility_b, mrn="PHI-888", family_name="東雲",
                                   given_name="環", family_name_kana="シノノメ", given_name_kana="タマキ",
                                   birth_date=BIRTH)
    caplog.set_level(logging.DEBUG)
    for name in ("django", "django.request", "django.security", "axes", "audit", "clinical", "celery"):
        caplog.set_level(logging.DEBUG, logger=name)

    anonymous = Client()
    anonymous.post("/accounts/login/", {"username": "PHI-777", "password": "篠原玲奈19610203"})
    anonymous.post("/accounts/login/", {"username": "staff_a", "password": "wrong-password-1"})
    physician = client_for("physician_a")
    assert physician.get(f"/patients/{mine.pk}/").status_code == 200
    assert physician.get(f"/api/patients/{mine.pk}/").status_code == 200
    assert physician.get(f"/patients/{theirs.pk}/").status_code == 404
    assert physician.get(f"/api/patients/{theirs.pk}/").status_code == 404
    batch = run_file(HEADER + "\nPHI-777,令和6年13月40日,特定健診,1,９０,26.1,１４２,88,160,45,6.8,25,（＋）,1\n"
                     "PHI-888,R6.4.2,特定健診,0,80,22.0,118,70,120,60,5.4,未実施,(-),0\n")
    assert batch.status != "succeeded"

    assert caplog.records, "the scenario should have produced some log records"
    secrets = {"篠原", "玲奈", "シノハラ", "レイナ", "東雲", "シノノメ", "タマキ", "PHI-777", "PHI-888",
               "1961-02-03", "19610203", "1961/02/03", "昭和36年"}
    leaks = [(r.name, s) for r in caplog.records for s in secrets if s in _record_text(r)]
    assert leaks == []
