"""Websockets of inference: one job's stream (`ws/jobs/<id>/`) and a physician's live worklist
(`ws/worklist/`). Authenticated (second factor included), object-checked on connect, audited."""

from __future__ import annotations

import time
from typing import Any

from channels.db import database_sync_to_async

from audit.context import RequestContext, acting, new_request_id
from audit.kinds import EventKind
from audit.services import audit_read_record, audit_record
from config.consumers import JsonConsumer


def _ctx(user: Any) -> RequestContext:
    return RequestContext(request_id=new_request_id(), user_id=user.pk, username=user.get_username(),
                          channel="websocket")


class JobStreamConsumer(JsonConsumer):
    """Sends the job's persisted state first (status and partial text), then token deltas and state
    changes. Deltas carry their offset in the text; a delta that starts beyond what this client has
    (tokens sent before it connected, not yet persisted) makes the consumer re-read the persisted
    text, so a reconnecting client never ends with a hole."""

    group: str | None = None
    have: int = 0  # characters of the draft this client holds
    job_id: int = 0
    _resync_at: float = 0.0

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.job_id = int(self.scope["url_route"]["kwargs"]["job_id"])
        if user is None or not user.is_authenticated:
            await self.close(code=4404)
            return
        # Join before reading the state: nothing sent in between is missed (offsets resolve
        # repeats). Messages that arrive meanwhile wait in this consumer's channel until connect()
        # returns, and reach the client only if it was let in (`self.group` is set only then).
        group = f"job.{self.job_id}"
        await self.channel_layer.group_add(group, self.channel_name)
        # Second factor, scope, audit and state in one trip to a database thread (each trip costs
        # a thread hand-off and connection checks: 64 subscribers connecting at once spent 8 ms of
        # CPU each in this process, bench/inference_stack.py).
        state = await self._open(user, self.scope.get("session"))
        if state is None:
            await self.channel_layer.group_discard(group, self.channel_name)
            await self.close(code=4404)
            return
        self.group = group
        await self.accept()
        await self.job_state(state)

    async def disconnect(self, code: int) -> None:
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        if isinstance(content, dict) and content.get("type") == "resync":
            await self._send_state()

    async def job_state(self, event: dict[str, Any]) -> None:
        if self.group is None:  # refused: the group's messages that came meanwhile go nowhere
            return
        self.have = len(event.get("text") or "")
        await self.send_json(event)

    async def job_token(self, event: dict[str, Any]) -> None:
        if self.group is None:
            return
        offset, text = int(event["offset"]), str(event["text"])
        if offset > self.have:
            # A hole before this delta: take the persisted text (≤ 200 ms behind) at most every 100 ms.
            now = time.monotonic()
            if now - self._resync_at < 0.1:
                return
            self._resync_at = now
            state = await self._state()
            if state is None:
                return
            persisted = state["text"]
            if len(persisted) > self.have:
                await self.send_json({**event, "offset": self.have, "text": persisted[self.have:]})
                self.have = len(persisted)
            if offset > self.have:
                return
        if offset + len(text) <= self.have:
            return  # already held
        await self.send_json(event)
        self.have = offset + len(text)

    async def _send_state(self) -> None:
        state = await self._state()
        if state is not None:
            await self.job_state(state)

    @database_sync_to_async
    def _open(self, user: Any, session: Any) -> dict[str, Any] | None:
        """The job's state if the user may watch it (second factor passed, job in their scope), the
        connect audited; None otherwise (outside the scope: audited access_denied)."""
        from django.http import Http404

        from clinical.auth.otp_required import websocket_user_verified
        from inference.events import job_state
        from inference.selectors import job_for

        if not websocket_user_verified(user, session):
            return None
        with acting(_ctx(user)):
            try:
                job = job_for(user, self.job_id)
            except Http404:
                return None
            # Every subscriber's connect is audited; without a WAL flush each (see audit_read_record),
            # so a thousand watchers connecting at once do not queue behind a thousand disk syncs.
            audit_read_record(kind=EventKind.PHI_READ, user=user, facility_id=job.facility_id,
                              object_type="inference.inferencejob", object_id=job.pk, patient_id=job.patient_id,
                              details={"view": "job_stream"})
        return job_state(job)

    @database_sync_to_async
    def _state(self) -> dict[str, Any] | None:
        from inference.events import job_state
        from inference.models import InferenceJob

        job = InferenceJob.objects.select_related("model_version").filter(pk=self.job_id).first()
        return job_state(job) if job is not None else None


class WorklistConsumer(JsonConsumer):
    """Joins the worklist group of every facility where the user may sign reports."""

    groups_joined: list[str]

    async def connect(self) -> None:
        self.groups_joined = []
        facilities = await self._facilities(self.scope.get("user"), self.scope.get("session"))
        if not facilities:
            await self.close(code=4403)
            return
        for facility_id in facilities:
            group = f"worklist.{facility_id}"
            await self.channel_layer.group_add(group, self.channel_name)
            self.groups_joined.append(group)
        await self.accept()
        await self.send_json({"type": "worklist.hello", "facilities": facilities})

    async def disconnect(self, code: int) -> None:
        for group in getattr(self, "groups_joined", []):
            await self.channel_layer.group_discard(group, self.channel_name)

    async def worklist_draft(self, event: dict[str, Any]) -> None:
        await self.send_json(event)

    async def worklist_report(self, event: dict[str, Any]) -> None:
        # A report was edited or signed (sent by the reports app; it carries ids, not PHI).
        await self.send_json(event)

    @database_sync_to_async
    def _facilities(self, user: Any, session: Any) -> list[int]:
        from clinical.auth.otp_required import websocket_user_verified
        from clinical.scoping import facility_ids_for

        if not websocket_user_verified(user, session):
            return []
        ids = facility_ids_for(user, "sign_reports")
        with acting(_ctx(user)):
            audit_record(kind=EventKind.PHI_READ if ids else EventKind.ACCESS_DENIED, user=user,
                         object_type="inference.worklist", outcome="success" if ids else "denied",
                         details={"view": "worklist_stream", "facilities": ids})
        return ids
