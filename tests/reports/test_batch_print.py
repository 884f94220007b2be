"""Batch printing of a day's result letters: one task renders every signed letter of the day into
one PDF and lists what it left out and why; the job row carries the progress the page polls;
scoped to the staff of the facility and audited per letter and per download."""

from __future__ import annotations

import datetime as dt
import hashlib
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from clinical import services as clinical_services
from clinical.models import CheckupVisit, Patient, Role
from reports import printing, services
from reports.models import PrintBatch, PrintStatus, Report
from reports.tasks import print_batch
from tests.conftest import PASSWORD, Personas, login
from tests.inference.conftest import make_visit
from tests.reports.test_letter import pdf_text

pytestmark = pytest.mark.django_db

DAY = dt.date(2024, 6, 1)


def _rename(visit: CheckupVisit, family: str, given: str, kana: str) -> None:
    Patient.objects.filter(visits=visit).update(family_name=family, given_name=given, family_name_kana=kana)


def _sign(report: Report, personas: Personas, facility: str = "a") -> None:
    services.report_sign(report=report, actor=getattr(personas, f"physician_{facility}"), revision_number=1,
                         method="password", credential=PASSWORD)


@pytest.fixture
def day(personas: Personas, draft_report: Callable[..., Report], settings: Any, tmp_path: Path) -> dict[str, Any]:
    """Facility A on DAY: two signed letters (高橋, 阿部), a draft (伊藤) and a visit with no report
    (上田); plus a signed letter of another day and one of facility B, neither of which belongs."""
    settings.VAR_DIR = tmp_path
    takahashi, abe, ito = draft_report(), draft_report(), draft_report()
    for report, (family, given, kana) in ((takahashi, ("髙橋", "健一", "タカハシ")), (abe, ("阿部", "花子", "アベ")),
                                          (ito, ("伊藤", "次郎", "イトウ"))):
        assert report.visit is not None
        _rename(report.visit, family, given, kana)
    _sign(takahashi, personas)
    _sign(abe, personas)
    ueda = make_visit(personas.facility_a, mrn="U0001")
    _rename(ueda, "上田", "三郎", "ウエダ")
    other_day = draft_report()
    assert other_day.visit is not None
    CheckupVisit.objects.filter(pk=other_day.visit.pk).update(exam_date=DAY + dt.timedelta(days=1))
    _rename(other_day.visit, "翌日", "四郎", "ヨクジツ")
    _sign(other_day, personas)
    facility_b = draft_report(facility=personas.facility_b)
    assert facility_b.visit is not None
    _rename(facility_b.visit, "別院", "五郎", "ベツイン")
    _sign(facility_b, personas, "b")
    return {"takahashi": takahashi, "abe": abe, "ito": ito, "ueda": ueda}


def test_it_takes_the_days_signed_letters_and_lists_every_visit_it_leaves_out(
        personas: Personas, day: dict[str, Any]) -> None:
    targets = printing.print_targets(facility_id=personas.facility_a.pk, exam_date=DAY)
    assert [r.pk for r, _s in targets.letters] == [day["abe"].pk, day["takahashi"].pk]  # by kana: アベ, タカハシ
    reasons = {s["patient"]: s["reason"] for s in targets.skipped}
    assert reasons == {"伊藤 次郎": "未署名です（下書き）", "上田 三郎": "所見がまだ作成されていません"}
    ito = next(s for s in targets.skipped if s["patient"] == "伊藤 次郎")
    assert ito["report"] == day["ito"].pk and ito["kind"] == "健診総合所見" and ito["visit"] == day["ito"].visit_id


