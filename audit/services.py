"""Writing audit events. Called inside the caller's transaction, so the record and the change it
records commit or roll back together (house rule 2)."""

from __future__ import annotations

import contextvars
import dataclasses
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Model
from django.db.models.sql.subqueries import InsertQuery
from django.utils import timezone

from audit import syslog
from audit.context import RequestContext, current_context
from audit.hashing import chain_hash
from audit.kinds import EventKind, Outcome
from audit.models import AuditChainHead, AuditEvent


def _json_safe(details: dict[str, Any] | None) -> dict[str, Any]:
    # Store exactly what was hashed: Decimals, dates and UUIDs become strings before hashing.
    return json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder, ensure_ascii=False))


def audit_record(
    *,
    kind: EventKind | str,
    outcome: Outcome | str = Outcome.SUCCESS,
    user: Any | None = None,
    role: str = "",
    facility_id: int | None = None,
    object_type: str = "",
    object_id: str | int = "",
    patient_id: int | None = None,
    details: dict[str, Any] | None = None,
    username: str | None = None,
) -> AuditEvent:
    """Append one event to the chain. `user` defaults to the acting user of the request context."""
    # Asked before opening our own transaction: inside a caller's, the setting would also cover the
    # caller's writes (audit_read_record is for callers that know theirs holds none).
    commit_async = str(kind) in READ_KINDS and _read_async_enabled() and not connection.in_atomic_block
    entry = AuditEntry(kind=kind, outcome=outcome, user=user, role=role, facility_id=facility_id,
                       object_type=object_type, object_id=object_id, patient_id=patient_id, details=details,
                       username=username)
    if _deferring():
        return _queue([entry])[0]
    with transaction.atomic(savepoint=False):  # see _append: no savepoint of its own
        if commit_async:
            _commit_without_flush()
        return _append([entry])[0]


@dataclass(frozen=True)
class AuditEntry:
    """One event for `audit_record_many` (the arguments of `audit_record`)."""

    kind: EventKind | str
    outcome: Outcome | str = Outcome.SUCCESS
    user: Any | None = None
    role: str = ""
    facility_id: int | None = None
    object_type: str = ""
    object_id: str | int = ""
    patient_id: int | None = None
    details: dict[str, Any] | None = None
    username: str | None = None
    context: RequestContext | None = None  # who acted, when it is not the appending thread's context
    occurred_at: datetime | None = None


_deferred: contextvars.ContextVar[list[AuditEntry] | None] = contextvars.ContextVar("audit_deferred", default=None)


@contextmanager
def audit_deferred(into: list[AuditEntry]) -> Iterator[None]:
    """Inside a transaction, `audit_record` calls in this block queue their events in `into` (with
    their acting context and time) instead of appending them; the caller appends them with
    `audit_record_many` in the same transaction, after its other writes. For a transaction that
    writes many rows (`inference.group_commit`): it takes the chain head's lock last, after its row
    locks, as every other transaction does, so it never holds the head while waiting for a row that
    a transaction waiting for the head holds (a deadlock)."""
    token = _deferred.set(into)
    try:
        yield
    finally:
        _deferred.reset(token)


