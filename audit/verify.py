"""Walking the chain: finds the first row that was edited, removed or moved."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from audit.hashing import CHAINED_FIELDS, GENESIS_HASH, chain_hash
from audit.models import AuditChainHead, AuditEvent


@dataclass(frozen=True)
class ChainBreak:
    seq: int
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    checked: int
    first_break: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


def _rows() -> Iterable[dict[str, Any]]:
    return AuditEvent.objects.order_by("seq").values(*CHAINED_FIELDS, "prev_hash", "hash").iterator(
        chunk_size=5000
    )


def verify_chain() -> VerifyResult:
    expected_prev = GENESIS_HASH
    expected_seq = 1
    checked = 0
    for row in _rows():
        seq = row["seq"]
        if seq != expected_seq:
            return VerifyResult(checked, ChainBreak(expected_seq, f"連番 {expected_seq} が欠落しています（削除）"))
        if row["prev_hash"] != expected_prev:
            return VerifyResult(checked, ChainBreak(seq, "直前の行のハッシュと一致しません（削除または並べ替え）"))
        if chain_hash(row["prev_hash"], row) != row["hash"]:
            return VerifyResult(checked, ChainBreak(seq, "内容がハッシュと一致しません（改ざん）"))
        expected_prev = row["hash"]
        expected_seq += 1
        checked += 1
    head = AuditChainHead.objects.filter(id=1).first()
    last_seq, last_hash = (head.last_seq, head.last_hash) if head else (0, GENESIS_HASH)
    if last_seq != checked or last_hash != expected_prev:
        return VerifyResult(
            checked, ChainBreak(checked + 1, f"末尾の行が欠落しています（記録上の最終連番 {last_seq}）")
        )
    return VerifyResult(checked, None)
