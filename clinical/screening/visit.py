"""The one input shape the engine judges: a visit's measured values, nothing else.

A NamedTuple rather than a dataclass because the hot path reads fields by index and a
benchmark builds 110,000 of them: tuple construction is several times cheaper than a
frozen dataclass's ``__init__``.
"""

from __future__ import annotations

from typing import NamedTuple


class VisitInput(NamedTuple):
    """One visit. ``None`` means "not measured"; booleans default to "not reported"."""

    visit_id: str
    sex: str  # "M" or "F"
    age: int  # as given by the caller (the 65–74 rule uses it as is)
    fasting: bool | None = None  # True: 空腹時 (≥10 h); False: 随時; None: unknown
    waist_cm: float | None = None
    bmi: float | None = None
    sbp: float | None = None
    dbp: float | None = None
    tg: float | None = None  # fasting or 随時 according to ``fasting``
    hdl: float | None = None
    ldl: float | None = None
    non_hdl: float | None = None
    fbg: float | None = None  # 空腹時血糖
    rbg: float | None = None  # 随時血糖
    hba1c: float | None = None  # NGSP %
    ast: float | None = None
    alt: float | None = None
    ggt: float | None = None
    egfr: float | None = None  # measured / reported eGFR; computed from creatinine when absent
    creatinine: float | None = None  # mg/dL
    hb: float | None = None  # g/dL
    urine_protein: str | None = None  # canonical "-", "+-", "1+", "2+", "3+", "4+"
    med_bp: bool = False
    med_glucose: bool = False
    med_lipid: bool = False
    smoking: bool = False
    uric_acid: float | None = None  # mg/dL (人間ドック only)


FIELD_INDEX: dict[str, int] = {name: i for i, name in enumerate(VisitInput._fields)}

#: Fields a rule may judge, and what kind of value each holds.
NUMERIC_FIELDS: frozenset[str] = frozenset(
    {
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
        "hb",
        "uric_acid",
        "waist_cm",
        "bmi",
        "creatinine",
    }
)
QUALITATIVE_FIELDS: frozenset[str] = frozenset({"urine_protein"})
MEDICATION_FIELDS: frozenset[str] = frozenset({"med_bp", "med_glucose", "med_lipid"})

SEX_INDEX: dict[str, int] = {"M": 0, "F": 1}
