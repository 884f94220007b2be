"""Numeric grounding: every number a model writes must come from the data it was given.

A draft that says "HbA1c 6.3 %" when the laboratory reported 6.8 %, or that mentions an LDL
value nobody measured, is a patient-safety defect. `check_grounding` finds every number in the
draft and reports those that match no source value. It prefers flagging to missing: an issue
asks the physician to verify; it does not reject the draft.

Matching rules
- Integers must equal a source value exactly ("142" does not match 141.6).
- Decimals must equal the source rounded half-up at the precision written ("6.8" matches 6.8,
  6.80 and 6.83; "6.80" matches 6.8). `tolerance` (absolute, default 0) widens both.
- If the number has a unit and the matching source value has one, they must agree (spellings of
  one unit are equal: bpm = 回/分 = /分, ms = msec; full-width ＭＧ／ｄＬ = mg/dL).
- If the words before the number name a known quantity (LDL, 血圧, QTc, …) and every source
  with that value is a *different* known quantity, it is flagged ("LDL 160" when only the
  height is 160). Unknown labels are matched by value alone.
- "142/88" and "380/420" are two numbers; a range "60〜119" is two numbers; a unit after the
  second number applies to both.

Numbers that are not measurements are extracted but marked `ignored` with the rule's name:
- list_marker: "1." "2)" "(3)" "①" at the start of a line or sentence.
- date: 2024/4/1, 2024-04-01, 2024年4月1日, 令和6年, 4月1日 (a four-digit or era year, or month+day).
- interval: a follow-up interval ahead: "3か月後", "1年以内", "6ヶ月ごと", "3〜6か月後", "年1回".
  (Time *before* — "3か月前と比較" — is not exempt: an invented prior exam must be seen.)
- ecg_lead: V1–V9 and V3R–V6R, also as ranges "V1-V3", "V1-3".
- lead_count: "12誘導", "3誘導".
- identifier: names that contain digits: HbA1c, A1c, SpO2, PaO2, PaCO2, CO2, FT3, FT4, T3, T4,
  CA19-9, CA15-3, CA125, CYFRA21-1, S1Q3T3, vertebral/segment levels C1–C7, Th1–Th12, T1–T12,
  L1–L5, S1–S10. Digits glued to other letters ("LDL160") are *not* exempt.
- ordinal: "第4肋間", "第5頸椎", "第4期".
- type: "2型糖尿病".
- av_block_degree: "1度房室ブロック".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["GroundingIssue", "NumberMention", "check_grounding", "extract_numbers", "grounding_record"]


@dataclass(frozen=True)
class NumberMention:
    value: Decimal
    unit: str | None  # canonical spelling, e.g. "mg/dL"
    start: int  # offsets in the original text
    end: int
    label_hint: str | None  # the words just before the number, e.g. "HbA1c", "血圧"
    text: str = ""  # the number as written, normalised to ASCII ("６．８" → "6.8")
    ignored: str | None = None  # name of the rule that exempts it (see module docstring)


@dataclass(frozen=True)
class GroundingIssue:
    mention: NumberMention
    reason: str
    candidates: tuple[str, ...]  # source keys the physician should compare with


# --- normalisation -------------------------------------------------------------------------

_EXTRA_CHARS = {"\u2212": "-", "\u2010": "-", "\u2011": "-", "\u2013": "–", "\u301c": "〜", "\uff5e": "〜"}
_CIRCLED = re.compile(r"[\u2460-\u2473\u24f5-\u24fe\u2776-\u277f]")


def _normalise(text: str) -> tuple[str, list[int]]:
    """NFKC per character (full-width digits and units to ASCII) with a map from each output
    character back to its index in the original, so that offsets refer to what the user wrote."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        converted = _EXTRA_CHARS.get(ch) or unicodedata.normalize("NFKC", ch)
        out.append(converted)
        origin.extend([i] * len(converted))
    origin.append(len(text))
    return "".join(out), origin


# --- units ---------------------------------------------------------------------------------

_UNIT_LIST = (
    "mL/min/1.73m2", "mL/分/1.73m2", "×10^4/μL", "x10^4/μL", "10^4/μL", "×10^3/μL", "x10^3/μL",
    "10^3/μL", "万/μL", "/μL", "mmHg", "mg/dL", "g/dL", "mEq/L", "mmol/L", "μmol/L", "μg/dL", "ng/mL",
    "pg/mL", "μIU/mL", "mIU/mL", "IU/L", "U/L", "U/mL", "kg/m2", "bpm", "回/分", "拍/分", "/分",
    "msec", "ms", "mV", "μV", "HU", "Hz", "mm", "cm", "kg", "mL", "fL", "°C", "%", "歳", "才", "秒",
    "度", "g", "L", "m",
)  # fmt: skip
# Spellings of the same unit compare equal: a pulse "72 /分" matches a source "72 bpm".
_UNIT_CANONICAL = {unit.lower(): unit for unit in _UNIT_LIST} | {
    "msec": "ms",
    "拍/分": "bpm",
    "回/分": "bpm",
    "/分": "bpm",
}
_UNIT = re.compile(
    r"\s?(" + "|".join(re.escape(u) for u in sorted(_UNIT_LIST, key=len, reverse=True)) + r")(?![A-Za-z])",
    re.IGNORECASE,
)

