"""Turn clinical inputs (DICOM images, fundus photos, ECG waveforms) into what a model sees.

`ml.preprocess.ecg` is not imported here: it pulls in matplotlib and, lazily, neurokit2,
which image-only callers should not pay for.
"""

from ml.preprocess.common import PreprocessedImage, PreprocessError
from ml.preprocess.dicom_image import CT_PRESETS, dicom_to_png
from ml.preprocess.fundus import fundus_to_png

__all__ = ["CT_PRESETS", "PreprocessError", "PreprocessedImage", "dicom_to_png", "fundus_to_png"]
