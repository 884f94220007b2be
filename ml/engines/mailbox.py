"""Handing one request's events from the engine's thread to the thread that waits for them.

A batch of 64 drafts produces 64 Token events per decode step. Waking 64 waiting threads per step
(a `queue.Queue` per request) made them fight the generation loop for the interpreter lock: every
small torch call releases and re-takes it, and each re-take waited behind the woken threads
(bench/inference_stack.py: the engine ran several times slower inside a Celery worker than alone).
A `Mailbox` instead merges Tokens while its reader is not looking and wakes the reader for tokens at
most every `coalesce_s`; the first token and every non-token event (Started, Finished, Failed) wake
it at once, so first-token latency and the end of a request are not delayed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

from ml.protocol import DraftRequest, EngineEvent, Failed, Finished, Token


def merge_tokens(events: list[EngineEvent]) -> list[EngineEvent]:
    """Consecutive Tokens of a request become one (texts joined, the last running count)."""
    out: list[EngineEvent] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, Token) and isinstance(last, Token):
            out[-1] = Token(event.request_id, last.text + event.text, event.completion_tokens)
        else:
            out.append(event)
    return out


class Mailbox:
    """Thread-safe; one writer (the engine) and one reader (the caller) per request."""

    def __init__(self, coalesce_s: float = 0.0) -> None:
        self.coalesce_s = max(0.0, coalesce_s)
        self._items: deque[EngineEvent] = deque()
        self._cond = threading.Condition(threading.Lock())
        self._not_before = 0.0  # tokens wake the reader only from this monotonic time on
        self._urgent = False  # a non-token event is waiting

    def put(self, event: EngineEvent) -> None:
        with self._cond:
            self._items.append(event)
            if not isinstance(event, Token):
                self._urgent = True
                self._cond.notify()
            elif time.monotonic() >= self._not_before:
                self._cond.notify()

    def take(self, timeout: float | None = None) -> list[EngineEvent]:
        """Wait for events and return them merged; [] when `timeout` passed with nothing to give."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                now = time.monotonic()
                late = deadline is not None and now >= deadline
                if self._items and (self._urgent or now >= self._not_before or late):
                    break
                if late:
                    return []
                waits = []
                if deadline is not None:
                    waits.append(deadline - now)
                if self._items:  # only tokens, and too early: wait for the coalescing window to end
                    waits.append(self._not_before - now)
                self._cond.wait(min(waits) if waits else None)
            events = list(self._items)
            self._items.clear()
            self._urgent = False
            if any(isinstance(event, Token) for event in events):
                # The window starts with a delivery of text: Started never delays the first token.
                self._not_before = time.monotonic() + self.coalesce_s
        return merge_tokens(events)


def drain(
    box: Mailbox,
    on_event: Callable[[EngineEvent], None] | None,
    timeout: float | None,
    cancel: Callable[[], object],
) -> Finished | Failed:
    """The blocking half of `submit_sync`: hand `box`'s events to `on_event` until the request ends.

    Past `timeout` (seconds, the whole request) `cancel()` is called once and the wait goes on for
    the engine's own end (Finished "cancelled"). If `on_event` raises, the request is cancelled and
    the exception propagates."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        events = box.take(wait)
        if not events and deadline is not None and time.monotonic() >= deadline:
            cancel()
            deadline = None
            continue
        for event in events:
            if on_event is not None:
                try:
                    on_event(event)
                except BaseException:
                    cancel()
                    raise
            if isinstance(event, Finished | Failed):
                return event


Sink = Callable[[EngineEvent], None]
Cancel = Callable[[], object]


async def stream(begin: Callable[[Sink], Cancel]) -> AsyncIterator[EngineEvent]:
    """The asynchronous half of the protocol's `submit`: `begin(sink)` queues the request (it runs in
    a worker thread, as it may tokenize or start a process) and returns its cancel; the engine's
    events are yielded until the request ends; a consumer that leaves early cancels it, which frees
    its slot."""
    loop = asyncio.get_running_loop()
    events: asyncio.Queue[EngineEvent] = asyncio.Queue()

    def sink(event: EngineEvent) -> None:
        loop.call_soon_threadsafe(events.put_nowait, event)

    cancel = await asyncio.to_thread(begin, sink)
    ended = False
    try:
        while True:
            event = await events.get()
            ended = isinstance(event, Finished | Failed)
            yield event
            if ended:
                return
    finally:
        if not ended:
            cancel()


class SinkEngine:
    """The protocol's `submit` and the blocking `submit_sync` of a local engine, written once over
    the engine's `_begin(request, sink) -> cancel` (TransformersEngine, ProcessEngine)."""

    def _begin(self, request: DraftRequest, sink: Sink, coalesce_s: float = 0.0) -> Cancel:
        """Queue `request`; its events go to `sink` from the engine's thread. Returns its cancel.
        `coalesce_s`: how often the caller reads tokens; an engine may merge them as a `Mailbox`
        would (an engine in another process merges them before sending, `engine_host._Outbox`)."""
        raise NotImplementedError

    def submit(self, request: DraftRequest) -> AsyncIterator[EngineEvent]:
        return stream(lambda sink: self._begin(request, sink))

    def submit_sync(
        self,
        request: DraftRequest,
        on_event: Callable[[EngineEvent], None] | None = None,
        timeout: float | None = None,
        coalesce_s: float = 0.0,
    ) -> Finished | Failed:
        """Blocking submit for threads without an event loop (Celery). `on_event` runs in this thread.

        `timeout` (seconds, whole request) cancels the request when exceeded; the result is then
        `Finished(finish_reason="cancelled")`. If `on_event` raises, the request is cancelled and the
        exception propagates. With `coalesce_s` > 0 the Tokens that arrive within that many seconds
        of the previous delivery reach `on_event` as one (see `Mailbox`).
        """
        box = Mailbox(coalesce_s)
        return drain(box, on_event, timeout, self._begin(request, box.put, coalesce_s))
