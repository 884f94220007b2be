"""`ml/` never imports Django (design rule 5): checked statically and by importing it."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ML = Path(__file__).resolve().parents[2] / "ml"


def test_no_module_in_ml_imports_django() -> None:
    offenders = []
    for path in ML.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.relative_to(ML.parent)}: {n}" for n in names
                          if n.split(".")[0] in {"django", "rest_framework", "channels", "celery",
                                                 "audit", "clinical", "inference", "reports", "config"}]
    assert offenders == []


def test_importing_every_ml_module_loads_no_django() -> None:
    modules = sorted(
        ".".join(p.relative_to(ML.parent).with_suffix("").parts).removesuffix(".__init__")
        for p in ML.rglob("*.py")
    )
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'celery', 'channels'})\n"
        "print(bad); sys.exit(1 if bad else 0)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ML.parent, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
