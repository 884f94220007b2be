"""Pixels and waveforms out of stored objects: raw frames for the browser's decoder, rendered
PNG/JPEG through `ml.preprocess.dicom_image.dicom_to_png`, and 12-lead ECG data, measurements and
paper rendering through `ml.preprocess.ecg`.

The one module of the Django side that imports `ml.preprocess` (design.md lets only `inference`
import `ml`; rendering for the viewers is the agreed exception, kept here so it can move)."""

from __future__ import annotations

import io
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian

from ml.preprocess.common import PreprocessError
from ml.preprocess.dicom_image import CT_PRESETS, dicom_to_png
from ml.preprocess.ecg import STANDARD_LEADS, ecg_from_dicom, ecg_measurements, ecg_summary_ja, render_ecg_png

PRESETS = tuple(CT_PRESETS)
# The browser's preset buttons use the same Hounsfield windows as the server-side rendering.
PRESET_WINDOWS = {name: {"center": w.center, "width": w.width} for name, w in CT_PRESETS.items()}


class RenderError(ValueError):
    pass


def _read(data: bytes) -> Dataset:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pydicom.dcmread(io.BytesIO(data))


# --- frames --------------------------------------------------------------------------------------


def frame_bytes(data: bytes, numbers: list[int]) -> list[tuple[str, bytes]]:
    """(transfer syntax, bytes) of each 1-based frame: compressed frames as stored, native frames
    as little-endian bytes (PS3.18 8.7.3.5: octet-stream frames are little endian)."""
    ds = _read(data)
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if "PixelData" not in ds:
        raise RenderError("画素データがありません")
    n_frames = int(ds.get("NumberOfFrames") or 1)
    if syntax.is_encapsulated:
        all_frames = list(generate_frames(ds.PixelData, number_of_frames=n_frames))
        return [(str(syntax), all_frames[n - 1]) for n in numbers]
    bits = int(ds.BitsAllocated)
    if bits == 1:
        raise RenderError("1 ビット画像のフレーム取得には対応していません")
    size = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel) * bits // 8
    pixels = ds.PixelData
    if syntax == ExplicitVRBigEndian and bits > 8:
        dtype = np.dtype(f">u{bits // 8}")
        pixels = np.frombuffer(pixels[: size * n_frames], dtype=dtype).astype(dtype.newbyteorder("<")).tobytes()
    return [(str(ExplicitVRLittleEndian), bytes(pixels[(n - 1) * size : n * size])) for n in numbers]


def bulk_value(data: bytes, tag: str) -> tuple[str, bytes]:
    ds = _read(data)
    try:
        key = int(tag, 16)
    except ValueError:
        raise RenderError(f"タグが不正です: {tag}") from None
    if key not in ds or not isinstance(ds[key].value, bytes):
        raise RenderError(f"バルクデータ {tag} はありません")
    return str(ds.file_meta.TransferSyntaxUID), ds[key].value


