"""DICOM → PNG on the real sample files pydicom ships."""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.pixels import apply_modality_lut, get_decoder
from pydicom.sequence import Sequence
from pydicom.uid import UID

from ml.preprocess import CT_PRESETS, PreprocessError, dicom_to_png


def sample(name: str) -> Dataset:
    path = get_testdata_file(name)
    assert path is not None, f"pydicom test file {name} missing"
    return pydicom.dcmread(path)


def pixels(png: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(png)) as img:
        return np.asarray(img)


def decoder_available(ds: Dataset) -> bool:
    return bool(get_decoder(ds.file_meta.TransferSyntaxUID).is_available)


def test_it_renders_ct_through_the_modality_lut_to_a_non_blank_png() -> None:
    result = dicom_to_png(sample("CT_small.dcm"))
    img = pixels(result.png)
    assert img.shape == (512, 512)
    assert img.dtype == np.uint8
    assert img.std() > 20  # anatomy, not a flat field
    assert any("modality LUT" in note for note in result.notes)


def test_it_shows_soft_tissue_brighter_in_the_lung_window_than_in_the_bone_window() -> None:
    ds = sample("CT_small.dcm")
    hu = apply_modality_lut(ds.pixel_array, ds)
    soft_tissue = (hu > 0) & (hu < 100)
    assert soft_tissue.sum() > 100

    lung = pixels(dicom_to_png(ds, preset="lung", size=128).png).astype(float)
    bone = pixels(dicom_to_png(ds, preset="bone", size=128).png).astype(float)

    # Lung window (−600/1500) puts 0–100 HU near the top of the grey scale, bone (400/1800) low.
    assert lung[soft_tissue].mean() > bone[soft_tissue].mean() + 80


def test_it_clips_values_outside_the_preset_window_to_black_and_white() -> None:
    ds = sample("CT_small.dcm")
    hu = apply_modality_lut(ds.pixel_array, ds)
    window = CT_PRESETS["mediastinum"]
    img = pixels(dicom_to_png(ds, preset="mediastinum", size=128).png)

    below = hu < window.center - window.width / 2 - 1
    above = hu > window.center + window.width / 2 + 1
    assert below.any() and above.any()
    assert (img[below] == 0).all()
    assert (img[above] == 255).all()


def test_it_reports_the_window_it_applied() -> None:
    result = dicom_to_png(sample("CT_small.dcm"), preset="lung")
    assert (result.window_center, result.window_width) == (-600, 1500)

    mr = dicom_to_png(sample("MR_small.dcm"))
    assert (mr.window_center, mr.window_width) == (600, 1600)  # the file's own window
    assert any("file window" in note for note in mr.notes)


def test_it_stretches_min_to_black_and_max_to_white_when_the_file_has_no_window() -> None:
    ds = sample("CT_small.dcm")
    assert "WindowCenter" not in ds
    img = pixels(dicom_to_png(ds, size=128).png)
    hu = apply_modality_lut(ds.pixel_array, ds)
    assert img[hu == hu.min()].max() == 0
    assert img[hu == hu.max()].min() == 255


def test_it_inverts_monochrome1_relative_to_its_raw_values() -> None:
    mono2 = sample("MR_small.dcm")
    mono1 = copy.deepcopy(mono2)
    mono1.PhotometricInterpretation = "MONOCHROME1"

    shown2 = pixels(dicom_to_png(mono2, size=64).png).astype(int)
    result1 = dicom_to_png(mono1, size=64)
    shown1 = pixels(result1.png).astype(int)

    assert np.array_equal(shown1, 255 - shown2)
    raw = mono1.pixel_array.astype(float).ravel()
    assert np.corrcoef(raw, shown1.ravel())[0, 1] < -0.9  # high stored value = dark
    assert result1.photometric == "MONOCHROME1"
    assert any("inverted" in note for note in result1.notes)


def test_it_applies_a_voi_lut_sequence_from_the_file() -> None:
    ds = sample("MR_small.dcm")
    # A step LUT: stored values below 1000 → 0, from 1000 up → 4095.
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 12]
    lut.LUTData = [0] * 1000 + [4095] * 3096
    ds.VOILUTSequence = Sequence([lut])

    img = pixels(dicom_to_png(ds, size=64).png)
    raw = ds.pixel_array
    assert set(np.unique(img)) == {0, 255}
    assert (img[raw < 1000] == 0).all() and (img[raw >= 1000] == 255).all()


def test_it_reads_rescale_and_window_from_enhanced_functional_groups() -> None:
    flat = sample("CT_small.dcm")
    flat.WindowCenter, flat.WindowWidth = 40, 400
    enhanced = copy.deepcopy(flat)
    for name in ("RescaleSlope", "RescaleIntercept", "WindowCenter", "WindowWidth"):
        del enhanced[name]
    transform, voi, group = Dataset(), Dataset(), Dataset()
    transform.RescaleSlope, transform.RescaleIntercept, transform.RescaleType = 1, -1024, "HU"
    voi.WindowCenter, voi.WindowWidth = 40, 400
    group.PixelValueTransformationSequence = Sequence([transform])
    group.FrameVOILUTSequence = Sequence([voi])
    enhanced.SharedFunctionalGroupsSequence = Sequence([group])

    assert dicom_to_png(enhanced).png == dicom_to_png(flat).png


def test_it_keeps_the_aspect_ratio_when_fitting_the_size() -> None:
    result = dicom_to_png(sample("examples_palette.dcm"), size=512)  # 800 × 350
    assert (result.width, result.height) == (512, 224)
    assert pixels(result.png).shape[:2] == (224, 512)


