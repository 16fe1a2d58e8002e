"""Finding the checkpoint a crashed local run resumes from (``kpf checkpoints``, ``kpf run --resume-from-latest``).

A run keeps its checkpoints under ``execution.checkpointing.dir`` (``<flink.run-dir>/checkpoints`` unless changed with
``--flink.conf``, see ``stack.flink.machine_settings``), one folder per job: ``<job id>/chk-N``. A checkpoint is
complete only once Flink has written its ``_metadata`` file; a ``chk-N`` without one was still being taken, or failed,
when the job stopped, and cannot be restored.

Which one is the latest: the complete checkpoint whose ``_metadata`` was written last. Checkpoint numbers do not
compare across job folders (a job started afresh counts from 1 again, a resumed one goes on from the number it was
restored from), completion times do; two checkpoints completed in the same instant are told apart by number.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

CHECKPOINT_DIR_SETTING = "execution.checkpointing.dir"
RECOVERY_SETTING = "execution.state-recovery.path"
"""The Flink setting a job restores its state from (a savepoint or a retained checkpoint), Flink 2.x."""
IGNORE_UNCLAIMED_SETTING = "execution.state-recovery.ignore-unclaimed-state"
"""The Flink setting that lets a job restore a savepoint holding state no operator of it takes (``flink run -n``)."""
METADATA = "_metadata"
_CHECKPOINT_FOLDER = re.compile(r"chk-(\d+)")


class CheckpointError(ValueError):
    """The checkpoint directory cannot be searched, or holds no complete checkpoint."""


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    """The ``chk-N`` folder: what ``execution.state-recovery.path`` names."""
    job_id: str
    number: int
    completed_at: float | None
    """The modification time of its ``_metadata``; None for an incomplete checkpoint."""

    @property
    def complete(self) -> bool:
        return self.completed_at is not None

    @property
    def uri(self) -> str:
        return self.path.resolve().as_uri()

    def describe(self) -> str:
        if self.completed_at is None:
            return f"{self.path} (incomplete: no {METADATA})"
        when = datetime.datetime.fromtimestamp(self.completed_at).astimezone().isoformat(timespec="seconds")
        return f"{self.path} (job {self.job_id}, checkpoint {self.number}, completed {when})"


def checkpoint_dir(run_dir: Path, flink_conf: Mapping[str, str]) -> Path:
    """Where a run's checkpoints are: ``execution.checkpointing.dir`` of ``--flink.conf`` when set (a local path or a
    ``file:`` URI), else ``<run_dir>/checkpoints``. ``CheckpointError`` for a directory on another file system."""
    configured = flink_conf.get(CHECKPOINT_DIR_SETTING)
    if not configured:
        return run_dir / "checkpoints"
    parsed = urlparse(configured)
    if parsed.scheme in ("", "file"):
        return Path(unquote(parsed.path) if parsed.scheme else configured)
    raise CheckpointError(
        f"{CHECKPOINT_DIR_SETTING} is {configured!r}: only a local directory can be searched; pass the chk-N to "
        f"resume from with --flink.conf={RECOVERY_SETTING}=..."
    )


def find_checkpoints(directory: Path) -> list[Checkpoint]:
    """Every ``<job>/chk-N`` under ``directory``, complete or not: the complete ones first, newest first, then the
    incomplete ones by number, highest first. Empty if ``directory`` does not exist."""
    found: list[Checkpoint] = []
    if not directory.is_dir():
        return found
    for job in directory.iterdir():
        if not job.is_dir():
            continue
        for folder in job.iterdir():
            match = _CHECKPOINT_FOLDER.fullmatch(folder.name)
            if match is None or not folder.is_dir():
                continue
            metadata = folder / METADATA
            completed_at = metadata.stat().st_mtime if metadata.is_file() else None
            found.append(Checkpoint(folder, job.name, int(match.group(1)), completed_at))
    return sorted(found, key=lambda c: (c.complete, c.completed_at or 0.0, c.number), reverse=True)


def latest_checkpoint(directory: Path) -> Checkpoint:
    """The newest complete checkpoint under ``directory``; ``CheckpointError`` saying what is there when none is."""
    found = find_checkpoints(directory)
    if found and found[0].complete:
        return found[0]
    if not directory.is_dir():
        raise CheckpointError(f"no checkpoint directory {directory} (has a job run with this --flink.run-dir?)")
    incomplete = f": {len(found)} checkpoint(s) without {METADATA} (incomplete)" if found else ""
    raise CheckpointError(
        f"no complete checkpoint under {directory}{incomplete}; a complete one is a <job>/chk-N folder holding "
        f"{METADATA}. Start without --resume-from-latest (from the consumer group's committed offsets)"
    )
