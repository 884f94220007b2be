"""Reading a checkup file (CSV or Excel) into validated visits, or into the exact list of what
cannot be trusted: row, column, value and reason. Pure Python (no Django): the import service
decides what to do with the result, and a file with any error is not imported at all."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path

from clinical.intake.items import BY_KEY, Item, find_item, fold, split_header, unit_ok
from clinical.intake.normalize import (
    NormalizationError,
    is_not_measured,
    parse_date,
    parse_flag,
    parse_number,
    parse_qualitative,
    to_halfwidth,
)

# Columns that identify the visit rather than carry a result.
ID_COLUMNS = {
    "mrn": ("受診者番号", "受診者id", "mrn", "患者id", "id"),
    "exam_date": ("受診日", "健診日", "exam_date", "実施日"),
    "course": ("コース", "健診コース", "course", "健診種別"),
    "fasting": ("空腹時", "空腹", "fasting", "食後10時間以上"),
}
# Columns a person keeps in the sheet for reading it; never imported (the register is the truth).
IGNORED_COLUMNS = {fold(c) for c in ("氏名", "カナ", "氏名カナ", "性別", "生年月日", "年齢", "備考", "name", "sex",
                                     "age")}
COURSES = {"特定健診": "tokutei", "特定健康診査": "tokutei", "tokutei": "tokutei", "人間ドック": "dock",
           "ドック": "dock", "dock": "dock", "定期健康診断": "teiki", "定期健診": "teiki", "teiki": "teiki"}
MAX_ROWS = 500_000
_NUMBER_WITH_UNIT = re.compile(r"(-?\d+(?:\.\d+)?)\s*([A-Za-z%μ/][A-Za-z0-9%μ/.²]*)")


@dataclass(frozen=True)
class RowError:
    row: int  # 1-based line of the file (the header is row 1)
    column: str
    value: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"row": self.row, "column": self.column, "value": self.value, "reason": self.reason}

    def __str__(self) -> str:
        return f"{self.row}行目「{self.column}」: 値「{self.value}」: {self.reason}"


@dataclass
class ParsedVisit:
    row: int
    mrn: str
    exam_date: date
    course: str
    fasting: bool | None
    values: dict[str, tuple[Decimal | None, str]] = field(default_factory=dict)  # item → (number, text)


@dataclass
class ParsedFile:
    visits: list[ParsedVisit]
    errors: list[RowError]
    items: list[str]  # item keys found in the header, in column order


@dataclass(frozen=True)
class _Column:
    index: int
    header: str
    role: str  # "id:<name>", "item", "ignore"
    item: Item | None = None


def read_rows(path: str | Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """Header and (row number, cells) of a CSV (UTF-8 with or without BOM, or Shift_JIS) or .xlsx."""
    path = Path(path)
    if path.suffix.lower() in {".xlsx", ".xlsm"}:
        return _read_xlsx(path)
    raw = path.read_bytes()
    for encoding in ("utf-8-sig", "cp932"):
        try:
            text = raw.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError("文字コードを判別できません（UTF-8 または Shift_JIS の CSV にしてください）")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None:
        raise ValueError("ファイルが空です")
    return header, ((n, row) for n, row in enumerate(reader, start=2) if any(c.strip() for c in row))


def _read_xlsx(path: Path) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    from openpyxl import load_workbook

    sheet = load_workbook(path, read_only=True, data_only=True).worksheets[0]
    rows = sheet.iter_rows(values_only=True)
    first = next(rows, None)
    if first is None:
        raise ValueError("シートが空です")
    header = ["" if c is None else str(c) for c in first]

    def cells() -> Iterator[tuple[int, list[str]]]:
        for n, row in enumerate(rows, start=2):
            values = ["" if c is None else _cell_text(c) for c in row]
            if any(v.strip() for v in values):
                yield n, values

    return header, cells()


def _cell_text(value: object) -> str:
    if isinstance(value, date):
        return value.strftime("%Y-%m-%d")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _columns(header: list[str], mapping: dict[str, str] | None = None) -> tuple[list[_Column], list[RowError]]:
    """Recognise each column: identity columns, items by the facility's mapping profile first
    (its own header → item key), then by item key, JLAC10 code or Japanese name."""
    profile = {fold(k): v for k, v in (mapping or {}).items()}
    columns: list[_Column] = []
    errors: list[RowError] = []
    seen: dict[str, str] = {}
    for index, raw in enumerate(header):
        name = raw.strip()
        folded = fold(name)
        role = next((f"id:{k}" for k, names in ID_COLUMNS.items() if folded in {fold(n) for n in names}), None)
        if role:
            columns.append(_Column(index, name, role))
            continue
        if not name or folded in IGNORED_COLUMNS:
            columns.append(_Column(index, name, "ignore"))
            continue
        mapped = profile.get(folded)
        if mapped is not None:
            base, unit = name, None
            item = BY_KEY.get(mapped)
        else:
            base, unit = split_header(name)
            item = find_item(base)
        if item is None:
            errors.append(RowError(1, name, name, "項目名・JLAC10コードとして認識できない列です"))
            continue
        if unit is not None and item.kind == "number" and not unit_ok(item, unit):
            reason = f"{item.label} の単位として使えません（{item.unit} で入力してください）"
            errors.append(RowError(1, name, unit, reason))
            continue
        if item.key in seen:
            reason = f"{item.label} の列が重複しています（「{seen[item.key]}」列と同じ項目）"
            errors.append(RowError(1, name, name, reason))
            continue
        seen[item.key] = name
        columns.append(_Column(index, name, "item", item))
    present = {c.role for c in columns}
    for need, label in (("id:mrn", "受診者番号"), ("id:exam_date", "受診日")):
        if need not in present:
            errors.append(RowError(1, label, "", f"必須の列「{label}」がありません"))
    return columns, errors


def _value(item: Item, text: str) -> tuple[Decimal | None, str]:
    if item.kind == "qualitative":
        q = parse_qualitative(text)
        return None, q or ""
    if item.kind == "flag":
        flag = parse_flag(text)
        return (None, "") if flag is None else (Decimal(int(flag)), "")
    t = to_halfwidth(text).strip()
    # A unit written in the cell ("142 mmHg") must be the item's unit; the number is kept as written.
    with_unit = _NUMBER_WITH_UNIT.fullmatch(t)
    if with_unit:
        if not unit_ok(item, with_unit.group(2)):
            raise NormalizationError("単位", with_unit.group(2), f"{item.label} の単位は {item.unit} です")
        t = with_unit.group(1)
    value = parse_number(t)
    if value is None:
        return None, ""
    if (item.low is not None and value < item.low) or (item.high is not None and value > item.high):
        raise NormalizationError(
            "数値", text, f"{item.label} としてありえない値です（{item.low:g}〜{item.high:g} {item.unit}）"
        )
    # Decimal of the text as written keeps "6.80" distinct from "6.8" for the grounding check.
    return Decimal(t), ""


def parse_rows(header: list[str], rows: Iterable[tuple[int, list[str]]], *, known_mrns: set[str] | None = None,
               default_course: str = "tokutei", mapping: dict[str, str] | None = None) -> ParsedFile:
    """Validate every cell of every row. Returns the visits and every error (not just the first):
    a clerk fixes a file in one pass."""
    columns, errors = _columns(header, mapping)
    if errors:
        return ParsedFile([], errors, [])
    by_key: dict[tuple[str, date, str], ParsedVisit] = {}
    visits: list[ParsedVisit] = []
    for n, cells in rows:
        if len(visits) >= MAX_ROWS:
            errors.append(RowError(n, "", "", f"1ファイル {MAX_ROWS:,} 行までです"))
            break
        visit = _parse_row(n, cells, columns, errors, known_mrns, default_course)
        if visit is None:
            continue
        key = (visit.mrn, visit.exam_date, visit.course)
        earlier = by_key.get(key)
        if earlier is None:
            by_key[key] = visit
            visits.append(visit)
        elif earlier.values != visit.values or earlier.fasting != visit.fasting:
            differing = sorted(k for k in set(earlier.values) | set(visit.values)
                               if earlier.values.get(k) != visit.values.get(k))
            labels = "、".join(BY_KEY[k].label for k in differing) or "空腹時"
            reason = f"{earlier.row}行目と同じ受診（同じ受診者・受診日・コース）で値が異なります: {labels}"
            errors.append(RowError(n, "受診者番号", visit.mrn, reason))
    return ParsedFile(visits, errors, [c.item.key for c in columns if c.item is not None])


def _parse_row(n: int, cells: list[str], columns: list[_Column], errors: list[RowError],
               known_mrns: set[str] | None, default_course: str) -> ParsedVisit | None:
    ids: dict[str, str] = {}
    values: dict[str, tuple[Decimal | None, str]] = {}
    before = len(errors)
    for col in columns:
        text = cells[col.index] if col.index < len(cells) else ""
        if col.role.startswith("id:"):
            ids[col.role[3:]] = text.strip()
            continue
        if col.item is None or is_not_measured(text) or not text.strip():
            continue
        try:
            number, qualitative = _value(col.item, text)
        except NormalizationError as exc:
            errors.append(RowError(n, col.header, text, exc.reason))
            continue
        if number is not None or qualitative:
            values[col.item.key] = (number, qualitative)
    mrn = to_halfwidth(ids.get("mrn", "")).strip()
    if not mrn:
        errors.append(RowError(n, "受診者番号", "", "受診者番号が空です"))
    elif known_mrns is not None and mrn not in known_mrns:
        errors.append(RowError(n, "受診者番号", mrn, "この施設に登録されていない受診者です"))
    exam_date = None
    try:
        exam_date = parse_date(ids.get("exam_date"))
        if exam_date is None:
            errors.append(RowError(n, "受診日", ids.get("exam_date", ""), "受診日が空です"))
        elif exam_date > date.today():
            errors.append(RowError(n, "受診日", ids.get("exam_date", ""), "未来の日付です"))
            exam_date = None
    except NormalizationError as exc:
        errors.append(RowError(n, "受診日", ids.get("exam_date", ""), exc.reason))
    course_text = to_halfwidth(ids.get("course", "")).strip()
    course = COURSES.get(course_text, COURSES.get(course_text.lower())) if course_text else default_course
    if course is None:
        errors.append(RowError(n, "コース", course_text,
                               "特定健診・人間ドック・定期健康診断のいずれかを指定してください"))
    fasting = None
    try:
        fasting = parse_flag(ids.get("fasting")) if ids.get("fasting") else None
    except NormalizationError as exc:
        errors.append(RowError(n, "空腹時", ids.get("fasting", ""), exc.reason))
    if len(errors) > before or exam_date is None or course is None:
        return None
    return ParsedVisit(n, mrn, exam_date, course, fasting, values)
