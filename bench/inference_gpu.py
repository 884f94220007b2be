"""GPU figures of issue 5, engine level: random-weight llm-jp-3 shapes through the production
loading path (`build_engine("transformers", …)` on a saved checkpoint), one script to run on a lent
H100/H200 (see the device notes in ../shared/stack-notes.md).

For each shape: build and save the checkpoint (bf16), load it, warm up (compile + CUDA graphs:
the worker does this at start; the time is printed), then

- one draft alone: first token and whole draft (prompt 640 tokens, 256 new tokens);
- N concurrent drafts (default 64) through the continuous batcher: reports per minute;

and their ratios to the anchors measured on an H200 (anchors.md): compiled static batch of 64:
1,882 / 490 reports/min (1.8B / 13B); compiled batch 1: a 1.8B draft in 0.96 s.

    python bench/inference_gpu.py                        # both shapes, compiled (a GPU)
    python bench/inference_gpu.py --shape tiny --n 4 --prompt 64 --new 16 --device cpu   # smoke run

The whole-stack figure (rows → Celery → worker → websockets) needs PostgreSQL and Redis beside the
GPU: `bench/inference_stack.py` with `--checkpoint`-style options is the place for it once a lent
machine has them. Not a test: it prints figures (and writes them as JSON with --json)."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ANCHOR_BATCH64 = {"llm-jp-3-1.8b": 1882.0, "llm-jp-3-13b": 490.0}  # reports/min, compiled static batch
ANCHOR_SINGLE_S = {"llm-jp-3-1.8b": 0.96}  # one draft, compiled batch 1


def _prompt_of(tokenizer: Any, tokens: int) -> str:
    """A Japanese prompt whose chat-formatted encoding is exactly `tokens` long (char-level tokenizer)."""
    base = "健診の総合判定と保健指導について書いてください。収縮期血圧 142 mmHg、HbA1c 6.8 %、"
    text = ""
    while True:
        rendered = tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                                 tokenize=False)
        n = len(tokenizer(rendered, add_special_tokens=False)["input_ids"])
        if n >= tokens:
            return text[: len(text) - (n - tokens)]
        text += base[len(text) % len(base)]


def run_concurrent(engine: Any, request: Any, n: int, new_tokens: int) -> float:
    """Seconds for `request(0..n-1)` submitted at once from n threads, each ending with `new_tokens`.

    Their tokens are merged as a worker's job threads get them (inference.conf: every
    max(0.1 s, jobs / 200 s⁻¹)): woken at every token, 64 threads in this process slowed the
    generation loop that shares their interpreter lock."""
    from ml.protocol import Finished

    results: list[Any] = [None] * n
    coalesce_s = max(0.1, n / 200)

    def one(i: int) -> None:
        results[i] = engine.submit_sync(request(i), None, None, coalesce_s)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    started = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - started
    assert all(isinstance(r, Finished) and r.completion_tokens == new_tokens for r in results), results[:1]
    return wall


def measure(shape: str, args: argparse.Namespace) -> dict[str, Any]:
    import torch

    from ml.engines import build_engine
    from ml.protocol import DraftRequest, Finished, Token
    from ml.tiny import build_shaped_checkpoint

    out: dict[str, Any] = {"shape": shape, "device": args.device, "compile": not args.eager,
                           "compile_shapes": args.compile_shapes, "n": args.n,
                           "prompt_tokens": args.prompt, "new_tokens": args.new}
    keep = args.checkpoint is not None
    where = Path(args.checkpoint) if keep else Path(tempfile.mkdtemp(prefix=f"{shape}-", dir=args.dir))
    try:
        t = time.perf_counter()
        if not (where / "config.json").exists():
            build_shaped_checkpoint(where, shape, device=args.device)
            out["build_and_save_s"] = round(time.perf_counter() - t, 1)
        if args.device == "cuda":
            torch.cuda.empty_cache()
        t = time.perf_counter()
        engine: Any = build_engine("transformers", str(where), device=args.device, max_batch_size=args.n,
                                   max_seq_len=args.prompt + args.new + 8, compile=not args.eager,
                                   compile_shapes=args.compile_shapes, max_prefill_tokens=max(8192, args.prompt * 8))
        out["load_s"] = round(time.perf_counter() - t, 1)
        out["warmup_s"] = round(engine.warmup(), 1)
        prompt = _prompt_of(engine._tokenizer, args.prompt)

        def request(i: int) -> DraftRequest:
            return DraftRequest(request_id=f"{shape}-{i}", task="checkup_summary", prompt=prompt,
                                prompt_version="bench", max_new_tokens=args.new, ignore_eos=True)

        # one draft alone (twice: the first after warm-up is the figure a user meets; keep the better)
        singles = []
        for k in range(2):
            first_token_at: list[float] = []

            def on_event(event: Any, seen: list[float] = first_token_at) -> None:
                if isinstance(event, Token) and not seen:
                    seen.append(time.perf_counter())

            t = time.perf_counter()
            result = engine.submit_sync(request(1000 + k), on_event)
            assert isinstance(result, Finished) and result.completion_tokens == args.new, result
            assert result.prompt_tokens == args.prompt, result.prompt_tokens
            singles.append((time.perf_counter() - t, first_token_at[0] - t))
        out["single_draft_s"] = round(min(s for s, _ in singles), 3)
        out["single_first_token_s"] = round(min(f for _, f in singles), 3)

        wall = run_concurrent(engine, request, args.n, args.new)
        out["batch_wall_s"] = round(wall, 2)
        out["reports_per_min"] = round(args.n / wall * 60, 1)
        out["tokens_per_s"] = round(args.n * args.new / wall, 1)
        if shape in ANCHOR_BATCH64:
            out["ratio_to_compiled_static_batch"] = round(out["reports_per_min"] / ANCHOR_BATCH64[shape], 3)
        if shape in ANCHOR_SINGLE_S:
            out["ratio_to_compiled_single"] = round(out["single_draft_s"] / ANCHOR_SINGLE_S[shape], 3)
        if args.device == "cuda":
            out["gpu"] = torch.cuda.get_device_name(0)
            out["max_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 1)
        engine.close()
    finally:
        if not keep:
            shutil.rmtree(where, ignore_errors=True)
        if args.device == "cuda":
            import gc

            gc.collect()
            torch.cuda.empty_cache()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", action="append", choices=["llm-jp-3-1.8b", "llm-jp-3-13b", "tiny"])
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--prompt", type=int, default=640)
    parser.add_argument("--new", type=int, default=256)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--eager", action="store_true", help="no torch.compile / CUDA graphs")
    parser.add_argument("--compile-shapes", default="dynamic", choices=["dynamic", "static"],
                        help="one symbolic batch graph, or one graph per batch bucket")
    parser.add_argument("--dir", default=None, help="where checkpoints are written (default: the temp dir)")
    parser.add_argument("--checkpoint", default=None,
                        help="keep the checkpoint here (built when missing, reused when present; one --shape)")
    parser.add_argument("--json", default=None, help="also write the figures to this file")
    args = parser.parse_args()
    figures = []
    shapes = args.shape or ["llm-jp-3-1.8b", "llm-jp-3-13b"]
    if args.checkpoint and len(shapes) > 1:
        parser.error("--checkpoint takes one --shape")
    for shape in shapes:
        figures.append(measure(shape, args))
        print(json.dumps(figures[-1], ensure_ascii=False), flush=True)
    print()
    print("goals: 13B ≥ 490 reports/min (ratio ≥ 1.0); a 1.8B draft alone ≤ 1.2 s; first token ≤ 0.3 s "
          "(engine level here; the websocket adds the stack's part)")
    for f in figures:
        print(f"{f['shape']:>14}: {f['reports_per_min']:8.1f} reports/min "
              f"(x{f.get('ratio_to_compiled_static_batch', float('nan')):.2f} of the compiled static batch), "
              f"alone {f['single_draft_s']:.2f} s, first token {f['single_first_token_s']:.3f} s, "
              f"warm-up {f['warmup_s']:.1f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
