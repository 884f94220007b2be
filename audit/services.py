"""Writing audit events. Called inside the caller's transaction, so the record and the change it
records commit or roll back together (house rule 2)."""

from __future__ import annotations

import json
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.utils import timezone

from audit.context import current_context
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
    ctx = current_context()
    user_id = getattr(user, "pk", None) if user is not None else (ctx.user_id if ctx else None)
    if username is None:
        username = getattr(user, "username", "") if user is not None else (ctx.username if ctx else "")
    with transaction.atomic():
        # Lock the head so concurrent writers append one after another (a strict chain).
        # The row exists from the migration on; recreated only if someone removed it (a restore of
        # an old dump), not probed with an INSERT on every event (see audit migration 0004).
        head = AuditChainHead.objects.select_for_update().filter(id=1).first()
        if head is None:
            AuditChainHead.objects.bulk_create([AuditChainHead(id=1)], ignore_conflicts=True)
            head = AuditChainHead.objects.select_for_update().get(id=1)
        fields: dict[str, Any] = {
            "seq": head.last_seq + 1,
            "occurred_at": timezone.now(),
            "kind": str(kind),
            "outcome": str(outcome),
            "user_id": user_id,
            "username": username or "",
            "role": role,
            "facility_id": facility_id,
            "source_ip": ctx.source_ip if ctx else None,
            "request_id": ctx.request_id if ctx else "",
            "channel": ctx.channel if ctx else "",
            "object_type": object_type,
            "object_id": str(object_id),
            "patient_id": patient_id,
            "details": _json_safe(details),
        }
        digest = chain_hash(head.last_hash, fields)
        event = AuditEvent.objects.create(prev_hash=head.last_hash, hash=digest, **fields)
        head.last_seq = event.seq
        head.last_hash = digest
        head.save(update_fields=["last_seq", "last_hash"])
    return event


def audit_read_record(**kwargs: Any) -> AuditEvent:
    """`audit_record` for a read that changes nothing else (a websocket watching a job, say), in its
    own transaction committed without waiting for a WAL flush on PostgreSQL. The event is written
    and chained exactly as before; a database crash may lose the last fraction of a second of such
    events, always a tail of the chain, never a hole. AUDIT_READ_ASYNC=0 turns this off."""
    from django.conf import settings
    from django.db import connection

    if not getattr(settings, "AUDIT_READ_ASYNC", True) or connection.vendor != "postgresql":
        return audit_record(**kwargs)
    with transaction.atomic():  # inside an outer transaction, SET LOCAL applies to that one: harmless
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit TO OFF")
        return audit_record(**kwargs)
