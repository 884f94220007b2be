"""A later import corrects a visit's values after its report was drafted or signed: the report says
so, checks every save against the corrected values, refuses to sign text written before the
correction, and refuses its letter and FHIR export until an amendment is signed after it."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from clinical.intake.services import import_batch_create, import_batch_run
from clinical.models import Facility, ImportBatch, Observation, User
from reports import services
from reports.models import Report, ReportRevision
from tests.conftest import PASSWORD, Personas
from tests.reports.conftest import WRONG_DRAFT
from tests.reports.test_letter import pdf_text

pytestmark = pytest.mark.django_db

# make_visit (tests/inference/conftest.py): exam date 2024-06-01, 特定健診, HbA1c 6.8 %, SBP 152 mmHg.
HEADER = "受診者番号,受診日,コース,収縮期血圧(mmHg),HbA1c(%)"
Import = Callable[..., ImportBatch]


@pytest.fixture
def correct(tmp_path: Path, personas: Personas, settings: Any) -> Import:
    """Run a correction file through the real import service (as staff of the visit's facility)."""
    settings.VAR_DIR = tmp_path
    counter = iter(range(1, 100))

    def run(report: Report, *, sbp: str = "152", hba1c: str = "6.8", facility: Facility | None = None,
            actor: User | None = None) -> ImportBatch:
        assert report.patient is not None
        path = tmp_path / f"correction-{next(counter)}.csv"
        path.write_text(f"{HEADER}\n{report.patient.mrn},2024-06-01,特定健診,{sbp},{hba1c}\n", encoding="utf-8")
        with path.open("rb") as f:
            batch = import_batch_create(facility=facility or personas.facility_a, file_name=path.name, content=f,
                                        actor=actor or personas.staff_a, enqueue=False)
        import_batch_run(batch_id=batch.pk)
        batch.refresh_from_db()
        assert batch.status == "succeeded", batch.errors
        return batch

    return run


def _head(report: Report) -> ReportRevision:
    return report.revisions.order_by("-number")[0]


def _sign(report: Report, personas: Personas, number: int, confirmed: tuple[str, ...] = ()) -> Any:
    return services.report_sign(report=report, actor=personas.physician_a, revision_number=number,
                                method="password", credential=PASSWORD, confirmed=confirmed)


def _amend(report: Report, personas: Personas, text: str) -> Any:
    return services.report_amend(report=report, actor=personas.physician_a, text=text,
                                 reason="HbA1c の訂正に合わせて修正", method="password", credential=PASSWORD)


def _flagged(revision: ReportRevision) -> list[str]:
    return [i["text"] for i in (revision.grounding or {}).get("issues", [])]


def test_a_correction_after_drafting_is_recorded_on_the_report_and_audited(
        personas: Personas, draft_report: Callable[..., Report], correct: Import, audit_events: Any,
        client_for: Callable[[str], Client]) -> None:
    report = draft_report()
    correct(report, hba1c="7.1")
    report.refresh_from_db()
    assert report.source_changes == {"hba1c": ["6.8", "7.1"]}
    assert report.source_changed_at is not None
    assert report.current_sources["HbA1c"] == "7.1 %"
    assert any("7.1 %" in v for k, v in report.current_sources.items() if k.startswith("判定理由"))
    event = audit_events(kind="update", object_type="reports.report")[-1]
    assert event.object_id == str(report.pk) and event.user_id == personas.staff_a.pk
    assert event.details["changed"] == {"hba1c": ["6.8", "7.1"]} and event.patient_id == report.patient_id
    html = client_for("physician_a").get(f"/reports/{report.pk}/").content.decode()
    banner = html[html.index('id="source-correction"'):].split("</section>")[0]
    assert "元データが訂正されました" in banner and "6.8" in banner and "7.1" in banner
    assert "保存し直してから署名してください" in banner


def test_the_drafts_old_number_is_flagged_on_the_next_save(
        personas: Personas, draft_report: Callable[..., Report], correct: Import) -> None:
    report = draft_report()  # says 収縮期血圧 152 mmHg: true when drafted
    assert _flagged(_head(report)) == []
    correct(report, sbp="148")
    revision = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                      text=_head(report).text + "\n経過観察とします。")
    assert _flagged(revision) == ["152"]
    assert revision.grounding["sources"]["収縮期血圧"] == "148 mmHg"


