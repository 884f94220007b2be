"""Forwarding to syslog (IHE ATNA): RFC 5424 lines, over a real UDP/TCP socket, after commit only."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import transaction

from audit import syslog
from audit.kinds import EventKind, Outcome
from audit.services import AuditEntry, audit_record, audit_record_many
from tests.conftest import Personas

pytestmark = pytest.mark.django_db

# RFC 5424 6: HEADER = PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID
LINE = re.compile(
    rb"^<(?P<pri>\d{1,3})>1 "
    rb"(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{1,6}Z) "
    rb"(?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) (?P<msgid>[!-~]{1,32}) "
    rb"(?P<sd>\[[!-~]+?@\d+(?: [!-~]+?=\"(?:[^\"\\\]]|\\.)*\")*\]) "
    rb"\xef\xbb\xbf(?P<msg>.*)$",
    re.DOTALL,
)


def test_it_formats_an_rfc5424_line_with_structured_data_and_a_json_message(personas: Personas) -> None:
    event = audit_record(kind=EventKind.PHI_READ, user=personas.physician_a, facility_id=personas.facility_a.pk,
                         object_type="clinical.patient", object_id=7, patient_id=7)
    line = syslog.format_rfc5424(event, hostname="cds01.example.jp", procid="1234")
    match = LINE.match(line)
    assert match, line
    assert int(match["pri"]) == 10 * 8 + 5  # authpriv.notice
    assert (match["host"], match["app"], match["procid"], match["msgid"]) == (
        b"cds01.example.jp", b"medlmm-cds", b"1234", b"phi_read")
    sd = match["sd"].decode()
    assert sd.startswith("[medlmm@32473 ") and f'seq="{event.seq}"' in sd and 'patientId="7"' in sd
    assert f'hash="{event.hash}"' in sd
    body = json.loads(match["msg"].decode("utf-8"))
    assert body["resourceType"] == "AuditEvent" and body["id"] == str(event.seq)


def test_it_escapes_structured_data_and_flags_failures_as_warnings(personas: Personas) -> None:
    event = audit_record(kind=EventKind.LOGIN_FAILED, outcome=Outcome.FAILURE, username='ev"il]\\ユーザー')
    line = syslog.format_rfc5424(event, hostname="h", procid="1")
    match = LINE.match(line)
    assert match and int(match["pri"]) == 10 * 8 + 4
    assert 'user="ev\\"il\\]\\\\ユーザー"' in line.decode("utf-8")


@pytest.fixture
def udp_collector(settings: Any) -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(3)
    settings.AUDIT_SYSLOG_URL = f"udp://127.0.0.1:{sock.getsockname()[1]}"
    syslog.connect()
    try:
        yield sock
    finally:
        syslog.disconnect()
        sock.close()


def test_it_forwards_over_udp_after_commit(
    udp_collector: socket.socket, personas: Personas, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        event = audit_record(kind=EventKind.EXPORT, user=personas.auditor_a, object_type="audit.auditevent")
    assert len(callbacks) == 1
    datagram, _addr = udp_collector.recvfrom(65535)
    match = LINE.match(datagram)
    assert match and match["msgid"] == b"export" and f'seq="{event.seq}"'.encode() in match["sd"]


def test_events_appended_together_are_each_forwarded_in_chain_order(
    udp_collector: socket.socket, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # An arrival's jobs and a worker's group of final writes append their events together.
    with django_capture_on_commit_callbacks(execute=True):
        events = audit_record_many([AuditEntry(kind=EventKind.CREATE, object_type="inference.inferencejob",
                                               object_id=i) for i in range(3)])
    seqs = []
    for _ in events:
        match = LINE.match(udp_collector.recvfrom(65535)[0])
        assert match and match["msgid"] == b"create"
        seqs.append(int(re.search(rb'seq="(\d+)"', match["sd"])[1]))  # type: ignore[index]
    assert seqs == [e.seq for e in events]


def test_a_collector_that_drops_connections_does_not_hold_up_the_commit(
    settings: Any, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    # A real collector whose accept queue is full: the kernel drops further connection attempts, so
    # a forward waits for its 2 s connect timeout. That wait is the sender thread's, not the writer's.
    collector = socket.socket()
    collector.bind(("127.0.0.1", 0))
    collector.listen(0)
    filler = []
    for _ in range(4):  # until the kernel stops completing connections for it
        try:
            filler.append(socket.create_connection(collector.getsockname(), timeout=0.5))
        except TimeoutError:
            break
    else:
        pytest.skip("this kernel kept accepting connections for a full queue")
    settings.AUDIT_SYSLOG_URL = f"tcp://127.0.0.1:{collector.getsockname()[1]}"
    syslog.connect()
    try:
        started = time.monotonic()
        with django_capture_on_commit_callbacks(execute=True) as callbacks:  # the commit's own callbacks
            audit_record_many([AuditEntry(kind=EventKind.CREATE, object_type="t", object_id=i) for i in range(5)])
        assert len(callbacks) == 1
        assert time.monotonic() - started < 1.0  # five forwards inline would have taken 5 × 2 s
    finally:
        syslog.disconnect()
        for sock in filler:
            sock.close()
        collector.close()


def test_a_rolled_back_event_is_never_forwarded(
    udp_collector: socket.socket, personas: Personas, django_capture_on_commit_callbacks: Callable[..., Any]
) -> None:
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                audit_record(kind=EventKind.UPDATE, user=personas.staff_a)
                raise RuntimeError("the change failed")
        except RuntimeError:
            pass
    assert callbacks == []
    udp_collector.settimeout(0.3)
    with pytest.raises(TimeoutError):
        udp_collector.recvfrom(65535)


def test_it_forwards_over_tcp_with_octet_counting(settings: Any, personas: Personas) -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    received: list[bytes] = []

    def accept() -> None:
        conn, _addr = server.accept()
        with conn:
            chunks = []
            while chunk := conn.recv(65535):
                chunks.append(chunk)
            received.append(b"".join(chunks))

    thread = threading.Thread(target=accept)
    thread.start()
    settings.AUDIT_SYSLOG_URL = f"tcp://127.0.0.1:{server.getsockname()[1]}"
    event = audit_record(kind=EventKind.LOGIN, user=personas.staff_a)
    assert syslog.forward(event) is True
    thread.join(5)
    server.close()
    length, _sp, message = received[0].partition(b" ")
    assert int(length) == len(message) and LINE.match(message)


def test_a_collector_that_is_down_does_not_fail_the_request(settings: Any, personas: Personas,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens here now
    settings.AUDIT_SYSLOG_URL = f"tcp://127.0.0.1:{port}"
    event = audit_record(kind=EventKind.LOGIN, user=personas.staff_a)
    assert syslog.forward(event) is False
    assert "forward failed" in caplog.text and "staff_a" not in caplog.text
