"""A small chaos run end to end: a real broker, the durable local Pinecone server and the ingest job in its own
process, with a 5xx burst, a kill -9 of the server and a kill -9 of the whole job (restored from its last retained
checkpoint) while records flow. The index and the dead-letter topic must end exactly as the workload says."""

from __future__ import annotations

from pathlib import Path

import pytest

from chaos.run import ChaosRun, Options

pytestmark = pytest.mark.integration

FAULTS = ("burst5xx", "server-kill", "job-kill")


def test_a_5xx_burst_a_server_kill_and_a_job_kill_leave_exactly_the_expected_index_and_dead_letters(
    tmp_path: Path,
) -> None:
    lines: list[str] = []
    report = ChaosRun(Options(events=3000, seed=11, faults=FAULTS, run_dir=tmp_path / "run", log=lines.append)).run()
    text = report.render() + "\n" + "\n".join(lines)
    assert report.faults_injected == list(FAULTS), text
    assert report.restarts >= 1, text
    assert report.missing == [], text
    assert report.stale == [], text
    assert report.resurrected == [], text
    assert report.unexpected == [], text
    assert report.duplicates == [], text
    assert report.dead_letters_expected > 50, text
    assert report.dead_letters_exact, text
    assert report.ok
