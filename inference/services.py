"""Writes of the inference app (house rule 1): registering models, creating, claiming, finishing,
failing, cancelling and sweeping jobs. Every state change of a job is a conditional update on its
row, so a duplicated or redelivered task, a sweeper and a cancelling user can race without a job
finishing twice."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.db import IntegrityError, connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from audit.kinds import EventKind, Outcome
from audit.services import AuditEntry, audit_record, audit_record_many
from clinical.dicom.models import Study
from clinical.models import CheckupVisit, User
from clinical.scoping import facility_ids_for, role_at
from inference import conf
from inference.broadcasting import broadcast_on_commit
from inference.events import job_group, job_state, worklist_group, worklist_message
from inference.finals import FILL, KEEP, FinalWrite, final_commit
from inference.models import ACTIVE, FacilityDraftPolicy, InferenceJob, JobStatus, ModelVersion
from inference.queueing import growing_spans, send_jobs_on_commit
from inference.returning import merge_values, update_returning

log = logging.getLogger(__name__)
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".ckpt")
MAX_ERROR_CHARS = 2000


class JobRefused(ValueError):
    """The job cannot be created (no model for the task, not allowed, already running)."""


# --- the registry ------------------------------------------------------------------------------


def weights_digest(location: str) -> str:
    """SHA-256 over the weight files of a checkpoint directory (names and contents, sorted), or
    "" when `location` is not a local directory (a served model)."""
    root = Path(location)
    if not root.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES):
        digest.update(str(path.relative_to(root)).encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def model_version_register(
    *, name: str, version: str, engine: str, location: str, tasks: Iterable[str], modalities: Iterable[str] = (),
    options: dict[str, Any] | None = None, prompt_version: str = "", queue: str | None = None,
    max_new_tokens: int = 512, enabled: bool = False, shadow: bool = False, weights_sha256: str | None = None,
    actor: User | None = None,
) -> ModelVersion:
    """Register (or update, by name + version) a model. Template engines run on `default`, the rest
    on `gpu` unless told otherwise."""
    from inference.engine_pool import known_kinds

    if engine not in known_kinds():
        raise ValueError(f"unknown engine {engine!r}; known: {', '.join(known_kinds())}")
    digest = weights_digest(location) if weights_sha256 is None else weights_sha256
    with transaction.atomic():
        mv, created = ModelVersion.objects.update_or_create(
            name=name, version=version,
            defaults={"engine": engine, "location": location, "tasks": list(tasks), "modalities": list(modalities),
                      "options": options or {}, "prompt_version": prompt_version,
                      "queue": queue or ("default" if engine == "template" else "gpu"),
                      "max_new_tokens": max_new_tokens, "enabled": enabled, "shadow": shadow,
                      "weights_sha256": digest},
        )
        audit_record(kind=EventKind.CREATE if created else EventKind.UPDATE, user=actor,
                     object_type="inference.modelversion", object_id=mv.pk,
                     details={"name": name, "version": version, "engine": engine, "tasks": mv.tasks,
                              "weights_sha256": digest, "enabled": enabled, "shadow": shadow, "queue": mv.queue})
    return mv


def model_version_set_enabled(*, model_version: ModelVersion, enabled: bool, actor: User | None) -> ModelVersion:
    with transaction.atomic():
        ModelVersion.objects.filter(pk=model_version.pk).update(enabled=enabled)
        model_version.enabled = enabled
        audit_record(kind=EventKind.UPDATE, user=actor, object_type="inference.modelversion",
                     object_id=model_version.pk, details={"enabled": enabled})
    return model_version


def models_for(task: str, *, include_shadow: bool = True) -> list[ModelVersion]:
    # JSON containment is not portable to SQLite; the registry is a handful of rows.
    rows = ModelVersion.objects.filter(enabled=True)
    return [mv for mv in rows if task in (mv.tasks or []) and (include_shadow or not mv.shadow)]


# --- creating jobs ---------------------------------------------------------------------------------


def _create(*, target: CheckupVisit | Study, task: str, mv: ModelVersion, actor: User | None,
            audit_later: list[AuditEntry] | None = None) -> InferenceJob | None:
    """Insert one job and queue it on commit; its audit event is recorded now, or appended to
    `audit_later` for the caller to record with the rest of its batch (same transaction)."""
    visit = target if isinstance(target, CheckupVisit) else None
    study = target if isinstance(target, Study) else None
    try:
        with transaction.atomic():
            job = InferenceJob.objects.create(
                facility_id=target.facility_id, patient_id=target.patient_id, visit=visit, study=study,
                model_version=mv, task=task, created_by=actor,
                lease_expires_at=timezone.now() + timedelta(seconds=conf.requeue_after_s()),
            )
    except IntegrityError:  # one live job per target and model already exists
        return None
    _announce(job, target=target, task=task, mv=mv, actor=actor, audit_later=audit_later)
    send_jobs_on_commit([(job.pk, mv.queue)])
    return job


def _announce(job: InferenceJob, *, target: CheckupVisit | Study, task: str, mv: ModelVersion, actor: User | None,
              audit_later: list[AuditEntry] | None) -> None:
    """A new job's audit event, recorded now or appended to `audit_later` (its task is the
    caller's to send: `_create_many` sends all of its jobs' together)."""
    visit = target if isinstance(target, CheckupVisit) else None
    study = target if isinstance(target, Study) else None
    entry = AuditEntry(kind=EventKind.CREATE, user=actor, role=role_at(actor, target.facility_id) if actor else "",
                       facility_id=target.facility_id, object_type="inference.inferencejob", object_id=job.pk,
                       patient_id=target.patient_id,
                       details={"task": task, "model": str(mv), "model_version": mv.pk, "shadow": mv.shadow,
                                "visit": visit.pk if visit else None, "study": study.pk if study else None,
                                "auto": actor is None})
    if audit_later is None:
        audit_record_many([entry])
    else:
        audit_later.append(entry)


def _live_keys(wanted: list[tuple[CheckupVisit | Study, str, ModelVersion]]) -> set[tuple[Any, ...]]:
    """(model version, visit, study) of the live jobs among `wanted`'s targets and models."""
    return set(InferenceJob.objects.filter(
        status__in=ACTIVE, model_version_id__in={mv.pk for _, _, mv in wanted},
    ).filter(
        Q(visit_id__in=[t.pk for t, _, _ in wanted if isinstance(t, CheckupVisit)])
        | Q(study_id__in=[t.pk for t, _, _ in wanted if isinstance(t, Study)])
    ).values_list("model_version_id", "visit_id", "study_id"))


