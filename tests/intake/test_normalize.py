"""Intake normalisers: each accepted form, and each refusal with its Japanese message."""

from __future__ import annotations

from datetime import date

import pytest

from clinical.intake.normalize import (
    NormalizationError,
    is_not_measured,
    parse_date,
    parse_flag,
    parse_int,
    parse_number,
    parse_qualitative,
    to_halfwidth,
    wareki,
)

# ------------------------------------------------------------------ full-width


def test_it_turns_full_width_digits_and_letters_half_width() -> None:
    assert to_halfwidth("１２３ＡＢＣｘｙｚ．－") == "123ABCxyz.-"
    assert to_halfwidth("㋿") == "令和"


# ------------------------------------------------------------------ not measured


@pytest.mark.parametrize("text", [None, "", "   ", "未実施", "未測定", "　未測定　"])
def test_it_reads_blank_and_not_done_as_not_measured(text: str | None) -> None:
    assert is_not_measured(text)
    assert parse_number(text) is None
    assert parse_qualitative(text) is None
    assert parse_date(text) is None
    assert parse_flag(text) is None


# ------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("142", 142.0),
        (" 5.6 ", 5.6),
        ("１２３．４", 123.4),
        ("０.５", 0.5),
        (".5", 0.5),
        ("-3", -3.0),
        ("－３", -3.0),
        ("−3", -3.0),
    ],
)
def test_it_parses_numbers(text: str, expected: float) -> None:
    assert parse_number(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("abc", "数値として読めません"),
        ("1e3", "数値として読めません"),
        ("nan", "数値として読めません"),
        ("inf", "数値として読めません"),
        ("1_000", "数値として読めません"),
        ("1,234", "カンマ"),
        ("5,6", "カンマ"),
        ("<5", "不等号"),
        ("≧100", "不等号"),
        ("142mmHg", "単位"),
        ("12 mg/dL", "単位"),
    ],
)
def test_it_refuses_what_is_not_a_plain_number(text: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        parse_number(text)
    message = str(info.value)
    assert message.startswith(f"数値「{text}」を受け付けられません: ")
    assert reason in message
    assert (info.value.value, info.value.kind) == (text, "数値")
    assert isinstance(info.value, ValueError)


def test_it_refuses_numbers_out_of_range() -> None:
    with pytest.raises(NormalizationError, match="数値「-1」を受け付けられません: 0 より小さい値は使えません"):
        parse_number("-1", minimum=0)
    with pytest.raises(NormalizationError, match="150 より大きい値は使えません"):
        parse_int("151", maximum=150)


def test_it_parses_integers_and_refuses_fractions() -> None:
    assert parse_int("５０") == 50
    assert parse_int("50.0") == 50
    with pytest.raises(NormalizationError, match=r"数値「50\.5」を受け付けられません: 整数ではありません"):
        parse_int("50.5")


# ------------------------------------------------------------------ flags


@pytest.mark.parametrize(("text", "expected"), [("1", True), ("0", False), ("１", True), (" ０ ", False)])
def test_it_parses_zero_one_flags(text: str, expected: bool) -> None:
    assert parse_flag(text) is expected


def test_it_refuses_other_flags() -> None:
    with pytest.raises(NormalizationError, match="フラグ「yes」を受け付けられません: 0 か 1"):
        parse_flag("yes")


# ------------------------------------------------------------------ qualitative results


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("−", "-"),  # U+2212 minus sign
        ("-", "-"),
        ("－", "-"),  # full-width hyphen-minus
        ("ー", "-"),  # katakana long vowel, typed for a minus
        ("(-)", "-"),
        ("（−）", "-"),
        ("( - )", "-"),
        ("陰性", "-"),
        ("±", "+-"),
        ("(±)", "+-"),
        ("（±）", "+-"),
        ("+-", "+-"),
        ("+", "1+"),
        ("＋", "1+"),
        ("(+)", "1+"),
        ("（＋）", "1+"),
        ("1+", "1+"),
        ("１＋", "1+"),
        ("陽性", "1+"),
        ("2+", "2+"),
        ("(2+)", "2+"),
        ("++", "2+"),
        ("3+", "3+"),
        ("（３＋）", "3+"),
        ("+++", "3+"),
        ("4+", "4+"),
    ],
)
def test_it_canonicalises_qualitative_results(text: str, expected: str) -> None:
    assert parse_qualitative(text) == expected


