package io.github.kpf.dedup;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.accumulators.Accumulator;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.configuration.JobManagerOptions;
import org.apache.flink.configuration.SchedulerExecutionMode;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.runtime.state.KeyGroupRangeAssignment;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.streaming.api.graph.StreamEdge;
import org.apache.flink.streaming.api.graph.StreamGraph;
import org.apache.flink.streaming.api.graph.StreamNode;
import org.apache.flink.streaming.runtime.partitioner.ForwardPartitioner;
import org.apache.flink.streaming.runtime.partitioner.KeyGroupStreamPartitioner;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.api.operators.KeyedProcessOperator;
import org.apache.flink.streaming.util.KeyedOneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/**
 * The keyed dedup operator as the job runs it ({@link DedupFunction} in a {@link KeyedProcessOperator}, keyed by
 * {@link ChangeKey}) on Flink's operator test harness: real keyed state, snapshots and restores, state TTL.
 *
 * <p>Each change's payload here is a label ("a@3" and the like) that says which change came out.
 */
class DedupFunctionTest {
    private static final int MAX_PARALLELISM = 128;

    private static KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness(long ttlMillis) throws Exception {
        return new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(new DedupFunction(ttlMillis)), new ChangeKey(), Types.STRING);
    }

    /** Subtask {@code subtask} of {@code parallelism}; {@code inInputTask}: built to run in its input's task. */
    private static KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness(
            boolean inInputTask, int parallelism, int subtask) throws Exception {
        return new KeyedOneInputStreamOperatorTestHarness<>(
                new KeyedProcessOperator<>(new DedupFunction(0, inInputTask)),
                new ChangeKey(),
                Types.STRING,
                MAX_PARALLELISM,
                parallelism,
                subtask);
    }

    private static byte[] hash(String text) {
        return ("h:" + text).getBytes(StandardCharsets.UTF_8);
    }

    /** An upsert of {@code id} with {@code content} (its content hash) and {@code text} (its text hash). */
    private static Row upsert(String id, Integer version, String content, String text, String label) {
        return row(id, false, version, hash(content), text == null ? null : hash(text), label);
    }

    private static Row delete(String id, Integer version, String label) {
        return row(id, true, version, hash("delete"), null, label);
    }

    private static Row row(
            String id, boolean delete, Integer version, byte[] contentHash, byte[] textHash, String label) {
        Row row = new Row(DedupFunction.INPUT_FIELDS.length);
        row.setField(DedupFunction.KEY, "ns/" + id);
        row.setField(DedupFunction.DELETE, delete);
        row.setField(DedupFunction.VERSION, version == null ? null : version.toString());
        row.setField(DedupFunction.CONTENT_HASH, contentHash);
        row.setField(DedupFunction.TEXT_HASH, textHash);
        row.setField(DedupFunction.PAYLOAD, label.getBytes(StandardCharsets.UTF_8));
        return row;
    }

    /** What came out since the last call: "label" for an insert, "label+replaces" for a replacement. */
    private static List<String> drain(KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness) {
        List<String> out = new ArrayList<>();
        for (Row row : harness.extractOutputValues()) {
            String label = new String((byte[]) row.getField(DedupFunction.OUT_PAYLOAD), StandardCharsets.UTF_8);
            out.add(Boolean.TRUE.equals(row.getField(DedupFunction.OUT_REPLACES)) ? label + "+replaces" : label);
        }
        harness.getOutput().clear();
        return out;
    }

    private static void send(KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness, Row... rows)
            throws Exception {
        for (Row row : rows) {
            harness.processElement(row, 0L);
        }
    }

    private static long total(KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness, String name) {
        Map<String, Accumulator<?, ?>> accumulators =
                harness.getEnvironment().getAccumulatorRegistry().getUserMap();
        Accumulator<?, ?> accumulator = accumulators.get("dedup." + name);
        return accumulator == null ? -1 : (Long) accumulator.getLocalValue();
    }

    @Test
    void eachIdKeepsItsOwnOrderAndVersionsWhileIdsInterleave() throws Exception {
        try (var h = harness(0)) {
            h.open();
            send(
                    h,
                    upsert("a", 5, "a5", "t", "a@5"),
                    upsert("b", 1, "b1", "t", "b@1"), // another id: a's version 5 does not fence it
                    upsert("a", 6, "a6", "t", "a@6"),
                    upsert("b", 2, "b2", "u", "b@2"),
                    upsert("a", 4, "a4", "t", "a@4"), // stale for a
                    upsert("b", 2, "b2", "u", "b@2-again")); // unchanged for b
            assertEquals(List.of("a@5", "b@1", "a@6+replaces", "b@2+replaces"), drain(h));
            assertEquals(6, total(h, "records_in"));
            assertEquals(1, total(h, "skipped_stale"));
            assertEquals(1, total(h, "skipped_unchanged"));
            assertEquals(1, total(h, "text_unchanged")); // a@6: new content, same text
            assertEquals(2, h.numKeyedStateEntries());
        }
    }

    @Test
    void anOlderVersionNeverOverwritesANewerOneAndEqualVersionsLetTheContentDecide() throws Exception {
        try (var h = harness(0)) {
            h.open();
            send(
                    h,
                    upsert("a", 10, "x", "x", "a@10"),
                    upsert("a", 9, "older", "older", "a@9"),
                    upsert("a", 10, "x", "x", "a@10-again"),
                    upsert("a", 10, "y", "y", "a@10-new-content"),
                    upsert("a", null, "z", "z", "a@none"), // no version: newest by arrival, keeps version 10
                    upsert("a", 9, "late", "late", "a@9-late"));
            assertEquals(List.of("a@10", "a@10-new-content+replaces", "a@none+replaces"), drain(h));
            assertEquals(1, total(h, "skipped_unchanged"));
            assertEquals(2, total(h, "skipped_stale"));
        }
    }

    @Test
    void versionsCompareAsExactDecimalsNotAsText() throws Exception {
        try (var h = harness(0)) {
            h.open();
            Row huge = row("a", false, null, hash("big"), null, "a@10^30+1");
            huge.setField(DedupFunction.VERSION, "1000000000000000000000000000001");
            Row asFloat = row("a", false, null, hash("float"), null, "a@9.5");
            asFloat.setField(DedupFunction.VERSION, "9.5");
            Row bigger = row("a", false, null, hash("bigger"), null, "a@10^31");
            bigger.setField(DedupFunction.VERSION, "1E+31");
            send(h, huge, asFloat, bigger);
            assertEquals(List.of("a@10^30+1", "a@10^31+replaces"), drain(h));
        }
    }

    @Test
    void aDeleteLeavesATombstoneThatFencesLateUpdatesUntilAReinsert() throws Exception {
        try (var h = harness(0)) {
            h.open();
            send(
                    h,
                    delete("unknown", null, "unknown@delete"), // Pinecone may hold it from before: emitted
                    upsert("a", 1, "x", "x", "a@1"),
                    delete("a", 2, "a@delete2"),
                    upsert("a", 1, "x", "x", "a@1-late"), // fenced by the tombstone's version
                    delete("a", 2, "a@delete2-again"), // delete of a tombstone: unchanged
                    delete("a", 3, "a@delete3"), // unchanged too, but raises the tombstone to 3
                    upsert("a", 2, "y", "y", "a@2-late"), // so this is stale now
                    upsert("a", 4, "x", "x", "a@4")); // re-insert, even with the content of before
            assertEquals(List.of("unknown@delete", "a@1", "a@delete2+replaces", "a@4"), drain(h));
            assertEquals(2, total(h, "skipped_unchanged"));
            assertEquals(2, total(h, "skipped_stale"));
        }
    }

    @Test
    void anEmptyContentHashIsNeverUnchanged() throws Exception {
        try (var h = harness(0)) {
            h.open();
            send(
                    h,
                    row("a", false, 1, new byte[0], null, "a@1"),
                    row("a", false, 1, new byte[0], null, "a@1-again"));
            assertEquals(List.of("a@1", "a@1-again+replaces"), drain(h));
        }
    }

    @Test
    void stateAndRunTotalsSurviveASnapshotAndRestore() throws Exception {
        OperatorSubtaskState snapshot;
        try (var h = harness(0)) {
            h.open();
            send(h, upsert("a", 5, "x", "t", "a@5"), delete("b", 2, "b@delete"), upsert("c", 1, "c", "t", "c@1"));
            assertEquals(List.of("a@5", "b@delete", "c@1"), drain(h));
            snapshot = h.snapshot(1L, 1L);
            send(h, upsert("c", 2, "c2", "t", "c@2-after-the-checkpoint")); // lost with the crash
        }
        try (var h = harness(0)) {
            h.initializeState(snapshot);
            h.open();
            assertEquals(3, total(h, "records_in")); // the checkpoint's totals, not the crashed task's
            send(
                    h,
                    upsert("a", 4, "old", "t", "a@4-stale"),
                    upsert("a", 5, "x", "t", "a@5-replayed"),
                    upsert("b", 1, "b", "t", "b@1-late"),
                    upsert("c", 2, "c2", "t", "c@2-replayed"));
            assertEquals(List.of("c@2-replayed+replaces"), drain(h));
            assertEquals(7, total(h, "records_in"));
            assertEquals(2, total(h, "skipped_stale"));
            assertEquals(1, total(h, "skipped_unchanged"));
            assertEquals(1, total(h, "text_unchanged"));
        }
    }

    @Test
    void expiredStateIsForgottenTombstonesIncluded() throws Exception {
        try (var h = harness(1_000)) {
            h.setStateTtlProcessingTime(0);
            h.open();
            send(h, upsert("a", 5, "x", "t", "a@5"), delete("a", 6, "a@delete"));
            h.setStateTtlProcessingTime(999);
            send(h, upsert("a", 1, "old", "t", "a@1-fenced"));
            h.setStateTtlProcessingTime(1_000); // the tombstone was written at 0: expired now
            send(h, upsert("a", 1, "old", "t", "a@1-after-expiry"));
            assertEquals(List.of("a@5", "a@delete+replaces", "a@1-after-expiry"), drain(h));
        }
    }

    @Test
    void aNegativeTtlIsRefused() {
        IllegalArgumentException refused = assertThrows(IllegalArgumentException.class, () -> new DedupFunction(-1));
        assertEquals("ttlMillis must be >= 0, got -1", refused.getMessage());
    }

    private static Row chunked(String id, String content, long chunks, String label) {
        Row row = upsert(id, null, content, content, label);
        row.setField(DedupFunction.CHUNKS, chunks);
        return row;
    }

    private static List<Long> previousChunks(KeyedOneInputStreamOperatorTestHarness<String, Row, Row> harness) {
        List<Long> out = new ArrayList<>();
        for (Row row : harness.extractOutputValues()) {
            out.add((Long) row.getField(DedupFunction.OUT_PREVIOUS_CHUNKS));
        }
        harness.getOutput().clear();
        return out;
    }

    @Test
    void eachEmittedChangeCarriesTheChunksOfTheVersionItReplacesAcrossARestore() throws Exception {
        OperatorSubtaskState snapshot;
        try (var h = harness(0)) {
            h.open();
            send(h, chunked("a", "v1", 5, "a1"), chunked("b", "v1", 1, "b1"), chunked("a", "v2", 3, "a2"));
            assertEquals(List.of(0L, 0L, 5L), previousChunks(h));
            snapshot = h.snapshot(1L, 1L);
        }
        try (var h = harness(0)) {
            h.initializeState(snapshot);
            h.open();
            send(h, chunked("a", "v2", 3, "a2 again"), chunked("a", "v3", 7, "a3"), delete("a", null, "a-"));
            send(h, chunked("a", "v4", 2, "a4"), chunked("b", "v2", 4, "b2"));
            // The unchanged one is dropped; the delete learns the 7 chunks to delete; after it nothing is live.
            assertEquals(List.of(3L, 7L, 0L, 1L), previousChunks(h));
        }
    }

    @Test
    void aRowWithoutAChunkCountIsNotChunked() throws Exception {
        try (var h = harness(0)) {
            h.open();
            send(h, upsert("a", null, "v1", "t", "a1"), upsert("a", null, "v2", "t", "a2"));
            assertEquals(List.of(0L, 0L), previousChunks(h));
        }
    }

    @Test
    void inItsInputsTaskItRefusesToOpenAboveParallelismOne() throws Exception {
        try (var h = harness(true, 2, 1)) {
            IllegalStateException refused = assertThrows(IllegalStateException.class, h::open);
            assertTrue(refused.getMessage().contains("it now runs at parallelism 2"), refused.getMessage());
            assertTrue(refused.getMessage().contains("--dedup.in-source-task=false"), refused.getMessage());
        }
        try (var h = harness(false, 2, 1)) {
            h.open(); // keyed through an exchange: any parallelism
        }
    }

    @Test
    void stateWrittenInTheInputsTaskRestoresIntoTheKeyedShapeAtParallelismTwo() throws Exception {
        OperatorSubtaskState snapshot;
        List<String> ids = List.of("a", "b", "c", "d", "e", "f", "g", "h");
        try (var h = harness(true, 1, 0)) {
            h.open();
            for (String id : ids) {
                send(h, upsert(id, 5, id + "5", "t", id + "@5"));
            }
            assertEquals(ids.size(), drain(h).size());
            snapshot = h.snapshot(1L, 1L);
        }
        List<String> emitted = new ArrayList<>();
        int entries = 0;
        for (int subtask = 0; subtask < 2; subtask++) {
            OperatorSubtaskState part =
                    AbstractStreamOperatorTestHarness.repartitionOperatorState(
                            snapshot, MAX_PARALLELISM, 1, 2, subtask);
            try (var h = harness(false, 2, subtask)) {
                h.initializeState(part);
                h.open();
                entries += h.numKeyedStateEntries();
                for (String id : ids) {
                    // Only the ids of this subtask's key groups reach it through the keyed exchange.
                    if (owns(subtask, "ns/" + id)) {
                        send(h, upsert(id, 4, id + "4", "t", id + "@4-stale"), upsert(id, 6, id + "6", "t", id + "@6"));
                    }
                }
                emitted.addAll(drain(h));
            }
        }
        assertEquals(ids.size(), entries); // every id's state, each in one subtask
        List<String> expected = new ArrayList<>();
        for (String id : ids) {
            expected.add(id + "@6+replaces");
        }
        emitted.sort(null);
        assertEquals(expected, emitted);
    }

    /** Whether subtask {@code subtask} of 2 holds the key group of {@code key}. */
    private static boolean owns(int subtask, String key) {
        return KeyGroupRangeAssignment.computeKeyGroupRangeForOperatorIndex(MAX_PARALLELISM, 2, subtask)
                .contains(KeyGroupRangeAssignment.assignToKeyGroup(key, MAX_PARALLELISM));
    }

    private static DataStream<Row> rows(StreamExecutionEnvironment env) {
        return env.fromData(List.of(upsert("a", 1, "a", "t", "a@1")), DedupFunction.inputType());
    }

    private static StreamEdge edgeIntoDedup(StreamExecutionEnvironment env) {
        StreamGraph graph = env.getStreamGraph();
        for (StreamNode node : graph.getStreamNodes()) {
            if (node.getOperatorName().equals("Dedup")) {
                return node.getInEdges().get(0);
            }
        }
        throw new AssertionError("no Dedup node");
    }

    @Test
    void inItsInputsTaskTheDedupIsKeyedWithoutAnExchangeAndChainsToItsInput() {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(1);
        DedupFunction.apply(rows(env), 0, true).name("Dedup").sinkTo(new DiscardingSink<>());
        StreamEdge forward = edgeIntoDedup(env);
        assertTrue(forward.getPartitioner() instanceof ForwardPartitioner, forward.getPartitioner().toString());

        StreamExecutionEnvironment keyedEnv = StreamExecutionEnvironment.getExecutionEnvironment();
        keyedEnv.setParallelism(1);
        DedupFunction.apply(rows(keyedEnv), 0, false).name("Dedup").sinkTo(new DiscardingSink<>());
        StreamEdge keyed = edgeIntoDedup(keyedEnv);
        assertTrue(keyed.getPartitioner() instanceof KeyGroupStreamPartitioner, keyed.getPartitioner().toString());
    }

    @Test
    void inItsInputsTaskTheDedupRefusesAnInputAboveParallelismOne() {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        env.setParallelism(2);
        DataStream<Row> input = rows(env).map(row -> row, DedupFunction.inputType()).setParallelism(2);
        IllegalArgumentException refused =
                assertThrows(IllegalArgumentException.class, () -> DedupFunction.apply(input, 0, true));
        assertEquals(
                "the dedup operator can run in its input's task only at parallelism 1, and its input has parallelism 2",
                refused.getMessage());
    }

    private static StreamExecutionEnvironment env(int parallelism, Configuration configuration) {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment(configuration);
        env.setParallelism(parallelism);
        return env;
    }

    @Test
    void onlyAJobAtParallelismOneThatNothingRescalesWhileItRunsMayRunItInItsInputsTask() {
        assertTrue(DedupFunction.canRunInInputTask(env(1, new Configuration())));
        assertFalse(DedupFunction.canRunInInputTask(env(2, new Configuration())));
        Configuration adaptive = new Configuration();
        adaptive.set(JobManagerOptions.SCHEDULER, JobManagerOptions.SchedulerType.Adaptive);
        assertFalse(DedupFunction.canRunInInputTask(env(1, adaptive)));
        Configuration reactive = new Configuration();
        reactive.set(JobManagerOptions.SCHEDULER_MODE, SchedulerExecutionMode.REACTIVE);
        assertFalse(DedupFunction.canRunInInputTask(env(1, reactive)));
    }
}
