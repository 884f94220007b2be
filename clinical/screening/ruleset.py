"""Rule sets are data files (``rulesets/<id>.toml``); this module reads and checks them.

A rule set that loads is internally consistent: every key is known (a misspelt
``referal`` fails instead of vanishing), thresholds of one item point the same way, a
referral value implies the guidance value, bands are ordered and do not overlap, every rule
states ``verified`` explicitly, and the file-level ``verified`` is true only when every rule
and the 階層化 section are.
"""

from __future__ import annotations

import functools
import itertools
import math
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from clinical.screening.model import (
    GRADES,
    LEVELS,
    OP_SYMBOL,
    Band,
    HierarchyRule,
    ItemRule,
    LevelRule,
    RuleSet,
    RuleSetError,
    Threshold,
)
from clinical.screening.visit import MEDICATION_FIELDS, NUMERIC_FIELDS, QUALITATIVE_FIELDS

RULESET_DIR = Path(__file__).resolve().parent / "rulesets"
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_JLAC10_RE = re.compile(r"^[0-9A-Z]{17}$")
_GRADE_NAMES = ("A", "B", "C", "D", "E")
_LEVEL_OUTCOMES = ("normal", "guidance", "referral")
GUIDANCE_LABEL = "保健指導判定値"
REFERRAL_LABEL = "受診勧奨判定値"

_HEADER_KEYS = {
    "id",
    "version",
    "kind",
    "title",
    "source",
    "edition",
    "source_url",
    "verified",
    "follow_up",
    "notes",
    "grades",
}
_ITEM_KEYS = {
    "key",
    "name",
    "field",
    "unit",
    "jlac10",
    "jlac10_abbreviated",
    "verified",
    "note",
    "fasting",
    "scale",
    "guidance",
    "referral",
    "by_sex",
    "bands",
    "treated_by",
}
_HIERARCHY_KEYS = {
    "source",
    "verified",
    "waist_cm",
    "bmi",
    "risk",
    "smoking_label",
    "group1_active_min_risks",
    "group2_active_min_risks",
    "senior_ages",
    "exclude_on_medication",
}


def available_rulesets() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in RULESET_DIR.glob("*.toml")))


@functools.lru_cache(maxsize=16)
def load_ruleset(name: str) -> RuleSet:
    """Load a shipped rule set by id (``mhlw-2024``, ``ningen-dock``); cached per process."""
    if not _NAME_RE.match(name):
        raise RuleSetError(f"rule set name {name!r} is not a plain id")
    path = RULESET_DIR / f"{name}.toml"
    if not path.is_file():
        raise RuleSetError(f"unknown rule set {name!r}; available: {', '.join(available_rulesets())}")
    ruleset = load_ruleset_file(path)
    if ruleset.id != name:
        raise RuleSetError(f"{path.name}: declares id {ruleset.id!r}, expected {name!r}")
    return ruleset


def load_ruleset_file(path: str | Path) -> RuleSet:
    """Load and validate any rule-set file (tests use it on deliberately broken copies)."""
    p = Path(path)
    try:
        with p.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleSetError(f"{p.name}: cannot read: {exc}") from exc
    return parse_ruleset(data, where=p.name, path=str(p))