@pytest.mark.parametrize("text", ["5+", "+1", "弱陽性", "negative", "((+))", "1"])
def test_it_refuses_unknown_qualitative_results(text: str) -> None:
    with pytest.raises(NormalizationError) as info:
        parse_qualitative(text)
    assert (
        str(info.value) == f"定性値「{text}」を受け付けられません: −, ±, +, 1+〜4+, 陰性, 陽性 のいずれでもありません"
    )


# ------------------------------------------------------------------ dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("令和6年4月1日", date(2024, 4, 1)),
        ("令和元年5月1日", date(2019, 5, 1)),
        ("令和 6 年 4 月 1 日", date(2024, 4, 1)),
        ("令和６年４月１日", date(2024, 4, 1)),
        ("㋿6年4月1日", date(2024, 4, 1)),
        ("R6.4.1", date(2024, 4, 1)),
        ("r6.4.1", date(2024, 4, 1)),
        ("R06/04/01", date(2024, 4, 1)),
        ("Ｒ６．４．１", date(2024, 4, 1)),
        ("R1.5.1", date(2019, 5, 1)),
        ("H31.4.30", date(2019, 4, 30)),
        ("平成31年4月30日", date(2019, 4, 30)),
        ("㍻元年1月8日", date(1989, 1, 8)),
        ("H1.1.8", date(1989, 1, 8)),
        ("S64.1.7", date(1989, 1, 7)),
        ("昭和39年10月10日", date(1964, 10, 10)),
        ("S1.12.25", date(1926, 12, 25)),
        ("T15.12.25", date(1926, 12, 25)),
        ("大正元年7月30日", date(1912, 7, 30)),
        ("M45.7.30", date(1912, 7, 30)),
        ("2024-04-01", date(2024, 4, 1)),
        ("2024/4/1", date(2024, 4, 1)),
        ("2024.4.1", date(2024, 4, 1)),
        ("２０２４／０４／０１", date(2024, 4, 1)),
        ("2024年4月1日", date(2024, 4, 1)),
        ("20240401", date(2024, 4, 1)),
        ("2024-02-29", date(2024, 2, 29)),
    ],
)
def test_it_parses_wareki_and_western_dates(text: str, expected: date) -> None:
    assert parse_date(text) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("H31.5.1", "平成は平成31年4月30日（2019-04-30）で終わっています（2019-05-01 は令和元年5月1日）"),
        ("平成31年5月1日", "平成は平成31年4月30日（2019-04-30）で終わっています"),
        ("H32.1.1", "平成は平成31年4月30日（2019-04-30）で終わっています（2020-01-01 は令和2年1月1日）"),
        ("R1.4.30", "令和は令和元年5月1日（2019-05-01）から始まります（2019-04-30 は平成31年4月30日）"),
        ("令和元年4月30日", "令和は令和元年5月1日（2019-05-01）から始まります"),
        ("S64.1.8", "昭和は昭和64年1月7日（1989-01-07）で終わっています（1989-01-08 は平成元年1月8日）"),
        ("H1.1.7", "平成は平成元年1月8日（1989-01-08）から始まります"),
        ("T15.12.26", "大正は大正15年12月25日（1926-12-25）で終わっています"),
        ("S1.12.24", "昭和は昭和元年12月25日（1926-12-25）から始まります"),
        ("R0.5.1", "令和0年はありません"),
        ("R6.2.30", "2024年2月30日 は暦に存在しません"),
        ("2023-02-29", "2023年2月29日 は暦に存在しません"),
        ("2024-13-01", "2024年13月1日 は暦に存在しません"),
        ("M5.12.31", "改暦より前"),
        ("1872-12-31", "改暦より前"),
        ("2024-4/1", "として読めません"),
        ("24/4/1", "として読めません"),
        ("R6.4", "として読めません"),
        ("きのう", "として読めません"),
    ],
)
def test_it_refuses_impossible_dates_with_a_reason(text: str, reason: str) -> None:
    with pytest.raises(NormalizationError) as info:
        parse_date(text)
    assert str(info.value).startswith(f"日付「{text}」を受け付けられません: ")
    assert reason in str(info.value)


def test_it_writes_dates_back_in_wareki() -> None:
    assert wareki(date(2019, 5, 1)) == "令和元年5月1日"
    assert wareki(date(2019, 4, 30)) == "平成31年4月30日"
    assert wareki(date(2024, 4, 1)) == "令和6年4月1日"
