"""channels_redis' layer with a group send in two Redis round trips instead of four.

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
        assert self.require_valid_group_name(group), "Group name not valid"
        key = self._group_key(group)
        connection = self.connection(self.consistent_hash(group))
        pipe = connection.pipeline(transaction=False)
        pipe.zremrangebyscore(key, min=0, max=int(time.time()) - self.group_expiry)
        pipe.zrange(key, 0, -1)
        _expired, members = await pipe.execute()
        channel_names = [member.decode("utf8") for member in members]
        if not channel_names:
            return
        keys_by_connection, message_by_key, capacity_by_key = self._map_channel_keys_to_connection(
            channel_names, message)
        for index, channel_keys in keys_by_connection.items():
            now = time.time()
            pipe = self.connection(index).pipeline(transaction=False)
            for channel_key in channel_keys:
                pipe.zremrangebyscore(channel_key, min=0, max=int(now) - int(self.expiry))
            args = [message_by_key[k] for k in channel_keys] + [capacity_by_key[k] for k in channel_keys]
            pipe.eval(GROUP_SEND_LUA, len(channel_keys), *channel_keys, *args, now, self.expiry)
            over_capacity = (await pipe.execute())[-1]
            if over_capacity > 0:
                log.info("%s of %s channels over capacity in group %s", over_capacity, len(channel_names), group)
