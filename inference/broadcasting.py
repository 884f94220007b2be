"""Group sends from worker threads without blocking them.

`config.realtime.broadcast` called from a plain thread runs `async_to_sync`, which in a thread
without an event loop builds a loop per call, and channels_redis a connection per loop: a few
milliseconds per message, paid by the task thread that should be reading the engine's events.
With dozens of jobs streaming at once that cost adds up to the whole run. Here one event loop per
process owns the layer's connections, and sends what the threads handed over in batches: whatever
waits when a batch leaves goes out together, in two Redis round trips for all of it
(`config.channel_layer.RedisChannelLayer.group_send_many`), the next batch after this one, so a
group's messages arrive in the order they were handed over (a job's final state never overtakes its
last tokens). One group send after another, in a worker whose dozens of job threads contend for the
interpreter lock, queued a batch's final states for half a second; side by side (session 5) each
still paid its own round trips and 1.1 ms of CPU (bench/inference_stack.py). Best effort, like
`config.realtime`.

Embedded mode keeps `config.realtime` (its in-memory layer lives on the server's loop)."""

from __future__ import annotations

import asyncio
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
MAX_BATCH = 256  # messages in one batch (its pipelines hold them all until Redis answers)


async def _send(batch: list[tuple[str, dict[str, Any]]]) -> None:
    from channels.layers import get_channel_layer

    layer = get_channel_layer()  # per batch: a reset layer (tests do that) takes effect at once
    if layer is None:
        return
    many = getattr(layer, "group_send_many", None)
    if many is not None and len(batch) > 1:
        try:
            await many(batch)
            return
        except Exception:  # one bad message must not cost the others theirs: each again, alone
            log.warning("a batch of %d broadcasts failed; sending them one by one", len(batch), exc_info=True)
    for group, message in batch:  # in order; another layer (the tests' in-memory one) always so
        try:
            await layer.group_send(group, message)
        except Exception:
            log.warning("broadcast to %s failed", group, exc_info=True)


async def _drain(queue: asyncio.Queue[tuple[str, dict[str, Any]]]) -> None:
    while True:
        batch = [await queue.get()]
        while len(batch) < MAX_BATCH and not queue.empty():
            batch.append(queue.get_nowait())
        await _send(batch)


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
