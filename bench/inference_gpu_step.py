"""Why the 64-row decode step was slow on the H200 (issue 5; bench/README.md, GPU results): one device
call that separates the compiled step from the scheduler around it.

The 1.8B shape ran batch 1 at 3.9 ms per step (the anchor's speed) but 64 rows at 24–31 ms per step
against the anchor's ≈ 8 ms. Batch 1 has its own static graph; batch 2–64 shares one with a
symbolic batch size (`compile_shapes="dynamic"`). For each mode this prints

- the warm-up time (compile + CUDA graphs of every bucket);
- the bare decode step at batch 1, 16 and 64 (the compiled step alone on the generation thread,
  full cache window, CUDA-synchronised, mean of 30 after 5);
- 64 concurrent drafts through the engine (prompt 640, 256 new tokens, tokens merged as the worker
  gets them): wall time and its per-step share, so the scheduler's cost per step = engine per step −
  bare step at 64.

On `--layers 2` of the 1.8B widths (default) compiling takes seconds, and per-layer costs scale by 12
to the whole model. `TORCH_LOGS=perf_hints` adds inductor's reasons for skipping CUDA graphs.

    python bench/inference_gpu_step.py [--layers 2] [--modes dynamic,static] [--json out.json]
    python bench/inference_gpu_step.py --device cpu --layers 1 --n 4 --prompt 32 --new 8   # smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))


def bare_steps(engine: Any, sizes: list[int], device: str) -> dict[int, float]:
    """Milliseconds per compiled decode step at each batch size, run on the generation thread."""
    import torch

    b = engine._batcher

    def run() -> dict[int, float]:
        out = {}
        for size in sizes:
            for i in range(35):
                if i == 5:
                    if device == "cuda":
                        torch.cuda.synchronize()
                    start = time.perf_counter()
                b._mark_step()
                b._step_fn(b._last[:size], b._lengths[:size])
            if device == "cuda":
                torch.cuda.synchronize()
            out[size] = round(1000 * (time.perf_counter() - start) / 30, 3)
        return out

    result: dict[int, float] = b.call(run)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="llm-jp-3-1.8b")
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--modes", default="dynamic,static")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=640)
    parser.add_argument("--new", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from inference_gpu import _prompt_of, run_concurrent

    from ml.engines import build_engine
    from ml.protocol import DraftRequest
    from ml.tiny import build_shaped_checkpoint

    where = build_shaped_checkpoint(Path(tempfile.mkdtemp()) / "ck", args.shape, device=args.device, layers=args.layers)
    sizes = sorted({1, min(16, args.n), args.n})
    figures: list[dict[str, Any]] = []
    for mode in args.modes.split(","):
        out: dict[str, Any] = {"shape": args.shape, "layers": args.layers, "compile_shapes": mode, "n": args.n}
        t = time.perf_counter()
        engine: Any = build_engine("transformers", str(where), device=args.device, max_batch_size=args.n,
                                   max_seq_len=args.prompt + args.new + 8, compile=True, compile_shapes=mode)
        out["load_s"] = round(time.perf_counter() - t, 1)
        out["warmup_s"] = round(engine.warmup(), 1)
        out["bare_step_ms"] = bare_steps(engine, sizes, args.device)
        prompt = _prompt_of(engine._tokenizer, args.prompt)

        def request(i: int, prompt: str = prompt) -> DraftRequest:
            return DraftRequest(request_id=f"{i}", task="checkup_summary", prompt=prompt, prompt_version="bench",
                                max_new_tokens=args.new, ignore_eos=True)

        steps0 = engine.stats()["steps"]
        wall = run_concurrent(engine, request, args.n, args.new)
        steps = engine.stats()["steps"] - steps0
        out.update(engine_wall_s=round(wall, 3), engine_steps=steps, engine_ms_per_step=round(1000 * wall / steps, 3),
                   scheduler_ms_per_step=round(1000 * wall / steps - out["bare_step_ms"][args.n], 3))
        engine.close()
        del engine
        if args.device == "cuda":
            import gc

            import torch

            gc.collect()
            torch.cuda.empty_cache()
        figures.append(out)
        print(json.dumps(out), flush=True)
    for f in figures:
        bare = ", ".join(f"b={k}: {v} ms" for k, v in f["bare_step_ms"].items())
        print(f"{f['compile_shapes']:>8}: warm-up {f['warmup_s']} s; bare step {bare}; "
              f"engine {f['engine_ms_per_step']} ms/step over {f['engine_steps']} steps "
              f"(scheduler ≈ {f['scheduler_ms_per_step']} ms/step)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
