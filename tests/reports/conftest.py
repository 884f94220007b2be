"""Fixtures for reports: a visit of facility A with a model draft stored as revision 1 (through the
real job runner), one draft whose numbers all match the source data and one with a wrong HbA1c."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from inference import runner
from inference import services as inference_services
from inference.models import ModelVersion
from reports.models import Report
from tests.conftest import Personas

# The inference fixtures, shared: a canned engine, no auto-drafting, engines cleared after each test.
from tests.inference.conftest import _fresh_engines, _no_auto_draft, canned, make_visit  # noqa: F401

GOOD_DRAFT = ('{"findings": [{"text": "収縮期血圧 152 mmHg：受診勧奨判定値以上。", "location": "血圧", '
              '"severity": "moderate", "confidence": 1.0}], "impression": "血圧が高値です。", '
              '"follow_up": {"needed": true, "recommendation": "医療機関を受診してください。"}}')
# HbA1c was 6.8 %: the model's 6.3 must be flagged.
WRONG_DRAFT = ('{"findings": [{"text": "HbA1c 6.3 %で糖尿病の疑いがあります。", "location": "糖代謝", '
               '"severity": "moderate", "confidence": 0.9}], "impression": "血糖が高値です。", '
               '"follow_up": {"needed": true, "recommendation": "内科を受診してください。"}}')


@pytest.fixture
def draft_report(personas: Personas, request: pytest.FixtureRequest,
                 monkeypatch: pytest.MonkeyPatch) -> Callable[..., Report]:
    """A report of facility A (or `facility`) whose revision 1 is the model's `text`."""
    counter = iter(range(1, 1000))
    # The lease heartbeat runs on its own thread and database connection, which cannot see this
    # test's uncommitted job row: on a slow machine it would call the job lost mid-run.
    monkeypatch.setattr(runner.heartbeat, "add", lambda job_id, held: None)
    canned_model: Callable[..., ModelVersion] = request.getfixturevalue("canned")

    def make(text: str = GOOD_DRAFT, facility: Any = None) -> Report:
        facility = facility or personas.facility_a
        visit = make_visit(facility, mrn=f"R{next(counter):04d}")
        mv = canned_model(text)
        job = inference_services.job_create(actor=personas.physician_a if facility == personas.facility_a
                                            else personas.physician_b, visit=visit, model_version=mv)
        assert runner.run_job(job.pk) == "succeeded"
        return Report.objects.get(visit=visit)

    return make
