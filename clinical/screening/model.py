"""The rule-set types: what a loaded, validated rule-set file becomes.

Plain frozen dataclasses; nothing here is on the per-visit hot path (the engine compiles
these into tuples once per rule set).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

LEVELS = "levels"  # 特定健診: normal / guidance (保健指導判定値) / referral (受診勧奨判定値)
GRADES = "grades"  # 人間ドック: 判定区分 A–E

# Outcomes. LEVELS sets give one of the first three; GRADES sets give "A"–"D", TREATED or UNGRADED.
NORMAL, GUIDANCE, REFERRAL = "normal", "guidance", "referral"
TREATED = "E"  # 治療中: on medication for the item's area
UNGRADED = "ungraded"  # value outside every band of a 判定区分 table (never guessed)

OP_SYMBOL: dict[str, str] = {">=": "≥", ">": ">", "<=": "≤", "<": "<"}
OP_NEGATION: dict[str, str] = {">=": "<", ">": "<=", "<=": ">", "<": ">="}


class RuleSetError(ValueError):
    """A rule-set file is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class Threshold:
    """``value <op> threshold`` crosses it; ``label`` says which judgement value it is."""

    op: str
    value: float | str  # str only on a qualitative scale
    label: str  # 保健指導判定値 / 受診勧奨判定値

    @property
    def upward(self) -> bool:
        return self.op in (">=", ">")

    def crossed_by(self, value: float | str, scale: tuple[str, ...] = ()) -> bool:
        """Reference (slow) comparison, used by explanations and tests, not the hot path."""
        a: float
        b: float
        if scale:
            a, b = scale.index(str(value)), scale.index(str(self.value))
        else:
            a, b = float(value), float(self.value)
        if self.op == ">=":
            return a >= b
        if self.op == ">":
            return a > b
        if self.op == "<=":
            return a <= b
        return a < b


@dataclass(frozen=True)
class LevelRule:
    """Guidance / referral thresholds for one sex (or both when the standard does not split)."""

    guidance: Threshold
    referral: Threshold | None  # None: the standard has no 受診勧奨判定値 (HDL in 第4期)


@dataclass(frozen=True)
class Band:
    """Half-open interval ``ge <= value < lt`` graded ``grade``; ``written`` is the source's text.

    On a qualitative scale ``ge`` / ``lt`` hold positions on the item's scale (0 for "-").
    """

    grade: str
    ge: float | None
    lt: float | None
    written: str


@dataclass(frozen=True)
class ItemRule:
    key: str  # rule key, unique in the set (tg_fasting, tg_random, …)
    rule_id: str  # "<ruleset id>/<key>"
    name: str  # Japanese item name
    field: str  # VisitInput field it reads; also the key in outputs ("tg")
    unit: str
    jlac10: tuple[str, ...]
    jlac10_abbreviated: tuple[str, ...]  # prefixes the standards file gives only in part
    verified: bool
    note: str
    fasting: bool | None  # True: only fasting samples; False: only 随時; None: either
    scale: tuple[str, ...]  # ordinal scale for qualitative items, else ()
    # LEVELS sets: thresholds by sex ("M", "F"); the two entries are equal when not sex-specific
    levels: dict[str, LevelRule] = dataclasses.field(default_factory=dict)
    # GRADES sets: bands by sex, and the medication field that makes the grade E
    bands: dict[str, tuple[Band, ...]] = dataclasses.field(default_factory=dict)
    treated_by: str | None = None
    risk: str | None = None  # 階層化 risk group this item counts toward (bp / lipid / glucose)

    @property
    def sex_specific(self) -> bool:
        if self.levels:
            return self.levels["M"] != self.levels["F"]
        return self.bands["M"] != self.bands["F"]


@dataclass(frozen=True)
class HierarchyRule:
    """特定保健指導の階層化 parameters (see the standards file, section A)."""

    waist_cm: dict[str, float]  # obesity group (1): waist >= this, by sex
    bmi: float  # obesity group (2): otherwise BMI >= this
    risk_groups: tuple[tuple[str, str], ...]  # (group id, Japanese label) in order ①②③
    smoking_label: str
    group1_active_min: int
    group2_active_min: int
    senior_ages: tuple[int, int]  # inclusive; 積極的支援 becomes 動機付け支援
    exclude_on: tuple[str, ...]  # medication fields that exclude from 特定保健指導
    source: str
    verified: bool


@dataclass(frozen=True)
class RuleSet:
    id: str
    version: str
    kind: str  # LEVELS or GRADES
    title: str
    source: str
    edition: str
    source_url: str
    verified: bool  # true only when every rule (and the hierarchy) is verified
    follow_up: frozenset[str]  # outcomes that flag the visit for follow-up
    grade_labels: dict[str, str]
    items: tuple[ItemRule, ...]
    hierarchy: HierarchyRule | None
    notes: tuple[str, ...]
    path: str
    # Set once by the engine (compiled rules); excluded from equality and repr.
    _engine: Any = dataclasses.field(default=None, init=False, repr=False, compare=False)

    def item(self, key: str) -> ItemRule:
        for rule in self.items:
            if rule.key == key:
                return rule
        raise KeyError(key)

    @property
    def unverified_rules(self) -> tuple[str, ...]:
        return tuple(r.rule_id for r in self.items if not r.verified)

    @property
    def citation(self) -> str:
        return f"{self.id} {self.version}（{self.source} {self.edition}）"
