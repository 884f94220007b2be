from django.apps import AppConfig


class DicomConfig(AppConfig):
    """DICOM studies, ingest (STOW-RS, C-STORE SCP, upload) and DICOMweb. A sub-app of clinical
    with its own label and migrations, so it evolves without touching clinical's migration chain."""

    name = "clinical.dicom"
    label = "dicom"
    verbose_name = "DICOM"
