"""channels_redis' layer with a group send in two Redis round trips instead of four, and many group
sends in the same two (`group_send_many`, the worker's broadcaster).

A GPU worker streaming 64 drafts sends about 200 group messages a second, and the stock
`group_send` awaits four commands one after another (expire the group, read its members, expire
each member's queue, the Lua script that queues the message): a third of the worker's CPU went to
them (py-spy, bench/inference_stack.py). Here the first two go in one pipeline, the last two in
another; a group nobody watches costs one round trip. Same keys, same Lua script, same expiry and
capacity rules as channels_redis 4.3 (pinned in requirements/base.txt; `tests/test_channel_layer.py`
runs the layer against Redis)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

from channels_redis.core import RedisChannelLayer as _StockLayer

# The stock logger and message: "N of M channels over capacity" is counted by bench/ws_fanout.py.
log = logging.getLogger("channels_redis.core")

# channels_redis 4.3's group_send script: queue the message on each member's key unless full.
GROUP_SEND_LUA = """
    local over_capacity = 0
    local current_time = ARGV[#ARGV - 1]
    local expiry = ARGV[#ARGV]
    for i=1,#KEYS do
        if redis.call('ZCOUNT', KEYS[i], '-inf', '+inf') < tonumber(ARGV[i + #KEYS]) then
            redis.call('ZADD', KEYS[i], current_time, ARGV[i])
            redis.call('EXPIRE', KEYS[i], expiry)
        else
            over_capacity = over_capacity + 1
        end
    end
    return over_capacity
"""


class RedisChannelLayer(_StockLayer):
    async def group_send(self, group: str, message: dict[str, Any]) -> None:
        await self.group_send_many([(group, message)])

    async def group_send_many(self, sends: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """Several group sends in the same two round trips per Redis connection: every group's
        members in one pipeline, every message queued in another. Each member gets its messages in
        the order given (a pipeline runs its commands in order). A worker ending 64 drafts at once
        hands over two messages per draft; sent one by one they held the last client's final state
        back (bench/inference_stack.py: engine's last step → last client)."""
        for group, _message in sends:
            assert self.require_valid_group_name(group), "Group name not valid"
        # Each group's members read once, however many of the batch's messages go to it (a batch
        # of final states holds one worklist message per draft, all to one facility's group).
        members: dict[str, list[str]] = {}
        by_connection: dict[int, list[str]] = {}
        for group in dict.fromkeys(group for group, _message in sends):
            by_connection.setdefault(self.consistent_hash(group), []).append(group)
        cutoff = int(time.time()) - self.group_expiry
        for index, groups in by_connection.items():
            pipe = self.connection(index).pipeline(transaction=False)
            for group in groups:
                key = self._group_key(group)
                pipe.zremrangebyscore(key, min=0, max=cutoff)
                pipe.zrange(key, 0, -1)
            replies = await pipe.execute()
            for n, group in enumerate(groups):
                members[group] = [member.decode("utf8") for member in replies[2 * n + 1]]
        pipes: dict[int, Any] = {}
        scripts: dict[int, list[tuple[int, str, int]]] = {}  # per pipe: (reply index, group, members)
        started = time.time()
        for position, (group, message) in enumerate(sends):
            # A member's queue is a sorted set scored by the time of sending; messages of one score
            # come out in the order of their bytes. Each message of the batch gets its own, later time.
            now = started + position * 1e-6
            channel_names = members[group]
            if not channel_names:
                continue  # a group nobody watches: one round trip, shared
            keys_by_connection, message_by_key, capacity_by_key = self._map_channel_keys_to_connection(
                channel_names, message)
            for index, channel_keys in keys_by_connection.items():
                pipe = pipes.get(index)
                if pipe is None:
                    pipe = pipes[index] = self.connection(index).pipeline(transaction=False)
                for channel_key in channel_keys:
                    pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(self.expiry))
                args = [message_by_key[k] for k in channel_keys] + [capacity_by_key[k] for k in channel_keys]
                scripts.setdefault(index, []).append((len(pipe), group, len(channel_names)))
                pipe.eval(GROUP_SEND_LUA, len(channel_keys), *channel_keys, *args, now, self.expiry)
        for index, pipe in pipes.items():
            replies = await pipe.execute()
            for reply, group, count in scripts[index]:
                if replies[reply] > 0:
                    log.info("%s of %s channels over capacity in group %s", replies[reply], count, group)
