package io.github.kpf.batch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.accumulators.Accumulator;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.checkpoint.OperatorSubtaskState;
import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.AbstractStreamOperatorTestHarness;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/**
 * {@link BatchResults} (and the {@link RunTotals} it keeps) on Flink's operator test harness: records in order,
 * dead letters to the side output, counts as run totals that a restored task starts from.
 */
class BatchResultsTest {
    private static final TypeInformation<Row> DEAD_LETTER =
            Types.ROW_NAMED(
                    new String[] {"key", "value", "headers"},
                    PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                    PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                    Types.MAP(Types.STRING, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO));

    private static BatchResults<String> function() {
        return new BatchResults<>("decode", DEAD_LETTER, "decoded", "dead_letters");
    }

    private static OneInputStreamOperatorTestHarness<Row, String> harness(BatchResults<String> function)
            throws Exception {
        return new OneInputStreamOperatorTestHarness<>(new ProcessOperator<>(function));
    }

    private static Row result(List<String> records, List<Row> deadLetters, Map<String, Long> counts) {
        Row row = new Row(BatchResults.FIELDS.length);
        row.setField(BatchResults.RECORDS, records);
        row.setField(BatchResults.DEAD_LETTERS, deadLetters);
        row.setField(BatchResults.COUNTS, counts);
        return row;
    }

    private static Row deadLetter(String value) {
        return Row.of(null, value.getBytes(), Map.of());
    }

    private static Long total(AbstractStreamOperatorTestHarness<?> harness, String name) {
        Map<String, Accumulator<?, ?>> accumulators =
                harness.getEnvironment().getAccumulatorRegistry().getUserMap();
        Accumulator<?, ?> accumulator = accumulators.get("decode." + name);
        return accumulator == null ? null : (Long) accumulator.getLocalValue();
    }

    private static List<String> deadLetterValues(
            OneInputStreamOperatorTestHarness<Row, String> harness, BatchResults<String> function) {
        List<String> values = new ArrayList<>();
        for (StreamRecord<Row> letter : harness.getSideOutput(function.deadLetters())) {
            values.add(new String((byte[]) letter.getValue().getField(1)));
        }
        return values;
    }

    @Test
    void recordsGoOnInOrderDeadLettersToTheSideOutputAndCountsToRunTotals() throws Exception {
        BatchResults<String> function = function();
        try (var h = harness(function)) {
            h.open();
            assertEquals(0L, total(h, "decoded")); // declared: exists before the first record
            assertEquals(0L, total(h, "dead_letters"));
            h.processElement(
                    result(List.of("r1", "r2"), List.of(deadLetter("bad1")), Map.of("decoded", 2L, "dead_letters", 1L)),
                    0L);
            h.processElement(result(List.of("r3"), List.of(), Map.of("decoded", 1L, "skipped_tombstone", 4L)), 0L);
            h.processElement(result(null, null, null), 0L); // nothing at all: nothing happens
            assertEquals(List.of("r1", "r2", "r3"), h.extractOutputValues());
            assertEquals(List.of("bad1"), deadLetterValues(h, function));
            assertEquals(3L, total(h, "decoded"));
            assertEquals(1L, total(h, "dead_letters"));
            assertEquals(4L, total(h, "skipped_tombstone")); // undeclared counts appear when first counted
            assertNull(total(h, "never_counted"));
        }
    }

    @Test
    void aRestoredTaskStartsItsRunTotalsAtTheCheckpointsTotals() throws Exception {
        OperatorSubtaskState snapshot;
        try (var h = harness(function())) {
            h.open();
            h.processElement(result(List.of("r1"), List.of(), Map.of("decoded", 5L, "skipped_tombstone", 2L)), 0L);
            snapshot = h.snapshot(1L, 1L);
            h.processElement(result(List.of("r2"), List.of(), Map.of("decoded", 7L)), 0L); // lost with the crash
        }
        try (var h = harness(function())) {
            h.initializeState(snapshot);
            h.open();
            assertEquals(5L, total(h, "decoded"));
            assertEquals(2L, total(h, "skipped_tombstone"));
            assertEquals(0L, total(h, "dead_letters"));
            h.processElement(result(List.of("r2"), List.of(), Map.of("decoded", 7L)), 0L); // replayed
            assertEquals(12L, total(h, "decoded")); // counted once, as without the crash
        }
    }

