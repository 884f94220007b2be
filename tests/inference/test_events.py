"""The job messages' status label: the same words Django's `get_status_display()` gives, in the
active language, without rebuilding the choices per message."""

from __future__ import annotations

import pytest
from django.utils import translation

from inference.events import status_label
from inference.models import InferenceJob, JobStatus


@pytest.mark.parametrize("language", ["ja", "en"])
@pytest.mark.parametrize("status", [s.value for s in JobStatus])
def test_status_label_is_what_the_model_displays_in_the_active_language(language: str, status: str) -> None:
    with translation.override(language):
        assert status_label(status) == InferenceJob(status=status).get_status_display()


def test_status_label_of_the_japanese_ui_is_japanese_and_english_in_english() -> None:
    with translation.override("ja"):
        assert status_label("failed") == "失敗"
    with translation.override("en"):
        assert status_label("failed") == "Failed"


def test_an_unknown_status_is_shown_as_it_is_stored() -> None:
    assert status_label("paused") == "paused" == InferenceJob(status="paused").get_status_display()
