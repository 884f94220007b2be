"""Importing checkup files: normalised on the way in, all or nothing, idempotent, corrections audited."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal

import pytest

from audit.models import AuditEvent
from clinical.models import CheckupVisit, ImportBatch, Observation, Patient, ScreeningResult
from tests.checkups.conftest import HEADER

pytestmark = pytest.mark.django_db
Run = Callable[..., ImportBatch]

GOOD = HEADER + "\n" + "\n".join([
    "A0001,令和6年4月1日,特定健診,1,９０,26.1,１４２,88,160,45,6.8,25,（＋）,1",
    "A0002,R6.4.2,特定健診,0,80,22.0,118,70,120,60,5.4,未実施,(-),0",
])


def _values(mrn: str) -> dict[str, object]:
    visit = CheckupVisit.objects.get(patient__mrn=mrn)
    return {o.item: (o.value_num if o.value_num is not None else o.value_text) for o in visit.observations.all()}


def test_a_good_file_is_normalised_judged_and_audited(run_file: Run, examinees: dict[str, Patient]) -> None:
    batch = run_file(GOOD)
    assert batch.status == "succeeded", batch.errors
    assert (batch.visits_created, batch.visits_updated) == (2, 0)
    a1 = _values("A0001")
    assert a1["sbp"] == Decimal("142") and a1["waist_cm"] == Decimal("90")  # full-width digits
    assert a1["urine_protein"] == "1+" and a1["smoking"] == Decimal("1")
    assert "ast" not in _values("A0002")  # 未実施 = not measured, not zero
    visit = CheckupVisit.objects.get(patient__mrn="A0001")
    assert str(visit.exam_date) == "2024-04-01" and visit.fasting is True
    result = ScreeningResult.objects.get(visit=visit, ruleset="mhlw-2024")
    assert result.items["sbp"] == "referral" and result.items["hba1c"] == "referral"
    assert result.follow_up and visit.follow_up
    assert any("収縮期血圧 142" in r for r in result.reasons)
    # waist 90 (group 1), risks: BP, lipids (TG 160), glucose (HbA1c 6.8) → 積極的支援
    assert result.hierarchy == "active"
    stages = list(AuditEvent.objects.filter(kind="import").order_by("seq").values_list("details__stage", flat=True))
    assert stages == ["queued", "imported"]


def test_reimporting_the_same_file_changes_nothing(run_file: Run, examinees: dict[str, Patient]) -> None:
    run_file(GOOD)
    before = (CheckupVisit.objects.count(), Observation.objects.count(),
              AuditEvent.objects.filter(kind="update").count())
    again = run_file(GOOD)
    assert again.status == "succeeded"
    assert (again.visits_created, again.visits_updated, again.observations_written) == (0, 0, 0)
    assert (CheckupVisit.objects.count(), Observation.objects.count(),
            AuditEvent.objects.filter(kind="update").count()) == before


def test_a_corrected_value_updates_the_same_visit_and_is_audited(run_file: Run,
                                                                  examinees: dict[str, Patient]) -> None:
    run_file(GOOD)
    fixed = GOOD.replace(",１４２,", ",132,")
    batch = run_file(fixed, name="checkup-fixed.csv")
    assert (batch.visits_created, batch.visits_updated, batch.observations_written) == (0, 1, 1)
    assert CheckupVisit.objects.filter(patient__mrn="A0001").count() == 1
    assert _values("A0001")["sbp"] == Decimal("132")
    event = AuditEvent.objects.get(kind="update", object_type="clinical.checkupvisit")
    assert event.details["changed"] == {"sbp": ["142", "132"]}
    assert event.patient_id == examinees["A0001"].pk
    visit = CheckupVisit.objects.get(patient__mrn="A0001")
    assert ScreeningResult.objects.get(visit=visit, ruleset="mhlw-2024").items["sbp"] == "guidance"


def test_six_point_eight_and_six_point_eighty_are_the_same_measurement(
    run_file: Run, examinees: dict[str, Patient]
) -> None:
    run_file(GOOD)
    batch = run_file(GOOD.replace(",6.8,", ",6.80,"), name="same.csv")
    assert batch.visits_updated == 0


@pytest.mark.parametrize(
    ("row", "column", "value", "reason"),
    [
        ("A0001,R6.4.1,特定健診,1,90,26,0,88,160,45,6.8,25,-,1", "収縮期血圧(mmHg)", "0",
         "収縮期血圧 としてありえない値です（50〜300 mmHg）"),
        ("A0001,R6.4.1,特定健診,1,90,26,400,88,160,45,6.8,25,-,1", "収縮期血圧(mmHg)", "400",
         "収縮期血圧 としてありえない値です（50〜300 mmHg）"),
        ("A0001,R6.4.1,特定健診,1,90,26,142,88,160,45,6.8,-5,-,1", "AST", "-5",
         "AST としてありえない値です（0〜10000 U/L）"),
        ("A0001,R6.4.1,特定健診,1,90,26,142 mg/dL,88,160,45,6.8,25,-,1", "収縮期血圧(mmHg)", "142 mg/dL",
         "収縮期血圧 の単位は mmHg です"),
        ("Z9999,R6.4.1,特定健診,1,90,26,142,88,160,45,6.8,25,-,1", "受診者番号", "Z9999",
         "この施設に登録されていない受診者です"),
        ("B0001,R6.4.1,特定健診,1,90,26,142,88,160,45,6.8,25,-,1", "受診者番号", "B0001",
         "この施設に登録されていない受診者です"),
        ("A0001,H31.5.1,特定健診,1,90,26,142,88,160,45,6.8,25,-,1", "受診日", "H31.5.1",
         "平成は平成31年4月30日（2019-04-30）で終わっています（2019-05-01 は令和元年5月1日）"),
        ("A0001,R6.4.1,特定健診,1,90,26,142,88,160,45,6.8,25,5+,1", "尿蛋白", "5+", None),
    ],
    ids=["sbp-0", "sbp-400", "negative-ast", "wrong-unit", "unknown-patient", "other-facility", "bad-era",
         "bad-urine"],
)
def test_a_bad_cell_rejects_the_whole_file_with_row_column_value_and_reason(
    run_file: Run, examinees: dict[str, Patient], row: str, column: str, value: str, reason: str | None
) -> None:
    good_row = GOOD.splitlines()[2]
    batch = run_file(f"{HEADER}\n{good_row}\n{row}\n")
    assert batch.status == "failed"
    assert len(batch.errors) == 1
    error = batch.errors[0]
    assert (error["row"], error["column"], error["value"]) == (3, column, value)
    if reason is not None:
        assert error["reason"] == reason
    assert "1件も登録されていません" in batch.message
    assert not CheckupVisit.objects.exists() and not Observation.objects.exists()
    assert AuditEvent.objects.filter(kind="import", outcome="failure").count() == 1


def test_an_unknown_unit_in_the_header_is_refused_before_any_row(run_file: Run,
                                                                  examinees: dict[str, Patient]) -> None:
    batch = run_file("受診者番号,受診日,中性脂肪(mmol/L)\nA0001,R6.4.1,1.8\n")
    assert batch.errors == [{"row": 1, "column": "中性脂肪(mmol/L)", "value": "mmol/L",
                             "reason": "中性脂肪 の単位として使えません（mg/dL で入力してください）"}]
    assert not CheckupVisit.objects.exists()


def test_an_unknown_column_is_refused_not_silently_dropped(run_file: Run, examinees: dict[str, Patient]) -> None:
    batch = run_file("受診者番号,受診日,収縮期血庄\nA0001,R6.4.1,142\n")
    assert batch.errors[0]["reason"] == "項目名・JLAC10コードとして認識できない列です"


def test_duplicate_rows_that_disagree_are_both_named(run_file: Run, examinees: dict[str, Patient]) -> None:
    row = GOOD.splitlines()[1]
    batch = run_file(f"{HEADER}\n{row}\n{row}\n{row.replace(',１４２,', ',150,')}\n")
    assert batch.status == "failed"
    assert batch.errors == [{"row": 4, "column": "受診者番号", "value": "A0001",
                             "reason": "2行目と同じ受診（同じ受診者・受診日・コース）で値が異なります: 収縮期血圧"}]


def test_every_error_of_a_file_is_reported_in_one_pass(run_file: Run, examinees: dict[str, Patient]) -> None:
    batch = run_file(f"{HEADER}\nZ1,R6.4.1,特定健診,1,90,26,0,88,160,45,6.8,25,-,1\nA0001,,特定健診,2,,,,,,,,,,\n")
    assert [(e["row"], e["column"]) for e in batch.errors] == [
        (2, "収縮期血圧(mmHg)"), (2, "受診者番号"), (3, "受診日"), (3, "空腹時")]


def test_jlac10_codes_work_as_column_names_and_shift_jis_is_read(run_file: Run,
                                                                 examinees: dict[str, Patient]) -> None:
    text = "受診者番号,受診日,9A751000000000001,3D046000001906202\nA0001,2024/04/01,135,5.9\n"
    batch = run_file(text, name="sjis.csv", encoding="cp932")
    assert batch.status == "succeeded", batch.errors
    assert _values("A0001") == {"sbp": Decimal("135"), "hba1c": Decimal("5.9")}


def test_an_excel_file_imports_like_a_csv(run_file: Run, examinees: dict[str, Patient], tmp_path: object) -> None:
    import io

    from openpyxl import Workbook

    from clinical.intake.services import import_batch_create, import_batch_run
    from clinical.models import Facility, User

    wb = Workbook()
    ws = wb.active
    assert ws is not None
    ws.append(["受診者番号", "受診日", "コース", "収縮期血圧", "HbA1c"])
    ws.append(["A0002", "令和6年5月1日", "人間ドック", 131, 5.7])
    buf = io.BytesIO()
    wb.save(buf)
    buf.seek(0)
    batch = import_batch_create(facility=Facility.objects.get(code="A01"), file_name="dock.xlsx", content=buf,
                                actor=User.objects.get(username="staff_a"))
    import_batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "succeeded", batch.errors
    visit = CheckupVisit.objects.get(patient__mrn="A0002")
    assert visit.course == "dock"
    assert set(ScreeningResult.objects.filter(visit=visit).values_list("ruleset", flat=True)) == {
        "mhlw-2024", "ningen-dock"}


def test_a_claimed_batch_is_not_run_twice(run_file: Run, examinees: dict[str, Patient]) -> None:
    from clinical.intake.services import import_batch_run

    batch = run_file(GOOD)
    assert import_batch_run(batch_id=batch.pk) is None
    assert CheckupVisit.objects.count() == 2


def test_a_facility_mapping_profile_names_its_own_columns(run_file: Run, examinees: dict[str, Patient],
                                                          personas: object, tmp_path: object) -> None:
    import io

    from clinical.intake.services import import_batch_create, import_batch_run
    from clinical.models import Facility, MappingProfile, User

    text = "受診者番号,受診日,血圧上の値,A1c値\nA0001,R6.4.1,142,6.8\n"
    assert run_file(text).errors[0]["reason"] == "項目名・JLAC10コードとして認識できない列です"
    facility = Facility.objects.get(code="A01")
    profile = MappingProfile.objects.create(facility=facility, name="旧システム出力",
                                            columns={"血圧上の値": "sbp", "A1c値": "hba1c"})
    batch = import_batch_create(facility=facility, file_name="old.csv", content=io.BytesIO(text.encode()),
                                actor=User.objects.get(username="staff_a"), profile=profile)
    import_batch_run(batch_id=batch.pk)
    batch.refresh_from_db()
    assert batch.status == "succeeded", batch.errors
    assert _values("A0001") == {"sbp": Decimal("142"), "hba1c": Decimal("6.8")}
