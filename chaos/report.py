"""A chaos run's report as Markdown (``python -m chaos.run --report PATH``): the command line, the machine, the
numbers of ``chaos.verify.Report``, one row per injected fault with its recovery time, and the verdict.

``machine`` reads what the run ran on (cores, memory, load average, date); ``render_markdown`` is pure, so tests
feed it a made-up report.
"""

from __future__ import annotations

import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from chaos.verify import Report

MEMINFO = Path("/proc/meminfo")


@dataclass(frozen=True, slots=True)
class FaultRecord:
    """One injected fault: when (seconds after production started, records produced and committed then), how long
    until the job made progress again, and what exactly was done (a pid, a savepoint, a batch size)."""

    kind: str
    at_s: float
    produced: int
    committed: int
    recovery_s: float
    detail: str = ""


@dataclass(frozen=True, slots=True)
class Machine:
    """What a run ran on, read once at its start and once at its end."""

    cores: int | None
    memory_gib: float | None
    load_start: tuple[float, float, float]
    load_end: tuple[float, float, float] | None
    started: str
    """UTC, ISO 8601, seconds."""

    def finished(self) -> Machine:
        """This machine with the load average as of now."""
        return Machine(self.cores, self.memory_gib, self.load_start, _load(), self.started)


def machine(meminfo: Path = MEMINFO) -> Machine:
    """Cores (``os.cpu_count()``), total memory (``MemTotal`` of ``meminfo``), the load average and the date."""
    return Machine(
        cores=os.cpu_count(),
        memory_gib=memory_gib(meminfo),
        load_start=_load(),
        load_end=None,
        started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def memory_gib(meminfo: Path = MEMINFO) -> float | None:
    """``MemTotal`` of ``/proc/meminfo`` in GiB, or None where it cannot be read."""
    try:
        for line in meminfo.read_text().splitlines():
            name, _, value = line.partition(":")
            if name == "MemTotal":
                kib = int(value.split()[0])
                return round(kib / 1024 / 1024, 1)
    except (OSError, ValueError, IndexError):
        return None
    return None


def _load() -> tuple[float, float, float]:
    try:
        return os.getloadavg()
    except OSError:
        return (0.0, 0.0, 0.0)


def _loads(load: tuple[float, float, float] | None) -> str:
    return "-" if load is None else " / ".join(f"{value:.2f}" for value in load)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: Report, faults: Sequence[FaultRecord], command: str, host: Machine) -> str:
    """The report as a Markdown document (see the module docstring)."""
    verdict = "OK" if report.ok else "FAILED"
    memory = "-" if host.memory_gib is None else f"{host.memory_gib} GiB"
    lines = [
        f"# Chaos run: {verdict}",
        "",
        "```",
        command,
        "```",
        "",
        f"- date: {host.started}",
        f"- machine: {host.cores if host.cores is not None else '?'} cores, {memory} memory",
        f"- load average (1 / 5 / 15 min): {_loads(host.load_start)} at start, {_loads(host.load_end)} at end",
        "",
        "## Numbers",
        "",
        "| | |",
        "|---|---|",
        *(f"| {_cell(name)} | {_cell(value)} |" for name, value in report.rows()),
        "",
    ]
    if faults:
        lines += [
            "## Faults",
            "",
            "| # | kind | injected at | produced / committed then | recovery | detail |",
            "|---:|---|---:|---:|---:|---|",
        ]
        lines += [
            f"| {number} | {fault.kind} | {fault.at_s:.1f}s | {fault.produced} / {fault.committed} "
            f"| {fault.recovery_s:.1f}s | {_cell(fault.detail)} |"
            for number, fault in enumerate(faults, start=1)
        ]
        lines += [
            "",
            "Injected at: seconds after production started. Recovery: from the injection to the first advance of the "
            "consumer group's committed offsets (a completed checkpoint with progress) after the fault was lifted.",
            "",
            "| kind | count | recovery median | recovery worst |",
            "|---|---:|---:|---:|",
        ]
        by_kind: dict[str, list[float]] = {}
        for fault in faults:
            by_kind.setdefault(fault.kind, []).append(fault.recovery_s)
        lines += [
            f"| {kind} | {len(times)} | {statistics.median(times):.1f}s | {max(times):.1f}s |"
            for kind, times in by_kind.items()
        ]
        lines.append("")
    found = report.discrepancies()
    if found:
        lines += ["## Discrepancies", ""]
        lines += [f"- {title}: {_cell(shown)}" for title, shown in found]
        lines.append("")
    if report.notes:
        lines += ["## Notes", ""]
        lines += [f"- {_cell(note)}" for note in report.notes]
        lines.append("")
    lines += [
        "## Verdict",
        "",
        f"**{verdict}**: "
        + (
            "no missing, stale, resurrected, unexpected or duplicate ids, and the dead-letter topic holds exactly "
            "the expected dead letters."
            if report.ok
            else "the index or the dead-letter topic differs from the expected state (see above)."
        ),
        "",
    ]
    return "\n".join(lines)


def write_markdown(path: Path, report: Report, faults: Sequence[FaultRecord], command: str, host: Machine) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(report, faults, command, host))
