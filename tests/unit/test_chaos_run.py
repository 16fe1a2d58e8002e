"""The chaos harness's pure parts: the fault list, where faults fire, the newest checkpoint, finding a TaskManager's
Python workers in a (fake) /proc, and the Markdown report."""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

import pytest

from chaos.faults import FAULTS, fault_positions, parse_faults
from chaos.report import FaultRecord, Machine, memory_gib, render_markdown, write_markdown
from chaos.runners import WORKER_MODULE, latest_checkpoint, python_worker_pids
from chaos.verify import Report

pytestmark = pytest.mark.unit


# -- parse_faults ------------------------------------------------------------------------------------------------


def _accepted(name: str, cluster: bool) -> bool:
    try:
        parse_faults(name, cluster)
    except ValueError:
        return False
    return True


def test_faults_are_kept_in_order_and_name_times_n_is_expanded() -> None:
    assert parse_faults("throttle, burst5xx,tm-kill*3,py-kill*2,savepoint", cluster=True) == (
        "throttle",
        "burst5xx",
        "tm-kill",
        "tm-kill",
        "tm-kill",
        "py-kill",
        "py-kill",
        "savepoint",
    )
    assert parse_faults("job-kill*2,server-kill", cluster=False) == ("job-kill", "job-kill", "server-kill")
    assert parse_faults("", cluster=False) == ()
    assert parse_faults(" , ,", cluster=True) == ()


def test_every_fault_kind_is_accepted_in_some_mode() -> None:
    for name in FAULTS:
        assert _accepted(name, cluster=True) or _accepted(name, cluster=False), name


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("throttle,oom", "unknown fault 'oom'"),
        ("tm-kill*0", "positive integer"),
        ("tm-kill*x", "positive integer"),
        ("tm-kill*-1", "positive integer"),
    ],
)
def test_unknown_faults_and_bad_counts_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_faults(text, cluster=True)


@pytest.mark.parametrize("name", ["tm-kill", "py-kill", "savepoint"])
def test_cluster_faults_need_the_cluster(name: str) -> None:
    with pytest.raises(ValueError, match="needs --cluster"):
        parse_faults(f"burst5xx,{name}", cluster=False)
    assert _accepted(name, cluster=True)


def test_job_kill_is_for_the_mini_cluster_only() -> None:
    with pytest.raises(ValueError, match="for the mini-cluster"):
        parse_faults("job-kill", cluster=True)
    assert _accepted("job-kill", cluster=False)


# -- fault_positions ---------------------------------------------------------------------------------------------


def test_fault_positions_are_seeded_spread_and_ordered() -> None:
    total, count = 100_000, 25
    first = fault_positions(total, count, random.Random(7))
    assert first == fault_positions(total, count, random.Random(7))
    assert first != fault_positions(total, count, random.Random(8))
    assert len(first) == count and first == sorted(first)
    segment = total / (count + 1)
    for number, at in enumerate(first, start=1):
        assert abs(at - number * segment) <= segment / 2 + 1
    # Not evenly spaced: the gaps differ.
    assert len({b - a for a, b in itertools.pairwise(first)}) > count // 2


def test_fault_positions_stay_within_the_records() -> None:
    assert fault_positions(3, 5, random.Random(1)) == sorted(fault_positions(3, 5, random.Random(1)))
    assert all(1 <= at <= 3 for at in fault_positions(3, 5, random.Random(1)))
    assert fault_positions(100, 0, random.Random(1)) == []


# -- latest_checkpoint -------------------------------------------------------------------------------------------


def _checkpoint(root: Path, job: str, number: int, mtime: float, complete: bool = True) -> Path:
    path = root / job / f"chk-{number}"
    path.mkdir(parents=True)
    if complete:
        (path / "_metadata").write_bytes(b"x")
        os.utime(path / "_metadata", (mtime, mtime))
    return path