def _create_many(wanted: list[tuple[CheckupVisit | Study, str, ModelVersion]],
                 audit_later: list[AuditEntry]) -> list[InferenceJob]:
    """`_create` for many (target, task, model) at once, without an actor: the rows in one INSERT,
    skipping targets that already have a live job of the model. A job that appears meanwhile (a
    user's click between the check and the insert) makes the INSERT fail as a whole: then each is
    created on its own, as `_create` does, and only that one is skipped. An import of a few hundred
    visits spent three statements (savepoint, insert, release) per job; the first job of an arrival
    waited for all of them before any could start."""
    def key(target: CheckupVisit | Study, mv: ModelVersion) -> tuple[int, int | None, int | None]:
        return (mv.pk, target.pk if isinstance(target, CheckupVisit) else None,
                target.pk if isinstance(target, Study) else None)

    live = _live_keys(wanted)
    fresh: dict[tuple[int, int | None, int | None], tuple[CheckupVisit | Study, str, ModelVersion]] = {}
    for target, task, mv in wanted:  # a target named twice is queued once
        if key(target, mv) not in live:
            fresh.setdefault(key(target, mv), (target, task, mv))
    if not fresh:
        return []
    lease = timezone.now() + timedelta(seconds=conf.requeue_after_s())
    rows = [InferenceJob(facility_id=target.facility_id, patient_id=target.patient_id,
                         visit=target if isinstance(target, CheckupVisit) else None,
                         study=target if isinstance(target, Study) else None,
                         model_version=mv, task=task, lease_expires_at=lease)
            for target, task, mv in fresh.values()]
    try:
        with transaction.atomic():
            InferenceJob.objects.bulk_create(rows)
    except IntegrityError:
        return [job for target, task, mv in fresh.values()
                if (job := _create(target=target, task=task, mv=mv, actor=None, audit_later=audit_later)) is not None]
    for job, (target, task, mv) in zip(rows, fresh.values(), strict=True):
        _announce(job, target=target, task=task, mv=mv, actor=None, audit_later=audit_later)
    send_jobs_on_commit([(job.pk, mv.queue) for job, (_t, _task, mv) in zip(rows, fresh.values(), strict=True)])
    return rows


