"""Group commit of the jobs' final writes in a worker process.

When a batch of 64 drafts ends, 64 job threads each ran their final transaction (the job row, its
audit event, the report) at once: every one of them queued for the audit chain's head lock, held it
across four round trips and a WAL flush, and each round trip waited for the interpreter lock behind
the other threads. The last final state left the worker about a second after its row was written
(bench/inference_stack.py). Here one thread per process runs the final writes that are waiting, as
one transaction, their audit events appended together at the end (one head lock, taken after the
rows'), one flush. A job that is alone commits alone, at once.

The caller blocks until its writes are committed, so a task is acknowledged only after its row is
final, as before. Each call runs in the caller's context variables (the audit context of its task).
If any call of a group raises (its own error, a lost connection, a deadlock with a web request's
writes), the whole group rolls back and each of its calls runs again alone in its own transaction:
an error undoes only its own call's writes and reaches only its own caller, and the writes are
conditional updates, so a second run never doubles them. (Until session 6 each call had a savepoint
of its own instead: two more round trips per job on the path from the engine's last token to the
client, for a failure that is rare.) Inside a transaction of the caller's own (the tests' atomic
test cases) the call runs inline: another thread's connection could not see the caller's rows.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from django.db import close_old_connections, connection, transaction

from audit.services import AuditEntry, audit_deferred, audit_record_many
from inference.db import release_connection

log = logging.getLogger(__name__)
T = TypeVar("T")
MAX_GROUP = 16  # a group holds its jobs' rows until it commits; its callers wait for the last of them


@dataclass
class _Call:
    fn: Callable[[], Any]
    context: contextvars.Context
    future: Future[Any] = field(default_factory=Future)


class GroupCommitter:
    def __init__(self, name: str = "inference-group-commit") -> None:
        self.name = name
        self._calls: queue.SimpleQueue[_Call] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.groups = 0  # committed groups, and the calls they held (for the bench and tests)
        self.grouped_calls = 0

    def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` (database writes) in the next group and return its result once committed;
        raises what `fn` raised."""
        if connection.in_atomic_block:
            # Inline, in a savepoint: the writes take none of their own inside a group (see
            # job_fail), and an error must undo only this call's writes in the caller's transaction.
            with transaction.atomic():
                return fn()
        call = _Call(fn, contextvars.copy_context())
        self._ensure_thread()
        self._calls.put(call)
        result: T = call.future.result()
        return result

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name=self.name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            group = [self._calls.get()]
            while len(group) < MAX_GROUP:
                try:
                    group.append(self._calls.get_nowait())
                except queue.Empty:
                    break
            try:
                close_old_connections()  # as Django does per request: an old or broken connection is replaced
                self._commit(group)
            except BaseException as exc:  # never leave a caller waiting
                for call in group:
                    if not call.future.done():
                        call.future.set_exception(exc)
                if not isinstance(exc, Exception):
                    raise
            finally:
                release_connection()

    def _commit(self, group: list[_Call]) -> None:
        if len(group) == 1:
            self._alone(group[0])
            return
        outcomes: list[tuple[_Call, Any]] = []
        try:
            with transaction.atomic():
                events: list[AuditEntry] = []
                for call in group:
                    outcomes.append((call, call.context.run(_deferring_audit, call.fn, events)))
                # The audit chain's head is locked last, once, after every row of the group (see
                # audit_deferred: no deadlock with a transaction that holds a row and waits for it).
                audit_record_many(events)
        except Exception:
            log.warning("a group of %d final writes did not commit; each runs again alone", len(group),
                        exc_info=True)
            close_old_connections()
            for call in group:
                self._alone(call)
            return
        self.groups += 1
        self.grouped_calls += len(outcomes)
        for call, result in outcomes:
            call.future.set_result(result)

    @staticmethod
    def _alone(call: _Call) -> None:
        try:
            with transaction.atomic():  # all of the call's writes or none, as in a group
                result = call.context.run(call.fn)
        except Exception as exc:
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)


def _deferring_audit(fn: Callable[[], T], into: list[AuditEntry]) -> T:
    with audit_deferred(into):
        return fn()


final_writes = GroupCommitter()
