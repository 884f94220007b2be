"""Re-compute every sign-off's content hash from the rows as they are now. A mismatch means a signed
revision, its report, its patient or the signature row was changed after signing (on PostgreSQL
only someone who disabled the trigger can do that)."""

from __future__ import annotations

from dataclasses import dataclass, field

from reports.canonical import canonical_content, content_sha256
from reports.models import SignOff


@dataclass(frozen=True)
class Mismatch:
    signoff_id: int
    report_id: int
    revision_number: int
    stored: str
    computed: str


@dataclass
class VerifyResult:
    checked: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.mismatches


def verify_signoffs(*, batch: int = 500) -> VerifyResult:
    result = VerifyResult()
    qs = (SignOff.objects.select_related("report__patient", "revision", "physician", "amends")
          .order_by("pk"))
    for signoff in qs.iterator(chunk_size=batch):
        content = canonical_content(
            report=signoff.report, revision=signoff.revision, physician_username=signoff.physician.get_username(),
            signed_at=signoff.signed_at, method=signoff.method, confirmed=list(signoff.confirmed_numbers or []),
            amends_sha256=signoff.amends.content_sha256 if signoff.amends else "", reason=signoff.reason,
            version=signoff.canonical_version,
        )
        computed = content_sha256(content)
        result.checked += 1
        if computed != signoff.content_sha256:
            result.mismatches.append(Mismatch(signoff.pk, signoff.report_id, signoff.revision.number,
                                              signoff.content_sha256, computed))
    return result
