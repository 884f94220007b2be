"""The production launcher (`make serve`): the ASGI server and one Celery worker per queue as
separate processes, supervised together. If any of them dies the others are stopped and the
launcher exits non-zero, so a process manager (systemd, k8s) restarts the whole unit instead of
leaving a web server without workers."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence

PY = sys.executable


def commands(host: str, port: int, extra: Sequence[str] = ()) -> dict[str, list[str]]:
    return {
        # No per-message deflate: our websocket frames are small JSON deltas, and compressing each one
        # for each subscriber cost more CPU than the rest of the delivery (bench/ws_fanout.py).
        "web": [PY, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", str(port),
                "--lifespan", "off", "--no-access-log", "--ws-per-message-deflate", "false"],
        "worker-default": [PY, "-m", "celery", "-A", "config", "worker", "-Q", "default", "-n", "default@%h",
                           "--concurrency", os.environ.get("CELERY_DEFAULT_CONCURRENCY", "2"), "-l", "INFO"],
        # One process per GPU; the engine inside batches across concurrent jobs (issue 5).
        "worker-gpu": [PY, "-m", "celery", "-A", "config", "worker", "-Q", "gpu", "-n", "gpu@%h",
                       "--pool", "threads", "--concurrency", os.environ.get("CELERY_GPU_CONCURRENCY", "8"),
                       "-l", "INFO"],
        # The DICOM C-STORE SCP (AE title, host and port from DICOM_SCP_* in the environment).
        "dicom-scp": [PY, "manage.py", "dicom_scp"],
        # Periodic work (the inference sweeper re-enqueues jobs whose lease expired).
        "beat": [PY, "-m", "celery", "-A", "config", "beat", "-l", "INFO",
                 "-s", os.path.join(os.environ.get("MEDLMM_VAR_DIR", "var"), "celerybeat-schedule")],
        **{f"extra-{i}": [PY, "manage.py", *cmd.split()] for i, cmd in enumerate(extra)},
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Med-LMM CDS production launcher")
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--no-migrate", action="store_true")
    parser.add_argument("--extra", action="append", default=[], help="additional manage.py command to run")
    args = parser.parse_args(argv)
    if not os.environ.get("DATABASE_URL") or not os.environ.get("REDIS_URL"):
        print("DATABASE_URL と REDIS_URL を設定してください（本番構成）。組込みモードは `make run`。",
              file=sys.stderr)
        return 2
    if not args.no_migrate:
        subprocess.run([PY, "manage.py", "migrate", "--noinput", "-v0"], check=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_args: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    for name, cmd in commands(args.host, args.port, args.extra).items():
        procs[name] = subprocess.Popen(cmd)  # our own fixed commands, no shell
        print(f"[launcher] started {name} (pid {procs[name].pid})", flush=True)
    exit_code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                print(f"[launcher] {name} exited with {proc.returncode}; stopping the rest", flush=True)
                exit_code = proc.returncode or 1
                stopping = True
                break
        time.sleep(0.2)
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 20
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
