from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ml.engines import build_engine
from ml.engines.detokenize import IncrementalDetokenizer
from ml.protocol import Engine, EngineError, EngineEvent, Failed, Finished, Started, Token
from ml.tiny import NUM_IMAGE_TOKENS
from tests.ml.conftest import collect, collect_async, collect_many, image, request

torch = pytest.importorskip("torch")

PROMPTS = [
    "胸部X線の所見を書いてください。",
    "心電図",
    "眼底写真の所見を日本語で書いてください。右眼 視神経乳頭陥凹拡大の疑い。",
    "CT",
    "健診の総合判定と保健指導について、以下の測定値から書いてください。収縮期血圧 142 mmHg、HbA1c 6.8 %",
    "あ",
    "QTc 452 ms 心拍数 72",
    "肝S8に嚢胞。脂肪肝の程度は軽度。",
]
COLORS = [(220, 20, 20), (20, 20, 220), (20, 200, 20), (240, 240, 240)]


def _requests(prefix: str) -> list[Any]:
    return [
        request(
            f"{prefix}{i}",
            prompt,
            max_new_tokens=12 + 5 * i,
            images=(image(COLORS[i // 2]),) if i % 2 == 0 else (),
            system="あなたは健診の医師です。" if i % 3 == 0 else "",
        )
        for i, prompt in enumerate(PROMPTS)
    ]


def _final(events: list[EngineEvent]) -> Finished:
    final = events[-1]
    assert isinstance(final, Finished), final
    return final


@pytest.fixture(scope="module")
def alone(llava_engine: Any) -> dict[str, Finished]:
    """Each request of `_requests` run with nothing else in the engine."""
    results = {}
    for req in _requests("r"):
        result = llava_engine.submit_sync(req)
        assert isinstance(result, Finished)
        results[req.request_id] = result
    return results


def test_it_raises_engine_error_with_the_reason_when_the_checkpoint_is_missing(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="checkpoint not found"):
        build_engine("transformers", str(tmp_path / "no-such-model"))


def test_it_raises_engine_error_with_the_reason_when_the_checkpoint_is_broken(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "llama", "hidden_size": 64}')
    with pytest.raises(EngineError, match=r"cannot load .*: \w+Error: "):
        build_engine("transformers", str(tmp_path))


def test_it_streams_tokens_and_finishes_with_counts(llava_engine: Any) -> None:
    req = request("stream", images=(image((200, 30, 30)),), max_new_tokens=24, ignore_eos=True)
    events = collect(llava_engine, req)
    started, *tokens, final = events
    assert isinstance(started, Started) and started.prompt_tokens > NUM_IMAGE_TOKENS
    assert all(isinstance(t, Token) for t in tokens) and len(tokens) >= 5
    assert isinstance(final, Finished) and final.finish_reason == "length"
    assert final.prompt_tokens == started.prompt_tokens
    assert final.completion_tokens == 24 == tokens[-1].completion_tokens  # type: ignore[union-attr]
    assert "".join(t.text for t in tokens) == final.text  # type: ignore[union-attr]
    assert "\ufffd" not in final.text


def test_it_writes_exactly_what_hf_generate_writes_for_a_request_alone(llava_engine: Any) -> None:
    for req in _requests("g")[:4]:
        ids, mm = llava_engine._encode(req)
        out = llava_engine._hf_model.generate(
            input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
            max_new_tokens=req.max_new_tokens, do_sample=False, **mm,
        )  # fmt: skip
        expected = llava_engine._tokenizer.decode(out[0, len(ids) :], skip_special_tokens=True)
        assert llava_engine.submit_sync(req).text == expected


def test_its_stats_say_where_the_generation_thread_spent_its_time(llava_engine: Any) -> None:
    """Benchmarks compare the engine alone with the engine under the whole stack by these."""
    before = llava_engine.stats()
    results = collect_many(llava_engine, _requests("t"))
    after = llava_engine.stats()
    assert all(isinstance(_final(events), Finished) for events in results)
    assert after["prefill_rows"] - before["prefill_rows"] == len(results)
    assert after["prefills"] > before["prefills"] and after["prefill_s"] > before["prefill_s"]

    def steps(stats: dict[str, Any]) -> int:
        return sum(bucket["steps"] for bucket in stats["decode"].values())

    assert steps(after) - steps(before) == after["steps"] - before["steps"] > 0
    grew = {b for b, bucket in after["decode"].items()
            if bucket["steps"] > before["decode"].get(b, {"steps": 0})["steps"]}
    assert grew and grew <= {"1", "2", "4", "8"}  # 8 requests fill at most 8 rows: bucket 16 never ran
    assert all(after["decode"][b]["seconds"] > before["decode"].get(b, {"seconds": 0.0})["seconds"] for b in grew)


def test_it_gives_8_concurrent_requests_the_greedy_text_each_gets_alone(
    llava_engine: Any, alone: dict[str, Finished]
) -> None:
    reqs = _requests("r")
    steps_before = llava_engine.stats()["steps"]
    # Staggered starts: requests join the running batch at different steps.
    results = collect_many(llava_engine, reqs, stagger=0.004)
    steps = llava_engine.stats()["steps"] - steps_before
    tokens = 0
    for req, events in zip(reqs, results, strict=True):
        final = _final(events)
        expected = alone[req.request_id]
        assert final.text == expected.text, req.request_id
        assert (final.prompt_tokens, final.completion_tokens) == (expected.prompt_tokens, expected.completion_tokens)
        tokens += final.completion_tokens
    assert steps < tokens / 2, "the requests were not decoded together"


def test_it_lets_a_request_join_a_running_batch(llava_engine: Any, alone: dict[str, Finished]) -> None:
    long_req = request("long", "胸部X線", max_new_tokens=200, ignore_eos=True)
    joiner = _requests("r")[2]  # with an image

    async def main() -> tuple[list[EngineEvent], list[EngineEvent], int]:
        long_events: list[EngineEvent] = []

        async def run_long() -> None:
            async for event in llava_engine.submit(long_req):
                long_events.append(event)

        task = asyncio.create_task(run_long())
        while sum(isinstance(e, Token) for e in long_events) < 20:
            await asyncio.sleep(0.001)
        join_events = await collect_async(llava_engine, joiner)
        long_count_when_joiner_done = len(long_events)
        await task
        return long_events, join_events, long_count_when_joiner_done

    long_events, join_events, seen = asyncio.run(main())
    assert not isinstance(long_events[seen - 1], Finished), "the long request was not running alongside"
    assert _final(join_events).text == alone[joiner.request_id].text
    assert _final(long_events).completion_tokens == 200
    assert _final(long_events).text == llava_engine.submit_sync(long_req).text


def test_it_stops_generating_for_a_cancelled_request(llava_engine: Any) -> None:
    req = request("cancel-me", max_new_tokens=200, ignore_eos=True)

    async def main() -> tuple[list[EngineEvent], bool, bool]:
        events: list[EngineEvent] = []
        first = again = False
        async for event in llava_engine.submit(req):
            events.append(event)
            if isinstance(event, Token) and event.completion_tokens >= 5 and not first:
                first = await llava_engine.cancel("cancel-me")
        again = await llava_engine.cancel("cancel-me")
        return events, first, again

    events, first, again = asyncio.run(main())
    final = _final(events)
    assert first is True and again is False
    assert final.finish_reason == "cancelled"
    assert 5 <= final.completion_tokens < 200
    assert final.text == "".join(e.text for e in events if isinstance(e, Token))
    assert llava_engine.stats()["running"] == 0


def test_it_frees_the_slot_when_the_consumer_stops_reading(llava_engine: Any) -> None:
    async def main() -> None:
        stream = llava_engine.submit(request("walk-away", max_new_tokens=200, ignore_eos=True))
        async for event in stream:
            if isinstance(event, Token):
                break
        await stream.aclose()

    asyncio.run(main())
    deadline = time.monotonic() + 5
    while llava_engine.stats()["running"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert llava_engine.stats()["running"] == 0


def test_it_generates_exactly_max_new_tokens_with_ignore_eos(llava_engine: Any) -> None:
    for n in (1, 37):
        final = llava_engine.submit_sync(request(f"exact{n}", max_new_tokens=n, ignore_eos=True))
        assert isinstance(final, Finished)
        assert final.completion_tokens == n and final.finish_reason == "length"


def test_it_serves_blocking_callers_from_many_threads(llava_engine: Any, alone: dict[str, Finished]) -> None:
    reqs = _requests("r")[:6]
    results: dict[str, Finished | Failed] = {}
    seen: dict[str, list[str]] = {r.request_id: [] for r in reqs}

    def work(req: Any) -> None:
        results[req.request_id] = llava_engine.submit_sync(req, on_event=lambda e: seen[req.request_id].append(e.kind))

    threads = [threading.Thread(target=work, args=(r,)) for r in reqs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for req in reqs:
        assert results[req.request_id].text == alone[req.request_id].text  # type: ignore[union-attr]
        kinds = seen[req.request_id]
        assert kinds[0] == "started" and kinds[-1] == "finished" and set(kinds[1:-1]) == {"token"}


def test_it_reuses_slots_when_more_requests_come_than_it_has_rows(tiny_llava: Path, alone: dict[str, Finished]) -> None:
    from ml.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_llava), device="cpu", max_batch_size=2, max_seq_len=256)
    try:
        reqs = _requests("r")
        results = collect_many(engine, reqs)
        for req, events in zip(reqs, results, strict=True):
            assert _final(events).text == alone[req.request_id].text
        assert engine.stats()["running"] == 0
    finally:
        engine.close()


def test_it_samples_when_a_temperature_is_given(llava_engine: Any) -> None:
    final = llava_engine.submit_sync(request("hot", max_new_tokens=16, temperature=1.0, ignore_eos=True))
    assert isinstance(final, Finished) and final.completion_tokens == 16


def test_it_refuses_what_it_cannot_run(llava_engine: Any) -> None:
    too_long = llava_engine.submit_sync(request("long-prompt", "所見" * 200))
    assert isinstance(too_long, Failed) and "max_seq_len" in too_long.reason
    zero = llava_engine.submit_sync(request("zero", max_new_tokens=0))
    assert isinstance(zero, Failed) and "max_new_tokens" in zero.reason

    async def twice() -> list[EngineEvent]:
        first = llava_engine.submit(request("dup", max_new_tokens=100, ignore_eos=True))
        await first.__anext__()  # Started: it is queued or running
        second = await collect_async(llava_engine, request("dup"))
        await first.aclose()
        return second

    dup = asyncio.run(twice())
    assert isinstance(dup[-1], Failed) and "already running" in dup[-1].reason


def test_it_runs_a_text_only_checkpoint_and_refuses_images_there(tiny_causal: Path) -> None:
    engine = build_engine("transformers", str(tiny_causal), device="cpu", max_batch_size=4, max_seq_len=128)
    try:
        assert isinstance(engine, Engine)
        final = _final(collect(engine, request("txt", "心電図の所見", max_new_tokens=8, ignore_eos=True)))
        assert final.completion_tokens == 8
        failed = collect(engine, request("img", images=(image((1, 2, 3)),)))[-1]
        assert isinstance(failed, Failed) and "text-only" in failed.reason
    finally:
        asyncio.run(engine.aclose())


def test_it_reports_its_model_and_device(llava_engine: Any) -> None:
    health = asyncio.run(llava_engine.health())
    assert health.ok and health.engine == "transformers" and health.model == llava_engine.model
    assert "LlavaForConditionalGeneration on cpu (float32)" in health.detail


def test_it_detokenizes_characters_split_over_several_tokens() -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    raw = Tokenizer(models.BPE())
    raw.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    raw.train_from_iterator(["ascii only text, no japanese at all"], trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=raw)
    text = '{"impression": "右上肺野に結節影。HbA1c 6.8 %"}'
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert len(ids) > len(text)  # Japanese characters take three byte tokens each

    detok = IncrementalDetokenizer(tokenizer)
    pieces = [detok.push(i) for i in ids]
    pieces.append(detok.flush())
    assert "".join(pieces) == text == detok.text()
    assert not any("\ufffd" in p for p in pieces)
    assert "" in pieces  # held back while a character was incomplete


@pytest.mark.gpu
def test_it_compiles_the_decode_step_on_gpu_and_writes_what_eager_writes(tiny_llava: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    from ml.engines.transformers_engine import TransformersEngine

    eager = TransformersEngine(str(tiny_llava), device="cuda", dtype="float32", max_batch_size=8, max_seq_len=256)
    compiled = TransformersEngine(
        str(tiny_llava), device="cuda", dtype="float32", max_batch_size=8, max_seq_len=256, compile=True
    )
    try:
        seconds = compiled.warmup()
        assert seconds > 0 and f"warmup_s={seconds:.1f}" in asyncio.run(compiled.health()).detail
        reqs = _requests("gpu")
        expected = [_final(e).text for e in collect_many(eager, reqs)]
        got = [_final(e).text for e in collect_many(compiled, reqs, stagger=0.002)]
        assert got == expected
    finally:
        eager.close()
        compiled.close()


def test_it_compiles_one_static_graph_per_batch_bucket_that_writes_what_eager_writes(
    tiny_causal: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """compile_shapes="static": each bucket (here 1, 2 and 4) gets its own graph, as batch 1 always
    does ("dynamic" makes two: b = 1 and one symbolic b); the text is the eager engine's."""
    from torch._dynamo.utils import counters

    from ml.engines.transformers_engine import TransformersEngine

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(tmp_path / "inductor"))
    torch._dynamo.reset()
    reqs = [request(f"s{i}", PROMPTS[i], max_new_tokens=6 + i, ignore_eos=True) for i in range(6)]
    eager = TransformersEngine(str(tiny_causal), device="cpu", max_batch_size=4, max_seq_len=128)
    try:
        expected = [_final(e).text for e in collect_many(eager, reqs)]
    finally:
        eager.close()
    compiled_before = counters["stats"]["unique_graphs"]
    static = TransformersEngine(
        str(tiny_causal), device="cpu", max_batch_size=4, max_seq_len=128, compile=True, compile_shapes="static"
    )
    try:
        static.warmup()
        assert counters["stats"]["unique_graphs"] - compiled_before == 3  # one per bucket: b = 1, 2, 4
        assert [_final(e).text for e in collect_many(static, reqs, stagger=0.002)] == expected
    finally:
        static.close()
        torch._dynamo.reset()


def test_it_refuses_an_unknown_compile_shapes_before_loading_the_model(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="compile_shapes must be 'dynamic' or 'static'"):
        build_engine("transformers", str(tmp_path / "not-even-there"), compile=True, compile_shapes="ragged")
