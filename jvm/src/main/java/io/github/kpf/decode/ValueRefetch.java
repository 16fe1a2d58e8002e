package io.github.kpf.decode;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.HashMap;
import java.util.Map;
import java.util.Properties;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Row;

/**
 * Puts the Kafka value back into a dead letter whose change the JVM decode path made without it ({@link
 * FastDecoder#withValueRefetch}): the change's record carries {@link SourceRecord#VALUE_REFETCH_HEADER} instead, and
 * the dead letter its {@code kpf.source.*} coordinates ({@code sinks.dead_letter}). The value is read from Kafka at those
 * coordinates, with the source's own properties ({@link KafkaRecordFetcher}), and the marker header is dropped: the
 * dead letter is then byte for byte the one the sink makes of a change that carried its value.
 *
 * <p>Rows are raw dead-letter rows (key, value, headers as a map): those without the marker pass unchanged, and only
 * dead letters after decode (Pinecone rejected the record) ever have it, so Kafka is asked only then. A record Kafka
 * no longer holds (deleted by retention or compaction since it was read) leaves an empty value and {@code
 * kpf.truncated=value}, which the replay tool refuses, as for a dead letter cut to fit. A Kafka that cannot be read
 * within {@link #TIMEOUT} fails the task: the job restarts from its last checkpoint and the record comes again.
 */
public final class ValueRefetch extends RichMapFunction<Row, Row> {
    private static final long serialVersionUID = 1L;

    /** The dead-letter header naming what was cut ({@code sinks.dead_letter.H_TRUNCATED}). */
    public static final String TRUNCATED = "kpf.truncated";

    static final String TOPIC = "kpf.source.topic";
    static final String PARTITION = "kpf.source.partition";
    static final String OFFSET = "kpf.source.offset";
    static final Duration TIMEOUT = Duration.ofSeconds(60);

    private static final int KEY = 0;
    private static final int VALUE = 1;
    private static final int HEADERS = 2;

    /** Reads one record's value from Kafka. */
    public interface Fetcher extends AutoCloseable {
        /** The value of the record at {@code offset}, an empty array for a tombstone, or null when Kafka no longer
         * holds that record. */
        byte[] value(String topic, int partition, long offset, Duration timeout) throws Exception;

        @Override
        void close();
    }

    private final Properties properties;
    private transient Fetcher fetcher;

    /** @param properties the source's Kafka client properties, bootstrap servers included */
    public ValueRefetch(Properties properties) {
        this.properties = properties;
    }

    /** With {@code fetcher} instead of a Kafka client (tests). */
    ValueRefetch(Fetcher fetcher) {
        this.properties = null;
        this.fetcher = fetcher;
    }

    /** This function on {@code deadLetters} (raw dead-letter rows), keeping their type. */
    public static SingleOutputStreamOperator<Row> apply(DataStream<Row> deadLetters, ValueRefetch function) {
        return deadLetters.map(function, deadLetters.getType());
    }

    @Override
    public Row map(Row row) throws Exception {
        @SuppressWarnings("unchecked")
        Map<String, byte[]> headers = (Map<String, byte[]>) row.getField(HEADERS);
        if (headers == null || !headers.containsKey(SourceRecord.VALUE_REFETCH_HEADER)) {
            return row;
        }
        Map<String, byte[]> restored = new HashMap<>(headers);
        restored.remove(SourceRecord.VALUE_REFETCH_HEADER);
        byte[] value = fetcher().value(
                text(headers, TOPIC),
                Integer.parseInt(text(headers, PARTITION)),
                Long.parseLong(text(headers, OFFSET)),
                TIMEOUT);
        if (value == null) {
            value = new byte[0];
            restored.put(TRUNCATED, "value".getBytes(StandardCharsets.UTF_8));
        }
        Row out = Row.withPositions(row.getKind(), 3);
        out.setField(KEY, row.getField(KEY));
        out.setField(VALUE, value);
        out.setField(HEADERS, restored);
        return out;
    }

    private Fetcher fetcher() {
        if (fetcher == null) {
            fetcher = new KafkaRecordFetcher(properties);
        }
        return fetcher;
    }

    private static String text(Map<String, byte[]> headers, String name) {
        byte[] data = headers.get(name);
        if (data == null) {
            throw new IllegalStateException("a dead letter to complete from Kafka has no " + name + " header");
        }
        return new String(data, StandardCharsets.UTF_8);
    }

    @Override
    public void close() {
        if (fetcher != null) {
            fetcher.close();
            fetcher = null;
        }
    }
}
