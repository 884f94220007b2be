"""The structured draft every engine must produce, per task, and the parser that checks it.

Shape (shared by all tasks; the TemplateEngine emits exactly this):
    {"findings": [{"text": str, "location": str | null,
                   "severity": "none" | "mild" | "moderate" | "severe", "confidence": 0..1}],
     "impression": str,
     "follow_up": {"needed": bool, "recommendation": str}}

Models wrap JSON in prose or code fences and get cut off at the token limit; `parse_draft`
finds the object, and when it cannot accept it, says exactly why (empty, where the JSON
breaks, which path violates the schema), so that failures can be counted and shown.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

__all__ = [
    "SCHEMA_VERSION",
    "SEVERITIES",
    "SEVERITY_JA",
    "TASKS",
    "DraftParseError",
    "Finding",
    "FollowUp",
    "ParsedDraft",
    "draft_schema",
    "draft_to_text",
    "parse_draft",
]

SCHEMA_VERSION = "draft-v1"
TASKS = ("cxr", "ecg", "fundus", "ct", "checkup_summary")
SEVERITIES = ("none", "mild", "moderate", "severe")
SEVERITY_JA = {"none": "所見なし", "mild": "軽度", "moderate": "中等度", "severe": "高度"}

Severity = Literal["none", "mild", "moderate", "severe"]

_TASK_TITLES = {
    "cxr": ("胸部X線所見", "部位（例: 右上肺野、左肺門部）"),
    "ecg": ("心電図所見", "誘導（例: II, III, aVF）"),
    "fundus": ("眼底所見", "眼と部位（例: 右眼 黄斑部）"),
    "ct": ("CT所見", "臓器・部位（例: 右肺S6、肝S8）"),
    "checkup_summary": ("健診総合所見", "検査項目・領域（例: 脂質、血圧）"),
}


def draft_schema(task: str) -> dict[str, Any]:
    """The JSON Schema (2020-12) of a draft for `task`; a fresh copy the caller may keep."""
    title, location_hint = _task_info(task)
    finding = {
        "type": "object",
        "additionalProperties": False,
        "required": ["text", "location", "severity", "confidence"],
        "properties": {
            "text": {"type": "string", "minLength": 1, "description": "所見の記述"},
            "location": {"type": ["string", "null"], "description": location_hint},
            "severity": {"enum": list(SEVERITIES)},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
        },
    }
    schema: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"urn:medlmm:schema:{SCHEMA_VERSION}:{task}",
        "title": title,
        "type": "object",
        "additionalProperties": False,
        "required": ["findings", "impression", "follow_up"],
        "properties": {
            "findings": {"type": "array", "items": finding},
            "impression": {"type": "string", "minLength": 1},
            "follow_up": {
                "type": "object",
                "additionalProperties": False,
                "required": ["needed", "recommendation"],
                "properties": {
                    "needed": {"type": "boolean"},
                    "recommendation": {"type": "string"},
                },
                # A follow-up that is needed but says nothing cannot be acted upon.
                "if": {"properties": {"needed": {"const": True}}},
                "then": {"properties": {"recommendation": {"minLength": 1}}},
            },
        },
    }
    return copy.deepcopy(schema)


def _task_info(task: str) -> tuple[str, str]:
    try:
        return _TASK_TITLES[task]
    except KeyError:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}") from None


_VALIDATORS = {task: Draft202012Validator(draft_schema(task)) for task in TASKS}


@dataclass(frozen=True)
class Finding:
    text: str
    location: str | None
    severity: Severity
    confidence: float


@dataclass(frozen=True)
class FollowUp:
    needed: bool
    recommendation: str


@dataclass(frozen=True)
class ParsedDraft:
    task: str
    findings: tuple[Finding, ...]
    impression: str
    follow_up: FollowUp
    data: Mapping[str, Any]  # the validated JSON object as parsed
    # Text the model wrote around the JSON: kept because a hedge there may matter to a reader.
    surrounding_text: str = ""
    schema_version: str = field(default=SCHEMA_VERSION)


ParseErrorKind = Literal["empty", "no_json", "invalid_json", "duplicate_key", "schema"]


class DraftParseError(ValueError):
    """The model's output is not an acceptable draft. `kind` groups failures for metrics;
    `reason` says precisely what is wrong; `path` is the JSON path for schema errors and
    `position` the character offset in the output for JSON syntax errors."""

    def __init__(
        self, reason: str, *, kind: ParseErrorKind, path: str | None = None, position: int | None = None
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind
        self.path = path
        self.position = position


_FENCE = re.compile(r"```[ \t]*(?:json|JSON)?[ \t]*\r?\n?(.*?)(?:```|\Z)", re.DOTALL)
# Where an object that looks like our JSON starts: '{' then a key or '}'.
_OBJECT_START = re.compile(r"\{\s*(?:\"|\})")


def parse_draft(task: str, text: str) -> ParsedDraft:
    """Find, decode and validate the draft JSON in a model's output."""
    validator = _VALIDATORS.get(task)
    if validator is None:
        _task_info(task)  # raises the ValueError with the list of tasks
        raise AssertionError("unreachable")
    if not text or not text.strip():
        raise DraftParseError("empty output: the model produced no text", kind="empty")

    start, fragment_end = _locate_json(text)
    decoder = json.JSONDecoder(object_pairs_hook=_reject_duplicates, parse_constant=_reject_constant)
    try:
        data, consumed = decoder.raw_decode(text, start)
    except _DuplicateKey as exc:
        raise DraftParseError(f"duplicate key {exc.key!r} in a JSON object", kind="duplicate_key") from exc
    except _BadConstant as exc:
        raise DraftParseError(f"invalid JSON: {exc} (not allowed in JSON)", kind="invalid_json") from exc
    except json.JSONDecodeError as exc:
        raise DraftParseError(
            _syntax_reason(text, exc, start, fragment_end), kind="invalid_json", position=exc.pos
        ) from exc
    if not isinstance(data, dict):
        raise DraftParseError(f"expected a JSON object, got {type(data).__name__}", kind="schema", path="$")

    errors = sorted(validator.iter_errors(data), key=lambda e: (list(map(str, e.absolute_path)), e.validator))
    if errors:
        first = errors[0]
        path = _json_path(first)
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise DraftParseError(f"schema: {path}: {_schema_message(first)}{more}", kind="schema", path=path)

    outside = (text[:start] + " " + text[consumed:]).replace("```json", "").replace("```", "")
    surrounding = " ".join(outside.split())
    return ParsedDraft(
        task=task,
        findings=tuple(
            Finding(
                text=f["text"],
                location=f["location"],
                severity=f["severity"],
                confidence=float(f["confidence"]),
            )
            for f in data["findings"]
        ),
        impression=data["impression"],
        follow_up=FollowUp(needed=data["follow_up"]["needed"], recommendation=data["follow_up"]["recommendation"]),
        data=data,
        surrounding_text=surrounding,
    )