def test_it_corrects_non_square_pixels() -> None:
    ds = sample("MR_small.dcm")  # 64 × 64
    ds.PixelSpacing = [0.5, 1.0]  # rows 0.5 mm apart, columns 1 mm apart: twice as wide as tall
    result = dicom_to_png(ds, size=512)
    assert (result.width, result.height) == (512, 256)


def test_it_keeps_the_colours_of_an_rgb_rle_image() -> None:
    result = dicom_to_png(sample("SC_rgb_rle.dcm"), size=100)
    img = pixels(result.png)
    assert img.shape == (100, 100, 3)
    assert tuple(img[0, 0]) == (255, 0, 0)  # the red bar of the test pattern
    assert result.window_center is None and result.photometric == "RGB"


def test_it_shows_the_middle_frame_of_a_multiframe_image_unless_told_otherwise() -> None:
    ds = sample("SC_rgb_rle_2frame.dcm")
    default = dicom_to_png(ds, size=100)
    first = dicom_to_png(ds, size=100, frame=0)
    second = dicom_to_png(ds, size=100, frame=1)
    assert default.png == second.png != first.png
    assert any("middle frame 1" in note for note in default.notes)

    dose = dicom_to_png(sample("rtdose.dcm"))  # 15 frames
    assert any("middle frame 7" in note for note in dose.notes)


def test_it_scales_16_bit_colour_to_8_bits() -> None:
    img = pixels(dicom_to_png(sample("SC_rgb_rle_16bit.dcm"), size=100).png)
    assert img.dtype == np.uint8 and tuple(img[0, 0]) == (255, 0, 0)


def test_it_refuses_a_frame_out_of_range() -> None:
    with pytest.raises(PreprocessError, match="out of range"):
        dicom_to_png(sample("SC_rgb_rle_2frame.dcm"), frame=2)


def test_it_converts_ybr_jpeg_frames_to_rgb() -> None:
    ds = sample("examples_ybr_color.dcm")  # 30 frames, JPEG baseline, YBR_FULL_422
    if not decoder_available(ds):
        pytest.skip("no JPEG baseline decoder installed")
    result = dicom_to_png(ds)
    img = pixels(result.png)
    assert img.shape == (384, 512, 3) and img.std() > 10
    assert any("YBR_FULL_422 to RGB" in note for note in result.notes)


def test_it_decodes_jpeg2000_when_a_handler_is_installed() -> None:
    ds = sample("JPEG2000.dcm")
    if not decoder_available(ds):
        pytest.skip("no JPEG 2000 decoder (Pillow without OpenJPEG, no pylibjpeg/gdcm)")
    result = dicom_to_png(ds)
    assert (result.width, result.height) == (128, 512)  # 256 × 1024 source
    assert pixels(result.png).std() > 5


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_RLE.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_it_renders_losslessly_encoded_copies_identically(name: str) -> None:
    ds = sample(name)
    if not decoder_available(ds):
        pytest.skip(f"no decoder installed for {ds.file_meta.TransferSyntaxUID.name}")
    assert dicom_to_png(ds).png == dicom_to_png(sample("MR_small.dcm")).png


def test_it_refuses_pixel_data_it_has_no_codec_for() -> None:
    ds = sample("MR_small_jpeg_ls_lossless.dcm")
    if decoder_available(ds):
        pytest.skip("a JPEG-LS decoder is installed here")
    with pytest.raises(PreprocessError, match="cannot decode JPEG-LS"):
        dicom_to_png(ds)


def test_it_refuses_a_transfer_syntax_no_plugin_supports() -> None:
    ds = sample("MR_small_RLE.dcm")
    ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.110")  # JPEG XL: no decoder in pydicom 3.0
    with pytest.raises(PreprocessError, match=r"cannot decode .* pixel data: .*not supported"):
        dicom_to_png(ds)


def test_it_refuses_truncated_pixel_data() -> None:
    with pytest.raises(PreprocessError, match="truncated"):
        dicom_to_png(sample("MR_truncated.dcm"))


def test_it_refuses_a_dicom_object_without_pixel_data() -> None:
    with pytest.raises(PreprocessError, match=r"no pixel data.*ECG"):
        dicom_to_png(sample("waveform_ecg.dcm"))


def test_it_refuses_bytes_that_are_not_dicom(tmp_path: Path) -> None:
    with pytest.raises(PreprocessError, match="not a DICOM file"):
        dicom_to_png(b"\x89PNG\r\n\x1a\n not dicom")
    missing = tmp_path / "nope.dcm"
    with pytest.raises(PreprocessError, match="file not found"):
        dicom_to_png(missing)


def test_it_refuses_a_preset_for_images_not_in_hounsfield_units() -> None:
    with pytest.raises(PreprocessError, match="needs Hounsfield units"):
        dicom_to_png(sample("MR_small.dcm"), preset="lung")
    with pytest.raises(PreprocessError, match="unknown window preset"):
        dicom_to_png(sample("CT_small.dcm"), preset="liver-ish")


def test_it_accepts_a_path_bytes_or_a_dataset_alike() -> None:
    path = get_testdata_file("CT_small.dcm")
    assert path is not None
    from_path = dicom_to_png(path, preset="lung")
    from_bytes = dicom_to_png(Path(path).read_bytes(), preset="lung")
    from_dataset = dicom_to_png(pydicom.dcmread(path), preset="lung")
    assert from_path.png == from_bytes.png == from_dataset.png
