"""Extension points: layers above clinical (inference, reports) add actions to clinical screens
without clinical importing them (dependencies point one way)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Action:
    label: str
    url: str
    method: str = "get"  # "post" renders a form with the CSRF token
    fields: tuple[tuple[str, str], ...] = ()  # hidden inputs for a post


VisitActionProvider = Callable[[Any, Any], Action | None]  # (visit, user) → action or None
visit_action_providers: list[VisitActionProvider] = []
nav_link_providers: list[Callable[[Any], Action | None]] = []  # (user) → link or None


def visit_actions(visit: Any, user: Any) -> list[Action]:
    return [a for p in visit_action_providers if (a := p(visit, user)) is not None]


def nav_links(user: Any) -> list[Action]:
    return [a for p in nav_link_providers if (a := p(user)) is not None]