def parse_ruleset(data: dict[str, Any], *, where: str = "<data>", path: str = "") -> RuleSet:
    head = _table(data, "ruleset", where)
    _known(head, _HEADER_KEYS, f"{where} [ruleset]")
    rs_id = _str(head, "id", where)
    kind = _str(head, "kind", where)
    if kind not in (LEVELS, GRADES):
        raise RuleSetError(f"{where}: kind must be {LEVELS!r} or {GRADES!r}, not {kind!r}")
    grade_labels: dict[str, str] = {}
    if kind == GRADES:
        raw_grades = _table(head, "grades", where)
        if set(raw_grades) != set(_GRADE_NAMES):
            raise RuleSetError(f"{where}: [ruleset.grades] must name exactly {', '.join(_GRADE_NAMES)}")
        grade_labels = {g: str(raw_grades[g]) for g in _GRADE_NAMES}
    follow_up = frozenset(_str_list(head, "follow_up", where))
    allowed = set(_LEVEL_OUTCOMES) if kind == LEVELS else set(_GRADE_NAMES)
    if not follow_up or not follow_up <= allowed:
        raise RuleSetError(f"{where}: follow_up must be a non-empty subset of {sorted(allowed)}")

    raw_items = data.get("item")
    if not isinstance(raw_items, list) or not raw_items:
        raise RuleSetError(f"{where}: no [[item]] rules")
    items = [_parse_item(raw, rs_id, kind, where) for raw in raw_items]
    keys = [i.key for i in items]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise RuleSetError(f"{where}: duplicate item keys {dupes}")
    for a in items:
        for b in items:
            if a is not b and a.field == b.field and not _disjoint_fasting(a.fasting, b.fasting):
                raise RuleSetError(f"{where}: items {a.key!r} and {b.key!r} both judge field {a.field!r}")

    hierarchy = None
    if "hierarchy" in data:
        if kind != LEVELS:
            raise RuleSetError(f"{where}: [hierarchy] needs a {LEVELS!r} rule set")
        hierarchy, risk_of = _parse_hierarchy(_table(data, "hierarchy", where), keys, where)
        items = [_with_risk(i, risk_of.get(i.key)) for i in items]

    verified = _bool(head, "verified", where)
    all_verified = all(i.verified for i in items) and (hierarchy is None or hierarchy.verified)
    if verified and not all_verified:
        raise RuleSetError(f"{where}: verified = true at file level but some rules are verified = false")

    return RuleSet(
        id=rs_id,
        version=_str(head, "version", where),
        kind=kind,
        title=_str(head, "title", where),
        source=_str(head, "source", where),
        edition=_str(head, "edition", where),
        source_url=str(head.get("source_url", "")),
        verified=verified,
        follow_up=follow_up,
        grade_labels=grade_labels,
        items=tuple(items),
        hierarchy=hierarchy,
        notes=tuple(_str_list(head, "notes", where)) if "notes" in head else (),
        path=path,
    )


def _parse_item(raw: Any, rs_id: str, kind: str, where: str) -> ItemRule:
    if not isinstance(raw, dict):
        raise RuleSetError(f"{where}: an [[item]] is not a table")
    key = _str(raw, "key", where)
    w = f"{where} item {key!r}"
    _known(raw, _ITEM_KEYS, w)
    fld = _str(raw, "field", w)
    if fld not in NUMERIC_FIELDS | QUALITATIVE_FIELDS:
        raise RuleSetError(f"{w}: field {fld!r} is not a judged VisitInput field")
    scale = tuple(_str_list(raw, "scale", w)) if "scale" in raw else ()
    if (fld in QUALITATIVE_FIELDS) != bool(scale):
        raise RuleSetError(f"{w}: a qualitative field needs a scale, and only a qualitative one")
    jlac10 = tuple(_str_list(raw, "jlac10", w))
    bad = [c for c in jlac10 if not _JLAC10_RE.match(c)]
    if bad or not jlac10:
        raise RuleSetError(f"{w}: JLAC10 codes must be 17 characters [0-9A-Z]: {bad or 'none given'}")
    fasting = raw.get("fasting")
    if fasting is not None and not isinstance(fasting, bool):
        raise RuleSetError(f"{w}: fasting must be true or false")
    common: dict[str, Any] = dict(
        key=key,
        rule_id=f"{rs_id}/{key}",
        name=_str(raw, "name", w),
        field=fld,
        unit=str(raw.get("unit", "")),
        jlac10=jlac10,
        jlac10_abbreviated=tuple(_str_list(raw, "jlac10_abbreviated", w) if "jlac10_abbreviated" in raw else ()),
        verified=_bool(raw, "verified", w),
        note=str(raw.get("note", "")),
        fasting=fasting,
        scale=scale,
    )
    per_sex = _per_sex(raw, w)
    if kind == LEVELS:
        if "bands" in raw or "treated_by" in raw:
            raise RuleSetError(f"{w}: bands / treated_by belong to a {GRADES!r} rule set")
        levels = {sex: _parse_levels(t, scale, f"{w} ({sex})") for sex, t in per_sex.items()}
        return ItemRule(**common, levels=levels)
    if "guidance" in raw or "referral" in raw:
        raise RuleSetError(f"{w}: guidance / referral belong to a {LEVELS!r} rule set")
    bands = {sex: _parse_bands(t, scale, f"{w} ({sex})") for sex, t in per_sex.items()}
    treated_by = raw.get("treated_by")
    if treated_by is not None and treated_by not in MEDICATION_FIELDS:
        raise RuleSetError(f"{w}: treated_by must be one of {sorted(MEDICATION_FIELDS)}")
    return ItemRule(**common, bands=bands, treated_by=treated_by)


