"""The body of the job task: claim the row, rebuild the request, stream the engine's events into
the job's websocket group and (through the process's heartbeat) into the job row, then finish or
fail the row.

A process-wide heartbeat writes the partial texts of all the jobs this process runs in one
statement, renews their leases and notices jobs that were cancelled or taken away (re-queued by the
sweeper), stopping their generation even when no token arrives to trigger the check.

A GPU worker runs dozens of these at once, so what one job costs per token is paid dozens of
times: the engine merges tokens between deliveries (`coalesce_s`), and the intervals between
broadcasts and between writes of the partial text grow with the number of jobs this process
streams (`conf.broadcasts_per_s`), so a batch of 64 drafts sends ~200 messages a second, not 640.
While the engine works, a job thread holds no database connection (the pool has fewer
connections than a GPU worker has threads); the final writes of jobs that end together share one
transaction (`inference.group_commit`)."""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from django.db import close_old_connections, connection
from django.utils import timezone

from inference import conf, engine_pool, services
from inference.broadcasting import broadcast
from inference.db import release_connection
from inference.events import job_group, token_message
from inference.finals import finals_write
from inference.group_commit import final_writes
from inference.inputs import InputError, prepare
from inference.models import InferenceJob
from ml.protocol import Engine, EngineError, EngineEvent, Failed, Started, Token

log = logging.getLogger(__name__)
PROCESS_ID = f"{socket.gethostname()}:{os.getpid()}"


class JobLost(Exception):
    """The job is no longer this worker's (cancelled, or re-queued by the sweeper)."""


@dataclass
class _Held:
    worker_id: str
    engine: Engine | None = None
    request_id: str = ""
    lost: bool = False


class _Heartbeat:
    """One thread per worker process writes what its jobs streamed since its last turn, all jobs in
    one statement (`services.jobs_progress`), renews the leases of every job it holds, and stops the
    ones it no longer owns. A job thread only leaves its latest text here: 64 job threads each
    writing their own row every 0.64 s queued for the interpreter lock on every round trip."""

    def __init__(self) -> None:
        self.held: dict[int, _Held] = {}
        self.pending: dict[int, services.JobProgress] = {}
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None

    def add(self, job_id: int, held: _Held) -> None:
        with self.lock:
            self.held[job_id] = held
            if self.thread is None or not self.thread.is_alive():
                self.thread = threading.Thread(target=self._run, name="inference-heartbeat", daemon=True)
                self.thread.start()

    def remove(self, job_id: int) -> None:
        with self.lock:
            self.held.pop(job_id, None)
            self.pending.pop(job_id, None)

    def note(self, job_id: int, progress: services.JobProgress) -> bool:
        """Leave the job's latest text for the next write; False if this process does not hold it."""
        with self.lock:
            if job_id not in self.held:
                return False
            earlier = self.pending.get(job_id)
            if earlier is not None and earlier.first_token_at and not progress.first_token_at:
                progress = dataclasses.replace(progress, first_token_at=earlier.first_token_at)
            self.pending[job_id] = progress
            return True

    @property
    def count(self) -> int:
        return len(self.held)

    def _run(self) -> None:
        beat_at = 0.0
        while True:
            time.sleep(persist_interval_s())
            with self.lock:
                held = dict(self.held)
                pending, self.pending = {i: p for i, p in self.pending.items() if i in held}, {}
            if not held:
                continue
            batch = dict(pending)
            beat = time.monotonic() >= beat_at
            if beat:  # every held job's lease, texts or not
                for job_id, h in held.items():
                    batch.setdefault(job_id, services.JobProgress(worker_id=h.worker_id))
            try:
                lost = services.jobs_progress(progress=batch)
                if beat:
                    beat_at = time.monotonic() + max(0.2, min(conf.lease_s() / 3, 2.0))
            except Exception:
                log.warning("inference progress and heartbeat write failed", exc_info=True)
                close_old_connections()
                with self.lock:  # written next turn, unless the job left newer text meanwhile
                    for job_id, progress in pending.items():
                        self.pending.setdefault(job_id, progress)
                continue
            finally:
                release_connection()
            for job_id in lost:
                self._stop(held[job_id])

    @staticmethod
    def _stop(held: _Held) -> None:
        held.lost = True
        if held.engine is not None and held.request_id:
            engine_pool.cancel_sync(held.engine, held.request_id)


heartbeat = _Heartbeat()


def persist_interval_s() -> float:
    """Seconds between two writes of the jobs' partial texts (and checks that they are still ours)."""
    return max(conf.persist_every_s(), 2 * stream_interval_s())


def stream_interval_s() -> float:
    """Seconds between two token messages of one job: the configured minimum, longer when this
    process streams so many jobs that their messages together would exceed `broadcasts_per_s`."""
    return max(conf.broadcast_every_s(), max(1, heartbeat.count) / conf.broadcasts_per_s())


