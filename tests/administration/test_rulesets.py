"""Rule sets in force per facility and course: shown with the versions of the shipped files,
chosen by the facility's administrator (audited with before, after and reason), and used when
visits of that facility are judged, by re-judging and by import alike."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from audit.models import AuditEvent
from clinical.intake.services import import_batch_create, import_batch_run
from clinical.judging import rulesets_in_force, visits_screen
from clinical.models import CheckupVisit, Facility, FacilityRuleSet, Observation, ScreeningResult
from clinical.screening import load_ruleset
from tests.conftest import Personas
from tests.factories import PatientFactory

pytestmark = pytest.mark.django_db

MHLW, DOCK = load_ruleset("mhlw-2024"), load_ruleset("ningen-dock")


def _post(client: Client, facility: Facility, course: str, rulesets: list[str], reason: str = "院内規程の改定") -> Any:
    return client.post(f"/administration/rulesets/{facility.pk}/",
                       {"course": course, f"{course}-rulesets": rulesets, f"{course}-reason": reason})


def _visit(facility: Facility, course: str, sbp: int = 150) -> CheckupVisit:
    patient = PatientFactory.create(facility=facility)
    visit = CheckupVisit.objects.create(facility=facility, patient=patient, exam_date=dt.date(2024, 5, 1),
                                        course=course, fasting=True)
    Observation.objects.create(visit=visit, item="sbp", value_num=sbp, unit="mmHg")
    return visit


def _judged_by(visit: CheckupVisit) -> list[tuple[str, str]]:
    return sorted(ScreeningResult.objects.filter(visit=visit).values_list("ruleset", "ruleset_version"))


def test_it_shows_the_rule_sets_in_force_with_their_versions(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    response = client_for("admin_a").get("/administration/rulesets/")
    assert response.status_code == 200
    (facility,) = response.context["rules"]
    assert facility.facility == personas.facility_a  # B is not theirs
    assert [(c.course, [r.id for r in c.rulesets], c.is_default) for c in facility.courses] == [
        ("tokutei", ["mhlw-2024"], True), ("dock", ["mhlw-2024", "ningen-dock"], True),
        ("teiki", ["mhlw-2024"], True)]
    html = response.content.decode()
    assert f"<code>mhlw-2024</code> {MHLW.version}" in html and f"<code>ningen-dock</code> {DOCK.version}" in html


def test_it_changes_a_courses_rule_sets_and_audits_before_after_and_reason(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    client = client_for("admin_a")
    response = _post(client, personas.facility_a, "teiki", ["mhlw-2024", "ningen-dock"])
    assert response.status_code == 302
    row = FacilityRuleSet.objects.get(facility=personas.facility_a, course="teiki")
    assert row.rulesets == ["mhlw-2024", "ningen-dock"] and row.changed_by == personas.admin_a
    (event,) = audit_events(kind="update", object_type="clinical.facilityruleset")
    assert (event.user_id, event.facility_id, event.object_id) == (
        personas.admin_a.pk, personas.facility_a.pk, str(row.pk))
    assert event.details == {
        "course": "teiki", "reason": "院内規程の改定",
        "before": [{"id": "mhlw-2024", "version": MHLW.version}],
        "after": [{"id": "mhlw-2024", "version": MHLW.version}, {"id": "ningen-dock", "version": DOCK.version}]}
    page = client.get(f"/administration/rulesets/{personas.facility_a.pk}/").content.decode()
    assert "admin_a" in page  # who changed it
    assert rulesets_in_force([personas.facility_a.pk, personas.facility_b.pk]) == {
        personas.facility_a.pk: {"tokutei": ("mhlw-2024",), "dock": ("mhlw-2024", "ningen-dock"),
                                 "teiki": ("mhlw-2024", "ningen-dock")},
        personas.facility_b.pk: {"tokutei": ("mhlw-2024",), "dock": ("mhlw-2024", "ningen-dock"),
                                 "teiki": ("mhlw-2024",)}}


@pytest.mark.parametrize(("course", "rulesets", "reason", "message"), [
    ("dock", [], "理由", "判定基準を1つ以上選んでください"),
    ("tokutei", ["ningen-dock"], "理由", "特定健診には厚生労働省の判定値"),
    ("dock", ["ningen-dock"], "", "変更の理由を入力してください"),
    ("dock", ["no-such-rules"], "理由", "no-such-rules"),
    ("tokutei", ["mhlw-2024"], "理由", "変更はありません"),
])
def test_it_refuses_a_bad_choice_with_a_specific_message(
    client_for: Callable[[str], Client], personas: Personas, course: str, rulesets: list[str], reason: str,
    message: str,
) -> None:
    response = _post(client_for("admin_a"), personas.facility_a, course, rulesets, reason)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not FacilityRuleSet.objects.exists()
    assert not AuditEvent.objects.filter(object_type="clinical.facilityruleset").exists()


def test_another_facilitys_admin_and_non_admins_cannot_change_it(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    assert _post(client_for("staff_a"), personas.facility_a, "dock", ["ningen-dock"]).status_code == 403
    assert _post(client_for("admin_a"), personas.facility_b, "dock", ["ningen-dock"]).status_code == 404
    assert not FacilityRuleSet.objects.exists()


def test_judging_uses_the_facilitys_rule_sets_and_drops_results_of_rule_sets_no_longer_in_force(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    visit_a, visit_b = _visit(personas.facility_a, "teiki"), _visit(personas.facility_b, "teiki")
    visits_screen(visit_ids=[visit_a.pk, visit_b.pk])
    assert _judged_by(visit_a) == _judged_by(visit_b) == [("mhlw-2024", MHLW.version)]
    client = client_for("admin_a")
    assert _post(client, personas.facility_a, "teiki", ["mhlw-2024", "ningen-dock"]).status_code == 302
    visits_screen(visit_ids=[visit_a.pk, visit_b.pk])
    assert _judged_by(visit_a) == [("mhlw-2024", MHLW.version), ("ningen-dock", DOCK.version)]
    assert _judged_by(visit_b) == [("mhlw-2024", MHLW.version)]  # B keeps the default
    visit_a.refresh_from_db()
    assert visit_a.follow_up  # 150 mmHg is past the 受診勧奨判定値: the MHLW set still flags it
    # A dock visit judged by the graded set alone is flagged by that set's follow-up grades.
    dock = _visit(personas.facility_a, "dock", sbp=165)
    assert _post(client, personas.facility_a, "dock", ["ningen-dock"]).status_code == 302
    visits_screen(visit_ids=[dock.pk])
    dock.refresh_from_db()
    assert _judged_by(dock) == [("ningen-dock", DOCK.version)] and dock.follow_up
    assert _post(client, personas.facility_a, "teiki", ["mhlw-2024"]).status_code == 302
    visits_screen(visit_ids=[visit_a.pk])
    assert _judged_by(visit_a) == [("mhlw-2024", MHLW.version)]


CSV = ("受診者番号,受診日,コース,空腹時,収縮期血圧(mmHg)\n"
       "A9001,2024-06-01,定期健康診断,1,150\n")


def test_an_import_is_judged_with_the_facilitys_rule_sets(
    client_for: Callable[[str], Client], personas: Personas, tmp_path: Path, settings: object,
) -> None:
    settings.VAR_DIR = tmp_path  # type: ignore[attr-defined]
    PatientFactory.create(facility=personas.facility_a, mrn="A9001")
    assert _post(client_for("admin_a"), personas.facility_a, "teiki", ["mhlw-2024", "ningen-dock"]).status_code == 302
    path = tmp_path / "teiki.csv"
    path.write_text(CSV, encoding="utf-8")
    with path.open("rb") as f:
        batch = import_batch_create(facility=personas.facility_a, file_name="teiki.csv", content=f,
                                    actor=personas.staff_a)
    import_batch_run(batch_id=batch.pk)
    visit = CheckupVisit.objects.get(patient__mrn="A9001")
    assert _judged_by(visit) == [("mhlw-2024", MHLW.version), ("ningen-dock", DOCK.version)]
