"""The model registry's actions: enable, disable, shadow, unshadow, promote. Each needs a reason
and leaves an audit event with who, why, before and after; only administrators may act."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client

from audit.models import AuditEvent
from inference import registry, services
from inference.models import ModelVersion
from tests.conftest import Personas

pytestmark = pytest.mark.django_db


def _mv(name: str, version: str, tasks: list[str], *, enabled: bool = True, shadow: bool = False) -> ModelVersion:
    return services.model_version_register(name=name, version=version, engine="template", location=version,
                                           tasks=tasks, enabled=enabled, shadow=shadow)


def _state(mv: ModelVersion) -> tuple[bool, bool]:
    mv.refresh_from_db()
    return mv.enabled, mv.shadow


def test_promoting_makes_the_version_the_one_in_force_and_shadows_the_old_one(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    old = _mv("cxr-drafter", "1", ["cxr"])
    new = _mv("cxr-drafter", "2", ["cxr"], enabled=False)
    unrelated = _mv("summary", "1", ["checkup_summary"])
    client = client_for("admin_a")
    response = client.post(f"/inference/models/{new.pk}/", {"action": "promote", "reason": "検証セットで感度向上"})
    assert response.status_code == 302
    assert (_state(new), _state(old), _state(unrelated)) == ((True, False), (True, True), (True, False))
    assert services.models_for("cxr", include_shadow=False) == [new]
    assert set(services.models_for("cxr")) == {new, old}  # the old one keeps drafting, for comparison
    promoted = audit_events(kind="update", object_type="inference.modelversion", object_id=str(new.pk))[-1]
    assert promoted.user_id == personas.admin_a.pk
    assert promoted.details["action"] == "promote" and promoted.details["reason"] == "検証セットで感度向上"
    assert promoted.details["before"] == {"enabled": False, "shadow": False}
    assert promoted.details["after"] == {"enabled": True, "shadow": False}
    assert promoted.details["demoted"] == [{"id": old.pk, "model": "cxr-drafter 1"}]
    demoted = audit_events(kind="update", object_type="inference.modelversion", object_id=str(old.pk))[-1]
    assert demoted.details["action"] == "demoted_to_shadow" and demoted.details["reason"] == "検証セットで感度向上"
    assert demoted.details["after"] == {"enabled": True, "shadow": True} and demoted.user_id == personas.admin_a.pk
    page = client.get("/inference/models/").content.decode()
    assert f'<tr data-task="cxr"><td>cxr</td><td><a href="/inference/models/{new.pk}/">' in page


def test_promoting_back_rolls_back(personas: Personas) -> None:
    old, new = _mv("m", "1", ["cxr"]), _mv("m", "2", ["cxr"], enabled=False)
    registry.model_version_promote(model_version=new, actor=personas.admin_a, reason="切替")
    change = registry.model_version_promote(model_version=old, actor=personas.admin_a, reason="不具合のため戻す")
    assert change.demoted == [new] and _state(old) == (True, False) and _state(new) == (True, True)


def test_a_promotion_that_leaves_another_task_without_a_version_needs_consent(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    both = _mv("both", "1", ["cxr", "checkup_summary"])
    cxr_only = _mv("cxr", "2", ["cxr"], enabled=False)
    summary_only = _mv("summary", "2", ["checkup_summary"], enabled=False)
    client = client_for("admin_a")
    response = client.post(f"/inference/models/{cxr_only.pk}/", {"action": "promote", "reason": "分割"})
    assert response.status_code == 409
    assert "checkup_summary に使用中の版がなくなります" in response.content.decode()
    assert _state(both) == (True, False) and _state(cxr_only) == (False, False)
    # Replacing a two-task version by two single-task ones: the administrator accepts the gap, then fills it.
    response = client.post(f"/inference/models/{cxr_only.pk}/", {"action": "promote", "reason": "分割",
                                                                   "accept_uncovered": "on"}, follow=True)
    assert "タスク checkup_summary には使用中の版がありません" in response.content.decode()
    assert _state(cxr_only) == (True, False) and _state(both) == (True, True)
    change = registry.model_version_promote(model_version=summary_only, actor=personas.admin_a, reason="分割")
    assert change.demoted == [] and change.uncovered == []
    assert services.models_for("checkup_summary", include_shadow=False) == [summary_only]
    event = AuditEvent.objects.filter(object_id=str(cxr_only.pk), details__action="promote", outcome="success").get()
    assert event.details["uncovered_tasks"] == ["checkup_summary"]


@pytest.mark.parametrize(("action", "start", "end"), [
    ("enable", (False, False), (True, False)),
    ("disable", (True, False), (False, False)),
    ("shadow", (True, False), (True, True)),
    ("unshadow", (True, True), (True, False)),
])
def test_each_action_changes_the_state_and_is_audited_with_who_and_why(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
    action: str, start: tuple[bool, bool], end: tuple[bool, bool],
) -> None:
    mv = _mv("m", "1", ["cxr"], enabled=start[0], shadow=start[1])
    response = client_for("admin_a").post(f"/inference/models/{mv.pk}/", {"action": action, "reason": "運用判断"})
    assert response.status_code == 302 and _state(mv) == end
    event = audit_events(kind="update", object_type="inference.modelversion", object_id=str(mv.pk))[-1]
    assert event.user_id == personas.admin_a.pk and event.outcome == "success"
    assert event.details["before"] == dict(zip(("enabled", "shadow"), start, strict=True))
    assert event.details["after"] == dict(zip(("enabled", "shadow"), end, strict=True))
    assert event.details["reason"] == "運用判断" and event.details["action"] == action


def test_it_requires_a_reason(client_for: Callable[[str], Client]) -> None:
    mv = _mv("m", "1", ["cxr"], enabled=False)
    response = client_for("admin_a").post(f"/inference/models/{mv.pk}/", {"action": "enable", "reason": "  "})
    assert response.status_code == 400 and "理由を入力してください" in response.content.decode()
    assert _state(mv) == (False, False)


def test_it_refuses_a_second_version_in_force_and_says_to_promote(
    client_for: Callable[[str], Client], personas: Personas, audit_events: Callable[..., list[AuditEvent]],
) -> None:
    _mv("m", "1", ["cxr"])
    candidate = _mv("m", "2", ["cxr"], enabled=False)
    client = client_for("admin_a")
    response = client.post(f"/inference/models/{candidate.pk}/", {"action": "enable", "reason": "試験"})
    assert response.status_code == 409 and "「昇格」を使ってください" in response.content.decode()
    assert _state(candidate) == (False, False)
    refused = audit_events(kind="update", outcome="denied", object_id=str(candidate.pk))
    assert refused[-1].details["action"] == "enable" and refused[-1].user_id == personas.admin_a.pk
    # As a shadow it may run beside the version in force.
    registry.model_version_set_shadow(model_version=candidate, shadow=True, actor=personas.admin_a, reason="比較")
    assert client.post(f"/inference/models/{candidate.pk}/", {"action": "enable", "reason": "比較"}).status_code == 302
    assert _state(candidate) == (True, True)
    response = client.post(f"/inference/models/{candidate.pk}/", {"action": "unshadow", "reason": "切替"})
    assert response.status_code == 409 and _state(candidate) == (True, True)


@pytest.mark.parametrize("name", ["staff_a", "physician_a", "physician_b", "auditor_a"])
def test_only_administrators_may_see_or_change_the_registry(
    client_for: Callable[[str], Client], name: str,
) -> None:
    mv = _mv("m", "1", ["cxr"])
    client = client_for(name)
    assert client.get(f"/inference/models/{mv.pk}/").status_code == 403
    assert client.post(f"/inference/models/{mv.pk}/", {"action": "disable", "reason": "x"}).status_code == 403
    assert _state(mv) == (True, False)
    assert AuditEvent.objects.filter(kind="access_denied", object_type="inference.modelversion").count() == 2


def test_the_service_refuses_a_non_administrator_too(personas: Personas) -> None:
    mv = _mv("m", "1", ["cxr"])
    with pytest.raises(registry.RegistryRefused, match="権限がありません"):
        registry.model_version_disable(model_version=mv, actor=personas.physician_a, reason="x")
    assert _state(mv) == (True, False)


def test_an_unknown_version_is_404_and_the_page_shows_its_history(
    client_for: Callable[[str], Client], personas: Personas,
) -> None:
    client = client_for("admin_a")
    assert client.get("/inference/models/999999/").status_code == 404
    mv = _mv("m", "1", ["cxr"])
    registry.model_version_set_shadow(model_version=mv, shadow=True, actor=personas.admin_a, reason="比較のみに")
    page = client.get(f"/inference/models/{mv.pk}/").content.decode()
    assert "比較のみに" in page and "admin_a" in page
