"""Group commit of the jobs' final writes: jobs that end together share one transaction (a group
with an error runs again call by call), and every caller gets its own result once committed."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from django.db import connection

from audit.context import RequestContext, acting
from audit.kinds import EventKind
from audit.models import AuditEvent
from audit.services import audit_record
from inference.group_commit import GroupCommitter
from tests.conftest import close_other_connections

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _close_thread_connections() -> Any:
    yield
    close_other_connections()


def _write(tag: str) -> Callable[[], str]:
    def fn() -> str:
        audit_record(kind=EventKind.UPDATE, object_type="test.group", object_id=tag)
        return tag
    return fn


def _queued_behind_a_busy_committer(committer: GroupCommitter, fns: list[Any],
                                    submit: Callable[[GroupCommitter, Any], Any] = GroupCommitter.run) -> list[Any]:
    """Holds the committer's thread in a first call until `fns` are all waiting, so that they form
    one group (each submitted by `submit(committer, fn)`); returns what each caller got (a result or
    the exception it raised)."""
    busy, release = threading.Event(), threading.Event()

    def first() -> str:
        busy.set()
        release.wait(10)
        return "first"

    def call(fn: Any, how: Callable[[GroupCommitter, Any], Any] = submit) -> Any:
        try:
            return how(committer, fn)
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(len(fns) + 1) as pool:
        head = pool.submit(call, first, GroupCommitter.run)
        assert busy.wait(10)
        waiting = [pool.submit(call, fn) for fn in fns]
        while committer._calls.qsize() < len(fns):
            threading.Event().wait(0.01)
        release.set()
        assert head.result(10) == "first"
        return [f.result(10) for f in waiting]


def test_jobs_that_end_together_commit_in_one_group_and_each_caller_gets_its_own_result() -> None:
    committer = GroupCommitter(name="test-group-commit")
    results = _queued_behind_a_busy_committer(committer, [_write(f"job-{i}") for i in range(5)])
    assert results == [f"job-{i}" for i in range(5)]
    assert (committer.groups, committer.grouped_calls) == (1, 5)
    events = list(AuditEvent.objects.filter(object_type="test.group").order_by("seq"))
    assert [e.object_id for e in events] == [f"job-{i}" for i in range(5)]


def test_one_jobs_error_undoes_only_its_own_writes_and_reaches_only_its_caller() -> None:
    def broken() -> str:
        audit_record(kind=EventKind.UPDATE, object_type="test.group", object_id="broken")
        raise ValueError("the report could not be written")

    committer = GroupCommitter(name="test-group-commit")
    results = _queued_behind_a_busy_committer(committer, [_write("a"), broken, _write("b")])
    assert results[0] == "a" and results[2] == "b"
    assert isinstance(results[1], ValueError) and "could not be written" in str(results[1])
    assert sorted(AuditEvent.objects.filter(object_type="test.group").values_list("object_id", flat=True)) == ["a", "b"]


def test_a_call_runs_in_its_callers_audit_context() -> None:
    committer = GroupCommitter(name="test-group-commit")
    with acting(RequestContext(request_id="task-42", channel="task")):
        committer.run(_write("ctx"))
    event = AuditEvent.objects.get(object_type="test.group", object_id="ctx")
    assert (event.request_id, event.channel) == ("task-42", "task")


def test_inside_the_callers_own_transaction_the_call_runs_inline_in_it() -> None:
    from django.db import transaction

    committer = GroupCommitter(name="test-group-commit")
    with transaction.atomic():
        assert committer.run(lambda: connection.in_atomic_block) is True
        committer.run(_write("inline"))
        transaction.set_rollback(True)
    assert not AuditEvent.objects.filter(object_type="test.group").exists()
    assert committer.groups == 0


def test_inline_a_failing_call_undoes_only_its_own_writes_in_the_callers_transaction() -> None:
    """The final writes take no savepoint of their own (a group reruns call by call instead); run
    inline, the call gets one, so the caller's transaction goes on after an error."""
    from django.db import transaction

    def broken() -> str:
        with transaction.atomic(savepoint=False):  # as job_fail / job_finish write
            audit_record(kind=EventKind.UPDATE, object_type="test.group", object_id="broken")
            raise ValueError("the report could not be written")

    committer = GroupCommitter(name="test-group-commit")
    with transaction.atomic():
        with pytest.raises(ValueError, match="could not be written"):
            committer.run(broken)
        committer.run(_write("after"))  # the caller's transaction is still usable
    assert list(AuditEvent.objects.filter(object_type="test.group").values_list("object_id", flat=True)) == ["after"]