# --- exemption rules (applied to the normalised text) --------------------------------------

_RULES: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "list_marker",
        re.compile(r"(?:^|(?<=[\n。]))[ \t]*(?:[-・*•][ \t]*)?(?:\(\d{1,2}\)|\d{1,2}[.)、](?!\d))"),
    ),
    ("date", re.compile(r"\d{4}[/.-]\d{1,2}[/.-]\d{1,2}")),
    (
        "date",
        re.compile(
            r"(?:(?<!\d)(?:19|20)\d{2}|(?:令和|平成|昭和|[RHS])\s*\d{1,2})\s*年(?:\s*\d{1,2}\s*月(?:\s*\d{1,2}\s*日)?)?"
            r"(?!\s*(?:後|以内|ごと|毎|おき|以降|間))"
        ),
    ),
    ("date", re.compile(r"(?<!\d)\d{1,2}\s*月\s*\d{1,2}\s*日")),
    (
        "interval",
        re.compile(
            r"\d+(?:\s*[-〜~–]\s*\d+)?\s*(?:か月|カ月|ヶ月|ケ月|ヵ月|箇月|年|週間|週|日)\s*"
            r"(?:後|以内|ごと|毎|おき|以降|程度後|を目安)"
        ),
    ),
    ("interval", re.compile(r"(?:年|月|週)\s*\d+\s*回")),
    ("ecg_lead", re.compile(r"(?<![A-Za-z0-9])V[1-9]R?(?:\s*[-〜~–]\s*V?[1-9]R?)?(?![0-9])")),
    ("lead_count", re.compile(r"\d+\s*誘導")),
    (
        "identifier",
        re.compile(
            r"(?<![A-Za-z0-9])(?:HbA1c|A1c|SpO2|SaO2|PaO2|PaCO2|CO2|FT3|FT4|T3|T4|CA19-9|CA15-3|CA125|"
            r"CYFRA21-1|S1Q3T3|C[1-7]|Th\d{1,2}|T\d{1,2}|L[1-5]|S\d{1,2})(?![A-Za-z0-9])"
        ),
    ),
    ("ordinal", re.compile(r"第\s*\d+")),
    ("type", re.compile(r"\d+\s*型")),
    ("av_block_degree", re.compile(r"\d\s*度\s*(?:房室ブロック|AVブロック|房室伝導障害)")),
)

_NUMBER = re.compile(r"(?<![0-9.])(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?![0-9])")
_PAIR_SEPARATOR = re.compile(r"\s*/\s*")
_RANGE_SEPARATOR = re.compile(r"\s*[-〜~–]\s*")
_LABEL_TAIL = re.compile(r"(?:\s|[:=]|は|が|も|で|を|約|およそ)+$")
_PARENTHETICAL = re.compile(r"\([^()]*\)$")
_LABEL_CHARS = re.compile(r"[A-Za-zγ\u3040-\u30ff\u4e00-\u9fff/・\-]")
_ASCII_TOKEN_END = re.compile(r"[A-Za-z0-9\-]+$")


