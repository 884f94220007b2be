"""The strict policy in a real chromium: the pages that do the most in the browser (the DICOM
viewer with its WebAssembly codecs and workers, the language switch) work and report no
Content-Security-Policy violation."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from clinical.dicom.models import Study
from clinical.dicom.services import instances_ingest
from tests.conftest import Personas, login
from tests.dicom.conftest import ct_series

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _violations(page: Any) -> list[str]:
    found: list[str] = []
    page.on("console", lambda m: found.append(m.text) if "Content Security Policy" in m.text else None)
    return found


def test_the_language_switch_works_under_the_policy(page: Any, live_server: Any) -> None:
    violations = _violations(page)
    page.goto(f"{live_server.url}/accounts/login/")
    with page.expect_navigation():
        page.select_option("#lang-select", "en")
    assert page.locator("html").get_attribute("lang") == "en"
    assert violations == []


def test_the_dicom_viewer_renders_under_the_policy(
    page: Any, live_server: Any, personas: Personas, settings: Any, tmp_path: Path
) -> None:
    settings.DICOM_STORE_ROOT = str(tmp_path / "store")
    settings.DICOM_STORE_FSYNC = False
    if not (Path(settings.BASE_DIR) / "static/build/dicom/viewer.js").exists():
        pytest.skip("the viewer bundle is not built")
    instances_ingest(items=ct_series(3, patient_id="1CT1"), facility=personas.facility_a, source="stow", actor=None)
    study = Study.objects.get()
    session = login(Client(), personas.physician_a).cookies["sessionid"].value
    page.context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])
    violations = _violations(page)
    page.goto(f"{live_server.url}/dicom/studies/{study.pk}/")
    page.wait_for_selector("#viewport[data-rendered=true]", timeout=30_000)
    page.wait_for_timeout(500)
    assert violations == []
