"""eGFR from serum creatinine: the Japanese equation (日本腎臓学会).

Matsuo S, et al. Revised equations for estimated GFR from serum creatinine in Japan.
Am J Kidney Dis 2009;53:982–92:

    eGFRcreat = 194 × Cr^−1.094 × age^−0.287 (× 0.739 if female)   [mL/min/1.73m², age ≥ 18]
"""

from __future__ import annotations

import math

COEFFICIENT = 194.0
CREATININE_EXPONENT = -1.094
AGE_EXPONENT = -0.287
FEMALE_FACTOR = 0.739
MIN_AGE = 18
EQUATION_NAME = "日本腎臓学会の推算式（Matsuo 2009）"


def egfr_jsn(creatinine_mg_dl: float, age: int, sex: str) -> float:
    """Unrounded eGFR; raises ValueError outside the equation's domain."""
    if not creatinine_mg_dl > 0 or not math.isfinite(creatinine_mg_dl):
        raise ValueError(f"creatinine must be a positive number of mg/dL, not {creatinine_mg_dl!r}")
    if age < MIN_AGE:
        raise ValueError(f"the equation is for ages {MIN_AGE} and over, not {age}")
    if sex not in ("M", "F"):
        raise ValueError(f"sex must be 'M' or 'F', not {sex!r}")
    value = COEFFICIENT * math.pow(creatinine_mg_dl, CREATININE_EXPONENT) * math.pow(age, AGE_EXPONENT)
    return value * FEMALE_FACTOR if sex == "F" else value


def round_egfr(value: float) -> float:
    """One decimal, half up: the precision laboratories report and the engine judges.

    Judging the rounded value keeps the explanation honest: the number shown is the number
    compared (an unrounded 59.96 shown as "60.0" but judged "< 60" would contradict itself).
    """
    return math.floor(value * 10.0 + 0.5) / 10.0


def computable(creatinine_mg_dl: float | None, age: int) -> bool:
    return creatinine_mg_dl is not None and creatinine_mg_dl > 0 and age >= MIN_AGE