def audit_record_many(entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append several events in order, inside the caller's transaction, taking the chain head's lock
    once and inserting them together: the same chain as one `audit_record` per entry, without a lock
    round trip and two writes per event (an import that queues 500 drafts writes 500 events)."""
    if not entries:
        return []
    if _deferring():
        return _queue(entries)
    with transaction.atomic(savepoint=False):  # see _append: no savepoint of its own
        return _append(entries)


def _deferring() -> bool:
    return _deferred.get() is not None and connection.in_atomic_block


def _queue(entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Inside `audit_deferred`: keep the entries, with who acted and when, for the caller to append;
    the events returned are not saved (no caller reads them back)."""
    queued, ctx, now = _deferred.get(), current_context(), timezone.now()
    assert queued is not None
    queued.extend(dataclasses.replace(e, context=e.context or ctx, occurred_at=e.occurred_at or now) for e in entries)
    return [AuditEvent(kind=str(e.kind), outcome=str(e.outcome), object_type=e.object_type, object_id=str(e.object_id))
            for e in entries]


def _append(entries: Sequence[AuditEntry]) -> list[AuditEvent]:
    """Append `entries` to the chain in the caller's transaction: lock the head, write the events
    and the head's new position, forward them to syslog once committed.

    No savepoint of its own inside a caller's transaction (`atomic(savepoint=False)` above): a
    savepoint let a caller catch a failed append and commit its change without the event (house
    rule 2), and cost two round trips per append, each a wait for the interpreter lock in a busy
    GPU worker (its group commit of 44 final writes: 8 round trips, 3–12 ms of wall time each for
    0.2–1 ms of CPU, bench/inference_stack.py). A failed append now fails the caller's transaction."""
    # Lock the head so concurrent writers append one after another (a strict chain).
    # The row exists from the migration on; recreated only if someone removed it (a restore of
    # an old dump), not probed with an INSERT on every event (see audit migration 0004).
    head = AuditChainHead.objects.select_for_update().filter(id=1).first()
    if head is None:
        AuditChainHead.objects.bulk_create([AuditChainHead(id=1)], ignore_conflicts=True)
        head = AuditChainHead.objects.select_for_update().get(id=1)
    events: list[AuditEvent] = []
    seq, last_hash = head.last_seq, head.last_hash
    for entry in entries:
        ctx = entry.context or current_context()
        user = entry.user
        user_id = getattr(user, "pk", None) if user is not None else (ctx.user_id if ctx else None)
        username = entry.username
        if username is None:
            username = getattr(user, "username", "") if user is not None else (ctx.username if ctx else "")
        seq += 1
        fields: dict[str, Any] = {
            "seq": seq,
            "occurred_at": entry.occurred_at or timezone.now(),
            "kind": str(entry.kind),
            "outcome": str(entry.outcome),
            "user_id": user_id,
            "username": username or "",
            "role": entry.role,
            "facility_id": entry.facility_id,
            "source_ip": ctx.source_ip if ctx else None,
            "request_id": ctx.request_id if ctx else "",
            "channel": ctx.channel if ctx else "",
            "object_type": entry.object_type,
            "object_id": str(entry.object_id),
            "patient_id": entry.patient_id,
            "details": _json_safe(entry.details),
        }
        digest = chain_hash(last_hash, fields)
        events.append(AuditEvent(prev_hash=last_hash, hash=digest, **fields))
        last_hash = digest
    _write(events, seq, last_hash)
    syslog.forward_after_commit(events)
    return events


def _write(events: list[AuditEvent], seq: int, last_hash: str) -> None:
    """Insert `events` and move the head to (`seq`, `last_hash`). On PostgreSQL in one statement: the
    INSERT … RETURNING in a WITH beside the head's UPDATE (two round trips before). SQLite (the
    embedded demo) has no data-modifying WITH: two statements there."""
    if connection.vendor != "postgresql":
        AuditEvent.objects.bulk_create(events)
        AuditChainHead.objects.filter(id=1).update(last_seq=seq, last_hash=last_hash)
        return
    meta = AuditEvent._meta
    query = InsertQuery(AuditEvent)
    query.insert_values([f for f in meta.concrete_fields if not f.primary_key], cast("list[Model]", events))
    compiler = query.get_compiler(connection=connection)
    compiler.returning_fields = [meta.get_field("seq"), meta.pk]
    [(insert_sql, params)] = compiler.as_sql()
    head = connection.ops.quote_name(AuditChainHead._meta.db_table)
    with connection.cursor() as cursor:
        cursor.execute(f"WITH written AS ({insert_sql}), "  # noqa: S608  (table names from the models)
                       f"moved AS (UPDATE {head} SET last_seq = %s, last_hash = %s WHERE id = 1 RETURNING 1) "
                       "SELECT written.*, (SELECT 1 FROM moved) FROM written", (*params, seq, last_hash))
        rows = cursor.fetchall()
    ids = {row[0]: row[1] for row in rows}  # seq → id: the events are matched by their sequence number
    if len(ids) != len(events) or any(row[2] != 1 for row in rows):
        raise RuntimeError(f"audit append wrote {len(ids)} of {len(events)} events or did not move the chain head")
    for event in events:
        event.pk = ids[event.seq]
        event._state.adding = False
        event._state.db = connection.alias


READ_KINDS = frozenset({EventKind.PHI_READ.value, EventKind.PHI_SEARCH.value})


def _read_async_enabled() -> bool:
    from django.conf import settings

    return bool(getattr(settings, "AUDIT_READ_ASYNC", True)) and connection.vendor == "postgresql"


def _commit_without_flush() -> None:
    """A read changes nothing but the log, so its transaction may commit without waiting for the
    WAL flush, which it would otherwise do while holding the chain head's lock, queueing every
    other request's audit write behind a disk sync (bench/web_load.py; DICOMweb QIDO p95 was
    dominated by it). Written and chained exactly as before; a database crash may lose the last
    fraction of a second of read events, always a tail of the chain, never a hole. Writes stay
    synchronous. AUDIT_READ_ASYNC=0 (environment) turns it off."""
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL synchronous_commit TO OFF")


def audit_read_record(**kwargs: Any) -> AuditEvent:
    """`audit_record` of a read whose caller holds no writes in any surrounding transaction (a
    DICOMweb search or frame, a websocket connect): committed without a WAL flush even when
    called inside one (PHI reads that are their own transaction get this from audit_record)."""
    if not _read_async_enabled():
        return audit_record(**kwargs)
    with transaction.atomic(savepoint=False):
        _commit_without_flush()
        return audit_record(**kwargs)
