"""ECG: pydicom's 12-lead sample, neurokit2's simulator, and hand-built waveform objects."""

from __future__ import annotations

import io
import math

import neurokit2 as nk
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian

from ml.grounding import check_grounding
from ml.preprocess import PreprocessError
from ml.preprocess.ecg import (
    ECG_PAPER_MM,
    STANDARD_LEADS,
    EcgMeasurements,
    EcgRecord,
    ecg_from_dicom,
    ecg_measurements,
    ecg_summary_ja,
    normalise_lead_name,
    render_ecg_png,
)


def sample_path(name: str) -> str:
    path = get_testdata_file(name)
    assert isinstance(path, str), f"pydicom test file {name} missing"
    return path


SAMPLE = sample_path("waveform_ecg.dcm")


@pytest.fixture(scope="module")
def record() -> EcgRecord:
    return ecg_from_dicom(SAMPLE)


@pytest.fixture(scope="module")
def measured(record: EcgRecord) -> EcgMeasurements:
    return ecg_measurements(record)


def simulated(heart_rate: int, *, seconds: int = 10, fs: int = 500) -> EcgRecord:
    signal = nk.ecg_simulate(duration=seconds, sampling_rate=fs, heart_rate=heart_rate, random_state=7)
    return EcgRecord(leads={"II": np.asarray(signal)}, sampling_hz=fs, duration_s=seconds)


