"""``TaskManagerWatch.check``: when a local run's mini-cluster gets a new TaskManager, and when the run gives up.

The watch on a real mini-cluster that loses its TaskManager: tests/integration/test_taskmanager_watch.py."""

from __future__ import annotations

import pytest

from kafka_pinecone_flink.jobs.job_run import TaskManagerWatch

pytestmark = pytest.mark.unit


class Cluster:
    """What the watch reads and does, on a clock the test moves."""

    def __init__(self) -> None:
        self.registered: int | None = 1
        self.now = 0.0
        self.started = 0
        self.logged: list[str] = []
        self.gave_up: list[str] = []

    def watch(self, **options: float) -> TaskManagerWatch:
        return TaskManagerWatch(
            lambda: self.registered,
            self.start,
            self.gave_up.append,
            self.logged.append,
            clock=lambda: self.now,
            **options,  # type: ignore[arg-type]
        )

    def start(self) -> None:
        self.started += 1

    def at(self, now: float, watch: TaskManagerWatch) -> None:
        self.now = now
        watch.check()


def test_a_taskmanager_lost_for_the_grace_period_is_replaced_once() -> None:
    cluster = Cluster()
    watch = cluster.watch(grace_s=10)
    cluster.at(1, watch)  # registered
    cluster.registered = 0
    cluster.at(2, watch)  # lost from here
    cluster.at(11, watch)
    assert cluster.started == 0
    cluster.at(12, watch)
    assert cluster.started == 1 and watch.replacements == 1
    assert "started a new one (1 of at most 5)" in cluster.logged[0]
    cluster.at(13, watch)  # the new one has not registered yet: a new grace period
    assert cluster.started == 1


def test_a_taskmanager_that_comes_back_in_time_is_not_replaced() -> None:
    cluster = Cluster()
    watch = cluster.watch(grace_s=10)
    cluster.at(1, watch)
    cluster.registered = 0
    cluster.at(2, watch)
    cluster.registered = 1
    cluster.at(8, watch)
    cluster.registered = 0
    cluster.at(9, watch)
    cluster.at(18, watch)
    assert cluster.started == 0  # lost again at 9: its grace ends at 19


def test_no_answer_from_the_rest_endpoint_is_not_a_loss() -> None:
    cluster = Cluster()
    watch = cluster.watch(grace_s=10)
    cluster.at(1, watch)
    cluster.registered = None
    for now in range(2, 60):
        cluster.at(now, watch)
    assert cluster.started == 0


def test_a_cluster_still_starting_is_left_alone_until_its_start_up_time_is_over() -> None:
    cluster = Cluster()
    cluster.registered = 0
    watch = cluster.watch(grace_s=10, startup_s=60)
    for now in range(0, 60, 5):
        cluster.at(now, watch)
    assert cluster.started == 0
    cluster.at(60, watch)
    cluster.at(70, watch)
    assert cluster.started == 1


def test_after_the_last_replacement_the_next_loss_gives_up_naming_the_way_back() -> None:
    cluster = Cluster()
    watch = cluster.watch(grace_s=10, max_replacements=2)
    cluster.at(0, watch)
    cluster.registered = 0
    now = 0.0
    for _ in range(3):
        now += 1
        cluster.at(now, watch)
        now += 10
        cluster.at(now, watch)
    assert cluster.started == 2
    assert len(cluster.gave_up) == 1
    assert "after 2 replacement(s)" in cluster.gave_up[0]
    assert "kpf run --resume-from-latest" in cluster.gave_up[0]
