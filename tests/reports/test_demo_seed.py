"""`make run` seeds signed reports so that a new user sees the letter, the FHIR export and the
quality dashboard working: the demo physicians sign some template drafts, one is amended, the
rest wait in the worklists."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command

from inference import runner
from reports.models import Report, ReportQuality, ReportStatus, SignOff

pytestmark = pytest.mark.django_db


def test_the_demo_seed_signs_amends_and_leaves_drafts_and_verifies(monkeypatch: pytest.MonkeyPatch,
                                                                    settings: Any) -> None:
    monkeypatch.setattr(runner.heartbeat, "add", lambda job_id, held: None)  # see tests/reports/conftest.py
    settings.INFERENCE_AUTO_DRAFT = True  # as in the demo (this directory's fixtures turn it off)
    call_command("seed_demo", verbosity=0)
    call_command("seed_models", verbosity=0)
    call_command("seed_reports", verbosity=0)
    statuses = list(Report.objects.values_list("status", flat=True))
    assert statuses.count(ReportStatus.SIGNED) == 4 and statuses.count(ReportStatus.AMENDED) == 2
    assert statuses.count(ReportStatus.DRAFT) == len(statuses) - 6 > 0
    assert SignOff.objects.count() == 8 and ReportQuality.objects.filter(is_amendment=False).count() == 6
    call_command("seed_reports", verbosity=0)  # idempotent
    assert SignOff.objects.count() == 8
    call_command("report_verify", verbosity=0)
