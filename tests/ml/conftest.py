"""Fixtures for the engine tests: one tiny checkpoint per session, engines on it, a real server.

Plain pytest: async code runs through `asyncio.run` in small sync helpers.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ml.protocol import DraftRequest, Engine, EngineEvent, ImagePart


def png(color: tuple[int, int, int], size: int = 40) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buf, format="PNG")
    return buf.getvalue()


def image(color: tuple[int, int, int], description: str = "胸部X線 正面") -> ImagePart:
    return ImagePart(png(color), description)


def request(request_id: str, prompt: str = "胸部X線の所見を書いてください。", **fields: Any) -> DraftRequest:
    fields.setdefault("task", "cxr")
    fields.setdefault("prompt_version", "test-v1")
    return DraftRequest(request_id=request_id, prompt=prompt, **fields)


async def collect_async(engine: Engine, req: DraftRequest) -> list[EngineEvent]:
    return [event async for event in engine.submit(req)]


def collect(engine: Engine, req: DraftRequest) -> list[EngineEvent]:
    return asyncio.run(collect_async(engine, req))


def collect_many(engine: Engine, reqs: list[DraftRequest], stagger: float = 0.0) -> list[list[EngineEvent]]:
    """Submit concurrently from one event loop; request i starts `i * stagger` seconds late."""

    async def one(i: int, req: DraftRequest) -> list[EngineEvent]:
        await asyncio.sleep(i * stagger)
        return await collect_async(engine, req)

    async def main() -> list[list[EngineEvent]]:
        return list(await asyncio.gather(*(one(i, r) for i, r in enumerate(reqs))))

    return asyncio.run(main())


@pytest.fixture(scope="session")
def tiny_llava(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ml.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-llava"), kind="llava", seed=0)


@pytest.fixture(scope="session")
def tiny_causal(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ml.tiny import build_tiny_checkpoint

    return build_tiny_checkpoint(tmp_path_factory.mktemp("tiny-causal"), kind="causal", seed=0)


@pytest.fixture(scope="session")
def llava_engine(tiny_llava: Path) -> Iterator[Any]:
    from ml.engines.transformers_engine import TransformersEngine

    engine = TransformersEngine(str(tiny_llava), device="cpu", max_batch_size=16, max_seq_len=256)
    yield engine
    engine.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    # Tests that talk to the server run last, so that it boots while the others run.
    items.sort(key=lambda item: "served_llava" in getattr(item, "fixturenames", ()))


@pytest.fixture(scope="session", autouse=True)
def _boot_server_early(request: pytest.FixtureRequest) -> None:
    if any("served_llava" in getattr(item, "fixturenames", ()) for item in request.session.items):
        request.getfixturevalue("_serve_process")


@pytest.fixture(scope="session")
def _serve_process(tiny_llava: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    """Starts `transformers serve` on loopback, serving the tiny LLaVA by path (not waiting for it)."""
    port = _free_port()
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    log_path = tiny_llava.parent / "serve.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(exe), "serve", str(tiny_llava), "--host", "127.0.0.1", "--port", str(port),
             "--device", "cpu", "--default-seed", "0", "--log-level", "warning"],
            stdout=log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip
    try:
        yield proc, f"http://127.0.0.1:{port}", log_path
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def served_llava(_serve_process: tuple[subprocess.Popen[bytes], str, Path]) -> str:
    """The base URL of the `transformers serve` process, once it answers /health."""
    proc, base, log_path = _serve_process
    deadline = time.monotonic() + 90
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"transformers serve exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                return base
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"transformers serve not ready after 90 s: {log_path.read_text()[-2000:]}")
        time.sleep(0.1)