@dataclass
class _Stream:
    """Consumes engine events in the task thread: persists at most every `persist_every_s`,
    broadcasts deltas at most every `broadcast_every_s`."""

    job: InferenceJob
    held: _Held
    text: str = ""
    tokens: int = 0
    prompt_tokens: int = 0
    sent: int = 0  # characters already broadcast
    saved_at: float = 0.0
    sent_at: float = 0.0
    first_token_at: datetime | None = None
    limit: int = 1
    pending: list[str] = field(default_factory=list)

    def on_event(self, event: EngineEvent) -> None:
        if self.held.lost:
            raise JobLost
        if isinstance(event, Started):
            self.prompt_tokens = event.prompt_tokens
        elif isinstance(event, Token):
            self.text += event.text
            self.tokens = event.completion_tokens
            now = time.monotonic()
            first = self.first_token_at is None
            if first:
                self.first_token_at = timezone.now()
            self.save(now, first_token_at=self.first_token_at if first else None)
            if self.sent == 0 or now - self.sent_at >= stream_interval_s():
                self.send(now)

    def save(self, now: float, first_token_at: datetime | None = None) -> None:
        progress = services.JobProgress(worker_id=self.held.worker_id, partial_text=self.text,
                                        completion_tokens=self.tokens, prompt_tokens=self.prompt_tokens,
                                        first_token_at=first_token_at)
        if heartbeat.note(self.job.pk, progress):
            return  # the heartbeat thread writes it with the others
        # Not handed to the heartbeat (a thread inside a transaction of its own, see run_job): it
        # writes here, at most every persist interval.
        if first_token_at is None and now - self.saved_at < persist_interval_s():
            return
        try:
            owned = services.job_progress(job_id=self.job.pk, worker_id=self.held.worker_id, partial_text=self.text,
                                          completion_tokens=self.tokens, prompt_tokens=self.prompt_tokens,
                                          first_token=first_token_at is not None)
        finally:
            release_connection()
        self.saved_at = now
        if not owned:
            self.held.lost = True
            raise JobLost

    def send(self, now: float) -> None:
        if len(self.text) == self.sent:
            return
        progress = min(99, int(100 * self.tokens / self.limit))
        broadcast(job_group(self.job.pk), token_message(self.job.pk, self.sent, self.text[self.sent:], self.tokens,
                                                        progress))
        self.sent = len(self.text)
        self.sent_at = now


def run_job(job_id: int) -> str:
    """Run one job; safe to run twice (the second claim fails). Returns what happened, for logs."""
    held = _Held(worker_id=f"{PROCESS_ID}:{uuid.uuid4().hex[:8]}")
    job = services.job_claim(job_id=job_id, worker_id=held.worker_id)
    if job is None:
        return "not-claimed"
    if not connection.in_atomic_block:
        # The heartbeat's own connection cannot see rows of a transaction this thread holds open
        # (a test case): it would take the job for deleted and stop it. Such a thread writes its
        # progress itself (`_Stream.save`).
        heartbeat.add(job_id, held)
    try:
        return _run_claimed(job, held)
    except JobLost:
        return "lost"
    except Exception as exc:  # whatever happens, the row says why, and the worker stays up
        log.exception("inference job %s failed", job_id)
        services.job_fail(job_id=job_id, worker_id=held.worker_id, reason=f"内部エラー: {type(exc).__name__}: {exc}")
        return "failed"
    finally:
        heartbeat.remove(job_id)


def _run_claimed(job: InferenceJob, held: _Held) -> str:
    try:
        prepared = prepare(job)
    except (InputError, LookupError, ValueError, OSError) as exc:
        services.job_fail(job_id=job.pk, worker_id=held.worker_id, reason=f"入力を準備できません: {exc}",
                          stage="inputs")
        return "failed"
    try:
        engine = engine_pool.get_engine(job.model_version)
    except EngineError as exc:
        services.job_fail(job_id=job.pk, worker_id=held.worker_id, reason=f"モデルを読み込めません: {exc}",
                          stage="model_load")
        return "failed"
    held.engine, held.request_id = engine, prepared.request.request_id
    stream = _Stream(job=job, held=held, limit=max(1, job.model_version.max_new_tokens))
    release_connection()
    result = engine_pool.run_sync(engine, prepared.request, stream.on_event, timeout=conf.job_timeout_s(),
                                  coalesce_s=stream_interval_s())
    if held.lost:
        return "lost"
    # No last token message: the final state that the write below broadcasts carries the whole text
    # (`events.job_state`), and a client replaces its text with it. Sending the tail as well was a
    # message per draft (64 at once, beside the group commit of the same drafts) for nothing.
    # The final writes of the jobs that end together share one transaction and their rows one
    # statement (group_commit, finals); the draft is parsed here, before the group's rows are locked.
    if isinstance(result, Failed):
        plan = services.job_fail_plan(
            job_id=job.pk, worker_id=held.worker_id, reason=f"生成に失敗しました: {result.reason}", text=stream.text,
            stage="engine", completion_tokens=stream.tokens, prompt_tokens=stream.prompt_tokens,
            first_token_at=stream.first_token_at, claimed=job)
    elif result.finish_reason == "cancelled":  # not by a user (that sets held.lost): our own time limit
        plan = services.job_fail_plan(
            job_id=job.pk, worker_id=held.worker_id, text=result.text, stage="timeout",
            completion_tokens=result.completion_tokens, prompt_tokens=result.prompt_tokens or stream.prompt_tokens,
            first_token_at=stream.first_token_at, claimed=job,
            reason=f"制限時間（{conf.job_timeout_s():.0f} 秒）を超えたため中止しました")
    else:
        plan = services.job_finish_plan(
            job_id=job.pk, worker_id=held.worker_id, text=result.text,
            prompt_tokens=result.prompt_tokens or stream.prompt_tokens, completion_tokens=result.completion_tokens,
            finish_reason=result.finish_reason, prepared=prepared, first_token_at=stream.first_token_at, claimed=job)
    done = final_writes.run_batched(finals_write, plan, plan.settle)
    return "lost" if done is None else done.status
