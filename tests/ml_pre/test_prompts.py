"""Versioned Japanese prompt templates."""

from __future__ import annotations

import hashlib
import re
from decimal import Decimal
from typing import Any

import pytest

from ml.prompts import (
    TASKS,
    PromptContextError,
    available_versions,
    latest_version,
    load_template,
    render_prompt,
)
from ml.schemas import parse_draft

FULL_CONTEXT: dict[str, Any] = {
    "age": 54,
    "sex": "F",
    "clinical_notes": "健診目的",
    "reference_data": {"HbA1c": "6.8 %", "LDLコレステロール": Decimal("142"), "BMI": 24.6},
    "ecg_summary": "心拍数 72 bpm、PR 160 ms、QRS 96 ms、QT/QTc 380/420 ms (Bazett)",
    "eye": "右眼",
    "body_part": "胸部",
    "screening_results": ["脂質: 要再検査 (C)"],
    "study_findings": "",
}

# The text of a released version is frozen (drafts record which version produced them).
# A change to one of these files must be a new file (…-v2.toml), not an edit.
# The hash covers the parsed system and user texts, so line endings of a checkout don't matter.
RELEASED_SHA256 = {
    "cxr-v1": "92e2b6a20cdf4c8f85c477ae8e05f2eb4d33d6b16d8044ab156b87a5d6ab8b2b",
    "ecg-v1": "799bfbfad9f40098c34f87504e54297cb5253584d0ee3429c9f918be2738c18f",
    "fundus-v1": "fbb460a465b9487118fd853485ea29fb4cbfb983010b4ed48945a6cb94aefd6a",
    "ct-v1": "b5cb9f7995666342ef08f38da2e8c6fb15b38a8704665dadead3182019badd29",
    "checkup_summary-v1": "9c523515982bd86d55d586bb2e09b6b1da039f13dd640ca4e9c8b5e783e211c7",
}


@pytest.mark.parametrize("task", TASKS)
def test_it_renders_every_task_with_its_latest_version(task: str) -> None:
    rendered = render_prompt(task, **FULL_CONTEXT)
    assert rendered.version == latest_version(task) == f"{task}-v1"
    assert rendered.task == task
    assert "$" not in rendered.text  # every placeholder filled
    assert rendered.system.startswith("あなたは")


@pytest.mark.parametrize("task", TASKS)
def test_it_tells_the_model_to_answer_in_json_and_never_invent_numbers(task: str) -> None:
    text = render_prompt(task, **FULL_CONTEXT).text
    assert "参考データにない数値" in text and "作らないでください" in text
    assert "JSONのみ" in text
    for key in ('"findings"', '"impression"', '"follow_up"', '"severity"', '"confidence"', '"location"'):
        assert key in text


@pytest.mark.parametrize("task", TASKS)
def test_its_output_example_is_a_valid_draft_for_the_task(task: str) -> None:
    # The example in the prompt is what the model imitates: it must pass our own parser.
    text = render_prompt(task, **FULL_CONTEXT).text
    example = text.rsplit("\n", 1)[-1]
    assert parse_draft(task, example).follow_up.needed is False


def test_it_formats_the_examinee_and_reference_data_for_japanese_text() -> None:
    text = render_prompt("cxr", **FULL_CONTEXT).text
    assert "年齢: 54歳" in text and "性別: 女性" in text
    assert "- HbA1c: 6.8 %" in text
    assert "- LDLコレステロール: 142" in text
    assert "- BMI: 24.6" in text  # a float prints as written, not 24.600000000000001


def test_it_puts_the_ecg_summary_in_the_reference_section() -> None:
    text = render_prompt("ecg", **FULL_CONTEXT).text
    reference = text.split("【参考データ（自動計測値）】", 1)[1]
    assert reference.lstrip().startswith(FULL_CONTEXT["ecg_summary"])


def test_it_writes_empty_values_as_nashi() -> None:
    text = render_prompt("checkup_summary", **FULL_CONTEXT).text
    assert re.search(r"【各検査の所見（医師確定済み）】\nなし\n", text)


def test_it_raises_a_clear_error_naming_the_missing_variables() -> None:
    context = {k: v for k, v in FULL_CONTEXT.items() if k not in ("age", "reference_data")}
    with pytest.raises(PromptContextError) as caught:
        render_prompt("cxr", **context)
    message = str(caught.value)
    assert "cxr-v1" in message and "age" in message and "reference_data" in message


def test_it_refuses_none_instead_of_printing_it() -> None:
    with pytest.raises(PromptContextError, match="clinical_notes is None"):
        render_prompt("cxr", **{**FULL_CONTEXT, "clinical_notes": None})


def test_it_renders_a_pinned_version_and_refuses_unknown_ones() -> None:
    assert render_prompt("ct", version="ct-v1", **FULL_CONTEXT).version == "ct-v1"
    with pytest.raises(LookupError, match="unknown prompt version"):
        render_prompt("ct", version="ct-v99", **FULL_CONTEXT)
    with pytest.raises(LookupError, match="belongs to task 'cxr'"):
        render_prompt("ct", version="cxr-v1", **FULL_CONTEXT)
    with pytest.raises(ValueError, match="unknown task"):
        render_prompt("mri", **FULL_CONTEXT)


@pytest.mark.parametrize("task", TASKS)
def test_each_template_declares_exactly_the_variables_it_uses(task: str) -> None:
    for version in available_versions(task):
        template = load_template(version)  # loading checks placeholders against the declaration
        assert template.task == task and template.version == version
        assert {"age", "sex"} <= set(template.variables)


def test_it_keeps_released_template_texts_unchanged() -> None:
    for version, expected in RELEASED_SHA256.items():
        template = load_template(version)
        digest = hashlib.sha256(f"{template.system}\n---\n{template.user}".encode()).hexdigest()
        assert digest == expected, f"{version}.toml changed: add a new version instead"
