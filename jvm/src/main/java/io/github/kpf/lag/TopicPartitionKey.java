package io.github.kpf.lag;

/** A Kafka topic and partition (the project's own, so the per-record path does not touch the Kafka client). */
public record TopicPartitionKey(String topic, int partition) {}
