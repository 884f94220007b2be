"""Server-rendered SVG trend charts (経年変化) with the judgement thresholds drawn in. SVG needs no
script (CSP-friendly), prints in the PDF letter as it looks on screen, and is testable as text."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from xml.sax.saxutils import escape

from clinical.screening import RuleSet

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 360, 160, 30, 28, 14, 28


@dataclass(frozen=True)
class Line:
    label: str
    value: float
    css: str  # "guidance" | "referral"


def threshold_lines(ruleset: RuleSet, field: str, sex: str, fasting: bool | None = None) -> list[Line]:
    for rule in ruleset.items:
        if rule.field != field or not rule.levels or rule.scale:
            continue
        if rule.fasting is not None and fasting is not None and rule.fasting != fasting:
            continue
        level = rule.levels[sex]
        lines = [Line(f"{level.guidance.label} {level.guidance.value:g}", float(level.guidance.value), "guidance")]
        if level.referral is not None:
            lines.append(Line(f"{level.referral.label} {level.referral.value:g}", float(level.referral.value),
                              "referral"))
        return lines
    return []


def trend_svg(title: str, unit: str, points: list[tuple[date, Decimal]], lines: list[Line]) -> str:
    values = [float(v) for _d, v in points] + [line.value for line in lines]
    lo, hi = min(values), max(values)
    span = (hi - lo) or max(abs(hi), 1.0)
    lo, hi = lo - span * 0.15, hi + span * 0.15
    n = len(points)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (0.5 if n == 1 else i / (n - 1))

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg class="trend" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}の経年変化" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="4" y="11" class="t">{escape(title)} ({escape(unit)})</text>',
             f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>']
    for line in lines:
        parts.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(line.value):.1f}" y2="{y(line.value):.1f}" '
                     f'class="th {line.css}"><title>{escape(line.label)}</title></line>')
        parts.append(f'<text x="{W - PAD_R}" y="{y(line.value) - 2:.1f}" class="thl {line.css}" '
                     f'text-anchor="end">{escape(line.label)}</text>')
    coords = " ".join(f"{x(i):.1f},{y(float(v)):.1f}" for i, (_d, v) in enumerate(points))
    parts.append(f'<polyline points="{coords}" class="series"/>')
    for i, (day, v) in enumerate(points):
        parts.append(f'<circle cx="{x(i):.1f}" cy="{y(float(v)):.1f}" r="3" class="pt">'
                     f'<title>{day:%Y-%m-%d}: {format(v.normalize(), "f")} {escape(unit)}</title></circle>')
        parts.append(f'<text x="{x(i):.1f}" y="{H - 10}" class="d" text-anchor="middle">{day:%Y/%m}</text>')
        parts.append(f'<text x="{x(i):.1f}" y="{y(float(v)) - 6:.1f}" class="v" text-anchor="middle">'
                     f'{format(v.normalize(), "f")}</text>')
    parts.append("</svg>")
    return "".join(parts)
