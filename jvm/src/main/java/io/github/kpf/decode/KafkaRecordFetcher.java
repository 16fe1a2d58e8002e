package io.github.kpf.decode;

import java.time.Duration;
import java.util.List;
import java.util.Properties;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.CloseOptions;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.flink.kafka.shaded.org.apache.kafka.clients.consumer.OffsetOutOfRangeException;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.TopicPartition;
import org.apache.flink.kafka.shaded.org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One record's value, read from Kafka by its coordinates with the Kafka client the Flink Kafka SQL connector jar ships
 * (as {@code io.github.kpf.lag.AdminEndOffsets} does): the source's own properties, so it reaches the cluster exactly
 * as the source does and sees what it saw (its {@code isolation.level}). No consumer group: partitions are assigned,
 * nothing is committed. The consumer is made at the first call and kept.
 */
final class KafkaRecordFetcher implements ValueRefetch.Fetcher {
    private final KafkaConsumer<byte[], byte[]> consumer;

    KafkaRecordFetcher(Properties source) {
        Properties properties = new Properties();
        properties.putAll(source);
        properties.remove("group.id");
        properties.setProperty("enable.auto.commit", "false");
        properties.setProperty("auto.offset.reset", "none");
        properties.setProperty("max.poll.records", "16");
        this.consumer = new KafkaConsumer<>(properties, new ByteArrayDeserializer(), new ByteArrayDeserializer());
    }

    @Override
    public byte[] value(String topic, int partition, long offset, Duration timeout) throws Exception {
        TopicPartition tp = new TopicPartition(topic, partition);
        consumer.assign(List.of(tp));
        consumer.seek(tp, offset);
        long deadline = System.nanoTime() + timeout.toNanos();
        while (System.nanoTime() < deadline) {
            List<ConsumerRecord<byte[], byte[]>> records;
            try {
                records = consumer.poll(Duration.ofMillis(500)).records(tp);
            } catch (OffsetOutOfRangeException gone) { // below the log start: deleted by retention
                return null;
            }
            for (ConsumerRecord<byte[], byte[]> record : records) {
                if (record.offset() == offset) {
                    return record.value() == null ? new byte[0] : record.value();
                }
                if (record.offset() > offset) { // compacted away
                    return null;
                }
            }
            if (records.isEmpty() && consumer.position(tp) > offset) { // compacted away at the end, or not a record
                return null;
            }
        }
        throw new IllegalStateException("could not read " + topic + "[" + partition + "]@" + offset + " from Kafka within "
                + timeout.toSeconds() + " s to complete its dead letter");
    }

    @Override
    public void close() {
        consumer.close(CloseOptions.timeout(Duration.ofSeconds(5)));
    }
}
