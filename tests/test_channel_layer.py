"""Our channel layer against Redis: a group send in two round trips (members get the message in
order, a group nobody watches gets nothing, a full member's queue drops it as channels_redis does),
and a process's waiting messages taken in one round trip, none lost to a cancelled receive."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid

import pytest

from config.channel_layer import RedisChannelLayer

REDIS_URL = os.environ.get("REDIS_URL", "")
pytestmark = pytest.mark.skipif(not REDIS_URL, reason="needs Redis (REDIS_URL)")


def _layer(capacity: int = 100) -> RedisChannelLayer:
    db = int(os.environ.get("REDIS_DB_BASE", "0")) + 2  # the test settings' channel layer database
    return RedisChannelLayer(hosts=[{"address": f"{REDIS_URL.rstrip('/')}/{db}"}], capacity=capacity,
                             prefix=f"test-{uuid.uuid4().hex[:8]}")


async def _nothing_for_then_close(layer: RedisChannelLayer, channel: str) -> bool:
    """True if `channel` receives nothing within 0.3 s; then the layer's keys and pools go."""
    try:
        await asyncio.wait_for(layer.receive(channel), timeout=0.3)
        nothing = False
    except TimeoutError:
        nothing = True
    await layer.flush()
    await layer.close_pools()
    return nothing


def test_every_member_of_a_group_gets_its_messages_in_order_and_others_get_none() -> None:
    async def run() -> tuple[list[int], list[int], bool]:
        layer = _layer()
        a, b, outsider = [await layer.new_channel() for _ in range(3)]
        for channel in (a, b):
            await layer.group_add("job.1", channel)
        await layer.group_send("job.2", {"type": "job.token", "n": -1})  # nobody watches job 2
        for n in range(5):
            await layer.group_send("job.1", {"type": "job.token", "n": n})
        got_a = [(await layer.receive(a))["n"] for _ in range(5)]
        got_b = [(await layer.receive(b))["n"] for _ in range(5)]
        nothing = await _nothing_for_then_close(layer, outsider)
        return got_a, got_b, nothing

    got_a, got_b, nothing = asyncio.run(run())
    assert got_a == got_b == [0, 1, 2, 3, 4]
    assert nothing


def test_a_member_whose_queue_is_full_misses_the_message_and_it_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> list[int]:
        layer = _layer(capacity=2)
        channel = await layer.new_channel()
        await layer.group_add("job.1", channel)
        for n in range(3):
            await layer.group_send("job.1", {"type": "job.token", "n": n})
        got = [(await layer.receive(channel))["n"] for _ in range(2)]
        await layer.flush()
        await layer.close_pools()
        return got

    with caplog.at_level(logging.INFO, logger="channels_redis.core"):
        assert asyncio.run(run()) == [0, 1]
    assert "1 of 1 channels over capacity in group job.1" in caplog.text


def test_many_group_sends_in_one_batch_reach_each_member_in_the_order_given() -> None:
    """What the worker's broadcaster hands over: tokens and final states of several jobs, and a
    worklist message nobody listens to, in one batch of two round trips."""
    async def run() -> tuple[list[int], list[int], list[int], bool]:
        layer = _layer()
        a1, a2, b, outsider = [await layer.new_channel() for _ in range(4)]
        for channel in (a1, a2):
            await layer.group_add("job.1", channel)
        await layer.group_add("job.2", b)
        # Messages whose bytes sort the other way round: the order given must win.
        sends = [("job.1", 9), ("job.2", 9), ("job.1", 1), ("worklist.9", -1), ("job.2", 1), ("job.1", 0)]
        await layer.group_send_many([(group, {"type": "job.token", "n": n}) for group, n in sends])
        got = [[(await layer.receive(c))["n"] for _ in range(count)] for c, count in ((a1, 3), (a2, 3), (b, 2))]
        nothing = await _nothing_for_then_close(layer, outsider)
        return got[0], got[1], got[2], nothing

    got_a1, got_a2, got_b, nothing = asyncio.run(run())
    assert got_a1 == got_a2 == [9, 1, 0] and got_b == [9, 1]
    assert nothing


def test_one_receive_takes_every_waiting_message_of_the_process_into_its_consumers_buffers() -> None:
    """Token messages for many watchers of one ASGI process arrive together: the first receive
    takes them all (one round trip), and the others are then served from the buffers, in order,
    even with the process's Redis queue gone."""
    async def run() -> tuple[int, list[list[int]], int]:
        layer = _layer()
        channels = [await layer.new_channel() for _ in range(3)]
        for i, channel in enumerate(channels):
            await layer.group_add(f"job.{i}", channel)
        await layer.group_send_many([(f"job.{i}", {"type": "job.token", "n": n}) for n in range(4) for i in range(3)])
        first = (await layer.receive(channels[0]))["n"]
        key = layer.prefix + layer.non_local_name(channels[0])
        waiting = await layer.connection(0).zcard(key)
        await layer.connection(0).delete(key)  # what is still to come must already be here
        got = [[(await layer.receive(c))["n"] for _ in range(4 if c != channels[0] else 3)] for c in channels]
        await layer.wait_received()
        backup = await layer.connection(0).zcard(key + "$inflight")
        await layer.flush()
        await layer.close_pools()
        return waiting, [[first, *got[0]], *got[1:]], backup

    waiting, got, backup = asyncio.run(run())
    assert waiting == 0
    assert got == [[0, 1, 2, 3]] * 3
    assert backup == 0  # handed over: nothing left to be put back


def test_a_receive_cancelled_while_it_waits_loses_no_message() -> None:
    async def run() -> list[int]:
        layer = _layer()
        channel = await layer.new_channel()
        await layer.group_add("job.1", channel)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(layer.receive(channel), timeout=0.2)
        for n in range(2):
            await layer.group_send("job.1", {"type": "job.token", "n": n})
        got = [(await asyncio.wait_for(layer.receive(channel), timeout=5))["n"] for _ in range(2)]
        await layer.flush()
        await layer.close_pools()
        return got

    assert asyncio.run(run()) == [0, 1]


def test_a_message_that_cannot_be_decoded_is_dropped_alone(caplog: pytest.LogCaptureFixture) -> None:
    async def run() -> list[int]:
        layer = _layer()
        a, b = [await layer.new_channel() for _ in range(2)]
        await layer.group_add("job.1", a)
        await layer.group_add("job.2", b)
        await layer.group_send("job.1", {"type": "job.token", "n": 0})
        key = layer.prefix + layer.non_local_name(a)
        await layer.connection(0).zadd(key, {b"\x00not a message": time.time()})  # between the two
        await layer.group_send("job.2", {"type": "job.token", "n": 1})
        got = [(await asyncio.wait_for(layer.receive(c), timeout=5))["n"] for c in (a, b)]
        await layer.flush()
        await layer.close_pools()
        return got

    with caplog.at_level(logging.ERROR, logger="channels_redis.core"):
        assert asyncio.run(run()) == [0, 1]
    assert "could not be decoded" in caplog.text