def extract_numbers(text: str) -> list[NumberMention]:
    """Every number in `text`, with its unit and the label before it; numbers that are not
    measurements are included with `ignored` set to the exempting rule."""
    norm, origin = _normalise(text)
    exempt: list[tuple[int, int, str]] = [(m.start(), m.end(), name) for name, rx in _RULES for m in rx.finditer(norm)]
    found: list[tuple[re.Match[str], str | None, int]] = []  # (match, unit, end incl. unit)
    consumed_until = 0
    for match in _NUMBER.finditer(norm):
        if match.start() < consumed_until:
            continue  # digits inside a unit such as mL/min/1.73m2
        unit_match = _UNIT.match(norm, match.end())
        unit = _UNIT_CANONICAL.get(unit_match.group(1).lower()) if unit_match else None
        end = unit_match.end() if unit_match else match.end()
        consumed_until = end
        found.append((match, unit, end))

    mentions: list[NumberMention] = []
    raw_label: str | None = None  # the previous number's label before splitting "QT/QTc"
    for i, (match, unit, end) in enumerate(found):
        start = match.start()
        value_text = match.group().replace(",", "")
        sign = _sign(norm, start)
        label = _label_before(norm, start - len(sign))
        paired_with_previous = False
        if i > 0:
            prev_match, _prev_unit, _ = found[i - 1]
            between = norm[prev_match.end() : start]
            if _PAIR_SEPARATOR.fullmatch(between) or _RANGE_SEPARATOR.fullmatch(between):
                paired_with_previous = True
                sign = ""  # "140-160" is a range, not minus 160
                label = _split_label(raw_label, 1)
        raw_label = label
        if unit is None and i + 1 < len(found):
            next_match, next_unit, _ = found[i + 1]
            between = norm[match.end() : next_match.start()]
            if _PAIR_SEPARATOR.fullmatch(between) or _RANGE_SEPARATOR.fullmatch(between):
                unit = next_unit  # "142/88 mmHg": the unit belongs to both
                label = _split_label(label, 0) if not paired_with_previous else label
        rule = next((name for s, e, name in exempt if s <= start < e), None)
        if rule is None and _CIRCLED.match(text, origin[start]):
            rule = "list_marker"
        mentions.append(
            NumberMention(
                value=Decimal(sign + value_text),
                unit=unit,
                start=origin[start - len(sign)],
                end=origin[end],
                label_hint=label,
                text=sign + value_text,
                ignored=rule,
            )
        )
    return mentions


def _sign(norm: str, start: int) -> str:
    # A minus directly before the number, itself not after a digit or letter ("140-160", "CA19-9").
    if start > 0 and norm[start - 1] == "-" and (start < 2 or not norm[start - 2].isalnum()):
        return "-"
    return ""


def _label_before(norm: str, start: int) -> str | None:
    window = norm[max(0, start - 40) : start]
    previous = None
    while previous != window:  # drop particles and a trailing "(NGSP)" until stable
        previous = window
        window = _PARENTHETICAL.sub("", _LABEL_TAIL.sub("", window))
    chars: list[str] = []
    i = len(window) - 1
    while i >= 0 and len(chars) < 20:
        ch = window[i]
        token = _ASCII_TOKEN_END.search(window, 0, i + 1) if ch.isdigit() or ch == "-" else None
        if token and token.group()[0].isalpha():
            chars.extend(reversed(token.group()))  # "HbA1c", "CA19-9": digits inside a name
            i = token.start() - 1
            continue
        if _LABEL_CHARS.fullmatch(ch) and not ch.isdigit():
            chars.append(ch)
        elif ch == " " and chars and i > 0 and _LABEL_CHARS.fullmatch(window[i - 1]):
            chars.append(ch)  # "LDL コレステロール"
        else:
            break
        i -= 1
    label = "".join(reversed(chars)).strip(" /・-")
    return label or None


def _split_label(label: str | None, part: int) -> str | None:
    """For a label like 'QT/QTc' before '380/420': the first number is QT, the second QTc."""
    if label and label.count("/") == 1:
        return label.split("/")[part].strip() or label
    return label


# --- labels of known quantities ------------------------------------------------------------

_ALIASES: dict[str, tuple[str, ...]] = {
    "sbp": ("収縮期血圧", "最高血圧", "sbp", "systolic"),
    "dbp": ("拡張期血圧", "最低血圧", "dbp", "diastolic"),
    "bp": ("血圧", "bp", "blood pressure"),
    "hr": ("心拍数", "脈拍", "hr", "heart rate", "pulse"),
    "pr": ("pr間隔", "pr"),
    "qrs": ("qrs幅", "qrs"),
    "qt": ("qt間隔", "qt"),
    "qtc": ("qtc",),
    "rr": ("rr間隔", "rr"),
    "hba1c": ("hba1c", "a1c", "ヘモグロビンa1c"),
    "glucose": ("血糖", "fbs", "fpg", "glucose", "glu"),
    "ldl": ("ldl",),
    "hdl": ("hdl",),
    "nonhdl": ("non hdl", "nonhdl"),
    "tg": ("中性脂肪", "トリグリセリド", "tg"),
    "tc": ("総コレステロール", "tc", "tcho"),
    "ast": ("ast", "got"),
    "alt": ("alt", "gpt"),
    "ggt": ("γgt", "γ gt", "γgtp", "ggt", "gamma gt"),
    "creatinine": ("クレアチニン", "cre", "cr"),
    "egfr": ("egfr",),
    "uric_acid": ("尿酸", "ua"),
    "hb": ("血色素", "ヘモグロビン", "hb", "hgb"),
    "bmi": ("bmi",),
    "waist": ("腹囲", "waist"),
    "height": ("身長", "height"),
    "weight": ("体重", "weight"),
    "age": ("年齢", "age"),
    "iop": ("眼圧", "iop"),
    "cdr": ("陥凹乳頭径比", "c/d", "cdr"),
}
_RELATED = {"bp": {"sbp", "dbp"}}


