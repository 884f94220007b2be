"""The canonical content of an audit row and the chain hash over it. Pure functions, shared by
the writer and the verifier so they cannot drift apart."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

CHAINED_FIELDS = (
    "seq", "occurred_at", "kind", "outcome", "user_id", "username", "role", "facility_id",
    "source_ip", "request_id", "channel", "object_type", "object_id", "patient_id", "details",
)  # fmt: skip


def _iso(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(fields: dict[str, Any]) -> str:
    content = {name: fields[name] for name in CHAINED_FIELDS}
    content["occurred_at"] = _iso(fields["occurred_at"])
    return json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))


def chain_hash(prev_hash: str, fields: dict[str, Any]) -> str:
    payload = prev_hash + "\n" + canonical_content(fields)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
