"""A study report's review screen shows the study beside the draft: a preview of each series (served
by WADO-RS, scoped and audited there) or the ECG trace, and a link to the full viewer."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from clinical.dicom.models import Instance, Study
from clinical.dicom.services import instances_ingest
from reports.models import Report, ReportRevision, RevisionKind
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, sample

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _store(settings: Any, tmp_path: Path) -> None:
    settings.DICOM_STORE_ROOT = str(tmp_path / "store")
    settings.DICOM_STORE_FSYNC = False


def _report_for(study: Study, kind: str, author: Any) -> Report:
    report = Report.objects.create(facility=study.facility, patient=study.patient, study=study, kind=kind)
    ReportRevision.objects.create(report=report, number=1, kind=RevisionKind.EDIT, text="所見なし。",
                                  author_user=author)
    return report


def test_a_ct_report_shows_a_preview_of_the_series_and_links_the_viewer(
        personas: Personas, client_for: Callable[[str], Client]) -> None:
    instances_ingest(items=ct_series(3), facility=personas.facility_a, source="stow", actor=None)
    study = Study.objects.get()
    report = _report_for(study, "ct", personas.physician_a)
    client = client_for("physician_a")
    html = client.get(f"/reports/{report.pk}/").content.decode()
    first = Instance.objects.get(instance_number=1)
    preview = (f"/dicomweb/studies/{study.study_instance_uid}/series/{first.series.series_instance_uid}"
               f"/instances/{first.sop_instance_uid}/rendered")
    assert html.count('<figure class="preview"><img') == 1 and f'src="{preview}"' in html
    assert f'href="/dicom/studies/{study.pk}/" id="viewer-link"' in html
    image = client.get(preview, HTTP_ACCEPT="image/png")
    assert image.status_code == 200 and image["Content-Type"] == "image/png"


def test_an_ecg_report_shows_the_trace(personas: Personas, client_for: Callable[[str], Client]) -> None:
    [result] = instances_ingest(items=[sample("waveform_ecg.dcm")], facility=personas.facility_a, source="stow",
                                actor=None)
    report = _report_for(Study.objects.get(), "ecg", personas.physician_a)
    html = client_for("physician_a").get(f"/reports/{report.pk}/").content.decode()
    assert f'<img src="/dicom/instances/{result.instance_id}/ecg.png"' in html and "心電図" in html
