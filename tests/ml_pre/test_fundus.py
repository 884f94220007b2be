"""Fundus photos: synthetic discs on black, and a colour DICOM from pydicom's samples."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image, ImageDraw
from pydicom.data import get_testdata_file

from ml.preprocess import PreprocessError, fundus_to_png


def synthetic_fundus(
    *,
    size: tuple[int, int] = (800, 600),
    centre: tuple[int, int] = (330, 300),
    radius: int = 220,
    colour: tuple[int, int, int] = (200, 90, 40),
    label: bool = False,
    fmt: str = "PNG",
    exif_orientation: int | None = None,
    marker: tuple[int, int] | None = None,
) -> bytes:
    """An orange-red disc with a few dark 'vessels' on black, like a fundus camera frame."""
    img = Image.new("RGB", size, (0, 0, 0))
    draw = ImageDraw.Draw(img)
    cx, cy = centre
    draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    dark = tuple(c // 2 for c in colour)
    for dy in (-60, 0, 50):
        draw.line((cx - radius // 2, cy + dy, cx + radius // 2, cy + dy // 2), fill=dark, width=6)
    if marker:
        mx, my = marker
        draw.ellipse((mx - 25, my - 25, mx + 25, my + 25), fill=(40, 40, 230))
    if label:
        draw.rectangle((size[0] - 150, size[1] - 40, size[0] - 10, size[1] - 10), fill=(255, 255, 255))
    buf = io.BytesIO()
    if exif_orientation is not None:
        exif = Image.Exif()
        exif[0x0112] = exif_orientation
        img.save(buf, format=fmt, exif=exif, quality=95)
    else:
        img.save(buf, format=fmt, quality=95)
    return buf.getvalue()


def decode(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


def bright(img: np.ndarray) -> np.ndarray:
    return img.max(axis=2) > 30


def test_it_crops_the_black_border_so_the_disc_fills_the_square() -> None:
    result = fundus_to_png(synthetic_fundus(), size=512)
    img = decode(result.png)
    assert img.shape == (512, 512, 3)
    mask = bright(img)
    # The disc now spans (almost) the full width and height through the centre …
    assert mask[256].mean() > 0.97 and mask[:, 256].mean() > 0.97
    # … and the corners outside the circle are black.
    for y, x in ((5, 5), (5, 506), (506, 5), (506, 506)):
        assert not mask[y, x]
    assert any("cropped border" in note for note in result.notes)


def test_it_ignores_text_burned_into_a_corner() -> None:
    img = decode(fundus_to_png(synthetic_fundus(label=True), size=512).png)
    mask = bright(img)
    assert mask[256].mean() > 0.97  # the crop followed the disc, not the label
    assert not mask[506, 506]


def test_it_pads_a_disc_cut_at_top_and_bottom_instead_of_stretching_it() -> None:
    # Radius 350 in a 600-pixel-high frame: the camera cut 50 px off the top and the bottom.
    raw = synthetic_fundus(size=(800, 600), centre=(400, 300), radius=350)
    img = decode(fundus_to_png(raw, size=700).png)
    mask = bright(img)
    # 700 × 600 crop padded to 700 × 700: 50 black rows above and below.
    assert not mask[:45].any() and not mask[-45:].any()
    assert mask[350].mean() > 0.97


def test_it_normalises_exposure_inside_the_disc() -> None:
    dim = decode(fundus_to_png(synthetic_fundus(colour=(90, 40, 18)), size=256).png).astype(float)
    lit = decode(fundus_to_png(synthetic_fundus(colour=(220, 100, 45)), size=256).png).astype(float)
    centre = (slice(100, 156), slice(100, 156))
    assert abs(dim[centre].mean() - lit[centre].mean()) < 10


def test_it_reads_jpeg_and_honours_exif_orientation() -> None:
    # Orientation 6: the stored pixels must be rotated 90° clockwise for display,
    # so a blue marker stored left of centre ends up above it.
    raw = synthetic_fundus(fmt="JPEG", centre=(400, 300), radius=280, marker=(250, 300), exif_orientation=6)
    img = decode(fundus_to_png(raw, size=512).png).astype(int)
    blue = (img[..., 2] > 150) & (img[..., 0] < 120)
    ys, xs = np.nonzero(blue)
    assert ys.size > 50
    assert ys.mean() < 200 and abs(xs.mean() - 256) < 40


def test_it_decodes_a_colour_dicom_dataset_and_its_bytes_alike() -> None:
    path = get_testdata_file("SC_rgb_rle.dcm")
    assert path is not None
    from_dataset = fundus_to_png(pydicom.dcmread(path), size=256)
    from_bytes = fundus_to_png(Path(path).read_bytes(), size=256)
    assert from_dataset.png == from_bytes.png
    img = decode(from_dataset.png)
    assert img.shape == (256, 256, 3) and img.std() > 20
    assert from_dataset.photometric == "RGB"


def test_it_refuses_an_image_without_a_disc() -> None:
    black = io.BytesIO()
    Image.new("RGB", (400, 300), (0, 0, 0)).save(black, format="PNG")
    with pytest.raises(PreprocessError, match="no fundus disc"):
        fundus_to_png(black.getvalue())


@pytest.mark.parametrize("data", [b"", b"GIF89a....", b"\xff\xd8\xff\xe0 broken jpeg"])
def test_it_refuses_data_that_is_not_a_readable_image(data: bytes) -> None:
    with pytest.raises(PreprocessError):
        fundus_to_png(data)
