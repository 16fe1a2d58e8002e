package io.github.kpf.decode;

import java.nio.charset.StandardCharsets;
import java.util.AbstractMap;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * One Kafka record as the source table gives it: the Java side of {@code udfs.records.SourceRecord}, whose pickle
 * {@link ChangePickle} writes from it, with the same seven fields in the same order.
 *
 * <p>Immutable as far as its fields go: they are final, but the arrays and the header list are taken as given, not
 * copied (the decode path builds one per record and hands it straight on), so whoever builds one must not change them
 * afterwards. The constructor checks nothing: a field that a use needs and finds null fails there, as it did when the
 * seven were passed one by one ({@link FastDecoder#decode} answers null for a topic it does not take, {@link
 * ChangePickle#upsert} throws {@link NullPointerException} for a null topic).
 */
public final class SourceRecord {
    /**
     * The header that marks a record whose value the JVM decode path left out of its change ({@link #withoutValue}):
     * a dead letter of that change carries it, and {@link ValueRefetch} reads the value back from Kafka in its place.
     */
    public static final String VALUE_REFETCH_HEADER = "kpf.refetch.value";

    /** What a header adds to a Kafka record besides its name and value ({@code sinks.dead_letter._HEADER_OVERHEAD}
     * is smaller): varints of the lengths and the count. */
    private static final int HEADER_OVERHEAD = 8;

    public final String topic;

    public final int partition;

    public final long offset;

    /** The timestamp in milliseconds since the epoch, or null (None). */
    public final Long timestampMs;

    /** The key, or null (None). */
    public final byte[] key;

    /** The value, or null for a tombstone (which the decode path leaves to Python: it is not an upsert). */
    public final byte[] value;

    /** The headers in order, each a key (not null) and a value (null: None); null is no headers. */
    public final List<Map.Entry<String, byte[]>> headers;

    public SourceRecord(
            String topic,
            int partition,
            long offset,
            Long timestampMs,
            byte[] key,
            byte[] value,
            List<Map.Entry<String, byte[]>> headers) {
        this.topic = topic;
        this.partition = partition;
        this.offset = offset;
        this.timestampMs = timestampMs;
        this.key = key;
        this.value = value;
        this.headers = headers;
    }

    /**
     * This record with an empty value and {@link #VALUE_REFETCH_HEADER} after its headers: what a change needs of
     * its record once decoded, for the rare dead letter after decode, whose value {@link ValueRefetch} reads back.
     */
    public SourceRecord withoutValue() {
        List<Map.Entry<String, byte[]>> marked = new ArrayList<>(headers == null ? 1 : headers.size() + 1);
        if (headers != null) {
            marked.addAll(headers);
        }
        marked.add(new AbstractMap.SimpleImmutableEntry<>(VALUE_REFETCH_HEADER, new byte[0]));
        return new SourceRecord(topic, partition, offset, timestampMs, key, new byte[0], marked);
    }

    /** The bytes of this record as Kafka stores them, less a constant: key, value, each header's name and value. */
    public long size() {
        long size = (key == null ? 0 : key.length) + (value == null ? 0 : value.length);
        if (headers != null) {
            for (Map.Entry<String, byte[]> header : headers) {
                byte[] data = header.getValue();
                size += header.getKey().getBytes(StandardCharsets.UTF_8).length
                        + (data == null ? 0 : data.length)
                        + HEADER_OVERHEAD;
            }
        }
        return size;
    }
}
