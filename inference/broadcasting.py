"""Group sends from worker threads without blocking them.

`config.realtime.broadcast` called from a plain thread runs `async_to_sync`, which in a thread
without an event loop builds a loop per call, and channels_redis a connection per loop: a few
milliseconds per message, paid by the task thread that should be reading the engine's events.
With dozens of jobs streaming at once that cost adds up to the whole run. Here one event loop per
process owns the layer's connections. Messages to one group are sent in the order they were handed
over (a job's final state never overtakes its last tokens); different groups' messages go out side
by side: channels_redis spends four Redis round trips on a group send, and in a worker whose dozens
of job threads contend for the interpreter lock each round trip waits its turn, so one message
after another queued a batch's final states for half a second (bench/inference_stack.py). Best
effort, like `config.realtime`.

Embedded mode keeps `config.realtime` (its in-memory layer lives on the server's loop)."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from typing import Any

from django.conf import settings
from django.db import transaction

from config import realtime

log = logging.getLogger(__name__)

_loop: asyncio.AbstractEventLoop | None = None
_queue: asyncio.Queue[tuple[str, dict[str, Any]]] | None = None
_lock = threading.Lock()
_tasks: set[asyncio.Task[None]] = set()  # a running task must be referenced, or it may be collected
IN_FLIGHT = 32  # group sends at once; each holds one of the layer's pooled Redis connections


async def _send(group: str, message: dict[str, Any]) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()  # per message: a reset layer (tests do that) takes effect at once
    if layer is None:
        return
    try:
        await layer.group_send(group, message)
    except Exception:
        log.warning("broadcast to %s failed", group, exc_info=True)


async def _drain(queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
    tails: dict[str, asyncio.Task[None]] = {}  # per group, its last message's send
    slots = asyncio.Semaphore(IN_FLIGHT)

    async def after(previous: asyncio.Task[None] | None, group: str, message: dict[str, Any]) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its own errors are logged by _send, never raised
        async with slots:
            await _send(group, message)

    def forget(group: str, task: asyncio.Task[None]) -> None:  # the group's chain has ended
        if tails.get(group) is task:
            del tails[group]

    while True:
        group, message = await queue.get()
        task = asyncio.get_running_loop().create_task(after(tails.get(group), group, message))
        tails[group] = task
        task.add_done_callback(functools.partial(forget, group))


def _start() -> tuple[asyncio.AbstractEventLoop, asyncio.Queue[tuple[str, dict[str, Any]]]]:
    global _loop, _queue
    with _lock:
        if _loop is None or _queue is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()

            def run() -> None:
                asyncio.set_event_loop(loop)
                _tasks.add(loop.create_task(_drain(queue)))
                loop.run_forever()

            threading.Thread(target=run, name="inference-broadcast", daemon=True).start()
            _loop, _queue = loop, queue
        return _loop, _queue


def broadcast(group: str, message: dict[str, Any]) -> None:
    if settings.EMBEDDED:
        realtime.broadcast(group, message)
        return
    loop, queue = _start()
    loop.call_soon_threadsafe(queue.put_nowait, (group, message))


def broadcast_on_commit(group: str, message: dict[str, Any]) -> None:
    transaction.on_commit(lambda: broadcast(group, message))
