package io.github.kpf.lag;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@link PartitionLag} on Flink's operator test harness, with Kafka's latest offsets from a map the test sets. */
class PartitionLagTest {
    /** The latest offsets "Kafka" answers with, and the partitions each request asked for; shared with the copy of
     * the factory the harness may serialise, hence static and keyed by test. */
    static final Map<String, Map<TopicPartitionKey, Long>> LATEST = new ConcurrentHashMap<>();
    static final Map<String, List<Collection<TopicPartitionKey>>> ASKED = new ConcurrentHashMap<>();
    static final Map<String, Boolean> DOWN = new ConcurrentHashMap<>();

    private static PartitionLag.Factory kafka(String test) {
        LATEST.put(test, new ConcurrentHashMap<>());
        ASKED.put(test, new ArrayList<>());
        DOWN.put(test, false);
        return subtask ->
                new EndOffsets() {
                    @Override
                    public Map<TopicPartitionKey, Long> latest(
                            Collection<TopicPartitionKey> partitions, Duration timeout) {
                        ASKED.get(test).add(List.copyOf(partitions));
                        if (DOWN.get(test)) {
                            throw new IllegalStateException("broker unreachable");
                        }
                        Map<TopicPartitionKey, Long> answer = new HashMap<>();
                        for (TopicPartitionKey key : partitions) {
                            Long offset = LATEST.get(test).get(key);
                            if (offset != null) {
                                answer.put(key, offset);
                            }
                        }
                        return answer;
                    }

                    @Override
                    public void close() {}
                };
    }

    /** A source row as the job's source table makes it: key, value, topic, partition, offset, headers, timestamp. */
    private static Row row(String topic, int partition, long offset) {
        return Row.of(new byte[] {1}, new byte[] {2}, topic, partition, offset, Map.of(), null);
    }

    private static OneInputStreamOperatorTestHarness<Row, Row> harness(PartitionLag operator) throws Exception {
        OneInputStreamOperatorTestHarness<Row, Row> harness = new OneInputStreamOperatorTestHarness<>(operator);
        harness.open();
        return harness;
    }

    private static Map<String, Long> lags(PartitionLag operator) {
        Map<String, Long> lags = new TreeMap<>();
        operator.gauges().forEach((key, gauge) -> lags.put(key.topic() + "/" + key.partition(), gauge.getValue()));
        return lags;
    }

    @Test
    void everyRowIsHandedOnUnchangedAndInOrder() throws Exception {
        PartitionLag operator = new PartitionLag(2, 3, 4, 3_600_000, kafka("order"));
        try (var h = harness(operator)) {
            List<Row> rows = List.of(row("a", 0, 5), row("a", 1, 7), row("b", 0, 1), row("a", 0, 6));
            for (Row r : rows) {
                h.processElement(r, 0L);
            }
            assertEquals(rows, h.extractOutputValues());
        }
    }

    @Test
    void eachPartitionsLagIsItsLatestOffsetMinusTheOffsetAfterTheLastRecordSeen() throws Exception {
        PartitionLag operator = new PartitionLag(2, 3, 4, 3_600_000, kafka("lag"));
        try (var h = harness(operator)) {
            h.processElement(row("a", 0, 10), 0L);
            h.processElement(row("a", 1, 3), 0L);
            h.processElement(row("b", 0, 0), 0L);
            h.processElement(row("a", 0, 11), 0L);
            assertEquals(Map.of(), lags(operator), "no gauge before Kafka has answered");

            LATEST.get("lag").putAll(Map.of(new TopicPartitionKey("a", 0), 100L, new TopicPartitionKey("a", 1), 4L));
            operator.poll(0);
            // b/0: Kafka gave no offset for it (yet), so it has no gauge rather than a made-up value.
            assertEquals(Map.of("a/0", 88L, "a/1", 0L), lags(operator));

            h.processElement(row("a", 0, 60), 0L);
            assertEquals(39L, lags(operator).get("a/0"), "the lag follows the records at once");
            LATEST.get("lag").put(new TopicPartitionKey("b", 0), 5L);
            operator.poll(0);
            assertEquals(Map.of("a/0", 39L, "a/1", 0L, "b/0", 4L), lags(operator));
        }
    }

    @Test
    void theLagIsNeverNegativeWhenRecordsPassTheLastAnswer() throws Exception {
        PartitionLag operator = new PartitionLag(2, 3, 4, 3_600_000, kafka("ahead"));
        try (var h = harness(operator)) {
            h.processElement(row("a", 0, 1), 0L);
            LATEST.get("ahead").put(new TopicPartitionKey("a", 0), 2L);
            operator.poll(0);
            h.processElement(row("a", 0, 7), 0L); // produced and read after Kafka's last answer
            assertEquals(Map.of("a/0", 0L), lags(operator));
        }
    }

    @Test
    void kafkaIsNotAskedBeforeARecordArrivesAndAFailedRoundKeepsTheRecordsFlowing() throws Exception {
        PartitionLag operator = new PartitionLag(2, 3, 4, 3_600_000, kafka("down"));
        try (var h = harness(operator)) {
            operator.poll(0);
            assertEquals(List.of(), ASKED.get("down"), "no partition seen yet: nothing to ask");

            h.processElement(row("a", 0, 1), 0L);
            LATEST.get("down").put(new TopicPartitionKey("a", 0), 10L);
            operator.poll(0);
            assertEquals(Map.of("a/0", 8L), lags(operator));

            DOWN.put("down", true);
            operator.poll(0); // logged, not thrown
            h.processElement(row("a", 0, 4), 0L);
            assertEquals(Map.of("a/0", 5L), lags(operator), "the last answer is kept while Kafka is away");
            assertEquals(2, h.extractOutputValues().size());

            DOWN.put("down", false);
            LATEST.get("down").put(new TopicPartitionKey("a", 0), 12L);
            operator.poll(0);
            assertEquals(Map.of("a/0", 7L), lags(operator));
            List<TopicPartitionKey> onlyA0 = List.of(new TopicPartitionKey("a", 0));
            assertTrue(ASKED.get("down").stream().allMatch(asked -> asked.equals(onlyA0)));
        }
    }

    @Test
    void aPartitionSeenForTheFirstTimeIsAskedForAtOnceNotAtTheNextRound() throws Exception {
        PartitionLag operator = new PartitionLag(2, 3, 4, 3_600_000, kafka("new"));
        try (var h = harness(operator)) {
            LATEST.get("new").put(new TopicPartitionKey("a", 3), 50L);
            h.processElement(row("a", 3, 9), 0L);
            long deadline = System.nanoTime() + 10_000_000_000L;
            while (lags(operator).isEmpty() && System.nanoTime() < deadline) {
                Thread.sleep(10);
            }
            assertEquals(Map.of("a/3", 40L), lags(operator));
        }
    }

    @Test
    void theIntervalMustBePositive() {
        assertThrows(IllegalArgumentException.class, () -> new PartitionLag(2, 3, 4, 0, kafka("interval")));
    }
}
