"""Greyscale and colour DICOM images (chest X-ray, CT, anything with pixels) → 8-bit PNG.

The pipeline follows the DICOM grayscale display chain (PS3.3 C.11 / PS3.4 N.2):
stored values → Modality LUT (rescale to HU etc.) → VOI LUT or window → presentation
(MONOCHROME1 is inverted so that the PNG always shows "high value = bright").
Colour images are only scaled to 8 bits. pydicom's own LUT functions do the maths so that
their handling of LUT descriptors, signedness and VOI LUT functions is the one we rely on.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, apply_windowing, pixel_array

from ml.preprocess.common import (
    DicomSource,
    PreprocessedImage,
    PreprocessError,
    encode_png,
    fit_size,
    read_dicom,
    resize_uint8,
)

__all__ = ["CT_PRESETS", "Window", "dicom_to_png"]


@dataclass(frozen=True)
class Window:
    center: float
    width: float


# Hounsfield windows as commonly used by radiologists (mediastinum and lung per the
# issue; abdomen and brain are the usual soft-tissue and brain windows).
CT_PRESETS: dict[str, Window] = {
    "lung": Window(-600, 1500),
    "mediastinum": Window(40, 400),
    "bone": Window(400, 1800),
    "abdomen": Window(50, 400),
    "brain": Window(40, 80),
}

_GREY = ("MONOCHROME1", "MONOCHROME2")
_COLOUR = ("RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT", "PALETTE COLOR")

# Attributes the display chain reads, and where an enhanced (multi-frame) IOD keeps them:
# (functional group macro sequence, attributes copied from its first item).
_TOP_LEVEL_ATTRS = (
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "ModalityLUTSequence",
    "WindowCenter",
    "WindowWidth",
    "VOILUTFunction",
    "VOILUTSequence",
    "PixelRepresentation",
    "BitsStored",
    "PhotometricInterpretation",
    "Modality",
)
_FUNCTIONAL_GROUP_ATTRS = (
    ("PixelValueTransformationSequence", ("RescaleSlope", "RescaleIntercept", "RescaleType")),
    ("FrameVOILUTSequence", ("WindowCenter", "WindowWidth", "VOILUTFunction")),
)


def dicom_to_png(
    ds_or_path: DicomSource,
    *,
    preset: str | None = None,
    size: int = 512,
    frame: int | None = None,
) -> PreprocessedImage:
    """Render one frame of a DICOM image as a PNG whose longer side is `size` pixels.

    `preset` names a CT window (see `CT_PRESETS`) and overrides the file's own window; it is
    refused for images whose values are not Hounsfield units. Without it the file's VOI LUT or
    first window is used, else the frame's min/max. Multi-frame images show the middle frame
    unless `frame` (0-based) is given.
    """
    if preset is not None and preset not in CT_PRESETS:
        raise PreprocessError(f"unknown window preset {preset!r}; known: {', '.join(sorted(CT_PRESETS))}")
    ds = read_dicom(ds_or_path)
    if "PixelData" not in ds and "FloatPixelData" not in ds and "DoubleFloatPixelData" not in ds:
        kind = getattr(ds.get("SOPClassUID"), "name", None) or ds.get("Modality") or "unknown kind"
        raise PreprocessError(f"the DICOM object has no pixel data ({kind})")
    photometric = str(ds.get("PhotometricInterpretation", "")).strip()
    if photometric not in _GREY + _COLOUR:
        raise PreprocessError(f"unsupported photometric interpretation {photometric or '(missing)'!r}")

    notes: list[str] = []
    index = _choose_frame(ds, frame, notes)
    raw = _decode(ds, index)
    view = _display_attributes(ds, index)

    if photometric in _GREY:
        pixels, window = _grey_to_uint8(raw, view, photometric, preset, notes)
    else:
        if preset is not None:
            raise PreprocessError(f"window preset {preset!r} applies to greyscale CT, not {photometric}")
        pixels, window = _colour_to_uint8(raw, ds, photometric, notes), None

    aspect = _pixel_aspect(ds, notes)
    height, width = pixels.shape[:2]
    out_w, out_h = fit_size(width, height, size, aspect=aspect)
    pixels = resize_uint8(pixels, out_w, out_h)
    if (out_w, out_h) != (width, height):
        notes.append(f"resized {width}x{height} -> {out_w}x{out_h}")
    return PreprocessedImage(
        png=encode_png(pixels),
        width=out_w,
        height=out_h,
        window_center=window.center if window else None,
        window_width=window.width if window else None,
        photometric=photometric,
        notes=tuple(notes),
    )


def _choose_frame(ds: Dataset, frame: int | None, notes: list[str]) -> int | None:
    try:
        n_frames = int(ds.get("NumberOfFrames") or 1)
    except (TypeError, ValueError):
        n_frames = 1
    if n_frames <= 1:
        if frame not in (None, 0):
            raise PreprocessError(f"frame {frame} requested but the image has a single frame")
        return None
    if frame is None:
        frame = n_frames // 2
        notes.append(f"multi-frame ({n_frames} frames): showing middle frame {frame}")
    elif not 0 <= frame < n_frames:
        raise PreprocessError(f"frame {frame} out of range: the image has {n_frames} frames (0-based)")
    else:
        notes.append(f"multi-frame ({n_frames} frames): showing frame {frame}")
    return frame


def _decode(ds: Dataset, index: int | None) -> np.ndarray:
    syntax = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None)
    syntax_name = getattr(syntax, "name", None) or "unknown transfer syntax"
    try:
        # pixel_array(index=…) decodes one frame only: a 500-slice enhanced CT stays cheap.
        arr = pixel_array(ds, index=index)
    except ValueError as exc:
        if "less than expected" in str(exc) or "truncat" in str(exc).lower():
            raise PreprocessError(f"pixel data is truncated: {exc}") from exc
        raise PreprocessError(f"pixel data cannot be decoded: {exc}") from exc
    except (RuntimeError, NotImplementedError) as exc:
        # Raised when no installed plugin can decompress this transfer syntax.
        detail = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        raise PreprocessError(f"cannot decode {syntax_name} pixel data: {detail or type(exc).__name__}") from exc
    except (AttributeError, KeyError, TypeError) as exc:
        raise PreprocessError(f"image pixel module is incomplete: {exc}") from exc
    if arr.size == 0:
        raise PreprocessError("pixel data is empty")
    return arr


def _display_attributes(ds: Dataset, index: int | None) -> Dataset:
    """A flat dataset holding the LUT/window attributes for this frame, so that pydicom's
    LUT functions (which only read top-level attributes) also work for enhanced multi-frame
    objects that keep them in shared or per-frame functional groups."""
    view = Dataset()
    if hasattr(ds, "file_meta"):
        view.file_meta = ds.file_meta  # pydicom needs the byte order to read an OW LUT
    for name in _TOP_LEVEL_ATTRS:
        if name in ds:
            view[name] = ds[name]
    groups: list[Dataset] = []
    shared = ds.get("SharedFunctionalGroupsSequence")
    if shared:
        groups.append(shared[0])
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    if per_frame and len(per_frame) > (index or 0):
        groups.append(per_frame[index or 0])  # per-frame values override shared ones
    for group in groups:
        for seq_name, attrs in _FUNCTIONAL_GROUP_ATTRS:
            seq = group.get(seq_name)
            if not seq:
                continue
            for attr in attrs:
                if attr in seq[0]:
                    view[attr] = seq[0][attr]
    return view


def _grey_to_uint8(
    raw: np.ndarray, view: Dataset, photometric: str, preset: str | None, notes: list[str]
) -> tuple[np.ndarray, Window]:
    if raw.ndim != 2:
        raise PreprocessError(f"expected a 2-D greyscale frame, got shape {raw.shape}")
    values = np.asarray(apply_modality_lut(raw, view), dtype=np.float64)
    if "RescaleSlope" in view or "ModalityLUTSequence" in view:
        notes.append("applied modality LUT (rescale slope/intercept)")

    window: Window
    if preset is not None:
        if not _is_hounsfield(view):
            raise PreprocessError(
                f"window preset {preset!r} needs Hounsfield units; this is {view.get('Modality', '?')} "
                "without RescaleType HU"
            )
        window = CT_PRESETS[preset]
        out = _window_to_unit(values, window, "LINEAR")
        notes.append(f"CT window preset {preset} (C {window.center:g} / W {window.width:g} HU)")
    elif view.get("VOILUTSequence"):
        out, window = _voi_lut_to_unit(values, view)
        notes.append("applied the file's VOI LUT")
    elif "WindowCenter" in view and "WindowWidth" in view:
        window = Window(_first(view.WindowCenter), _first(view.WindowWidth))
        if window.width <= 0:
            raise PreprocessError(f"the file's window width {window.width:g} is not positive")
        function = str(view.get("VOILUTFunction", "LINEAR")).upper()
        out = _window_to_unit(values, window, function)
        count = len(view.WindowCenter) if view["WindowCenter"].VM > 1 else 1
        more = f" (first of {count})" if count > 1 else ""
        notes.append(f"file window{more} C {window.center:g} / W {window.width:g}, {function}")
    else:
        lo, hi = float(values.min()), float(values.max())
        if hi <= lo:
            raise PreprocessError(f"the image is uniform (every pixel is {lo:g}): nothing to show")
        window = Window((lo + hi) / 2, hi - lo)
        out = _window_to_unit(values, window, "LINEAR_EXACT")
        notes.append(f"no window in file: stretched min/max {lo:g}..{hi:g}")

    pixels = np.clip(np.rint(out * 255.0), 0, 255).astype(np.uint8)
    if photometric == "MONOCHROME1":
        # MONOCHROME1 means "low value = white"; the PNG convention is the opposite.
        pixels = 255 - pixels
        notes.append("inverted MONOCHROME1 for display")
    return pixels, window


def _is_hounsfield(view: Dataset) -> bool:
    return str(view.get("RescaleType", "")).upper() == "HU" or str(view.get("Modality", "")).upper() == "CT"


def _first(value: Any) -> float:
    if isinstance(value, Iterable) and not isinstance(value, str | bytes):
        value = next(iter(value))
    return float(value)


def _window_to_unit(values: np.ndarray, window: Window, function: str) -> np.ndarray:
    """Window `values` into 0..1 with pydicom's implementation of the DICOM VOI functions.

    pydicom scales its output to the stored bit range of the dataset it is given; a tiny
    unsigned 8-bit proxy dataset pins that range to 0..255 whatever the source bit depth."""
    proxy = Dataset()
    proxy.PhotometricInterpretation = "MONOCHROME2"  # inversion is ours to do, later
    proxy.PixelRepresentation = 0
    proxy.BitsStored = 8
    proxy.WindowCenter = window.center
    proxy.WindowWidth = window.width
    proxy.VOILUTFunction = function
    out = apply_windowing(values.astype(np.float64, copy=True), proxy)
    return np.asarray(out, dtype=np.float64) / 255.0


def _voi_lut_to_unit(values: np.ndarray, view: Dataset) -> tuple[np.ndarray, Window]:
    descriptor = view.VOILUTSequence[0].LUTDescriptor
    n_entries, first_mapped = int(descriptor[0]) or 2**16, int(descriptor[1])
    try:
        # A VOI LUT is indexed by integer modality values.
        out = apply_voi_lut(np.rint(values).astype(np.int64), view, index=0, prefer_lut=True)
        # Normalise by the LUT's own output range (its entries, decoded by pydicom), not by the
        # descriptor's nominal bit depth: descriptors often claim 16 bits for 12-bit data.
        entries = apply_voi_lut(np.arange(first_mapped, first_mapped + n_entries), view, index=0)
    except (AttributeError, NotImplementedError, ValueError, IndexError) as exc:
        raise PreprocessError(f"the file's VOI LUT cannot be applied: {exc}") from exc
    lo, hi = float(np.min(entries)), float(np.max(entries))
    if hi <= lo:
        raise PreprocessError("the file's VOI LUT is constant")
    # Reported as the window the LUT spans: the input range its entries cover.
    window = Window(first_mapped + n_entries / 2, float(n_entries))
    unit = (np.asarray(out, dtype=np.float64) - lo) / (hi - lo)
    return np.clip(unit, 0.0, 1.0), window


def _colour_to_uint8(raw: np.ndarray, ds: Dataset, photometric: str, notes: list[str]) -> np.ndarray:
    if photometric == "PALETTE COLOR":
        rgb = np.asarray(apply_color_lut(raw, ds))
        bits = int(ds.RedPaletteColorLookupTableDescriptor[2])
        notes.append("applied palette colour LUT")
    else:
        rgb = raw
        bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8)
        if photometric.startswith("YBR"):
            # pydicom converts YBR to RGB while decoding (pixel_array's default as_rgb=True).
            notes.append(f"converted {photometric} to RGB")
    if rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise PreprocessError(f"expected an RGB frame, got shape {rgb.shape}")
    if bits > 8:
        scaled = rgb.astype(np.float64) * (255.0 / (2**bits - 1))
        rgb = np.clip(np.rint(scaled), 0, 255)
        notes.append(f"scaled {bits}-bit colour to 8 bits")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _pixel_aspect(ds: Dataset, notes: list[str]) -> float:
    """Physical width/height of one pixel, so that non-square pixels are not shown squashed."""
    spacing = ds.get("PixelSpacing") or ds.get("ImagerPixelSpacing")
    try:
        if spacing and len(spacing) == 2:
            row_spacing, col_spacing = float(spacing[0]), float(spacing[1])
            if row_spacing > 0 and col_spacing > 0 and abs(col_spacing / row_spacing - 1) > 1e-3:
                notes.append(f"non-square pixels {row_spacing:g}x{col_spacing:g} mm: corrected aspect")
                return col_spacing / row_spacing
        ratio = ds.get("PixelAspectRatio")
        if ratio and len(ratio) == 2 and float(ratio[0]) > 0 and float(ratio[1]) > 0:
            # PixelAspectRatio is row:column (vertical:horizontal) size.
            if ratio[0] != ratio[1]:
                notes.append(f"pixel aspect ratio {ratio[0]}:{ratio[1]}: corrected aspect")
            return float(ratio[1]) / float(ratio[0])
    except (TypeError, ValueError):
        notes.append("unreadable pixel spacing: assumed square pixels")
    return 1.0
