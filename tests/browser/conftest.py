"""Real-browser tests: Debian's chromium driven by Playwright (no `playwright install`). The
`browser` and `page` fixtures live in tests/conftest.py, shared with tests/security."""

from __future__ import annotations

from pathlib import Path

from tests.checkups.conftest import examinees  # noqa: F401  (fixture shared with the checkup tests)

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

