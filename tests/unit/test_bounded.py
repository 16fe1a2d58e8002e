"""The pieces of ``jobs.bounded`` that need no broker or Flink: where the stopping offsets are recorded and found,
how they reach the connector, the librdkafka configuration, and the rule that decides a partition is done."""

from __future__ import annotations

from pathlib import Path

import pytest

from kafka_pinecone_flink.jobs import bounded
from kafka_pinecone_flink.jobs.bounded import (
    END_FILE,
    BoundedRun,
    StoppingOffsets,
    consumer_config,
    recorded_offsets,
    restore_path,
)
from kafka_pinecone_flink.jobs.kafka_io import KafkaSourceOptions, source_table_ddl

pytestmark = pytest.mark.unit

OFFSETS = StoppingOffsets({("t", 0): 42, ("t", 1): 300})


def test_stopping_offsets_survive_their_file_and_a_single_topic_is_what_the_connector_can_take() -> None:
    assert StoppingOffsets.from_json(OFFSETS.to_json()) == OFFSETS
    assert OFFSETS.single_topic() == {0: 42, 1: 300}
    assert StoppingOffsets({("a", 0): 1, ("b", 0): 2}).single_topic() is None


def test_the_offsets_recorded_next_to_a_jobs_checkpoints_are_found_from_its_chk_directory(tmp_path: Path) -> None:
    job_dir = tmp_path / "checkpoints" / "abc123"
    (job_dir / "chk-7").mkdir(parents=True)
    assert recorded_offsets((job_dir / "chk-7").as_uri()) is None
    (job_dir / END_FILE).write_text(OFFSETS.to_json())
    assert recorded_offsets((job_dir / "chk-7").as_uri()) == OFFSETS
    assert recorded_offsets(str(job_dir / "chk-7")) == OFFSETS
    assert recorded_offsets("s3://bucket/checkpoints/abc123/chk-7") is None
    assert restore_path({"execution.state-recovery.path": "file:///x/chk-1"}) == "file:///x/chk-1"
    assert restore_path({"execution.savepoint.path": "file:///y"}) == "file:///y"
    assert restore_path({"rest.port": "0"}) is None


def test_a_fresh_single_topic_run_pins_its_stopping_offsets_in_the_connector_and_a_resumed_one_reads_them_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = KafkaSourceOptions("127.0.0.1:9", topics=("t",), bounded=True)
    monkeypatch.setattr(bounded, "end_offsets", lambda options: dict(OFFSETS.offsets))
    fresh = BoundedRun.prepare(source, {"rest.port": "0"}, tmp_path)
    assert not fresh.resumed and fresh.stopping == OFFSETS
    ddl = source_table_ddl("s", fresh.source_options())
    assert "'scan.bounded.mode' = 'specific-offsets'" in ddl
    assert "'scan.bounded.specific-offsets' = 'partition:0,offset:42;partition:1,offset:300'" in ddl
    assert "'scan.bounded.mode' = 'latest-offset'" in source_table_ddl("s", source)

    fresh._record("job-1")
    recorded = tmp_path / "checkpoints" / "job-1" / END_FILE
    assert StoppingOffsets.from_json(recorded.read_text()) == OFFSETS

    monkeypatch.setattr(bounded, "end_offsets", lambda options: {("t", 0): 999, ("t", 1): 999})
    restore = (tmp_path / "checkpoints" / "job-1" / "chk-3").as_uri()
    resumed = BoundedRun.prepare(source, {"execution.state-recovery.path": restore}, tmp_path)
    assert resumed.resumed and resumed.stopping == OFFSETS, "a resumed run keeps the original stopping offsets"
    resumed._record("job-2")
    assert StoppingOffsets.from_json((tmp_path / "checkpoints" / "job-2" / END_FILE).read_text()) == OFFSETS


def test_several_topics_keep_the_connectors_latest_offsets() -> None:
    source = KafkaSourceOptions("127.0.0.1:9", topics=("a", "b"), bounded=True)
    run = BoundedRun(source, StoppingOffsets({("a", 0): 1, ("b", 0): 2}), "file:///tmp/c", resumed=False)
    assert run.source_options() == source


def test_a_partition_is_done_at_its_stopping_offset_when_only_markers_are_left_or_when_no_reader_holds_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stopping = StoppingOffsets({("t.x", 0): 42, ("t.x", 1): 300})
    run = BoundedRun(KafkaSourceOptions("127.0.0.1:9", topics=("t.x",)), stopping, "", resumed=True)
    markers: list[tuple[int, int]] = []

    def only_markers(options: object, partition: object, start: int, stop: int) -> bool:
        markers.append((start, stop))
        return True

    monkeypatch.setattr(bounded, "only_markers_between", only_markers)
    p0, p1 = ("t.x", 0), ("t.x", 1)
    held = {("t_x", 0), ("t_x", 1)}  # as the metric ids spell the topic
    assert run._reached(p0, held, {p0: 42}, {}, settled=False)
    assert not run._reached(p1, held, {p1: 298}, {p1: 200}, settled=True), "still advancing"
    assert markers == []
    assert run._reached(p1, held, {p1: 298}, {p1: 298}, settled=False), "stuck below: the markers decide"
    assert markers == [(298, 300)]
    assert not run._reached(p1, held, {p1: -1}, {p1: -1}, settled=True), "nothing committed yet"
    only_p0 = {("t_x", 0)}
    assert not run._reached(p1, only_p0, {p1: -1}, {}, settled=False), "held by none: only once the metrics settled"
    assert run._reached(p1, only_p0, {p1: -1}, {}, settled=True), "held by none: finished before the restore"


def test_the_partitions_a_run_holds_are_those_with_the_connectors_gauges(monkeypatch: pytest.MonkeyPatch) -> None:
    gauge = "{}.Source__kafka_source[1].KafkaSourceReader.topic.t_x.partition.{}.{}"
    answers = {
        "/jobs/j": {"vertices": [{"id": "v1"}, {"id": "v2"}]},
        "/jobs/j/vertices/v1/metrics": [
            {"id": gauge.format(0, 0, "currentOffset")},
            {"id": gauge.format(0, 0, "committedOffset")},
            {"id": gauge.format(1, 3, "committedOffset")},
            {"id": "0.Source__kafka_source[1].numRecordsIn"},
        ],
        "/jobs/j/vertices/v2/metrics": [{"id": "0.Dedup.upserted"}],
    }
    monkeypatch.setattr(bounded, "_rest_get", lambda url, path, params=None: answers[path])
    assert bounded.source_partitions("http://h", "j") == {("t_x", 0), ("t_x", 3)}


def test_the_end_detection_consumer_takes_the_security_settings_it_can_and_never_joins_the_group() -> None:
    config = consumer_config(
        "b:9093",
        {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "PLAIN",
            "sasl.jaas.config": 'org.apache...PlainLoginModule required username="u" password="p w";',
            "ssl.truststore.location": "/x.jks",
        },
        "grp",
    )
    assert config["security.protocol"] == "SASL_SSL" and config["sasl.mechanism"] == "PLAIN"
    assert (config["sasl.username"], config["sasl.password"]) == ("u", "p w")
    assert config["group.id"] == "grp" and config["enable.auto.commit"] is False
    assert "ssl.truststore.location" not in config
