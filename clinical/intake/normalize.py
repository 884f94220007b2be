"""Pure normalisers for values arriving from CSV / Excel / hand entry.

Each returns the canonical value, ``None`` for "not measured" (blank, 未実施, 未測定), or
raises :class:`NormalizationError` whose message (Japanese) says what the value was and why
it was refused. Nothing is guessed: an input that could mean two things is refused.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date
from typing import NamedTuple

NOT_MEASURED: frozenset[str] = frozenset({"", "未実施", "未測定"})


class NormalizationError(ValueError):
    """A value that cannot be trusted; ``str(exc)`` is the Japanese message for the user."""

    def __init__(self, kind: str, value: object, reason: str) -> None:
        self.kind = kind  # 数値 / 日付 / 定性値 / フラグ
        self.value = value
        self.reason = reason
        super().__init__(f"{kind}「{value}」を受け付けられません: {reason}")


def to_halfwidth(text: str) -> str:
    """NFKC: full-width digits / letters / punctuation → ASCII, ㋿ → 令和, and so on."""
    return unicodedata.normalize("NFKC", text)


def _clean(text: str) -> str:
    # ASCII text needs no NFKC (the common case on a bulk import).
    return (text if text.isascii() else to_halfwidth(text)).strip()


def is_not_measured(text: str | None) -> bool:
    return text is None or _clean(text) in NOT_MEASURED


# ---------------------------------------------------------------- numbers

_NUMBER_RE = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)")
_MINUS_SIGNS = str.maketrans({"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-"})


def parse_number(text: str | None, *, minimum: float | None = None, maximum: float | None = None) -> float | None:
    """``"１２３．４"`` → 123.4; blank / 未実施 / 未測定 → None.

    Refused: anything but digits with an optional minus and decimal point (no exponents,
    ``nan``, ``inf``, thousands separators, decimal commas, ``<5`` detection limits, units).
    """
    if text is None:
        return None
    t = text.strip() if text.isascii() else to_halfwidth(text).strip().translate(_MINUS_SIGNS)
    if t in NOT_MEASURED:
        return None
    if not _NUMBER_RE.fullmatch(t):
        raise NormalizationError("数値", text, _why_not_number(t))
    value = float(t)
    if minimum is not None and value < minimum:
        raise NormalizationError("数値", text, f"{_num(minimum)} より小さい値は使えません")
    if maximum is not None and value > maximum:
        raise NormalizationError("数値", text, f"{_num(maximum)} より大きい値は使えません")
    return value


def parse_int(text: str | None, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """An integer (age, counts): ``"５０"`` → 50; ``"50.5"`` is refused, not rounded."""
    value = parse_number(text, minimum=minimum, maximum=maximum)
    if value is None:
        return None
    if not value.is_integer():
        raise NormalizationError("数値", text, "整数ではありません")
    return int(value)


def _why_not_number(t: str) -> str:
    if t[:1] in ("<", ">", "≦", "≧", "≤", "≥") or t[:2] in ("<=", ">="):
        return "不等号付きの値（検出限界など）は数値として扱えません"
    if "," in t:
        return "カンマ（桁区切り・小数点）は使えません"
    if re.fullmatch(r"-?\d+(\.\d+)?\s*\D+", t):
        return "数値のあとに単位などの文字が付いています"
    return "数字・小数点・マイナス記号以外の文字を含むため数値として読めません"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


# ---------------------------------------------------------------- flags


def parse_flag(text: str | None) -> bool | None:
    """``"1"`` → True, ``"0"`` → False (full-width too); blank → None."""
    if text is None:
        return None
    t = _clean(text)
    if t in NOT_MEASURED:
        return None
    if t == "1":
        return True
    if t == "0":
        return False
    raise NormalizationError("フラグ", text, "0 か 1 で指定してください")


# ---------------------------------------------------------------- qualitative results

QUALITATIVE_VALUES: tuple[str, ...] = ("-", "+-", "1+", "2+", "3+", "4+")
_DASHES = str.maketrans({c: "-" for c in "\u2212\u2010\u2011\u2012\u2013\u2014\u2015\u30fc"})
_QUALITATIVE = {
    "-": "-",
    "±": "+-",
    "+-": "+-",
    "+/-": "+-",
    "+": "1+",
    "1+": "1+",
    "++": "2+",
    "2+": "2+",
    "+++": "3+",
    "3+": "3+",
    "++++": "4+",
    "4+": "4+",
}
_WORDS = {"陰性": "-", "陽性": "1+"}


def parse_qualitative(text: str | None) -> str | None:
    """Urine dipstick style results → ``"-"``, ``"+-"``, ``"1+"`` … ``"4+"``; blank → None.

    Accepted: − / - / ー and other dashes, ±, +, 1+ … 4+, ++ … ++++, with or without
    (half- or full-width) parentheses; 陰性 → "-", 陽性 (no grade given) → "1+".
    """
    if text is None:
        return None
    t = _clean(text)
    if t in NOT_MEASURED:
        return None
    if t in _WORDS:
        return _WORDS[t]
    t = "".join(t.split()).translate(_DASHES)
    if len(t) >= 2 and t[0] == "(" and t[-1] == ")":
        t = t[1:-1]
    canonical = _QUALITATIVE.get(t)
    if canonical is None:
        raise NormalizationError("定性値", text, "−, ±, +, 1+〜4+, 陰性, 陽性 のいずれでもありません")
    return canonical


# ---------------------------------------------------------------- dates


class Era(NamedTuple):
    name: str
    letter: str
    first_day: date  # the era's first day (the day of the change belongs to both eras)
    last_day: date | None
    valid_from: date  # first day this module converts (the Gregorian calendar from 1873)


ERAS: tuple[Era, ...] = (
    Era("明治", "M", date(1868, 10, 23), date(1912, 7, 30), date(1873, 1, 1)),
    Era("大正", "T", date(1912, 7, 30), date(1926, 12, 25), date(1912, 7, 30)),
    Era("昭和", "S", date(1926, 12, 25), date(1989, 1, 7), date(1926, 12, 25)),
    Era("平成", "H", date(1989, 1, 8), date(2019, 4, 30), date(1989, 1, 8)),
    Era("令和", "R", date(2019, 5, 1), None, date(2019, 5, 1)),
)
_ERA_BY_KEY: dict[str, Era] = {}
for _e in ERAS:
    _ERA_BY_KEY.update({_e.name: _e, _e.name[0]: _e, _e.letter: _e, _e.letter.lower(): _e})
GREGORIAN_FROM = date(1873, 1, 1)  # 明治6年1月1日: Japan's change to the Gregorian calendar

_ERA_KEYS = "|".join(sorted((re.escape(k) for k in _ERA_BY_KEY), key=len, reverse=True))
_ERA_KANJI_RE = re.compile(rf"({_ERA_KEYS})(元|\d{{1,2}})年(\d{{1,2}})月(\d{{1,2}})日")
_ERA_DOTTED_RE = re.compile(rf"({_ERA_KEYS})(元|\d{{1,2}})([./-])(\d{{1,2}})\3(\d{{1,2}})")
_WESTERN_RE = re.compile(r"(\d{4})([./-])(\d{1,2})\2(\d{1,2})")
_WESTERN_KANJI_RE = re.compile(r"(\d{4})年(\d{1,2})月(\d{1,2})日")
_COMPACT_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")


def parse_date(text: str | None) -> date | None:
    """和暦 or 西暦 → ``date``; blank → None.

    和暦: 令和6年4月1日, 令和元年5月1日, R6.4.1, R06/04/01, H31.4.30, 平成31年4月30日, S, T, M and
    ㋿-style ligatures. 西暦: 2024-04-01, 2024/4/1, 2024.4.1, 2024年4月1日, 20240401.
    Refused: dates not on the calendar, dates outside their era (H31.5.1, R1.4.30), year 0,
    and dates before the Gregorian calendar (1873).
    """
    if text is None:
        return None
    t = "".join(_clean(text).split())
    if t in NOT_MEASURED:
        return None
    m = _ERA_KANJI_RE.fullmatch(t)
    if m:
        return _era_date(text, _ERA_BY_KEY[m[1]], m[2], m[3], m[4])
    m = _ERA_DOTTED_RE.fullmatch(t)
    if m:
        return _era_date(text, _ERA_BY_KEY[m[1]], m[2], m[4], m[5])
    m = _WESTERN_RE.fullmatch(t)
    if m:
        return _western_date(text, m[1], m[3], m[4])
    m = _WESTERN_KANJI_RE.fullmatch(t) or _COMPACT_RE.fullmatch(t)
    if m:
        return _western_date(text, m[1], m[2], m[3])
    raise NormalizationError(
        "日付", text, "和暦（令和6年4月1日, R6.4.1）か西暦（2024-04-01, 2024/4/1）として読めません"
    )


def _calendar_date(raw: str, year: int, month: int, day: int) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise NormalizationError("日付", raw, f"{year}年{month}月{day}日 は暦に存在しません") from None


def _western_date(raw: str, y: str, m: str, d: str) -> date:
    result = _calendar_date(raw, int(y), int(m), int(d))
    if result < GREGORIAN_FROM:
        raise NormalizationError("日付", raw, "1873年（明治6年）の改暦より前の日付は扱えません")
    return result


def _era_date(raw: str, era: Era, y: str, m: str, d: str) -> date:
    era_year = 1 if y == "元" else int(y)
    if era_year < 1:
        raise NormalizationError("日付", raw, f"{era.name}0年はありません（1年は「元年」）")
    result = _calendar_date(raw, era.first_day.year + era_year - 1, int(m), int(d))
    if result < era.first_day:
        raise NormalizationError(
            "日付",
            raw,
            f"{era.name}は{wareki(era.first_day, era)}（{era.first_day.isoformat()}）から始まります"
            + _which_era(result),
        )
    if era.last_day is not None and result > era.last_day:
        raise NormalizationError(
            "日付",
            raw,
            f"{era.name}は{wareki(era.last_day, era)}（{era.last_day.isoformat()}）で終わっています"
            + _which_era(result),
        )
    if result < era.valid_from:
        raise NormalizationError("日付", raw, "1873年（明治6年）の改暦より前の日付は扱えません")
    return result


def _which_era(d: date) -> str:
    return f"（{d.isoformat()} は{wareki(d)}）" if d >= ERAS[0].first_day else ""


def wareki(d: date, era: Era | None = None) -> str:
    """``date(2019, 5, 1)`` → ``"令和元年5月1日"`` (the later era on a day of change)."""
    if era is None:
        era = next(e for e in reversed(ERAS) if d >= e.first_day)
    n = d.year - era.first_day.year + 1
    year = "元" if n == 1 else str(n)
    return f"{era.name}{year}年{d.month}月{d.day}日"
