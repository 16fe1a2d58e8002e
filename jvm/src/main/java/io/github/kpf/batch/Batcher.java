package io.github.kpf.batch;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ListTypeInfo;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.BoundedOneInput;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;

/**
 * Gathers the records of its subtask into batches for the Python stage after it, so that records cross the
 * JVM/Python boundary in groups instead of one by one.
 *
 * <p>A batch is handed on when it holds {@code maxRecords} records, when its records' estimated size reaches {@code
 * maxBytes}, when its first record has waited {@code lingerMillis} (processing time), before every checkpoint barrier
 * ({@link #prepareSnapshotPreBarrier}) and at the end of input. The buffer is therefore empty whenever a checkpoint
 * is taken: it holds no state, and a completed checkpoint covers only records that were handed on before its barrier.
 * This is the job's "flush on checkpoint", made explicit: the Python stage after it finishes its bundle (and its async
 * calls) before it forwards the barrier, so the barrier, the batch and the Pinecone write stay aligned.
 *
 * <p>Records keep their order; a batch never mixes records from before and after a barrier.
 *
 * <p>With markers ({@link #withMarkers}), for a Python stage that works on a group after its call has returned (the
 * embed stage: the next group reaches Python only when a call returns), the batcher also hands on an empty batch, a
 * marker that tells the stage to finish all its work and hand on every result: before every checkpoint barrier, at
 * the end of input, and when no record has come for {@code idleMillis} after a batch. Only after a batch: a marker
 * with no batch since the last one would find nothing to finish. The marker before a barrier keeps the checkpoint
 * aligned (the stage's call on it returns only when every earlier group is done, and Flink waits for that call before
 * it forwards the barrier); the idle one keeps a quiet stream's last records from waiting for the next checkpoint.
 */
public class Batcher<T> extends AbstractStreamOperator<List<T>>
        implements OneInputStreamOperator<T, List<T>>, BoundedOneInput {
    private static final long serialVersionUID = 1L;

    private final int maxRecords;
    private final long maxBytes;
    private final long lingerMillis;
    private transient List<T> buffer;
    private transient long bytes;
    /** Incremented on every flush, so that a linger timer set for an earlier batch does nothing. */
    private transient long generation;
    /** Longest quiet after a batch before a marker; negative: no markers. */
    private long markerIdleMillis = -1;
    /** Batches handed on, so that an idle timer set after an earlier batch does nothing. */
    private transient long batchesOut;
    /** A batch was handed on since the last marker. */
    private transient boolean markerOwed;

    /**
     * @param maxRecords records per batch, at least 1
     * @param maxBytes estimated bytes per batch (see {@link #sizeOf}); a larger record is a batch of its own
     * @param lingerMillis longest wait of a batch's first record; 0 hands every record on at once
     */
    public Batcher(int maxRecords, long maxBytes, long lingerMillis) {
        if (maxRecords < 1) {
            throw new IllegalArgumentException("maxRecords must be at least 1, got " + maxRecords);
        }
        if (maxBytes < 1) {
            throw new IllegalArgumentException("maxBytes must be at least 1, got " + maxBytes);
        }
        if (lingerMillis < 0) {
            throw new IllegalArgumentException("lingerMillis must be >= 0, got " + lingerMillis);
        }
        this.maxRecords = maxRecords;
        this.maxBytes = maxBytes;
        this.lingerMillis = lingerMillis;
    }

    /**
     * Hand on markers (empty batches; see the class comment), after a batch when no record has come for {@code
     * idleMillis}, before every barrier and at the end of input.
     *
     * @return this batcher
     */
    public Batcher<T> withMarkers(long idleMillis) {
        if (idleMillis < 0) {
            throw new IllegalArgumentException("idleMillis must be >= 0, got " + idleMillis);
        }
        this.markerIdleMillis = idleMillis;
        return this;
    }

    /** The type of the batches: a list of the input's type. */
    public static <T> TypeInformation<List<T>> outputType(TypeInformation<T> elementType) {
        return new ListTypeInfo<>(elementType);
    }

    @Override
    public void open() throws Exception {
        super.open();
        buffer = new ArrayList<>();
        bytes = 0;
    }

    @Override
    public void processElement(StreamRecord<T> element) throws Exception {
        T value = element.getValue();
        long size = sizeOf(value);
        if (!buffer.isEmpty() && bytes + size > maxBytes) {
            flush();
        }
        buffer.add(value);
        bytes += size;
        if (buffer.size() >= maxRecords || bytes >= maxBytes || lingerMillis == 0) {
            flush();
        } else if (buffer.size() == 1) {
            long scheduled = generation;
            getProcessingTimeService()
                    .registerTimer(
                            getProcessingTimeService().getCurrentProcessingTime() + lingerMillis,
                            time -> {
                                if (generation == scheduled) {
                                    flush();
                                }
                            });
        }
    }

    @Override
    public void prepareSnapshotPreBarrier(long checkpointId) throws Exception {
        super.prepareSnapshotPreBarrier(checkpointId);
        flush();
        marker();
    }

    @Override
    public void endInput() throws Exception {
        flush();
        marker();
    }

    @Override
    public void finish() throws Exception {
        flush();
        marker();
        super.finish();
    }

    private void flush() {
        generation++;
        if (buffer.isEmpty()) {
            return;
        }
        List<T> batch = buffer;
        buffer = new ArrayList<>(Math.min(maxRecords, batch.size() * 2));
        bytes = 0;
        output.collect(new StreamRecord<>(batch));
        if (markerIdleMillis >= 0) {
            markerOwed = true;
            long scheduled = ++batchesOut;
            getProcessingTimeService()
                    .registerTimer(
                            getProcessingTimeService().getCurrentProcessingTime() + markerIdleMillis,
                            time -> {
                                // A record since: its batch comes, and a timer after it.
                                if (batchesOut == scheduled && buffer.isEmpty()) {
                                    marker();
                                }
                            });
        }
    }

    /** Hands on a marker if markers are on and a batch went out since the last one. */
    private void marker() {
        if (markerOwed) {
            markerOwed = false;
            output.collect(new StreamRecord<>(new ArrayList<>()));
        }
    }

    /**
     * An estimate of a record's size in bytes: the lengths of its byte arrays and strings (nested rows, maps and lists
     * included) plus 8 bytes for any other field. Exact enough to keep batches well below the limits of the transport.
     */
    static long sizeOf(Object value) {
        if (value == null) {
            return 1;
        }
        if (value instanceof byte[] array) {
            return array.length + 4;
        }
        if (value instanceof CharSequence text) {
            return text.length() + 4;
        }
        if (value instanceof Row row) {
            long size = 4;
            for (int i = 0; i < row.getArity(); i++) {
                size += sizeOf(row.getField(i));
            }
            return size;
        }
        if (value instanceof Map<?, ?> map) {
            long size = 4;
            for (Map.Entry<?, ?> entry : map.entrySet()) {
                size += sizeOf(entry.getKey()) + sizeOf(entry.getValue());
            }
            return size;
        }
        if (value instanceof List<?> list) {
            long size = 4;
            for (Object item : list) {
                size += sizeOf(item);
            }
            return size;
        }
        return 8;
    }
}
