"""The bulk interface: ``manage.py screen_csv PATH --ruleset mhlw-2024`` and its csvio core."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from clinical.screening.csvio import HEADER, CsvInputError, read_visits, screen_csv

ROOT = Path(__file__).resolve().parents[2]
HEAD = ",".join(HEADER)
# columns: see HEADER (visit_id, sex, age, fasting, waist_cm, bmi, sbp, dbp, tg, …, med_*, smoking)
ROWS = [
    "V001,M,50,1,90,26,142,80,160,38,130,,105,,5.7,20,25,30,,1.0,0,0,0,1",
    "V002,F,68,0,80,22,120,70,180,60,100,140,,110,5.4,20,25,30,58,1.0,0,0,0,0",
    "V003,F,40,1,,,,,,,,,,,,,,,,,1,0,0,0",
    "V004,M,70,1,86,,130,,,,,,,,5.6,,,,,,0,0,0,0",
    "Ｖ005,Ｆ,４５,0,95,,１５０,,200,,,,,,,,,,,,,,,",
]  # fmt: skip
EXPECTED: list[dict[str, Any]] = [
    {
        "visit": "V001",
        "items": {
            "sbp": "referral", "dbp": "normal", "tg": "guidance", "hdl": "guidance", "ldl": "guidance",
            "fbg": "guidance", "hba1c": "guidance", "ast": "normal", "alt": "normal", "ggt": "normal",
            "egfr": "normal",
        },
        "follow_up": True,
        "hierarchy": "active",
    },
    {
        "visit": "V002",
        "items": {
            "sbp": "normal", "dbp": "normal", "tg": "guidance", "hdl": "normal", "ldl": "normal",
            "non_hdl": "normal", "rbg": "guidance", "hba1c": "normal", "ast": "normal", "alt": "normal",
            "ggt": "normal", "egfr": "guidance",
        },
        "follow_up": False,
        "hierarchy": "information",
    },
    {"visit": "V003", "items": {}, "follow_up": False, "hierarchy": "excluded"},
    {
        "visit": "V004",
        "items": {"sbp": "guidance", "hba1c": "guidance"},
        "follow_up": False,
        "hierarchy": "motivational",  # 積極的支援 (waist + 2 risks) at 70 → 動機付け支援
    },
    {"visit": "Ｖ005", "items": {"sbp": "referral", "tg": "guidance"}, "follow_up": True, "hierarchy": "active"},
]  # fmt: skip


def _write(tmp_path: Path, rows: list[str], head: str = HEAD) -> Path:
    path = tmp_path / "visits.csv"
    path.write_text("\n".join([head, *rows]) + "\n", encoding="utf-8")
    return path


def _run(path: Path, ruleset: str = "mhlw-2024") -> list[dict[str, Any]]:
    out = io.StringIO()
    screen_csv(path, ruleset, out)
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_it_prints_one_json_object_per_visit_in_input_order(tmp_path: Path) -> None:
    assert _run(_write(tmp_path, ROWS)) == EXPECTED


def test_it_keeps_japanese_unescaped_and_compact(tmp_path: Path) -> None:
    out = io.StringIO()
    screen_csv(_write(tmp_path, ROWS[4:]), "mhlw-2024", out)
    assert out.getvalue().startswith('{"visit":"Ｖ005","items":{')


def test_it_uses_a_given_egfr_over_creatinine(tmp_path: Path) -> None:
    # V002 has eGFR 58 and creatinine 1.0 (which would compute to ≈ 43.5, a referral)
    assert _run(_write(tmp_path, ROWS[1:2]))[0]["items"]["egfr"] == "guidance"


def test_it_judges_with_ningen_dock_too(tmp_path: Path) -> None:
    got = _run(_write(tmp_path, ROWS[:1]), "ningen-dock")[0]
    assert got["items"] == {
        "sbp": "C", "dbp": "A", "hba1c": "B", "fbg": "B", "ast": "A", "alt": "A", "ggt": "A", "ldl": "B", "tg": "B",
    }  # fmt: skip
    assert (got["follow_up"], got["hierarchy"]) == (False, None)


def test_it_accepts_optional_columns_after_the_fixed_header(tmp_path: Path) -> None:
    row = ROWS[2].replace(",1,0,0,0", ",0,0,0,0") + ",11.5,（＋）,"  # a woman: Hb ≤ 12.0 is guidance
    path = _write(tmp_path, [row], HEAD + ",hb,urine_protein,uric_acid")
    assert _run(path)[0]["items"] == {"hb": "guidance", "urine_protein": "referral"}


def test_it_reads_a_bom_and_skips_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_text("\ufeff" + HEAD + "\n" + ROWS[0] + "\n\n" + ROWS[2] + "\n", encoding="utf-8")
    assert [r["visit"] for r in _run(path)] == ["V001", "V003"]


BAD_ROWS = [
    ("V9,M,50,1,90,26,14x,80,,,,,,,,,,,,,0,0,0,0", "sbp", "14x", "単位などの文字"),
    ("V9,M,50,1,90,26,,abc,,,,,,,,,,,,,0,0,0,0", "dbp", "abc", "数値として読めません"),
    ("V9,X,50,1,,,,,,,,,,,,,,,,,0,0,0,0", "sex", "X", "M か F"),
    (",M,50,1,,,,,,,,,,,,,,,,,0,0,0,0", "visit_id", "", "visit_id が空"),
    ("V9,M,,1,,,,,,,,,,,,,,,,,0,0,0,0", "age", "", "age が空"),
    ("V9,M,50,2,,,,,,,,,,,,,,,,,0,0,0,0", "fasting", "2", "0 か 1"),
    ("V9,M,50,,,,,,150,,,,,,,,,,,,0,0,0,0", "fasting", "", "fasting"),
    ("V9,M,50,1,,,-5,,,,,,,,,,,,,,0,0,0,0", "sbp", "-5", "0 より小さい"),
    ("V9,M,50,1,,,,,,,,,,,,,,,,0,0,0,0,0", "creatinine", "0", "0 は使えません"),
    ("V9,M,50,1,,,nan,,,,,,,,,,,,,,0,0,0,0", "sbp", "nan", "数値として読めません"),
]


@pytest.mark.parametrize(("row", "column", "value", "reason"), BAD_ROWS)
def test_it_refuses_a_malformed_row_naming_row_column_value_and_reason(
    tmp_path: Path, row: str, column: str, value: str, reason: str
) -> None:
    out = io.StringIO()
    with pytest.raises(CsvInputError) as info:
        screen_csv(_write(tmp_path, [ROWS[0], row]), "mhlw-2024", out)
    assert out.getvalue() == ""  # nothing printed for the file
    (error,) = info.value.errors
    assert (error.row, error.column, error.value) == (3, column, value)
    assert reason in error.reason
    assert f"3 行目, 列 {column}, 値「{value}」" in str(info.value)


def test_it_refuses_a_row_with_the_wrong_number_of_columns(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError, match="2 行目, 列 \\(row\\)"):
        read_visits(io.StringIO(HEAD + "\nV1,M,50\n"))


@pytest.mark.parametrize(
    "head",
    [
        HEAD.replace("sbp,dbp", "dbp,sbp"),
        HEAD.replace(",smoking", ""),
        HEAD + ",pulse",
        HEAD + ",hb,hb",
        "",
    ],
)
def test_it_refuses_a_wrong_header(head: str) -> None:
    with pytest.raises(CsvInputError, match="1 行目"):
        read_visits(io.StringIO(head + "\n" if head else ""))


def test_it_lists_every_bad_cell_not_only_the_first(tmp_path: Path) -> None:
    with pytest.raises(CsvInputError) as info:
        read_visits(io.StringIO(HEAD + "\nV1,Q,abc,1,,,,,,,,,,,,,,,,,0,0,0,0\n"))
    assert [e.column for e in info.value.errors] == ["sex", "age"]


# ------------------------------------------------------------ the management command


def _django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()


def test_it_runs_as_a_management_command(tmp_path: Path) -> None:
    _django()
    from django.core.management import call_command

    out = io.StringIO()
    call_command("screen_csv", str(_write(tmp_path, ROWS)), ruleset="mhlw-2024", stdout=out)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == EXPECTED


def test_it_raises_command_error_for_bad_input(tmp_path: Path) -> None:
    _django()
    from django.core.management import CommandError, call_command

    out = io.StringIO()
    with pytest.raises(CommandError, match="3 行目, 列 sex, 値「X」"):
        bad_sex = "V9,X,50,1,,,,,,,,,,,,,,,,,0,0,0,0"
        call_command("screen_csv", str(_write(tmp_path, [ROWS[0], bad_sex])), stdout=out)
    assert out.getvalue() == ""
    with pytest.raises(CommandError, match="unknown rule set"):
        call_command("screen_csv", str(_write(tmp_path, ROWS)), ruleset="nope", stdout=out)


def test_it_exits_non_zero_with_the_error_on_stderr_and_nothing_on_stdout(tmp_path: Path) -> None:
    path = _write(tmp_path, [*ROWS, "V9,M,50,1,,,14x,,,,,,,,,,,,,,0,0,0,0"])
    done = subprocess.run(
        [sys.executable, "manage.py", "screen_csv", str(path), "--ruleset", "mhlw-2024"],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode != 0
    assert done.stdout == ""
    assert "7 行目, 列 sbp, 値「14x」" in done.stderr
