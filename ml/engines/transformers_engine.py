"""In-process engine: a Hugging Face checkpoint run by our own continuous batcher.

Used by GPU workers that run the model themselves (and by tests and CPU demos with the tiny
checkpoint). Loading goes through the Auto classes, from local files only: LLaVA-style
image-text-to-text models (`AutoModelForImageTextToText` + `AutoProcessor`) and causal LMs
(`AutoModelForCausalLM` + `AutoTokenizer`).

Threads: `submit()` (asyncio) and `submit_sync()` (plain threads, e.g. Celery workers) tokenize in
the caller's thread and hand the request to one generation thread (`batcher.ContinuousBatcher`)
that owns the model; events come back through a per-request `Mailbox`.
"""

from __future__ import annotations

import asyncio
import copy
import io
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from ml.engines.detokenize import IncrementalDetokenizer
from ml.engines.mailbox import SinkEngine
from ml.protocol import DraftRequest, EngineError, EngineEvent, EngineHealth, Failed, Started

log = logging.getLogger(__name__)


# Weights are loaded once per process, whichever engine objects are built on them.
_loaded: dict[tuple[str, str, str], tuple[Any, Any, Any]] = {}
_load_lock = threading.Lock()


def _resolve_device(device: str | None) -> Any:
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def _resolve_dtype(dtype: Any, device: Any) -> Any:
    import torch

    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    try:
        resolved = getattr(torch, str(dtype).removeprefix("torch."))
    except AttributeError:
        raise EngineError(f"unknown dtype {dtype!r}") from None
    if not isinstance(resolved, torch.dtype):
        raise EngineError(f"unknown dtype {dtype!r}")
    return resolved


def load_checkpoint(location: str, device: Any, dtype: Any) -> tuple[Any, Any, Any]:
    """(model, processor or None, tokenizer) for a local checkpoint; cached per process.

    Raises `EngineError` with the reason when the checkpoint is missing, unreadable or of a kind we
    cannot batch.
    """
    key = (str(Path(location).resolve()), str(device), str(dtype))
    with _load_lock:
        if key in _loaded:
            return _loaded[key]
        if not Path(location).is_dir():
            raise EngineError(f"checkpoint not found: {location} is not a directory")
        try:
            from transformers import (
                AutoConfig,
                AutoModelForCausalLM,
                AutoModelForImageTextToText,
                AutoProcessor,
                AutoTokenizer,
            )
            from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

            config = AutoConfig.from_pretrained(location, local_files_only=True)
            _check_supported(config)
            common: dict[str, Any] = {"local_files_only": True, "dtype": dtype, "attn_implementation": "sdpa"}
            processor: Any = None
            if config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES:
                model = AutoModelForImageTextToText.from_pretrained(location, **common)
                processor = AutoProcessor.from_pretrained(location, local_files_only=True)
                tokenizer = processor.tokenizer
            else:
                model = AutoModelForCausalLM.from_pretrained(location, **common)
                tokenizer = AutoTokenizer.from_pretrained(location, local_files_only=True)
            model.to(device).eval()
        except EngineError:
            raise
        except Exception as exc:
            raise EngineError(f"cannot load {location}: {type(exc).__name__}: {exc}") from exc
        _loaded[key] = (model, processor, tokenizer)
        return _loaded[key]


def _check_supported(config: Any) -> None:
    text = config.get_text_config(decoder=True)
    layer_types = set(getattr(text, "layer_types", None) or ["full_attention"])
    if layer_types != {"full_attention"}:
        raise EngineError(
            f"{config.model_type}: layers {sorted(layer_types)} need a sliding/hybrid cache; "
            "serve this model with vLLM (engine 'openai')"
        )
    rope = getattr(text, "rope_parameters", None) or getattr(text, "rope_scaling", None) or {}
    if isinstance(rope, dict) and "mrope_section" in rope:
        raise EngineError(f"{config.model_type}: multimodal RoPE is not supported here; serve it with vLLM")


