package io.github.kpf.dedup;

import io.github.kpf.decode.ChangePickle;
import java.util.ArrayList;
import java.util.List;
import org.apache.flink.api.common.functions.MapFunction;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ListTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.types.Row;

/**
 * Turns a group of the dedup operator's rows ({@link DedupFunction#outputType}, gathered by the sink's {@code
 * Batcher}) into one pickle of the group's changes ({@link ChangePickle#appliedGroup}), for a Python stage whose
 * input type is {@code Types.PICKLED_BYTE_ARRAY()}: PyFlink's coder loads it with one {@code pickle.loads}, and the
 * stage gets the list of {@code Change}s, with {@code replaces} and {@code previous_chunks} set. An empty group (a
 * batcher's marker) stays an empty list. Stateless; order kept.
 */
public final class AppliedGroups implements MapFunction<List<Row>, byte[]> {
    private static final long serialVersionUID = 1L;

    /**
     * {@code groups} as one pickle each, of type {@code pickled} (PyFlink's {@code Types.PICKLED_BYTE_ARRAY()}).
     * Refuses a stream that is not of lists of {@link DedupFunction#outputType} rows.
     */
    public static SingleOutputStreamOperator<byte[]> apply(DataStream<List<Row>> groups, TypeInformation<byte[]> pickled) {
        TypeInformation<List<Row>> expected = new ListTypeInfo<>(DedupFunction.outputType());
        if (!expected.equals(groups.getType())) {
            throw new IllegalArgumentException(
                    "applied groups must be lists of the dedup operator's rows (" + expected + "), got " + groups.getType());
        }
        return groups.map(new AppliedGroups(), pickled);
    }

    @Override
    public byte[] map(List<Row> group) {
        int n = group.size();
        List<byte[]> payloads = new ArrayList<>(n);
        boolean[] replaces = new boolean[n];
        long[] previousChunks = new long[n];
        for (int i = 0; i < n; i++) {
            Row row = group.get(i);
            byte[] payload = (byte[]) row.getField(DedupFunction.OUT_PAYLOAD);
            if (payload == null) {
                throw new IllegalArgumentException("row " + i + " of a group of " + n + " has no payload");
            }
            payloads.add(payload);
            replaces[i] = Boolean.TRUE.equals(row.getField(DedupFunction.OUT_REPLACES));
            Object previous = row.getField(DedupFunction.OUT_PREVIOUS_CHUNKS);
            previousChunks[i] = previous == null ? 0 : (Long) previous;
        }
        return ChangePickle.appliedGroup(payloads, replaces, previousChunks);
    }
}
