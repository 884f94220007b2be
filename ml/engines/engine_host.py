"""The child side of `ProcessEngine`: one engine in a process of its own.

Started as `python -m ml.engines.engine_host <fd>`, where `<fd>` is one end of a socket pair
wrapped as a `multiprocessing.connection.Connection`. Messages (pickled tuples):

    parent → child   ("start", kind, location, options, cpus)   once, first (cpus: ids or None)
                     ("submit", DraftRequest, coalesce_s)      tokens merged over that window
                     ("cancel", request_id)
                     ("call", call_id, "warmup" | "stats" | "health")
                     ("close",)
    child → parent   ("ready", pid) | ("load_failed", reason)   once, after "start"
                     ("events", [EngineEvent, ...])             the events of one or more decode steps
                     ("reply", call_id, ok, value or reason)

The child exits when the parent's end closes (the parent exited, was killed, or closed it), so a
worker killed with SIGKILL never leaves a process holding the GPU behind.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any

from ml.protocol import EngineEvent, Failed, Finished, Started, Token

log = logging.getLogger("ml.engines.engine_host")

# After the first event of a decode step wakes the sender, the rest of that step's events (one per
# running request) arrive within microseconds; waiting this long sends them as one message.
_GATHER_S = 0.001
# Merged text leaves when its window has closed, at the next tick of one grid shared by every
# request: requests that started at different moments (a worker claims the jobs of an arrival one
# after another) would otherwise close their windows at as many different moments, each a wake-up of
# the sender and a message that takes the interpreter from the generation thread (64 drafts of 128
# tokens submitted 4.5 ms apart, tiny model on one CPU: 238 messages a round where a burst of 64 made
# 58, the generation thread busy 33 ms longer; with the grid and Started held, 59 messages and 8 ms).
# Text waits at most one tick longer than its window.
_TICK_S = 0.025


def _on_tick(t: float) -> float:
    """The first tick of the shared grid at or after monotonic time `t`."""
    return math.ceil(t / _TICK_S) * _TICK_S


@dataclass
class _Held:
    """A request's tokens merged while its coalescing window is open (see `_Outbox.sink`)."""

    request_id: str
    coalesce_s: float
    parts: list[str] = field(default_factory=list)
    completion_tokens: int = 0
    open_until: float = 0.0  # tokens before this monotonic time wait and merge
    done: bool = False
    started: Started | None = None  # goes with the request's next event

    def take(self) -> Token:
        token = Token(self.request_id, "".join(self.parts), self.completion_tokens)
        self.parts = []
        return token


class _Outbox:
    """Events from the generation thread, sent to the parent by one sender thread in batches.

    A request submitted with a coalescing window (the worker's `coalesce_s`: its thread reads tokens
    at most that often) has its tokens merged here, before they are pickled: a batch of 64 drafts
    made 64 Token events a decode step, which this process pickled and the worker unpickled and
    handed to 64 mailboxes, only for the mailboxes to merge them again (the worker's thread that
    receives them took 16 % of its interpreter time, bench/inference_stack.py with py-spy). The
    first token and the end still go at once, Started with the first token (or the end), and held
    text on a grid of ticks shared by every request (`_TICK_S`); a request's held text always goes
    before its next non-token event, so the order and the text are what the engine produced."""

    def __init__(self, conn: Connection, send_lock: threading.Lock) -> None:
        self._conn = conn
        self._send_lock = send_lock
        self._items: list[EngineEvent] = []
        self._held: dict[str, _Held] = {}  # requests with text waiting for their window to close
        self._cond = threading.Condition(threading.Lock())
        self.sent_events = 0  # events and messages sent to the parent (stats(): "pipe_events")
        self.sent_messages = 0
        threading.Thread(target=self._run, name="engine-host-sender", daemon=True).start()

    def put(self, event: EngineEvent) -> None:
        with self._cond:
            self._items.append(event)
            if len(self._items) == 1:
                self._cond.notify()

    def sink(self, request_id: str, coalesce_s: float) -> Callable[[EngineEvent], None]:
        """Where the engine sends `request_id`'s events: `put`, or with a window, a merging sink."""
        if coalesce_s <= 0:
            return self.put
        held = _Held(request_id, coalesce_s)

        def merge(event: EngineEvent) -> None:
            with self._cond:
                now = time.monotonic()
                if isinstance(event, Started) and not held.done and held.started is None:
                    # Not a message of its own: it rides with the first token (or the end). The
                    # jobs of an arrival reach the engine one after another, each Started a send
                    # (and a wake-up of its reader) in the middle of a prefill.
                    held.started = event
                    return
                if held.started is not None:
                    self._items.append(held.started)
                    held.started = None
                if isinstance(event, Token) and not held.done:
                    held.parts.append(event.text)
                    held.completion_tokens = event.completion_tokens
                    if now < held.open_until:
                        if request_id not in self._held:  # sent when its window closes: the sender
                            self._held[request_id] = held  # learns of the new closing time
                            self._cond.notify()
                        return
                    held.open_until = _on_tick(now + coalesce_s)
                    self._held.pop(request_id, None)
                    event = held.take()
                else:
                    if held.parts:  # the text so far, before what ends or follows it
                        self._items.append(held.take())
                    self._held.pop(request_id, None)
                    held.done = held.done or isinstance(event, Finished | Failed)
                self._items.append(event)
                self._cond.notify()

        return merge

    def _due(self, now: float) -> float | None:
        """Move the held text whose window closed into the batch; the next closing time, if any."""
        nearest = None
        for request_id, held in list(self._held.items()):
            if held.open_until <= now:
                self._items.append(held.take())
                held.open_until = _on_tick(now + held.coalesce_s)
                del self._held[request_id]
            elif nearest is None or held.open_until < nearest:
                nearest = held.open_until
        return nearest

    def _run(self) -> None:
        while True:
            with self._cond:
                while True:
                    nearest = self._due(time.monotonic())
                    if self._items:
                        break
                    self._cond.wait(None if nearest is None else max(0.0, nearest - time.monotonic()))
            time.sleep(_GATHER_S)
            with self._cond:
                self._due(time.monotonic())
                batch, self._items = self._items, []
            try:
                with self._send_lock:
                    self._conn.send(("events", batch))
            except OSError:  # the parent is gone
                os._exit(0)
            self.sent_events += len(batch)
            self.sent_messages += 1


