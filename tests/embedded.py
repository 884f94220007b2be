"""Running `manage.py` as the embedded demo does (`make run`: SQLite under its own var directory,
no PostgreSQL or Redis), in a subprocess, for tests of what only embedded mode does."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def embedded_manage(var_dir: Path, timeout: float = 300) -> Callable[..., subprocess.CompletedProcess[str]]:
    """A `manage(*args)` that runs manage.py on embedded defaults with its data in `var_dir`."""
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env["MEDLMM_VAR_DIR"] = str(var_dir)

    def manage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)

    return manage