def _task_of(target: CheckupVisit | Study) -> str:
    if isinstance(target, CheckupVisit):
        return "checkup_summary"
    from inference.inputs import task_for_study

    task = task_for_study(target)
    if task is None:
        raise JobRefused("この検査の種類に対応するAI下書きはありません")
    return task


def job_create(*, actor: User, visit: CheckupVisit | None = None, study: Study | None = None,
               model_version: ModelVersion | None = None) -> InferenceJob:
    """A user asks for a draft of a visit or study. Refused outside the user's facilities (the view
    scopes first and answers 404; this is the second lock), without an enabled model, or while a
    job for the same target and model is still running."""
    target = visit if visit is not None else study
    if target is None or (visit is not None and study is not None):
        raise JobRefused("受診または画像検査のどちらか一方を指定してください")
    if target.facility_id not in facility_ids_for(actor):
        raise JobRefused("この施設のデータには下書きを作成できません")
    task = _task_of(target)
    candidates = [model_version] if model_version is not None else models_for(task, include_shadow=False)
    mv = next((m for m in candidates if m.enabled and task in (m.tasks or [])), None)
    if mv is None:
        raise JobRefused("このタスクに有効なモデルが登録されていません")
    with transaction.atomic():
        job = _create(target=target, task=task, mv=mv, actor=actor)
        if job is None:
            raise JobRefused("この対象の下書きはすでに作成中です")
        broadcast_on_commit(worklist_group(job.facility_id), worklist_message(job))
    return job


def _auto_draft(facility_id: int, kind: str) -> bool:
    policy = FacilityDraftPolicy.objects.filter(facility_id=facility_id).first()
    if policy is None:
        return conf.auto_draft_default()
    return policy.auto_draft_visits if kind == "visit" else policy.auto_draft_studies


# Jobs of an arrival committed, and so sent to a worker, before the rest of the arrival is written.
# Its 64 rows and audit events took 17–20 ms before the first task could leave. Now the first four
# commit in a transaction of their own, the next twelve in a second, the rest in a third (parts
# ending at 4, 16, 64, 256, …: `queueing.growing_spans`): the engine starts 8–25 ms sooner, with
# the prompts of the jobs already sent to prefill while the next ones are written, and no request
# runs alone for long. One job first, alone, did (session 10: it decoded 35–45 steps ahead of the
# others, and every eager decode step attends over the longest row), and so did four followed by
# all 60 others when the machine was slow (11–31 decode steps below batch 64 in 8 of 70 rounds;
# with a second part of twelve, 12 in 1 of 63). bench/inference_stack.py.
FIRST_JOBS = 4


