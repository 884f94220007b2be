"""A clerk imports a checkup file in a real browser, watches it finish, and opens a flagged visit."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from clinical.models import Patient
from tests.browser.conftest import SCREENSHOTS
from tests.checkups.test_import import GOOD
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_clerk_imports_a_file_and_sees_the_flagged_visit(
    page: Any, live_server: Any, examinees: dict[str, Patient], celery_worker_thread: None, tmp_path: Path,
    settings: Any,
) -> None:
    settings.VAR_DIR = tmp_path
    older = GOOD.replace("令和6年4月1日", "令和5年4月3日").replace(",１４２,", ",131,").replace(",6.8,", ",6.1,")
    files = [tmp_path / "2023.csv", tmp_path / "2024.csv"]
    files[0].write_text(older, encoding="utf-8")
    files[1].write_text(GOOD, encoding="utf-8")
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("利用者ID").fill("staff_a")
    page.get_by_label("パスワード").fill(PASSWORD)
    page.get_by_role("button", name="ログイン").click()
    for path in files:
        page.goto(f"{live_server.url}/imports/")
        page.get_by_label("ファイル（CSV / Excel）").set_input_files(str(path))
        page.get_by_role("button", name="取り込む").click()
        page.wait_for_url("**/imports/*/")
        page.locator(".st-succeeded").first.wait_for(timeout=30_000)
    page.goto(f"{live_server.url}/visits/?follow_up=1")
    page.get_by_role("link", name="2024-04-01").click()
    row = page.locator("tr", has_text="収縮期血圧")
    assert "142" in row.inner_text() and "受診勧奨" in row.inner_text()
    assert page.locator("svg.trend").count() >= 3
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "visit.png"), full_page=True)