def test_a_groups_audit_events_are_appended_last_each_with_its_callers_context() -> None:
    committer = GroupCommitter(name="test-group-commit")

    def as_task(tag: str) -> Callable[[], str]:
        # The call runs in a copy of its caller's context: here the context is set inside it.
        def fn() -> str:
            with acting(RequestContext(request_id=f"task-{tag}", channel="task")):
                return _write(tag)()
        return fn

    results = _queued_behind_a_busy_committer(committer, [as_task("x"), as_task("y")])
    assert results == ["x", "y"] and committer.groups == 1
    events = {e.object_id: e for e in AuditEvent.objects.filter(object_type="test.group")}
    assert {k: (e.request_id, e.channel) for k, e in events.items()} == {"x": ("task-x", "task"),
                                                                         "y": ("task-y", "task")}
    assert events["y"].seq == events["x"].seq + 1


def test_events_a_grouped_call_appends_together_are_also_appended_after_the_groups_rows() -> None:
    from audit.services import AuditEntry, audit_record_many

    committer = GroupCommitter(name="test-group-commit")

    def many() -> int:
        with acting(RequestContext(request_id="task-many", channel="task")):
            audit_record_many([AuditEntry(kind=EventKind.UPDATE, object_type="test.group", object_id=f"m{i}")
                               for i in range(2)])
        return AuditEvent.objects.filter(object_type="test.group").count()  # none yet: queued to the end

    assert _queued_behind_a_busy_committer(committer, [many, _write("z")]) == [0, "z"]
    events = list(AuditEvent.objects.filter(object_type="test.group").order_by("seq"))
    assert [(e.object_id, e.request_id) for e in events] == [("m0", "task-many"), ("m1", "task-many"), ("z", "")]


# --- batched calls: one write for the group's items, then each call's own `then` -------------------


class _Rows:
    """A `write_many` that records what it was given: an audit event per item, in one call."""

    def __init__(self, refuse: str = "") -> None:
        self.calls: list[list[str]] = []
        self.refuse = refuse

    def __call__(self, items: list[str]) -> list[str]:
        self.calls.append(list(items))
        if self.refuse in items:
            raise ValueError(f"cannot write {self.refuse}")
        for item in items:
            audit_record(kind=EventKind.UPDATE, object_type="test.rows", object_id=item)
        return [f"row-{item}" for item in items]


def _then(tag: str) -> Callable[[str], str]:
    def then(row: str) -> str:
        audit_record(kind=EventKind.UPDATE, object_type="test.group", object_id=tag)
        return f"{row}+{tag}"
    return then


def _batched(rows: _Rows) -> Callable[[GroupCommitter, str], Any]:
    return lambda committer, item: committer.run_batched(rows, item, _then(item))


def test_the_batched_calls_of_a_group_are_written_in_one_call_then_each_gets_its_own_result() -> None:
    committer = GroupCommitter(name="test-group-commit")
    rows = _Rows()
    results = _queued_behind_a_busy_committer(committer, ["a", "b", "c"], submit=_batched(rows))
    assert results == ["row-a+a", "row-b+b", "row-c+c"]
    assert rows.calls == [["a", "b", "c"]] and (committer.groups, committer.grouped_calls) == (1, 3)
    assert sorted(AuditEvent.objects.filter(object_type="test.group").values_list("object_id", flat=True)) == [
        "a", "b", "c"]


def test_a_batched_write_that_fails_is_written_again_item_by_item_and_only_its_caller_gets_the_error() -> None:
    committer = GroupCommitter(name="test-group-commit")
    rows = _Rows(refuse="b")
    results = _queued_behind_a_busy_committer(committer, ["a", "b", "c"], submit=_batched(rows))
    assert results[0] == "row-a+a" and results[2] == "row-c+c"
    assert isinstance(results[1], ValueError) and "cannot write b" in str(results[1])
    assert rows.calls == [["a", "b", "c"], ["a"], ["b"], ["c"]]
    assert sorted(AuditEvent.objects.filter(object_type="test.rows").values_list("object_id", flat=True)) == ["a", "c"]


def test_a_batched_call_runs_then_in_its_callers_audit_context_and_inline_in_its_transaction() -> None:
    from django.db import transaction

    committer = GroupCommitter(name="test-group-commit")
    rows = _Rows()
    with acting(RequestContext(request_id="task-7", channel="task")):
        assert committer.run_batched(rows, "ctx", _then("ctx")) == "row-ctx+ctx"
    event = AuditEvent.objects.get(object_type="test.group", object_id="ctx")
    assert (event.request_id, event.channel) == ("task-7", "task")
    with transaction.atomic():
        assert committer.run_batched(rows, "inline", lambda row: connection.in_atomic_block) is True
        transaction.set_rollback(True)
    assert committer.groups == 0 and rows.calls == [["ctx"], ["inline"]]
