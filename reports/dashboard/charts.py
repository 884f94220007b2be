"""SVG line charts for the quality dashboard (server-rendered: no script under the strict CSP,
readable as text in tests), one line per model version over weeks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from xml.sax.saxutils import escape

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 520, 190, 44, 12, 40, 30
PALETTE = ("#1f6fb2", "#d9534f", "#2e8b57", "#8a5cc2", "#e69500", "#555555")


def _nice_ceiling(x: float) -> float:
    """The smallest 1, 2 or 5 × 10^k at or above x, so the axis reads 0 / half / top in round numbers."""
    scale = 10 ** math.floor(math.log10(x))
    return next(m * scale for m in (1, 2, 5, 10) if m * scale >= x)


def weekly_svg(title: str, series: Sequence[tuple[str, Sequence[tuple[datetime, float]]]], *,
               y_label: str = "", percent: bool = False) -> str:
    """`series`: (label, [(week, value)…]); weeks on x, shared across series."""
    weeks = sorted({w for _label, points in series for w, _v in points})
    values = [v for _label, points in series for _w, v in points]
    if not weeks:
        return ""
    hi = 1.0 if percent else _nice_ceiling(max([*values, 1.0]))
    index = {w: i for i, w in enumerate(weeks)}

    def x(w: datetime) -> float:
        n = len(weeks)
        return PAD_L + (W - PAD_L - PAD_R) * (0.5 if n == 1 else index[w] / (n - 1))

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - v / hi)

    def fmt(v: float) -> str:
        return f"{v * 100:.0f}%" if percent else f"{v:g}"

    parts = [f'<svg class="qchart" viewBox="0 0 {W} {H}" role="img" aria-label="{escape(title)}" '
             f'xmlns="http://www.w3.org/2000/svg">',
             f'<text x="4" y="12" class="t">{escape(title)}{" (" + escape(y_label) + ")" if y_label else ""}</text>',
             f'<line x1="{PAD_L}" y1="{H - PAD_B}" x2="{W - PAD_R}" y2="{H - PAD_B}" class="axis"/>']
    for frac in (0.0, 0.5, 1.0):
        parts.append(f'<text x="{PAD_L - 4}" y="{y(hi * frac) + 4:.1f}" text-anchor="end" class="tick">'
                     f'{fmt(hi * frac)}</text>')
    for w in (weeks[0], weeks[-1]) if len(weeks) > 1 else (weeks[0],):
        parts.append(f'<text x="{x(w):.1f}" y="{H - 10}" text-anchor="middle" class="tick">{w:%Y-%m-%d}</text>')
    for n, (label, points) in enumerate(series):
        colour = PALETTE[n % len(PALETTE)]
        ordered = sorted(points)
        coords = " ".join(f"{x(w):.1f},{y(v):.1f}" for w, v in ordered)
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for w, v in ordered:
            parts.append(f'<circle cx="{x(w):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}">'
                         f'<title>{escape(label)} {w:%Y-%m-%d}: {fmt(v)}</title></circle>')
        parts.append(f'<text x="{PAD_L + 6 + 150 * (n % 3)}" y="{24 + 12 * (n // 3)}" fill="{colour}" '
                     f'class="legend">■ {escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
