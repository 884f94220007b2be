"""Websocket routes. Each app contributes its own list; consumers check access on connect."""

from __future__ import annotations

from typing import Any

websocket_urlpatterns: list[Any] = []
