"""A job from creation to revision, run in-process (the task body itself; no broker)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.db import IntegrityError, connection, transaction
from django.test import Client

from audit.kinds import EventKind
from audit.models import AuditEvent
from clinical.models import CheckupVisit
from inference import queueing, runner, services
from inference.models import FacilityDraftPolicy, InferenceJob, JobStatus, ModelVersion
from reports.models import ImmutableRevision, Report, ReportRevision
from tests.conftest import Personas
from tests.inference.conftest import VALID_DRAFT, make_visit

pytestmark = pytest.mark.django_db


def test_it_drafts_a_visit_with_the_template_and_stores_the_first_revision(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    assert job.status == JobStatus.QUEUED and job.task == "checkup_summary"

    assert runner.run_job(job.pk) == "succeeded"

    job.refresh_from_db()
    assert job.status == JobStatus.SUCCEEDED and job.attempts == 1 and job.error == ""
    assert job.completion_tokens > 0 and job.first_token_at is not None and job.finished_at is not None
    assert job.findings is not None and job.findings["follow_up"]["needed"] is True and "152" in job.partial_text
    revision = ReportRevision.objects.get()
    assert revision.number == 1 and revision.source_job_id == job.pk
    assert revision.author_model_version_id == template_model.pk and revision.author_user_id is None
    assert revision.prompt_version == "checkup_summary-v1"
    assert len(revision.inputs["sha256"]) == 64 and revision.inputs["summary"]["observations"] == 4
    assert revision.reference_data["収縮期血圧"] == "152 mmHg"
    assert revision.grounding["issues"] == []  # the template copies numbers verbatim
    # The sources travel with the draft: a physician's edits are checked against the same data.
    assert revision.grounding["sources"]["収縮期血圧"] == "152 mmHg"
    assert "受診勧奨判定値" in revision.text
    report = revision.report
    assert (report.visit_id, report.kind, report.status, report.facility_id) == (
        visit_a.pk, "checkup_summary", "draft", personas.facility_a.pk)
    events = AuditEvent.objects.filter(object_type="inference.inferencejob").order_by("seq")
    stages = [e.details.get("stage") for e in events]
    assert stages == [None, "succeeded"]
    assert AuditEvent.objects.filter(object_type="reports.reportrevision", object_id=str(revision.pk)).exists()


def test_it_runs_a_job_twice_safely_and_never_makes_a_second_revision(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    assert runner.run_job(job.pk) == "succeeded"
    assert runner.run_job(job.pk) == "not-claimed"  # a redelivered message
    assert ReportRevision.objects.count() == 1


def test_it_refuses_a_second_revision_of_one_job_and_a_repeated_number_in_the_database(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    runner.run_job(job.pk)
    first = ReportRevision.objects.get()
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportRevision.objects.create(report=first.report, number=2, text="x", author_model_version=template_model,
                                      source_job=job)
    with pytest.raises(IntegrityError), transaction.atomic():
        ReportRevision.objects.create(report=first.report, number=1, text="x", author_user=personas.physician_a)


def test_it_keeps_revisions_immutable(personas: Personas, visit_a: CheckupVisit,
                                      template_model: ModelVersion) -> None:
    runner.run_job(services.job_create(actor=personas.physician_a, visit=visit_a).pk)
    revision = ReportRevision.objects.get()
    revision.text = "changed"
    with pytest.raises(ImmutableRevision):
        revision.save()
    with pytest.raises(ImmutableRevision):
        revision.delete()
    if connection.vendor == "postgresql":
        with pytest.raises(Exception, match="immutable"), transaction.atomic():
            ReportRevision.objects.filter(pk=revision.pk).update(text="changed")


def test_it_fails_the_job_with_the_reason_when_the_model_cannot_load(
    personas: Personas, visit_a: CheckupVisit, tmp_path: Any,
) -> None:
    broken = services.model_version_register(name="broken", version="1", engine="transformers",
                                             location=str(tmp_path / "missing"), tasks=["checkup_summary"],
                                             options={"device": "cpu"}, enabled=True)
    job = services.job_create(actor=personas.physician_a, visit=visit_a, model_version=broken)
    assert runner.run_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED
    assert job.error.startswith("モデルを読み込めません") and "checkpoint not found" in job.error
    assert not ReportRevision.objects.exists()
    assert AuditEvent.objects.filter(object_id=str(job.pk), details__stage="model_load", outcome="failure").exists()


MALFORMED = {
    "empty": ("", "empty output"),
    "not_json": ("所見：特になし", "no JSON object"),
    "broken_json": ('{"findings": [}', "invalid JSON"),
    "cut_off": ('{"findings": [{"text": "血圧', "cut off"),
    "wrong_schema": ('{"findings": [], "impression": "異常なし"}', "schema"),
    "wrong_type": ('{"findings": "なし", "impression": "x", "follow_up": {"needed": false, "recommendation": ""}}',
                   "schema: $.findings"),
}


@pytest.mark.parametrize("case", list(MALFORMED))
def test_it_fails_a_malformed_draft_with_the_reason_and_stores_no_report(
    case: str, personas: Personas, visit_a: CheckupVisit, canned: Callable[..., ModelVersion], client_for: Any,
) -> None:
    text, reason = MALFORMED[case]
    job = services.job_create(actor=personas.physician_a, visit=visit_a, model_version=canned(text))
    assert runner.run_job(job.pk) == "failed"
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and reason in job.error and job.error.startswith("下書きの形式が不正です")
    assert job.partial_text == text  # what the model wrote stays visible
    assert not Report.objects.exists() and not ReportRevision.objects.exists()
    page = client_for("physician_a").get(f"/inference/jobs/{job.pk}/")
    assert reason in page.content.decode()


def test_it_flags_numbers_that_are_not_in_the_source_data(
    personas: Personas, visit_a: CheckupVisit, canned: Callable[..., ModelVersion],
) -> None:
    invented = VALID_DRAFT.replace("152", "162")
    job = services.job_create(actor=personas.physician_a, visit=visit_a, model_version=canned(invented))
    assert runner.run_job(job.pk) == "succeeded"
    job.refresh_from_db()
    assert job.flagged
    issues = ReportRevision.objects.get().grounding["issues"]
    assert [i["text"] for i in issues] == ["162"]


def test_it_keeps_shadow_drafts_on_the_job_only(
    personas: Personas, visit_a: CheckupVisit, canned: Callable[..., ModelVersion],
) -> None:
    mv = canned(VALID_DRAFT)
    ModelVersion.objects.filter(pk=mv.pk).update(shadow=True)
    mv.refresh_from_db()
    job = services.job_create(actor=personas.physician_a, visit=visit_a, model_version=mv)
    assert runner.run_job(job.pk) == "succeeded"
    assert not ReportRevision.objects.exists()


def test_it_cancels_a_queued_job(personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    assert services.job_cancel(job=job, actor=personas.physician_a)
    assert runner.run_job(job.pk) == "not-claimed"
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and not ReportRevision.objects.exists()
    assert not services.job_cancel(job=job, actor=personas.physician_a)


def test_it_refuses_a_second_live_job_for_the_same_visit_and_model(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    services.job_create(actor=personas.physician_a, visit=visit_a)
    with pytest.raises(services.JobRefused):
        services.job_create(actor=personas.physician_a, visit=visit_a)


def test_it_refuses_a_visit_without_an_enabled_model(personas: Personas, visit_a: CheckupVisit) -> None:
    with pytest.raises(services.JobRefused):
        services.job_create(actor=personas.physician_a, visit=visit_a)


def test_it_drafts_arriving_visits_on_commit_unless_the_facility_turned_it_off(
    personas: Personas, template_model: ModelVersion, settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.INFERENCE_AUTO_DRAFT = True
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        visit = make_visit(personas.facility_a)
    assert not InferenceJob.objects.exists()  # nothing before commit
    with django_capture_on_commit_callbacks(execute=False) as enqueues:
        for callback in callbacks:
            callback()
    job = InferenceJob.objects.get()
    assert (job.visit_id, job.model_version_id, job.created_by_id) == (visit.pk, template_model.pk, None)
    assert len(enqueues) == 1  # the Celery message, sent after that commit

    FacilityDraftPolicy.objects.create(facility=personas.facility_b, auto_draft_visits=False)
    with django_capture_on_commit_callbacks(execute=True):
        make_visit(personas.facility_b, mrn="B0001")
    assert InferenceJob.objects.count() == 1


def test_an_arrival_inserts_its_jobs_in_few_statements_and_skips_visits_already_drafting(
    personas: Personas, template_model: ModelVersion, settings: Any, django_capture_on_commit_callbacks: Any,
    django_assert_num_queries: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An import of many visits: the jobs' rows in a few INSERTs of growing size (4, 12, 48, …),
    each with its audit events and its jobs' tasks sent together on its commit; a visit with a
    live job is not queued twice, nor one named twice."""
    settings.INFERENCE_AUTO_DRAFT = True
    sent: list[list[tuple[int, str]]] = []
    monkeypatch.setattr(queueing, "send_jobs", lambda jobs: sent.append(list(jobs)))
    visits = [make_visit(personas.facility_a, mrn=f"A{i:04d}") for i in range(5)]
    drafting = services.job_create(actor=personas.physician_a, visit=visits[0])
    # visits, policy, models; per part: the live-job check, savepoint, INSERT, release, the audit
    # append (2: head lock, then the events and the head's new position in one statement), in a
    # savepoint of its own here (the test's transaction): 2 more
    with django_capture_on_commit_callbacks(execute=False) as enqueues:
        with django_assert_num_queries(3 + 2 * 8):  # parts: visits 1–4 (one drafting), 5
            first = services.jobs_create_for_arrival(visit_ids=[v.pk for v in visits])
    InferenceJob.objects.exclude(pk=drafting.pk).delete()
    ids = [v.pk for v in visits] + [make_visit(personas.facility_a, mrn=f"B{i:04d}").pk for i in range(20)]
    with django_capture_on_commit_callbacks(execute=False) as more:
        with django_assert_num_queries(3 + 3 * 8):  # parts: 1–4, 5–16, 17–25
            created = services.jobs_create_for_arrival(visit_ids=[*ids, ids[3]])
    assert len(enqueues) == 2 and len(more) == 3 and len(created) == 24  # one send per transaction
    for callback in [*enqueues, *more]:
        callback()
    # every job once, in the rows' order, on its model's queue; of the first four visits, the one
    # already drafting is skipped
    assert len(first) == 4
    assert sent == [[(j.pk, "default") for j in first[:3]], [(first[3].pk, "default")],
                    [(j.pk, "default") for j in created[:3]], [(j.pk, "default") for j in created[3:15]],
                    [(j.pk, "default") for j in created[15:]]]
    assert sorted(j.visit_id or 0 for j in created) == sorted(ids[1:])
    assert all(j.pk and j.queued_at and j.created_by_id is None for j in created)
    assert InferenceJob.objects.filter(visit=visits[0]).count() == 1
    audited = set(AuditEvent.objects.filter(object_type="inference.inferencejob", kind=EventKind.CREATE,
                                            user_id__isnull=True).values_list("object_id", flat=True))
    assert {str(j.pk) for j in created} <= audited


