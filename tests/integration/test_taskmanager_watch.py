"""A local run whose mini-cluster loses its TaskManager gets a new one and finishes (jobs.job_run.TaskManagerWatch).

The TaskManager is ended as a fatal error ends it (``MiniCluster.terminateTaskManager``: the mini-cluster's handler of
a TaskManager's fatal error closes that TaskManager and starts none); without the watch the job then waits for a slot
forever."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import json, sys, time
from pathlib import Path
from urllib.request import urlopen
from kafka_pinecone_flink.jobs import job_run
from kafka_pinecone_flink.jobs.flink_env import create_session

settings = {
    "rest.port": "0",
    "restart-strategy.type": "fixed-delay",
    "restart-strategy.fixed-delay.attempts": "20",
    "restart-strategy.fixed-delay.delay": "1s",
}
session = create_session(settings, run_dir=Path(sys.argv[1]))
t_env = session.t_env
t_env.execute_sql(
    "CREATE TABLE src (x BIGINT) WITH ('connector'='datagen', 'rows-per-second'='20', 'number-of-rows'='300')"
)
t_env.execute_sql("CREATE TABLE out_ (x BIGINT) WITH ('connector'='blackhole')")
client = t_env.execute_sql("INSERT INTO out_ SELECT x FROM src").get_job_client()
address = job_run.bound_rest_address(client)
watch = job_run.watch_taskmanagers(client, address) if sys.argv[2] == "watch" else None
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    jobs = json.load(urlopen(address + "/jobs/overview"))["jobs"]
    if jobs and jobs[0]["state"] == "RUNNING" and jobs[0]["tasks"]["running"] == jobs[0]["tasks"]["total"]:
        break
    time.sleep(0.5)
print("REGISTERED", job_run.registered_taskmanagers(address), flush=True)
time.sleep(3 * watch.poll_s if watch else 6)  # the watch has seen the TaskManager: a loss during the run
job_run.mini_cluster(client).terminateTaskManager(0).get()
print("TERMINATED", flush=True)
client.get_job_execution_result().result()
print("FINISHED", watch.replacements if watch else None, flush=True)
"""


def _run(tmp_path: Path, mode: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYFLINK_", "FLINK_")) and k != "JVM_ARGS"}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path), mode],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def test_a_lost_taskmanager_is_replaced_and_the_job_finishes(tmp_path: Path) -> None:
    done = _run(tmp_path, "watch", 240)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "REGISTERED 1" in done.stdout and "TERMINATED" in done.stdout
    assert "FINISHED 1" in done.stdout, done.stdout
    assert "started a new one (1 of at most 5)" in done.stderr
