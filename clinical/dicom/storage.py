"""Content-addressed file store for DICOM objects: a file's name is the SHA-256 of its bytes.

Identical bytes are stored once whatever their number of rows; a file is written completely to a
temporary name and renamed into place, so a reader never sees half a file and a crash leaves only
a temporary file behind (swept by `sweep_temporary`)."""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from config.env import env_bool, env_str


def store_root() -> Path:
    """DICOM_STORE_ROOT from the environment (or settings), else `<MEDLMM_VAR_DIR>/dicom`."""
    configured = getattr(settings, "DICOM_STORE_ROOT", "") or env_str("DICOM_STORE_ROOT", "")
    return Path(configured) if configured else Path(settings.VAR_DIR) / "dicom"


def _fsync_enabled() -> bool:
    configured = getattr(settings, "DICOM_STORE_FSYNC", None)
    return env_bool("DICOM_STORE_FSYNC", True) if configured is None else bool(configured)


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class Stored:
    key: str
    size: int
    created: bool  # False when identical bytes were already there


class ContentStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = root or store_root()

    def path(self, key: str) -> Path:
        if len(key) != 64 or not all(c in "0123456789abcdef" for c in key):
            raise ValueError("not a SHA-256 key")
        # Two levels of 256 directories keep any one directory small at millions of objects.
        return self.root / key[:2] / key[2:4] / key

    def put(self, data: bytes, key: str | None = None) -> Stored:
        key = key or sha256_hex(data)
        final = self.path(key)
        if final.exists():
            return Stored(key=key, size=len(data), created=False)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.root / "tmp" / f"{uuid.uuid4().hex}.part"
        tmp.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as fh:
                fh.write(data)
                if _fsync_enabled():
                    # The DB row that follows promises the file exists; make that true after a crash.
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        return Stored(key=key, size=len(data), created=True)

    def open(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def discard(self, key: str) -> None:
        self.path(key).unlink(missing_ok=True)

    def keys(self) -> list[str]:
        """Every stored key (tests and maintenance; walks the tree)."""
        if not self.root.exists():
            return []
        return sorted(p.name for p in self.root.glob("??/??/*") if p.is_file())

    def sweep_temporary(self, older_than_s: float = 3600) -> int:
        """Remove temporary files a crashed writer left behind."""
        tmp_dir = self.root / "tmp"
        if not tmp_dir.exists():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for part in tmp_dir.glob("*.part"):
            if part.stat().st_mtime < cutoff:
                part.unlink(missing_ok=True)
                removed += 1
        return removed