def jobs_create_for_arrival(*, visit_ids: Iterable[int] = (), study_ids: Iterable[int] = ()) -> list[InferenceJob]:
    """Visits or studies arrived: queue a job for every enabled model of their task (shadow models
    included), where the facility drafts automatically. Safe to call twice (one live job each).

    A transaction per part of growing size (the first `FIRST_JOBS` jobs, then the next three
    times as many, …), each with its jobs' audit events. Should one fail, its error reaches the
    caller and the jobs already committed stay queued (each job stands alone); calling again
    queues the rest."""
    # An import brings hundreds of visits of a few facilities and tasks: look policies and models
    # up once per facility and task, not once per visit.
    policies: dict[tuple[int, str], bool] = {}
    models: dict[str, list[ModelVersion]] = {}
    wanted: list[tuple[CheckupVisit | Study, str, ModelVersion]] = []
    targets: list[CheckupVisit | Study] = [
        *CheckupVisit.objects.filter(id__in=list(visit_ids)),
        *Study.objects.filter(id__in=list(study_ids), patient__isnull=False),
    ]
    for target in targets:
        key = (target.facility_id, "visit" if isinstance(target, CheckupVisit) else "study")
        if key not in policies:
            policies[key] = _auto_draft(*key)
        if not policies[key]:
            continue
        try:
            task = _task_of(target)
        except JobRefused:
            continue
        if task not in models:
            models[task] = models_for(task)
        wanted += [(target, task, mv) for mv in models[task]]
    created: list[InferenceJob] = []
    for start, end in growing_spans(len(wanted), FIRST_JOBS):
        created += _create_audited(wanted[start:end])
    return created


def _create_audited(wanted: list[tuple[CheckupVisit | Study, str, ModelVersion]]) -> list[InferenceJob]:
    """`_create_many` and the new jobs' audit events, in one transaction."""
    entries: list[AuditEntry] = []
    with transaction.atomic():
        created = _create_many(wanted, entries)
        audit_record_many(entries)
    return created


# --- running jobs ------------------------------------------------------------------------------------


def job_claim(*, job_id: int, worker_id: str) -> InferenceJob | None:
    """Take a QUEUED job for this worker. None if another worker has it or it is final."""
    now = timezone.now()
    # One statement: the conditional update and the row with what the worker needs of its links
    # (`update_returning`; an update and a joined read were two round trips per job).
    claimed = update_returning(
        InferenceJob.objects.filter(id=job_id, status=JobStatus.QUEUED),
        {"status": JobStatus.RUNNING, "worker_id": worker_id, "attempts": F("attempts") + 1,
         "lease_expires_at": now + timedelta(seconds=conf.lease_s()), "started_at": now, "first_token_at": None,
         "partial_text": "", "completion_tokens": 0, "prompt_tokens": 0, "error": ""},
        related=("model_version", "visit", "study", "patient"),
    )
    if not claimed:
        return None
    job = claimed[0]
    from inference.broadcasting import broadcast

    broadcast(job_group(job.pk), job_state(job))  # a retry starts from an empty text: tell the watchers
    return job


def job_progress(*, job_id: int, worker_id: str, partial_text: str, completion_tokens: int, prompt_tokens: int,
                 first_token: bool) -> bool:
    """`jobs_progress` for one job. False when the job is no longer this worker's (cancelled,
    re-queued by the sweeper or deleted): the worker must stop."""
    progress = JobProgress(worker_id=worker_id, partial_text=partial_text, completion_tokens=completion_tokens,
                           prompt_tokens=prompt_tokens, first_token_at=timezone.now() if first_token else None)
    return job_id not in jobs_progress(progress={job_id: progress})


@dataclass(frozen=True)
class JobProgress:
    """What a worker has of a running job: its text so far and when its first token came; without a
    text, only its lease is renewed (the heartbeat)."""

    worker_id: str
    partial_text: str | None = None
    completion_tokens: int | None = None
    prompt_tokens: int | None = None
    first_token_at: datetime | None = None


