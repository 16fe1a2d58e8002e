package io.github.kpf.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/** {@link ValueRefetch} with a fetcher that answers from a map instead of Kafka. */
class ValueRefetchTest {

    private static final byte[] KEY = bytes("k1");
    private static final byte[] VALUE = bytes("{\"values\": [1, 0]}");

    private static byte[] bytes(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    /** Answers orders[0]@7 with {@link #VALUE}, anything else as gone; records every call. */
    private static final class MapFetcher implements ValueRefetch.Fetcher {
        final List<String> calls = new ArrayList<>();

        @Override
        public byte[] value(String topic, int partition, long offset, Duration timeout) {
            calls.add(topic + "[" + partition + "]@" + offset);
            return "orders".equals(topic) && partition == 0 && offset == 7 ? VALUE : null;
        }

        @Override
        public void close() {}
    }

    private static Row deadLetter(long offset, boolean marked) {
        Map<String, byte[]> headers = new HashMap<>();
        headers.put("trace", bytes("t-1"));
        headers.put("kpf.error.stage", bytes("sink"));
        headers.put(ValueRefetch.TOPIC, bytes("orders"));
        headers.put(ValueRefetch.PARTITION, bytes("0"));
        headers.put(ValueRefetch.OFFSET, bytes(Long.toString(offset)));
        if (marked) {
            headers.put(SourceRecord.VALUE_REFETCH_HEADER, new byte[0]);
        }
        return Row.of(KEY, marked ? new byte[0] : VALUE, headers);
    }

    @SuppressWarnings("unchecked")
    private static Map<String, byte[]> headers(Row row) {
        return (Map<String, byte[]>) row.getField(2);
    }

    @Test
    void aMarkedDeadLetterGetsItsValueBackFromKafkaAndLosesTheMarker() throws Exception {
        MapFetcher kafka = new MapFetcher();
        Row out = new ValueRefetch(kafka).map(deadLetter(7, true));
        assertEquals(List.of("orders[0]@7"), kafka.calls);
        assertArrayEquals(KEY, (byte[]) out.getField(0));
        assertArrayEquals(VALUE, (byte[]) out.getField(1));
        Map<String, byte[]> headers = headers(out);
        assertFalse(headers.containsKey(SourceRecord.VALUE_REFETCH_HEADER));
        assertFalse(headers.containsKey(ValueRefetch.TRUNCATED));
        assertEquals(headers(deadLetter(7, false)).keySet(), headers.keySet());
        assertArrayEquals(bytes("t-1"), headers.get("trace"));
    }

    @Test
    void anUnmarkedDeadLetterPassesAsItIsWithoutAskingKafka() throws Exception {
        MapFetcher kafka = new MapFetcher();
        Row row = deadLetter(7, false);
        assertSame(row, new ValueRefetch(kafka).map(row));
        assertTrue(kafka.calls.isEmpty());
    }

    @Test
    void aRecordKafkaNoLongerHoldsLeavesAnEmptyValueMarkedTruncated() throws Exception {
        Row out = new ValueRefetch(new MapFetcher()).map(deadLetter(8, true));
        assertArrayEquals(new byte[0], (byte[]) out.getField(1));
        assertArrayEquals(bytes("value"), headers(out).get(ValueRefetch.TRUNCATED));
        assertFalse(headers(out).containsKey(SourceRecord.VALUE_REFETCH_HEADER));
    }

    @Test
    void aMarkedDeadLetterWithoutItsCoordinatesIsAnError() {
        Row row = deadLetter(7, true);
        headers(row).remove(ValueRefetch.OFFSET);
        assertThrows(IllegalStateException.class, () -> new ValueRefetch(new MapFetcher()).map(row));
    }

    @Test
    void withoutValueEmptiesTheValueAndMarksTheRecordAfterItsHeaders() {
        SourceRecord record = new SourceRecord(
                "orders", 0, 7, 5L, KEY, VALUE, List.of(Map.entry("trace", bytes("t-1"))));
        SourceRecord without = record.withoutValue();
        assertArrayEquals(new byte[0], without.value);
        assertSame(record.key, without.key);
        assertEquals(2, without.headers.size());
        assertEquals("trace", without.headers.get(0).getKey());
        assertEquals(SourceRecord.VALUE_REFETCH_HEADER, without.headers.get(1).getKey());
        assertEquals(KEY.length + VALUE.length + "trace".length() + 3 + 8, record.size());
    }
}
