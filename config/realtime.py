"""Sending to websocket groups from anywhere (views, services, Celery tasks), in both topologies.

Production: the Redis channel layer, called synchronously. Embedded: the in-memory layer lives
on the server's event loop and is not thread-safe, so a worker thread schedules the send there
(stack-notes.md)."""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.db import transaction

log = logging.getLogger(__name__)


def broadcast(group: str, message: dict[str, Any]) -> None:
    """Best effort: a lost progress message must never fail the work it reports on."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        if settings.EMBEDDED:
            from config import embedded

            if embedded.server_loop is not None:
                embedded.run_on_server_loop(layer.group_send(group, message))
                return
        async_to_sync(layer.group_send)(group, message)
    except Exception:
        log.warning("broadcast to %s failed", group, exc_info=True)


def broadcast_on_commit(group: str, message: dict[str, Any]) -> None:
    """Side effects after commit (house rule 3): nobody hears of a change that rolled back."""
    transaction.on_commit(lambda: broadcast(group, message))
