"""Attack: the access matrix. Every object endpoint (HTML, API, websocket) × the five personas ×
an object of facility A and one of facility B, with the status each cell must answer. The table
is the policy, written out: a change in who may see what must change this table.

Personas: staff_a, physician_a, admin_a, auditor_a belong to facility A; physician_b to B. So
for physician_b, column "A" is the other facility; for everyone else, column "B" is.
Websocket cells: "ok" = accepted, a number = the close code."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.test import Client

from clinical.dicom.models import Study
from clinical.dicom.services import instance_ingest
from inference.models import InferenceJob
from reports import services as report_services
from reports.models import Report
from tests.conftest import PASSWORD, Personas, login
from tests.dicom.conftest import ct_series, store  # noqa: F401
from tests.inference.conftest import _fresh_engines, _no_auto_draft, canned  # noqa: F401
from tests.reports.conftest import draft_report  # noqa: F401

pytestmark = pytest.mark.django_db(transaction=True)
PERSONAS = ("staff_a", "physician_a", "admin_a", "auditor_a", "physician_b")


@dataclass
class Side:
    patient: int
    visit: int
    draft: int  # a report still in draft
    signed: int  # a signed report
    job: int
    study: int
    study_uid: str
    user: int  # a user who belongs to this facility only (its physician)


def _side(personas: Personas, make_report: Callable[..., Report], facility: Any, physician: Any) -> Side:
    draft = make_report(facility=facility)
    signed = make_report(facility=facility)
    report_services.report_sign(report=signed, actor=physician, revision_number=1, method="password",
                                credential=PASSWORD)
    assert draft.patient is not None and draft.visit is not None
    result = instance_ingest(data=ct_series(1, patient_id=draft.patient.mrn)[0], facility=facility,
                             source="upload", actor=None)
    assert result.ok, result
    study = Study.objects.get(facility=facility)
    job = InferenceJob.objects.filter(visit=draft.visit).first()
    assert job is not None
    return Side(patient=draft.patient.pk, visit=draft.visit.pk, draft=draft.pk, signed=signed.pk, job=job.pk,
                study=study.pk, study_uid=study.study_instance_uid, user=physician.pk)


HTTP: dict[str, Callable[[Side], tuple[str, str, dict[str, Any]]]] = {
    "patient page": lambda s: ("get", f"/patients/{s.patient}/", {}),
    "visit page": lambda s: ("get", f"/visits/{s.visit}/", {}),
    "report review": lambda s: ("get", f"/reports/{s.draft}/", {}),
    "letter PDF": lambda s: ("get", f"/reports/{s.signed}/letter.pdf", {}),
    "FHIR export": lambda s: ("get", f"/reports/{s.signed}/fhir.json", {}),
    "job page": lambda s: ("get", f"/inference/jobs/{s.job}/", {}),
    "study viewer": lambda s: ("get", f"/dicom/studies/{s.study}/", {}),
    "patient access history": lambda s: ("get", f"/audit/patients/{s.patient}/", {}),
    "user administration": lambda s: ("get", f"/administration/users/{s.user}/", {}),
    "API patient": lambda s: ("get", f"/api/patients/{s.patient}/", {}),
    "API patient update": lambda s: ("patch", f"/api/patients/{s.patient}/", {"data": {"given_name_kana": "タロウ"},
                                                                              "content_type": "application/json"}),
    "API report": lambda s: ("get", f"/reports/api/{s.draft}/", {}),
    "API sign (wrong password)": lambda s: ("post", f"/reports/api/{s.draft}/sign/", {
        "data": {"revision_number": 1, "method": "password", "credential": "not-the-password"},
        "content_type": "application/json"}),
    "DICOMweb metadata": lambda s: ("get", f"/dicomweb/studies/{s.study_uid}/metadata", {}),
}
WEBSOCKET: dict[str, Callable[[Side], str]] = {
    "job stream": lambda s: f"/ws/jobs/{s.job}/",
}


async def _ws_status(client: Client, path: str) -> str:
    from channels.testing import WebsocketCommunicator

    from config.asgi import application

    cookie = f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()
    communicator = WebsocketCommunicator(application, path,
                                         headers=[(b"cookie", cookie), (b"origin", b"http://testserver")])
    connected, code = await communicator.connect()
    await communicator.disconnect()
    return "ok" if connected else str(code)


def observe(personas: Personas, make_report: Callable[..., Report]) -> dict[str, dict[str, tuple[Any, ...]]]:
    sides = {"A": _side(personas, make_report, personas.facility_a, personas.physician_a),
             "B": _side(personas, make_report, personas.facility_b, personas.physician_b)}
    clients = {name: login(Client(), getattr(personas, name)) for name in PERSONAS}
    seen: dict[str, dict[str, tuple[Any, ...]]] = {}
    for endpoint, build in HTTP.items():
        seen[endpoint] = {}
        for side_name, side in sides.items():
            row = []
            for name in PERSONAS:
                method, url, kwargs = build(side)
                row.append(getattr(clients[name], method)(url, **kwargs).status_code)
            seen[endpoint][side_name] = tuple(row)
    for endpoint, build_path in WEBSOCKET.items():
        seen[endpoint] = {side_name: tuple(asyncio.run(_ws_status(clients[name], build_path(side)))
                                           for name in PERSONAS) for side_name, side in sides.items()}
    return seen


# (staff_a, physician_a, admin_a, auditor_a, physician_b) for an object of facility A and of B.
# 404 = not found (outside the user's facilities, or a role with no access to that kind of object);
# 403 = the role may never do this, whatever the object (asked before any object is looked up, or
# the object is visible to the user but the action is not theirs); 400 = allowed, bad credentials.
EXPECTED: dict[str, dict[str, tuple[Any, ...]]] = {
    "patient page": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "visit page": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    # Auditors read reports (what was signed is part of what they audit); they cannot print them.
    "report review": {"A": (200, 200, 200, 200, 404), "B": (404, 404, 404, 404, 200)},
    "letter PDF": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "FHIR export": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "job page": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "study viewer": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "patient access history": {"A": (403, 403, 200, 200, 403), "B": (403, 403, 404, 404, 403)},
    "user administration": {"A": (403, 403, 200, 403, 403), "B": (403, 403, 404, 403, 403)},
    "API patient": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "API patient update": {"A": (200, 403, 200, 404, 404), "B": (404, 404, 404, 404, 403)},
    "API report": {"A": (200, 200, 200, 200, 404), "B": (404, 404, 404, 404, 200)},
    "API sign (wrong password)": {"A": (403, 400, 403, 404, 404), "B": (404, 404, 404, 404, 400)},
    "DICOMweb metadata": {"A": (200, 200, 200, 404, 404), "B": (404, 404, 404, 404, 200)},
    "job stream": {"A": ("ok", "ok", "ok", "4404", "4404"), "B": ("4404", "4404", "4404", "4404", "ok")},
}
# The worklist stream is per facility, not per object: physicians get their own facility's.
WORKLIST_STREAM = ("4403", "ok", "4403", "4403", "ok")


def test_every_object_endpoint_answers_each_persona_as_the_policy_says(
        personas: Personas, request: pytest.FixtureRequest, settings: Any) -> None:
    settings.DICOM_STORE_FSYNC = False
    seen = observe(personas, request.getfixturevalue("draft_report"))
    assert set(seen) == set(EXPECTED), "every endpoint in the matrix has its expected row"
    wrong = [f"{endpoint} / {side}: expected {EXPECTED[endpoint][side]}, got {cells[side]}"
             for endpoint, cells in seen.items() for side in ("A", "B") if cells[side] != EXPECTED[endpoint][side]]
    assert not wrong, "\n".join(wrong)
    clients = [login(Client(), getattr(personas, name)) for name in PERSONAS]
    assert tuple(asyncio.run(_ws_status(c, "/ws/worklist/")) for c in clients) == WORKLIST_STREAM
