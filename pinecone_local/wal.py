"""Binary record framing for the write-ahead log and snapshots.

A frame is ``<u32 body length><u32 crc32(body)><body>`` where ``body`` is one type byte followed by the payload.
``append`` hands the whole frame to the kernel in a single ``write`` on an ``O_APPEND`` descriptor before the
server answers, so an acknowledged write survives the process being killed (``--fsync`` adds power-loss safety).
``read_frames`` stops at the first incomplete or corrupt frame and reports its offset, so a record torn by a kill
is discarded on restart instead of failing it.
"""

from __future__ import annotations

import os
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

_HEADER = struct.Struct("<II")
MAX_FRAME_BYTES = 1 << 30


def encode_frame(kind: int, payload: bytes) -> bytes:
    """One framed record."""
    body = bytes((kind,)) + payload
    return _HEADER.pack(len(body), zlib.crc32(body)) + body


def read_frames(data: bytes) -> tuple[list[tuple[int, bytes]], int]:
    """Decode frames from ``data``; returns them and the offset just past the last intact frame."""
    frames: list[tuple[int, bytes]] = []
    offset = 0
    end = len(data)
    view = memoryview(data)
    while offset + _HEADER.size <= end:
        length, crc = _HEADER.unpack_from(data, offset)
        start = offset + _HEADER.size
        if length == 0 or length > MAX_FRAME_BYTES or start + length > end:
            break
        body = view[start : start + length]
        if zlib.crc32(body) != crc:
            break
        frames.append((body[0], bytes(body[1:])))
        offset = start + length
    return frames, offset


def iter_file_frames(path: Path) -> Iterator[tuple[int, bytes]]:
    """Frames of a whole file, truncating a torn tail in place so later appends start on a frame boundary."""
    data = path.read_bytes()
    frames, good = read_frames(data)
    if good != len(data):
        with open(path, "r+b") as handle:
            handle.truncate(good)
    yield from frames


class LogFile:
    """An append-only file of frames."""

    def __init__(self, path: Path, fsync: bool) -> None:
        self.path = path
        self._fsync = fsync
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self.size = os.fstat(self._fd).st_size

    def append(self, frame: bytes) -> None:
        """Write one frame with a single system call (and fsync when configured)."""
        view = memoryview(frame)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.size += len(frame)
        if self._fsync:
            os.fsync(self._fd)

    def close(self) -> None:
        """Close the descriptor."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