def waveform_dataset(
    channels: list[tuple[str, str, str]], samples: np.ndarray, *, fs: float = 500, sensitivity: float | None = 0.001
) -> Dataset:
    """A minimal 12-lead-style DICOM waveform: channels as (code value, scheme, units)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    group = Dataset()
    group.MultiplexGroupLabel = "RHYTHM"
    group.NumberOfWaveformChannels = len(channels)
    group.NumberOfWaveformSamples = samples.shape[0]
    group.SamplingFrequency = fs
    group.WaveformBitsAllocated = 16
    group.WaveformSampleInterpretation = "SS"
    group.WaveformData = samples.astype("<i2").tobytes()
    definitions = []
    for code, scheme, units in channels:
        channel, source, unit = Dataset(), Dataset(), Dataset()
        source.CodeValue, source.CodingSchemeDesignator, source.CodeMeaning = code, scheme, ""
        unit.CodeValue, unit.CodingSchemeDesignator, unit.CodeMeaning = units, "UCUM", units
        channel.ChannelSourceSequence = Sequence([source])
        if sensitivity is not None:
            channel.ChannelSensitivity = sensitivity
            channel.ChannelSensitivityUnitsSequence = Sequence([unit])
            channel.ChannelSensitivityCorrectionFactor = 1
        channel.ChannelBaseline = 0
        definitions.append(channel)
    group.ChannelDefinitionSequence = Sequence(definitions)
    ds.WaveformSequence = Sequence([group])
    return ds


def test_it_reads_twelve_standard_leads_with_the_files_sampling_rate(record: EcgRecord) -> None:
    ds = pydicom.dcmread(SAMPLE)
    assert list(record.leads) == list(STANDARD_LEADS)
    assert record.sampling_hz == float(ds.WaveformSequence[0].SamplingFrequency) == 1000
    assert record.duration_s == pytest.approx(10.0)
    assert all(lead.shape == (10000,) for lead in record.leads.values())


def test_it_converts_the_files_microvolts_to_millivolts(record: EcgRecord) -> None:
    ds = pydicom.dcmread(SAMPLE)
    in_microvolts = ds.waveform_array(0)[:, 1]  # lead II, sensitivity 1.25 µV per unit
    assert np.allclose(record.leads["II"], in_microvolts / 1000)
    assert 0.5 < record.leads["II"].max() < 3.0  # an R wave of about a millivolt


def test_it_prefers_the_rhythm_group_to_the_median_beat() -> None:
    assert ecg_from_dicom(SAMPLE).duration_s == pytest.approx(10.0)
    assert ecg_from_dicom(SAMPLE, group=1).duration_s == pytest.approx(1.2)


def test_it_measures_a_physiological_heart_rate_on_lead_ii(measured: EcgMeasurements) -> None:
    assert measured.lead == "II"
    assert measured.hr_bpm is not None and 40 <= measured.hr_bpm <= 120
    assert measured.rr_ms is not None and measured.hr_bpm == round(60000 / measured.rr_ms)
    assert measured.beats >= 8


def test_it_measures_intervals_close_to_reading_the_sample_by_eye(measured: EcgMeasurements) -> None:
    # Read off the trace: P onset ≈ 1340 ms, QRS 1495–1550 ms, T end ≈ 1855 ms (second beat).
    assert measured.pr_ms is not None and 120 <= measured.pr_ms <= 200
    assert measured.qrs_ms is not None and 40 <= measured.qrs_ms <= 110
    assert measured.qt_ms is not None and 320 <= measured.qt_ms <= 440


def test_it_corrects_qt_with_bazett_and_says_so(measured: EcgMeasurements) -> None:
    assert measured.qt_ms is not None and measured.rr_ms is not None and measured.qtc_ms is not None
    assert abs(measured.qtc_ms - measured.qt_ms / math.sqrt(measured.rr_ms / 1000)) <= 1
    assert measured.qtc_formula == "Bazett"
    assert "Bazett" in measured.method and "neurokit2" in measured.method


def test_it_measures_60_bpm_on_a_simulated_ecg() -> None:
    measured = ecg_measurements(simulated(60))
    assert measured.hr_bpm is not None and abs(measured.hr_bpm - 60) <= 3


def test_it_leaves_values_unmeasured_rather_than_guessing_on_a_flat_line() -> None:
    flat = EcgRecord(leads={"II": np.zeros(5000)}, sampling_hz=500, duration_s=10)
    measured = ecg_measurements(flat)
    assert (measured.hr_bpm, measured.pr_ms, measured.qrs_ms, measured.qt_ms, measured.qtc_ms) == (None,) * 5
    assert measured.notes  # and says why
    assert measured.as_sources() == {}


def test_it_refuses_to_measure_a_record_too_short_for_intervals() -> None:
    short = simulated(70, seconds=2)
    measured = ecg_measurements(short)
    assert measured.hr_bpm is None
    assert any("too short" in note for note in measured.notes)


def test_it_derives_lead_ii_from_i_and_iii_when_ii_is_missing(record: EcgRecord) -> None:
    without_ii = EcgRecord(
        leads={name: record.leads[name] for name in ("I", "III")},
        sampling_hz=record.sampling_hz,
        duration_s=record.duration_s,
    )
    measured = ecg_measurements(without_ii)
    assert measured.lead == "II" and any("I + III" in note for note in measured.notes)
    assert measured.hr_bpm is not None and 40 <= measured.hr_bpm <= 120


@pytest.mark.parametrize(
    ("text", "lead"),
    [
        ("Lead I (Einthoven)", "I"),
        ("Lead aVR", "aVR"),
        ("5.6.3-9-61", "III"),
        ("5.6.3-9-64", "aVF"),
        ("2:3", "V1"),
        ("131080", "V6"),  # MDC numeric code 2:8
        ("MDC_ECG_LEAD_AVL", "aVL"),
        ("v5", "V5"),
        ("Respiration", None),
    ],
)
def test_it_normalises_lead_names_from_codes_and_labels(text: str, lead: str | None) -> None:
    assert normalise_lead_name(text) == lead


def test_it_reads_mdc_coded_channels_recorded_in_millivolts() -> None:
    raw = np.stack([np.arange(1000) % 200, -(np.arange(1000) % 100)], axis=1)
    ds = waveform_dataset([("2:1", "MDC", "mV"), ("2:2", "MDC", "mV")], raw, sensitivity=0.01)
    record = ecg_from_dicom(ds)
    assert list(record.leads) == ["I", "II"]
    assert np.allclose(record.leads["I"], raw[:, 0] * 0.01)
    assert record.sampling_hz == 500 and record.duration_s == pytest.approx(2.0)
    assert any("leads missing" in note for note in record.notes)


def test_it_refuses_channels_without_a_sensitivity() -> None:
    ds = waveform_dataset([("2:1", "MDC", "mV")], np.zeros((100, 1)), sensitivity=None)
    with pytest.raises(PreprocessError, match="no sensitivity"):
        ecg_from_dicom(ds)


def test_it_refuses_a_waveform_without_ecg_leads() -> None:
    ds = waveform_dataset([("Respiration", "99LOCAL", "mV")], np.zeros((100, 1)))
    with pytest.raises(PreprocessError, match="no ECG leads"):
        ecg_from_dicom(ds)


def test_it_refuses_dicom_without_a_waveform() -> None:
    with pytest.raises(PreprocessError, match="no waveform data"):
        ecg_from_dicom(sample_path("CT_small.dcm"))


def test_it_renders_the_3x4_layout_and_rhythm_strip_on_ecg_paper(record: EcgRecord, measured: EcgMeasurements) -> None:
    png = render_ecg_png(record, measured)
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (round(ECG_PAPER_MM[0] * 5), round(ECG_PAPER_MM[1] * 5)) == (1325, 675)
        rgb = np.asarray(img.convert("RGB")).astype(int)
    trace = rgb.max(axis=2) < 80  # black ink
    grid = (rgb[..., 0] > 200) & (rgb[..., 1] < 215)  # pink/red paper lines
    assert grid.mean() > 0.05
    # Ink in each of the four rows (header 10 mm, rows of 30 mm at 5 px/mm).
    for row in range(4):
        top = 50 + row * 150
        assert trace[top : top + 150, 60:].sum() > 1500


def test_it_renders_at_the_requested_resolution_and_tolerates_missing_leads() -> None:
    png = render_ecg_png(simulated(75), None, px_per_mm=4)
    with Image.open(io.BytesIO(png)) as img:
        assert img.size == (1060, 540)


def test_it_summarises_measurements_in_japanese_with_the_qtc_formula() -> None:
    m = EcgMeasurements(hr_bpm=72, pr_ms=160, qrs_ms=96, qt_ms=380, qtc_ms=420, rr_ms=833, lead="II")
    assert ecg_summary_ja(m) == "心拍数 72 bpm、PR 160 ms、QRS 96 ms、QT/QTc 380/420 ms (Bazett)"


def test_it_writes_undetermined_values_as_such_in_the_summary() -> None:
    m = EcgMeasurements(hr_bpm=72, pr_ms=None, qrs_ms=96, qt_ms=None, qtc_ms=None, rr_ms=833, lead="II")
    summary = ecg_summary_ja(m)
    assert "PR 判定不能" in summary and "QT/QTc 判定不能" in summary
    assert "判定不能は自動計測で値を決められなかった項目" in summary


def test_its_summary_is_grounded_in_its_own_measurements(measured: EcgMeasurements) -> None:
    summary = ecg_summary_ja(measured)
    assert check_grounding(summary, measured.as_sources()) == []