def jobs_progress(*, progress: Mapping[int, JobProgress]) -> set[int]:
    """Persist the partial texts of many running jobs of one worker process and renew their leases,
    in one statement; returns the ids it no longer owns (cancelled, re-queued by the sweeper or
    deleted: the worker must stop them). One UPDATE … FROM VALUES instead of a statement per job: a
    GPU worker streams 64 drafts at once (Django's bulk_update has neither the per-row ownership
    condition nor RETURNING).

    Rows another transaction has locked are skipped this time (neither written nor lost): the
    final writes of jobs that ended together lock theirs in one transaction (`inference.group_commit`,
    `inference.finals`) that holds them until it commits, and waiting for them here, with the others
    locked in another order, would be a deadlock."""
    if not progress:
        return set()
    if connection.vendor != "postgresql":
        return _jobs_progress_each(progress)
    table = connection.ops.quote_name(InferenceJob._meta.db_table)
    rows = ", ".join(["(%s::bigint, %s::text, %s::text, %s::integer, %s::integer, %s::timestamptz)"] * len(progress))
    params: list[Any] = []
    for job_id, p in sorted(progress.items()):
        params += [job_id, p.worker_id, p.partial_text, p.completion_tokens, p.prompt_tokens, p.first_token_at]
    sql = (
        f"WITH v(id, worker, text, completion, prompt, first) AS (VALUES {rows}), "  # noqa: S608
        f"mine AS (SELECT j.id FROM {table} j WHERE j.id IN (SELECT id FROM v) FOR UPDATE SKIP LOCKED), "
        f"done AS (UPDATE {table} AS j SET partial_text = COALESCE(v.text, j.partial_text), "
        "completion_tokens = COALESCE(v.completion, j.completion_tokens), "
        "prompt_tokens = COALESCE(v.prompt, j.prompt_tokens), lease_expires_at = %s, "
        "first_token_at = COALESCE(j.first_token_at, v.first) "
        "FROM v WHERE j.id = v.id AND j.id IN (SELECT id FROM mine) AND j.status = %s AND j.worker_id = v.worker "
        "RETURNING j.id) "
        f"SELECT v.id FROM v WHERE NOT EXISTS (SELECT 1 FROM {table} j WHERE j.id = v.id) "
        "OR (v.id IN (SELECT id FROM mine) AND v.id NOT IN (SELECT id FROM done))")
    lease = timezone.now() + timedelta(seconds=conf.lease_s())
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, lease, JobStatus.RUNNING])  # placeholders in the statement's order
        return {row[0] for row in cursor.fetchall()}


def _jobs_progress_each(progress: Mapping[int, JobProgress]) -> set[int]:
    """`jobs_progress` a statement per job, for the embedded demo's SQLite (no UPDATE … FROM VALUES
    with casts, no row locks to skip: it runs one writer at a time)."""
    lease = timezone.now() + timedelta(seconds=conf.lease_s())
    lost: set[int] = set()
    for job_id, p in sorted(progress.items()):
        # The final writes' rules (`finals`): a first token's time already written stays, a text
        # or count the worker does not pass is left as the row has it.
        fields = merge_values({"lease_expires_at": lease, "first_token_at": p.first_token_at,
                               "partial_text": p.partial_text, "completion_tokens": p.completion_tokens,
                               "prompt_tokens": p.prompt_tokens}, keep=KEEP, fill=FILL, model=InferenceJob)
        if not InferenceJob.objects.filter(id=job_id, status=JobStatus.RUNNING, worker_id=p.worker_id).update(**fields):
            lost.add(job_id)
    return lost


