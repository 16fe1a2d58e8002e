package io.github.kpf.batch;

import io.github.kpf.RowTypes;
import java.util.List;
import java.util.Map;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ListTypeInfo;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.functions.ProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import org.apache.flink.util.OutputTag;

/**
 * Reads what a Python stage made of one batch and hands it on record by record: the stage's contract on the JVM side.
 *
 * <p>Input: a row of {@link #inputType} (row {@code batch.result} of jvm/contract/rows.txt: {@code records}: list of
 * the stage's output records, {@code dead_letters}: list of raw Kafka rows for the dead-letter topic, {@code counts}:
 * map of count name to count), written in Python by {@code udfs.stage_batch.batch_result}. Output: each record, in
 * order; each dead letter to the side output {@link #deadLetters}; each count added to the operator's {@link
 * RunTotals} (metric counters and accumulators {@code <prefix>.<name>}).
 */
public class BatchResults<R> extends ProcessFunction<Row, R> implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    /** The fields of an input row, in order: row {@code batch.result} of jvm/contract/rows.txt. */
    public static final String[] FIELDS = {"records", "dead_letters", "counts"};

    /** Positions of the input row's fields (in {@link #FIELDS}). */
    public static final int RECORDS = 0;
    public static final int DEAD_LETTERS = 1;
    public static final int COUNTS = 2;

    private final String prefix;
    private final OutputTag<Row> deadLetters;
    private final String[] declared;
    private String[] perNamespace = {};
    private transient RunTotals totals;

    /**
     * @param prefix accumulator prefix: the stage's name ({@code decode}, {@code sink})
     * @param deadLetterType the type of a dead-letter row (the raw Kafka sink row)
     * @param declared counts whose metrics exist from the start (at zero)
     */
    public BatchResults(String prefix, TypeInformation<Row> deadLetterType, String... declared) {
        this.prefix = prefix;
        this.declared = declared.clone();
        this.deadLetters = new OutputTag<>("dead-letters-" + prefix, deadLetterType);
    }

    /**
     * Names of counts that every namespace has: a count {@code <name>@<namespace>} of one of them makes all of them
     * exist for that namespace (at zero), see {@link RunTotals}.
     *
     * @return this function
     */
    public BatchResults<R> withPerNamespaceCounts(String... names) {
        this.perNamespace = names.clone();
        return this;
    }

    /** The type of the rows this function reads, for records of {@code recordType} (see {@link #FIELDS}). */
    public static TypeInformation<Row> inputType(TypeInformation<?> recordType, TypeInformation<Row> deadLetterType) {
        return Types.ROW_NAMED(
                FIELDS.clone(),
                new ListTypeInfo<>(recordType),
                new ListTypeInfo<>(deadLetterType),
                Types.MAP(Types.STRING, Types.LONG));
    }

    /**
     * Refuses a stream of results whose row type is not {@link #inputType} for {@code recordType} (field names, order
     * and types, at every depth: {@link RowTypes#sameSchema}).
     *
     * @throws IllegalArgumentException naming both types
     */
    public static void requireInputType(
            TypeInformation<?> actual, TypeInformation<?> recordType, TypeInformation<Row> deadLetterType) {
        RowTypes.requireInput("BatchResults", "batch.result", inputType(recordType, deadLetterType), actual);
    }

    /** The side output of the dead-letter rows. */
    public OutputTag<Row> deadLetters() {
        return deadLetters;
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        totals = RunTotals.restore(context, getRuntimeContext(), prefix, "kpf-totals-" + prefix);
        totals.declare(declared);
        totals.declarePerNamespace(perNamespace);
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        totals.snapshot();
    }

    @Override
    @SuppressWarnings("unchecked")
    public void processElement(Row result, Context ctx, Collector<R> out) {
        List<R> records = (List<R>) result.getField(RECORDS);
        if (records != null) {
            for (R record : records) {
                out.collect(record);
            }
        }
        List<Row> letters = (List<Row>) result.getField(DEAD_LETTERS);
        if (letters != null) {
            for (Row letter : letters) {
                ctx.output(deadLetters, letter);
            }
        }
        Map<String, Long> counts = (Map<String, Long>) result.getField(COUNTS);
        if (counts != null) {
            for (Map.Entry<String, Long> count : counts.entrySet()) {
                if (count.getValue() != null) {
                    totals.add(count.getKey(), count.getValue());
                }
            }
        }
    }
}
