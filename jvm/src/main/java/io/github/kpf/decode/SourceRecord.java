package io.github.kpf.decode;

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
}
