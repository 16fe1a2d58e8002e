package io.github.kpf.decode;

import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;
import io.github.kpf.batch.RunTotals;
import io.github.kpf.dedup.DedupFunction;

/**
 * The JVM decode stage: each Kafka source row is decoded here ({@link FastDecoder}) into the dedup operator's input
 * row, or, when the record is not for the JVM path, handed to the Python decode stage through the side output {@link
 * #toPython} (the source row and its sequence number).
 *
 * <p>Order: every row gets the next sequence number of its subtask ({@code seq}). Its changes go to the {@link
 * SequencedMerge} of its task (chained after the Python decode stage; both are made with the same token), not to
 * this function's main output, which stays empty; for a row handed to Python the merge gets a marker (a dedup input
 * row with a null key and that sequence number) where the row's change would have been, so that it can put the
 * Python stage's changes back in their place: records of one id keep their Kafka order whichever decoder took them.
 *
 * <p>Counts (run totals {@code decode.<name>}, as the Python stage's): {@code records_in}, {@code decoded} and {@code
 * vectors_accepted@<namespace>} of the records decoded here; the Python stage counts the others.
 */
public class FastDecodeFunction extends ProcessFunction<Row, Row> implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    /** The fields of a row handed to Python: the source table's columns, then the sequence number. */
    public static final String SEQ = "seq";

    private final FastDecoder decoder;
    private final int keyField;
    private final int valueField;
    private final int topicField;
    private final int partitionField;
    private final int offsetField;
    private final int headersField;
    private final int timestampField;
    private final String[] pythonFields;
    private final OutputTag<Row> toPython;
    private final String mergeToken;
    /** The merge of this task, found at the first row (every operator of the task is open by then). */
    private transient SequencedMerge merge;
    private transient long seq;
    private transient RunTotals totals;
    /** The name of each namespace label's count of vectors accepted, made once per label, not per record. */
    private transient Map<String, String> acceptedCounts;

    /**
     * @param sourceFields the source table's columns in order (names: key, value, topic, partition, offset, headers,
     *     timestamp)
     * @param mergeToken the token of the {@link SequencedMerge} in this function's task
     */
    public FastDecodeFunction(FastDecoder decoder, String[] sourceFields, String mergeToken) {
        this.decoder = decoder;
        this.mergeToken = mergeToken;
        List<String> fields = List.of(sourceFields);
        this.keyField = require(fields, "key");
        this.valueField = require(fields, "value");
        this.topicField = require(fields, "topic");
        this.partitionField = require(fields, "partition");
        this.offsetField = require(fields, "offset");
        this.headersField = require(fields, "headers");
        this.timestampField = require(fields, "timestamp");
        this.pythonFields = new String[sourceFields.length + 1];
        System.arraycopy(sourceFields, 0, pythonFields, 0, sourceFields.length);
        pythonFields[sourceFields.length] = SEQ;
        this.toPython = new OutputTag<>("to-python-decode", pythonType(pythonFields));
    }

    private static int require(List<String> fields, String name) {
        int at = fields.indexOf(name);
        if (at < 0) {
            throw new IllegalArgumentException("the source rows have no field " + name + ": " + fields);
        }
        return at;
    }

    /** The type of the rows handed to Python: the source columns (as the Kafka table has them), then {@code seq}. */
    static TypeInformation<Row> pythonType(String[] fields) {
        TypeInformation<?>[] types = new TypeInformation<?>[fields.length];
        for (int i = 0; i < fields.length; i++) {
            switch (fields[i]) {
                case "key":
                case "value":
                    types[i] = PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
                    break;
                case "topic":
                    types[i] = Types.STRING;
                    break;
                case "partition":
                    types[i] = Types.INT;
                    break;
                case "offset":
                case SEQ:
                    types[i] = Types.LONG;
                    break;
                case "headers":
                    types[i] = Types.MAP(Types.STRING, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
                    break;
                case "timestamp":
                    types[i] = Types.INSTANT;
                    break;
                default:
                    throw new IllegalArgumentException("unknown source field " + fields[i]);
            }
        }
        return Types.ROW_NAMED(fields.clone(), types);
    }

    /** The side output of the rows for the Python decode stage. */
    public OutputTag<Row> toPython() {
        return toPython;
    }

    /** The type of the main output (which stays empty): the dedup operator's input rows. */
    public static TypeInformation<Row> outputType() {
        return DedupFunction.inputType();
    }

    /** This stage on {@code source} (rows of the Kafka source table). */
    public static SingleOutputStreamOperator<Row> apply(DataStream<Row> source, FastDecodeFunction function) {
        return source.process(function, outputType());
    }

    @Override
    public void open(OpenContext openContext) {
        seq = 0;
        acceptedCounts = new HashMap<>();
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        totals = RunTotals.restore(context, getRuntimeContext(), "decode", "kpf-totals-decode-jvm");
        totals.declare("records_in", "decoded");
        totals.declarePerNamespace("vectors_accepted");
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        totals.snapshot();
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Row> out) {
        SequencedMerge merge = this.merge;
        if (merge == null) {
            merge = this.merge = findMerge();
        }
        long sequence = seq++;
        FastDecoder.Decoded decoded = null;
        try {
            decoded = decode(row);
        } catch (RuntimeException e) {
            // Not expected; the Python decoder gives such a record its verdict (a change or a dead letter).
            decoded = null;
        }
        if (decoded == null) {
            Row python = new Row(pythonFields.length);
            for (int i = 0; i < pythonFields.length - 1; i++) {
                python.setField(i, row.getField(i));
            }
            python.setField(pythonFields.length - 1, sequence);
            merge.jvm(marker(sequence));
            ctx.output(toPython, python);
            return;
        }
        totals.add("records_in", 1);
        totals.add("decoded", 1);
        totals.add(
                acceptedCounts.computeIfAbsent(
                        decoded.label, label -> "vectors_accepted" + RunTotals.NAMESPACE_SEPARATOR + label),
                1);
        Row change = new Row(DedupFunction.INPUT_FIELDS.length);
        change.setField(DedupFunction.KEY, decoded.key);
        change.setField(DedupFunction.DELETE, false);
        change.setField(DedupFunction.VERSION, decoded.version);
        change.setField(DedupFunction.CONTENT_HASH, decoded.contentHash);
        change.setField(DedupFunction.TEXT_HASH, null);
        change.setField(DedupFunction.PAYLOAD, decoded.payload);
        change.setField(DedupFunction.CHUNKS, 0L);
        change.setField(DedupFunction.SEQ, sequence);
        merge.jvm(change);
    }

    private SequencedMerge findMerge() {
        SequencedMerge found = SequencedMerge.forTask(mergeToken);
        if (found == null) {
            throw new IllegalStateException(
                    "the JVM decode stage found no SequencedMerge in its task: the decode operators must be chained"
                            + " (pipeline.operator-chaining.enabled), or set decode.jvm=false");
        }
        return found;
    }

    /** A marker of the main output: the row with this sequence number went to Python. */
    static Row marker(long sequence) {
        Row marker = new Row(DedupFunction.INPUT_FIELDS.length);
        marker.setField(DedupFunction.DELETE, false);
        marker.setField(DedupFunction.CHUNKS, 0L);
        marker.setField(DedupFunction.SEQ, sequence);
        return marker;
    }

    private FastDecoder.Decoded decode(Row row) {
        String topic = (String) row.getField(topicField);
        if (decoder.label(topic) == null) {
            return null;
        }
        Object time = row.getField(timestampField);
        Long timestampMs = time == null ? null : ((Instant) time).toEpochMilli();
        @SuppressWarnings("unchecked")
        Map<String, byte[]> headerMap = (Map<String, byte[]>) row.getField(headersField);
        List<Map.Entry<String, byte[]>> headers = List.of();
        if (headerMap != null && !headerMap.isEmpty()) {
            headers = new ArrayList<>(headerMap.entrySet());
        }
        return decoder.decode(new SourceRecord(
                topic,
                (Integer) row.getField(partitionField),
                (Long) row.getField(offsetField),
                timestampMs,
                (byte[]) row.getField(keyField),
                (byte[]) row.getField(valueField),
                headers));
    }
}