def _canonical(label: str | None) -> str | None:
    """The known quantity a label or source key names, by its longest alias."""
    if not label:
        return None
    text = re.sub(r"[_\-\s]+", " ", unicodedata.normalize("NFKC", label).lower())
    best: tuple[int, str] | None = None
    for canonical, aliases in _ALIASES.items():
        for alias in aliases:
            if alias.isascii():
                # Short Latin aliases must stand alone: "qt" is not in "qtc", "pr" not in "probnp".
                hit = re.search(rf"(?<![a-z]){re.escape(alias)}(?![a-z])", text)
            else:
                hit = re.search(re.escape(alias), text)
            if hit and (best is None or len(alias) > best[0]):
                best = (len(alias), canonical)
    return best[1] if best else None


def _related(a: str, b: str) -> bool:
    return a == b or b in _RELATED.get(a, set()) or a in _RELATED.get(b, set())


# --- checking ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    key: str
    value: Decimal
    unit: str | None
    canonical: str | None


def check_grounding(
    text: str,
    sources: Mapping[str, Decimal | float | int | str],
    tolerance: Decimal | float | int = 0,
) -> list[GroundingIssue]:
    """Issues for every number in `text` that no source value supports (see module docstring)."""
    tol = Decimal(str(tolerance))
    pool = _source_values(sources)
    issues: list[GroundingIssue] = []
    for mention in extract_numbers(text):
        if mention.ignored:
            continue
        label = _canonical(mention.label_hint)
        same_label = tuple(s.key for s in pool if label and s.canonical and _related(label, s.canonical))
        by_value = [s for s in pool if _value_matches(mention, s.value, tol)]
        if not by_value:
            expected = ", ".join(
                f"{s.key} = {s.value}{' ' + s.unit if s.unit else ''}" for s in pool if s.key in same_label
            )
            reason = f"{mention.text}{' ' + mention.unit if mention.unit else ''} は元データにありません"
            reason += f"（元データ: {expected}）" if expected else ""
            issues.append(GroundingIssue(mention, reason, same_label))
            continue
        by_unit = [s for s in by_value if not (mention.unit and s.unit and mention.unit != s.unit)]
        if not by_unit:
            units = ", ".join(f"{s.key} = {s.value} {s.unit}" for s in by_value)
            reason = f"{mention.text} {mention.unit}: 単位が元データと異なります（{units}）"
            issues.append(GroundingIssue(mention, reason, tuple(s.key for s in by_value)))
            continue
        if label and all(s.canonical and not _related(label, s.canonical) for s in by_unit):
            keys = ", ".join(s.key for s in by_unit)
            reason = f"{mention.text} は「{mention.label_hint}」として書かれていますが、その値は {keys} の値です"
            issues.append(GroundingIssue(mention, reason, same_label or tuple(s.key for s in by_unit)))
    return issues


def _source_values(sources: Mapping[str, Decimal | float | int | str]) -> list[_Source]:
    pool: list[_Source] = []
    for key, raw in sources.items():
        canonical = _canonical(key)
        if isinstance(raw, bool) or raw is None:
            continue  # True is not the number 1
        if isinstance(raw, str):
            for mention in extract_numbers(raw):
                if not mention.ignored:
                    pool.append(_Source(key, mention.value, mention.unit, canonical))
            continue
        try:
            # str() first: Decimal(6.8) would be 6.79999…; str(6.8) is the shortest repr "6.8".
            value = raw if isinstance(raw, Decimal) else Decimal(str(raw))
        except InvalidOperation:
            continue
        if value.is_finite():
            pool.append(_Source(key, value, None, canonical))
    return pool


def _value_matches(mention: NumberMention, source: Decimal, tol: Decimal) -> bool:
    decimals = len(mention.text.partition(".")[2])
    if decimals:
        source = source.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return abs(mention.value - source) <= tol


def grounding_record(text: str, sources: Mapping[str, Decimal | float | int | str]) -> dict[str, Any]:
    """The JSON record stored with a draft or revision: the sources it was checked against (they
    travel with it, so later edits are held to the same data) and every issue with its offsets."""
    issues = check_grounding(text, sources)
    return {"checked": True, "sources": {str(k): str(v) for k, v in sources.items()}, "issues": [
        {"text": i.mention.text, "unit": i.mention.unit, "start": i.mention.start, "end": i.mention.end,
         "reason": i.reason, "candidates": list(i.candidates)} for i in issues
    ]}
