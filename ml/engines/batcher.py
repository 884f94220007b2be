"""The generation loop behind `TransformersEngine`: one thread owns the model and batches across requests.

Continuous batching over a slot-addressed static KV cache:

* The cache is preallocated as `[max_batch_size, kv_heads, max_seq_len, head_dim]` per layer. Each
  running request owns one row ("slot") and keeps its tokens at cache index == position, exactly as
  it would if it ran alone; a finished request's slot is reused by the next one.
* New requests join at step boundaries: they are prefilled together (left padding, attention mask,
  explicit position ids, `pixel_values` for image requests), and their keys/values are copied into
  their slots with the padding squeezed out.
* One decode step then runs every occupied row together with fixed shapes: `[b, 1]` token ids,
  per-row write positions, and a `[b, 1, 1, max_seq_len]` mask built from the row lengths. `b` is
  rounded up to a bucket (1, 2, 4, … max_batch_size), so a compiled step (`torch.compile`, CUDA
  graphs on GPU) has a handful of shapes that `warmup()` compiles before the first user's job.

Everything model-related happens on this thread; other threads only put work in the inbox and set
cancel flags. Per step the host does one device→host copy of the sampled ids, then per request
appends the id, detokenizes incrementally and hands an event to the request's sink.
"""

from __future__ import annotations

import heapq
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

import torch

from ml.engines.detokenize import IncrementalDetokenizer
from ml.engines.slot_cache import SlotKVCache
from ml.protocol import EngineEvent, Failed, Finished, Token

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Sequence:
    """One request inside the batcher. Built (and tokenized) by the caller's thread."""

    request_id: str
    prompt_ids: list[int]
    mm_inputs: dict[str, torch.Tensor]  # processor outputs besides the ids, e.g. pixel_values
    max_new_tokens: int
    temperature: float
    ignore_eos: bool
    sink: Callable[[EngineEvent], None]
    detok: IncrementalDetokenizer
    slot: int = -1
    completion_tokens: int = 0
    cancelled: bool = False
    done: bool = False

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_ids)


@dataclass
class _Call:
    fn: Callable[[], Any]
    future: Future[Any]


_STOP = object()
_WINDOW_STEP = 128  # granularity of the eager attention window (cache cells)


def _buckets(max_batch: int) -> list[int]:
    sizes, b = [], 1
    while b < max_batch:
        sizes.append(b)
        b *= 2
    sizes.append(max_batch)
    return sizes