def job_finish_plan(*, job_id: int, worker_id: str, text: str, prompt_tokens: int, completion_tokens: int,
                    finish_reason: str, prepared: Any, first_token_at: datetime | None = None,
                    claimed: InferenceJob | None = None) -> FinalWrite:
    """The engine finished: parse and check the draft (here, before any row is locked). An
    unusable draft fails the job with the reason (never a silent partial report); a usable one marks
    the job SUCCEEDED and announces it (`draft_ready`) in the same transaction. `claimed`: the
    instance the worker claimed (see `FinalWrite`)."""
    from ml.grounding import grounding_record
    from ml.schemas import DraftParseError, draft_to_text, parse_draft

    try:
        parsed = parse_draft(prepared.request.task, text)
    except DraftParseError as exc:
        cut = "（トークン上限で打ち切り）" if finish_reason == "length" else ""
        return job_fail_plan(job_id=job_id, worker_id=worker_id, reason=f"下書きの形式が不正です{cut}: {exc.reason}",
                             text=text, stage=f"parse:{exc.kind}", completion_tokens=completion_tokens,
                             prompt_tokens=prompt_tokens, first_token_at=first_token_at, claimed=claimed)
    report_text = draft_to_text(parsed)
    grounding = grounding_record(report_text, prepared.sources)
    values = {"status": JobStatus.SUCCEEDED, "finished_at": timezone.now(), "partial_text": text,
              "completion_tokens": completion_tokens, "prompt_tokens": prompt_tokens, "lease_expires_at": None,
              "findings": dict(parsed.data), "report_text": report_text, "grounding": grounding,
              "prompt_version": prepared.request.prompt_version, "inputs": prepared.inputs_record,
              "reference_data": prepared.reference_data, "first_token_at": first_token_at}

    def then(job: InferenceJob) -> None:
        audit_record(kind=EventKind.UPDATE, facility_id=job.facility_id, object_type="inference.inferencejob",
                     object_id=job.pk, patient_id=job.patient_id,
                     details={"stage": "succeeded", "model": str(job.model_version), "tokens": completion_tokens,
                              "grounding_issues": len(grounding["issues"]), "inputs_sha256": job.inputs.get("sha256")})
        from inference.signals import draft_ready

        draft_ready.send(sender=InferenceJob, job=job)
        broadcast_on_commit(job_group(job.pk), job_state(job))
        if not job.model_version.shadow:
            broadcast_on_commit(worklist_group(job.facility_id), worklist_message(job))

    return FinalWrite(job_id=job_id, worker_id=worker_id, values=values, then=then, claimed=claimed)


def job_finish(*, job_id: int, worker_id: str, text: str, prompt_tokens: int, completion_tokens: int,
               finish_reason: str, prepared: Any, first_token_at: datetime | None = None,
               claimed: InferenceJob | None = None) -> InferenceJob | None:
    """`job_finish_plan`, written at once. None if the job was no longer this worker's."""
    return final_commit(job_finish_plan(
        job_id=job_id, worker_id=worker_id, text=text, prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens, finish_reason=finish_reason, prepared=prepared,
        first_token_at=first_token_at, claimed=claimed))


def job_fail_plan(*, job_id: int, reason: str, worker_id: str | None = None, text: str | None = None,
                  stage: str = "failed", completion_tokens: int | None = None, prompt_tokens: int | None = None,
                  first_token_at: datetime | None = None, claimed: InferenceJob | None = None) -> FinalWrite:
    """Mark an active job FAILED with the reason shown to users. With `worker_id`, only if this
    worker still holds it. The text, token counts and first token's time the worker has are kept
    with it (where it passes none, what the row has stays)."""
    values = {"status": JobStatus.FAILED, "error": reason[:MAX_ERROR_CHARS], "finished_at": timezone.now(),
              "lease_expires_at": None, "partial_text": text, "completion_tokens": completion_tokens,
              # What it read: a draft may end before any progress write carried it (0: not known).
              "prompt_tokens": prompt_tokens or None, "first_token_at": first_token_at}

    def then(job: InferenceJob) -> None:
        audit_record(kind=EventKind.UPDATE, outcome=Outcome.FAILURE, facility_id=job.facility_id,
                     object_type="inference.inferencejob", object_id=job.pk, patient_id=job.patient_id,
                     details={"stage": stage, "reason": reason[:500], "model": str(job.model_version)})
        broadcast_on_commit(job_group(job.pk), job_state(job))
        if not job.model_version.shadow:
            broadcast_on_commit(worklist_group(job.facility_id), worklist_message(job))

    return FinalWrite(job_id=job_id, worker_id=worker_id, values=values, then=then, claimed=claimed)


