"""A strict Content-Security-Policy that the pages actually satisfy, and a production
configuration that passes `manage.py check --deploy` without a single warning."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from django.test import Client

from tests.conftest import Personas

ROOT = Path(__file__).resolve().parents[2]
# The one inline handler the policy allows by hash (see config/security.py).
ALLOWED_INLINE_HANDLERS = {'onchange="this.form.submit()"'}
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
INLINE_STYLE = re.compile(r"<style\b|\sstyle\s*=", re.IGNORECASE)
HANDLER = re.compile(r"\son[a-z]+\s*=\s*\"[^\"]*\"", re.IGNORECASE)


def _directives(header: str) -> dict[str, list[str]]:
    out = {}
    for part in header.split(";"):
        words = part.split()
        if words:
            out[words[0]] = words[1:]
    return out


@pytest.mark.django_db
def test_every_page_carries_a_strict_policy(client_for: Callable[[str], Client]) -> None:
    response = client_for("staff_a").get("/")
    policy = _directives(response["Content-Security-Policy"])
    assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
    assert policy["style-src"] == ["'self'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"]
    assert Client().get("/accounts/login/").has_header("Content-Security-Policy")


def test_no_template_relies_on_inline_script_or_style() -> None:
    problems = []
    for path in sorted((ROOT / "templates").rglob("*.html")):
        text = path.read_text(encoding="utf-8")
        if INLINE_SCRIPT.search(text.replace('type="application/json"', "")):
            problems.append(f"{path.relative_to(ROOT)}: inline <script>")
        if INLINE_STYLE.search(text):
            problems.append(f"{path.relative_to(ROOT)}: inline style")
        for handler in HANDLER.findall(text):
            if handler.strip() not in ALLOWED_INLINE_HANDLERS:
                problems.append(f"{path.relative_to(ROOT)}: {handler.strip()}")
    assert problems == []


def test_the_svg_charts_use_classes_not_inline_styles() -> None:
    source = (ROOT / "clinical" / "charts.py").read_text(encoding="utf-8")
    assert "style=" not in source


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/", "/patients/", "/visits/", "/audit/", "/audit/verify/",
                                 "/accounts/password_change/"])
def test_rendered_pages_have_no_inline_script_or_style(
    client_for: Callable[[str], Client], personas: Personas, url: str
) -> None:
    html = client_for("admin_a").get(url).content.decode()
    assert not INLINE_SCRIPT.search(html.replace('type="application/json"', ""))
    assert not INLINE_STYLE.search(html)
    assert set(h.strip() for h in HANDLER.findall(html)) <= ALLOWED_INLINE_HANDLERS


PRODUCTION_ENV = {
    "DJANGO_SECRET_KEY": "k3y-" + "x7Qm9pL2vR8sT4wZ6yB1nC5dF0gH3jK7" * 2,
    "DJANGO_SECURE_COOKIES": "1",
    "DJANGO_ALLOWED_HOSTS": "cds.example.jp",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://cds.example.jp",
    "DJANGO_DEBUG": "0",
}


@pytest.mark.slow
def test_manage_py_check_deploy_passes_in_production_mode(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(PRODUCTION_ENV, MEDLMM_VAR_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
def test_production_mode_sets_hsts_secure_cookies_and_redirects(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")}
    env.update(PRODUCTION_ENV, MEDLMM_VAR_DIR=str(tmp_path))
    code = ("from django.conf import settings as s; print(s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS, "
            "s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SESSION_COOKIE_NAME)")
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1].split() == [
        "True", "31536000", "True", "True", "__Host-sessionid"], result.stderr
