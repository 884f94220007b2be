"""Draw an ECG record on standard ECG paper: the 3×4 layout plus a lead II rhythm strip."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure

if TYPE_CHECKING:  # ecg.py re-exports this module; a runtime import would be circular
    from ml.preprocess.ecg import EcgMeasurements, EcgRecord

__all__ = ["ECG_PAPER_MM", "render_ecg_png"]

# Standard 3×4 layout: each column shows the same 2.5 s of all three of its leads.
_LAYOUT = (("I", "aVR", "V1", "V4"), ("II", "aVL", "V2", "V5"), ("III", "aVF", "V3", "V6"))
_RHYTHM_LEAD = "II"
_SPEED_MM_S = 25.0
_GAIN_MM_MV = 10.0
_COLUMN_S = 2.5
_LEFT_MM, _RIGHT_MM, _HEADER_MM, _BOTTOM_MM, _ROW_MM = 10.0, 5.0, 10.0, 5.0, 30.0
ECG_PAPER_MM = (
    _LEFT_MM + 4 * _COLUMN_S * _SPEED_MM_S + _RIGHT_MM,
    _HEADER_MM + 4 * _ROW_MM + _BOTTOM_MM,
)  # (width, height): 265 × 135 mm


def render_ecg_png(record: EcgRecord, measurements: EcgMeasurements | None = None, *, px_per_mm: int = 5) -> bytes:
    """Draw the standard 3×4 layout plus a 10 s lead II rhythm strip on ECG paper
    (25 mm/s, 10 mm/mV, 1 mm and 5 mm grid). The PNG is ECG_PAPER_MM × px_per_mm pixels."""
    width_mm, height_mm = ECG_PAPER_MM
    dpi = px_per_mm * 25.4
    # A bare Figure on the Agg canvas: no pyplot global state, safe in worker threads.
    fig = Figure(figsize=(width_mm / 25.4, height_mm / 25.4), dpi=dpi, facecolor="white")
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.set_xlim(0, width_mm)
    ax.set_ylim(0, height_mm)
    ax.set_axis_off()
    _draw_grid(ax, width_mm, height_mm)

    fs = record.sampling_hz
    column_mm = _COLUMN_S * _SPEED_MM_S
    for row in range(4):
        baseline = height_mm - _HEADER_MM - (row + 0.5) * _ROW_MM
        _draw_calibration(ax, baseline)
        if row < 3:
            for col, lead in enumerate(_LAYOUT[row]):
                x0 = _LEFT_MM + col * column_mm
                _draw_lead(ax, record, lead, x0, baseline, col * _COLUMN_S, _COLUMN_S, fs)
                if col:
                    ax.plot([x0, x0], [baseline - 3, baseline + 3], color="black", lw=0.6)
        else:
            _draw_lead(ax, record, _RHYTHM_LEAD, _LEFT_MM, baseline, 0.0, 4 * _COLUMN_S, fs)

    header = f"{_SPEED_MM_S:g} mm/s  {_GAIN_MM_MV:g} mm/mV  {fs:g} Hz"
    if measurements is not None:
        header += "   " + _header_measurements(measurements)
    ax.text(_LEFT_MM, height_mm - _HEADER_MM / 2, header, fontsize=9, va="center", family="DejaVu Sans")

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def _draw_grid(ax: Any, width_mm: float, height_mm: float) -> None:
    for step, colour, lw in ((1.0, "#f6c9c9", 0.25), (5.0, "#e08080", 0.6)):
        xs = np.arange(0, width_mm + 1e-9, step)
        ys = np.arange(0, height_mm + 1e-9, step)
        lines = [((x, 0), (x, height_mm)) for x in xs] + [((0, y), (width_mm, y)) for y in ys]
        ax.add_collection(LineCollection(lines, colors=colour, linewidths=lw, zorder=0))


def _draw_calibration(ax: Any, baseline: float) -> None:
    # 1 mV for 200 ms: the reader's proof that the trace is at 10 mm/mV and 25 mm/s.
    x, w, h = 2.0, 0.2 * _SPEED_MM_S, _GAIN_MM_MV
    xs = [x - 1.5, x, x, x + w, x + w, x + w + 1.5]
    ys = [baseline, baseline, baseline + h, baseline + h, baseline, baseline]
    ax.plot(xs, ys, color="black", lw=0.8)


def _draw_lead(
    ax: Any,
    record: EcgRecord,
    lead: str,
    x0: float,
    baseline: float,
    start_s: float,
    length_s: float,
    fs: float,
) -> None:
    ax.text(x0 + 1, baseline + 8, lead, fontsize=8, family="DejaVu Sans")
    samples = record.leads.get(lead)
    if samples is None:
        ax.text(x0 + 8, baseline, "no data", fontsize=7, color="grey", va="center")
        return
    # Centre each lead on its own median: offsets and drift would push traces off their row.
    offset = float(np.median(samples))
    first, last = round(start_s * fs), round((start_s + length_s) * fs)
    segment = np.asarray(samples[first:last], dtype=float)
    if segment.size == 0:
        return
    t = np.arange(segment.size) / fs
    ax.plot(x0 + t * _SPEED_MM_S, baseline + (segment - offset) * _GAIN_MM_MV, color="black", lw=0.6)


def _header_measurements(m: EcgMeasurements) -> str:
    def v(value: int | None) -> str:
        return "n/a" if value is None else str(value)

    return (
        f"HR {v(m.hr_bpm)} bpm  PR {v(m.pr_ms)} ms  QRS {v(m.qrs_ms)} ms  "
        f"QT/QTc {v(m.qt_ms)}/{v(m.qtc_ms)} ms ({m.qtc_formula})"
    )