def _per_sex(raw: dict[str, Any], w: str) -> dict[str, dict[str, Any]]:
    """The threshold tables for M and F: ``by_sex.M`` / ``by_sex.F``, or one shared table."""
    if "by_sex" not in raw:
        return {"M": raw, "F": raw}
    by_sex = raw["by_sex"]
    if not isinstance(by_sex, dict) or set(by_sex) != {"M", "F"}:
        raise RuleSetError(f"{w}: by_sex must have exactly the tables M and F")
    if any(k in raw for k in ("guidance", "referral", "bands")):
        raise RuleSetError(f"{w}: thresholds both shared and by_sex")
    for sex, t in by_sex.items():
        _known(t, {"guidance", "referral", "bands"}, f"{w} by_sex.{sex}")
    return {"M": by_sex["M"], "F": by_sex["F"]}


def _parse_threshold(raw: Any, label: str, scale: tuple[str, ...], w: str) -> Threshold:
    if not isinstance(raw, dict) or set(raw) != {"op", "value"}:
        raise RuleSetError(f"{w}: {label} must be {{ op = ..., value = ... }}")
    op = raw["op"]
    if op not in OP_SYMBOL:
        raise RuleSetError(f"{w}: {label} op {op!r} is not one of {sorted(OP_SYMBOL)}")
    return Threshold(op=op, value=_value(raw["value"], scale, f"{w} {label}"), label=label)


def _parse_levels(table: dict[str, Any], scale: tuple[str, ...], w: str) -> LevelRule:
    if "guidance" not in table:
        raise RuleSetError(f"{w}: no guidance threshold")
    guidance = _parse_threshold(table["guidance"], GUIDANCE_LABEL, scale, w)
    referral = None
    if "referral" in table:
        referral = _parse_threshold(table["referral"], REFERRAL_LABEL, scale, w)
        if referral.upward != guidance.upward:
            raise RuleSetError(f"{w}: guidance and referral thresholds point different ways")
        # A referral value must be at or past the guidance value, or levels would not nest.
        g, r = _rank(guidance.value, scale), _rank(referral.value, scale)
        if (guidance.upward and r < g) or (not guidance.upward and r > g):
            raise RuleSetError(f"{w}: referral {referral.value} is less severe than guidance {guidance.value}")
    return LevelRule(guidance=guidance, referral=referral)


def _parse_bands(table: dict[str, Any], scale: tuple[str, ...], w: str) -> tuple[Band, ...]:
    raw = table.get("bands")
    if not isinstance(raw, list) or not raw:
        raise RuleSetError(f"{w}: no bands")
    bands: list[Band] = []
    for b in raw:
        if not isinstance(b, dict):
            raise RuleSetError(f"{w}: a band is not a table")
        _known(b, {"grade", "ge", "lt", "written"}, f"{w} band")
        grade = b.get("grade")
        if grade not in _GRADE_NAMES[:4]:
            raise RuleSetError(f"{w}: band grade {grade!r} must be A–D (E comes from treated_by)")
        ge = _rank(_value(b["ge"], scale, w), scale) if "ge" in b else None
        lt = _rank(_value(b["lt"], scale, w), scale) if "lt" in b else None
        if ge is not None and lt is not None and not ge < lt:
            raise RuleSetError(f"{w}: band {grade} is empty (ge {b['ge']} ≥ lt {b['lt']})")
        bands.append(Band(grade=grade, ge=ge, lt=lt, written=_str(b, "written", w)))
    for prev, nxt in itertools.pairwise(bands):
        if prev.lt is None or nxt.ge is None or nxt.ge < prev.lt:
            raise RuleSetError(f"{w}: bands {prev.grade} and {nxt.grade} overlap or are out of order")
    return tuple(bands)