def test_latest_checkpoint_is_the_newest_complete_one_of_any_job(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    _checkpoint(tmp_path, "job-a", 7, mtime=1_000)
    newest = _checkpoint(tmp_path, "job-b", 3, mtime=2_000)  # a restarted job numbers from 1 again
    _checkpoint(tmp_path, "job-b", 4, mtime=3_000, complete=False)  # in progress: no _metadata
    (tmp_path / "job-b" / "shared").mkdir()
    assert latest_checkpoint(tmp_path) == newest


def test_latest_checkpoint_breaks_mtime_ties_by_number(tmp_path: Path) -> None:
    _checkpoint(tmp_path, "job", 9, mtime=5_000)
    ten = _checkpoint(tmp_path, "job", 10, mtime=5_000)
    assert latest_checkpoint(tmp_path) == ten


def test_latest_checkpoint_of_a_missing_directory_is_none(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path / "nothing") is None


# -- python_worker_pids ------------------------------------------------------------------------------------------


def _process(proc: Path, pid: int, ppid: int, argv: list[str], comm: str = "x") -> None:
    entry = proc / str(pid)
    entry.mkdir()
    (entry / "stat").write_text(f"{pid} ({comm}) S {ppid} {pid} {pid} 0 -1 4194560 0 0\n")
    (entry / "cmdline").write_bytes(b"\0".join(arg.encode() for arg in argv) + b"\0")


def test_python_workers_are_the_beam_boot_processes_under_the_taskmanager(tmp_path: Path) -> None:
    proc = tmp_path / "proc"
    proc.mkdir()
    worker = ["/venv/bin/python", "-m", WORKER_MODULE, "--id=1-1", "--provision_endpoint=localhost:1"]
    runner = ["bash", "/site-packages/pyflink/bin/pyflink-udf-runner.sh", "--id=1-1"]
    _process(proc, 1, 0, ["init"])
    _process(proc, 100, 1, ["java", "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"], comm="java")
    _process(proc, 110, 100, runner, comm="bash")
    _process(proc, 111, 110, worker, comm="python (odd) name")
    _process(proc, 112, 110, ["tee", "/logs/flink-python-udf-boot.log"])
    _process(proc, 120, 100, runner, comm="bash")
    _process(proc, 121, 120, worker)
    _process(proc, 130, 121, ["/venv/bin/python", "-c", "from multiprocessing.resource_tracker import main"])
    # Another TaskManager's worker, and a worker of nobody's: not ours.
    _process(proc, 200, 1, ["java", "org.apache.flink.runtime.taskexecutor.TaskManagerRunner"], comm="java")
    _process(proc, 210, 200, worker)
    _process(proc, 300, 1, worker)
    (proc / "self").mkdir()
    (proc / "meminfo").write_text("MemTotal: 1 kB\n")
    (proc / "400").mkdir()  # a process that exited while /proc was read: no stat, no cmdline

    assert python_worker_pids(100, proc) == [111, 121]
    assert python_worker_pids(200, proc) == [210]
    assert python_worker_pids(999, proc) == []


def test_python_workers_of_this_process_tree_are_found_in_the_real_proc() -> None:
    assert python_worker_pids(os.getpid()) == []


# -- the Markdown report -----------------------------------------------------------------------------------------


def _report(**changes: object) -> Report:
    report = Report(
        events=15_000,
        expected_alive=3_000,
        expected_deleted=700,
        found_vectors=3_000,
        missing=[],
        stale=[],
        resurrected=[],
        unexpected=[],
        duplicates=[],
        dead_letters_expected=450,
        dead_letters_found=450,
        dead_letters_missing=[],
        dead_letters_extra=[],
        dead_letter_redeliveries=0,
        faults_injected=["tm-kill", "py-kill", "tm-kill"],
        restarts=3,
        recovery_times_s=[20.0, 10.0, 30.0],
        wall_time_s=321.0,
        notes=["run dir /tmp/x"],
    )
    for name, value in changes.items():
        setattr(report, name, value)
    return report


FAULT_RECORDS = [
    FaultRecord("tm-kill", 12.34, 2_000, 1_500, 20.0, "TaskManager pid 10 killed"),
    FaultRecord("py-kill", 40.0, 6_000, 5_500, 10.0, "Python worker pid 11 killed (2 | of them)"),
    FaultRecord("tm-kill", 80.0, 9_000, 8_800, 30.0),
]
HOST = Machine(cores=2, memory_gib=7.8, load_start=(1.5, 1.25, 1.0), load_end=(2.0, 1.0, 0.5), started="2026-01-02")


def test_the_markdown_report_has_the_command_machine_numbers_faults_and_verdict() -> None:
    text = render_markdown(_report(), FAULT_RECORDS, "python -m chaos.run --cluster --faults 'tm-kill*2'", HOST)
    assert text.startswith("# Chaos run: OK\n")
    assert "```\npython -m chaos.run --cluster --faults 'tm-kill*2'\n```" in text
    assert "2 cores, 7.8 GiB memory" in text
    assert "1.50 / 1.25 / 1.00 at start, 2.00 / 1.00 / 0.50 at end" in text
    assert "- date: 2026-01-02" in text
    assert "| missing ids | 0 |" in text
    assert "| dead-letter match | exact |" in text
    assert "| dead letters expected / found | 450 / 450 |" in text
    assert "| recovery median / worst | 20.0s / 30.0s |" in text
    assert "| 1 | tm-kill | 12.3s | 2000 / 1500 | 20.0s | TaskManager pid 10 killed |" in text
    assert r"(2 \| of them)" in text  # a pipe in a cell does not break the table
    assert "| tm-kill | 2 | 25.0s | 30.0s |" in text
    assert "| py-kill | 1 | 10.0s | 10.0s |" in text
    assert "- run dir /tmp/x" in text
    assert "**OK**" in text and "Discrepancies" not in text
    # Every table row has as many cells as its header.
    for block in text.split("\n\n"):
        rows = [line for line in block.splitlines() if line.startswith("|")]
        if rows:
            counts = {line.replace(r"\|", "").count("|") for line in rows}
            assert len(counts) == 1, block


def test_a_failed_run_says_so_and_lists_the_discrepancies() -> None:
    report = _report(missing=["chaos-a/7"], dead_letters_extra=["poison-000001:JSONDecodeError"])
    text = render_markdown(report, [], "python -m chaos.run", Machine(None, None, (0, 0, 0), None, "now"))
    assert text.startswith("# Chaos run: FAILED\n")
    assert "| missing ids | 1 |" in text and "| dead-letter match | NOT exact |" in text
    assert "- missing: chaos-a/7" in text
    assert "- dead letters extra: poison-000001:JSONDecodeError" in text
    assert "? cores, - memory" in text and "at end" in text
    assert "## Faults" not in text
    assert "**FAILED**" in text


def test_write_markdown_creates_the_file(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "CHAOS.md"
    write_markdown(target, _report(), FAULT_RECORDS, "python -m chaos.run", HOST)
    assert target.read_text() == render_markdown(_report(), FAULT_RECORDS, "python -m chaos.run", HOST)


def test_memory_is_read_from_meminfo(tmp_path: Path) -> None:
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemFree:  1000 kB\nMemTotal:       16318480 kB\n")
    assert memory_gib(meminfo) == 15.6
    meminfo.write_text("nothing\n")
    assert memory_gib(meminfo) is None
    assert memory_gib(tmp_path / "absent") is None
