"""The Kafka side of a chaos run: ``Producer`` plays the workload at a steady rate, ``Offsets`` reads how far the job
has committed."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Sequence
from typing import Any

from chaos.errors import ChaosError
from chaos.runners import RECOVERY_TIMEOUT_S
from chaos.workload import Workload

PRODUCE_TICK_S = 0.1


class Producer:
    """Plays the workload into Kafka at a steady rate, each record to its partition, in a thread."""

    def __init__(self, bootstrap_servers: str, workload: Workload, rate: float) -> None:
        from confluent_kafka import Producer as KafkaProducer

        self._producer: Any = KafkaProducer(
            {"bootstrap.servers": bootstrap_servers, "enable.idempotence": True, "linger.ms": 5, "log_level": 3}
        )
        self._workload = workload
        self._rate = rate
        self.produced = 0
        self.limit = len(workload.records)
        """How far production may go for now (the run holds it back until a fault has recovered)."""
        self.errors: list[str] = []
        self.done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="chaos-producer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _delivered(self, err: Any, _msg: Any) -> None:
        if err is not None:
            self.errors.append(str(err))

    def _run(self) -> None:
        records = self._workload.records
        budget = 0.0
        last = time.monotonic()
        try:
            while self.produced < len(records):
                now = time.monotonic()
                budget += (now - last) * self._rate
                last = now
                room = min(self.limit, len(records)) - self.produced
                count = min(int(budget), room)
                if room <= 0:
                    budget = 0.0  # held back by a fault that has not recovered: no burst afterwards
                for record in records[self.produced : self.produced + max(count, 0)]:
                    self._producer.produce(
                        record.topic,
                        key=record.key,
                        value=record.value,
                        partition=record.partition,
                        on_delivery=self._delivered,
                    )
                if count > 0:
                    self.produced += count
                    budget -= count
                self._producer.poll(0)
                time.sleep(PRODUCE_TICK_S)
            remaining = self._producer.flush(RECOVERY_TIMEOUT_S)
            if remaining:
                self.errors.append(f"{remaining} records not delivered")
        finally:
            self.done.set()

    def join(self) -> None:
        """Wait until everything is delivered, then drop the client (so it does not outlive the broker)."""
        self.done.wait()
        self._producer = None
        if self.errors:
            raise ChaosError(f"producing the workload failed: {self.errors[:3]}")


class Offsets:
    """Reads the consumer group's committed offsets, summed over every partition of the source topics."""

    def __init__(self, bootstrap_servers: str, group: str, topics: Sequence[str], partitions: int) -> None:
        from confluent_kafka import Consumer, TopicPartition

        self._partitions = [TopicPartition(topic, p) for topic in topics for p in range(partitions)]
        self._consumer = Consumer(
            {"bootstrap.servers": bootstrap_servers, "group.id": group, "enable.auto.commit": False, "log_level": 0}
        )

    def committed(self) -> int | None:
        """Sum of committed offsets (a partition without one counts 0); None while the broker does not answer."""
        try:
            found = self._consumer.committed(self._partitions, timeout=5)
        except Exception:  # noqa: BLE001 - the broker may be down on purpose; progress is then unknown
            return None
        return sum(max(tp.offset, 0) for tp in found)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._consumer.close()
