package io.github.kpf.lag;

import java.io.Serializable;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import org.apache.flink.metrics.Gauge;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Consumer lag per Kafka topic and partition: the records of each partition behind its latest offset, as a gauge
 * {@code records_lag} in the metric groups {@code topic <name>} and {@code partition <number>} (as the Kafka source's
 * offsets: in Prometheus {@code flink_taskmanager_job_task_operator_topic_partition_records_lag} with labels {@code
 * topic} and {@code partition}). Flink's Kafka source reports only the sum over a subtask's partitions
 * ({@code pendingRecords}), which hides one stuck or skewed partition.
 *
 * <p>Sits right after the source and hands every row on unchanged (chained, it costs a map lookup per record). It
 * notes the offset after the last record it saw of each partition; a thread of its own asks Kafka for the partitions'
 * latest offsets every {@code intervalMillis} (and at once when a partition is first seen) and registers a
 * partition's gauge once both are known. The lag is
 * {@code latest - (last offset seen + 1)}, never below 0; it is as old as the last answer (at most one interval). A
 * partition appears once the subtask has read a record of it. Under a transactional producer each commit marker takes
 * an offset that no record has, so a caught-up partition shows the markers after its last record (usually 1).
 *
 * <p>When Kafka cannot be asked (unreachable, not authorised), the gauges keep their last value and the failure is
 * logged once until an answer comes again; the records flow regardless.
 */
public class PartitionLag extends AbstractStreamOperator<Row> implements OneInputStreamOperator<Row, Row> {
    private static final long serialVersionUID = 1L;

    public static final String METRIC = "records_lag";

    /** Opens the {@link EndOffsets} of a subtask (serialisable: it travels with the job graph). */
    public interface Factory extends Serializable {
        EndOffsets open(int subtask);
    }

    private final int topicField;
    private final int partitionField;
    private final int offsetField;
    private final long intervalMillis;
    private final Factory factory;

    private transient Map<TopicPartitionKey, Position> positions;
    private transient Map<TopicPartitionKey, Gauge<Long>> gauges;
    private transient Position last;
    private transient ScheduledExecutorService poller;
    private transient EndOffsets endOffsets;
    private transient boolean failing;
    private transient int subtask;

    /** Where a partition stands: the next offset to read, as this operator saw it, and Kafka's latest offset. */
    static final class Position {
        final TopicPartitionKey key;
        volatile long next;
        volatile long end = -1;

        Position(TopicPartitionKey key) {
            this.key = key;
        }

        long lag() {
            return Math.max(0, end - next);
        }
    }

    /**
     * @param topicField position of the topic (STRING) in the source rows
     * @param partitionField position of the partition (INT)
     * @param offsetField position of the offset (BIGINT)
     * @param intervalMillis how often Kafka is asked for the latest offsets, at least 1
     * @param factory where the latest offsets come from
     */
    public PartitionLag(int topicField, int partitionField, int offsetField, long intervalMillis, Factory factory) {
        if (intervalMillis < 1) {
            throw new IllegalArgumentException("intervalMillis must be at least 1, got " + intervalMillis);
        }
        this.topicField = topicField;
        this.partitionField = partitionField;
        this.offsetField = offsetField;
        this.intervalMillis = intervalMillis;
        this.factory = factory;
    }

    /** The operator for a job: latest offsets from Kafka's admin API, reached with the source's properties. */
    public static PartitionLag withAdmin(
            int topicField, int partitionField, int offsetField, long intervalMillis, Properties properties) {
        return new PartitionLag(topicField, partitionField, offsetField, intervalMillis, new AdminFactory(properties));
    }

    private static final class AdminFactory implements Factory {
        private static final long serialVersionUID = 1L;
        private final Properties properties;

        AdminFactory(Properties properties) {
            this.properties = properties;
        }

        @Override
        public EndOffsets open(int subtask) {
            Properties client = new Properties();
            client.putAll(properties);
            client.setProperty("client.id", "kpf-partition-lag-" + subtask);
            return new AdminEndOffsets(client);
        }
    }

    @Override
    public void open() throws Exception {
        super.open();
        positions = new ConcurrentHashMap<>();
        gauges = new ConcurrentHashMap<>();
        subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
        poller =
                Executors.newSingleThreadScheduledExecutor(
                        runnable -> {
                            Thread thread = new Thread(runnable, "kpf-partition-lag-" + subtask);
                            thread.setDaemon(true);
                            return thread;
                        });
        poller.scheduleWithFixedDelay(() -> poll(subtask), intervalMillis, intervalMillis, TimeUnit.MILLISECONDS);
    }

    @Override
    public void processElement(StreamRecord<Row> element) throws Exception {
        Row row = element.getValue();
        String topic = (String) row.getField(topicField);
        int partition = (Integer) row.getField(partitionField);
        Position position = last;
        if (position == null || position.key.partition() != partition || !position.key.topic().equals(topic)) {
            TopicPartitionKey key = new TopicPartitionKey(topic, partition);
            position = positions.get(key);
            if (position == null) {
                position = new Position(key);
                positions.put(key, position);
                // A new partition: ask Kafka now, so that its gauge does not wait for the next round.
                poller.execute(() -> poll(subtask));
            }
            last = position;
        }
        position.next = (Long) row.getField(offsetField) + 1;
        output.collect(element);
    }

    /**
     * One round (one at a time: the poller's, or a test's): ask Kafka for the latest offsets of the partitions seen,
     * register the gauges of new ones.
     */
    synchronized void poll(int subtask) {
        if (positions.isEmpty()) {
            return;
        }
        try {
            if (endOffsets == null) {
                endOffsets = factory.open(subtask);
            }
            List<TopicPartitionKey> keys = new ArrayList<>(positions.keySet());
            Duration timeout = Duration.ofMillis(Math.max(intervalMillis, 5000));
            Map<TopicPartitionKey, Long> latest = endOffsets.latest(keys, timeout);
            for (Map.Entry<TopicPartitionKey, Long> entry : latest.entrySet()) {
                Position position = positions.get(entry.getKey());
                if (position == null) {
                    continue;
                }
                position.end = entry.getValue();
                if (!gauges.containsKey(position.key)) {
                    Gauge<Long> gauge = position::lag;
                    getMetricGroup()
                            .addGroup("topic", position.key.topic())
                            .addGroup("partition", String.valueOf(position.key.partition()))
                            .gauge(METRIC, gauge);
                    gauges.put(position.key, gauge);
                }
            }
            if (failing) {
                LOG.info("Partition lag: Kafka answers again for the latest offsets");
                failing = false;
            }
        } catch (Exception e) {
            if (e instanceof InterruptedException) {
                Thread.currentThread().interrupt();
                return;
            }
            if (!failing) {
                // The exception's class and message only: no configuration value is ever part of them.
                LOG.warn("Partition lag: could not read the latest offsets from Kafka ({}: {}); retrying every {} ms",
                        e.getClass().getSimpleName(), e.getMessage(), intervalMillis);
                failing = true;
            }
        }
    }

    /** The gauges registered so far, by partition (a partition's once Kafka has answered for it). */
    Map<TopicPartitionKey, Gauge<Long>> gauges() {
        return gauges;
    }

    @Override
    public void close() throws Exception {
        try {
            if (poller != null) {
                poller.shutdownNow();
                poller.awaitTermination(10, TimeUnit.SECONDS);
            }
            if (endOffsets != null) {
                endOffsets.close();
            }
        } finally {
            super.close();
        }
    }
}
