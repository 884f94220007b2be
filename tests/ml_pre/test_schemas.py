"""The draft schema and the parser that checks model output against it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ml.schemas import TASKS, DraftParseError, draft_schema, draft_to_text, parse_draft


def draft(**changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "findings": [
            {"text": "右上肺野に結節影を認める", "location": "右上肺野", "severity": "mild", "confidence": 0.72},
            {"text": "心陰影の拡大なし", "location": None, "severity": "none", "confidence": 0.9},
        ],
        "impression": "右上肺野結節影、精査が望ましい",
        "follow_up": {"needed": True, "recommendation": "胸部CTによる精密検査"},
    }
    data.update(changes)
    return data


def as_text(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False)


def reject(text: str, task: str = "cxr") -> DraftParseError:
    with pytest.raises(DraftParseError) as caught:
        parse_draft(task, text)
    return caught.value


@pytest.mark.parametrize("task", TASKS)
def test_it_accepts_a_bare_json_draft_for_every_task(task: str) -> None:
    parsed = parse_draft(task, as_text(draft()))
    assert parsed.task == task
    assert parsed.findings[0].severity == "mild" and parsed.findings[0].confidence == 0.72
    assert parsed.findings[1].location is None
    assert parsed.follow_up.needed is True and parsed.follow_up.recommendation == "胸部CTによる精密検査"
    assert parsed.surrounding_text == ""


def test_it_finds_the_json_inside_a_fence_with_prose_around_it() -> None:
    text = f"以下が所見です。\n```json\n{json.dumps(draft(), ensure_ascii=False, indent=2)}\n```\n以上です。"
    parsed = parse_draft("cxr", text)
    assert parsed.impression == "右上肺野結節影、精査が望ましい"
    assert parsed.surrounding_text == "以下が所見です。 以上です。"  # kept for the reader


def test_it_finds_the_json_after_leading_prose_without_a_fence() -> None:
    parsed = parse_draft("ecg", "承知しました。" + as_text(draft()) + " 補足: なし")
    assert len(parsed.findings) == 2
    assert "承知しました" in parsed.surrounding_text


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_it_rejects_empty_output(text: str) -> None:
    error = reject(text)
    assert error.kind == "empty" and "empty output" in error.reason


def test_it_rejects_output_without_any_json_object() -> None:
    error = reject("所見: 異常なし")
    assert error.kind == "no_json"


def test_it_gives_the_line_and_column_of_invalid_json() -> None:
    text = 'Draft:\n{"findings": [],\n "impression": "異常なし" "follow_up": {}}'
    error = reject(text)
    assert error.kind == "invalid_json"
    assert "line 3, column 23" in error.reason and "Expecting ',' delimiter" in error.reason
    assert error.position == text.index('"follow_up"')


def test_it_says_when_the_output_was_cut_off() -> None:
    text = as_text(draft())[:-30]  # generation stopped at max_new_tokens
    error = reject(text)
    assert error.kind == "invalid_json" and "cut off" in error.reason


def test_it_does_not_blame_truncation_for_malformed_json() -> None:
    error = reject('{"findings": [}')
    assert error.kind == "invalid_json" and "cut off" not in error.reason


@pytest.mark.parametrize(
    ("data", "path", "fragment"),
    [
        (
            draft(findings=[{**draft()["findings"][0], "severity": "high"}]),
            "$.findings[0].severity",
            "'high' is not one of",
        ),
        (draft(findings=[{**draft()["findings"][0], "confidence": 1.5}]), "$.findings[0].confidence", "maximum of 1"),
        (draft(findings=[{**draft()["findings"][0], "confidence": True}]), "$.findings[0].confidence", "not of type"),
        (draft(findings=[{"text": "所見", "severity": "none", "confidence": 0.5}]), "$.findings[0]", "'location'"),
        (draft(findings=[{**draft()["findings"][0], "text": ""}]), "$.findings[0].text", "non-empty"),
        (draft(follow_up={"needed": True, "recommendation": ""}), "$.follow_up.recommendation", "non-empty"),
        (draft(follow_up={"needed": "yes", "recommendation": "CT"}), "$.follow_up.needed", "not of type 'boolean'"),
        (draft(impression=None), "$.impression", "not of type 'string'"),
        ({**draft(), "diagnosis": "肺癌"}, "$", "unexpected key(s): 'diagnosis'"),
        ({k: v for k, v in draft().items() if k != "impression"}, "$", "'impression' is a required property"),
    ],
)
def test_it_names_the_path_and_rule_a_draft_breaks(data: dict[str, Any], path: str, fragment: str) -> None:
    error = reject(as_text(data))
    assert error.kind == "schema" and error.path == path
    assert fragment in error.reason and error.reason.startswith(f"schema: {path}:")


def test_it_counts_further_schema_errors() -> None:
    bad = draft(findings=[{"text": "", "location": 3, "severity": "x", "confidence": 2}])
    assert "more)" in reject(as_text(bad)).reason


def test_it_rejects_a_top_level_array() -> None:
    # The fence holds an array; the only object inside is a finding, which is not a draft.
    error = reject("```json\n[" + as_text(draft()["findings"][0]) + "]\n```")
    assert error.kind == "schema"


def test_it_rejects_duplicate_keys_instead_of_keeping_the_last() -> None:
    text = as_text(draft()).replace('"impression"', '"impression": "異常なし", "impression"', 1)
    error = reject(text)
    assert error.kind == "duplicate_key" and "'impression'" in error.reason


def test_it_rejects_nan_which_python_json_would_accept() -> None:
    text = as_text(draft()).replace("0.72", "NaN")
    assert reject(text).kind == "invalid_json"


def test_it_refuses_an_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        parse_draft("mri", as_text(draft()))


@pytest.mark.parametrize("task", TASKS)
def test_its_schemas_are_valid_json_schema_titled_per_task(task: str) -> None:
    schema = draft_schema(task)
    Draft202012Validator.check_schema(schema)
    assert schema["title"] and task in schema["$id"]
    schema["properties"].clear()  # the caller's copy: the parser's schema is unaffected
    assert parse_draft(task, as_text(draft())).impression


def test_it_renders_japanese_report_text() -> None:
    text = draft_to_text(parse_draft("cxr", as_text(draft())))
    assert text == (
        "所見:\n"
        "・右上肺野に結節影を認める（部位: 右上肺野、程度: 軽度）\n"
        "・心陰影の拡大なし\n"
        "印象: 右上肺野結節影、精査が望ましい\n"
        "推奨: 胸部CTによる精密検査（要フォローアップ）"
    )


def test_it_renders_a_normal_draft_without_inventing_a_recommendation() -> None:
    normal = draft(findings=[], impression="異常なし", follow_up={"needed": False, "recommendation": ""})
    text = draft_to_text(parse_draft("fundus", as_text(normal)))
    assert text == "所見:\n・特記すべき所見なし\n印象: 異常なし\n推奨: 特記すべき追加検査なし"
