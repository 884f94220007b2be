from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from typing import Any

import pytest

from ml.engines import build_engine
from ml.engines.template import TemplateEngine
from ml.protocol import DraftRequest, Engine, EngineError, Failed, Finished, Started, Token
from tests.ml.conftest import collect, request

CHECKUP = {
    "measurements": {"sbp": 142, "dbp": 88, "hba1c": 6.8, "ldl": "163", "bmi": 27.4, "waist": 91.5},
    "reasons": [
        "収縮期血圧 142 mmHg：保健指導判定値以上",
        {"text": "HbA1c 6.8 %：受診勧奨判定値以上", "severity": "moderate", "referral": True},
    ],
    "judgement": "D",
}
ECG = {"measurements": {"hr": 72, "qtc": 452, "pr": 168, "qrs": 96}, "findings": [
    {"label": "QT延長", "location": None, "severity": "mild"},
    {"label": "陰性T波", "location": "V1-V3", "severity": "moderate", "confidence": 0.7},
]}  # fmt: skip
CXR = {"findings": [{"label": "結節影", "location": "右上肺野", "severity": "moderate", "note": "径 12 mm"}]}
CXR_NORMAL: dict[str, Any] = {"findings": []}
FUNDUS = {"findings": [{"label": "視神経乳頭陥凹拡大", "location": "右眼", "severity": "mild"}],
          "measurements": {"iop_r": 15, "iop_l": {"value": 16, "unit": "mmHg", "label": "左眼圧"}}}  # fmt: skip
CT = {"findings": [
    {"label": "肝嚢胞", "location": "肝S8", "severity": "none"},
    {"label": "脂肪肝", "severity": "mild"},
]}  # fmt: skip
CASES: dict[str, dict[str, Any]] = {"checkup_summary": CHECKUP, "ecg": ECG, "cxr": CXR, "fundus": FUNDUS, "ct": CT}

SEVERITIES = {"none", "mild", "moderate", "severe"}


def _draft(task: str, data: dict[str, Any], rid: str = "t1") -> str:
    events = collect(TemplateEngine(), request(rid, task=task, structured_input=data))
    final = events[-1]
    assert isinstance(final, Finished), final
    return final.text


def _texts(draft: dict[str, Any]) -> list[str]:
    return [f["text"] for f in draft["findings"]] + [draft["impression"], draft["follow_up"]["recommendation"]]


