"""The production path to a model server: a vLLM (or any OpenAI-compatible) chat-completions API.

Streams `/v1/chat/completions` over SSE with httpx. Images go as `data:image/png;base64,...`
`image_url` parts. When the request carries a JSON schema it is sent as `response_format`
(vLLM's structured output); servers that ignore it are fine (the draft is validated downstream),
and servers that reject one of our optional fields (`response_format`, `stream_options`,
`ignore_eos`) get the request again without it.

`Started.prompt_tokens` is what the server reports in its first chunk (vLLM does with
`continuous_usage_stats`); servers that only report usage at the end give 0 there and the true
counts in `Finished`.
"""

from __future__ import annotations

import asyncio
import base64
import json
import weakref
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from ml.protocol import DraftRequest, EngineEvent, EngineHealth, Failed, Finished, Started, Token

_OPTIONAL_FIELDS = ("response_format", "stream_options", "ignore_eos")


@dataclass
class _Stream:
    cancelled: bool = False
    response: httpx.Response | None = None
    rejected: set[str] = field(default_factory=set)


def build_messages(request: DraftRequest) -> list[dict[str, Any]]:
    """OpenAI chat messages: the system prompt, then the images (each after its description), then the prompt."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    content: list[dict[str, Any]] = []
    for image in request.images:
        if image.description:
            content.append({"type": "text", "text": f"{image.description}\n"})
        url = "data:image/png;base64," + base64.b64encode(image.png).decode("ascii")
        content.append({"type": "image_url", "image_url": {"url": url}})
    content.append({"type": "text", "text": request.prompt})
    messages.append({"role": "user", "content": content})
    return messages


class OpenAIServerEngine:
    """Client for one model on an OpenAI-compatible server (vLLM in production).

    `base_url` is the server root or its `/v1` prefix. `timeout` bounds each wait on the server
    (connect, or the gap between two streamed chunks), not the whole draft.
    """

    name = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | None = None,
        timeout: float = 120.0,
        connect_timeout: float = 10.0,
        extra_body: Mapping[str, Any] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        root = base_url.rstrip("/")
        self.base_url = root if root.endswith("/v1") else f"{root}/v1"
        self.model = model
        self.timeout = timeout
        self._timeout = httpx.Timeout(timeout, connect=connect_timeout)
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._extra_body = dict(extra_body or {})
        self._transport = transport
        self._rejected: set[str] = set()  # optional fields this server refused before
        self._streams: dict[str, _Stream] = {}
        # httpx clients belong to the event loop that first used them; sync callers bridge with
        # asyncio.run (a new loop each time), so keep one client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None or client.is_closed:
            client = httpx.AsyncClient(timeout=self._timeout, headers=self._headers, transport=self._transport)
            self._clients[loop] = client
        return client

    def _body(self, request: DraftRequest) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": build_messages(request),
            "stream": True,
            "max_tokens": request.max_new_tokens,
            "temperature": request.temperature,
            "stream_options": {"include_usage": True, "continuous_usage_stats": True},
        }
        if request.json_schema is not None:
            body["response_format"] = {
                "type": "json_schema",
                "json_schema": {"name": f"{request.task}_draft", "schema": dict(request.json_schema)},
            }
        if request.ignore_eos:
            body["ignore_eos"] = True  # vLLM sampling parameter: benchmarks force the length
        body.update(self._extra_body)
        for name in self._rejected:
            body.pop(name, None)
        return body

    async def submit(self, request: DraftRequest) -> AsyncIterator[EngineEvent]:
        rid = request.request_id
        if rid in self._streams:
            yield Failed(rid, f"request {rid!r} is already running")
            return
        stream = _Stream()
        self._streams[rid] = stream
        try:
            async for event in self._run(request, stream):
                yield event
        finally:
            self._streams.pop(rid, None)
            if stream.response is not None:
                await stream.response.aclose()

    async def _run(self, request: DraftRequest, stream: _Stream) -> AsyncIterator[EngineEvent]:
        rid = request.request_id
        url = f"{self.base_url}/chat/completions"
        body = self._body(request)
        parts: list[str] = []
        count = 0
        usage: Mapping[str, Any] = {}
        finish: str | None = None
        started = False
        try:
            for _attempt in range(2):
                request_obj = self._client().build_request("POST", url, json=body)
                stream.response = await self._client().send(request_obj, stream=True)
                response = stream.response
                if response.status_code < 400:
                    break
                detail = (await response.aread()).decode("utf-8", "replace")[:500]
                await response.aclose()
                refused = {name for name in _OPTIONAL_FIELDS if name in body and name in detail}
                if response.status_code in (400, 422) and refused and _attempt == 0:
                    stream.rejected = refused
                    body = {k: v for k, v in body.items() if k not in refused}
                    continue
                yield Failed(rid, f"HTTP {response.status_code} from {url}: {detail}")
                return
            else:  # pragma: no cover - the loop always breaks or returns
                return
            self._rejected |= stream.rejected  # the retry worked: stop sending what this server refuses
            async for line in response.aiter_lines():
                if stream.cancelled:
                    break
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                try:
                    chunk = json.loads(data)
                except json.JSONDecodeError:
                    yield Failed(rid, f"unreadable stream chunk from {url}: {data[:200]}")
                    return
                if chunk.get("error"):
                    yield Failed(rid, f"server error: {chunk['error']}")
                    return
                if chunk.get("usage"):
                    usage = chunk["usage"]
                if not started:
                    started = True
                    yield Started(rid, int(usage.get("prompt_tokens") or 0))
                for choice in chunk.get("choices") or []:
                    content = (choice.get("delta") or {}).get("content")
                    if content:
                        count += 1
                        parts.append(content)
                        yield Token(rid, content, int(usage.get("completion_tokens") or count))
                    if choice.get("finish_reason"):
                        finish = choice["finish_reason"]
        except httpx.TimeoutException as exc:
            if not stream.cancelled:
                yield Failed(rid, f"timed out ({type(exc).__name__}, limit {self.timeout:g} s) on {url}")
                return
        except (httpx.HTTPError, OSError, RuntimeError) as exc:
            if not stream.cancelled:  # closing the stream to cancel makes the read fail: that is fine
                yield Failed(rid, f"{type(exc).__name__} talking to {url}: {exc}")
                return
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_tokens = int(usage.get("completion_tokens") or count)
        if not started:
            yield Started(rid, prompt_tokens)
        if stream.cancelled:
            yield Finished(rid, "".join(parts), prompt_tokens, completion_tokens, "cancelled")
        elif finish is None:
            yield Failed(rid, f"the stream from {url} ended without a finish reason")
        else:
            reason: Literal["stop", "length"] = "length" if finish == "length" else "stop"
            yield Finished(rid, "".join(parts), prompt_tokens, completion_tokens, reason)

    async def cancel(self, request_id: str) -> bool:
        stream = self._streams.get(request_id)
        if stream is None or stream.cancelled:
            return False
        stream.cancelled = True
        if stream.response is not None:
            # Closing the connection is how an OpenAI-compatible server learns to abort (vLLM frees the slot).
            await stream.response.aclose()
        return True

    async def health(self) -> EngineHealth:
        url = f"{self.base_url}/models"
        try:
            response = await self._client().get(url)
            response.raise_for_status()
            served = [m.get("id") for m in response.json().get("data", [])]
        except (httpx.HTTPError, ValueError) as exc:
            return EngineHealth(False, self.name, self.model, f"{url}: {type(exc).__name__}: {exc}")
        ok = self.model in served
        detail = f"{self.base_url} serves {', '.join(map(str, served)) or 'nothing'}"
        return EngineHealth(ok, self.name, self.model, detail)

    async def aclose(self) -> None:
        for stream in list(self._streams.values()):
            stream.cancelled = True
        loop = asyncio.get_running_loop()
        client = self._clients.pop(loop, None)
        if client is not None:
            await client.aclose()
