"""The template drafter: structured findings and measurements → Japanese sentences, no model at all.

It is a registered backend like any other (engine "template", model id `template-ja-v1`) so that
the embedded demo produces readable drafts without a GPU. It is never presented as an LMM: it only
restates its input. Every number it writes is copied verbatim from `request.structured_input`
(grounding checks compare the numbers in a draft with the source), and it writes no number of its
own (no counts, no reference ranges).

`structured_input` (all keys optional):

    {
      "findings": [                       # what a reader or device found
        {"label": "結節影", "location": "右上肺野", "severity": "mild",   # none|mild|moderate|severe
         "confidence": 0.8, "note": "径 8 mm"}                            # confidence/note optional
      ],
      "measurements": {"sbp": 142, "hba1c": 6.8, "qtc": 452, "hr": 72,   # number, numeric string,
                       "iop_r": {"value": 15, "unit": "mmHg", "label": "右眼圧"}},  # or a dict
      "reasons": [                        # judgement reasons from the rule engine
        "収縮期血圧 142 mmHg：受診勧奨判定値以上",
        {"text": "HbA1c 6.8 %：受診勧奨判定値以上", "severity": "moderate", "referral": true}
      ],
      "judgement": "D",                   # overall category, written verbatim
      "follow_up": {"needed": true, "recommendation": "..."}   # overrides the derived follow-up
    }

Output: one JSON object, `{"findings": [{"text", "location", "severity", "confidence"}],
"impression": str, "follow_up": {"needed": bool, "recommendation": str}}`, streamed as Token
events of a few characters. Token counts are counts of those chunks (there is no tokenizer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any

from ml.protocol import DraftRequest, EngineError, EngineEvent, EngineHealth, Failed, Finished, Started, Token

TEMPLATE_IDS = ("template-ja-v1",)
SEVERITIES = ("none", "mild", "moderate", "severe")
_SEVERITY_JA = {"none": "", "mild": "軽度", "moderate": "中等度", "severe": "高度"}

# task → (what was examined, recommendation when follow-up is needed)
_TASKS: dict[str, tuple[str, str]] = {
    "cxr": ("胸部X線写真", "胸部CTによる精密検査をお勧めします。"),
    "ecg": ("心電図", "循環器内科での精密検査をお勧めします。"),
    "fundus": ("眼底写真", "眼科での精密検査をお勧めします。"),
    "ct": ("CT", "専門医による精密検査をお勧めします。"),
    "checkup_summary": ("今回の健診", "医療機関を受診してください。"),
}
_NO_FOLLOW_UP = "引き続き年に一度の健診を受けてください。"
_WATCH = "経過観察とし、次回の健診で確認してください。"

# key → (label, unit). Labels and units hold no digits of their own where avoidable, so that
# every number in a draft is a measured value.
MEASUREMENT_LABELS: dict[str, tuple[str, str]] = {
    "sbp": ("収縮期血圧", "mmHg"),
    "dbp": ("拡張期血圧", "mmHg"),
    "hr": ("心拍数", "/分"),
    "pulse": ("脈拍", "/分"),
    "qtc": ("QTc", "ms"),
    "qt": ("QT間隔", "ms"),
    "pr": ("PR間隔", "ms"),
    "qrs": ("QRS幅", "ms"),
    "axis": ("電気軸", "°"),
    "hba1c": ("HbA1c", "%"),
    "fpg": ("空腹時血糖", "mg/dL"),
    "rpg": ("随時血糖", "mg/dL"),
    "ldl": ("LDLコレステロール", "mg/dL"),
    "hdl": ("HDLコレステロール", "mg/dL"),
    "tg": ("中性脂肪", "mg/dL"),
    "ast": ("AST", "U/L"),
    "alt": ("ALT", "U/L"),
    "ggt": ("γ-GT", "U/L"),
    "ua": ("尿酸", "mg/dL"),
    "cre": ("クレアチニン", "mg/dL"),
    "egfr": ("eGFR", ""),
    "hb": ("血色素量", "g/dL"),
    "bmi": ("BMI", ""),
    "waist": ("腹囲", "cm"),
    "height": ("身長", "cm"),
    "weight": ("体重", "kg"),
    "iop_r": ("右眼圧", "mmHg"),
    "iop_l": ("左眼圧", "mmHg"),
    "cdr_r": ("右C/D比", ""),
    "cdr_l": ("左C/D比", ""),
    "ctr": ("心胸郭比", "%"),
}


def _verbatim(value: Any) -> str | None:
    """A number as the source wrote it (str kept as is; floats in their shortest exact form)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return repr(value) if isinstance(value, float) else str(value)
    text = str(value).strip()
    return text or None


def _measurement(key: str, raw: Any) -> str | None:
    label, unit = MEASUREMENT_LABELS.get(key.lower(), (key, ""))
    value = raw
    if isinstance(raw, Mapping):
        value = raw.get("value")
        label = str(raw.get("label") or label)
        unit = str(raw.get("unit") or unit)
    shown = _verbatim(value)
    if shown is None:
        return None
    return f"{label} {shown} {unit}".rstrip()


def _severity(value: Any, default: str = "mild") -> str:
    return value if value in SEVERITIES else default