def _numbers_in(value: Any) -> set[str]:
    """Every number in the input, as written (JSON numbers and numbers inside strings)."""
    if isinstance(value, dict):
        return set().union(*(_numbers_in(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(_numbers_in(v) for v in value)) if value else set()
    if isinstance(value, bool) or value is None:
        return set()
    return set(_NUMBER.findall(str(value)))


# A number not glued to a preceding letter: "HbA1c" names a test, it does not state a value.
_NUMBER = re.compile(r"(?<![A-Za-z0-9.])\d+(?:\.\d+)?")


def _shape_ok(draft: Any) -> None:
    assert set(draft) == {"findings", "impression", "follow_up"}
    for finding in draft["findings"]:
        assert set(finding) == {"text", "location", "severity", "confidence"}
        assert isinstance(finding["text"], str) and finding["text"]
        assert finding["location"] is None or isinstance(finding["location"], str)
        assert finding["severity"] in SEVERITIES
        assert isinstance(finding["confidence"], float) and 0.0 <= finding["confidence"] <= 1.0
    assert isinstance(draft["impression"], str) and draft["impression"]
    assert set(draft["follow_up"]) == {"needed", "recommendation"}
    assert isinstance(draft["follow_up"]["needed"], bool)
    assert isinstance(draft["follow_up"]["recommendation"], str) and draft["follow_up"]["recommendation"]


@pytest.mark.parametrize("task", sorted(CASES))
def test_it_drafts_the_same_json_every_time_in_the_schema_shape(task: str) -> None:
    first = _draft(task, CASES[task], "a")
    second = _draft(task, CASES[task], "b")
    assert first == second
    _shape_ok(json.loads(first))


@pytest.mark.parametrize("task", sorted(CASES))
def test_it_passes_the_shared_draft_parser(task: str) -> None:
    schemas = pytest.importorskip("ml.schemas")
    parsed = schemas.parse_draft(task, _draft(task, CASES[task]))
    assert parsed.impression


@pytest.mark.parametrize("task", sorted(CASES))
def test_it_writes_only_numbers_that_appear_in_its_input(task: str) -> None:
    draft = json.loads(_draft(task, CASES[task]))
    allowed = _numbers_in(CASES[task])
    written = {n for text in _texts(draft) for n in _NUMBER.findall(text)}
    assert written <= allowed, f"numbers not in the input: {written - allowed}"
    # and, where the shared checker is present, it finds nothing to flag either
    grounding = pytest.importorskip("ml.grounding")
    sources = {k: (v["value"] if isinstance(v, dict) else v) for k, v in CASES[task].get("measurements", {}).items()}
    for i, reason in enumerate(CASES[task].get("reasons", [])):
        text = reason["text"] if isinstance(reason, dict) else reason
        sources.update({f"reason{i}_{j}": Decimal(n) for j, n in enumerate(_NUMBER.findall(text))})
    for finding in CASES[task].get("findings", []):
        sources.update({f"note_{j}": Decimal(n) for j, n in enumerate(_NUMBER.findall(finding.get("note", "")))})
    for text in _texts(draft):
        assert grounding.check_grounding(text, sources) == [], text


def test_it_writes_the_measured_values_and_reasons_in_japanese() -> None:
    draft = json.loads(_draft("checkup_summary", CHECKUP))
    assert "収縮期血圧 142 mmHg" in draft["impression"]
    assert "HbA1c 6.8 %" in draft["impression"]
    assert "総合判定はDです" in draft["impression"]
    assert draft["follow_up"]["needed"] is True
    assert any(f["severity"] == "moderate" and "受診勧奨" in f["text"] for f in draft["findings"])


def test_it_says_so_when_there_is_nothing_abnormal() -> None:
    draft = json.loads(_draft("cxr", CXR_NORMAL))
    assert draft["findings"] == []
    assert "明らかな異常所見を認めません" in draft["impression"]
    assert draft["follow_up"]["needed"] is False


def test_it_keeps_location_and_severity_of_each_finding() -> None:
    draft = json.loads(_draft("cxr", CXR))
    (finding,) = draft["findings"]
    assert finding["location"] == "右上肺野"
    assert finding["severity"] == "moderate"
    assert finding["text"] == "右上肺野に中等度の結節影を認めます（径 12 mm）。"
    assert draft["follow_up"]["needed"] is True


def test_it_streams_small_chunks_that_add_up_to_the_text() -> None:
    events = collect(TemplateEngine(chunk_chars=4), request("s", task="ecg", structured_input=ECG))
    assert isinstance(events[0], Started)
    tokens = [e for e in events if isinstance(e, Token)]
    final = events[-1]
    assert isinstance(final, Finished) and final.finish_reason == "stop"
    assert len(tokens) > 10 and all(1 <= len(t.text) <= 4 for t in tokens)
    assert "".join(t.text for t in tokens) == final.text
    assert [t.completion_tokens for t in tokens] == list(range(1, len(tokens) + 1))
    assert final.completion_tokens == len(tokens)


def test_it_stops_when_cancelled() -> None:
    engine = TemplateEngine(chunk_chars=2, delay=0.001)

    async def main() -> list[Any]:
        seen = []
        async for event in engine.submit(request("c", task="checkup_summary", structured_input=CHECKUP)):
            seen.append(event)
            if isinstance(event, Token) and event.completion_tokens == 3:
                assert await engine.cancel("c") is True
        assert await engine.cancel("c") is False  # finished: unknown now
        return seen

    events = asyncio.run(main())
    final = events[-1]
    assert isinstance(final, Finished) and final.finish_reason == "cancelled"
    assert final.completion_tokens == 3
    assert final.text == "".join(e.text for e in events if isinstance(e, Token))


def test_it_fails_clearly_for_a_task_it_has_no_wording_for() -> None:
    events = collect(TemplateEngine(), request("u", task="mri", structured_input={}))
    assert isinstance(events[-1], Failed) and "mri" in events[-1].reason


def test_it_calls_itself_a_template_and_never_a_model() -> None:
    engine = build_engine("template", "template-ja-v1")
    assert isinstance(engine, Engine)
    assert engine.name == "template" and engine.model == "template-ja-v1"
    health = asyncio.run(engine.health())
    assert health.ok and health.engine == "template" and "no model" in health.detail


def test_it_refuses_unknown_templates_and_engine_kinds() -> None:
    with pytest.raises(EngineError, match="unknown template"):
        build_engine("template", "gpt-ja")
    with pytest.raises(EngineError, match="unknown engine kind"):
        build_engine("tensorrt", "/models/x")
    with pytest.raises(EngineError, match="bad options"):
        build_engine("template", "template-ja-v1", temperature=0.3)


def test_it_builds_the_protocol_request_it_is_given() -> None:
    # The request is the broker-free, serialisable one Django builds; nothing else is needed.
    req = DraftRequest(request_id="x", task="ct", prompt="", prompt_version="v1", structured_input=CT)
    final = collect(TemplateEngine(), req)[-1]
    assert isinstance(final, Finished)
    assert "肝S8に肝嚢胞は認めません。" in final.text
