"""The physician's worklist: unsigned reports of the facilities where they sign (administrators may
look), urgent first, filters, the list body alone for live refresh, drafts being generated, and a
number of queries that does not grow with the list."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from django.test import Client

from inference import services as inference_services
from inference.models import ModelVersion
from reports import services
from reports.models import Priority, Report
from tests.conftest import PASSWORD, Personas
from tests.inference.conftest import make_visit
from tests.reports.conftest import GOOD_DRAFT, WRONG_DRAFT

pytestmark = pytest.mark.django_db


def _order(html: str) -> list[int]:
    return [int(pk) for pk in re.findall(r'<tr data-report="(\d+)"', html)]


def _prioritise(report: Report, priority: int) -> Report:
    Report.objects.filter(pk=report.pk).update(priority=priority)
    return report


def test_it_lists_unsigned_reports_urgent_first_then_oldest_first(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    routine_old = _prioritise(draft_report(), Priority.ROUTINE)
    follow_up = _prioritise(draft_report(), Priority.FOLLOW_UP)
    routine_new = _prioritise(draft_report(), Priority.ROUTINE)
    critical = _prioritise(draft_report(), Priority.CRITICAL)
    signed = draft_report()
    services.report_sign(report=signed, actor=personas.physician_a, revision_number=1, method="password",
                         credential=PASSWORD)
    other_facility = draft_report(facility=personas.facility_b)
    response = client_for("physician_a").get("/reports/")
    assert response.status_code == 200
    order = _order(response.content.decode())
    assert order == [critical.pk, follow_up.pk, routine_old.pk, routine_new.pk]
    assert signed.pk not in order and other_facility.pk not in order
    assert _order(client_for("physician_b").get("/reports/").content.decode()) == [other_facility.pk]


def test_it_shows_each_rows_flags_status_and_assignee(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    flagged = draft_report(WRONG_DRAFT)
    edited = draft_report()
    services.revision_save(report=edited, actor=personas.physician_a, base_number=1, text="所見を書き直しました。")
    html = client_for("physician_a").get("/reports/").content.decode()
    flagged_row = html[html.index(f'data-report="{flagged.pk}"'):].split("</tr>")[0]
    edited_row = html[html.index(f'data-report="{edited.pk}"'):].split("</tr>")[0]
    assert "要確認 1 件" in flagged_row and "下書き" in flagged_row
    assert "確認中" in edited_row and "第2版" in edited_row and "physician_a 氏" in edited_row


def test_it_filters_by_status_kind_priority_and_assignment(
        personas: Personas, client_for: Callable[[str], Client], draft_report: Callable[..., Report]) -> None:
    mine = draft_report()
    services.revision_save(report=mine, actor=personas.physician_a, base_number=1, text="担当しました。")
    urgent = _prioritise(draft_report(), Priority.CRITICAL)
    client = client_for("physician_a")

    def rows(query: str) -> list[int]:
        return _order(client.get(f"/reports/?{query}").content.decode())

    assert rows("status=in_review") == [mine.pk]
    assert rows("status=draft") == [urgent.pk]
    assert rows("mine=on") == [mine.pk]
    assert rows("priority=2") == [urgent.pk]
    assert rows("kind=cxr") == []
    assert rows("kind=checkup_summary") == [urgent.pk, mine.pk]


@pytest.mark.parametrize(("who", "status"), [("physician_a", 200), ("admin_a", 200), ("staff_a", 403),
                                             ("auditor_a", 403)])
def test_it_opens_for_physicians_and_administrators_only(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], who: str, status: int) -> None:
    report = draft_report()
    response = client_for(who).get("/reports/")
    assert response.status_code == status
    if status == 200:
        html = response.content.decode()
        assert _order(html) == [report.pk]
        # Only those who sign get the live feed (the worklist websocket refuses the others).
        assert ('data-ws="/ws/worklist/"' in html) == (who == "physician_a")


def test_it_answers_the_list_body_alone_for_the_live_refresh(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], audit_events: Any) -> None:
    report = draft_report()
    response = client_for("physician_a").get("/reports/?partial=1&status=draft")
    html = response.content.decode()
    assert "<html" not in html and _order(html) == [report.pk]
    assert audit_events(kind="phi_search", object_type="reports.report")[-1].details["filters"] == {"status": "draft"}


def test_it_shows_drafts_being_generated(
        personas: Personas, client_for: Callable[[str], Client], canned: Callable[..., ModelVersion]) -> None:
    visit = make_visit(personas.facility_a, mrn="Q0001")
    job = inference_services.job_create(actor=personas.physician_a, visit=visit, model_version=canned(WRONG_DRAFT))
    html = client_for("physician_a").get("/reports/").content.decode()
    assert "生成中の下書き" in html and f'href="/inference/jobs/{job.pk}/"' in html


def _queries(client: Client, django_assert_num_queries: Any, expected: int) -> None:
    with django_assert_num_queries(expected):
        assert client.get("/reports/").status_code == 200


# Session, user, OTP device, the second-factor check, the user's facility permissions (one query for
# every permission the page and its navigation ask about: clinical.scoping), the rows (one query,
# however many), the audit event (chain head lock; insert and head update in one statement), the
# running drafts, and the memberships for the bar.
WORKLIST_QUERIES = 10


@pytest.mark.parametrize("size", [1, 6])
def test_the_worklist_costs_the_same_queries_for_any_number_of_rows(
        client_for: Callable[[str], Client], draft_report: Callable[..., Report], django_assert_num_queries: Any,
        size: int) -> None:
    for i in range(size):
        report = draft_report(WRONG_DRAFT if i % 2 else GOOD_DRAFT)
    client = client_for("physician_a")
    client.get("/reports/")  # warm per-process caches (content types, rule sets)
    _queries(client, django_assert_num_queries, WORKLIST_QUERIES)
    assert report.pk in _order(client.get("/reports/").content.decode())


def test_it_shows_the_most_urgent_page_and_says_the_list_goes_on(
        draft_report: Callable[..., Report], client_for: Callable[[str], Client],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from reports import selectors

    monkeypatch.setattr(selectors, "WORKLIST_SIZE", 2)
    routine, urgent, also = draft_report(), _prioritise(draft_report(), Priority.CRITICAL), draft_report()
    html = client_for("physician_a").get("/reports/").content.decode()
    assert _order(html) == [urgent.pk, routine.pk] and also.pk not in _order(html)
    assert 'id="worklist-truncated"' in html and "上位 2 件" in html
    monkeypatch.setattr(selectors, "WORKLIST_SIZE", 4)
    assert 'id="worklist-truncated"' not in client_for("physician_a").get("/reports/").content.decode()
