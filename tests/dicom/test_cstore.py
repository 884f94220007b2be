"""C-STORE: DCMTK's storescu (a client nobody here wrote) pushes to our pynetdicom SCP; the objects
go through the same ingest as STOW-RS; bad ones get the matching C-STORE failure status; unknown
AE titles are refused at association."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, MRImageStorage, RTDoseStorage  # type: ignore[attr-defined]

from audit.models import AuditEvent
from clinical.dicom import scp
from clinical.dicom.models import Instance, Study
from clinical.dicom.services import dicom_node_register
from clinical.dicom.storage import ContentStore
from tests.conftest import Personas
from tests.dicom.conftest import ct_series, modified, sample

pytestmark = [pytest.mark.django_db(transaction=True)]
STORESCU = shutil.which("storescu")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(personas: Personas) -> Iterator[int]:
    dicom_node_register(facility=personas.facility_a, ae_title="CT01", description="CT 1号機")
    port = _free_port()
    srv = scp.serve(ae_title="MEDLMM", host="127.0.0.1", port=port, block=False)
    yield port
    srv.shutdown()


def _storescu(port: int, files: list[Path], aet: str = "CT01", *extra: str) -> subprocess.CompletedProcess[str]:
    if STORESCU is None:
        pytest.fail("DCMTK storescu is not installed (apt-get install dcmtk; .ci/run installs it)")
    return subprocess.run(
        [STORESCU, "-v", "-R", *extra, "-aet", aet, "-aec", "MEDLMM", "127.0.0.1", str(port), *map(str, files)],
        capture_output=True, text=True, timeout=60, check=False,
    )


def _write(tmp_path: Path, items: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(items):
        path = tmp_path / f"obj{i}.dcm"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_storescu_pushes_a_series_into_the_sending_facility(
    server: int, personas: Personas, tmp_path: Path, store: ContentStore
) -> None:
    files = _write(tmp_path, [*ct_series(3), sample("waveform_ecg.dcm"), sample("chrH31.dcm")])
    run = _storescu(server, files)
    assert run.returncode == 0, run.stderr
    assert run.stderr.count("Received Store Response (Success)") == 5
    assert Instance.objects.filter(facility=personas.facility_a, source="cstore").count() == 5
    assert Study.objects.get(dicom_patient_id="H31EXAMPLE").patient_name == "Yamada^Tarou=山田^太郎=やまだ^たろう"
    event = AuditEvent.objects.filter(kind="import").first()
    assert event is not None and (event.channel, event.username) == ("dicom", "AE:CT01")
    # Sending the same files again changes nothing (idempotent), and still succeeds.
    assert _storescu(server, files).returncode == 0
    assert Instance.objects.count() == 5 and len(store.keys()) == 5


def test_a_bad_object_gets_its_failure_status_and_nothing_is_kept(
    server: int, tmp_path: Path, store: ContentStore
) -> None:
    ct = sample("CT_small.dcm")
    files = _write(tmp_path, [modified(ct, Rows=64), modified(ct, StudyInstanceUID=None)])
    run = _storescu(server, files, "CT01", "--no-halt")
    assert run.stderr.count("Received Store Response (Error: DataSetDoesNotMatchSOPClass)") == 2
    assert not Instance.objects.exists() and store.keys() == []


def test_statuses_as_a_dimse_client_sees_them(server: int, tmp_path: Path, store: ContentStore) -> None:
    """storescu will not send some objects as they are; pynetdicom's SCU sends files unchanged."""
    ae = AE(ae_title="CT01")
    ae.add_requested_context(CTImageStorage, ["1.2.840.10008.1.2.1"])
    ae.add_requested_context(RTDoseStorage, ["1.2.840.10008.1.2.1"])
    ae.add_requested_context(MRImageStorage, ["1.2.840.10008.1.2.5"])
    ct = sample("CT_small.dcm")
    cases = [
        (0xA901, modified(ct, Columns=64)),
        (0xA900, modified(ct, SeriesInstanceUID=None)),
        (0xC002, sample("badVR.dcm")),
        (0x0000, sample("MR_small_RLE.dcm")),  # compressed, stored as sent
        (0x0000, ct_series(1)[0]),
    ]
    assoc = ae.associate("127.0.0.1", server, ae_title="MEDLMM")
    assert assoc.is_established
    try:
        for (expected, _data), path in zip(cases, _write(tmp_path, [d for _s, d in cases]), strict=True):
            status = assoc.send_c_store(path)
            assert status.Status == expected, (hex(status.Status), status.get("ErrorComment"))
            if expected:
                assert status.ErrorComment
    finally:
        assoc.release()
    assert Instance.objects.count() == 2 and len(store.keys()) == 2
    assert Instance.objects.get(transfer_syntax_uid="1.2.840.10008.1.2.5").sha256 in store.keys()


def test_an_unregistered_ae_title_is_rejected_and_audited(server: int, tmp_path: Path, store: ContentStore) -> None:
    run = _storescu(server, _write(tmp_path, ct_series(1)), aet="ROGUE")
    assert run.returncode != 0
    assert "Association Rejected" in run.stderr and "Calling AE Title Not Recognized" in run.stderr
    assert not Instance.objects.exists()
    event = AuditEvent.objects.get(kind="access_denied")
    assert (event.object_id, event.object_type) == ("ROGUE", "dicom.node")


def test_a_node_pinned_to_another_host_is_rejected(personas: Personas, server: int, tmp_path: Path) -> None:
    from clinical.dicom.models import DicomNode

    DicomNode.objects.filter(ae_title="CT01").update(host="10.0.0.99")
    run = _storescu(server, _write(tmp_path, ct_series(1)))
    assert run.returncode != 0 and not Instance.objects.exists()


def test_c_echo(server: int) -> None:
    ae = AE(ae_title="CT01")
    ae.add_requested_context("1.2.840.10008.1.1")
    assoc = ae.associate("127.0.0.1", server, ae_title="MEDLMM")
    assert assoc.is_established
    status: Any = assoc.send_c_echo()
    assoc.release()
    assert status.Status == 0
