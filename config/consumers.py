"""The base of our websocket consumers: a message is handled without a thread hop first.

Channels 4.2+ runs `close_old_connections` in a worker thread before every handler of every
message (`AsyncConsumer.dispatch`), for consumers that reach the database through plain
`sync_to_async`. Ours reach it only through `database_sync_to_async`, which closes old connections
around each call itself, and most messages (a draft's tokens, a job's state, progress) never touch
the database: the hop was a sixth to a half of the CPU an ASGI process spent delivering one
message to one watcher (32 watchers, 640 messages, alternating runs on a 2-core machine: 0.96 →
0.82 ms, and 0.49–0.59 → 0.25–0.34 ms with the layer's batched receive; a GPU worker's 64 drafts
send ≈ 10 messages per watcher)."""

from __future__ import annotations

from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer


class JsonConsumer(AsyncJsonWebsocketConsumer):
    """AsyncJsonWebsocketConsumer whose handlers use the database only through
    `database_sync_to_async` (never plain `sync_to_async`)."""

    async def dispatch(self, message: dict[str, Any]) -> None:
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)
