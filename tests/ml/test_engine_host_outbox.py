"""The engine process's outbox (`ml.engines.engine_host._Outbox`): what crosses the pipe to the
worker for readers with a coalescing window. Driven directly, without a model: the test thread
plays the generation thread."""

from __future__ import annotations

import threading
import time
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from typing import Any

from ml.engines.engine_host import _Outbox
from ml.protocol import EngineEvent, Finished, Started, Token


def _outbox() -> tuple[_Outbox, Connection]:
    reader, writer = Pipe(duplex=False)
    return _Outbox(writer, threading.Lock()), reader


def _messages(reader: Connection, settle_s: float = 0.15) -> list[list[EngineEvent]]:
    """Every message the outbox sent until it has been quiet for `settle_s`."""
    out = []
    while reader.poll(settle_s):
        kind, batch = reader.recv()
        assert kind == "events"
        out.append(batch)
    return out


def test_started_rides_with_the_first_token_instead_of_a_message_of_its_own() -> None:
    outbox, reader = _outbox()
    sink = outbox.sink("r1", 0.1)
    sink(Started("r1", 921))
    assert not reader.poll(0.1)  # nothing crosses the pipe for Started alone
    sink(Token("r1", "所見", 1))
    [first] = _messages(reader)
    assert first == [Started("r1", 921), Token("r1", "所見", 1)]


def test_started_goes_before_the_end_of_a_request_that_ends_before_its_first_token() -> None:
    outbox, reader = _outbox()
    sink = outbox.sink("r2", 0.1)
    sink(Started("r2", 12))
    sink(Finished("r2", "", 12, 0, "cancelled"))
    assert [e for m in _messages(reader) for e in m] == [Started("r2", 12), Finished("r2", "", 12, 0, "cancelled")]


def test_requests_started_at_different_moments_share_their_sends() -> None:
    """16 requests joining 4.5 ms apart (a worker claiming an arrival's jobs), a token each per
    4.5 ms step for 0.6 s, 0.1 s windows: their held text leaves on a shared grid of ticks, not at
    16 moments of its own per window (≈ 100 messages without the grid)."""
    outbox, reader = _outbox()
    sinks: list[Any] = []
    texts: dict[str, list[str]] = {}
    started = time.monotonic()
    step = 0
    while time.monotonic() - started < 0.6:
        if len(sinks) < 16:
            rid = f"j{len(sinks)}"
            sinks.append((rid, outbox.sink(rid, 0.1)))
            texts[rid] = []
        step += 1
        for rid, sink in sinks:
            texts[rid].append(f"{step},")
            sink(Token(rid, f"{step},", len(texts[rid])))
        time.sleep(0.0045)
    for rid, sink in sinks:
        sink(Finished(rid, "".join(texts[rid]), 1, len(texts[rid]), "length"))
    messages = _messages(reader)
    events = [e for m in messages for e in m]
    for rid in texts:  # nothing lost or reordered: each request's text is what it was given
        mine = [e for e in events if e.request_id == rid]
        assert "".join(e.text for e in mine if isinstance(e, Token)) == "".join(texts[rid])
        assert isinstance(mine[-1], Finished)
    assert len(messages) <= 45, len(messages)
