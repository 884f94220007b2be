"""Bearer tokens for DICOMweb clients: issued once, stored hashed, refused for people who need a
second factor, revocable, and briefly cached for polling clients."""

from __future__ import annotations

from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from clinical.dicom.models import AccessToken, DicomNode
from clinical.dicom.services import access_token_issue
from clinical.dicom.storage import sha256_hex
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def _get(token: str) -> Any:
    return Client().get("/dicomweb/studies", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_only_the_hash_is_stored_and_revoking_works_at_once_without_cache(personas: Personas) -> None:
    token, secret = access_token_issue(user=personas.staff_a, name="CT")
    assert token.key_sha256 == sha256_hex(secret.encode()) and secret not in str(AccessToken.objects.values())
    assert _get(secret).status_code == 200
    AccessToken.objects.filter(pk=token.pk).update(is_active=False)
    assert _get(secret).status_code == 401


def test_a_token_cannot_act_for_someone_who_needs_a_second_factor(personas: Personas) -> None:
    _token, secret = access_token_issue(user=personas.physician_a, name="viewer")
    assert _get(secret).status_code == 401
    with pytest.raises(CommandError, match="二要素認証"):
        call_command("dicom_token", "physician_a")


def test_polling_clients_skip_the_token_and_scope_lookups_while_cached(personas: Personas, settings: Any) -> None:
    settings.DICOMWEB_TOKEN_CACHE_S = 60
    _token, secret = access_token_issue(user=personas.staff_a, name="PACS")
    with CaptureQueriesContext(connection) as first:
        assert _get(secret).status_code == 200
    with CaptureQueriesContext(connection) as second:
        assert _get(secret).status_code == 200
    # token + user, second-factor role check, guardian scope: resolved once per cache period.
    assert len(first) - len(second) == 3


def test_the_commands_issue_tokens_and_register_ae_titles(personas: Personas) -> None:
    out = StringIO()
    call_command("dicom_token", "staff_a", "--name", "modality", stdout=out)
    assert _get(out.getvalue().strip()).status_code == 200
    call_command("dicom_node", "A01", "MR01", "--host", "10.0.0.5", stdout=StringIO())
    node = DicomNode.objects.get(ae_title="MR01")
    assert (node.facility, node.host) == (personas.facility_a, "10.0.0.5")
