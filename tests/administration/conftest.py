"""Fixtures for administration: an administrator of facility B (the personas have one of A only)."""

from __future__ import annotations

import pytest
from django_otp.plugins.otp_totp.models import TOTPDevice

from clinical import services
from clinical.models import Role, User
from tests.conftest import PASSWORD, Personas


@pytest.fixture
def admin_b(personas: Personas) -> User:
    user = services.user_create(username="admin_b", password=PASSWORD, display_name="admin_b 氏")
    services.membership_grant(user=user, facility=personas.facility_b, role=Role.ADMIN)
    TOTPDevice.objects.create(user=user, name="test", confirmed=True)
    return user
