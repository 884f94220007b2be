"""The study viewer in a real chromium: Cornerstone3D renders a CT slice read over our WADO-RS
(non-blank, scrollable, window presets by keyboard), and the ECG viewer draws all 12 leads plus
the rhythm strip with neurokit2's measurements beside them."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from django.test import Client
from PIL import Image
from playwright.sync_api import expect

from clinical.dicom.models import Study
from clinical.dicom.services import instances_ingest
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import Personas, login
from tests.dicom.conftest import ct_series, sample

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
ARTIFACTS = SCREENSHOTS  # the README shows these
LEADS = {"I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5", "V6"}


@pytest.fixture(autouse=True)
def _store(settings: Any, tmp_path: Path) -> None:
    settings.DICOM_STORE_ROOT = str(tmp_path / "store")
    settings.DICOM_STORE_FSYNC = False
    if not (Path(settings.BASE_DIR) / "static/build/dicom/viewer.js").exists():
        pytest.fail("the viewer bundle is missing: cd frontend && npm ci && npm run build")


def _logged_in(page: Any, live_server: Any, user: Any) -> None:
    session = login(Client(), user).cookies["sessionid"].value
    page.context.add_cookies([{"name": "sessionid", "value": session, "url": live_server.url}])


def test_a_ct_slice_is_rendered_and_can_be_scrolled_and_windowed(
    page: Any, live_server: Any, personas: Personas
) -> None:
    instances_ingest(items=ct_series(5, patient_id="1CT1"), facility=personas.facility_a, source="stow", actor=None)
    study = Study.objects.get()
    _logged_in(page, live_server, personas.physician_a)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(f"{live_server.url}/dicom/studies/{study.pk}/")
    page.wait_for_selector("#viewport[data-rendered=true]", timeout=30_000)
    # Locator assertions, not wait_for_function: the site's CSP forbids evaluating strings.
    expect(page.locator("#slice-info")).to_have_text("3 / 5")
    page.wait_for_timeout(500)  # let the first frame reach the canvas
    shot = np.asarray(Image.open(io.BytesIO(page.locator("#viewport").screenshot())).convert("L"))
    assert shot.std() > 20 and (shot > 40).mean() > 0.2, "the CT slice is blank"
    page.locator("#viewport").focus()
    page.keyboard.press("ArrowDown")
    expect(page.locator("#slice-info")).to_have_text("4 / 5")
    page.keyboard.press("1")  # lung window
    expect(page.locator("#voi-info")).to_have_text("WL -600 / WW 1500")
    lung = np.asarray(Image.open(io.BytesIO(page.locator("#viewport").screenshot())).convert("L"))
    assert not np.array_equal(lung, shot)
    assert page.locator("#preset").input_value() == "lung"
    box = page.locator("#viewport").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2

    def drag(button: str, dx: float, dy: float) -> Any:
        page.mouse.move(cx, cy)
        page.mouse.down(button=button)
        for step in range(1, 6):
            page.mouse.move(cx + dx * step / 5, cy + dy * step / 5)
        page.mouse.up(button=button)
        page.wait_for_timeout(300)
        return np.asarray(Image.open(io.BytesIO(page.locator("#viewport").screenshot())).convert("L"))

    windowed = drag("left", 60, 40)  # window/level
    assert page.locator("#voi-info").inner_text() != "WL -600 / WW 1500" and not np.array_equal(windowed, lung)
    zoomed = drag("right", 0, -80)  # zoom
    assert not np.array_equal(zoomed, windowed)
    panned = drag("middle", 70, 0)  # pan
    assert not np.array_equal(panned, zoomed)
    page.keyboard.press("r")  # reset
    expect(page.locator("#voi-info")).not_to_have_text("WL -600 / WW 1500")
    assert errors == []
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dicom_viewer.png"), full_page=True)


def test_the_ecg_is_drawn_with_twelve_leads_and_reference_measurements(
    page: Any, live_server: Any, personas: Personas
) -> None:
    instances_ingest(items=[sample("waveform_ecg.dcm")], facility=personas.facility_a, source="stow", actor=None)
    study = Study.objects.get()
    _logged_in(page, live_server, personas.physician_a)
    page.goto(f"{live_server.url}/dicom/studies/{study.pk}/")
    page.wait_for_selector("#ecg[data-rendered=true]", timeout=60_000)
    leads = page.locator("#ecg svg path.lead")
    names = [leads.nth(i).get_attribute("data-lead") for i in range(leads.count())]
    assert set(names) == LEADS and len(names) == 13  # 3×4 + the lead II rhythm strip
    assert page.locator("#ecg svg path.lead.rhythm").get_attribute("data-lead") == "II"
    # Each trace actually has samples: a 2.5 s column at 500 Hz is 1,250 points.
    assert all(len(leads.nth(i).get_attribute("d") or "") > 5_000 for i in range(13))
    measurements = page.locator("#ecg-measurements").inner_text()
    assert "61 bpm" in measurements and "QTc (Bazett)" in measurements
    assert "心拍数 61 bpm" in page.locator("#ecg-summary").inner_text()
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "ecg_viewer.png"), full_page=True)


def test_opening_the_shown_ecg_again_keeps_its_trace(page: Any, live_server: Any, personas: Personas) -> None:
    """An ECG-only study is opened twice (ecg.js opens it and the image viewer clicks the first
    series button, in whichever order the two scripts load): the second ask once blanked the drawn
    trace while the page still said it was rendered (CI caught it with no leads on the page)."""
    instances_ingest(items=[sample("waveform_ecg.dcm")], facility=personas.facility_a, source="stow", actor=None)
    _logged_in(page, live_server, personas.physician_a)
    page.goto(f"{live_server.url}/dicom/studies/{Study.objects.get().pk}/")
    page.wait_for_selector("#ecg[data-rendered=true]", timeout=60_000)
    page.locator("button.series").first.click()
    assert page.locator("#ecg svg path.lead").count() == 13
    assert page.locator("#ecg[data-rendered=true]").count() == 1


@pytest.mark.parametrize("name", ["JPEG2000.dcm", "JPEG-lossy.dcm", "MR_small_RLE.dcm"])
def test_compressed_images_are_decoded_in_the_browser(
    page: Any, live_server: Any, personas: Personas, name: str
) -> None:
    """JPEG 2000 and JPEG through the loader's WebAssembly codecs, RLE in JavaScript: the frames
    come over WADO-RS as stored, and the browser decodes them."""
    instances_ingest(items=[sample(name)], facility=personas.facility_a, source="stow", actor=None)
    _logged_in(page, live_server, personas.physician_a)
    page.goto(f"{live_server.url}/dicom/studies/{Study.objects.get().pk}/")
    page.wait_for_selector("#viewport[data-rendered=true]", timeout=30_000)
    page.wait_for_timeout(500)
    shot = np.asarray(Image.open(io.BytesIO(page.locator("#viewport").screenshot())).convert("L"))
    assert shot.std() > 10, f"{name} rendered blank"
    assert page.locator("#viewer-status").inner_text() == ""
