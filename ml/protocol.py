"""The one protocol between Django (`inference/`) and the model engines (design rule 5).

Django only ever builds a `DraftRequest`, calls `Engine.submit()` and consumes the events.
The same interface is served in-process (tests, CPU, a GPU worker) and by a remote server
(vLLM's OpenAI-compatible API), so nothing above this line knows which one it talks to.
This module must stay free of Django and of heavy imports (torch, transformers).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable


@dataclass(frozen=True)
class ImagePart:
    """One image given to the model, already preprocessed to an 8-bit PNG."""

    png: bytes
    description: str = ""  # e.g. "胸部X線 PA" – shown in the prompt and kept as provenance


@dataclass(frozen=True)
class DraftRequest:
    """Everything an engine needs to draft one report. Serialisable (the broker carries only ids;
    the worker rebuilds this from the job row)."""

    request_id: str
    task: str  # "cxr" | "ecg" | "fundus" | "ct" | "checkup_summary"
    prompt: str  # the rendered user prompt (Japanese), without image placeholders
    prompt_version: str
    images: tuple[ImagePart, ...] = ()
    system: str = ""
    max_new_tokens: int = 256
    temperature: float = 0.0
    json_schema: Mapping[str, Any] | None = None
    # Structured inputs (measurements, findings) for engines that draft from data, not pixels.
    structured_input: Mapping[str, Any] = field(default_factory=dict)
    # Benchmarks force a fixed output length; clinical requests stop at EOS.
    ignore_eos: bool = False


@dataclass(frozen=True)
class Started:
    request_id: str
    prompt_tokens: int
    kind: Literal["started"] = "started"


@dataclass(frozen=True)
class Token:
    request_id: str
    text: str  # the new text since the previous Token (may be several tokens' worth)
    completion_tokens: int  # running count
    kind: Literal["token"] = "token"


@dataclass(frozen=True)
class Finished:
    request_id: str
    text: str  # the whole generated text
    prompt_tokens: int
    completion_tokens: int
    finish_reason: Literal["stop", "length", "cancelled"]
    kind: Literal["finished"] = "finished"


@dataclass(frozen=True)
class Failed:
    request_id: str
    reason: str
    kind: Literal["failed"] = "failed"


EngineEvent = Started | Token | Finished | Failed


@dataclass(frozen=True)
class EngineHealth:
    ok: bool
    engine: str
    model: str
    detail: str = ""


class EngineError(Exception):
    """Raised when an engine cannot be built or loaded (bad path, wrong checksum, OOM)."""


@runtime_checkable
class Engine(Protocol):
    """What every engine offers. `submit` may be called concurrently from many tasks;
    engines that can batch do so across those calls."""

    name: str  # the engine kind: "template", "transformers", "openai"
    model: str  # what it serves (path, URL or template id)

    def submit(self, request: DraftRequest) -> AsyncIterator[EngineEvent]:
        """Yield Started, then Token events, then exactly one Finished or Failed."""
        ...

    async def cancel(self, request_id: str) -> bool:
        """Stop generating for request_id; its stream ends with Finished(finish_reason="cancelled").
        Returns False if the request is unknown or already finished."""
        ...

    async def health(self) -> EngineHealth: ...

    async def aclose(self) -> None: ...
