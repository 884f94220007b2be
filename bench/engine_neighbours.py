"""Benchmark (issue 5, CPU): how much the engine slows down when the other CPUs are busy, and with what.

`bench/inference_stack.py --engine-cpus 0` gives the engine CPU 0 and the stack everything else,
yet the engine's rounds in the stack run came out 0–8 % longer than in the direct run beside them,
by run. This script runs the same engine (the tiny checkpoint in its own process on CPU 0, 64
drafts of 128 tokens from a 921-token prompt, as the stack bench) with a neighbour on the other CPU:

- idle: nothing;
- python: a pure interpreter loop (CPU, little memory traffic);
- duty-50: the same loop half of every 10 ms;
- memcopy: numpy copying 128 MB arrays back and forth (memory bandwidth, no shared state).

Rounds of the four alternate (this machine's speed drifts); prints the median round of each and its
ratio to idle. Not a test: it prints figures.

    .venv/bin/python bench/engine_neighbours.py [--reps 9] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from ml.engines import build_engine  # noqa: E402  (ml/ never imports Django)
from ml.protocol import DraftRequest  # noqa: E402
from ml.tiny import build_tiny_checkpoint  # noqa: E402

PROMPT = "収縮期血圧 152 mmHg、HbA1c 6.8 %。" * 34  # 921 tokens with the tiny tokenizer
_PIN = "import os; os.sched_setaffinity(0, {%d})\n"
NEIGHBOURS: dict[str, str | None] = {
    "idle": None,
    "python": "while True: pass",
    "duty-50": ("import time\nwhile True:\n    t = time.perf_counter()\n"
                "    while time.perf_counter() - t < 0.005: pass\n    time.sleep(0.005)"),
    "memcopy": "import numpy as np\na = np.ones(16_000_000); b = np.empty_like(a)\nwhile True: np.copyto(b, a)",
}


def main() -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--reps", type=int, default=9, help="rounds of each neighbour, taken in turns")
    p.add_argument("--n", type=int, default=64, help="concurrent drafts")
    p.add_argument("--new", type=int, default=128, help="new tokens per draft")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        sys.exit("needs two CPUs: the engine's and its neighbour's")
    engine_cpu, other = cpus[0], cpus[1]
    os.sched_setaffinity(0, {other})  # this process feeds the engine from the neighbour's CPU, as the stack does
    checkpoint = Path(tempfile.mkdtemp()) / "tiny"
    build_tiny_checkpoint(checkpoint, kind="causal", seed=0)
    engine: Any = build_engine("transformers", str(checkpoint), device="cpu", max_batch_size=args.n,
                               cpus=str(engine_cpu), process=True, max_seq_len=1100)
    engine.warmup()

    def one_round(tag: str) -> float:
        def draft(i: int) -> None:
            engine.submit_sync(DraftRequest(request_id=f"{tag}-{i}", task="checkup_summary", prompt=PROMPT,
                                            prompt_version="bench", max_new_tokens=args.new, ignore_eos=True),
                               lambda _e: None, None, max(0.1, args.n / 200))
        threads = [threading.Thread(target=draft, args=(i,)) for i in range(args.n)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.perf_counter() - started

    one_round("warm")
    rounds: dict[str, list[float]] = {name: [] for name in NEIGHBOURS}
    for rep in range(args.reps):
        for name, code in NEIGHBOURS.items():
            neighbour = subprocess.Popen([sys.executable, "-c", _PIN % other + code]) if code else None
            time.sleep(0.3)  # running before the round starts
            try:
                rounds[name].append(one_round(f"{name}{rep}"))
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()
    engine.close()
    idle = statistics.median(rounds["idle"])
    figures = {"n": args.n, "new_tokens": args.new, "engine_cpu": engine_cpu, "neighbour_cpu": other,
               "rounds_s": {k: [round(x, 3) for x in v] for k, v in rounds.items()},
               "median_s": {k: round(statistics.median(v), 3) for k, v in rounds.items()},
               "ratio_to_idle": {k: round(statistics.median(v) / idle, 3) for k, v in rounds.items()}}
    for name in NEIGHBOURS:
        print(f"{name:8s} median {figures['median_s'][name]:.3f} s  ×{figures['ratio_to_idle'][name]:.3f} of idle  "
              f"{figures['rounds_s'][name]}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
