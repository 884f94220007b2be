"""Who is acting, from where, in which request: set once by middleware (NetBox's
`current_request`), read by every audit write. Consumers and tasks set it explicitly."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass(frozen=True)
class RequestContext:
    request_id: str
    source_ip: str | None = None
    user_id: int | None = None
    username: str = ""
    channel: str = "web"  # web | api | websocket | task | command


_current: contextvars.ContextVar[RequestContext | None] = contextvars.ContextVar("audit_ctx", default=None)


def current_context() -> RequestContext | None:
    return _current.get()


def new_request_id() -> str:
    return uuid.uuid4().hex


@contextmanager
def acting(ctx: RequestContext) -> Iterator[RequestContext]:
    token = _current.set(ctx)
    try:
        yield ctx
    finally:
        _current.reset(token)


def set_context(ctx: RequestContext | None) -> contextvars.Token[RequestContext | None]:
    return _current.set(ctx)


def reset_context(token: contextvars.Token[RequestContext | None]) -> None:
    _current.reset(token)
