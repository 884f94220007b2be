"""Embedded mode: the whole application in one process, no services to install.

uvicorn serves the ASGI app; a Celery worker consumes the in-memory broker from a thread of the
same process; Channels uses its in-memory layer. Both memory transports are private to one
process, so embedded mode is exactly one server process (stack-notes.md)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)

# The server's event loop. The in-memory channel layer is not thread-safe: code running in the
# worker thread must schedule group_send on this loop instead of using async_to_sync.
server_loop: asyncio.AbstractEventLoop | None = None


def run_on_server_loop(coro: Coroutine[Any, Any, Any]) -> None:
    if server_loop is None or server_loop.is_closed():
        coro.close()
        return
    asyncio.run_coroutine_threadsafe(coro, server_loop)


def worker_alive(timeout: float = 3.0) -> bool:
    """True when the in-process worker actually executes a task within `timeout` seconds."""
    from config.celery import ping

    try:
        return bool(ping.apply_async(queue="default").get(timeout=timeout, interval=0.02) == "pong")
    except Exception:  # a health probe answers no, it does not raise
        log.warning("embedded worker did not answer a ping", exc_info=True)
        return False


def serve(host: str = "127.0.0.1", port: int = 8000) -> None:
    import uvicorn
    from celery.contrib.testing.worker import start_worker

    from config.celery import app

    async def main() -> None:
        global server_loop
        server_loop = asyncio.get_running_loop()
        config = uvicorn.Config("config.asgi:application", host=host, port=port, lifespan="off",
                                log_level="info", ws="websockets-sansio")
        await uvicorn.Server(config).serve()

    # start_worker runs a real WorkController in a thread (solo pool: one task at a time, which
    # is what one CPU-bound template/tiny-model drafter wants in a demo).
    with start_worker(app, pool="solo", concurrency=1, perform_ping_check=False, queues=["default", "gpu"],
                      loglevel="WARNING", shutdown_timeout=5.0):
        asyncio.run(main())
