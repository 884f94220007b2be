"""The C-STORE SCP (pynetdicom): modalities push to us over DIMSE, and each object goes through the
same ingest service as STOW-RS and uploads.

Only registered AE titles (DicomNode, optionally pinned to a host) may associate; the AE title
decides the facility. A refused object gets the same failure code as over STOW-RS, with the reason
in Error Comment (0000,0902)."""

from __future__ import annotations

import logging
from typing import Any

from django.db import close_old_connections
from pydicom.dataset import Dataset
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from audit.context import RequestContext, acting, new_request_id
from audit.kinds import EventKind, Outcome
from audit.services import audit_record
from clinical.dicom.models import DicomNode, Source
from clinical.dicom.refusals import Reason
from clinical.dicom.services import instance_ingest

log = logging.getLogger(__name__)


def _calling(event: Any) -> str:
    primitive = event.assoc.requestor.primitive
    title = getattr(primitive, "calling_ae_title", "") if primitive is not None else ""
    return str(title or event.assoc.requestor.ae_title or "").strip()


def _node(ae_title: str, address: str) -> DicomNode | None:
    node = DicomNode.objects.select_related("facility").filter(ae_title=ae_title, is_active=True).first()
    if node is None or not node.facility.is_active or (node.host and node.host != address):
        return None
    return node


def _context(event: Any, ae_title: str) -> RequestContext:
    return RequestContext(request_id=new_request_id(), source_ip=event.assoc.requestor.address or None,
                          username=f"AE:{ae_title}"[:150], channel="dicom")


def handle_requested(event: Any) -> None:
    """Refuse the association of an AE title we do not know (PS3.8: "calling AE title not
    recognized"), before any data is sent."""
    close_old_connections()
    ae_title, address = _calling(event), event.assoc.requestor.address
    if _node(ae_title, address) is None:
        with acting(_context(event, ae_title)):
            audit_record(kind=EventKind.ACCESS_DENIED, outcome=Outcome.DENIED, object_type="dicom.node",
                         object_id=ae_title[:64], details={"operation": "c-store association", "address": address})
        event.assoc.acse.send_reject(0x01, 0x01, 0x03)
        # As pynetdicom's own rejection does: wait for the A-ASSOCIATE-RJ to go out before the
        # server closes the socket, or the peer only sees a dropped connection.
        event.assoc.kill()


def handle_store(event: Any) -> int | Dataset:
    ae_title = _calling(event)
    node = _node(ae_title, event.assoc.requestor.address)
    if node is None:  # deactivated while the association was open
        return _status(Reason.NOT_AUTHORIZED, f"AE タイトル {ae_title} は登録されていません")
    with acting(_context(event, ae_title)):
        try:
            result = instance_ingest(data=event.encoded_dataset(), facility=node.facility, source=Source.CSTORE,
                                     actor=None)
        except Exception as exc:  # the peer needs an answer whatever happened
            log.exception("C-STORE ingest failed")
            return _status(Reason.PROCESSING_FAILURE, f"{type(exc).__name__}")
    if result.refusal is not None:
        return _status(result.refusal.reason, result.refusal.detail)
    return 0x0000


def _status(reason: Reason, comment: str) -> Dataset:
    status = Dataset()
    status.Status = int(reason)
    # Error Comment is LO: 64 characters of the default repertoire in the command set.
    status.ErrorComment = comment.encode("ascii", "replace").decode("ascii")[:64]
    return status


def handle_closed(event: Any) -> None:
    # Each association runs in its own thread with its own database connection: give it back.
    close_old_connections()


def make_ae(ae_title: str) -> AE:
    ae = AE(ae_title=ae_title)
    for context in AllStoragePresentationContexts:
        if context.abstract_syntax:
            ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)
    ae.add_supported_context(Verification)
    ae.maximum_associations = 32
    ae.dimse_timeout = ae.network_timeout = 60
    return ae


HANDLERS: list[Any] = [
    (evt.EVT_REQUESTED, handle_requested),
    (evt.EVT_C_STORE, handle_store),
    (evt.EVT_C_ECHO, lambda event: 0x0000),
    (evt.EVT_RELEASED, handle_closed),
    (evt.EVT_ABORTED, handle_closed),
]


def serve(*, ae_title: str, host: str, port: int, block: bool = True) -> Any:
    """Start listening; with block=False returns the server (tests stop it with `.shutdown()`)."""
    ae = make_ae(ae_title)
    log.info("DICOM SCP %s listening on %s:%d", ae_title, host, port)
    return ae.start_server((host, port), block=block, evt_handlers=HANDLERS)
