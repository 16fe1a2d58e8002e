"""Durable storage layout: a snapshot plus numbered write-ahead log segments in one data directory.

Layout::

    <data-dir>/snapshot.bin        frames recreating the whole state; its first frame names the next log generation
    <data-dir>/wal-<gen>.log       frames of every acknowledged write since that snapshot

Recovery loads the snapshot, then replays every segment whose generation is at least the one the snapshot names, in
order. Compaction (``rotate`` then ``write_snapshot``) starts a new segment, writes the snapshot to a temporary file,
renames it into place and only then deletes older segments, so a kill at any point leaves a recoverable directory.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import orjson

from .wal import LogFile, encode_frame, iter_file_frames

logger = logging.getLogger(__name__)

OP_META = 0
_SNAPSHOT = "snapshot.bin"
_SEGMENT = re.compile(r"^wal-(\d{8})\.log$")


def _segment_name(generation: int) -> str:
    return f"wal-{generation:08d}.log"


class Journal:
    """Owns the data directory: recovery, appends, compaction."""

    def __init__(self, directory: Path, fsync: bool = False) -> None:
        self.directory = directory
        self.fsync = fsync
        directory.mkdir(parents=True, exist_ok=True)
        self.generation = 1
        self._log: LogFile | None = None

    def _segments(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.iterdir():
            match = _SEGMENT.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def recover(self) -> Iterator[tuple[int, bytes]]:
        """Yield every frame of the snapshot and the live segments, in order, then open the log for appends."""
        first_generation = 1
        snapshot = self.directory / _SNAPSHOT
        if snapshot.exists():
            frames = iter_file_frames(snapshot)
            for kind, payload in frames:
                if kind == OP_META:
                    first_generation = int(orjson.loads(payload)["next_generation"])
                    continue
                yield kind, payload
        last = first_generation
        for generation, path in self._segments():
            if generation < first_generation:
                path.unlink()
                continue
            yield from iter_file_frames(path)
            last = generation
        self.generation = last
        self._log = LogFile(self.directory / _segment_name(last), self.fsync)

    @property
    def log_bytes(self) -> int:
        """Size of the current segment."""
        return self._log.size if self._log else 0

    def append(self, frame: bytes) -> None:
        """Append one frame to the current segment (before the request is acknowledged)."""
        assert self._log is not None, "recover() must run before append()"
        self._log.append(frame)

    def compact(self, snapshot_frames: Callable[[], Iterable[bytes]]) -> None:
        """Start a new segment and write a snapshot of the current state, then drop the older segments.

        Must be called with no write in flight (the server calls it from its event-loop thread between requests),
        so the state the snapshot captures is exactly the state after the previous segment.
        """
        old_generation = self.generation
        self.generation += 1
        if self._log is not None:
            self._log.close()
        self._log = LogFile(self.directory / _segment_name(self.generation), self.fsync)
        tmp = self.directory / (_SNAPSHOT + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(encode_frame(OP_META, orjson.dumps({"next_generation": self.generation})))
            for frame in snapshot_frames():
                handle.write(frame)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.directory / _SNAPSHOT)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        for generation, path in self._segments():
            if generation <= old_generation:
                path.unlink()
        logger.info("compacted data directory into a snapshot (generation %d)", self.generation)

    def close(self) -> None:
        """Close the current segment."""
        if self._log is not None:
            self._log.close()
            self._log = None