# --- rendered images -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RenderOptions:
    window: tuple[float, float, str] | None = None  # center, width, VOI LUT function
    preset: str | None = None
    size: int | None = None
    media_type: str = "image/jpeg"
    quality: int = 90

    @classmethod
    def from_request(cls, params: Mapping[str, str], accept: str) -> RenderOptions:
        """PS3.18 8.3.5 rendering parameters (window, viewport, quality, accept) plus `preset`."""
        window = None
        if params.get("window"):
            parts = [p.strip() for p in params["window"].split(",")]
            try:
                center, width = float(parts[0]), float(parts[1])
            except (ValueError, IndexError):
                raise RenderError("window は center,width[,function] で指定してください") from None
            function = (parts[2] if len(parts) > 2 else "linear").upper()
            if width <= 0 or function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
                raise RenderError("window の幅は正の数、関数は linear / linear-exact / sigmoid です")
            window = (center, width, function.replace("-", "_"))
        preset = params.get("preset") or None
        if preset is not None and preset not in CT_PRESETS:
            raise RenderError(f"プリセット {preset!r} はありません（{', '.join(PRESETS)}）")
        if preset and window:
            raise RenderError("window と preset は同時に指定できません")
        size = None
        if params.get("viewport"):
            try:
                size = max(int(v) for v in params["viewport"].split(",")[:2])
            except ValueError:
                raise RenderError("viewport は 幅,高さ で指定してください") from None
            size = min(max(size, 16), 4096)
        wanted = (params.get("accept") or accept or "").lower()
        media_type = "image/png" if "image/png" in wanted and "image/jpeg" not in wanted else "image/jpeg"
        try:
            quality = min(max(int(params.get("quality") or 90), 1), 100)
        except ValueError:
            raise RenderError("quality は 1〜100 の整数です") from None
        return cls(window=window, preset=preset, size=size, media_type=media_type, quality=quality)

    def describe(self) -> str:
        if self.preset:
            return self.preset
        return f"{self.window[0]:g},{self.window[1]:g}" if self.window else "file"


def render_frame(data: bytes, *, frame: int | None, options: RenderOptions) -> tuple[bytes, str]:
    """One frame (0-based; None = the image's own choice) as PNG or JPEG."""
    ds = _read(data)
    if options.window is not None:
        # An explicit window is the file's window for this rendering: dicom_to_png then applies
        # it through the same VOI chain as the file's own.
        center, width, function = options.window
        for name in ("VOILUTSequence", "WindowCenter", "WindowWidth", "VOILUTFunction"):
            if name in ds:
                delattr(ds, name)
        ds.WindowCenter, ds.WindowWidth, ds.VOILUTFunction = f"{center:.8g}", f"{width:.8g}", function
    size = options.size or max(int(ds.get("Rows") or 512), int(ds.get("Columns") or 512))
    try:
        image = dicom_to_png(ds, preset=options.preset, size=size, frame=frame)
    except PreprocessError as exc:
        raise RenderError(exc.reason) from exc
    if options.media_type == "image/png":
        return image.png, "image/png"
    out = io.BytesIO()
    Image.open(io.BytesIO(image.png)).convert("RGB" if image.photometric not in ("MONOCHROME1", "MONOCHROME2")
                                              else "L").save(out, format="JPEG", quality=options.quality)
    return out.getvalue(), "image/jpeg"


# --- ECG -----------------------------------------------------------------------------------------


def ecg_view(data: bytes) -> dict[str, Any]:
    """Leads in mV for the browser's 12-lead viewer, with neurokit2's measurements as 参考データ."""
    try:
        record = ecg_from_dicom(data)
    except PreprocessError as exc:
        raise RenderError(exc.reason) from exc
    measured = ecg_measurements(record)
    # 500 Hz is 0.05 mm per sample at 25 mm/s: finer than the screen, and half the JSON of 1 kHz.
    step = max(1, int(record.sampling_hz // 500))
    leads = {name: np.round(record.leads[name][::step], 3).tolist() for name in STANDARD_LEADS if name in record.leads}
    return {
        "sampling_hz": record.sampling_hz / step,
        "duration_s": round(record.duration_s, 3),
        "leads": leads,
        "measurements": {
            "hr_bpm": measured.hr_bpm, "pr_ms": measured.pr_ms, "qrs_ms": measured.qrs_ms,
            "qt_ms": measured.qt_ms, "qtc_ms": measured.qtc_ms, "rr_ms": measured.rr_ms,
            "qtc_formula": measured.qtc_formula, "lead": measured.lead, "beats": measured.beats,
        },
        "summary_ja": ecg_summary_ja(measured),
        "method": measured.method,
        "notes": [*record.notes, *measured.notes],
    }


def ecg_png(data: bytes) -> bytes:
    try:
        record = ecg_from_dicom(data)
    except PreprocessError as exc:
        raise RenderError(exc.reason) from exc
    return render_ecg_png(record, ecg_measurements(record))
