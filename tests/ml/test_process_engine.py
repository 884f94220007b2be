"""The engine in a child process of its own (what a GPU worker runs): the same drafts as in this
process, cancellation, and what happens when either side of the pipe dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ml.engines import build_engine
from ml.protocol import EngineError, EngineEvent, Failed, Finished, Started, Token
from tests.ml.conftest import collect, request

pytest.importorskip("torch")

PROMPTS = ["心電図 洞調律 心拍数 72", "胸部X線 右上肺野に結節", "眼底 視神経乳頭陥凹拡大の疑い", "あ"]


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:  # reap it if it is our own child
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state in ("Z", "X"):  # exited; a container's init may never reap it
            return True
        time.sleep(0.05)
    return False


@pytest.fixture(scope="module")
def engines(tiny_causal: Path) -> Iterator[tuple[Any, Any]]:
    """(in a child process, in this process) on the same checkpoint."""
    child: Any = build_engine("transformers", str(tiny_causal), device="cpu", max_batch_size=8, max_seq_len=256,
                              process=True)
    here: Any = build_engine("transformers", str(tiny_causal), device="cpu", max_batch_size=8, max_seq_len=256)
    yield child, here
    child.close()
    here.close()


def test_it_writes_what_the_engine_writes_in_this_process(engines: tuple[Any, Any]) -> None:
    child, here = engines
    assert child.pid != os.getpid()
    results: dict[str, Any] = {}

    def run(i: int) -> None:
        results[f"c{i}"] = child.submit_sync(request(f"c{i}", PROMPTS[i], max_new_tokens=20 + 3 * i, ignore_eos=True))

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(PROMPTS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, prompt in enumerate(PROMPTS):
        expected = here.submit_sync(request(f"h{i}", prompt, max_new_tokens=20 + 3 * i, ignore_eos=True))
        got = results[f"c{i}"]
        assert isinstance(got, Finished) and got.finish_reason == "length"
        assert (got.text, got.completion_tokens, got.prompt_tokens) == (
            expected.text, expected.completion_tokens, expected.prompt_tokens)


def test_it_streams_started_tokens_and_one_end_over_the_async_protocol(engines: tuple[Any, Any]) -> None:
    child, _ = engines
    events = collect(child, request("async", PROMPTS[0], max_new_tokens=12, ignore_eos=True))
    assert isinstance(events[0], Started) and isinstance(events[-1], Finished)
    tokens = [e for e in events if isinstance(e, Token)]
    assert "".join(t.text for t in tokens) == events[-1].text and tokens[-1].completion_tokens == 12


def test_it_merges_tokens_for_a_caller_that_asks_for_it(engines: tuple[Any, Any]) -> None:
    child, _ = engines
    seen: list[EngineEvent] = []
    final = child.submit_sync(request("merged", PROMPTS[1], max_new_tokens=60, ignore_eos=True), seen.append,
                              None, 10.0)
    tokens = [e for e in seen if isinstance(e, Token)]
    # the first token at once, the rest in one hand-over at the end (the window outlasts the draft)
    assert len(tokens) <= 3 and "".join(t.text for t in tokens) == final.text
    assert seen[0].kind == "started" and seen[-1] is final


def test_the_child_merges_tokens_before_sending_them_to_a_reader_with_a_window(engines: tuple[Any, Any]) -> None:
    child, _ = engines
    arrived: list[EngineEvent] = []  # as they come out of the pipe, before any mailbox
    ended = threading.Event()

    def sink(event: EngineEvent) -> None:
        arrived.append(event)
        if isinstance(event, Finished | Failed):
            ended.set()

    child._begin(request("windowed", PROMPTS[1], max_new_tokens=150, ignore_eos=True), sink, 10.0)
    assert ended.wait(60)
    tokens = [e for e in arrived if isinstance(e, Token)]
    final = arrived[-1]
    assert isinstance(final, Finished) and final.completion_tokens == 150
    # The first token at once; the other 149 held in the child and sent, merged, before the end.
    assert len(tokens) == 2 and tokens[0].completion_tokens <= 3 and tokens[1].completion_tokens == 150
    assert "".join(t.text for t in tokens) == final.text
    # Without a window every token crosses the pipe as it comes.
    arrived.clear()
    ended.clear()
    child._begin(request("unwindowed", PROMPTS[1], max_new_tokens=20, ignore_eos=True), sink)
    assert ended.wait(60)
    counts = [e.completion_tokens for e in arrived if isinstance(e, Token)]
    assert len(counts) >= 15 and counts == sorted(set(counts))


def test_it_stops_generating_for_a_cancelled_request(engines: tuple[Any, Any]) -> None:
    child, _ = engines
    seen: list[EngineEvent] = []
    cancels: list[bool] = []

    def on_event(event: EngineEvent) -> None:
        seen.append(event)
        # Once: tokens already on their way arrive after the cancel (its second call found the
        # request gone once its end had been received, and failed the test on a busy machine).
        if isinstance(event, Token) and event.completion_tokens >= 3 and not cancels:
            cancels.append(child.cancel_sync("cancel-me"))

    final = child.submit_sync(request("cancel-me", PROMPTS[2], max_new_tokens=200, ignore_eos=True), on_event)
    assert cancels == [True]
    assert isinstance(final, Finished) and final.finish_reason == "cancelled"
    assert final.completion_tokens < 200
    assert not child.cancel_sync("cancel-me")  # over: nothing to cancel


def test_it_answers_health_and_counters_from_the_child(engines: tuple[Any, Any]) -> None:
    child, _ = engines
    health = asyncio.run(child.health())
    assert health.ok and f"process={child.pid}" in health.detail and "LlamaForCausalLM" in health.detail
    assert child.warmup() >= 0 and child.stats()["pid"] == child.pid


def test_it_fails_running_requests_with_the_exit_code_when_the_child_dies_and_starts_a_new_one(
    tiny_causal: Path,
) -> None:
    engine: Any = build_engine("transformers", str(tiny_causal), device="cpu", max_batch_size=4, max_seq_len=512,
                               process=True)
    try:
        first = engine.pid
        results: list[Any] = []

        killed: list[int] = []

        def on_event(event: EngineEvent) -> None:
            # >= 2, not == 2: tokens that arrive while this thread is busy come merged into one event
            if isinstance(event, Token) and event.completion_tokens >= 2 and not killed:
                killed.append(first)
                os.kill(first, signal.SIGKILL)

        results.append(engine.submit_sync(request("dies", PROMPTS[0], max_new_tokens=400, ignore_eos=True), on_event))
        assert results[0] == Failed("dies", "the engine process exited (code -9)")
        assert not asyncio.run(engine.health()).ok
        again = engine.submit_sync(request("after", PROMPTS[0], max_new_tokens=5, ignore_eos=True))
        assert isinstance(again, Finished) and again.completion_tokens == 5
        assert engine.pid not in (None, first)
    finally:
        engine.close()
    assert engine.submit_sync(request("closed", PROMPTS[0])) == Failed("closed", "engine is closed")


def test_it_raises_the_childs_reason_when_the_model_cannot_load(tmp_path: Path) -> None:
    with pytest.raises(EngineError, match="checkpoint not found"):
        build_engine("transformers", str(tmp_path / "missing"), device="cpu", process=True)


def test_it_keeps_the_child_on_the_cpus_it_is_given_with_a_thread_pool_to_match(tiny_causal: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    engine: Any = build_engine("transformers", str(tiny_causal), device="cpu", max_batch_size=2, max_seq_len=64,
                               process=True, cpus=str(cpu))
    try:
        pid = engine.pid
        threads = os.listdir(f"/proc/{pid}/task")
        assert len(threads) > 1 and {frozenset(os.sched_getaffinity(int(t))) for t in threads} == {frozenset({cpu})}
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"OMP_NUM_THREADS=1" in environ
        result = engine.submit_sync(request("on-cpu", PROMPTS[0], max_new_tokens=4, ignore_eos=True))
        assert isinstance(result, Finished) and result.completion_tokens == 4  # it still drafts
    finally:
        engine.close()


def test_the_child_freezes_its_long_lived_objects_after_the_warm_up(tiny_causal: Path) -> None:
    engine: Any = build_engine("transformers", str(tiny_causal), device="cpu", max_batch_size=2, max_seq_len=64,
                               process=True)
    try:
        assert engine.stats()["frozen_objects"] == 0
        engine.warmup()
        assert engine.stats()["frozen_objects"] > 10_000  # torch, transformers, the model: out of full collections
    finally:
        engine.close()


def test_it_refuses_cpus_this_machine_does_not_have_with_the_reason(tiny_causal: Path) -> None:
    with pytest.raises(EngineError, match=r"cannot run the engine on CPUs \[4095\]"):
        build_engine("transformers", str(tiny_causal), device="cpu", process=True, cpus="4095")
    with pytest.raises(EngineError, match="process of its own"):
        build_engine("transformers", str(tiny_causal), device="cpu", cpus="0")


def test_the_child_exits_when_its_parent_is_killed(tiny_causal: Path, tmp_path: Path) -> None:
    """A GPU worker killed with SIGKILL must not leave a process holding the GPU."""
    pid_file = tmp_path / "child.pid"
    parent_code = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).resolve().parents[2])!r})
        from ml.engines import build_engine
        engine = build_engine("transformers", {str(tiny_causal)!r}, device="cpu", max_seq_len=128, process=True)
        open({str(pid_file)!r}, "w").write(str(engine.pid))
        time.sleep(600)
    """)
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 120
        while not pid_file.exists() or not pid_file.read_text():
            assert parent.poll() is None and time.monotonic() < deadline, "the parent did not start its engine"
            time.sleep(0.1)
        child = int(pid_file.read_text())
        assert not _gone(child, within=0.2)
        parent.kill()
        parent.wait(timeout=10)
        assert _gone(child, within=15), "the engine process outlived its parent"
    finally:
        if parent.poll() is None:
            parent.kill()
