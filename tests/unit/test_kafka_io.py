"""jobs.kafka_io: the source table's column order, which the JVM PartitionLag operator reads rows by."""

from __future__ import annotations

import re

import pytest

from kafka_pinecone_flink.jobs.config import load_job_config
from kafka_pinecone_flink.jobs.kafka_io import SOURCE_COLUMNS, KafkaSourceOptions, source_table_ddl
from kafka_pinecone_flink.jobs.options import JobConfigError

pytestmark = pytest.mark.unit


def test_source_columns_name_the_source_tables_columns_in_order() -> None:
    ddl = source_table_ddl("s", KafkaSourceOptions(bootstrap_servers="b:9092", topics=("t",)))
    columns = re.findall(r"^  `(\w+)` ", ddl, re.MULTILINE)
    assert tuple(columns) == SOURCE_COLUMNS


def test_the_partition_lag_interval_is_an_option_and_zero_turns_it_off() -> None:
    def load(*flags: str) -> KafkaSourceOptions:
        argv = ["--kafka.bootstrap-servers=b:9092", "--kafka.topics=t", "--pinecone.index=i", *flags]
        return load_job_config(argv, {"PINECONE_API_KEY": "k"}).kafka

    assert load().lag_interval_ms == 10_000
    assert load("--metrics.partition-lag-interval-ms=0").lag_interval_ms == 0
    with pytest.raises(JobConfigError, match=re.escape("--metrics.partition-lag-interval-ms")):
        load("--metrics.partition-lag-interval-ms=-1")
