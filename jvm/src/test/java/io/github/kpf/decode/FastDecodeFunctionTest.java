package io.github.kpf.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import java.util.Map;
import org.apache.flink.streaming.api.operators.ProcessOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;
import io.github.kpf.dedup.DedupFunction;

/**
 * {@link FastDecodeFunction} in its task: it hands its changes, and its markers of the rows it leaves to Python, to
 * the {@link SequencedMerge} made with its token, and refuses to run without one.
 */
class FastDecodeFunctionTest {
    private static final String[] COLUMNS = {"key", "value", "topic", "partition", "offset", "headers", "timestamp"};

    private static FastDecodeFunction function(String token) {
        FastDecoder decoder = new FastDecoder(
                new String[] {"orders"},
                new String[] {"orders-ns"},
                new String[] {"orders"},
                "kafka",
                "uuid",
                null,
                "values",
                "sparse_values",
                4,
                "cosine",
                null,
                40960);
        return new FastDecodeFunction(decoder, COLUMNS, token);
    }

    private static Row source(long offset, String value) {
        return Row.of(
                ("k" + offset).getBytes(StandardCharsets.UTF_8),
                value.getBytes(StandardCharsets.UTF_8),
                "orders",
                0,
                offset,
                Map.of(),
                Instant.ofEpochMilli(1_000));
    }

    private static OneInputStreamOperatorTestHarness<Row, Row> decodeHarness(String token) throws Exception {
        OneInputStreamOperatorTestHarness<Row, Row> h =
                new OneInputStreamOperatorTestHarness<>(new ProcessOperator<>(function(token)));
        h.open();
        return h;
    }

    @Test
    void changesAndMarkersGoToTheMergeOfItsTaskInTheirRowsOrder() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> merge =
                        new OneInputStreamOperatorTestHarness<>(new SequencedMerge("t-1"));
                OneInputStreamOperatorTestHarness<Row, Row> decode = decodeHarness("t-1")) {
            merge.open();
            decode.processElement(new StreamRecord<>(source(0, "{\"values\": [1, 0, 0, 0]}")));
            // Nested metadata is Python's to decode: the merge holds what comes after it until Python answers.
            decode.processElement(new StreamRecord<>(source(1, "{\"values\": [1, 0, 0, 0], \"m\": {\"a\": 1}}")));
            decode.processElement(new StreamRecord<>(source(2, "{\"values\": [0, 1, 0, 0]}")));
            assertEquals(List.of(), decode.extractOutputValues(), "the decode function's own output stays empty");
            List<Row> toPython = List.copyOf(decode.getSideOutput(function("t-1").toPython()))
                    .stream()
                    .map(StreamRecord::getValue)
                    .toList();
            assertEquals(1, toPython.size());
            assertEquals(1L, toPython.get(0).getField(COLUMNS.length));
            List<Row> merged = merge.extractOutputValues();
            assertEquals(1, merged.size(), "row 0 passes; row 2 waits for Python's verdict on row 1");
            assertEquals(0L, merged.get(0).getField(DedupFunction.SEQ));
            merge.getOutput().clear();

            Row pythonChange = new Row(DedupFunction.INPUT_FIELDS.length);
            pythonChange.setField(DedupFunction.KEY, "orders-ns/k1");
            pythonChange.setField(DedupFunction.SEQ, 1L);
            merge.processElement(new StreamRecord<>(pythonChange));
            List<Long> order = merge.extractOutputValues().stream()
                    .map(row -> (Long) row.getField(DedupFunction.SEQ))
                    .toList();
            assertEquals(List.of(1L, 2L), order);
        }
    }

    @Test
    void withoutItsMergeInTheTaskItRefusesTheFirstRow() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> merge =
                        new OneInputStreamOperatorTestHarness<>(new SequencedMerge("another"));
                OneInputStreamOperatorTestHarness<Row, Row> decode = decodeHarness("t-2")) {
            merge.open();
            assertNull(SequencedMerge.forTask("t-2"));
            Exception refused = assertThrows(
                    Exception.class, () -> decode.processElement(new StreamRecord<>(source(0, "{\"values\": [1]}"))));
            String text = refused.toString() + refused.getCause();
            assertTrue(text.contains("must be chained"), text);
        }
    }
}
