"""multipart/related (RFC 2387) as DICOMweb uses it: read STOW-RS bodies part by part without
holding the whole request in memory, and write WADO-RS responses as a stream."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from typing import Protocol

CRLF = b"\r\n"
_CHUNK = 1 << 16


class Readable(Protocol):
    def read(self, size: int = -1) -> bytes: ...


class MultipartError(ValueError):
    pass


def content_type_params(header: str) -> tuple[str, dict[str, str]]:
    """'multipart/related; type="application/dicom"; boundary=x' → ('multipart/related', {...})."""
    parts = [p.strip() for p in header.split(";")]
    params: dict[str, str] = {}
    for item in parts[1:]:
        if "=" in item:
            key, value = item.split("=", 1)
            params[key.strip().lower()] = value.strip().strip('"')
    return parts[0].lower(), params


class _Reader:
    def __init__(self, stream: Readable) -> None:
        self.stream = stream
        self.buf = b""
        self.eof = False

    def _fill(self) -> bool:
        if self.eof:
            return False
        chunk = self.stream.read(_CHUNK)
        if not chunk:
            self.eof = True
            return False
        self.buf += chunk
        return True

    def until(self, marker: bytes) -> bytes | None:
        """Bytes before `marker` (consumed with it), or None at end of stream without it."""
        pieces: list[bytes] = []
        while True:
            index = self.buf.find(marker)
            if index >= 0:
                pieces.append(self.buf[:index])
                self.buf = self.buf[index + len(marker) :]
                return b"".join(pieces)
            # Keep a tail that could hold the start of the marker; the rest is part data.
            keep = len(marker) - 1
            if len(self.buf) > keep:
                pieces.append(self.buf[: len(self.buf) - keep])
                self.buf = self.buf[len(self.buf) - keep :]
            if not self._fill():
                return None

    def take(self, n: int) -> bytes:
        while len(self.buf) < n and self._fill():
            pass
        out, self.buf = self.buf[:n], self.buf[n:]
        return out


def iter_parts(stream: Readable, boundary: str) -> Iterator[tuple[dict[str, str], bytes]]:
    """Yield (headers, body) for each part. Header names are lower-cased."""
    if not boundary:
        raise MultipartError("multipart の boundary が指定されていません")
    reader = _Reader(stream)
    delimiter = b"--" + boundary.encode("latin-1")
    if reader.until(delimiter) is None:
        raise MultipartError("multipart の区切り（boundary）が本文にありません")
    while True:
        after = reader.take(2)
        if after == b"--":
            return
        if after != CRLF:
            raise MultipartError("multipart の区切りの後に改行がありません")
        head = reader.until(CRLF + CRLF)
        if head is None:
            raise MultipartError("multipart のパートのヘッダが途中で終わっています")
        headers: dict[str, str] = {}
        for line in head.split(CRLF):
            if b":" in line:
                name, value = line.split(b":", 1)
                headers[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
        body = reader.until(CRLF + delimiter)
        if body is None:
            raise MultipartError("multipart の終端の区切りがありません（本文が途中で切れています）")
        yield headers, body


def new_boundary() -> str:
    return uuid.uuid4().hex


def write_parts(parts: Iterable[tuple[str, bytes]], boundary: str) -> Iterator[bytes]:
    """Stream (content type, body) parts; the caller sets Content-Type with the same boundary."""
    delimiter = b"--" + boundary.encode("latin-1")
    for content_type, body in parts:
        yield delimiter + CRLF + b"Content-Type: " + content_type.encode("latin-1") + CRLF + CRLF
        yield body
        yield CRLF
    yield delimiter + b"--" + CRLF
