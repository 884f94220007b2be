"""A physician logs in with password and TOTP in a real chromium and sees only their examinees."""

from __future__ import annotations

from typing import Any

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.browser.conftest import SCREENSHOTS
from tests.conftest import PASSWORD, Personas
from tests.factories import PatientFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_physician_logs_in_with_totp_and_sees_the_patient_list(
    page: Any, live_server: Any, personas: Personas
) -> None:
    PatientFactory.create(facility=personas.facility_a, mrn="T000001", family_name="山田", given_name="花子",
                          family_name_kana="ヤマダ", given_name_kana="ハナコ", sex="F")
    PatientFactory.create(facility=personas.facility_b, mrn="O000001", family_name="鈴木", given_name="一郎")
    page.goto(f"{live_server.url}/patients/")
    assert "/accounts/login/" in page.url
    page.get_by_label("利用者ID").fill("physician_a")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    page.wait_for_url("**/accounts/2fa/verify/**")
    device = TOTPDevice.objects.get(user=personas.physician_a)
    page.get_by_label("認証コード（6桁）").fill(f"{totp(device.bin_key):06d}")
    page.keyboard.press("Enter")
    page.wait_for_url("**/patients/")
    table = page.locator("table.grid").inner_text()
    assert "山田 花子" in table and "鈴木" not in table
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "patients.png"), full_page=True)
