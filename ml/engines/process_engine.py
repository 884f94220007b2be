"""An engine run in a child process of its own, behind the same protocol.

Why: a GPU worker is a Celery process with one thread per concurrent job. When the generation loop
shares that process, it shares its interpreter lock with those threads and with everything they do
(Celery, the ORM, parsing drafts, broadcasting), and every small torch call that gives the lock up
waits to get it back. The engine alone wrote 64 tiny drafts in 4 s; inside a 64-thread worker the
same engine needed 12 s (bench/inference_stack.py). In a process of its own the loop has an
interpreter to itself (vLLM runs its engine core apart from its API server for the same reason).

The parent keeps one reader thread that hands the child's event batches to the waiting requests
(`Mailbox`: tokens merged, readers woken at most every `coalesce_s`). If the child dies, its
running requests end `Failed` with the exit code and the next request starts a new child; if the
parent dies, the child sees its connection close and exits.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from multiprocessing import Pipe
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from ml.engines.cpus import parse_cpus
from ml.engines.mailbox import SinkEngine
from ml.protocol import DraftRequest, EngineError, EngineEvent, EngineHealth, Failed, Finished

log = logging.getLogger(__name__)

_TERMINAL = (Finished, Failed)
_ROOT = str(Path(__file__).resolve().parents[2])  # the directory that holds the `ml` package


class ProcessEngine(SinkEngine):
    """`kind` engine (one with `start()`, i.e. "transformers") built in a child process.

    Offers what `TransformersEngine` offers: the async protocol, `submit_sync`/`cancel_sync`,
    `warmup()`, `stats()`, `close()`. Building it starts the child and waits until the model has
    loaded (`EngineError` with the child's reason if it could not)."""

    def __init__(self, kind: str, location: str, start_timeout: float = 1800.0,
                 cpus: str | Iterable[int] | None = None, **options: Any) -> None:
        self.name = kind
        self.model = str(location)
        self.warmup_seconds: float | None = None
        self._spec = (kind, str(location), options)
        # The child's CPUs ("0-3" or ids; None: the worker's own): set in the child before the
        # model loads, so its every thread (generation loop, torch's pool) stays on them.
        self.cpus = parse_cpus(cpus)
        self._start_timeout = start_timeout
        self._lock = threading.Lock()  # child lifecycle and the request table
        self._send_lock = threading.Lock()
        self._sinks: dict[str, Callable[[EngineEvent], None]] = {}
        self._calls: dict[int, Future[Any]] = {}
        self._call_ids = itertools.count(1)
        self._conn: Connection | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._closed = False
        with self._lock:
            self._spawn()

    # ---- the child ----------------------------------------------------------------------------

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None and self._conn is not None

    def _spawn(self) -> None:
        """Start the child and wait for its model (caller holds `_lock`)."""
        ours, theirs = Pipe(duplex=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
        if self.cpus:  # torch's thread pool sized to the CPUs it may use, not to the machine
            env["OMP_NUM_THREADS"] = str(len(self.cpus))
        proc = subprocess.Popen(  # noqa: S603 -- our own module, no shell
            [sys.executable, "-m", "ml.engines.engine_host", str(theirs.fileno())],
            pass_fds=[theirs.fileno()], env=env, start_new_session=True)
        theirs.close()
        started = time.monotonic()
        try:
            ours.send(("start", *self._spec, sorted(self.cpus) if self.cpus else None))
            while not ours.poll(0.5):
                if proc.poll() is not None:
                    raise EngineError(f"the engine process exited with code {proc.returncode} while loading")
                if time.monotonic() - started > self._start_timeout:
                    raise EngineError(f"the engine process did not load the model in {self._start_timeout:.0f} s")
            message = ours.recv()
        except (EOFError, OSError) as exc:
            proc.wait(timeout=30)
            ours.close()
            raise EngineError(f"the engine process exited with code {proc.returncode} while loading") from exc
        except EngineError:
            proc.kill()
            proc.wait(timeout=30)
            ours.close()
            raise
        if message[0] != "ready":
            proc.wait(timeout=30)
            ours.close()
            raise EngineError(message[1])
        self._conn, self._proc = ours, proc
        threading.Thread(target=self._read, args=(ours, proc), name="engine-process-reader", daemon=True).start()
        log.info("engine process %s serves %s (started in %.1f s)", proc.pid, self.model, time.monotonic() - started)

    def _read(self, conn: Connection, proc: subprocess.Popen[bytes]) -> None:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "events":
                for event in message[1]:
                    with self._lock:
                        sink = self._sinks.get(event.request_id)
                        if isinstance(event, _TERMINAL):
                            self._sinks.pop(event.request_id, None)
                    if sink is not None:
                        sink(event)
            elif message[0] == "reply":
                _, call_id, ok, value = message
                future = self._calls.pop(call_id, None)
                if future is not None:
                    if ok:
                        future.set_result(value)
                    else:
                        future.set_exception(EngineError(value))
        try:
            code = proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            code = None
        reason = "engine closed" if self._closed else f"the engine process exited (code {code})"
        with self._lock:
            if self._conn is conn:
                self._conn, self._proc = None, None
            orphans, self._sinks = self._sinks, {}
            calls, self._calls = self._calls, {}
        conn.close()
        if not self._closed:
            log.error("engine process %s for %s ended with code %s; running requests fail", proc.pid, self.model, code)
        for request_id, sink in orphans.items():
            sink(Failed(request_id, reason))
        for future in calls.values():
            future.set_exception(EngineError(reason))

    def _send(self, message: tuple[Any, ...]) -> bool:
        conn = self._conn
        if conn is None:
            return False
        try:
            with self._send_lock:
                conn.send(message)
        except (OSError, ValueError):  # the child died; the reader fails what was running
            return False
        return True

    def _call(self, name: str, timeout: float | None = None) -> Any:
        future: Future[Any] = Future()
        call_id = next(self._call_ids)
        with self._lock:
            if not self.alive and not self._closed:
                self._spawn()
            self._calls[call_id] = future
        if not self._send(("call", call_id, name)):
            self._calls.pop(call_id, None)
            raise EngineError("the engine process is not running")
        return future.result(timeout)

    # ---- requests -----------------------------------------------------------------------------

    def _submit(self, request: DraftRequest, sink: Callable[[EngineEvent], None], coalesce_s: float = 0.0) -> None:
        with self._lock:
            if self._closed:
                refused: str | None = "engine is closed"
            elif request.request_id in self._sinks:
                refused = f"request {request.request_id!r} is already running"
            else:
                refused = None
                if not self.alive:
                    try:
                        self._spawn()  # the previous child died: a new one reloads the model
                    except EngineError as exc:
                        refused = str(exc)
                if refused is None:
                    self._sinks[request.request_id] = sink
        if refused is not None:
            sink(Failed(request.request_id, refused))
            return
        if not self._send(("submit", request, coalesce_s)):
            with self._lock:
                mine = self._sinks.pop(request.request_id, None)
            if mine is not None:
                sink(Failed(request.request_id, "the engine process is not running"))

    def _begin(self, request: DraftRequest, sink: Callable[[EngineEvent], None],
               coalesce_s: float = 0.0) -> Callable[[], bool]:
        self._submit(request, sink, coalesce_s)  # the child merges tokens over that window
        return lambda: self.cancel_sync(request.request_id)

    def cancel_sync(self, request_id: str) -> bool:
        with self._lock:
            known = request_id in self._sinks
        return known and self._send(("cancel", request_id))

    async def cancel(self, request_id: str) -> bool:
        return self.cancel_sync(request_id)

    # ---- the rest of the engine's surface -----------------------------------------------------

    def warmup(self) -> float:
        """Compile and warm the engine in the child (see `TransformersEngine.warmup`)."""
        self.warmup_seconds = float(self._call("warmup"))
        return self.warmup_seconds

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self._call("stats", timeout=30)
        return {**stats, "pid": self.pid}

    async def health(self) -> EngineHealth:
        if not self.alive:
            return EngineHealth(ok=False, engine=self.name, model=self.model,
                                detail="the engine process is not running (the next request starts it)")
        try:
            inner: EngineHealth = await asyncio.to_thread(self._call, "health", 30)
        except Exception as exc:
            return EngineHealth(ok=False, engine=self.name, model=self.model, detail=str(exc))
        return EngineHealth(ok=inner.ok, engine=self.name, model=self.model,
                            detail=f"{inner.detail}, process={self.pid}")

    def close(self) -> None:
        """Stop the child; running requests end with Failed("engine closed")."""
        with self._lock:
            self._closed = True
            proc = self._proc
        if proc is None:
            return
        self._send(("close",))
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    async def aclose(self) -> None:
        await asyncio.to_thread(self.close)
