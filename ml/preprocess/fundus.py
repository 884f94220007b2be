"""Fundus photographs (JPEG/PNG from a camera, or DICOM Ophthalmic Photography) → square PNG.

Fundus cameras put a round image of the retina on a black frame, often with text burned into
the corners. The model should see the disc at a consistent scale and exposure, so we crop to
the disc, pad it to a square, and scale the brightness inside the disc to a common level.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from pydicom.dataset import Dataset
from scipy import ndimage

from ml.preprocess.common import PreprocessedImage, PreprocessError, encode_png, read_dicom, resize_uint8
from ml.preprocess.dicom_image import dicom_to_png

__all__ = ["fundus_to_png"]

# A pixel belongs to the fundus when its brightest channel exceeds this fraction of the image's
# 99th-percentile brightness (and an absolute floor that sits above JPEG noise in the black frame).
_RELATIVE_THRESHOLD = 0.08
_ABSOLUTE_FLOOR = 12
# Below this share of the image the "disc" is more likely a label or noise than a retina.
_MIN_DISC_FRACTION = 0.05
# Exposure: the disc's 99.5th-percentile brightness is scaled to this level (a glint or two may
# clip), with the gain bounded so that a nearly black photo is not amplified into noise.
_TARGET_BRIGHT = 235.0
_BRIGHT_PERCENTILE = 99.5
_GAIN_LIMITS = (0.5, 4.0)

_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
_JPEG_MAGIC = b"\xff\xd8\xff"


def fundus_to_png(data: bytes | Dataset, size: int = 512) -> PreprocessedImage:
    """Decode a fundus photo, crop the black border around the disc, and return a `size`×`size`
    RGB PNG with the disc centred and its brightness scaled to a common level."""
    notes: list[str] = []
    rgb, source_kind = _decode_rgb(data, notes)
    mask = _disc_mask(rgb)
    top, bottom, left, right = _bounding_box(mask)
    disc_fraction = float(mask.sum()) / mask.size
    if disc_fraction < _MIN_DISC_FRACTION:
        raise PreprocessError(
            f"no fundus disc found: only {disc_fraction:.1%} of the image is brighter than the border"
        )
    h, w = mask.shape
    if (top, bottom, left, right) != (0, h, 0, w):
        notes.append(f"cropped border to rows {top}..{bottom}, columns {left}..{right} of {w}x{h}")
    rgb = rgb[top:bottom, left:right]
    mask = mask[top:bottom, left:right]

    rgb, gain = _normalise_exposure(rgb, mask)
    notes.append(f"brightness x{gain:.2f} to a common level inside the disc")
    rgb = _pad_to_square(rgb)
    out = resize_uint8(rgb, size, size)
    return PreprocessedImage(
        png=encode_png(out),
        width=size,
        height=size,
        window_center=None,
        window_width=None,
        photometric=source_kind,
        notes=tuple(notes),
    )


def _decode_rgb(data: bytes | Dataset, notes: list[str]) -> tuple[np.ndarray, str]:
    if isinstance(data, Dataset) or (isinstance(data, bytes) and data[128:132] == b"DICM"):
        ds = read_dicom(data)
        # Reuse the DICOM display chain (colour scaling, YBR → RGB, MONOCHROME1) at full size.
        rows, cols = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
        image = dicom_to_png(ds, size=max(rows, cols, 1))
        notes.extend(image.notes)
        with Image.open(io.BytesIO(image.png)) as img:
            return np.asarray(img.convert("RGB")), image.photometric
    if not isinstance(data, bytes):
        raise PreprocessError(f"expected image bytes or a DICOM dataset, got {type(data).__name__}")
    if not data:
        raise PreprocessError("empty fundus image")
    if not (data.startswith(_PNG_MAGIC) or data.startswith(_JPEG_MAGIC)):
        raise PreprocessError("not a JPEG, PNG or DICOM file")
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            kind = img.format or "image"
            # Cameras and phones record rotation in EXIF rather than in the pixels.
            upright = ImageOps.exif_transpose(img) or img
            if img.mode not in ("RGB", "RGBA", "L"):
                notes.append(f"converted {img.mode} to RGB")
            return np.asarray(upright.convert("RGB")), kind
    except (UnidentifiedImageError, OSError, SyntaxError) as exc:
        raise PreprocessError(f"the fundus image cannot be decoded: {exc}") from exc


def _disc_mask(rgb: np.ndarray) -> np.ndarray:
    brightness = rgb.max(axis=2)
    reference = float(np.percentile(brightness, 99))
    threshold = max(_ABSOLUTE_FLOOR, _RELATIVE_THRESHOLD * reference)
    mask = brightness > threshold
    # Keep the largest connected region only: text and logos in the corners are separate blobs.
    labels, count = ndimage.label(mask)
    if count > 1:
        sizes = ndimage.sum_labels(mask, labels, index=np.arange(1, count + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    # Dark vessels or a dark macula inside the disc must not punch holes in the mask.
    filled: np.ndarray = ndimage.binary_fill_holes(mask)
    return filled


def _bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    rows = np.flatnonzero(mask.any(axis=1))
    cols = np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return 0, 0, 0, 0
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _normalise_exposure(rgb: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, float]:
    """One gain for all three channels: it evens out flash and pupil-size differences while
    keeping the colour balance (a pale disc, a red haemorrhage) and dark lesions as they are;
    a per-channel contrast stretch would turn vessels black and tint the retina."""
    reference = float(np.percentile(rgb.max(axis=2)[mask], _BRIGHT_PERCENTILE))
    gain = float(np.clip(_TARGET_BRIGHT / max(reference, 1.0), *_GAIN_LIMITS))
    out = np.clip(np.rint(rgb.astype(np.float64) * gain), 0, 255).astype(np.uint8)
    out[~mask] = 0  # a clean black frame, whatever the camera's border looked like
    return out, gain


def _pad_to_square(rgb: np.ndarray) -> np.ndarray:
    """Centre the disc in a black square: cameras often cut the disc at the top and bottom,
    and stretching it to a square would distort the retina."""
    h, w = rgb.shape[:2]
    side = max(h, w)
    if h == w:
        return rgb
    out = np.zeros((side, side, 3), dtype=np.uint8)
    top, left = (side - h) // 2, (side - w) // 2
    out[top : top + h, left : left + w] = rgb
    return out