def test_signing_is_refused_until_the_physician_saves_after_the_correction(
        personas: Personas, draft_report: Callable[..., Report], correct: Import) -> None:
    report = draft_report(WRONG_DRAFT)  # HbA1c 6.3 (wrong against 6.8)
    draft = _head(report)
    fixed = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                   text=draft.text.replace("6.3", "6.8"))
    assert _flagged(fixed) == []
    correct(report, hba1c="7.1")
    with pytest.raises(services.SourcesChanged) as refused:
        _sign(report, personas, fixed.number)
    assert "元データが訂正されました（HbA1c 6.8 → 7.1）" in refused.value.message
    assert not report.signoffs.exists()
    # Saving the same text again is a new revision now: it is checked against 7.1 and flags 6.8.
    again = services.revision_save(report=report, actor=personas.physician_a, base_number=fixed.number,
                                   text=fixed.text)
    assert again.number == fixed.number + 1 and _flagged(again) == ["6.8"]
    with pytest.raises(services.SignRefused) as unconfirmed:
        _sign(report, personas, again.number)
    assert not isinstance(unconfirmed.value, services.SourcesChanged) and unconfirmed.value.unconfirmed
    final = services.revision_save(report=report, actor=personas.physician_a, base_number=again.number,
                                   text=fixed.text.replace("6.8", "7.1"))
    assert _flagged(final) == []
    signoff = _sign(report, personas, final.number)
    assert signoff.revision_id == final.pk


def test_the_review_api_says_why_signing_was_refused(
        personas: Personas, draft_report: Callable[..., Report], correct: Import,
        client_for: Callable[[str], Client]) -> None:
    report = draft_report()
    correct(report, hba1c="7.1")
    response = client_for("physician_a").post(f"/reports/api/{report.pk}/sign/", {
        "revision_number": 1, "method": "password", "credential": PASSWORD}, content_type="application/json")
    assert response.status_code == 400
    assert response.json()["code"] == "sources_changed"
    assert "HbA1c 6.8 → 7.1" in response.json()["error"]


def test_a_correction_after_signing_stops_the_letter_and_fhir_until_an_amendment(
        personas: Personas, draft_report: Callable[..., Report], correct: Import, audit_events: Any,
        client_for: Callable[[str], Client]) -> None:
    report = draft_report(WRONG_DRAFT)
    fixed = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                   text=_head(report).text.replace("6.3", "6.8"))
    _sign(report, personas, fixed.number)
    client = client_for("physician_a")
    assert client.get(f"/reports/{report.pk}/letter.pdf").status_code == 200
    correct(report, hba1c="7.1")

    letter = client.get(f"/reports/{report.pk}/letter.pdf")
    assert letter.status_code == 409
    assert "署名後に元データが訂正されました。署名後の修正が必要です。訂正された項目: HbA1c 6.8 → 7.1。" in (
        letter.content.decode())
    fhir = client.get(f"/reports/{report.pk}/fhir.json")
    assert fhir.status_code == 409
    assert "署名後の修正が必要です" in fhir.json()["issue"][0]["diagnostics"]
    refused = audit_events(kind="export", outcome="failure", object_id=str(report.pk))
    assert [e.details for e in refused] == [{"format": "pdf", "reason": "corrected_after_signing"},
                                           {"format": "fhir", "reason": "corrected_after_signing"}]

    worklist = client.get("/reports/").content.decode()
    row = worklist[worklist.index(f'data-report="{report.pk}"'):].split("</tr>")[0]
    assert "要修正（データ訂正）" in row
    assert f'data-report="{report.pk}"' in client.get("/reports/?status=corrected").content.decode()
    review = client.get(f"/reports/{report.pk}/").content.decode()
    assert "署名後の修正が必要です" in review[review.index('id="source-correction"'):]

    # The amendment is checked against 7.1: the old number must be corrected (or confirmed).
    with pytest.raises(services.SignRefused):
        _amend(report, personas, fixed.text + "\n再確認しました。")
    _amend(report, personas, fixed.text.replace("6.8", "7.1"))
    letter = client.get(f"/reports/{report.pk}/letter.pdf")
    assert letter.status_code == 200
    text = pdf_text(letter.content)
    assert "7.1" in text and "6.8" not in text
    assert client.get(f"/reports/{report.pk}/fhir.json").status_code == 200
    assert f'data-report="{report.pk}"' not in client.get("/reports/").content.decode()


def test_an_amendment_may_keep_the_text_when_the_correction_does_not_touch_it(
        personas: Personas, draft_report: Callable[..., Report], correct: Import,
        client_for: Callable[[str], Client]) -> None:
    report = draft_report()  # mentions SBP only
    _sign(report, personas, 1)
    correct(report, hba1c="6.9")
    _amend(report, personas, _head(report).text)
    assert client_for("physician_a").get(f"/reports/{report.pk}/letter.pdf").status_code == 200


