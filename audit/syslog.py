"""Forwarding audit events to a syslog collector (the IHE ATNA transport): RFC 5424 messages over
UDP (RFC 5426, one datagram each) or TCP (RFC 6587 octet counting), sent after the transaction that
wrote the event commits — a rolled-back event is never forwarded.

Turned on by `AUDIT_SYSLOG_URL` (`udp://collector.example.jp:514`, `tcp://…:6514`). A collector that
is down never fails the request that caused the event: the database chain stays the record of
truth, and the failure is logged (without PHI) for operators.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import socket
import threading
from dataclasses import dataclass
from datetime import UTC
from urllib.parse import urlsplit

from django.conf import settings
from django.db import transaction

from audit.exports import fhir_audit_event
from audit.kinds import Outcome
from audit.models import AuditEvent

log = logging.getLogger(__name__)

NILVALUE = "-"
FACILITY_AUTHPRIV = 10  # "security/authorization messages", as IHE ATNA collectors expect
SEVERITY: dict[str, int] = {Outcome.SUCCESS: 5, Outcome.FAILURE: 4, Outcome.DENIED: 4}  # notice / warning
# SD-ID of our structured data: name@PEN. 32473 is the private enterprise number RFC 5612 reserves
# for documentation; a site with its own PEN sets AUDIT_SYSLOG_SD_ID.
DEFAULT_SD_ID = "medlmm@32473"


def _header_field(value: str, max_len: int) -> str:
    """RFC 5424 header fields are PRINTUSASCII (33–126) without spaces, or NILVALUE."""
    cleaned = "".join(c for c in value if 33 <= ord(c) <= 126)[:max_len]
    return cleaned or NILVALUE


def _sd_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def format_rfc5424(event: AuditEvent, *, hostname: str | None = None, app_name: str = "medlmm-cds",
                   procid: str | None = None, sd_id: str = DEFAULT_SD_ID) -> bytes:
    """`<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD] BOM MSG`; MSG is the FHIR AuditEvent JSON."""
    pri = FACILITY_AUTHPRIV * 8 + SEVERITY.get(event.outcome, 4)
    timestamp = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    params = {
        "seq": str(event.seq), "outcome": event.outcome, "userId": "" if event.user_id is None else str(event.user_id),
        "user": event.username, "facilityId": "" if event.facility_id is None else str(event.facility_id),
        "patientId": "" if event.patient_id is None else str(event.patient_id), "objectType": event.object_type,
        "objectId": event.object_id, "sourceIp": event.source_ip or "", "requestId": event.request_id,
        "hash": event.hash,
    }
    sd = "[" + _header_field(sd_id, 32) + "".join(
        f' {name}="{_sd_escape(value)}"' for name, value in params.items() if value
    ) + "]"
    header = " ".join((
        f"<{pri}>1",
        timestamp,
        _header_field(hostname or socket.gethostname(), 255),
        _header_field(app_name, 48),
        _header_field(procid or str(os.getpid()), 128),
        _header_field(event.kind, 32),
        sd,
    ))
    msg = json.dumps(fhir_audit_event(event), ensure_ascii=False, separators=(",", ":"))
    # RFC 5424 6.4: a UTF-8 MSG starts with the BOM.
    # Header fields are ASCII by construction; SD-PARAM values are UTF-8 (RFC 5424 6.3.3).
    return header.encode("utf-8") + b" \xef\xbb\xbf" + msg.encode("utf-8")


@dataclass(frozen=True)
class Target:
    protocol: str  # udp | tcp
    host: str
    port: int


def target_from_settings() -> Target | None:
    url = str(getattr(settings, "AUDIT_SYSLOG_URL", "") or "")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in {"udp", "tcp"} or not parts.hostname:
        raise ValueError(f"AUDIT_SYSLOG_URL must be udp://host:port or tcp://host:port, not {url!r}")
    return Target(parts.scheme, parts.hostname, parts.port or 514)


def send(message: bytes, target: Target, *, timeout: float = 2.0) -> None:
    if target.protocol == "udp":
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, (target.host, target.port))
        return
    with socket.create_connection((target.host, target.port), timeout=timeout) as sock:
        # RFC 6587 3.4.1 octet counting: "LEN SP MSG", safe for messages that contain newlines.
        sock.sendall(str(len(message)).encode("ascii") + b" " + message)


def forward(event: AuditEvent) -> bool:
    """Send one event now. False (and a log line without PHI) when the collector cannot be reached."""
    target = target_from_settings()
    if target is None:
        return False
    message = format_rfc5424(
        event,
        hostname=getattr(settings, "AUDIT_SYSLOG_HOSTNAME", None),
        sd_id=str(getattr(settings, "AUDIT_SYSLOG_SD_ID", DEFAULT_SD_ID)),
    )
    try:
        send(message, target)
    except OSError as exc:
        log.warning("audit syslog forward failed seq=%s target=%s:%s error=%s", event.seq, target.host,
                    target.port, type(exc).__name__)
        return False
    return True


_connected = False
_outbox: queue.SimpleQueue[list[AuditEvent]] = queue.SimpleQueue()
_sender: threading.Thread | None = None
_sender_lock = threading.Lock()


def forward_after_commit(events: list[AuditEvent]) -> None:
    """Called by the audit append for every event it wrote (`audit.services._append`), in chain
    order: once the transaction commits they are handed to this process's sender thread, which
    forwards them one by one, in order. Until session 9 a `post_save` receiver forwarded each
    event in the committing thread, and events appended together (`bulk_create`: an arrival's
    jobs, a worker's group of final writes) were never forwarded. Forwarding them there would put
    network I/O on commit paths (a TCP collector that drops packets: 2 s per event, 64 events
    holding a GPU worker's group of final writes). The database chain stays the record: events
    still queued when the process exits are not forwarded."""
    if _connected and events and getattr(settings, "AUDIT_SYSLOG_URL", None):
        transaction.on_commit(lambda: _enqueue(events), robust=True)


def _enqueue(events: list[AuditEvent]) -> None:
    global _sender
    with _sender_lock:
        if _sender is None or not _sender.is_alive():
            _sender = threading.Thread(target=_send_forever, name="audit-syslog", daemon=True)
            _sender.start()
    _outbox.put(events)


def _send_forever() -> None:
    while True:
        for event in _outbox.get():
            try:
                forward(event)
            except Exception:  # a bad setting or message must not stop the events after it
                log.exception("audit syslog forward failed seq=%s", event.seq)


def connect() -> None:
    """Turn the forwarder on (idempotent). Called from AuditConfig.ready()."""
    global _connected
    _connected = True


def disconnect() -> None:
    global _connected
    _connected = False