def test_choosing_the_letters_takes_three_queries_however_many_visits(
        personas: Personas, day: dict[str, Any], django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(3):  # visits, their reports, the reports' sign-offs
        printing.print_targets(facility_id=personas.facility_a.pk, exam_date=DAY)


def test_a_day_with_nothing_signed_finishes_with_nothing_to_download(personas: Personas, day: dict[str, Any]) -> None:
    batch = printing.print_batch_create(actor=personas.staff_a, facility=personas.facility_a,
                                        exam_date=DAY - dt.timedelta(days=1), enqueue=False)
    done = printing.print_batch_run(batch_id=batch.pk)
    assert done is not None and done.status == PrintStatus.SUCCEEDED and (done.total, done.printed) == (0, 0)
    assert done.percent == 100 and printing.batch_file(done) is None
    assert login(Client(), personas.staff_a).get(f"/reports/print/{batch.pk}/download").status_code == 409


def test_the_task_renders_one_pdf_and_keeps_its_progress_on_the_row(
        personas: Personas, day: dict[str, Any], audit_events: Any) -> None:
    batch = printing.print_batch_create(actor=personas.staff_a, facility=personas.facility_a, exam_date=DAY,
                                        enqueue=False)
    started = time.perf_counter()
    assert print_batch(batch.pk) == "succeeded"  # the task body, called in-process
    elapsed = time.perf_counter() - started
    batch.refresh_from_db()
    assert (batch.total, batch.processed, batch.printed, batch.percent) == (2, 2, 2, 100)
    assert batch.report_ids == [day["abe"].pk, day["takahashi"].pk] and len(batch.skipped) == 2
    assert "2 件の報告書を作成しました" in batch.message
    path = printing.batch_file(batch)
    assert path is not None and path.stat().st_size == batch.file_bytes
    text = pdf_text(path.read_bytes())
    assert text.index("阿部 花子") < text.index("髙橋 健一")
    assert "伊藤" not in text and "上田" not in text and "翌日" not in text and "別院" not in text
    assert text.count("1 / 1") == 2  # each letter numbers its own pages
    exports = audit_events(kind="export", object_type="reports.report")
    assert sorted(e.patient_id for e in exports) == sorted([day["abe"].patient_id, day["takahashi"].patient_id])
    assert all(e.user_id == personas.staff_a.pk and e.details["batch"] == batch.pk for e in exports)
    print(f"batch print of 2 letters: {elapsed:.2f} s")
    # A second delivery of the same message finds the row finished and does nothing.
    assert print_batch(batch.pk) == "not-claimed"
    assert len(audit_events(kind="export", object_type="reports.report")) == 2


def test_the_page_polls_the_row_and_the_download_is_audited(
        personas: Personas, day: dict[str, Any], audit_events: Any,
        django_capture_on_commit_callbacks: Any) -> None:
    client = login(Client(), personas.staff_a)
    assert client.get("/reports/print/").status_code == 200
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = client.post("/reports/print/", {"facility": personas.facility_a.pk, "exam_date": "2024-06-01"})
    batch = PrintBatch.objects.get()
    assert response.status_code == 302 and response["Location"] == f"/reports/print/{batch.pk}/"
    assert len(callbacks) == 1  # the task is sent on commit
    assert audit_events(kind="create", object_type="reports.printbatch")[0].details["exam_date"] == "2024-06-01"
    queued = client.get(f"/reports/print/{batch.pk}/", HTTP_ACCEPT="application/json").json()
    assert (queued["status"], queued["finished"]) == ("queued", False)
    assert client.get(f"/reports/print/{batch.pk}/download").status_code == 409
    printing.print_batch_run(batch_id=batch.pk)
    state = client.get(f"/reports/print/{batch.pk}/", HTTP_ACCEPT="application/json").json()
    assert (state["status"], state["percent"], state["printed"], state["skipped"]) == ("succeeded", 100, 2, 2)
    page = client.get(f"/reports/print/{batch.pk}/").content.decode()
    assert audit_events(kind="phi_read", object_type="reports.printbatch")[-1].object_id == str(batch.pk)
    assert "未署名です（下書き）" in page and "所見がまだ作成されていません" in page and "/download" in page
    download = client.get(f"/reports/print/{batch.pk}/download")
    assert download.status_code == 200 and download["Content-Type"] == "application/pdf"
    assert b"".join(download.streaming_content).startswith(b"%PDF-")  # type: ignore[attr-defined]
    event = audit_events(kind="export", object_type="reports.printbatch")[-1]
    assert event.user_id == personas.staff_a.pk and event.details["reports"] == [day["abe"].pk, day["takahashi"].pk]


def test_a_large_day_is_written_as_several_pdfs_in_one_zip(
        personas: Personas, day: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(printing, "LETTERS_PER_PART", 1)
    batch = printing.print_batch_create(actor=personas.staff_a, facility=personas.facility_a, exam_date=DAY,
                                        enqueue=False)
    done = printing.print_batch_run(batch_id=batch.pk)
    assert done is not None and done.is_zip and done.processed == done.total == 2
    path = printing.batch_file(done)
    assert path is not None and hashlib.sha256(path.read_bytes()).hexdigest() == done.file_sha256
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        assert names == ["20240601-1of2.pdf", "20240601-2of2.pdf"]
        assert "阿部 花子" in pdf_text(archive.read(names[0])) and "髙橋 健一" in pdf_text(archive.read(names[1]))
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name]  # the parts were folded into the zip
    download = login(Client(), personas.staff_a).get(f"/reports/print/{batch.pk}/download")
    assert download["Content-Type"] == "application/zip" and ".zip" in download["Content-Disposition"]


def test_only_staff_of_the_facility_may_print_or_see_a_batch(personas: Personas, day: dict[str, Any]) -> None:
    batch = printing.print_batch_create(actor=personas.admin_a, facility=personas.facility_a, exam_date=DAY,
                                        enqueue=False)
    staff_b = clinical_services.user_create(username="staff_b", password=PASSWORD)
    clinical_services.membership_grant(user=staff_b, facility=personas.facility_b, role=Role.STAFF)
    for user in (personas.physician_a, personas.auditor_a):
        assert login(Client(), user).get("/reports/print/").status_code == 404
    outsider = login(Client(), staff_b)
    assert outsider.get(f"/reports/print/{batch.pk}/").status_code == 404
    assert outsider.get(f"/reports/print/{batch.pk}/download").status_code == 404
    response = outsider.post("/reports/print/", {"facility": personas.facility_a.pk, "exam_date": "2024-06-01"})
    assert response.status_code == 200 and PrintBatch.objects.count() == 1  # A is not a choice for B's staff
    with pytest.raises(printing.PrintRefused):
        printing.print_batch_create(actor=personas.physician_a, facility=personas.facility_a, exam_date=DAY)


def test_a_future_date_is_refused_with_a_message(personas: Personas) -> None:
    tomorrow = timezone.localdate() + dt.timedelta(days=1)
    response = login(Client(), personas.staff_a).post(
        "/reports/print/", {"facility": personas.facility_a.pk, "exam_date": tomorrow.isoformat()})
    assert response.status_code == 200 and "未来の受診日は選べません" in response.content.decode()
    assert not PrintBatch.objects.exists()


def test_a_claim_left_by_a_dead_worker_is_taken_over(personas: Personas, day: dict[str, Any]) -> None:
    batch = printing.print_batch_create(actor=personas.staff_a, facility=personas.facility_a, exam_date=DAY,
                                        enqueue=False)
    PrintBatch.objects.filter(pk=batch.pk).update(status=PrintStatus.RUNNING, claimed_at=timezone.now())
    assert printing.print_batch_run(batch_id=batch.pk) is None  # a live worker has it
    PrintBatch.objects.filter(pk=batch.pk).update(claimed_at=timezone.now() - dt.timedelta(hours=1))
    done = printing.print_batch_run(batch_id=batch.pk)
    assert done is not None and done.status == PrintStatus.SUCCEEDED


def test_a_rendering_failure_is_kept_on_the_row(
        personas: Personas, day: dict[str, Any], monkeypatch: pytest.MonkeyPatch, audit_events: Any) -> None:
    def broken(*args: Any, **kwargs: Any) -> bytes:
        raise OSError("disk full")

    monkeypatch.setattr(printing, "letters_pdf", broken)
    batch = printing.print_batch_create(actor=personas.staff_a, facility=personas.facility_a, exam_date=DAY,
                                        enqueue=False)
    printing.print_batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == PrintStatus.FAILED and "OSError" in batch.message and printing.batch_file(batch) is None
    assert audit_events(kind="export", outcome="failure")[-1].object_id == str(batch.pk)


def test_staff_see_the_batch_print_link_and_physicians_do_not(personas: Personas) -> None:
    staff, physician = login(Client(), personas.staff_a).get("/"), login(Client(), personas.physician_a).get("/")
    assert staff.status_code == physician.status_code == 200
    assert 'href="/reports/print/"' in staff.content.decode()
    assert 'href="/reports/print/"' not in physician.content.decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_prints_the_day_queued_on_commit(
        personas: Personas, day: dict[str, Any], celery_worker_thread: None) -> None:
    client = login(Client(), personas.staff_a)
    response = client.post("/reports/print/", {"facility": personas.facility_a.pk, "exam_date": "2024-06-01"})
    assert response.status_code == 302
    batch = PrintBatch.objects.get()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        state = client.get(f"/reports/print/{batch.pk}/", HTTP_ACCEPT="application/json").json()
        if state["finished"]:
            break
        time.sleep(0.25)
    assert state["status"] == "succeeded" and state["printed"] == 2
    assert client.get(f"/reports/print/{batch.pk}/download").status_code == 200