def job_fail(*, job_id: int, reason: str, worker_id: str | None = None, text: str | None = None,
             stage: str = "failed", completion_tokens: int | None = None, prompt_tokens: int | None = None,
             first_token_at: datetime | None = None, claimed: InferenceJob | None = None) -> InferenceJob | None:
    """`job_fail_plan`, written at once. None if the job was no longer active (or this worker's)."""
    return final_commit(job_fail_plan(
        job_id=job_id, reason=reason, worker_id=worker_id, text=text, stage=stage,
        completion_tokens=completion_tokens, prompt_tokens=prompt_tokens, first_token_at=first_token_at,
        claimed=claimed))


def job_cancel(*, job: InferenceJob, actor: User) -> bool:
    """Cancel a queued or running job. A running worker notices at its next progress write or
    heartbeat and stops generating. False if the job had already finished."""
    with transaction.atomic():
        if InferenceJob.objects.filter(id=job.pk, status__in=ACTIVE).update(
                status=JobStatus.CANCELLED, finished_at=timezone.now(), lease_expires_at=None) != 1:
            return False
        job.refresh_from_db()
        audit_record(kind=EventKind.UPDATE, user=actor, role=role_at(actor, job.facility_id),
                     facility_id=job.facility_id, object_type="inference.inferencejob", object_id=job.pk,
                     patient_id=job.patient_id, details={"stage": "cancelled"})
        broadcast_on_commit(job_group(job.pk), job_state(job))
    return True


# --- the sweeper ------------------------------------------------------------------------------------


@dataclass
class SweepResult:
    requeued: list[int] = field(default_factory=list)  # RUNNING whose worker vanished
    resent: list[int] = field(default_factory=list)  # QUEUED whose message may be lost
    failed: list[int] = field(default_factory=list)  # out of attempts


def jobs_sweep(*, now: Any = None) -> SweepResult:
    """Re-enqueue jobs whose lease lapsed: the database row, not the broker, is the truth. A job
    that lost its worker `max_attempts` times is failed rather than retried forever."""
    now = now or timezone.now()
    result = SweepResult()
    later = now + timedelta(seconds=conf.requeue_after_s())
    expired = InferenceJob.objects.filter(lease_expires_at__lt=now, status__in=ACTIVE).select_related("model_version")
    for job in expired:
        with transaction.atomic():
            if job.status == JobStatus.RUNNING and job.attempts >= conf.max_attempts():
                failed = job_fail(job_id=job.pk, reason=f"ワーカーが {job.attempts} 回応答しなくなったため中止しました",
                                  stage="worker_lost")
                if failed is not None:
                    result.failed.append(job.pk)
                continue
            moved = InferenceJob.objects.filter(id=job.pk, status=job.status, lease_expires_at__lt=now).update(
                status=JobStatus.QUEUED, worker_id="", lease_expires_at=later)
            if moved != 1:
                continue  # a heartbeat or a claim got there first
            (result.requeued if job.status == JobStatus.RUNNING else result.resent).append(job.pk)
            audit_record(kind=EventKind.UPDATE, facility_id=job.facility_id, object_type="inference.inferencejob",
                         object_id=job.pk, details={"stage": "requeued", "was": job.status,
                                                    "attempts": job.attempts, "worker": job.worker_id})
            send_jobs_on_commit([(job.pk, job.model_version.queue)])
    if result.requeued or result.resent or result.failed:
        log.info("sweeper: requeued %s, resent %s, failed %s", result.requeued, result.resent, result.failed)
    return result
