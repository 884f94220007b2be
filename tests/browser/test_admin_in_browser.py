"""An administrator's screens in a real chromium: the AI quality dashboard with its weekly plots,
and the user administration of their facility (never another facility's users)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from reports import services
from reports.models import Report
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import PASSWORD, Personas
from tests.inference.conftest import _fresh_engines, _no_auto_draft, canned  # noqa: F401
from tests.reports.conftest import draft_report  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_administrator_reads_the_quality_dashboard_and_their_users(
        page: Any, live_server: Any, personas: Personas, request: pytest.FixtureRequest) -> None:
    make: Callable[..., Report] = request.getfixturevalue("draft_report")
    for n in range(3):
        report = make()
        number = 1
        if n:  # two of three edited before signing
            head = report.revisions.get(number=1)
            number = services.revision_save(report=report, actor=personas.physician_a, base_number=1,
                                            text=head.text + "\n減塩を勧めます。" * n).number
        services.report_sign(report=report, actor=personas.physician_a, revision_number=number,
                             method="password", credential=PASSWORD)
    page.goto(f"{live_server.url}/reports/quality/")
    page.get_by_label("利用者ID").fill("admin_a")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    device = TOTPDevice.objects.get(user=personas.admin_a)
    page.get_by_label("認証コード（6桁）").fill(f"{totp(device.bin_key):06d}")
    page.keyboard.press("Enter")
    page.wait_for_url("**/reports/quality/")
    assert page.locator("#quality-rows tr[data-model]").count() == 3
    assert page.locator("svg.qchart").count() == 3 and page.locator("svg.qchart polyline").count() == 9
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "quality.png"), full_page=True)

    page.goto(f"{live_server.url}/administration/users/")
    users = page.locator("table").first.inner_text()
    assert "physician_a" in users and "staff_a" in users and "physician_b" not in users
