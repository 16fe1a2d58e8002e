"""Small chaos runs end to end: a real broker, the durable local Pinecone server and the ingest job, with faults
injected while records flow. The index and the dead-letter topic must end exactly as the workload says.

* mini-cluster (the job in its own process): a 5xx burst, a kill -9 of the server and a kill -9 of the whole job
  (restored from its last retained checkpoint);
* standalone cluster: a stop with a savepoint and a resume with another sink batch size, a kill -9 of a Python
  worker and a kill -9 of the TaskManager (Flink restores the job from its last checkpoint).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.run import ChaosRun, Options
from chaos.verify import Report

pytestmark = pytest.mark.integration

FAULTS = ("burst5xx", "server-kill", "job-kill")
CLUSTER_FAULTS = ("savepoint", "py-kill", "tm-kill")


def _assert_exact(report: Report, faults: tuple[str, ...], lines: list[str]) -> None:
    text = report.render() + "\n" + "\n".join(lines)
    assert report.faults_injected == list(faults), text
    assert report.restarts >= 1, text
    assert report.missing == [], text
    assert report.stale == [], text
    assert report.resurrected == [], text
    assert report.unexpected == [], text
    assert report.duplicates == [], text
    assert report.dead_letters_expected > 50, text
    assert report.dead_letters_exact, text
    assert report.ok


def test_a_5xx_burst_a_server_kill_and_a_job_kill_leave_exactly_the_expected_index_and_dead_letters(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    report = ChaosRun(Options(events=3000, seed=11, faults=FAULTS, run_dir=tmp_path / "run", log=lines.append)).run()
    _assert_exact(report, FAULTS, lines)


def test_on_a_cluster_a_savepoint_resume_a_python_worker_kill_and_a_taskmanager_kill_leave_exactly_the_expected_state(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    options = Options(
        events=2500, seed=12, faults=CLUSTER_FAULTS, rate=400, cluster=True, run_dir=tmp_path / "run", log=lines.append
    )
    report = ChaosRun(options).run()
    _assert_exact(report, CLUSTER_FAULTS, lines)
    # Flink restarted the job after each kill; the savepoint resume is a resubmission.
    assert report.restarts >= 3, report.render()
    assert not [note for note in report.notes if "no restart" in note], report.notes
