"""Websocket routes. Each app contributes its own list; consumers check access on connect."""

from __future__ import annotations

from typing import Any

from clinical.routing import websocket_urlpatterns as clinical_ws
from inference.routing import websocket_urlpatterns as inference_ws

websocket_urlpatterns: list[Any] = [*clinical_ws, *inference_ws]