@pytest.mark.django_db(transaction=True)
def test_an_arrivals_first_jobs_are_committed_and_sent_before_the_rest_are_written(
    personas: Personas, template_model: ModelVersion, settings: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The worker can start on the first jobs while the rest of a large arrival is being written."""
    visits = [make_visit(personas.facility_a, mrn=f"A{i:04d}") for i in range(20)]
    settings.INFERENCE_AUTO_DRAFT = True
    seen: list[tuple[int, int]] = []  # (jobs sent, jobs committed when they were sent)
    monkeypatch.setattr(queueing, "send_jobs", lambda jobs: seen.append((len(jobs), InferenceJob.objects.count())))
    created = services.jobs_create_for_arrival(visit_ids=[v.pk for v in visits])
    assert seen == [(4, 4), (12, 16), (4, 20)]
    assert [j.visit_id for j in created] == [v.pk for v in visits]
    assert AuditEvent.objects.filter(object_type="inference.inferencejob", kind=EventKind.CREATE).count() == 20


def test_a_job_created_between_the_check_and_the_insert_is_skipped_alone(
    personas: Personas, template_model: ModelVersion, settings: Any, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A user's click that commits between an arrival's live-job check and its INSERT makes the
    INSERT fail: each job is then created on its own and only the clicked visit is skipped."""
    settings.INFERENCE_AUTO_DRAFT = True
    visits = [make_visit(personas.facility_a, mrn=f"A{i:04d}") for i in range(3)]
    clicked = services.job_create(actor=personas.physician_a, visit=visits[1])
    monkeypatch.setattr(services, "_live_keys", lambda wanted: set())  # the check ran before the click
    created = services.jobs_create_for_arrival(visit_ids=[v.pk for v in visits])
    assert sorted(j.visit_id or 0 for j in created) == [visits[0].pk, visits[2].pk]
    assert list(InferenceJob.objects.filter(visit=visits[1])) == [clicked]


def test_it_requeues_expired_leases_and_gives_up_after_max_attempts(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from datetime import timedelta

    from django.utils import timezone

    settings.INFERENCE_MAX_ATTEMPTS = 2
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    past = timezone.now() - timedelta(seconds=1)
    # A QUEUED job whose message was lost: sent again.
    InferenceJob.objects.filter(pk=job.pk).update(lease_expires_at=past)
    with django_capture_on_commit_callbacks() as sent:
        assert services.jobs_sweep().resent == [job.pk]
    assert len(sent) == 1
    # A RUNNING job whose worker vanished: back to QUEUED for another worker.
    assert services.job_claim(job_id=job.pk, worker_id="dead:1") is not None
    InferenceJob.objects.filter(pk=job.pk).update(lease_expires_at=past)
    assert services.jobs_sweep().requeued == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.worker_id, job.attempts) == (JobStatus.QUEUED, "", 1)
    # The vanished worker comes back: its writes are refused, it cannot finish the job.
    assert not services.job_progress(job_id=job.pk, worker_id="dead:1", partial_text="x", completion_tokens=1,
                                     prompt_tokens=1, first_token=True)
    assert services.job_claim(job_id=job.pk, worker_id="dead:2") is not None
    InferenceJob.objects.filter(pk=job.pk).update(lease_expires_at=past)
    assert services.jobs_sweep().failed == [job.pk]
    job.refresh_from_db()
    assert job.status == JobStatus.FAILED and "2 回" in job.error


# --- who may do what ----------------------------------------------------------------------------


def test_it_refuses_to_create_watch_or_cancel_a_job_of_another_facility(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, client_for: Any,
) -> None:
    outsider: Client = client_for("physician_b")
    assert outsider.post("/inference/jobs/", {"visit": visit_a.pk}).status_code == 404
    assert not InferenceJob.objects.exists()
    with pytest.raises(services.JobRefused):
        services.job_create(actor=personas.physician_b, visit=visit_a)

    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    assert outsider.get(f"/inference/jobs/{job.pk}/").status_code == 404
    assert outsider.get(f"/inference/jobs/{job.pk}/", HTTP_ACCEPT="application/json").status_code == 404
    assert outsider.post(f"/inference/jobs/{job.pk}/cancel/").status_code == 404
    job.refresh_from_db()
    assert job.status == JobStatus.QUEUED
    denied = AuditEvent.objects.filter(kind="access_denied", username="physician_b")
    assert {e.object_type for e in denied} == {"clinical.checkupvisit", "inference.inferencejob"}
    assert denied.count() == 4


def test_it_lets_staff_of_the_facility_ask_for_a_draft_and_watch_it(
    visit_a: CheckupVisit, template_model: ModelVersion, client_for: Any,
) -> None:
    staff: Client = client_for("staff_a")
    response = staff.post("/inference/jobs/", {"visit": visit_a.pk}, HTTP_ACCEPT="application/json")
    assert response.status_code == 201
    job_id = response.json()["job"]
    runner.run_job(job_id)
    state = staff.get(f"/inference/jobs/{job_id}/", HTTP_ACCEPT="application/json").json()
    assert state["status"] == "succeeded" and state["progress"] == 100 and state["text"].startswith("{")
    page = staff.get(f"/inference/jobs/{job_id}/").content.decode()
    assert "定型文テンプレート（AIモデルではありません）" in page and "job_stream.js" in page


def test_it_shows_the_worklist_in_a_fixed_number_of_queries(
    personas: Personas, template_model: ModelVersion, client_for: Any, django_assert_num_queries: Any,
) -> None:
    physician: Client = client_for("physician_a")
    for i in range(3):
        runner.run_job(services.job_create(actor=personas.physician_a,
                                           visit=make_visit(personas.facility_a, mrn=f"A{i:04d}")).pk)
    physician.get("/inference/worklist/")  # warm the session and permission caches
    # session, user, OTP device, second-factor role check, facility scope, the jobs (one query), the audit
    # event (chain head lock; insert and head update in one statement), the page's menu scope and
    # memberships: none of them per row
    with django_assert_num_queries(9) as few:
        response = physician.get("/inference/worklist/")
    for i in range(3, 10):
        runner.run_job(services.job_create(actor=personas.physician_a,
                                           visit=make_visit(personas.facility_a, mrn=f"A{i:04d}")).pk)
    with django_assert_num_queries(len(few.captured_queries)):
        response = physician.get("/inference/worklist/")
    assert response.content.decode().count('data-job="') == 10
    other: Client = client_for("physician_b")
    assert other.get("/inference/worklist/").content.decode().count('data-job="') == 0


def test_it_shows_the_model_registry_to_administrators_only(template_model: ModelVersion, client_for: Any) -> None:
    assert "AIモデルではありません" in client_for("admin_a").get("/inference/models/").content.decode()
    assert client_for("physician_a").get("/inference/models/").status_code == 403
