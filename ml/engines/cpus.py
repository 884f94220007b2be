"""Which CPUs an engine process runs on: "0-3,8" in a setting or a model's options → a set of ids.

An engine in a process of its own (`ProcessEngine`) can be kept on CPUs of its own, away from the
worker's job threads and the web processes: on a GPU host its one Python thread feeds the GPU and
every time slice it loses to them is a step the GPU waits for; on a CPU-only host it is the
model's compute."""

from __future__ import annotations

from collections.abc import Iterable

from ml.protocol import EngineError


def parse_cpus(spec: str | Iterable[int] | None) -> frozenset[int] | None:
    """`"0-3,8"` (Linux's cpu-list format, as `taskset -c` takes it) or ids → a set; empty → None."""
    if spec is None:
        return None
    if not isinstance(spec, str):
        given = frozenset(int(c) for c in spec)
        if any(c < 0 for c in given):
            raise EngineError(f"CPU ids cannot be negative: {sorted(given)}")
        return given or None
    ids: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        low, dash, high = part.partition("-")
        if not low.isdigit() or (dash and not high.isdigit()):
            raise EngineError(f"bad CPU list {spec!r}: {part!r} is neither an id nor a range like 0-3")
        first, last = int(low), int(high) if dash else int(low)
        if last < first:
            raise EngineError(f"bad CPU list {spec!r}: the range {part!r} runs backwards")
        ids.update(range(first, last + 1))
    return frozenset(ids) or None