class ContinuousBatcher:
    """Owns the model on a background thread. Thread-safe entry points: `enqueue`, `cancel`, `call`, `stop`."""

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        *,
        device: torch.device,
        dtype: torch.dtype,
        max_batch_size: int,
        max_seq_len: int,
        pad_token_id: int,
        eos_token_ids: Iterable[int],
        compile: bool = False,
        max_prefill_tokens: int = 8192,
        compile_shapes: Literal["dynamic", "static"] = "dynamic",
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        self.dtype = dtype
        self.max_batch_size = max_batch_size
        self.max_seq_len = max_seq_len
        self.pad_token_id = pad_token_id
        self.eos_token_ids = frozenset(eos_token_ids)
        self.max_prefill_tokens = max_prefill_tokens
        self.compiled = compile
        self.buckets = _buckets(max_batch_size)

        with torch.no_grad():
            # lengths[row] = tokens of that row in the cache = position (and cache index) of its next input.
            self._lengths = torch.zeros(max_batch_size, dtype=torch.long, device=device)
            self._last = torch.zeros(max_batch_size, dtype=torch.long, device=device)
            self._active = torch.zeros(max_batch_size, dtype=torch.long, device=device)
            self._temps = torch.zeros(max_batch_size, dtype=torch.float32, device=device)
            self._arange = torch.arange(max_seq_len, device=device)
            self.kv = SlotKVCache(model.config, max_batch_size, max_seq_len, self._lengths, dtype, device)
        self.cache = self.kv.cache
        self.cache_bytes = self.kv.nbytes
        self._mask_min = torch.finfo(dtype).min
        self._window = max_seq_len

        self._step_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = self._decode
        self._mark_step: Callable[[], None] = lambda: None
        if compile:
            import torch._dynamo.config as dynamo_config

            # "dynamic": b = 1 gets its own graph (dynamo specialises sizes 0/1), every other bucket
            # shares one graph with a symbolic batch size (two compiles). "static": one graph per
            # bucket, each specialised to its size as b = 1 is (a compile per bucket, longer warm-up).
            # CUDA graphs are recorded per bucket either way. On an H200 the 1.8B shape ran batch 1
            # at 3.9 ms per step and batch 64 at 24 ms on the symbolic graph (bench/README.md):
            # "static" is there to measure against it.
            dynamo_config.recompile_limit = max(dynamo_config.recompile_limit, 2 * len(self.buckets) + 4)
            mode = "reduce-overhead" if device.type == "cuda" else "default"
            self._step_fn = torch.compile(self._decode, mode=mode, fullgraph=False, dynamic=compile_shapes == "dynamic")
            if device.type == "cuda":
                # Each step is a new inference "iteration" for CUDA-graph trees: earlier outputs may be reused.
                self._mark_step = torch.compiler.cudagraph_mark_step_begin

        self._inbox: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._waiting: deque[Sequence] = deque()
        self._rows: list[Sequence | None] = [None] * max_batch_size
        self._free = list(range(max_batch_size))  # a heap: the lowest slot first keeps rows packed
        self._occupied: set[int] = set()
        self._n_sampling = 0
        self._lock = threading.Lock()
        self._by_id: dict[str, Sequence] = {}
        self._stopped = False
        self.steps = 0
        self.generated_tokens = 0
        # Where the generation thread's time goes (stats(): a benchmark compares an engine alone with
        # the same engine under the whole stack). Keys fixed here: other threads read these dicts.
        # Each step ends in a device→host copy of the sampled ids, so on a GPU its wall time is the
        # GPU's time too.
        self.prefills = 0
        self.prefill_rows = 0
        self.prefill_s = 0.0
        self.step_counts: dict[int, int] = dict.fromkeys(self.buckets, 0)
        self.step_seconds: dict[int, float] = dict.fromkeys(self.buckets, 0.0)
        self.last_step_at = 0.0  # wall clock (time.time()) at the end of the latest decode step
        self.woke_at = 0.0  # wall clock when the loop last found work after having none
        self._thread = threading.Thread(target=self._run, name="ml-generation-loop", daemon=True)
        self._thread.start()

    # ---- thread-safe entry points -------------------------------------------------------------

    def enqueue(self, seq: Sequence) -> str | None:
        """Queue a sequence; returns a reason string instead if it cannot be accepted."""
        with self._lock:
            if self._stopped:
                return "engine is closed"
            if seq.request_id in self._by_id:
                return f"request {seq.request_id!r} is already running"
            self._by_id[seq.request_id] = seq
        self._inbox.put(seq)
        return None

    def cancel(self, request_id: str) -> bool:
        with self._lock:
            seq = self._by_id.get(request_id)
        if seq is None or seq.done:
            return False
        seq.cancelled = True  # read by the loop at the next step boundary
        return True

    def call(self, fn: Callable[[], Any], timeout: float | None = None) -> Any:
        """Run `fn` on the generation thread between steps (warm-up, compilation) and return its result."""
        if self._stopped:
            raise RuntimeError("the generation loop is stopped")
        fut: Future[Any] = Future()
        self._inbox.put(_Call(fn, fut))
        return fut.result(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        with self._lock:
            self._stopped = True
        self._inbox.put(_STOP)
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    @property
    def running(self) -> int:
        return len(self._occupied)

    @property
    def queued(self) -> int:
        return len(self._waiting) + self._inbox.qsize()

    # ---- the loop -----------------------------------------------------------------------------

    def _run(self) -> None:
        with torch.no_grad():
            while True:
                idle = not self._occupied and not self._waiting
                if not self._drain_inbox(block=idle):
                    return
                if idle and self._waiting:  # a request, not a call (stats) that woke it
                    self.woke_at = time.time()
                try:
                    self._admit()
                    if self._occupied:
                        self._step()
                except Exception:  # never let one bad batch kill the worker's model thread
                    log.exception("generation loop error")

    def _drain_inbox(self, block: bool) -> bool:
        try:
            item = self._inbox.get() if block else self._inbox.get_nowait()
            while True:
                if item is _STOP:
                    self._shutdown()
                    return False
                if isinstance(item, _Call):
                    self._run_call(item)
                else:
                    self._waiting.append(item)
                item = self._inbox.get_nowait()
        except queue.Empty:
            return True

    def _run_call(self, call: _Call) -> None:
        try:
            call.future.set_result(call.fn())
        except BaseException as exc:
            call.future.set_exception(exc)

    def _shutdown(self) -> None:
        for seq in list(self._waiting) + [s for s in self._rows if s is not None]:
            self._fail(seq, "engine closed")
        self._waiting.clear()

    def _admit(self) -> None:
        batch: list[Sequence] = []
        longest = 0
        while self._waiting and len(batch) < len(self._free):
            seq = self._waiting[0]
            if seq.cancelled:
                self._waiting.popleft()
                self._finish(seq, "cancelled")
                continue
            longest_if = max(longest, seq.prompt_tokens)
            if batch and longest_if * (len(batch) + 1) > self.max_prefill_tokens:
                break
            self._waiting.popleft()
            batch.append(seq)
            longest = longest_if
        if batch:
            started = time.perf_counter()
            self._prefill(batch, longest)
            self.prefill_s += time.perf_counter() - started
            self.prefills += 1
            self.prefill_rows += len(batch)

    def _prefill(self, batch: list[Sequence], width: int) -> None:
        n = len(batch)
        ids = torch.full((n, width), self.pad_token_id, dtype=torch.long)
        attn = torch.zeros((n, width), dtype=torch.long)
        for j, seq in enumerate(batch):
            ids[j, width - seq.prompt_tokens :] = torch.tensor(seq.prompt_ids, dtype=torch.long)
            attn[j, width - seq.prompt_tokens :] = 1
        position_ids = (attn.cumsum(-1) - 1).clamp(min=0)
        mm: dict[str, torch.Tensor] = {}
        for key in dict.fromkeys(k for seq in batch for k in seq.mm_inputs):
            mm[key] = torch.cat([seq.mm_inputs[key] for seq in batch if key in seq.mm_inputs]).to(self.device)
        slots = [heapq.heappop(self._free) for _ in batch]
        try:
            out = self.model(
                input_ids=ids.to(self.device),
                attention_mask=attn.to(self.device),
                position_ids=position_ids.to(self.device),
                use_cache=True,
                logits_to_keep=1,
                **mm,
            )
            self.kv.adopt_prefill(out.cache, [s.prompt_tokens for s in batch], slots, width)
            slot_t = torch.tensor(slots, device=self.device)
            temps = torch.tensor([s.temperature for s in batch], dtype=torch.float32, device=self.device)
            first = self._sample(out.logits[:, -1, :], temps, any(s.temperature > 0 for s in batch))
            self._last[slot_t] = first
            self._lengths[slot_t] = torch.tensor([s.prompt_tokens for s in batch], device=self.device)
            self._temps[slot_t] = temps
            self._active[slot_t] = 1
            first_ids = first.tolist()
        except Exception as exc:
            log.exception("prefill failed")
            try:  # the slots go back idle: an "active" free row would keep growing in the decode step
                self._active[slots] = 0
                self._lengths[slots] = 0
            except Exception:
                log.exception("could not reset slots %s", slots)
            for slot in slots:
                heapq.heappush(self._free, slot)
            for seq in batch:
                self._fail(seq, f"prefill failed: {type(exc).__name__}: {exc}")
            return
        for seq, slot in zip(batch, slots, strict=True):
            seq.slot = slot
            self._rows[slot] = seq
            self._occupied.add(slot)
            if seq.temperature > 0:
                self._n_sampling += 1
        for seq, tok in zip(batch, first_ids, strict=True):
            self._accept(seq, tok)

    def _decode(self, input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """One token for each of the first b rows. Fixed shapes for a given b and window (compilable)."""
        visible = self._arange[None, : self._window] <= lengths[:, None]
        mask = torch.where(visible, 0.0, self._mask_min).to(self.dtype)[:, None, None, :]
        out = self.model(
            input_ids=input_ids[:, None],
            position_ids=lengths[:, None],
            attention_mask=mask,
            cache=self.cache,
            use_cache=True,
            logits_to_keep=1,
        )
        return out.logits[:, -1, :]

    def _bucket(self, needed: int) -> int:
        for b in self.buckets:
            if b >= needed:
                return b
        return self.max_batch_size

    def _step(self) -> None:
        started = time.perf_counter()
        b = self._bucket(max(self._occupied) + 1)
        if not self.compiled:
            # Attend over the cells in use (rounded up to few distinct shapes), not the whole cache:
            # the row written this step sits at prompt + completion - 1.
            used = max(r.prompt_tokens + r.completion_tokens for r in self._rows[:b] if r is not None)
            window = min(self.max_seq_len, -(-used // _WINDOW_STEP) * _WINDOW_STEP)
            if window != self._window:
                self._window = window
                self.kv.set_window(window)
        try:
            self._mark_step()
            logits = self._step_fn(self._last[:b], self._lengths[:b])
            nxt = self._sample(logits, self._temps[:b], self._n_sampling > 0)
            self._last[:b] = nxt
            self._lengths[:b] += self._active[:b]
            ids = nxt.tolist()
        except Exception as exc:
            log.exception("decode step failed")
            for seq in [s for s in self._rows if s is not None]:
                self._fail(seq, f"decode failed: {type(exc).__name__}: {exc}")
            return
        self.steps += 1
        rows = self._rows
        for slot in range(b):
            row = rows[slot]
            if row is not None:
                self._accept(row, ids[slot])
        self.step_counts[b] += 1
        self.step_seconds[b] += time.perf_counter() - started
        self.last_step_at = time.time()

    @staticmethod
    def _sample(logits: torch.Tensor, temps: torch.Tensor, sampling: bool) -> torch.Tensor:
        greedy = logits.argmax(-1)
        if not sampling:
            return greedy
        probs = torch.softmax(logits.float() / temps.clamp(min=1e-5)[:, None], dim=-1)
        sampled = torch.multinomial(probs, 1).squeeze(1)
        return torch.where(temps > 0, sampled, greedy)

    # ---- per-request bookkeeping --------------------------------------------------------------

    def _accept(self, seq: Sequence, token: int) -> None:
        if seq.cancelled:
            self._finish(seq, "cancelled")
            return
        seq.completion_tokens += 1
        self.generated_tokens += 1
        if token in self.eos_token_ids and not seq.ignore_eos:
            self._finish(seq, "stop")
            return
        delta = seq.detok.push(token)
        if delta:
            self._emit(seq, Token(seq.request_id, delta, seq.completion_tokens))
        if seq.completion_tokens >= seq.max_new_tokens or seq.prompt_tokens + seq.completion_tokens >= self.max_seq_len:
            self._finish(seq, "length")

    def _emit(self, seq: Sequence, event: EngineEvent) -> None:
        try:
            seq.sink(event)
        except Exception:  # the consumer is gone (its event loop closed): stop working for it
            seq.cancelled = True

    def _release(self, seq: Sequence) -> None:
        seq.done = True
        with self._lock:
            self._by_id.pop(seq.request_id, None)
        if seq.slot >= 0:
            slot = seq.slot
            self._rows[slot] = None
            self._occupied.discard(slot)
            heapq.heappush(self._free, slot)
            self._active[slot] = 0
            self._lengths[slot] = 0
            if seq.temperature > 0:
                self._n_sampling -= 1
            seq.slot = -1

    def _finish(self, seq: Sequence, reason: Literal["stop", "length", "cancelled"]) -> None:
        tail = seq.detok.flush()
        if tail:
            self._emit(seq, Token(seq.request_id, tail, seq.completion_tokens))
        self._release(seq)
        self._emit(
            seq,
            Finished(
                seq.request_id,
                seq.detok.text(),
                seq.prompt_tokens,
                seq.completion_tokens,
                reason,
            ),
        )

    def _fail(self, seq: Sequence, reason: str) -> None:
        self._release(seq)
        self._emit(seq, Failed(seq.request_id, reason))

    # ---- warm-up ------------------------------------------------------------------------------

    def warm_decode(self) -> float:
        """Run (and with compile=True, compile and capture) the decode step for every bucket size.

        Runs on the generation thread. Dummy steps rewrite each row's next cache cell with the same
        token the next real step writes there, so running requests are unaffected.
        """
        start = time.perf_counter()
        for b in self.buckets:
            for _ in range(3 if self.compiled else 1):
                self._mark_step()
                self._step_fn(self._last[:b], self._lengths[:b])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start
