"""Websocket consumers of the clinical app: import progress."""

from __future__ import annotations

from typing import Any

from channels.db import database_sync_to_async

from audit.context import RequestContext, acting, new_request_id
from clinical.models import ImportBatch
from clinical.scoping import scope
from config.consumers import JsonConsumer


class ImportProgressConsumer(JsonConsumer):
    """`ws/imports/<id>/`: the batch's state now, then every progress message. Only users who may
    import for the batch's facility may watch; anyone else is closed with 4404."""

    group: str | None = None

    async def connect(self) -> None:
        user = self.scope.get("user")
        batch_id = int(self.scope["url_route"]["kwargs"]["batch_id"])
        # Join before reading the state: an import that ends between the read and the join would
        # send its last message to nobody and leave this client waiting (seen in the suite). Nothing
        # reaches a client that is refused: messages are handled only after connect returns.
        group = f"import.{batch_id}"
        await self.channel_layer.group_add(group, self.channel_name)
        state = await self._state(user, self.scope.get("session"), batch_id)
        if state is None:
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.close(code=4404)
            return
        self.group = group
        await self.accept()
        await self.send_json(state)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def import_progress(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    @database_sync_to_async
    def _state(self, user: Any, session: Any, batch_id: int) -> dict[str, Any] | None:
        from clinical.auth.otp_required import websocket_user_verified
        from clinical.scoping import get_scoped_or_404

        if not websocket_user_verified(user, session):
            return None
        ctx = RequestContext(request_id=new_request_id(), user_id=user.pk, username=user.get_username(),
                             channel="websocket")
        with acting(ctx):
            try:
                batch = get_scoped_or_404(scope(ImportBatch.objects.all(), user, perm="import_checkups"), user,
                                          perm="import_checkups", pk=batch_id)
            except Exception:  # Http404: audited as access_denied by get_scoped_or_404
                return None
        from clinical.intake.services import batch_state

        return batch_state(batch)
