"""Facilities for their administrators: rename (audited), add an existing account from another
facility, a navigation link; a system administrator alone creates facilities."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from audit.models import AuditEvent
from clinical.models import Facility, Membership, Role, User
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def test_it_links_the_administration_from_the_menu_for_administrators_only(
    client_for: Callable[[str], Client],
) -> None:
    assert 'href="/administration/"' in client_for("admin_a").get("/").content.decode()
    for name in ("staff_a", "physician_a", "auditor_a"):
        assert 'href="/administration/"' not in client_for(name).get("/").content.decode()


def test_it_renames_a_facility_and_audits_before_and_after(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    client = client_for("admin_a")
    url = f"/administration/facilities/{personas.facility_a.pk}/"
    assert client.get("/administration/facilities/").status_code == 200
    response = client.post(url, {"name": ""})
    assert response.status_code == 400 and "施設名を入力してください" in response.content.decode()
    assert client.post(url, {"name": "A健診プラザ"}).status_code == 302
    assert Facility.objects.get(pk=personas.facility_a.pk).name == "A健診プラザ"
    (event,) = audit_events(kind="update", object_type="clinical.facility")
    assert event.user_id == personas.admin_a.pk
    assert event.details == {"changed": {"name": ["A健診センター", "A健診プラザ"]}}
    assert client.get(f"/administration/facilities/{personas.facility_b.pk}/").status_code == 404


def test_it_adds_an_existing_account_from_another_facility(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    client = client_for("admin_a")
    url = f"/administration/facilities/{personas.facility_a.pk}/members/"
    response = client.post(url, {"username": "nobody", "role": Role.STAFF})
    assert response.status_code == 400 and "利用者ID「nobody」は登録されていません" in response.content.decode()
    response = client.post(url, {"username": "physician_b", "role": Role.PHYSICIAN})
    assert response.status_code == 302 and response["Location"] == f"/administration/users/{personas.physician_b.pk}/"
    assert Membership.objects.filter(user=personas.physician_b, facility=personas.facility_a).exists()
    # Now physician_b is one of A's users, but their B membership stays out of admin_a's reach.
    page = client.get(f"/administration/users/{personas.physician_b.pk}/")
    assert page.status_code == 200 and "B総合病院" not in page.content.decode()
    assert "管理していない施設にも所属しています" in page.content.decode()


def test_only_a_system_administrator_creates_facilities(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    client = client_for("admin_a")
    assert client.post("/administration/facilities/new/", {"code": "C01", "name": "C"}).status_code == 403
    User.objects.filter(pk=personas.admin_a.pk).update(is_superuser=True)
    response = client.post("/administration/facilities/new/", {"code": "a01", "name": "重複"})
    assert response.status_code == 400 and "この施設コードはすでに使われています" in response.content.decode()
    assert client.post("/administration/facilities/new/", {"code": "C01", "name": "C診療所"}).status_code == 302
    assert Facility.objects.filter(code="C01").exists()


def test_every_administration_page_renders_for_an_administrator(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    client = client_for("admin_a")
    a, user = personas.facility_a.pk, personas.physician_a.pk
    for url in ("/administration/", "/administration/users/", f"/administration/users/?facility={a}&q=phys",
                "/administration/users/new/", f"/administration/users/{user}/", "/administration/facilities/",
                f"/administration/facilities/{a}/", "/administration/rulesets/", f"/administration/rulesets/{a}/",
                "/inference/models/"):
        response = client.get(url)
        assert response.status_code == 200, url
        assert "<h1>" in response.content.decode()