def test_a_correction_that_changes_nothing_does_not_flag(
        personas: Personas, draft_report: Callable[..., Report], correct: Import, audit_events: Any) -> None:
    report = draft_report()
    _sign(report, personas, 1)
    correct(report, hba1c="6.80", sbp="152")
    report.refresh_from_db()
    assert report.source_changed_at is None and report.source_changes == {} and report.current_sources == {}
    assert audit_events(kind="update", object_type="reports.report") == []


def test_a_value_corrected_back_is_no_longer_listed_but_still_asks_for_a_save(
        personas: Personas, draft_report: Callable[..., Report], correct: Import) -> None:
    report = draft_report()
    correct(report, hba1c="7.1", sbp="148")
    correct(report, hba1c="6.8", sbp="149")
    report.refresh_from_db()
    assert report.source_changes == {"sbp": ["152", "149"]}
    with pytest.raises(services.SourcesChanged):
        _sign(report, personas, 1)


def test_a_correction_at_facility_b_leaves_facility_a_alone(
        personas: Personas, draft_report: Callable[..., Report], correct: Import) -> None:
    mine = draft_report()
    theirs = draft_report(facility=personas.facility_b)
    correct(theirs, hba1c="7.4", facility=personas.facility_b, actor=personas.physician_b)
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert theirs.source_changes == {"hba1c": ["6.8", "7.4"]}
    assert mine.source_changed_at is None and mine.current_sources == {}
    assert Observation.objects.get(visit=mine.visit, item="hba1c").value_num == Decimal("6.8")


def test_the_worklist_lists_corrected_reports_without_a_query_per_row(
        personas: Personas, draft_report: Callable[..., Report], correct: Import,
        client_for: Callable[[str], Client], django_assert_num_queries: Any) -> None:
    from tests.reports.test_worklist import WORKLIST_QUERIES

    signed = draft_report()
    _sign(signed, personas, 1)
    unsaved = draft_report()
    for report in (signed, unsaved):
        correct(report, hba1c="7.0")
    draft_report()
    client = client_for("physician_a")
    client.get("/reports/")  # warm per-process caches
    with django_assert_num_queries(WORKLIST_QUERIES):
        html = client.get("/reports/").content.decode()
    rows = {pk: html[html.index(f'data-report="{pk}"'):].split("</tr>")[0] for pk in (signed.pk, unsaved.pk)}
    assert 'data-corrected="amend"' in rows[signed.pk] and "要修正（データ訂正）" in rows[signed.pk]
    assert 'data-corrected="save"' in rows[unsaved.pk]


def test_the_batch_print_leaves_out_a_letter_signed_before_a_correction(
        personas: Personas, draft_report: Callable[..., Report], correct: Import) -> None:
    import datetime as dt

    from reports.printing import print_targets

    report = draft_report()
    _sign(report, personas, 1)
    correct(report, hba1c="7.1")
    targets = print_targets(facility_id=personas.facility_a.pk, exam_date=dt.date(2024, 6, 1))
    assert report.pk not in [r.pk for r, _s in targets.letters]
    assert [s["reason"] for s in targets.skipped if s["report"] == report.pk] == [
        "署名後に元データが訂正されました（署名後の修正が必要です）"]


def test_a_correction_that_lands_while_the_model_is_drafting_flags_the_new_draft(
        personas: Personas, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """The race: the job read the visit, then an import corrected it, then the draft was stored."""
    from inference import runner
    from inference import services as inference_services
    from tests.inference.conftest import make_visit

    canned = request.getfixturevalue("canned")
    monkeypatch.setattr(runner.heartbeat, "add", lambda job_id, held: None)  # see tests/reports/conftest.py
    visit = make_visit(personas.facility_a, mrn="RACE01")
    real_prepare = runner.prepare

    def prepare_then_correct(job: Any) -> Any:
        prepared = real_prepare(job)
        Observation.objects.filter(visit=visit, item="hba1c").update(value_num=Decimal("7.1"))
        return prepared

    monkeypatch.setattr(runner, "prepare", prepare_then_correct)
    job = inference_services.job_create(actor=personas.physician_a, visit=visit, model_version=canned(WRONG_DRAFT))
    assert runner.run_job(job.pk) == "succeeded"
    report = Report.objects.get(visit=visit)
    assert report.source_changed_at is not None
    assert report.source_changes == {"HbA1c": ["6.8 %", "7.1 %"]}
    with pytest.raises(services.SignRefused, match="HbA1c"):
        services.report_sign(report=report, actor=personas.physician_a, revision_number=1, method="password",
                             credential=PASSWORD)
