"""CPU lists for the engine process: what an operator writes in INFERENCE_ENGINE_CPUS or a model's options."""

from __future__ import annotations

import pytest

from ml.engines.cpus import parse_cpus
from ml.protocol import EngineError


@pytest.mark.parametrize(("spec", "expected"), [
    ("0", {0}), ("0-3,8", {0, 1, 2, 3, 8}), (" 2 , 4-5 ", {2, 4, 5}), ([1, 3], {1, 3}), ("", None), (None, None),
    ([], None),
])
def test_it_reads_linux_cpu_lists_and_id_lists(spec: object, expected: set[int] | None) -> None:
    assert parse_cpus(spec) == (frozenset(expected) if expected is not None else None)  # type: ignore[arg-type]


@pytest.mark.parametrize(("spec", "reason"), [
    ("0-", "neither an id nor a range"), ("a", "neither an id nor a range"), ("3-1", "runs backwards"),
    ("-1", "neither an id nor a range"), ([0, -2], "cannot be negative"),
])
def test_it_refuses_what_is_not_a_cpu_list_with_the_reason(spec: object, reason: str) -> None:
    with pytest.raises(EngineError, match=reason):
        parse_cpus(spec)  # type: ignore[arg-type]
