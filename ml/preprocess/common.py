"""Result and error types shared by the preprocessors, and the few helpers they all need."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

DicomSource = Dataset | str | os.PathLike[str] | bytes | BinaryIO


class PreprocessError(ValueError):
    """The input cannot be turned into something a model may see. `reason` is meant for the
    person who uploaded it, so it says what is wrong with the data, not where the code failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class PreprocessedImage:
    png: bytes
    width: int
    height: int
    window_center: float | None  # in modality units (HU for CT); None for colour images
    window_width: float | None
    photometric: str  # of the source, e.g. "MONOCHROME1", "RGB", "JPEG"
    notes: tuple[str, ...] = field(default_factory=tuple)  # what was done, as provenance


def read_dicom(src: DicomSource, *, stop_before_pixels: bool = False) -> Dataset:
    """Open a DICOM dataset from a path, bytes, a file object, or pass a Dataset through."""
    if isinstance(src, Dataset):
        return src
    fp: str | os.PathLike[str] | BinaryIO = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        return pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError as exc:
        raise PreprocessError(f"not a DICOM file: {exc}") from exc
    except FileNotFoundError as exc:
        raise PreprocessError(f"file not found: {exc.filename}") from exc
    except (EOFError, OSError, ValueError, KeyError) as exc:
        # pydicom surfaces damaged headers as assorted low-level errors.
        raise PreprocessError(f"unreadable DICOM file: {exc}") from exc


def encode_png(pixels: np.ndarray) -> bytes:
    """8-bit grey (H, W) or RGB (H, W, 3) array to PNG bytes."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"expected uint8 pixels, got {pixels.dtype}")
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return buf.getvalue()


def fit_size(width: int, height: int, size: int, *, aspect: float = 1.0) -> tuple[int, int]:
    """Target (width, height) whose longer side is `size`, keeping the displayed aspect ratio.
    `aspect` is the physical width of one pixel relative to its height (1.0 for square pixels)."""
    if size < 1:
        raise ValueError("size must be positive")
    shown_w = width * aspect
    scale = size / max(shown_w, height)
    return max(1, round(shown_w * scale)), max(1, round(height * scale))


def resize_uint8(pixels: np.ndarray, width: int, height: int) -> np.ndarray:
    if pixels.shape[1] == width and pixels.shape[0] == height:
        return pixels
    img = Image.fromarray(pixels).resize((width, height), Image.Resampling.LANCZOS)
    return np.asarray(img)
