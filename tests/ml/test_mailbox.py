"""The hand-over of one request's events from the engine's thread to the waiting caller."""

from __future__ import annotations

import threading
import time

from ml.engines.mailbox import Mailbox, drain, merge_tokens
from ml.protocol import Failed, Finished, Started, Token


def test_it_merges_consecutive_tokens_and_keeps_the_last_count() -> None:
    merged = merge_tokens([Started("r", 5), Token("r", "胸", 1), Token("r", "部", 2), Token("r", "X", 3),
                           Finished("r", "胸部X", 5, 3, "length")])
    assert merged == [Started("r", 5), Token("r", "胸部X", 3), Finished("r", "胸部X", 5, 3, "length")]


def test_it_gives_the_first_token_at_once_even_right_after_started() -> None:
    box = Mailbox(coalesce_s=5.0)
    box.put(Started("r", 5))
    assert box.take(timeout=1) == [Started("r", 5)]
    box.put(Token("r", "胸", 1))
    started = time.monotonic()
    assert box.take(timeout=1) == [Token("r", "胸", 1)]
    assert time.monotonic() - started < 0.5


def test_it_holds_later_tokens_for_the_window_and_hands_them_over_as_one() -> None:
    box = Mailbox(coalesce_s=0.3)
    box.put(Token("r", "胸", 1))
    assert box.take(timeout=1) == [Token("r", "胸", 1)]
    delivered = time.monotonic()
    for i, ch in enumerate("部X線", start=2):
        box.put(Token("r", ch, i))
    assert box.take() == [Token("r", "部X線", 4)]
    assert time.monotonic() - delivered >= 0.29


def test_it_hands_over_what_it_holds_when_the_readers_time_is_up() -> None:
    box = Mailbox(coalesce_s=5.0)
    box.put(Token("r", "胸", 1))
    box.take()
    box.put(Token("r", "部", 2))
    assert box.take(timeout=0.05) == [Token("r", "部", 2)]
    assert box.take(timeout=0.05) == []


def test_it_wakes_the_reader_at_once_for_the_end_of_a_request() -> None:
    box = Mailbox(coalesce_s=5.0)
    box.put(Token("r", "胸", 1))
    box.take(timeout=1)
    box.put(Token("r", "部", 2))
    threading.Timer(0.05, box.put, args=(Finished("r", "胸部", 5, 2, "stop"),)).start()
    started = time.monotonic()
    assert box.take(timeout=3) == [Token("r", "部", 2), Finished("r", "胸部", 5, 2, "stop")]
    assert time.monotonic() - started < 1.0


def test_drain_cancels_once_when_the_time_is_up_and_returns_the_engines_end() -> None:
    box = Mailbox()
    cancels: list[float] = []

    def cancel() -> None:
        cancels.append(time.monotonic())
        box.put(Finished("r", "", 5, 0, "cancelled"))

    result = drain(box, None, 0.1, cancel)
    assert result == Finished("r", "", 5, 0, "cancelled") and len(cancels) == 1


def test_drain_cancels_the_request_when_the_consumer_raises() -> None:
    box = Mailbox()
    box.put(Token("r", "胸", 1))
    cancelled: list[bool] = []

    def on_event(_event: object) -> None:
        raise RuntimeError("the job was taken away")

    try:
        drain(box, on_event, None, lambda: cancelled.append(True))
    except RuntimeError:
        pass
    else:
        raise AssertionError("the consumer's exception must propagate")
    assert cancelled == [True]


def test_drain_returns_a_failure_with_its_reason() -> None:
    box = Mailbox(coalesce_s=1.0)
    box.put(Failed("r", "prefill failed: OOM"))
    assert drain(box, None, 5, lambda: None) == Failed("r", "prefill failed: OOM")
