package io.github.kpf.decode;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;
import io.github.kpf.dedup.DedupFunction;

/**
 * {@link SequencedMerge} on Flink's operator test harness, as the job runs it: its stream input carries the Python
 * decoder's changes and a marker after each group, and {@link SequencedMerge#jvm} (called by the JVM decoder of its
 * task) the JVM decoder's changes and its markers of the rows it handed to Python. Each change's payload is a label
 * that says which change came out.
 */
class SequencedMergeTest {
    private static final String TOKEN = "merge-test";

    private static OneInputStreamOperatorTestHarness<Row, Row> harness() throws Exception {
        OneInputStreamOperatorTestHarness<Row, Row> h =
                new OneInputStreamOperatorTestHarness<>(new SequencedMerge(TOKEN));
        h.open();
        return h;
    }

    /** A change of the record with sequence number {@code seq}, labelled {@code label}. */
    private static Row change(long seq, String label) {
        Row row = new Row(DedupFunction.INPUT_FIELDS.length);
        row.setField(DedupFunction.KEY, "ns/" + label);
        row.setField(DedupFunction.PAYLOAD, label.getBytes(StandardCharsets.UTF_8));
        row.setField(DedupFunction.SEQ, seq);
        return row;
    }

    /** On input 1: the row {@code seq} is with Python. On input 2: every row up to {@code seq} has its verdict. */
    private static Row marker(long seq) {
        Row row = new Row(DedupFunction.INPUT_FIELDS.length);
        row.setField(DedupFunction.SEQ, seq);
        return row;
    }

    /** As the JVM decoder of the task calls it: it finds the merge by its token. */
    private static void jvm(OneInputStreamOperatorTestHarness<Row, Row> h, Row row) {
        SequencedMerge merge = SequencedMerge.forTask(TOKEN);
        assertSame(h.getOneInputOperator(), merge);
        merge.jvm(row);
    }

    private static void python(OneInputStreamOperatorTestHarness<Row, Row> h, Row row) throws Exception {
        h.processElement(new StreamRecord<>(row));
    }

    /** The labels handed on since the last call. */
    private static List<String> drain(OneInputStreamOperatorTestHarness<Row, Row> h) {
        List<String> out = new ArrayList<>();
        for (Row row : h.extractOutputValues()) {
            out.add(new String((byte[]) row.getField(DedupFunction.PAYLOAD), StandardCharsets.UTF_8));
        }
        h.getOutput().clear();
        return out;
    }

    @Test
    void theJvmDecodersChangesCountAsTheOperatorsRecordsInAndItsMarkersDoNot() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> h = harness()) {
            jvm(h, change(0, "j0"));
            jvm(h, marker(1));
            jvm(h, change(2, "j2"));
            assertEquals(
                    2,
                    h.getOneInputOperator()
                            .getMetricGroup()
                            .getIOMetricGroup()
                            .getNumRecordsInCounter()
                            .getCount());
        }
    }

    @Test
    void jvmChangesPassStraightThroughWhileNoRowIsWithPython() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> h = harness()) {
            jvm(h, change(0, "j0"));
            jvm(h, change(1, "j1"));
            assertEquals(List.of("j0", "j1"), drain(h));
        }
    }

    @Test
    void aJvmChangeWaitsForThePythonVerdictOfTheRowBeforeIt() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> h = harness()) {
            jvm(h, change(0, "j0"));
            jvm(h, marker(1));
            jvm(h, change(2, "j2"));
            jvm(h, change(3, "j3"));
            assertEquals(List.of("j0"), drain(h), "j2 and j3 come after row 1, which Python has not answered");
            // Python's stream is in row order and a row makes at most one change: p1 answers rows up to 1.
            python(h, change(1, "p1"));
            assertEquals(List.of("p1", "j2", "j3"), drain(h));
            python(h, marker(1));
            assertEquals(List.of(), drain(h));
            jvm(h, change(4, "j4"));
            assertEquals(List.of("j4"), drain(h), "nothing waits once every row with Python is answered");
        }
    }

    @Test
    void aPythonChangeWaitsForTheJvmChangesBeforeIt() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> h = harness()) {
            // Python answers rows 2 and 4 before the JVM's input has reached them.
            python(h, change(2, "p2"));
            python(h, change(4, "p4"));
            python(h, marker(4));
            assertEquals(List.of(), drain(h));
            jvm(h, change(0, "j0"));
            jvm(h, change(1, "j1"));
            jvm(h, marker(2));
            assertEquals(List.of("j0", "j1", "p2"), drain(h));
            jvm(h, change(3, "j3"));
            jvm(h, marker(4));
            jvm(h, change(5, "j5"));
            assertEquals(List.of("j3", "p4", "j5"), drain(h));
        }
    }

    @Test
    void aRowPythonMakesNoChangeOfReleasesTheChangesAfterIt() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> h = harness()) {
            // Rows 0 and 1 go to Python: row 0 is a dead letter (no change), row 1 makes one.
            jvm(h, marker(0));
            jvm(h, marker(1));
            jvm(h, change(2, "j2"));
            python(h, marker(0));
            assertEquals(List.of(), drain(h), "row 1 is not answered yet");
            python(h, change(1, "p1"));
            python(h, marker(1));
            assertEquals(List.of("p1", "j2"), drain(h));
        }
    }

    @Test
    void aCheckpointThatFindsAChangeWaitingIsRefused() throws Exception {
        try (OneInputStreamOperatorTestHarness<Row, Row> h = harness()) {
            jvm(h, change(0, "j0"));
            h.snapshot(1L, 1L); // nothing waits: taken
            jvm(h, marker(1));
            jvm(h, change(2, "j2"));
            Exception refused = assertThrows(Exception.class, () -> h.snapshot(2L, 2L));
            assertTrue(causes(refused).contains("were waiting for their order"), causes(refused));
        }
    }

    private static String causes(Throwable error) {
        StringBuilder text = new StringBuilder();
        for (Throwable t = error; t != null; t = t.getCause()) {
            text.append(t).append('\n');
        }
        return text.toString();
    }

    @Test
    void aClosedMergeIsNoLongerFoundByItsToken() throws Exception {
        OneInputStreamOperatorTestHarness<Row, Row> h = harness();
        assertSame(h.getOneInputOperator(), SequencedMerge.forTask(TOKEN));
        assertNull(SequencedMerge.forTask("another-token"));
        h.close();
        assertNull(SequencedMerge.forTask(TOKEN));
    }
}
