"""Rendering result letters to PDF with weasyprint, in Japanese whatever the reader's UI language
(the letter goes to the examinee). Every free-text field reaches the page through Django's
autoescaping; the renderer fetches nothing but data: URIs, so no text can make the server load a URL."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils import timezone, translation

from clinical.intake.normalize import wareki
from reports.letters.context import Letter

CSS_PATH = "reports/letter.css"


class FetchRefused(ValueError):
    pass


class RendererUnavailable(RuntimeError):
    """weasyprint could not load its system libraries (Pango): the machine lacks them."""


def _weasyprint() -> Any:
    try:
        import weasyprint
    except OSError as exc:  # weasyprint loads libpango through cffi at import time
        raise RendererUnavailable(str(exc)) from exc
    return weasyprint


def _fetch_nothing(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    if url.startswith("data:"):
        from weasyprint import default_url_fetcher

        return dict(default_url_fetcher(url, *args, **kwargs))
    raise FetchRefused(f"the letter renderer fetches no URLs ({url[:80]})")


@functools.cache
def _stylesheet() -> Any:
    from weasyprint import CSS

    found = finders.find(CSS_PATH)
    path = Path(str(found)) if found else Path(settings.BASE_DIR) / "static" / CSS_PATH
    return CSS(string=path.read_text(encoding="utf-8"), url_fetcher=_fetch_nothing)


def letter_html(letter: Letter) -> str:
    with translation.override("ja"):
        birth = wareki(letter.birth_date) if letter.birth_date else ""
        return render_to_string("reports/letter.html",
                                {"letter": letter, "issued": timezone.localdate(), "birth_wareki": birth})


def _document(letter: Letter, font_config: Any = None) -> Any:
    HTML = _weasyprint().HTML

    return HTML(string=letter_html(letter), url_fetcher=_fetch_nothing, base_url=None).render(
        stylesheets=[_stylesheet()], font_config=font_config)


def letter_pdf(letter: Letter) -> bytes:
    pdf: bytes = _document(letter).write_pdf()
    return pdf


def letters_pdf(letters: Iterable[Letter], *, on_each: Callable[[Letter], None] | None = None) -> bytes | None:
    """One PDF of many letters, each with its own page numbering (rendered as separate documents
    and joined page by page). `on_each` is called after each letter, for progress. None if empty."""
    from weasyprint.text.fonts import FontConfiguration

    # One font configuration for the whole batch: each document otherwise keeps its own copy of the
    # CJK faces (≈15 MB a letter held until the merge, against ≈1.5 MB shared), and renders slower.
    # Not shared between requests: it is not documented as thread-safe.
    font_config = FontConfiguration()
    documents = []
    for letter in letters:
        documents.append(_document(letter, font_config))
        if on_each is not None:
            on_each(letter)
    if not documents:
        return None
    pages = [page for document in documents for page in document.pages]
    pdf: bytes = documents[0].copy(pages).write_pdf()
    return pdf