def _settled(result: Any) -> Any:
    """After the warm-up: the model, the tokenizer and the imports live as long as this process.
    Out of the collector's generations, a full collection no longer walks them while the
    generation thread waits for the interpreter lock (these grew to 0.18 s on the CPU bench)."""
    gc.collect()
    gc.freeze()
    return result


def _reply(conn: Connection, send_lock: threading.Lock, call_id: int, fn: Any) -> None:
    try:
        message: tuple[Any, ...] = ("reply", call_id, True, fn())
    except Exception as exc:
        message = ("reply", call_id, False, f"{type(exc).__name__}: {exc}")
    try:
        with send_lock:
            conn.send(message)
    except OSError:
        os._exit(0)


def serve(conn: Connection) -> int:
    from ml.engines import build_engine

    _, kind, location, options, cpus = conn.recv()
    if cpus:
        try:  # this thread's CPUs; every thread started from here on (model, loop, sender) inherits them
            os.sched_setaffinity(0, cpus)
        except OSError as exc:
            conn.send(("load_failed", f"cannot run the engine on CPUs {cpus} (this machine has "
                                      f"{sorted(os.sched_getaffinity(0))}): {exc.strerror or exc}"))
            return 1
    try:
        engine: Any = build_engine(kind, location, **options)
        if not callable(getattr(engine, "start", None)):
            raise TypeError(f"engine {kind!r} cannot run in a process of its own (it has no start())")
    except Exception as exc:
        conn.send(("load_failed", str(exc)))
        return 1
    send_lock = threading.Lock()
    outbox = _Outbox(conn, send_lock)
    calls = {
        "warmup": lambda: _settled(engine.warmup()),
        "stats": lambda: {**engine.stats(), "frozen_objects": gc.get_freeze_count(),
                          "pipe_events": outbox.sent_events, "pipe_messages": outbox.sent_messages},
        "health": lambda: asyncio.run(engine.health()),
    }
    conn.send(("ready", os.getpid()))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            os._exit(0)  # the parent is gone: nobody will read what we generate
        op = message[0]
        if op == "submit":  # ("submit", request[, coalesce_s])
            request = message[1]
            engine.start(request, outbox.sink(request.request_id, message[2] if len(message) > 2 else 0.0))
        elif op == "cancel":
            engine.cancel_sync(message[1])
        elif op == "call":
            call_id, name = message[1], message[2]
            threading.Thread(target=_reply, args=(conn, send_lock, call_id, calls[name]), daemon=True).start()
        elif op == "close":
            engine.close()
            time.sleep(10 * _GATHER_S)  # let the sender hand over the last "engine closed" events
            return 0


def main(argv: list[str]) -> int:
    # Ctrl+C in a terminal reaches the whole process group: the worker decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s [engine-host] %(name)s %(message)s")
    conn = Connection(int(argv[1]))
    return serve(conn)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
