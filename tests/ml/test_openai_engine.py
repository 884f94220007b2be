"""The OpenAI-compatible client against a real server on loopback (`transformers serve`, tiny LLaVA)."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest

from ml.engines import build_engine
from ml.engines.openai_engine import OpenAIServerEngine
from ml.protocol import Engine, EngineEvent, Failed, Finished, Started, Token
from tests.ml.conftest import collect, collect_async, image, request

SCHEMA = {
    "type": "object",
    "properties": {"impression": {"type": "string"}},
    "required": ["impression"],
}


@pytest.fixture(scope="module")
def engine(served_llava: str, tiny_llava: Path) -> OpenAIServerEngine:
    # transformers serve names a model served by path with that path
    return OpenAIServerEngine(served_llava, model=str(tiny_llava), timeout=60)


def _final(events: list[EngineEvent]) -> Finished:
    final = events[-1]
    assert isinstance(final, Finished), final
    return final


def test_it_streams_several_tokens_from_a_real_server(engine: OpenAIServerEngine) -> None:
    events = collect(engine, request("s1", max_new_tokens=16, images=(image((200, 30, 30)),)))
    assert isinstance(events[0], Started)
    tokens = [e for e in events if isinstance(e, Token)]
    final = _final(events)
    assert len(tokens) >= 5
    assert "".join(t.text for t in tokens) == final.text
    assert final.finish_reason in ("stop", "length")
    assert final.prompt_tokens > 16  # the image alone is 16 placeholder tokens
    assert final.completion_tokens == len(tokens) <= 16


def test_it_sends_the_image_and_the_image_changes_the_output(engine: OpenAIServerEngine) -> None:
    red = _final(collect(engine, request("red", max_new_tokens=12, images=(image((230, 20, 20)),))))
    blue = _final(collect(engine, request("blue", max_new_tokens=12, images=(image((20, 20, 230)),))))
    red_again = _final(collect(engine, request("red2", max_new_tokens=12, images=(image((230, 20, 20)),))))
    assert red.text != blue.text
    assert red.text == red_again.text  # greedy and seed-fixed: the difference is the image's


def test_it_asks_for_structured_output_and_tolerates_a_server_that_ignores_it(engine: OpenAIServerEngine) -> None:
    body = engine._body(request("js", json_schema=SCHEMA))
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["schema"] == SCHEMA
    final = _final(collect(engine, request("js", max_new_tokens=8, json_schema=SCHEMA)))
    assert final.completion_tokens > 0


def test_it_retries_without_optional_fields_the_server_rejects(served_llava: str, tiny_llava: Path) -> None:
    # transformers serve refuses vLLM's `ignore_eos` with a 422; the draft still comes.
    engine = OpenAIServerEngine(served_llava, model=str(tiny_llava))
    final = _final(collect(engine, request("ie", max_new_tokens=6, ignore_eos=True)))
    assert final.completion_tokens > 0
    assert "ignore_eos" not in engine._body(request("ie2", ignore_eos=True))  # remembered


def test_it_cancels_by_closing_the_stream(engine: OpenAIServerEngine) -> None:
    async def main() -> tuple[list[EngineEvent], bool]:
        events: list[EngineEvent] = []
        cancelled = False
        async for event in engine.submit(request("cx", max_new_tokens=400)):
            events.append(event)
            if isinstance(event, Token) and not cancelled:
                cancelled = await engine.cancel("cx")
        return events, cancelled

    events, cancelled = asyncio.run(main())
    final = _final(events)
    assert cancelled and final.finish_reason == "cancelled"
    assert final.completion_tokens < 400
    assert asyncio.run(engine.cancel("cx")) is False


def test_it_runs_concurrent_requests(engine: OpenAIServerEngine) -> None:
    async def main() -> list[list[EngineEvent]]:
        reqs = [request(f"cc{i}", f"心電図 {i}", max_new_tokens=6) for i in range(3)]
        return list(await asyncio.gather(*(collect_async(engine, r) for r in reqs)))

    for events in asyncio.run(main()):
        assert _final(events).completion_tokens > 0


def test_it_fails_clearly_on_an_http_error(served_llava: str) -> None:
    engine = build_engine("openai", served_llava, model="some-other-model")
    assert isinstance(engine, Engine)
    final = collect(engine, request("bad-model"))[-1]
    assert isinstance(final, Failed)
    assert final.reason.startswith("HTTP 400 from ") and "some-other-model" in final.reason


def test_it_fails_clearly_when_nothing_listens() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the request
    engine = OpenAIServerEngine(f"http://127.0.0.1:{port}/v1", model="m", connect_timeout=2)
    final = collect(engine, request("down"))[-1]
    assert isinstance(final, Failed) and "ConnectError" in final.reason and str(port) in final.reason
    health = asyncio.run(engine.health())
    assert not health.ok and "ConnectError" in health.detail


def test_it_fails_clearly_when_the_server_stalls() -> None:
    # A real socket that accepts connections and never answers.
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(4)
        port = server.getsockname()[1]
        engine = OpenAIServerEngine(f"http://127.0.0.1:{port}", model="m", timeout=0.5)
        final = collect(engine, request("stall"))[-1]
    assert isinstance(final, Failed) and final.reason.startswith("timed out (ReadTimeout, limit 0.5 s)")


def test_it_reports_the_health_of_the_served_model(engine: OpenAIServerEngine, tiny_llava: Path) -> None:
    health = asyncio.run(engine.health())
    assert health.ok and health.engine == "openai" and health.model == str(tiny_llava)
    assert str(tiny_llava) in health.detail


def test_it_puts_images_as_png_data_urls_after_their_description() -> None:
    from ml.engines.openai_engine import build_messages

    req = request("m", "所見を書いてください。", system="あなたは医師です。", images=(image((1, 2, 3), "胸部X線 PA"),))
    messages: list[dict[str, Any]] = build_messages(req)
    assert messages[0] == {"role": "system", "content": "あなたは医師です。"}
    parts = messages[1]["content"]
    assert parts[0] == {"type": "text", "text": "胸部X線 PA\n"}
    assert parts[1]["type"] == "image_url" and parts[1]["image_url"]["url"].startswith("data:image/png;base64,iVBOR")
    assert parts[2] == {"type": "text", "text": "所見を書いてください。"}
