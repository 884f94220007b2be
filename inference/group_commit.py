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
import functools
import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from django.db import close_old_connections, connection, transaction

from audit.services import AuditEntry, audit_deferred, audit_record_many
from inference.db import release_connection

log = logging.getLogger(__name__)
T = TypeVar("T")
I = TypeVar("I")  # noqa: E741  (an item of a batched write)
R = TypeVar("R")
MAX_GROUP = 64  # a group holds its jobs' rows until it commits; its callers wait for the last of them


@dataclass(frozen=True)
class _Batched(Generic[I, R]):
    write_many: Callable[[list[I]], list[R]]  # one result per item, in order
    item: I
    then: Callable[[R], Any]


@dataclass
class _Call:
    fn: Callable[[], Any] | None
    context: contextvars.Context
    batched: _Batched[Any, Any] | None = None
    future: Future[Any] = field(default_factory=Future)

    def run_alone(self) -> Any:
        """This call's writes by themselves (the caller's transaction: a group's, or its own)."""
        if self.batched is not None:
            result = self.batched.write_many([self.batched.item])[0]
            return self.context.run(self.batched.then, result)
        assert self.fn is not None
        return self.context.run(self.fn)


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
        raises what `fn` raised. (The worker's final writes use `run_batched`.)"""
        return self._submit(_Call(fn, contextvars.copy_context()))

    def run_batched(self, write_many: Callable[[list[I]], list[R]], item: I, then: Callable[[R], T]) -> T:
        """`write_many([item])` and then `then(its result)`, in the next group, `item` written
        together with the items of the group's other calls with the same `write_many`; returns what
        `then` returned once committed, or raises what either raised."""
        return self._submit(_Call(None, contextvars.copy_context(), _Batched(write_many, item, then)))

    def _submit(self, call: _Call) -> Any:
        if connection.in_atomic_block:
            # Inline, in a savepoint: the writes take none of their own inside a group (see
            # finals.final_commit), and an error must undo only this call's writes in the caller's
            # transaction.
            with transaction.atomic():
                return call.run_alone()
        self._ensure_thread()
        self._calls.put(call)
        return call.future.result()

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
                written = _write_batches(group)
                for call in group:
                    if call.batched is not None:
                        then = functools.partial(call.batched.then, written[id(call)])
                        outcomes.append((call, call.context.run(_deferring_audit, then, events)))
                    else:
                        assert call.fn is not None
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
                result = call.run_alone()
        except Exception as exc:
            call.future.set_exception(exc)
        else:
            call.future.set_result(result)


def _write_batches(group: list[_Call]) -> dict[int, Any]:
    """The result of each batched call of `group` (by the call's id), each `write_many` called once
    with its calls' items in the group's order."""
    by_writer: dict[Any, list[_Call]] = {}
    for call in group:
        if call.batched is not None:
            by_writer.setdefault(call.batched.write_many, []).append(call)
    written: dict[int, Any] = {}
    for write_many, calls in by_writer.items():
        results = write_many([c.batched.item for c in calls if c.batched is not None])
        if len(results) != len(calls):
            raise RuntimeError(f"{write_many!r} returned {len(results)} results for {len(calls)} items")
        written.update((id(c), r) for c, r in zip(calls, results, strict=True))
    return written


def _deferring_audit(fn: Callable[[], T], into: list[AuditEntry]) -> T:
    with audit_deferred(into):
        return fn()


final_writes = GroupCommitter()