def _locate_json(text: str) -> tuple[int, int]:
    """(offset where the JSON object starts, offset where its enclosing fence/text ends)."""
    fence = _FENCE.search(text)
    if fence and "{" in fence.group(1):
        inner_start = fence.start(1)
        match = _OBJECT_START.search(text, inner_start, fence.end(1)) or re.compile(r"\{").search(
            text, inner_start, fence.end(1)
        )
        if match:
            return match.start(), fence.end(1)
    match = _OBJECT_START.search(text)
    if match:
        return match.start(), len(text)
    brace = text.find("{")
    if brace < 0:
        raise DraftParseError("no JSON object found in the output", kind="no_json")
    return brace, len(text)


class _DuplicateKey(ValueError):
    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json keeps the last of two equal keys silently; a draft saying two things is not accepted.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise _DuplicateKey(key)
        result[key] = value
    return result


class _BadConstant(ValueError):
    pass


def _reject_constant(name: str) -> Any:
    # Python's json accepts NaN and Infinity; they are not JSON and not a confidence.
    raise _BadConstant(name)


def _syntax_reason(text: str, exc: json.JSONDecodeError, start: int, fragment_end: int) -> str:
    line = text.count("\n", 0, exc.pos) + 1
    column = exc.pos - (text.rfind("\n", 0, exc.pos) + 1) + 1
    reason = f"invalid JSON at line {line}, column {column} (char {exc.pos}): {exc.msg}"
    if _is_unclosed(text[start:fragment_end], exc.pos - start):
        reason += " — the JSON never closes, the output was probably cut off (token limit?)"
    return reason


def _is_unclosed(text: str, error_pos: int) -> bool:
    """True when the text ends inside a string or with open braces/brackets after the error:
    the signature of generation stopped at max_new_tokens rather than of malformed JSON."""
    if error_pos >= len(text.rstrip()):
        return True
    stack: list[str] = []
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack.pop() != ch:
                return False  # mismatched brackets: malformed, not merely cut short
    return in_string or bool(stack)


def _json_path(error: ValidationError) -> str:
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def _schema_message(error: ValidationError) -> str:
    if error.validator == "additionalProperties":
        return f"unexpected key(s): {error.message.split('(')[-1].rstrip(')')}"
    return error.message


def draft_to_text(parsed: ParsedDraft) -> str:
    """Japanese report text: 所見 (one line per finding), 印象, 推奨."""
    lines = ["所見:"]
    if not parsed.findings:
        lines.append("・特記すべき所見なし")
    for finding in parsed.findings:
        details = []
        if finding.location:
            details.append(f"部位: {finding.location}")
        if finding.severity != "none":
            details.append(f"程度: {SEVERITY_JA[finding.severity]}")
        suffix = f"（{'、'.join(details)}）" if details else ""
        lines.append(f"・{finding.text}{suffix}")
    lines.append(f"印象: {parsed.impression}")
    follow_up = parsed.follow_up
    if follow_up.needed:
        lines.append(f"推奨: {follow_up.recommendation}（要フォローアップ）")
    else:
        lines.append(f"推奨: {follow_up.recommendation or '特記すべき追加検査なし'}")
    return "\n".join(lines)