def _confidence(value: Any) -> float:
    # A template restates its input: 1.0 marks "taken from structured data", not a model estimate.
    if isinstance(value, int | float) and not isinstance(value, bool) and 0.0 <= value <= 1.0:
        return float(value)
    return 1.0


def _finding_sentence(item: Mapping[str, Any]) -> str:
    label = str(item.get("label") or item.get("text") or item.get("name") or "所見")
    location = item.get("location")
    severity = _severity(item.get("severity"))
    where = f"{location}に" if location else ""
    note = f"（{item['note']}）" if item.get("note") else ""
    if severity == "none":
        return f"{where}{label}は認めません{note}。"
    return f"{where}{_SEVERITY_JA[severity]}の{label}を認めます{note}。"


def draft(task: str, data: Mapping[str, Any]) -> dict[str, Any]:
    """The draft as a dict in the schema's shape. Deterministic: same input, same output."""
    if task not in _TASKS:
        raise ValueError(f"the template has no wording for task {task!r}")
    subject, referral_text = _TASKS[task]

    findings: list[dict[str, Any]] = []
    positive_labels: list[str] = []
    for item in data.get("findings") or []:
        if not isinstance(item, Mapping):
            item = {"label": str(item)}
        severity = _severity(item.get("severity"))
        findings.append(
            {
                "text": _finding_sentence(item),
                "location": str(item["location"]) if item.get("location") else None,
                "severity": severity,
                "confidence": _confidence(item.get("confidence")),
            }
        )
        if severity != "none":
            positive_labels.append(str(item.get("label") or item.get("text") or item.get("name") or "所見"))

    referral = False
    reason_texts: list[str] = []
    for reason in data.get("reasons") or []:
        if isinstance(reason, Mapping):
            text = str(reason.get("text") or reason.get("item") or "")
            referral = referral or bool(reason.get("referral"))
            severity = _severity(reason.get("severity"), "moderate" if reason.get("referral") else "mild")
        else:
            text, severity = str(reason), "mild"
        if not text:
            continue
        reason_texts.append(text)
        findings.append({"text": f"{text}。", "location": None, "severity": severity, "confidence": 1.0})

    measured = [m for key, raw in (data.get("measurements") or {}).items() if (m := _measurement(str(key), raw))]

    sentences: list[str] = []
    if positive_labels:
        sentences.append(f"{subject}で{'、'.join(positive_labels)}を認めます。")
    elif not reason_texts:
        sentences.append(f"{subject}で明らかな異常所見を認めません。")
    if measured:
        sentences.append(f"測定値は{'、'.join(measured)}です。")
    if reason_texts:
        sentences.append(f"判定理由：{'／'.join(reason_texts)}。")
    if data.get("judgement"):
        sentences.append(f"総合判定は{data['judgement']}です。")

    severities = {f["severity"] for f in findings}
    needed = referral or bool(severities & {"moderate", "severe"})
    if needed:
        recommendation = referral_text
    elif severities & {"mild"}:
        recommendation = _WATCH
    else:
        recommendation = _NO_FOLLOW_UP
    override = data.get("follow_up")
    if isinstance(override, Mapping):
        needed = bool(override.get("needed", needed))
        recommendation = str(override.get("recommendation") or recommendation)

    return {
        "findings": findings,
        "impression": "".join(sentences),
        "follow_up": {"needed": needed, "recommendation": recommendation},
    }


class TemplateEngine:
    """Deterministic drafter served through the engine protocol (see the module docstring)."""

    name = "template"

    def __init__(self, model: str = "template-ja-v1", chunk_chars: int = 4, delay: float = 0.0) -> None:
        if model not in TEMPLATE_IDS:
            raise EngineError(f"unknown template {model!r}; known: {', '.join(TEMPLATE_IDS)}")
        if chunk_chars < 1:
            raise EngineError("chunk_chars must be at least 1")
        self.model = model
        self.chunk_chars = chunk_chars
        self.delay = delay  # seconds between chunks: lets a demo show streaming
        self._running: dict[str, bool] = {}  # request_id → cancelled?

    async def submit(self, request: DraftRequest) -> AsyncIterator[EngineEvent]:
        rid = request.request_id
        try:
            text = json.dumps(draft(request.task, request.structured_input), ensure_ascii=False)
        except Exception as exc:
            yield Failed(rid, f"template cannot draft this request: {exc}")
            return
        if rid in self._running:
            yield Failed(rid, f"request {rid!r} is already running")
            return
        self._running[rid] = False
        try:
            yield Started(rid, prompt_tokens=0)
            sent = 0
            count = 0
            while sent < len(text):
                if self._running[rid]:
                    yield Finished(rid, text[:sent], 0, count, "cancelled")
                    return
                piece = text[sent : sent + self.chunk_chars]
                sent += len(piece)
                count += 1
                yield Token(rid, piece, count)
                await asyncio.sleep(self.delay)
            yield Finished(rid, text, 0, count, "stop")
        finally:
            self._running.pop(rid, None)

    async def cancel(self, request_id: str) -> bool:
        if request_id not in self._running:
            return False
        self._running[request_id] = True
        return True

    async def health(self) -> EngineHealth:
        return EngineHealth(ok=True, engine=self.name, model=self.model, detail="deterministic template, no model")

    async def aclose(self) -> None:
        self._running.clear()
