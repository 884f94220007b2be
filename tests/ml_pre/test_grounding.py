"""Numeric grounding: numbers in a draft must come from the source data."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

import pytest

from ml.grounding import check_grounding, extract_numbers

Sources = Mapping[str, Decimal | float | int | str]

LABS: Sources = {
    "HbA1c": Decimal("6.8"),
    "収縮期血圧": 142,
    "拡張期血圧": 88,
    "QTc": 452,
    "身長": 160.0,
    "BMI": 24.63,
}


def flagged(text: str, sources: Sources | None = None, tolerance: int = 0) -> list[str]:
    issues = check_grounding(text, LABS if sources is None else sources, tolerance=tolerance)
    return [issue.mention.text for issue in issues]


def test_it_flags_a_changed_digit() -> None:
    issues = check_grounding("HbA1c 6.3%と高値です。", LABS)
    assert [i.mention.value for i in issues] == [Decimal("6.3")]
    assert issues[0].candidates == ("HbA1c",)
    assert "HbA1c = 6.8" in issues[0].reason


def test_it_matches_full_width_digits_and_reports_original_offsets() -> None:
    text = "ＨｂＡ１ｃは６．８％でした。"
    assert check_grounding(text, LABS) == []
    [value] = [m for m in extract_numbers(text) if not m.ignored]
    assert value.value == Decimal("6.8") and value.unit == "%"
    assert text[value.start : value.end] == "６．８％"
    assert value.label_hint == "HbA1c"


def test_it_matches_both_numbers_of_a_blood_pressure() -> None:
    assert flagged("血圧 142/88 mmHg") == []
    assert flagged("血圧は１４２／８８ｍｍＨｇ") == []
    # The same reading given as one string source.
    assert flagged("血圧 142/88 mmHg", {"血圧": "142/88 mmHg"}) == []


def test_it_flags_the_one_wrong_number_of_a_pair() -> None:
    assert flagged("血圧 142/86 mmHg") == ["86"]


def test_it_gives_the_unit_after_a_pair_to_both_numbers() -> None:
    first, second = extract_numbers("QT/QTc 380/420 ms")
    assert (first.unit, second.unit) == ("ms", "ms")
    assert (first.label_hint, second.label_hint) == ("QT", "QTc")


def test_it_matches_qtc() -> None:
    assert flagged("QTc 452 ms と軽度延長。") == []


def test_it_flags_an_invented_ldl() -> None:
    issues = check_grounding("LDLコレステロール 160 mg/dL と高値。", {"HbA1c": 6.8})
    assert [i.mention.text for i in issues] == ["160"]
    assert "は元データにありません" in issues[0].reason


def test_it_flags_a_value_that_belongs_to_another_quantity() -> None:
    # 160 is the height in the sources; calling it LDL is not grounded.
    issues = check_grounding("LDL 160 mg/dL", LABS)
    assert len(issues) == 1 and "身長" in issues[0].reason


def test_it_matches_an_unlabelled_number_by_value() -> None:
    assert flagged("身長は160 cm、142 mmHg") == []


def test_it_compares_decimals_at_the_precision_written() -> None:
    assert flagged("BMI 24.6") == []  # 24.63 rounded to one decimal
    assert flagged("BMI 24.63") == []
    assert flagged("HbA1c 6.80%") == []  # 6.8 at two decimals
    assert flagged("BMI 24.7") == ["24.7"]


def test_it_requires_integers_to_match_exactly() -> None:
    assert flagged("BMI 25") == ["25"]  # 24.63 is not 25: rounding to integers hides too much
    assert flagged("QTc 452.0 ms") == []


def test_it_widens_matches_by_an_explicit_tolerance() -> None:
    assert flagged("QTc 455 ms", tolerance=5) == []
    assert flagged("QTc 458 ms", tolerance=5) == ["458"]


def test_it_flags_a_unit_that_differs_from_the_source() -> None:
    issues = check_grounding("HbA1c 6.8 mg/dL", {"HbA1c": "6.8 %"})
    assert len(issues) == 1 and "単位が元データと異なります" in issues[0].reason


def test_it_treats_spellings_of_the_same_unit_as_equal() -> None:
    assert flagged("脈拍 72 /分、72回/分", {"心拍数": "72 bpm"}) == []


def test_it_reads_units_of_common_checkup_items() -> None:
    text = (
        "空腹時血糖 102 mg/dL、Hb 13.5 g/dL、AST 31 U/L、心拍数 72 bpm、腹囲 85.5 cm、結節 8 mm、"
        "eGFR 58.2 mL/min/1.73m²"
    )
    units = [(m.text, m.unit) for m in extract_numbers(text) if not m.ignored]
    assert units == [
        ("102", "mg/dL"),
        ("13.5", "g/dL"),
        ("31", "U/L"),
        ("72", "bpm"),
        ("85.5", "cm"),
        ("8", "mm"),
        ("58.2", "mL/min/1.73m2"),  # the 1.73 belongs to the unit, not a number of its own
    ]


def test_it_reads_negative_numbers_ranges_and_thousands() -> None:
    values = [(m.text, m.unit) for m in extract_numbers("ST −1.5 mm 低下、基準 60〜119 mg/dL、尿量 1,200 mL")]
    assert values == [("-1.5", "mm"), ("60", "mg/dL"), ("119", "mg/dL"), ("1200", "mL")]


@pytest.mark.parametrize(
    ("text", "number", "rule"),
    [
        ("1. 心拍数 72 bpm", "1", "list_marker"),
        ("所見\n2) 軽度の心拡大", "2", "list_marker"),
        ("(3) 経過観察", "3", "list_marker"),
        ("① 洞調律", "1", "list_marker"),
        ("2024/4/1 の健診", "2024", "date"),
        ("2024年4月1日受診", "1", "date"),
        ("令和6年度の健診", "6", "date"),
        ("前回 4月15日 と比較", "15", "date"),
        ("V1-V3でST上昇", "3", "ecg_lead"),
        ("V5 で R 波増高", "5", "ecg_lead"),
        ("12誘導心電図", "12", "lead_count"),
        ("3か月後に再検査", "3", "interval"),
        ("6ヶ月ごとに経過観察", "6", "interval"),
        ("1年以内に受診", "1", "interval"),
        ("3〜6か月後", "6", "interval"),
        ("年1回の検査", "1", "interval"),
        ("HbA1c 6.8%", "1", "identifier"),
        ("SpO2 98%", "2", "identifier"),
        ("CA19-9 は陰性", "9", "identifier"),
        ("右S6に結節", "6", "identifier"),
        ("Th12 の圧迫骨折", "12", "identifier"),
        ("第4肋間", "4", "ordinal"),
        ("2型糖尿病", "2", "type"),
        ("1度房室ブロック", "1", "av_block_degree"),
    ],
)
def test_it_ignores_numbers_that_are_not_measurements(text: str, number: str, rule: str) -> None:
    mentions = [m for m in extract_numbers(text) if m.text == number]
    assert mentions and all(m.ignored == rule for m in mentions)
    assert number not in [issue.mention.text for issue in check_grounding(text, {})]


def test_it_still_checks_the_measurement_after_an_ignored_number() -> None:
    assert flagged("1. HbA1c 6.3%") == ["6.3"]
    assert flagged("2024年4月1日 収縮期血圧 150 mmHg") == ["150"]


def test_it_does_not_exempt_time_before_as_it_may_be_an_invented_prior_exam() -> None:
    assert flagged("3か月前と比較して増大", {}) == ["3"]


def test_it_does_not_exempt_digits_glued_to_an_unknown_label() -> None:
    issues = check_grounding("LDL160 と高値", {})
    assert [i.mention.text for i in issues] == ["160"]
    assert issues[0].mention.label_hint == "LDL"


def test_it_flags_numbers_model_estimated_from_the_image() -> None:
    assert flagged("右上肺野に約15 mmの結節影") == ["15"]


def test_it_ignores_boolean_and_non_numeric_sources() -> None:
    assert flagged("尿蛋白 1", {"喫煙": True, "尿蛋白": "陰性"}) == ["1"]


def test_it_reads_float_sources_as_written() -> None:
    assert flagged("HbA1c 6.8%", {"HbA1c": 6.8}) == []  # not 6.7999999999999998
