"""channels_redis' layer with a group send in two Redis round trips instead of four, many group
sends in the same two (`group_send_many`, the worker's broadcaster), and a process's waiting
messages taken in one round trip instead of three or four each (`receive_single`).

A GPU worker streaming 64 drafts sends about 200 group messages a second, and the stock
`group_send` awaits four commands one after another (expire the group, read its members, expire
each member's queue, the Lua script that queues the message): a third of the worker's CPU went to
them (py-spy, bench/inference_stack.py). Here the first two go in one pipeline, the last two in
another; a group nobody watches costs one round trip. Same keys, same Lua script, same expiry and
capacity rules as channels_redis 4.3 (pinned in requirements/base.txt; `tests/test_channel_layer.py`
runs the layer against Redis)."""

from __future__ import annotations

import asyncio
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


# Put back what an earlier receive took but never handed over (its backup, as channels_redis's own
# cleanup script does), then take up to ARGV[1] waiting messages, keeping each in the backup until
# its handing over is confirmed (`_clean_receive_backup_many`).
DRAIN_LUA = """
    local backed_up = redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')
    for i = #backed_up, 1, -2 do
        redis.call('ZADD', KEYS[1], backed_up[i], backed_up[i - 1])
    end
    redis.call('DEL', KEYS[2])
    local popped = redis.call('ZPOPMIN', KEYS[1], ARGV[1])
    for i = 1, #popped, 2 do
        redis.call('ZADD', KEYS[2], popped[i + 1], popped[i])
    end
    return popped
"""
DRAIN_MAX = 256


class RedisChannelLayer(_StockLayer):
    async def receive_single(self, channel: str) -> tuple[Any, Any]:
        """For this process's channels ("specific.…!"): every message waiting in the process's
        queue, up to DRAIN_MAX, in one round trip, each put in its consumer's buffer in order; the
        stock layer took one message per call in three round trips (cleanup script, BZPOPMIN, ZADD
        of the backup) and a fourth to clear the backup. A GPU worker's batch of token messages for
        64 watchers of one ASGI process arrives together. With nothing waiting it blocks as the
        stock layer does. Returns `([], None)`: channels_redis's `receive` then buffers nothing
        more (an empty list of channels) and hands its caller what is in its buffer, if anything.
        Other channels (no "!") are received as the stock layer does."""
        if "!" not in channel:
            return await super().receive_single(channel)
        assert self.require_valid_channel_name(channel, receive=True), "Channel name invalid"
        assert channel.endswith("!")
        index = self.consistent_hash(channel)
        channel_key = self.prefix + channel
        backup = self._backup_channel_name(channel_key)
        await self.receive_clean_locks.acquire(channel_key)
        try:
            connection = self.connection(index)
            popped = await connection.eval(DRAIN_LUA, 2, channel_key, backup, DRAIN_MAX)
            contents = popped[0::2]
            while not contents:  # nothing waiting: block, as channels_redis does (backup is empty)
                result = await connection.bzpopmin(channel_key, timeout=self.brpop_timeout)
                if result is not None:
                    _, member, timestamp = result
                    await connection.zadd(backup, {member: float(timestamp)})
                    contents = [member]
            # No await from here to the buffers: a cancellation cannot lose what was taken.
            cleaner = asyncio.ensure_future(self._clean_receive_backup_many(index, channel_key, len(contents)))
            self.receive_cleaners.append(cleaner)

            def _cleanup_done(done: asyncio.Future[None]) -> None:
                self.receive_cleaners.remove(done)
                self.receive_clean_locks.release(channel_key)

            cleaner.add_done_callback(_cleanup_done)
        except BaseException:
            self.receive_clean_locks.release(channel_key)
            raise
        messages = []
        for content in contents:  # all decoded before any is handed over: a bad one costs only itself
            try:
                messages.append(self.deserialize(content))
            except Exception:
                log.exception("a channel-layer message could not be decoded and was dropped")
        for message in messages:
            # One queued copy of a group message names every member of this process (a list).
            targets = message.pop("__asgi_channel__", channel)
            for target in targets if isinstance(targets, list) else [targets]:
                self.receive_buffer[target].put_nowait(message)
        return [], None

    async def _clean_receive_backup_many(self, index: int, channel_key: str, count: int) -> None:
        """The messages are in their consumers' buffers: drop them from the backup."""
        await self.connection(index).zpopmin(self._backup_channel_name(channel_key), count)

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
