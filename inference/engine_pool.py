"""One engine per model version per worker process, built on first use and kept.

A GPU worker runs Celery's thread pool with concurrency = the engine's batch size, so many
tasks call `run_sync` at once and the engine batches them. Engines that offer a blocking
`submit_sync` (TransformersEngine) are called directly from the task thread; purely async engines
(template, OpenAI server, test stubs) run on one event loop owned by this module, because their
clients may be bound to the loop they were created on.

Only `ml.protocol` and `ml.engines.build_engine` are used (design rule 5). Tests register extra
engine kinds here (a real class implementing the protocol), never by patching Django internals.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from inference import conf
from ml.engines import build_engine
from ml.engines.mailbox import Mailbox, drain
from ml.protocol import DraftRequest, Engine, EngineError, EngineEvent, Failed, Finished

if TYPE_CHECKING:
    from inference.models import ModelVersion

log = logging.getLogger(__name__)

EngineFactory = Callable[[str, dict[str, Any]], Engine]  # (location, options) → engine
FAILED_LOAD_RETRY_S = 30.0

_kinds: dict[str, EngineFactory] = {}
_engines: dict[tuple[Any, ...], Engine] = {}
_failures: dict[tuple[Any, ...], tuple[float, str]] = {}
_lock = threading.Lock()
_build_locks: dict[tuple[Any, ...], threading.Lock] = {}
_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def register_engine_kind(kind: str, factory: EngineFactory) -> None:
    """Make `kind` buildable by this pool (tests, plug-ins). Overrides `ml.engines` for that kind."""
    _kinds[kind] = factory


def unregister_engine_kind(kind: str) -> None:
    _kinds.pop(kind, None)
    clear(kind=kind)


def known_kinds() -> tuple[str, ...]:
    from ml.engines import KINDS

    return tuple(dict.fromkeys((*KINDS, "vllm", *_kinds)))


def _key(mv: ModelVersion) -> tuple[Any, ...]:
    # A re-registration that changes where or how the model loads gets a fresh engine.
    return (mv.pk, mv.engine, mv.location, repr(sorted((mv.options or {}).items())))


def get_engine(mv: ModelVersion) -> Engine:
    """The engine of `mv`, built once per process. Raises `EngineError` with the reason if it
    cannot be built (and remembers the failure for a short while, so a queue of jobs for a broken
    model fails fast instead of reloading it for each)."""
    key = _key(mv)
    engine = _engines.get(key)
    if engine is not None:
        return engine
    with _lock:
        build_lock = _build_locks.setdefault(key, threading.Lock())
    with build_lock:
        engine = _engines.get(key)
        if engine is not None:
            return engine
        failed = _failures.get(key)
        if failed and time.monotonic() - failed[0] < FAILED_LOAD_RETRY_S:
            raise EngineError(failed[1])
        started = time.perf_counter()
        try:
            factory = _kinds.get(mv.engine)
            options = dict(mv.options or {})
            if mv.engine == "transformers" and factory is None:
                options.setdefault("process", conf.engine_process())
                if options["process"] and conf.engine_cpus():
                    options.setdefault("cpus", conf.engine_cpus())
            engine = factory(mv.location, options) if factory else build_engine(mv.engine, mv.location, **options)
        except EngineError as exc:
            _failures[key] = (time.monotonic(), str(exc))
            raise
        except Exception as exc:  # an engine bug must fail the job with a reason, not kill the worker
            reason = f"cannot build engine {mv.engine!r}: {type(exc).__name__}: {exc}"
            _failures[key] = (time.monotonic(), reason)
            raise EngineError(reason) from exc
        _failures.pop(key, None)
        _engines[key] = engine
        log.info("engine %s for model %s built in %.1f s", mv.engine, mv, time.perf_counter() - started)
        return engine


def preload(mv: ModelVersion) -> float | None:
    """Build (and warm up, if the engine can) at worker start. Returns warm-up seconds or None."""
    engine = get_engine(mv)
    warmup = getattr(engine, "warmup", None)
    return float(warmup()) if callable(warmup) else None


def engines_stats() -> dict[str, dict[str, Any]]:
    """The counters of every engine this process has built that keeps some (`stats()`), by
    "model_version=<id> engine=<kind>"; an engine that cannot answer says why instead."""
    with _lock:
        engines = list(_engines.items())
    out: dict[str, dict[str, Any]] = {}
    for key, engine in engines:
        stats = getattr(engine, "stats", None)
        if not callable(stats):
            continue
        name = f"model_version={key[0]} engine={key[1]}"
        try:
            out[name] = dict(stats())
        except Exception as exc:  # a dead engine process: the answer says so, the caller goes on
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


def clear(kind: str | None = None) -> None:
    """Forget engines (tests; a worker reloading its registry). Closes them best effort."""
    with _lock:
        keys = [k for k in _engines if kind is None or k[1] == kind]
        doomed = [_engines.pop(k) for k in keys]
        for k in [k for k in _failures if kind is None or k[1] == kind]:
            _failures.pop(k, None)
    for engine in doomed:
        try:
            _run_coro(engine.aclose()).result(timeout=10)
        except Exception:
            log.warning("closing engine %s failed", engine, exc_info=True)


def _event_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _loop_lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="engine-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def _run_coro(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run_coroutine_threadsafe(coro, _event_loop())


def run_sync(
    engine: Engine,
    request: DraftRequest,
    on_event: Callable[[EngineEvent], None],
    timeout: float | None = None,
    coalesce_s: float = 0.0,
) -> Finished | Failed:
    """Submit from a plain thread and block until the request ends; `on_event` runs in this thread
    for every event. If `on_event` raises, the request is cancelled and the exception propagates.
    Past `timeout` the request is cancelled (the result is then Finished(cancelled)). Tokens that
    come within `coalesce_s` of the previous delivery reach `on_event` as one."""
    submit_sync = getattr(engine, "submit_sync", None)
    if callable(submit_sync):
        result: Finished | Failed = submit_sync(request, on_event, timeout, coalesce_s)
        return result

    # A purely async engine streams on this module's loop into the same mailbox and wait loop
    # (`ml.engines.mailbox.drain`) that blocking engines use: one set of timeout and cancel rules.
    box = Mailbox(coalesce_s)

    async def pump() -> None:
        try:
            async for event in engine.submit(request):
                box.put(event)
                if isinstance(event, Finished | Failed):
                    return
            box.put(Failed(request.request_id, "the engine ended the stream without a result"))
        except BaseException as exc:  # delivered to the waiting thread as the request's end
            box.put(Failed(request.request_id, f"engine error: {type(exc).__name__}: {exc}"))
            if not isinstance(exc, Exception):
                raise

    future = _run_coro(pump())
    try:
        return drain(box, on_event, timeout, lambda: cancel_sync(engine, request.request_id))
    finally:
        if not future.done():
            future.cancel()


def cancel_sync(engine: Engine, request_id: str) -> bool:
    """Cancel from any thread."""
    cancel = getattr(engine, "cancel_sync", None)
    if callable(cancel):
        return bool(cancel(request_id))
    try:
        return bool(_run_coro(engine.cancel(request_id)).result(timeout=10))
    except Exception:
        log.warning("cancel of %s failed", request_id, exc_info=True)
        return False
