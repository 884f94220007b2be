"""The bulk CSV interface: visits in, one JSON line of outcomes per visit out.

The whole file is read and checked before anything is printed, so a malformed row leaves
no partial output behind. No Django, no database.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from clinical.intake.normalize import (
    NormalizationError,
    parse_flag,
    parse_int,
    parse_number,
    parse_qualitative,
    to_halfwidth,
)
from clinical.screening.engine import screen
from clinical.screening.model import RuleSet
from clinical.screening.ruleset import load_ruleset
from clinical.screening.visit import VisitInput

HEADER: tuple[str, ...] = (
    "visit_id",
    "sex",
    "age",
    "fasting",
    "waist_cm",
    "bmi",
    "sbp",
    "dbp",
    "tg",
    "hdl",
    "ldl",
    "non_hdl",
    "fbg",
    "rbg",
    "hba1c",
    "ast",
    "alt",
    "ggt",
    "egfr",
    "creatinine",
    "med_bp",
    "med_glucose",
    "med_lipid",
    "smoking",
)
#: Columns a file may add after the fixed header (in any order), for items the header lacks.
OPTIONAL_COLUMNS: tuple[str, ...] = ("hb", "urine_protein", "uric_acid")
_FLAGS = ("med_bp", "med_glucose", "med_lipid", "smoking")
_NOT_NUMBERS = ("visit_id", "sex", "age", "fasting", *_FLAGS, "urine_protein")
_NUMBERS = tuple(c for c in HEADER + OPTIONAL_COLUMNS if c not in _NOT_NUMBERS)
_MAX_ERRORS = 20
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class Writer(Protocol):
    def write(self, text: str, /) -> object: ...


@dataclass(frozen=True)
class RowError:
    row: int  # line of the file, the header being row 1
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        return f"{self.row} 行目, 列 {self.column}, 値「{self.value}」: {self.reason}"


class CsvInputError(ValueError):
    """The file cannot be trusted; ``errors`` lists each refused cell (first ones only)."""

    def __init__(self, errors: Sequence[RowError], more: int = 0) -> None:
        self.errors = list(errors)
        lines = [str(e) for e in self.errors]
        if more:
            lines.append(f"… ほか {more} 件")
        super().__init__("CSV を読み込めません（何も出力していません）:\n" + "\n".join(lines))


def read_visits(stream: Iterable[str]) -> list[VisitInput]:
    """Parse and check every row; raise :class:`CsvInputError` naming the bad cells."""
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        raise CsvInputError([RowError(1, "(header)", "", "空のファイルです")])
    header = [h.strip().lstrip("\ufeff") for h in header]
    _check_header(header)
    col = {name: i for i, name in enumerate(header)}
    visits: list[VisitInput] = []
    errors: list[RowError] = []
    more = 0
    for row_no, row in enumerate(reader, start=2):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line is not a visit
        row_errors: list[RowError] = []
        visit = _parse_row(row_no, row, header, col, row_errors)
        if row_errors:
            if len(errors) < _MAX_ERRORS:
                errors.extend(row_errors[: _MAX_ERRORS - len(errors)])
            else:
                more += len(row_errors)
        elif visit is not None:
            visits.append(visit)
    if errors:
        raise CsvInputError(errors, more)
    return visits


def screen_lines(visits: Iterable[VisitInput], ruleset: RuleSet) -> Iterator[str]:
    encode = _JSON.encode
    for s in screen(visits, ruleset):
        line = {"visit": s.visit_id, "items": s.items, "follow_up": s.follow_up, "hierarchy": s.hierarchy}
        yield encode(line)


def screen_csv(path: str | Path, ruleset_name: str, out: Writer, *, chunk: int = 5000) -> int:
    """Read ``path``, judge every visit, write JSON lines to ``out``; returns the visit count.

    Raises CsvInputError (bad data), RuleSetError (unknown rule set) or OSError (unreadable
    file) before writing anything.
    """
    ruleset = load_ruleset(ruleset_name)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            visits = read_visits(fh)
    except UnicodeDecodeError as exc:
        error = RowError(0, "(file)", str(path), f"UTF-8 として読めません: {exc.reason}")
        raise CsvInputError([error]) from exc
    lines = list(screen_lines(visits, ruleset))  # judged in full before the first write
    for i in range(0, len(lines), chunk):
        out.write("\n".join(lines[i : i + chunk]) + "\n")
    return len(lines)


def _check_header(header: list[str]) -> None:
    fixed, extra = header[: len(HEADER)], header[len(HEADER) :]
    problems = []
    if tuple(fixed) != HEADER:
        missing = [c for c in HEADER if c not in header]
        problems.append(f"先頭の列は {','.join(HEADER)} の順でなければなりません")
        if missing:
            problems.append(f"足りない列: {','.join(missing)}")
    unknown = [c for c in extra if c not in OPTIONAL_COLUMNS]
    if unknown:
        problems.append(f"知らない列: {','.join(unknown)}（追加できるのは {','.join(OPTIONAL_COLUMNS)}）")
    if len(set(header)) != len(header):
        problems.append("同じ名前の列が複数あります")
    if problems:
        raise CsvInputError([RowError(1, "(header)", ",".join(header), "; ".join(problems))])


def _parse_row(
    row_no: int, row: list[str], header: list[str], col: dict[str, int], errors: list[RowError]
) -> VisitInput | None:
    if len(row) != len(header):
        reason = f"列の数が {len(row)} です（ヘッダーは {len(header)}）"
        errors.append(RowError(row_no, "(row)", ",".join(row), reason))
        return None

    def bad(column: str, reason: str) -> None:
        errors.append(RowError(row_no, column, row[col[column]], reason))

    visit_id = row[0].strip()
    if not visit_id:
        bad("visit_id", "visit_id が空です")
    sex = to_halfwidth(row[1]).strip()
    if sex not in ("M", "F"):
        bad("sex", "sex は M か F でなければなりません")
    age: int | None = None
    try:
        age = parse_int(row[2], minimum=0, maximum=150)
        if age is None:
            bad("age", "age が空です（eGFR と 65–74 歳の判定に必要です）")
    except NormalizationError as exc:
        bad("age", exc.reason)
    flags: dict[str, bool | None] = {}
    for name in ("fasting", *_FLAGS):
        try:
            flags[name] = parse_flag(row[col[name]])
        except NormalizationError as exc:
            bad(name, exc.reason)
    nums: dict[str, float | None] = {}
    for name in _NUMBERS:
        i = col.get(name)
        if i is not None:
            try:
                nums[name] = parse_number(row[i], minimum=0)
            except NormalizationError as exc:
                bad(name, exc.reason)
    urine: str | None = None
    if "urine_protein" in col:
        try:
            urine = parse_qualitative(row[col["urine_protein"]])
        except NormalizationError as exc:
            bad("urine_protein", exc.reason)
    if not errors:
        if nums["tg"] is not None and flags["fasting"] is None:
            bad("fasting", "tg があるときは fasting（1: 空腹時, 0: 随時）が必要です")
        if nums["creatinine"] == 0:
            bad("creatinine", "0 は使えません（eGFR を計算できません）")
    if errors or age is None:
        return None
    return VisitInput(
        visit_id=visit_id,
        sex=sex,
        age=age,
        fasting=flags["fasting"],
        waist_cm=nums["waist_cm"],
        bmi=nums["bmi"],
        sbp=nums["sbp"],
        dbp=nums["dbp"],
        tg=nums["tg"],
        hdl=nums["hdl"],
        ldl=nums["ldl"],
        non_hdl=nums["non_hdl"],
        fbg=nums["fbg"],
        rbg=nums["rbg"],
        hba1c=nums["hba1c"],
        ast=nums["ast"],
        alt=nums["alt"],
        ggt=nums["ggt"],
        egfr=nums["egfr"],
        creatinine=nums["creatinine"],
        hb=nums.get("hb"),
        urine_protein=urine,
        uric_acid=nums.get("uric_acid"),
        # Blank on the questionnaire means "not reported", which cannot exclude anyone.
        med_bp=bool(flags["med_bp"]),
        med_glucose=bool(flags["med_glucose"]),
        med_lipid=bool(flags["med_lipid"]),
        smoking=bool(flags["smoking"]),
    )