def _parse_hierarchy(raw: dict[str, Any], item_keys: list[str], where: str) -> tuple[HierarchyRule, dict[str, str]]:
    w = f"{where} [hierarchy]"
    _known(raw, _HIERARCHY_KEYS, w)
    waist = _table(raw, "waist_cm", w)
    if set(waist) != {"M", "F"}:
        raise RuleSetError(f"{w}: waist_cm must give M and F")
    risk_of: dict[str, str] = {}
    groups: list[tuple[str, str]] = []
    for r in raw.get("risk", []):
        _known(r, {"id", "label", "items"}, f"{w} risk")
        rid = _str(r, "id", w)
        for k in _str_list(r, "items", w):
            if k not in item_keys:
                raise RuleSetError(f"{w}: risk {rid!r} names unknown item {k!r}")
            if k in risk_of:
                raise RuleSetError(f"{w}: item {k!r} is in two risk groups")
            risk_of[k] = rid
        groups.append((rid, _str(r, "label", w)))
    if len(groups) != 3:
        raise RuleSetError(f"{w}: expected the three risk groups ①–③, got {len(groups)}")
    ages = raw.get("senior_ages")
    if not (isinstance(ages, list) and len(ages) == 2 and all(isinstance(a, int) for a in ages)):
        raise RuleSetError(f"{w}: senior_ages must be [first, last]")
    exclude = tuple(_str_list(raw, "exclude_on_medication", w))
    if not set(exclude) <= MEDICATION_FIELDS:
        raise RuleSetError(f"{w}: exclude_on_medication must name {sorted(MEDICATION_FIELDS)}")
    rule = HierarchyRule(
        waist_cm={"M": _num(waist, "M", w), "F": _num(waist, "F", w)},
        bmi=_num(raw, "bmi", w),
        risk_groups=tuple(groups),
        smoking_label=_str(raw, "smoking_label", w),
        group1_active_min=int(_num(raw, "group1_active_min_risks", w)),
        group2_active_min=int(_num(raw, "group2_active_min_risks", w)),
        senior_ages=(ages[0], ages[1]),
        exclude_on=exclude,
        source=_str(raw, "source", w),
        verified=_bool(raw, "verified", w),
    )
    return rule, risk_of


def _with_risk(item: ItemRule, risk: str | None) -> ItemRule:
    return replace(item, risk=risk) if risk else item


def _disjoint_fasting(a: bool | None, b: bool | None) -> bool:
    return a is not None and b is not None and a != b


def _value(v: Any, scale: tuple[str, ...], w: str) -> float | str:
    if scale:
        if v not in scale:
            raise RuleSetError(f"{w}: {v!r} is not on the scale {list(scale)}")
        return str(v)
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise RuleSetError(f"{w}: {v!r} is not a finite number")
    return float(v)


def _rank(v: float | str, scale: tuple[str, ...]) -> float:
    return float(scale.index(v)) if scale and isinstance(v, str) else float(v)


def _known(table: dict[str, Any], allowed: set[str], w: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise RuleSetError(f"{w}: unknown keys {unknown}")


def _table(d: dict[str, Any], key: str, w: str) -> dict[str, Any]:
    v = d.get(key)
    if not isinstance(v, dict):
        raise RuleSetError(f"{w}: [{key}] table missing")
    return v


def _str(d: dict[str, Any], key: str, w: str) -> str:
    v = d.get(key)
    if not isinstance(v, str) or not v:
        raise RuleSetError(f"{w}: {key} must be a non-empty string")
    return v


def _str_list(d: dict[str, Any], key: str, w: str) -> list[str]:
    v = d.get(key)
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise RuleSetError(f"{w}: {key} must be a list of strings")
    return list(v)


def _bool(d: dict[str, Any], key: str, w: str) -> bool:
    v = d.get(key)
    if not isinstance(v, bool):
        raise RuleSetError(f"{w}: {key} must be stated as true or false")
    return v


def _num(d: dict[str, Any], key: str, w: str) -> float:
    v = d.get(key)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise RuleSetError(f"{w}: {key} must be a number")
    return float(v)
