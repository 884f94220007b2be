"""Staff screens: the worklist (query count independent of page size), a visit coloured by judgement
with reasons, trend charts with thresholds, all scoped and audited."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import pytest
from django.test import Client
from pytest_django import DjangoAssertNumQueries

from audit.models import AuditEvent
from clinical.judging import visits_screen
from clinical.models import CheckupVisit, ImportBatch, Observation, Patient
from tests.checkups.test_import import GOOD
from tests.conftest import Personas
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db


def _visits(personas: Personas, n: int) -> list[CheckupVisit]:
    visits = []
    for i in range(n):
        patient = PatientFactory.create(facility=personas.facility_a)
        visit = CheckupVisit.objects.create(facility=personas.facility_a, patient=patient,
                                            exam_date=dt.date(2024, 4, 1) + dt.timedelta(days=i), course="tokutei",
                                            fasting=True)
        Observation.objects.create(visit=visit, item="sbp", value_num=120 + i * 5, unit="mmHg")
        visits.append(visit)
    visits_screen(visit_ids=[v.pk for v in visits])
    return visits


@pytest.mark.parametrize("count", [2, 20])
def test_the_worklist_costs_the_same_queries_at_any_size(
    client_for: Callable[[str], Client], personas: Personas, count: int,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    _visits(personas, count)
    client = client_for("staff_a")
    client.get("/visits/")
    with django_assert_num_queries(10):  # its audit event: head lock, then insert + head update in one
        response = client.get("/visits/")
    assert response.status_code == 200
    assert response.content.decode().count('class="flagged"') == sum(1 for i in range(count) if 120 + i * 5 >= 140)


def test_the_worklist_filters_by_item_judgement(client_for: Callable[[str], Client], personas: Personas) -> None:
    visits = _visits(personas, 6)  # SBP 120, 125, 130, 135, 140, 145
    html = client_for("staff_a").get("/visits/?item=sbp&outcome=guidance").content.decode()
    shown = [v for v in visits if f"/visits/{v.pk}/" in html]
    assert sorted(v.observations.get().value_num or 0 for v in shown) == [130, 135]


def test_a_visit_page_colours_values_and_explains_them(
    run_file: Callable[..., ImportBatch], examinees: dict[str, Patient], client_for: Callable[[str], Client]
) -> None:
    run_file(GOOD)
    run_file(GOOD.replace("令和6年4月1日", "令和5年4月3日").replace(",１４２,", ",131,"), name="2023.csv")
    visit = CheckupVisit.objects.get(patient__mrn="A0001", exam_date=dt.date(2024, 4, 1))
    html = client_for("physician_a").get(f"/visits/{visit.pk}/").content.decode()
    assert 'class="o-referral" title="収縮期血圧 142 mmHg ≥ 受診勧奨判定値 140 mmHg"' in html
    assert "積極的支援" in html
    assert html.count("<svg class=\"trend\"") >= 3
    assert "受診勧奨判定値 140" in html and "2023/04" in html and "2024/04" in html
    event = AuditEvent.objects.get(kind="phi_read", object_type="clinical.checkupvisit")
    assert event.patient_id == examinees["A0001"].pk


def test_another_facilitys_visit_is_404_and_audited(
    client_for: Callable[[str], Client], personas: Personas
) -> None:
    [visit] = _visits(personas, 1)
    assert client_for("physician_b").get(f"/visits/{visit.pk}/").status_code == 404
    assert AuditEvent.objects.filter(kind="access_denied", object_id=str(visit.pk)).exists()
    assert f"/visits/{visit.pk}/" not in client_for("physician_b").get("/visits/").content.decode()


def test_the_import_page_shows_each_rejected_cell(
    run_file: Callable[..., ImportBatch], examinees: dict[str, Patient], client_for: Callable[[str], Client]
) -> None:
    batch = run_file(GOOD.replace(",１４２,", ",400,"))
    html = client_for("staff_a").get(f"/imports/{batch.pk}/").content.decode()
    assert "取り込めなかった理由" in html and "<code>400</code>" in html and "ありえない値" in html
    assert client_for("physician_b").get(f"/imports/{batch.pk}/").status_code == 404


def test_the_upload_form_refuses_a_file_that_is_not_a_table(client_for: Callable[[str], Client],
                                                            personas: Personas) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = client_for("staff_a").post("/imports/", {"facility": personas.facility_a.pk,
                                                        "file": SimpleUploadedFile("x.pdf", b"%PDF-1.4")})
    assert response.status_code == 200
    assert "取り込めない形式です" in response.content.decode()
    assert not ImportBatch.objects.exists()


def test_the_worklist_stops_counting_at_its_cap_and_says_so(
        client_for: Callable[[str], Client], personas: Personas, monkeypatch: pytest.MonkeyPatch) -> None:
    from clinical.paging import CappedPaginator

    _visits(personas, 5)
    monkeypatch.setattr(CappedPaginator, "cap", 3)
    html = client_for("staff_a").get("/visits/").content.decode()
    assert "3 件以上" in html
    monkeypatch.setattr(CappedPaginator, "cap", 5)
    html = client_for("staff_a").get("/visits/").content.decode()
    assert "件以上" not in html and "（5 件）" in html
