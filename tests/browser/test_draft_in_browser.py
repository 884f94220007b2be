"""A physician asks for a draft of a flagged visit in a real browser and watches it arrive."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical.models import Patient
from inference.services import model_version_register
from tests.browser.conftest import SCREENSHOTS
from tests.checkups.test_import import GOOD
from tests.conftest import PASSWORD, Personas

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_drafts_a_flagged_visit_with_the_template_engine(
    page: Any, live_server: Any, personas: Personas, examinees: dict[str, Patient], celery_worker_thread: None,
    tmp_path: Path, settings: Any,
) -> None:
    from clinical.intake.services import import_batch_create, import_batch_run
    from clinical.models import CheckupVisit

    settings.VAR_DIR = tmp_path
    path = tmp_path / "c.csv"
    path.write_text(GOOD, encoding="utf-8")
    with path.open("rb") as f:
        batch = import_batch_create(facility=personas.facility_a, file_name="c.csv", content=f,
                                    actor=personas.staff_a, enqueue=False)
    import_batch_run(batch_id=batch.pk)
    model_version_register(name="テンプレート下書き", version="template-ja-v1", engine="template",
                           location="template-ja-v1", tasks=["checkup_summary"], modalities=[],
                           options={"chunk_chars": 4, "delay": 0.01}, queue="default", enabled=True)
    visit = CheckupVisit.objects.get(patient__mrn="A0001")
    page.goto(f"{live_server.url}/visits/{visit.pk}/")
    page.get_by_label("利用者ID").fill("physician_a")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    device = TOTPDevice.objects.get(user=personas.physician_a)
    page.get_by_label("認証コード（6桁）").fill(f"{totp(device.bin_key):06d}")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/visits/{visit.pk}/")
    page.get_by_role("button", name="下書きを作成").click()
    page.wait_for_url("**/inference/jobs/*/")
    page.locator(".st-succeeded").first.wait_for(timeout=30_000)
    page.reload()
    draft = page.locator("pre.draft").last.inner_text()
    assert "142" in draft and "テンプレート" in page.content()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "draft.png"), full_page=True)
