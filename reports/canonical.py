"""The canonical content a physician signs, and its SHA-256.

One JSON document (sorted keys, no insignificant whitespace, UTF-8) over what the signature vouches
for: the patient, the report, the revision's text and structured findings, the model provenance of
the draft it came from, and the signature itself (who, when, how, which flagged numbers were
confirmed, which earlier signature it amends). `report_verify` rebuilds it from the database rows
and compares hashes, so a row altered after signing is found. Changing what goes in here needs a
new CANONICAL_VERSION (old sign-offs keep verifying under the version they were made with)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from reports.models import Report, ReportRevision
from reports.quality import model_draft_of

CANONICAL_VERSION = 1


def _provenance(revision: ReportRevision) -> dict[str, Any]:
    """The model draft this revision descends from (the report's first model-authored revision)."""
    draft = model_draft_of(revision)
    if draft is None:
        return {}
    mv = draft.author_model_version
    return {
        "draft_revision": draft.number,
        "model": draft.author_model_label,
        "model_version_id": draft.author_model_version_id,
        "weights_sha256": mv.weights_sha256 if mv else "",
        "prompt_version": draft.prompt_version,
        "source_job": draft.source_job_id,
        "inputs_sha256": (draft.inputs or {}).get("sha256", ""),
    }


def canonical_content(*, report: Report, revision: ReportRevision, physician_username: str, signed_at: datetime,
                      method: str, confirmed: list[str], amends_sha256: str = "", reason: str = "",
                      version: int = CANONICAL_VERSION) -> dict[str, Any]:
    if version != 1:
        raise ValueError(f"unknown canonical version {version}")
    patient = report.patient
    return {
        "canonical_version": version,
        "patient": None if patient is None else {
            "id": patient.pk, "mrn": patient.mrn, "name": f"{patient.family_name} {patient.given_name}",
            "birth_date": patient.birth_date.isoformat(), "sex": patient.sex,
        },
        "report": {"id": report.pk, "kind": report.kind, "facility_id": report.facility_id,
                   "visit_id": report.visit_id, "study_id": report.study_id},
        "revision": {"id": revision.pk, "number": revision.number, "kind": revision.kind, "text": revision.text,
                     "findings": revision.findings, "amendment_reason": revision.amendment_reason},
        "provenance": _provenance(revision),
        "signature": {"physician": physician_username, "signed_at": signed_at.isoformat(), "method": method,
                      "confirmed_numbers": sorted(confirmed), "amends_sha256": amends_sha256, "reason": reason},
    }


def content_sha256(content: dict[str, Any]) -> str:
    payload = json.dumps(content, ensure_ascii=False, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
