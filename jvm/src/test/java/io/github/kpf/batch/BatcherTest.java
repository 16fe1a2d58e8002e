package io.github.kpf.batch;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.List;
import java.util.Map;
import org.apache.flink.streaming.util.OneInputStreamOperatorTestHarness;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@link Batcher} on Flink's operator test harness: when a batch is handed on, and that records keep their order. */
class BatcherTest {
    private static OneInputStreamOperatorTestHarness<String, List<String>> harness(
            int maxRecords, long maxBytes, long lingerMillis) throws Exception {
        OneInputStreamOperatorTestHarness<String, List<String>> harness =
                new OneInputStreamOperatorTestHarness<>(new Batcher<String>(maxRecords, maxBytes, lingerMillis));
        harness.open();
        return harness;
    }

    private static List<List<String>> drain(OneInputStreamOperatorTestHarness<String, List<String>> harness) {
        List<List<String>> batches = harness.extractOutputValues();
        harness.getOutput().clear();
        return batches;
    }

    private static void send(OneInputStreamOperatorTestHarness<String, List<String>> harness, String... records)
            throws Exception {
        for (String record : records) {
            harness.processElement(record, 0L);
        }
    }

    @Test
    void aBatchIsHandedOnWhenItHoldsMaxRecords() throws Exception {
        try (var h = harness(3, 1 << 20, 60_000)) {
            send(h, "a", "b", "c", "d", "e");
            assertEquals(List.of(List.of("a", "b", "c")), drain(h));
            send(h, "f");
            assertEquals(List.of(List.of("d", "e", "f")), drain(h));
        }
    }

    @Test
    void aBatchIsHandedOnWhenItsBytesReachMaxBytesAndALargeRecordIsABatchOfItsOwn() throws Exception {
        // A string of n characters is estimated at n + 4 bytes.
        try (var h = harness(100, 20, 60_000)) {
            send(h, "123456", "123456"); // 10 + 10 = 20: full
            assertEquals(List.of(List.of("123456", "123456")), drain(h));
            send(h, "1234", "1234567890123456"); // 8, then 20 would pass the limit: the first goes alone
            assertEquals(List.of(List.of("1234"), List.of("1234567890123456")), drain(h));
            send(h, "a".repeat(100)); // larger than a batch: handed on alone at once
            assertEquals(List.of(List.of("a".repeat(100))), drain(h));
        }
    }

    @Test
    void theBufferIsHandedOnBeforeEveryCheckpointBarrierSoItHoldsNoState() throws Exception {
        try (var h = harness(100, 1 << 20, 60_000)) {
            send(h, "a", "b");
            assertEquals(List.of(), drain(h));
            h.prepareSnapshotPreBarrier(1L);
            assertEquals(List.of(List.of("a", "b")), drain(h));
            h.prepareSnapshotPreBarrier(2L); // nothing buffered: no empty batch
            assertEquals(List.of(), drain(h));
        }
    }

    @Test
    void theBufferIsHandedOnAtTheEndOfInput() throws Exception {
        try (var h = harness(100, 1 << 20, 60_000)) {
            send(h, "a", "b", "c");
            h.endInput();
            assertEquals(List.of(List.of("a", "b", "c")), drain(h));
        }
    }

    @Test
    void aBatchIsHandedOnWhenItsFirstRecordHasLingeredAndAnOldTimerDoesNothing() throws Exception {
        try (var h = harness(2, 1 << 20, 50)) {
            h.setProcessingTime(0);
            send(h, "a", "b"); // full at once; the timer set for "a" must not cut the next batch short
            assertEquals(List.of(List.of("a", "b")), drain(h));
            h.setProcessingTime(30);
            send(h, "c");
            h.setProcessingTime(50); // the first batch's timer fires: nothing happens
            assertEquals(List.of(), drain(h));
            h.setProcessingTime(80); // "c" has waited 50 ms
            assertEquals(List.of(List.of("c")), drain(h));
        }
    }

    @Test
    void withoutLingerEveryRecordIsHandedOnAtOnce() throws Exception {
        try (var h = harness(100, 1 << 20, 0)) {
            send(h, "a", "b");
            assertEquals(List.of(List.of("a"), List.of("b")), drain(h));
        }
    }

