"""What every ``kpf`` command shares: its name, the exit codes and the two kinds of error (``jobs.cli`` turns them
into one line and the exit code)."""

from __future__ import annotations

PROG = "kpf"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2


class UsageError(Exception):
    """A usage or configuration error: exit 2."""


class CommandError(Exception):
    """A runtime failure: exit 1."""
