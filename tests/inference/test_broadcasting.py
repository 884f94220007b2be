"""The worker's broadcaster: group sends from job threads, each group's messages in order."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.conf import settings

from inference.broadcasting import broadcast


def test_each_groups_messages_arrive_in_the_order_its_threads_handed_them_over() -> None:
    """Groups are sent side by side; within a group a later token never overtakes an earlier one,
    and the final state comes last."""
    if settings.EMBEDDED or "RedisChannelLayer" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.skip("needs the Redis channel layer (REDIS_URL)")
    layer = get_channel_layer()
    groups = [f"job.99{i:04d}" for i in range(6)]
    per_group = 40

    def hand_over(group: str) -> None:
        for n in range(per_group):
            broadcast(group, {"type": "job.token", "n": n, "final": n == per_group - 1})

    async def run() -> dict[str, list[Any]]:
        channels = {}
        for group in groups:
            channels[group] = await layer.new_channel()
            await layer.group_add(group, channels[group])
        threads = [threading.Thread(target=hand_over, args=(group,)) for group in groups]
        for thread in threads:
            thread.start()
        received: dict[str, list[Any]] = {}
        for group in groups:
            got = received[group] = []
            while not got or not got[-1]["final"]:
                got.append(await asyncio.wait_for(layer.receive(channels[group]), timeout=10))
        for thread in threads:
            thread.join()
        for group in groups:
            await layer.group_discard(group, channels[group])
        return received

    received = asyncio.run(run())
    for group in groups:
        assert [m["n"] for m in received[group]] == list(range(per_group))


def test_a_message_the_layer_refuses_does_not_cost_the_others_of_its_batch_theirs() -> None:
    if settings.EMBEDDED or "RedisChannelLayer" not in settings.CHANNEL_LAYERS["default"]["BACKEND"]:
        pytest.skip("needs the Redis channel layer (REDIS_URL)")
    layer = get_channel_layer()

    async def run() -> list[int]:
        channel = await layer.new_channel()
        await layer.group_add("job.990100", channel)
        for n in range(3):  # handed over together: one batch, or a few
            broadcast("job.990100", {"type": "job.token", "n": n})
            broadcast("not a valid group name!", {"type": "job.token", "n": -1})
        got = [(await asyncio.wait_for(layer.receive(channel), timeout=10))["n"] for _ in range(3)]
        await layer.group_discard("job.990100", channel)
        return got

    assert asyncio.run(run()) == [0, 1, 2]