    @Test
    void sizesAreEstimatedFromBytesAndTextsInsideRowsListsAndMaps() {
        assertEquals(1, Batcher.sizeOf(null));
        assertEquals(7, Batcher.sizeOf(new byte[3]));
        assertEquals(4 + 7 + 8 + 1, Batcher.sizeOf(Row.of("abc", 5L, null)));
        assertEquals(4 + (5 + 8), Batcher.sizeOf(Map.of("k", 1)));
        assertEquals(4 + 5 + 5, Batcher.sizeOf(List.of("a", "b")));
    }

    private static OneInputStreamOperatorTestHarness<String, List<String>> withMarkers(
            int maxRecords, long lingerMillis, long idleMillis) throws Exception {
        OneInputStreamOperatorTestHarness<String, List<String>> harness = new OneInputStreamOperatorTestHarness<>(
                new Batcher<String>(maxRecords, 1 << 20, lingerMillis).withMarkers(idleMillis));
        harness.open();
        return harness;
    }

    @Test
    void withMarkersAnEmptyBatchFollowsTheBatchesBeforeEveryBarrierOnlyIfABatchWentOutSinceTheLastMarker()
            throws Exception {
        try (var h = withMarkers(2, 60_000, 60_000)) {
            h.setProcessingTime(0);
            h.prepareSnapshotPreBarrier(1L); // nothing handed on yet: no marker
            assertEquals(List.of(), drain(h));
            send(h, "a", "b", "c");
            h.prepareSnapshotPreBarrier(2L);
            assertEquals(List.of(List.of("a", "b"), List.of("c"), List.of()), drain(h));
            h.prepareSnapshotPreBarrier(3L); // nothing since the marker
            assertEquals(List.of(), drain(h));
        }
    }

    @Test
    void withMarkersAnEmptyBatchFollowsTheLastBatchAtTheEndOfInput() throws Exception {
        try (var h = withMarkers(100, 60_000, 60_000)) {
            send(h, "a");
            h.endInput();
            assertEquals(List.of(List.of("a"), List.of()), drain(h));
            h.getOneInputOperator().finish(); // already handed on
            assertEquals(List.of(), drain(h));
        }
    }

    @Test
    void withMarkersAnEmptyBatchFollowsWhenNoRecordCameForTheIdleTimeAfterABatch() throws Exception {
        try (var h = withMarkers(2, 50, 20)) {
            h.setProcessingTime(0);
            send(h, "a", "b"); // full: handed on at 0, marker due at 20
            assertEquals(List.of(List.of("a", "b")), drain(h));
            h.setProcessingTime(10);
            send(h, "c"); // a record came: no marker at 20, its batch goes out at 60
            h.setProcessingTime(20);
            assertEquals(List.of(), drain(h));
            h.setProcessingTime(60);
            assertEquals(List.of(List.of("c")), drain(h));
            h.setProcessingTime(79);
            assertEquals(List.of(), drain(h));
            h.setProcessingTime(80); // quiet for 20 ms after "c"'s batch
            assertEquals(List.of(List.of()), drain(h));
            h.setProcessingTime(500); // no batch since: no further marker
            h.prepareSnapshotPreBarrier(1L);
            assertEquals(List.of(), drain(h));
        }
    }

    @Test
    void withoutMarkersNoEmptyBatchIsEverHandedOn() throws Exception {
        try (var h = harness(2, 1 << 20, 50)) {
            h.setProcessingTime(0);
            send(h, "a", "b", "c");
            h.setProcessingTime(1_000);
            h.prepareSnapshotPreBarrier(1L);
            h.endInput();
            assertEquals(List.of(List.of("a", "b"), List.of("c")), drain(h));
        }
    }

    @Test
    void limitsBelowOneAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> new Batcher<String>(1, 1, 0).withMarkers(-1));
        assertThrows(IllegalArgumentException.class, () -> new Batcher<String>(0, 1, 0));
        assertThrows(IllegalArgumentException.class, () -> new Batcher<String>(1, 0, 0));
        assertThrows(IllegalArgumentException.class, () -> new Batcher<String>(1, 1, -1));
    }
}
