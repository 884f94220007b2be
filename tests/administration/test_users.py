"""Facility administrators manage the users of their facilities: list, create with a validated
initial password, grant and revoke roles (never the last administrator), deactivate. Everything
outside their facilities is 404; the screens themselves are 403 to non-administrators."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.contrib.auth.backends import ModelBackend
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice
from pytest_django import DjangoAssertNumQueries

from audit.models import AuditEvent
from clinical import services
from clinical.models import Membership, Role, User
from tests.conftest import PASSWORD, Personas, login

pytestmark = pytest.mark.django_db

NEW_USER = {"username": "nurse_new", "display_name": "看護 花子", "display_name_kana": "カンゴ ハナコ",
            "email": "", "role": Role.STAFF, "password1": "Long-Enough-Pass-7", "password2": "Long-Enough-Pass-7"}


def _form(personas: Personas, **changes: object) -> dict[str, object]:
    return {**NEW_USER, "facility": personas.facility_a.pk, **changes}


def test_it_lists_only_the_users_of_the_administered_facilities(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    response = client_for("admin_a").get("/administration/users/")
    assert response.status_code == 200
    names = {u.username for u in response.context["page"]}
    assert names == {"staff_a", "physician_a", "admin_a", "auditor_a"}
    assert "physician_b" not in response.content.decode()


@pytest.mark.parametrize("name", ["staff_a", "physician_a", "physician_b", "auditor_a"])
def test_it_refuses_the_screens_to_non_administrators_and_audits_it(
    client_for: Callable[[str], Client], name: str,
) -> None:
    client = client_for(name)
    for url in ("/administration/", "/administration/users/", "/administration/users/new/",
                "/administration/facilities/", "/administration/rulesets/"):
        assert client.get(url).status_code == 403, url
    assert client.post("/administration/users/new/", NEW_USER).status_code == 403
    assert AuditEvent.objects.filter(kind="access_denied", object_type="clinical.administration").count() == 6
    assert not User.objects.filter(username="nurse_new").exists()


def test_it_answers_404_for_a_user_of_another_facility_and_audits_the_attempt(
    client_for: Callable[[str], Client], personas: Personas, admin_b: User,
    audit_events: Callable[..., list[AuditEvent]],
) -> None:
    client = login(Client(), admin_b)
    target = personas.physician_a.pk
    assert client.get(f"/administration/users/{target}/").status_code == 404
    for action, data in (("active/", {"active": "0"}), ("sessions/end/", {}), ("second-factor/reset/", {}),
                         ("memberships/", {"facility": personas.facility_b.pk, "role": Role.STAFF})):
        assert client.post(f"/administration/users/{target}/{action}", data).status_code == 404, action
    membership = Membership.objects.get(user=personas.physician_a)
    assert client.post(f"/administration/users/{target}/memberships/{membership.pk}/revoke/").status_code == 404
    denied = audit_events(kind="access_denied", user_id=admin_b.pk)
    assert len(denied) == 6 and {e.object_id for e in denied} == {str(target), str(membership.pk)}
    personas.physician_a.refresh_from_db()
    assert personas.physician_a.is_active and Membership.objects.filter(user=personas.physician_a).exists()
    # Nor can admin_b see facility A or its rule sets.
    assert client.get(f"/administration/facilities/{personas.facility_a.pk}/").status_code == 404
    assert client.get(f"/administration/rulesets/{personas.facility_a.pk}/").status_code == 404


def test_it_creates_a_user_with_a_role_and_audits_both(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    response = client_for("admin_a").post("/administration/users/new/", _form(personas))
    user = User.objects.get(username="nurse_new")
    assert response.status_code == 302 and response["Location"] == f"/administration/users/{user.pk}/"
    assert user.check_password(NEW_USER["password1"]) and user.display_name == "看護 花子"
    assert list(Membership.objects.filter(user=user).values_list("facility_id", "role")) == [
        (personas.facility_a.pk, "staff")]
    assert user.has_perm("clinical.import_checkups", personas.facility_a)
    created = audit_events(kind="create", object_type="clinical.user", object_id=str(user.pk))
    granted = audit_events(kind="permission_change", object_type="clinical.membership")
    assert created[0].user_id == personas.admin_a.pk and created[0].details == {"username": "nurse_new"}
    assert granted[-1].user_id == personas.admin_a.pk and granted[-1].facility_id == personas.facility_a.pk
    assert granted[-1].details == {"action": "grant", "user_id": user.pk, "role": "staff"}


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"password1": "Short-1", "password2": "Short-1"}, "password1", "12文字以上"),
    ({"password1": "alllowercaseletters", "password2": "alllowercaseletters"}, "password1", "2種類以上"),
    ({"password2": "Something-Else-99"}, "password2", "確認用のパスワードが一致しません"),
    ({"username": "STAFF_A"}, "username", "この利用者IDはすでに使われています"),
    ({"username": "bad name!"}, "username", ""),
    ({"display_name": ""}, "display_name", "氏名を入力してください"),
    ({"role": "superuser"}, "role", ""),
])
def test_it_refuses_bad_input_for_a_new_user_with_a_specific_message(
    client_for: Callable[[str], Client], personas: Personas, changes: dict[str, str], field: str, message: str,
) -> None:
    response = client_for("admin_a").post("/administration/users/new/", _form(personas, **changes))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert field in errors and message in " ".join(errors[field])
    assert message in response.content.decode() and 'role="alert"' in response.content.decode()
    assert not User.objects.filter(username__in=["nurse_new", "bad name!"]).exists()


def test_it_does_not_create_a_user_at_a_facility_the_admin_does_not_administer(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    response = client_for("admin_a").post("/administration/users/new/", _form(personas,
                                                                              facility=personas.facility_b.pk))
    assert response.status_code == 400 and "facility" in response.context["form"].errors
    assert not User.objects.filter(username="nurse_new").exists()


def test_it_grants_and_revokes_a_role_with_audit_events(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    client = client_for("admin_a")
    target = personas.staff_a
    response = client.post(f"/administration/users/{target.pk}/memberships/",
                           {"facility": personas.facility_a.pk, "role": Role.PHYSICIAN})
    assert response.status_code == 302
    membership = Membership.objects.get(user=target, role=Role.PHYSICIAN)
    assert target.has_perm("clinical.sign_reports", personas.facility_a)
    response = client.post(f"/administration/users/{target.pk}/memberships/{membership.pk}/revoke/")
    assert response.status_code == 302
    target = User.objects.get(pk=target.pk)  # fresh permission cache
    assert not target.has_perm("clinical.sign_reports", personas.facility_a)
    assert target.has_perm("clinical.import_checkups", personas.facility_a)  # the staff role stays
    changes = [(e.details["action"], e.details["role"], e.user_id) for e in
               audit_events(kind="permission_change", details__user_id=target.pk)]
    assert changes[-2:] == [("grant", "physician", personas.admin_a.pk), ("revoke", "physician", personas.admin_a.pk)]


def test_it_says_so_when_the_role_is_already_held(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    response = client_for("admin_a").post(f"/administration/users/{personas.staff_a.pk}/memberships/",
                                          {"facility": personas.facility_a.pk, "role": Role.STAFF})
    assert response.status_code == 409
    assert "すでに A健診センター の健診スタッフです" in response.content.decode()


def test_it_never_removes_the_last_administrator_of_a_facility(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    client = client_for("admin_a")
    own = Membership.objects.get(user=personas.admin_a, role=Role.ADMIN)
    response = client.post(f"/administration/users/{personas.admin_a.pk}/memberships/{own.pk}/revoke/")
    assert response.status_code == 409
    assert "A健診センター の最後の管理者のため、管理者の役割を取り消せません" in response.content.decode()
    assert Membership.objects.filter(pk=own.pk).exists()
    refused = audit_events(kind="permission_change", outcome="denied")
    assert refused[-1].user_id == personas.admin_a.pk and refused[-1].details["action"] == "revoke"
    # With a second active administrator, the first may step down.
    services.membership_grant(user=personas.physician_a, facility=personas.facility_a, role=Role.ADMIN)
    response = client.post(f"/administration/users/{personas.admin_a.pk}/memberships/{own.pk}/revoke/")
    assert response.status_code == 302 and response["Location"] == "/"
    assert not Membership.objects.filter(pk=own.pk).exists()


def test_an_inactive_second_administrator_does_not_count(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    services.membership_grant(user=personas.physician_a, facility=personas.facility_a, role=Role.ADMIN)
    User.objects.filter(pk=personas.physician_a.pk).update(is_active=False)
    own = Membership.objects.get(user=personas.admin_a, role=Role.ADMIN)
    response = client_for("admin_a").post(f"/administration/users/{personas.admin_a.pk}/memberships/{own.pk}/revoke/")
    assert response.status_code == 409 and Membership.objects.filter(pk=own.pk).exists()


def test_it_deactivates_and_reactivates_a_user_with_audit_events(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    staff = login(Client(), personas.staff_a)
    assert staff.get("/patients/").status_code == 200
    admin = client_for("admin_a")
    assert admin.post(f"/administration/users/{personas.staff_a.pk}/active/", {"active": "0"}).status_code == 302
    personas.staff_a.refresh_from_db()
    assert not personas.staff_a.is_active
    assert staff.get("/patients/").status_code == 302  # logged out at once
    assert ModelBackend().authenticate(None, username="staff_a", password=PASSWORD) is None
    assert admin.post(f"/administration/users/{personas.staff_a.pk}/active/", {"active": "1"}).status_code == 302
    personas.staff_a.refresh_from_db()
    assert personas.staff_a.is_active
    events = audit_events(kind="update", object_type="clinical.user", object_id=str(personas.staff_a.pk))
    assert [(e.details["change"], e.details["is_active"], e.user_id, e.facility_id) for e in events] == [
        ("deactivated", [True, False], personas.admin_a.pk, personas.facility_a.pk),
        ("reactivated", [False, True], personas.admin_a.pk, personas.facility_a.pk)]
    assert events[0].details["sessions_ended"] == 1


def test_it_refuses_to_deactivate_the_last_administrator_or_oneself(
    client_for: Callable[[str], Client], personas: Personas, admin_b: User,
) -> None:
    client = client_for("admin_a")
    response = client.post(f"/administration/users/{personas.admin_a.pk}/active/", {"active": "0"})
    assert response.status_code == 409 and "自分自身のアカウントは無効にできません" in response.content.decode()
    # admin_b also administers A now; admin_a may not deactivate them: they are B's last administrator.
    services.membership_grant(user=admin_b, facility=personas.facility_a, role=Role.ADMIN)
    response = login(Client(), personas.admin_a).post(f"/administration/users/{admin_b.pk}/active/", {"active": "0"})
    assert response.status_code == 409
    assert "管理していない施設にも所属しています" in response.content.decode()
    admin_b.refresh_from_db()
    assert admin_b.is_active


def test_it_refuses_even_a_superuser_to_deactivate_a_facilitys_last_administrator(personas: Personas) -> None:
    # A facility administrator can never meet this case (they are an active administrator of every
    # facility of the target themselves); a system administrator can.
    root = services.user_create(username="root", password=PASSWORD)
    User.objects.filter(pk=root.pk).update(is_superuser=True)
    TOTPDevice.objects.create(user=root, name="test", confirmed=True)
    client = login(Client(), User.objects.get(pk=root.pk))
    response = client.post(f"/administration/users/{personas.admin_a.pk}/active/", {"active": "0"})
    assert response.status_code == 409
    assert "A健診センター の最後の管理者のため無効にできません" in response.content.decode()
    personas.admin_a.refresh_from_db()
    assert personas.admin_a.is_active
    services.membership_grant(user=personas.physician_a, facility=personas.facility_a, role=Role.ADMIN)
    assert client.post(f"/administration/users/{personas.admin_a.pk}/active/", {"active": "0"}).status_code == 302


@pytest.mark.parametrize("extra", [3, 30])
def test_the_users_list_costs_the_same_queries_at_any_size(
    client_for: Callable[[str], Client], personas: Personas, extra: int,
    django_assert_num_queries: DjangoAssertNumQueries,
) -> None:
    for i in range(extra):
        user = services.user_create(username=f"bulk{i:03d}", password=PASSWORD)
        services.membership_grant(user=user, facility=personas.facility_a, role=Role.STAFF)
        if i % 2:
            services.membership_grant(user=user, facility=personas.facility_b, role=Role.PHYSICIAN)
    client = client_for("admin_a")
    client.get("/administration/users/")  # warm the session
    # session, user, OTP device, second-factor role check, the user's facility permissions (one
    # query for all of them: clinical.scoping), the facility filter, the page count, the nav bar's
    # memberships, the page of users (2FA and other-facility flags as subqueries) and their
    # memberships here (one prefetch): none of them per user.
    with django_assert_num_queries(10):
        response = client.get("/administration/users/")
    assert len(response.context["page"].object_list) == 4 + extra