    @Test
    void runTotalsKeepTheirSumsWhenTheOperatorIsRescaled() throws Exception {
        OperatorSubtaskState[] snapshots = new OperatorSubtaskState[2];
        for (int subtask = 0; subtask < 2; subtask++) {
            try (var h =
                    new OneInputStreamOperatorTestHarness<Row, String>(
                            new ProcessOperator<>(function()), 4, 2, subtask)) {
                h.open();
                h.processElement(result(List.of(), List.of(), Map.of("decoded", 10L + subtask)), 0L);
                snapshots[subtask] = h.snapshot(1L, 1L);
            }
        }
        OperatorSubtaskState merged = AbstractStreamOperatorTestHarness.repackageState(snapshots);
        long sum = 0;
        for (int subtask = 0; subtask < 3; subtask++) {
            OperatorSubtaskState state =
                    AbstractStreamOperatorTestHarness.repartitionOperatorState(merged, 4, 2, 3, subtask);
            try (var h =
                    new OneInputStreamOperatorTestHarness<Row, String>(
                            new ProcessOperator<>(function()), 4, 3, subtask)) {
                h.initializeState(state);
                h.open();
                sum += total(h, "decoded");
            }
        }
        assertEquals(21L, sum);
    }

    @Test
    void twoOperatorsOfOneTaskAddToOneRunTotalAndEachRestoresItsOwnShare() throws Exception {
        // The JVM decoder and the Python decode stage's results are chained into one task and both count decode.*;
        // accumulators belong to the task, so the two must share them rather than register one name twice.
        OperatorSubtaskState first;
        OperatorSubtaskState second;
        try (var a = harness(function());
                var b = new OneInputStreamOperatorTestHarness<Row, String>(
                        new ProcessOperator<>(function()), a.getEnvironment())) {
            a.open();
            b.open();
            a.processElement(result(List.of("r1"), List.of(), Map.of("decoded", 3L)), 0L);
            b.processElement(result(List.of("r2"), List.of(), Map.of("decoded", 4L, "dead_letters", 1L)), 0L);
            assertEquals(7L, total(a, "decoded"));
            assertEquals(1L, total(a, "dead_letters"));
            first = a.snapshot(1L, 1L);
            second = b.snapshot(1L, 1L);
        }
        try (var a = harness(function());
                var b = new OneInputStreamOperatorTestHarness<Row, String>(
                        new ProcessOperator<>(function()), a.getEnvironment())) {
            a.initializeState(first);
            b.initializeState(second);
            a.open();
            b.open();
            assertEquals(7L, total(a, "decoded")); // each share once, not the sum twice
            assertEquals(1L, total(a, "dead_letters"));
            a.processElement(result(List.of("r3"), List.of(), Map.of("decoded", 2L)), 0L);
            assertEquals(9L, total(b, "decoded"));
            OperatorSubtaskState again = b.snapshot(2L, 2L);
            try (var c = harness(function())) {
                c.initializeState(again);
                c.open();
                assertEquals(4L, total(c, "decoded")); // b's own share: a's later counts are not in b's state
            }
        }
    }

    private static BatchResults<String> perNamespaceFunction() {
        return new BatchResults<String>("decode", DEAD_LETTER, "decoded", "accepted@docs")
                .withPerNamespaceCounts("accepted", "rejected");
    }

    @Test
    void aNamespacesCountsAllExistFromItsFirstCountAndThoseDeclaredFromTheStart() throws Exception {
        OperatorSubtaskState snapshot;
        try (var h = harness(perNamespaceFunction())) {
            h.open();
            assertEquals(0L, total(h, "accepted@docs")); // declared, and its sibling with it
            assertEquals(0L, total(h, "rejected@docs"));
            assertNull(total(h, "accepted@news"));
            h.processElement(result(List.of(), List.of(), Map.of("rejected@news", 2L, "rejected@a@b", 1L)), 0L);
            assertEquals(2L, total(h, "rejected@news"));
            assertEquals(0L, total(h, "accepted@news")); // appears with the namespace's first count, at zero
            assertEquals(1L, total(h, "rejected@a@b")); // the first '@' splits: namespace "a@b"
            assertEquals(0L, total(h, "accepted@a@b"));
            assertNull(total(h, "rejected@b"));
            snapshot = h.snapshot(1L, 1L);
        }
        try (var h = harness(perNamespaceFunction())) {
            h.initializeState(snapshot);
            h.open();
            assertEquals(2L, total(h, "rejected@news")); // restored, its namespace's counts with it
            assertEquals(0L, total(h, "accepted@news"));
            h.processElement(result(List.of(), List.of(), Map.of("accepted@news", 3L)), 0L);
            assertEquals(3L, total(h, "accepted@news"));
        }
    }
}