def build_messages(request: DraftRequest, images: list[Any] | None) -> list[dict[str, Any]]:
    """Chat messages for a request. `images` are PIL images (None: a text-only model)."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": [{"type": "text", "text": request.system}]})
    content: list[dict[str, Any]] = []
    for part, image in zip(request.images, images or [], strict=False):
        if part.description:
            content.append({"type": "text", "text": f"{part.description}\n"})
        content.append({"type": "image", "image": image})
    content.append({"type": "text", "text": request.prompt})
    messages.append({"role": "user", "content": content})
    if images is None:  # plain-string contents for tokenizer chat templates
        for message in messages:
            message["content"] = "".join(c["text"] for c in message["content"])
    return messages


class TransformersEngine(SinkEngine):
    """Runs a local HF checkpoint with continuous batching across concurrent requests.

    `submit()` is the async interface (`ml.protocol.Engine`). Threads that are not in an event loop
    (Celery worker threads) call `submit_sync(request, on_event)`, which blocks until the request
    ends, calls `on_event` in the calling thread for every event, and returns the final
    `Finished`/`Failed`; `cancel_sync()` is its cancel. All of them are safe to call from any thread.
    Call `warmup()` once when a worker starts (it compiles the decode step when `compile=True`).
    """

    name = "transformers"

    def __init__(
        self,
        location: str,
        device: str | None = None,
        dtype: Any = None,
        max_batch_size: int = 64,
        max_seq_len: int = 2048,
        compile: bool = False,
        max_prefill_tokens: int = 8192,
        compile_shapes: Literal["dynamic", "static"] = "dynamic",
    ) -> None:
        import torch

        from ml.engines.batcher import ContinuousBatcher

        if compile_shapes not in ("dynamic", "static"):  # before minutes of loading, not after
            raise EngineError(f"compile_shapes must be 'dynamic' or 'static', not {compile_shapes!r}")
        self.model = str(location)
        self.device = _resolve_device(device)
        self.dtype = _resolve_dtype(dtype, self.device)
        hf_model, self._processor, self._tokenizer = load_checkpoint(self.model, self.device, self.dtype)
        self._hf_model = hf_model
        config = hf_model.config
        text_config = config.get_text_config(decoder=True)
        limit = getattr(text_config, "max_position_embeddings", None) or max_seq_len
        self.max_seq_len = min(max_seq_len, limit)
        self.warmup_seconds: float | None = None
        self._prep_lock = threading.Lock()  # HF tokenizers mutate state while encoding

        eos = set()
        gen_eos = getattr(hf_model.generation_config, "eos_token_id", None)
        for value in gen_eos if isinstance(gen_eos, list) else [gen_eos]:
            if value is not None:
                eos.add(int(value))
        if self._tokenizer.eos_token_id is not None:
            eos.add(int(self._tokenizer.eos_token_id))
        pad = self._tokenizer.pad_token_id
        if pad is None:
            pad = next(iter(eos), 0)
        try:
            self._batcher = ContinuousBatcher(
                hf_model,
                # The loop decodes on its own copy: a tokenizer shared with encoding threads can raise
                # "Already borrowed" from the Rust side.
                copy.deepcopy(self._tokenizer),
                device=self.device,
                dtype=self.dtype,
                max_batch_size=max_batch_size,
                max_seq_len=self.max_seq_len,
                pad_token_id=int(pad),
                eos_token_ids=eos,
                compile=compile,
                max_prefill_tokens=max_prefill_tokens,
                compile_shapes=compile_shapes,
            )
        except torch.OutOfMemoryError as exc:
            raise EngineError(f"KV cache does not fit: {exc}") from exc
        self._detok_tokenizer = self._batcher.tokenizer

    # ---- preparing a request (caller's thread) ------------------------------------------------

    def _sequence(self, request: DraftRequest, sink: Callable[[EngineEvent], None]) -> Any:
        """Tokenize and enqueue; emits Started (or Failed) through `sink`. Returns the Sequence or None."""
        from ml.engines.batcher import Sequence

        try:
            ids, mm = self._encode(request)
        except Exception as exc:
            sink(Failed(request.request_id, f"cannot prepare the request: {type(exc).__name__}: {exc}"))
            return None
        if len(ids) >= self.max_seq_len:
            sink(Failed(request.request_id, f"prompt of {len(ids)} tokens does not fit max_seq_len {self.max_seq_len}"))
            return None
        if request.max_new_tokens < 1:
            sink(Failed(request.request_id, "max_new_tokens must be at least 1"))
            return None
        seq = Sequence(
            request_id=request.request_id,
            prompt_ids=ids,
            mm_inputs=mm,
            max_new_tokens=request.max_new_tokens,
            temperature=float(request.temperature),
            ignore_eos=request.ignore_eos,
            sink=sink,
            detok=IncrementalDetokenizer(self._detok_tokenizer),
        )
        sink(Started(request.request_id, len(ids)))
        refused = self._batcher.enqueue(seq)
        if refused:
            sink(Failed(request.request_id, refused))
            return None
        return seq

    def _encode(self, request: DraftRequest) -> tuple[list[int], dict[str, Any]]:
        import torch

        if request.images and self._processor is None:
            raise ValueError(f"{self.model} is a text-only model and cannot take images")
        images = None
        if self._processor is not None:
            from PIL import Image

            images = [Image.open(io.BytesIO(part.png)).convert("RGB") for part in request.images]
        messages = build_messages(request, images)
        with self._prep_lock:
            if self._processor is not None:
                enc = self._processor.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
                )
            elif getattr(self._tokenizer, "chat_template", None):
                enc = self._tokenizer.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True, return_dict=True, return_tensors="pt"
                )
            else:
                text = messages[-1]["content"]
                if request.system:
                    text = f"{request.system}\n\n{text}"
                enc = self._tokenizer(text, return_tensors="pt")
        ids = enc["input_ids"][0].tolist()
        mm: dict[str, Any] = {}
        for key, value in enc.items():
            if key in ("input_ids", "attention_mask", "token_type_ids") or not isinstance(value, torch.Tensor):
                continue
            mm[key] = value.to(self.dtype) if value.is_floating_point() else value
        return ids, mm

    # ---- the protocol -------------------------------------------------------------------------

    def _begin(self, request: DraftRequest, sink: Callable[[EngineEvent], None],
               coalesce_s: float = 0.0) -> Callable[[], None]:
        seq = self._sequence(request, sink)  # in this process the caller's Mailbox merges tokens
        return lambda: self._cancel_seq(seq)

    def start(self, request: DraftRequest, sink: Callable[[EngineEvent], None]) -> None:
        """Tokenize `request` in this thread and queue it without waiting: Started (or Failed) goes to
        `sink` before this returns, the Tokens and the Finished/Failed come later from the
        generation thread. `sink` must be quick and must not block (it runs on the model's thread)."""
        self._sequence(request, sink)

    @staticmethod
    def _cancel_seq(seq: Any) -> None:
        if seq is not None:
            seq.cancelled = True

    async def cancel(self, request_id: str) -> bool:
        return self._batcher.cancel(request_id)

    def cancel_sync(self, request_id: str) -> bool:
        return self._batcher.cancel(request_id)

    def warmup(self) -> float:
        """Compile/capture the decode step for every batch bucket and run one short request through
        prefill (with an image for VLMs). Call once when a worker starts; returns the seconds spent."""
        start = time.perf_counter()
        self._batcher.call(self._batcher.warm_decode)
        images: tuple[Any, ...] = ()
        if self._processor is not None:
            from PIL import Image

            from ml.protocol import ImagePart

            buf = io.BytesIO()
            Image.new("RGB", (64, 64), (128, 128, 128)).save(buf, format="PNG")
            images = (ImagePart(buf.getvalue(), "warmup"),)
        from ml.protocol import DraftRequest as _Request

        self.submit_sync(
            _Request(
                request_id=f"warmup-{id(self)}",
                task="warmup",
                prompt="warmup",
                prompt_version="warmup",
                images=images,
                max_new_tokens=2,
                ignore_eos=True,
            )
        )
        self.warmup_seconds = time.perf_counter() - start
        log.info("warm-up of %s took %.1f s", self.model, self.warmup_seconds)
        return self.warmup_seconds

    def stats(self) -> dict[str, Any]:
        """Counters for dashboards, tests and benchmarks: decode steps run, tokens generated, rows
        running, queued; the generation thread's time in prefills and in decode steps per batch
        bucket (`decode`: {"64": {"steps": n, "seconds": s}}, buckets that ran), when the latest
        step ended (`last_step_at`, wall clock) and when the loop last found work after having none
        (`woke_at`: a batch's first request). Counters only grow: the difference of two calls is what
        happened in between."""
        b = self._batcher
        decode = {str(size): {"steps": n, "seconds": round(b.step_seconds[size], 6)}
                  for size, n in b.step_counts.items() if n}
        return {"steps": b.steps, "generated_tokens": b.generated_tokens, "running": b.running, "queued": b.queued,
                "prefills": b.prefills, "prefill_rows": b.prefill_rows, "prefill_s": round(b.prefill_s, 6),
                "decode": decode, "last_step_at": b.last_step_at, "woke_at": b.woke_at}

    async def health(self) -> EngineHealth:
        b = self._batcher
        detail = (
            f"{type(self._hf_model).__name__} on {self.device} ({str(self.dtype).removeprefix('torch.')}), "
            f"max_batch_size={b.max_batch_size}, max_seq_len={self.max_seq_len}, "
            f"kv_cache={b.cache_bytes / 2**20:.0f} MiB, compiled={b.compiled}, running={b.running}, "
            f"queued={b.queued}, warmup_s={'-' if self.warmup_seconds is None else f'{self.warmup_seconds:.1f}'}"
        )
        return EngineHealth(ok=b.alive, engine=self.name, model=self.model, detail=detail)

    def close(self) -> None:
        """Stop the generation thread; running requests end with Failed("engine closed")."""
        self._batcher.stop()

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
