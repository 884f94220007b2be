"""Versioned Japanese prompt templates, one TOML file per task and version in `templates/`.

A template's version string (e.g. "cxr-v1") is stored with every draft, so the text of a
released version must never change: edit by adding `cxr-v2.toml`. Placeholders are `${name}`
(string.Template, so the JSON examples in the text need no brace escaping); every placeholder is
required and a missing one is an error, never an empty gap in the prompt.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from string import Template
from typing import Any

__all__ = [
    "TASKS",
    "PromptContextError",
    "PromptTemplate",
    "RenderedPrompt",
    "available_versions",
    "format_reference_data",
    "latest_version",
    "load_template",
    "render_prompt",
]

TASKS = ("cxr", "ecg", "fundus", "ct", "checkup_summary")
_VERSION = re.compile(r"^(?P<task>[a-z_]+)-v(?P<number>\d+)$")
_SEX_JA = {
    "M": "男性",
    "MALE": "男性",
    "男": "男性",
    "F": "女性",
    "FEMALE": "女性",
    "女": "女性",
    "O": "その他",
}
_EMPTY = "なし"


class PromptContextError(KeyError):
    """The context given to `render_prompt` lacks (or has an unusable) template variable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


@dataclass(frozen=True)
class PromptTemplate:
    task: str
    version: str
    title: str
    variables: tuple[str, ...]
    system: str
    user: str


@dataclass(frozen=True)
class RenderedPrompt:
    text: str
    version: str
    system: str
    task: str = ""


def available_versions(task: str) -> tuple[str, ...]:
    """Versions of `task` in ascending order, e.g. ("cxr-v1", "cxr-v2")."""
    _check_task(task)
    return tuple(name for owner, _, name in _index() if owner == task)


def latest_version(task: str) -> str:
    versions = available_versions(task)
    if not versions:
        raise LookupError(f"no prompt template for task {task!r}")
    return versions[-1]


def load_template(version: str) -> PromptTemplate:
    known = [name for _, _, name in _index()]
    if version not in known:
        raise LookupError(f"unknown prompt version {version!r}; available: {', '.join(known)}")
    return _load(version)


def render_prompt(task: str, version: str | None = None, **context: Any) -> RenderedPrompt:
    """Fill the template of `task` (its latest version unless `version` is given).

    Values are formatted for Japanese text: an int `age` becomes "54歳", sex codes M/F/O become
    男性/女性/その他, a mapping becomes "- key: value" lines (see `format_reference_data`), a
    list becomes "- item" lines, and an empty value becomes なし. Extra context keys are ignored
    so that one context can serve several tasks; missing ones raise `PromptContextError`.
    """
    _check_task(task)
    template = load_template(version or latest_version(task))
    if template.task != task:
        raise LookupError(f"prompt version {template.version!r} belongs to task {template.task!r}, not {task!r}")
    missing = [name for name in template.variables if name not in context]
    if missing:
        raise PromptContextError(
            f"prompt {template.version} needs context variable(s) {', '.join(missing)}; "
            f"it uses: {', '.join(template.variables)}"
        )
    values = {name: _format_value(name, context[name], template.version) for name in template.variables}
    return RenderedPrompt(
        text=Template(template.user).substitute(values),
        version=template.version,
        system=Template(template.system).substitute(values),
        task=task,
    )


def format_reference_data(data: Mapping[str, Any]) -> str:
    """{"HbA1c": "6.8 %", "LDL-C": 160} → "- HbA1c: 6.8 %\\n- LDL-C: 160"; None values are skipped."""
    lines = [f"- {key}: {_plain(value)}" for key, value in data.items() if value is not None and value != ""]
    return "\n".join(lines) or _EMPTY


def _format_value(name: str, value: Any, version: str) -> str:
    if value is None:
        raise PromptContextError(f"prompt {version}: context variable {name} is None (pass なし or '' if empty)")
    if name == "age" and isinstance(value, int) and not isinstance(value, bool):
        return f"{value}歳"
    if name == "sex" and isinstance(value, str):
        return _SEX_JA.get(value.strip().upper(), value.strip()) or _EMPTY
    if isinstance(value, Mapping):
        return format_reference_data(value)
    if isinstance(value, list | tuple):
        return "\n".join(f"- {_plain(item)}" for item in value) or _EMPTY
    text = _plain(value).strip()
    return text or _EMPTY


def _plain(value: Any) -> str:
    # Decimal and int print as written; floats via repr so 6.8 stays 6.8 (not 6.799999…).
    return repr(value) if isinstance(value, float) else str(value)


def _check_task(task: str) -> None:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


@cache
def _index() -> tuple[tuple[str, int, str], ...]:
    """(task, version number, version) for every template file, sorted by task then number
    (numerically: v10 comes after v9)."""
    folder = resources.files(__name__) / "templates"
    names = [entry.name.removesuffix(".toml") for entry in folder.iterdir() if entry.name.endswith(".toml")]
    return tuple(sorted((m["task"], int(m["number"]), name) for name in names if (m := _VERSION.match(name))))


@cache
def _load(version: str) -> PromptTemplate:
    raw = (resources.files(__name__) / "templates" / f"{version}.toml").read_text(encoding="utf-8")
    data = tomllib.loads(raw)
    template = PromptTemplate(
        task=data["task"],
        version=data["version"],
        title=data["title"],
        variables=tuple(data["variables"]),
        system=data["system"].strip(),
        user=data["user"].strip(),
    )
    # A template that disagrees with its own declaration is a bug in the data file: fail loudly.
    if template.version != version:
        raise ValueError(f"{version}.toml declares version {template.version!r}")
    used = set(Template(template.user).get_identifiers()) | set(Template(template.system).get_identifiers())
    if used != set(template.variables) or not Template(template.user).is_valid():
        raise ValueError(f"{version}.toml uses {sorted(used)} but declares {sorted(template.variables)}")
    return template
