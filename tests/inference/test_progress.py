"""A worker's progress writes: the partial texts of all the jobs it streams in one statement."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.utils import timezone

from clinical.models import CheckupVisit
from inference import services
from inference.models import InferenceJob, JobStatus, ModelVersion
from tests.conftest import Personas
from tests.inference.conftest import make_visit

pytestmark = pytest.mark.django_db


def test_one_statement_writes_every_running_jobs_text_and_names_the_jobs_no_longer_this_workers(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    jobs = [services.job_create(actor=personas.physician_a, visit=v)
            for v in (visit_a, *(make_visit(personas.facility_a, mrn=f"P{i}") for i in range(3)))]
    for job in jobs:
        assert services.job_claim(job_id=job.pk, worker_id="w:1")
    services.job_cancel(job=jobs[2], actor=personas.physician_a)  # a physician stopped it
    InferenceJob.objects.filter(pk=jobs[3].pk).update(worker_id="w:2")  # the sweeper gave it to another worker
    first = timezone.now() - dt.timedelta(seconds=3)
    progress = {job.pk: services.JobProgress(worker_id="w:1", partial_text=f"所見{i}", completion_tokens=i + 1,
                                             prompt_tokens=90, first_token_at=first) for i, job in enumerate(jobs)}

    with django_assert_num_queries(1):  # type: ignore[operator]
        lost = services.jobs_progress(progress=progress)

    assert lost == {jobs[2].pk, jobs[3].pk}
    rows = {j.pk: j for j in InferenceJob.objects.filter(pk__in=[j.pk for j in jobs])}
    for i in (0, 1):
        row = rows[jobs[i].pk]
        assert (row.partial_text, row.completion_tokens, row.prompt_tokens) == (f"所見{i}", i + 1, 90)
        assert row.first_token_at == first
        assert row.lease_expires_at is not None and row.lease_expires_at > timezone.now()
    assert rows[jobs[2].pk].status == JobStatus.CANCELLED and rows[jobs[2].pk].partial_text == ""
    assert rows[jobs[3].pk].partial_text == ""


def test_the_embedded_demos_statement_per_job_writes_the_same_and_names_the_same_jobs(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """SQLite (make run) writes progress a statement per job (`_jobs_progress_each`): same texts,
    same first-token rule, same lost jobs as the PostgreSQL statement."""
    jobs = [services.job_create(actor=personas.physician_a, visit=v)
            for v in (visit_a, make_visit(personas.facility_a, mrn="P1"), make_visit(personas.facility_a, mrn="P2"))]
    for job in jobs:
        assert services.job_claim(job_id=job.pk, worker_id="w:1")
    services.job_cancel(job=jobs[2], actor=personas.physician_a)
    first = timezone.now() - dt.timedelta(seconds=3)
    lost = services._jobs_progress_each({
        jobs[0].pk: services.JobProgress("w:1", "所見", 2, 90, first_token_at=first),
        jobs[1].pk: services.JobProgress("w:1"),  # a heartbeat: lease only
        jobs[2].pk: services.JobProgress("w:1", "x", 1, 90),
        -1: services.JobProgress("w:1", "x", 1, 90),  # deleted
    })
    assert lost == {jobs[2].pk, -1}
    services._jobs_progress_each({jobs[0].pk: services.JobProgress("w:1", "所見あり", 4, 90,
                                                                   first_token_at=timezone.now())})
    rows = {j.pk: j for j in InferenceJob.objects.filter(pk__in=[j.pk for j in jobs])}
    assert (rows[jobs[0].pk].partial_text, rows[jobs[0].pk].completion_tokens) == ("所見あり", 4)
    assert rows[jobs[0].pk].first_token_at == first  # the first one stays
    assert rows[jobs[1].pk].partial_text == "" and rows[jobs[1].pk].lease_expires_at > timezone.now()  # type: ignore[operator]
    assert rows[jobs[2].pk].partial_text == ""


def test_a_later_write_keeps_the_time_of_the_first_token(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    services.job_claim(job_id=job.pk, worker_id="w:1")
    first = timezone.now() - dt.timedelta(seconds=5)
    services.jobs_progress(progress={job.pk: services.JobProgress("w:1", "胸部", 1, 90, first_token_at=first)})
    assert services.jobs_progress(progress={job.pk: services.JobProgress("w:1", "胸部X線", 3, 90)}) == set()
    job.refresh_from_db()
    assert (job.partial_text, job.first_token_at) == ("胸部X線", first)


def test_a_draft_that_fails_its_parse_before_any_progress_write_keeps_what_the_model_read(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """A short draft can end before the worker's first progress tick: the final write carries the
    counts itself (a CI run once found a failed job with prompt_tokens 0)."""
    from inference.inputs import prepare

    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    claimed = services.job_claim(job_id=job.pk, worker_id="w:1")
    assert claimed is not None
    ended = services.job_finish(job_id=job.pk, worker_id="w:1", text="所見なし（JSONではない）", prompt_tokens=321,
                                completion_tokens=12, finish_reason="stop", prepared=prepare(claimed))
    assert ended is not None and ended.status == JobStatus.FAILED
    job.refresh_from_db()
    assert (job.prompt_tokens, job.completion_tokens, job.partial_text) == (321, 12, "所見なし（JSONではない）")


def test_a_grouped_final_write_is_one_statement_that_returns_the_row(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    """Inside a group's transaction (its audit events deferred to the group's end) a job's final
    write takes no savepoint, and its update returns the row (UPDATE … RETURNING) without joining
    what the worker already has."""
    from audit.services import AuditEntry, audit_deferred

    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    claimed = services.job_claim(job_id=job.pk, worker_id="w:1")
    assert claimed is not None
    events: list[AuditEntry] = []
    with audit_deferred(events), django_assert_num_queries(1):  # type: ignore[operator]
        failed = services.job_fail(job_id=job.pk, worker_id="w:1", reason="生成に失敗しました", text="胸部",
                                   completion_tokens=3, prompt_tokens=50, claimed=claimed)
    assert failed is not None and failed.model_version is claimed.model_version and failed.patient is claimed.patient
    assert (failed.status, failed.partial_text, failed.prompt_tokens) == (JobStatus.FAILED, "胸部", 50)
    assert [e.object_id for e in events] == [job.pk]


def test_the_final_writes_of_jobs_that_end_together_are_one_statement_each_plan_getting_its_own_row(
    personas: Personas, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    """A group's final writes (`finals_write`): the rows of every plan of one kind in one UPDATE …
    FROM VALUES; a job another worker took meanwhile gets None and keeps its row; what each plan
    does with its row (`settle`: audit, broadcasts) is its own."""
    from audit.models import AuditEvent
    from audit.services import AuditEntry, audit_deferred, audit_record_many
    from inference.finals import finals_write

    visits = [make_visit(personas.facility_a, mrn=f"G{i}") for i in range(3)]
    claimed: list[InferenceJob] = []
    for visit in visits:
        job = services.job_create(actor=personas.physician_a, visit=visit)
        taken = services.job_claim(job_id=job.pk, worker_id="w:1")
        assert taken is not None
        claimed.append(taken)
    InferenceJob.objects.filter(pk=claimed[1].pk).update(worker_id="w:2")  # re-queued and taken meanwhile
    plans = [services.job_fail_plan(job_id=c.pk, worker_id="w:1", reason=f"理由{i}", text=f"本文{i}", stage="engine",
                                    completion_tokens=i, prompt_tokens=50, claimed=c) for i, c in enumerate(claimed)]
    with django_assert_num_queries(1):  # type: ignore[operator]
        rows = finals_write(plans)
    assert [r.pk if r else None for r in rows] == [claimed[0].pk, None, claimed[2].pk]
    assert rows[2] is not None and (rows[2].status, rows[2].error, rows[2].partial_text, rows[2].completion_tokens,
                                     rows[2].prompt_tokens) == (JobStatus.FAILED, "理由2", "本文2", 2, 50)
    assert rows[2].model_version is claimed[2].model_version  # the links the worker claimed, not read again
    assert InferenceJob.objects.get(pk=claimed[1].pk).status == JobStatus.RUNNING
    events: list[AuditEntry] = []
    with audit_deferred(events):
        settled = [plan.settle(row) for plan, row in zip(plans, rows, strict=True)]
    audit_record_many(events)
    assert settled == rows
    assert sorted(AuditEvent.objects.filter(object_type="inference.inferencejob", outcome="failure")
                  .values_list("object_id", flat=True)) == sorted([str(claimed[0].pk), str(claimed[2].pk)])


def test_a_grouped_draft_writes_its_row_report_and_first_revision_in_eight_statements(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    """A finished draft inside a group's transaction: its row (1), the report locked or created (4:
    get_or_create keeps its savepoint for a report two models draft at once), the revision (1), the
    visit's sources now against those the draft was checked with (2). A second draft of the same
    report: its last number and any revision of this job in one statement instead of the savepoint
    around the report."""
    from audit.services import AuditEntry, audit_deferred
    from inference.inputs import prepare
    from reports.models import ReportRevision
    from tests.inference.conftest import VALID_DRAFT

    def finish(count: int) -> InferenceJob | None:
        job = services.job_create(actor=personas.physician_a, visit=visit_a)
        claimed = services.job_claim(job_id=job.pk, worker_id="w:1")
        assert claimed is not None
        prepared = prepare(claimed)
        events: list[AuditEntry] = []
        with audit_deferred(events), django_assert_num_queries(count):  # type: ignore[operator]
            return services.job_finish(job_id=job.pk, worker_id="w:1", text=VALID_DRAFT, prompt_tokens=50,
                                       completion_tokens=30, finish_reason="stop", prepared=prepared, claimed=claimed)

    first = finish(8)
    second = finish(6)
    assert first is not None and second is not None and second.status == JobStatus.SUCCEEDED
    revisions = list(ReportRevision.objects.order_by("number").values_list("number", "source_job_id"))
    assert revisions == [(1, first.pk), (2, second.pk)]


def test_a_claim_is_one_statement_and_returns_the_row_with_its_links(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    """The claim's conditional update returns the row it left with the model version, visit and
    patient the worker needs (a visit job's empty study comes back as None); a second claim of the
    same job gets nothing."""
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    before = timezone.now()
    with django_assert_num_queries(1):  # type: ignore[operator]
        claimed = services.job_claim(job_id=job.pk, worker_id="w:1")
    assert claimed is not None
    with django_assert_num_queries(0):  # type: ignore[operator]
        links = (claimed.model_version, claimed.visit, claimed.study, claimed.patient)
    assert links == (template_model, visit_a, None, visit_a.patient)
    assert claimed.visit is not None and claimed.visit.exam_date == visit_a.exam_date  # the row's own values
    assert claimed.patient is not None and claimed.patient.birth_date == visit_a.patient.birth_date
    assert (claimed.status, claimed.worker_id, claimed.attempts) == (JobStatus.RUNNING, "w:1", 1)
    assert claimed.started_at is not None and claimed.started_at >= before  # a datetime, converted
    assert isinstance(claimed.inputs, dict) and claimed.model_version.options == template_model.options  # JSON
    job.refresh_from_db()
    assert (job.status, job.worker_id, job.attempts, job.started_at) == (
        JobStatus.RUNNING, "w:1", 1, claimed.started_at)
    assert services.job_claim(job_id=job.pk, worker_id="w:2") is None


def test_a_final_write_the_worker_no_longer_owns_writes_nothing_and_returns_none(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    claimed = services.job_claim(job_id=job.pk, worker_id="w:1")
    assert claimed is not None
    assert services.job_fail(job_id=job.pk, worker_id="w:other", reason="x", claimed=claimed) is None
    failed = services.job_fail(job_id=job.pk, reason="管理者が中止")  # no worker, no claimed instance
    assert failed is not None and failed.status == JobStatus.FAILED
    assert failed.model_version == template_model and failed.patient == visit_a.patient
    job.refresh_from_db()
    assert (job.status, job.error) == (JobStatus.FAILED, "管理者が中止")


def test_a_claimed_visit_job_is_prepared_with_two_queries_and_its_own_patient(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion, django_assert_num_queries: object,
) -> None:
    """What a worker's thread reads before the engine starts: the visit's observations and screening
    results; the patient came with the claim."""
    from clinical.judging import age_on
    from inference.inputs import prepare

    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    claimed = services.job_claim(job_id=job.pk, worker_id="w:1")
    assert claimed is not None
    with django_assert_num_queries(2):  # type: ignore[operator]
        prepared = prepare(claimed)
    age = age_on(visit_a.patient.birth_date, visit_a.exam_date)
    assert f"{age}歳" in prepared.request.prompt  # the patient's age, from the claimed patient
    assert prepared.summary["visit"] == visit_a.pk


def test_a_heartbeat_without_text_renews_the_lease_and_keeps_the_text(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    services.job_claim(job_id=job.pk, worker_id="w:1")
    services.jobs_progress(progress={job.pk: services.JobProgress("w:1", "胸部", 1, 90)})
    InferenceJob.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now())
    assert services.jobs_progress(progress={job.pk: services.JobProgress("w:1")}) == set()
    job.refresh_from_db()
    assert (job.partial_text, job.completion_tokens) == ("胸部", 1)
    assert job.lease_expires_at is not None and job.lease_expires_at > timezone.now() + dt.timedelta(seconds=30)


def test_a_deleted_job_is_no_longer_this_workers(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    job = services.job_create(actor=personas.physician_a, visit=visit_a)
    services.job_claim(job_id=job.pk, worker_id="w:1")
    InferenceJob.objects.filter(pk=job.pk).delete()
    assert services.jobs_progress(progress={job.pk: services.JobProgress("w:1", "胸部", 1, 90)}) == {job.pk}


@pytest.mark.django_db(transaction=True)
def test_a_row_another_transaction_holds_is_skipped_this_turn_not_waited_for_nor_lost(
    personas: Personas, visit_a: CheckupVisit, template_model: ModelVersion,
) -> None:
    """The final writes of jobs that end together hold their rows until their group commits;
    waiting for them here, with other rows locked in another order, could deadlock."""
    from django.db import transaction

    from tests.conftest import close_other_connections

    held, other = (services.job_create(actor=personas.physician_a, visit=v)
                   for v in (visit_a, make_visit(personas.facility_a, mrn="P9")))
    for job in (held, other):
        services.job_claim(job_id=job.pk, worker_id="w:1")
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        from django.db import connection

        try:
            with transaction.atomic():
                InferenceJob.objects.select_for_update().get(pk=held.pk)
                locked.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=hold_the_row)
    thread.start()
    try:
        assert locked.wait(10)
        started = time.monotonic()
        lost = services.jobs_progress(progress={job.pk: services.JobProgress("w:1", "所見", 2, 90)
                                                for job in (held, other)})
        assert time.monotonic() - started < 1.0 and lost == set()
    finally:
        release.set()
        thread.join(10)
    rows = dict(InferenceJob.objects.filter(pk__in=[held.pk, other.pk]).values_list("pk", "partial_text"))
    assert rows == {held.pk: "", other.pk: "所見"}
    close_other_connections()
