"""The review queries stay index-driven at volume: 50,000 events on PostgreSQL, EXPLAIN ANALYZE on
each search the page makes. (At millions of rows the same plans hold; docs/security.md has the
timings measured at 2,000,000.)"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from audit.selectors import AuditQuery, _filtered, scoped_events

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

ROWS = int(os.environ.get("AUDIT_PLAN_ROWS", "50000"))
FACILITIES = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]


def fill(rows: int) -> None:
    """Events spread like a real trail: 10 facilities, 20,000 patients, 300 users, a year of time;
    10% without a facility (logins)."""
    with connection.cursor() as cursor:
        cursor.execute(
            """
            INSERT INTO audit_auditevent (seq, occurred_at, kind, outcome, user_id, username, role, facility_id,
                source_ip, request_id, channel, object_type, object_id, patient_id, details, prev_hash, hash)
            SELECT g, now() - interval '365 days' + (g * interval '365 days' / %(rows)s),
                   (ARRAY['phi_read','phi_read','phi_read','phi_search','update','create','login','export',
                          'import','sign'])[1 + g %% 10],
                   CASE WHEN g %% 50 = 0 THEN 'failure' ELSE 'success' END,
                   1 + (g * 7) %% 300, 'user' || (1 + (g * 7) %% 300), 'physician',
                   CASE WHEN g %% 10 = 0 THEN NULL ELSE 1 + (g * 13) %% 10 END,
                   '10.0.0.1', md5(g::text), 'web', 'clinical.patient', (1 + (g * 31) %% 20000)::text,
                   CASE WHEN g %% 10 = 0 THEN NULL ELSE 1 + (g * 31) %% 20000 END,
                   '{}'::jsonb, md5((g - 1)::text) || md5((g - 1)::text), md5(g::text) || md5(g::text)
            FROM generate_series(1, %(rows)s) AS g
            """,
            {"rows": rows},
        )
        cursor.execute("ANALYZE audit_auditevent")


@pytest.fixture
def filled() -> Iterator[None]:
    if connection.vendor != "postgresql":
        pytest.skip("plans are measured on PostgreSQL")
    fill(ROWS)
    yield


def _plan(qs: Any) -> dict[str, Any]:
    raw = qs.explain(format="json", analyze=True)
    plan: dict[str, Any] = json.loads(raw)[0]
    return plan


def _nodes(node: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield node
    for child in node.get("Plans", []):
        yield from _nodes(child)


def _page(query: AuditQuery, before: int | None = None) -> Any:
    qs = _filtered(facility_ids=[1, 2], query=query)
    if before is not None:
        qs = qs.filter(seq__lt=before)
    return qs.order_by("-seq")[:51]


QUERIES = {
    "latest": AuditQuery(),
    "deep page": AuditQuery(),
    "patient": AuditQuery(patient_ids=(4242,)),
    "user": AuditQuery(user_id=17),
    "kind (rare)": AuditQuery(kinds=("sign",)),
    "failures": AuditQuery(outcome="failure"),
    "object": AuditQuery(object_type="clinical.patient", object_id="4242"),
    "one old day": AuditQuery(since=timezone.now() - dt.timedelta(days=200),
                              until=timezone.now() - dt.timedelta(days=199)),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_each_search_is_served_by_an_index_in_milliseconds(filled: None, name: str) -> None:
    before = ROWS // 2 if name == "deep page" else None
    plan = _plan(_page(QUERIES[name], before))
    nodes = list(_nodes(plan["Plan"]))
    scans = {n["Node Type"] for n in nodes if "Scan" in n["Node Type"]}
    print(f"\n{name}: {plan['Execution Time']:.2f} ms, {sorted(scans)}, "
          f"indexes={sorted({n.get('Index Name', '') for n in nodes} - {''})}")
    assert "Seq Scan" not in scans, json.dumps(plan, indent=1)
    assert plan["Execution Time"] < 50


def test_a_patients_history_is_served_by_the_patient_index(filled: None) -> None:
    qs = scoped_events(facility_ids=FACILITIES).filter(patient_id__in=[4242]).order_by("-seq")[:501]
    plan = _plan(qs)
    names = {n.get("Index Name") for n in _nodes(plan["Plan"])}
    print(f"\nhistory: {plan['Execution Time']:.2f} ms {names}")
    assert names & {"audit_patient_seq", "audit_patient_time"}
    assert plan["Execution Time"] < 50
