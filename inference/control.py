"""Questions an operator (or a benchmark) can ask a running worker through Celery's remote control:

    celery -A config inspect engine_stats        # every worker's engines: steps, tokens, time spent

Registered when the worker imports the inference tasks (`inference/tasks.py` imports this module)."""

from __future__ import annotations

from typing import Any

from celery.worker.control import inspect_command


@inspect_command()
def engine_stats(state: Any, **kwargs: Any) -> dict[str, dict[str, Any]]:
    """The counters of this worker's model engines (`engine_pool.engines_stats`)."""
    from inference.engine_pool import engines_stats

    return engines_stats()
