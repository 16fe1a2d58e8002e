package io.github.kpf.dedup;

import java.time.Duration;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.StateTtlConfig;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.configuration.JobManagerOptions;
import org.apache.flink.configuration.ReadableConfig;
import org.apache.flink.configuration.SchedulerExecutionMode;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.DataStreamUtils;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import io.github.kpf.RowTypes;
import io.github.kpf.batch.RunTotals;

/**
 * The job's keyed dedup stage, on JVM keyed state: one state read and at most one write per change, in the task
 * thread, instead of a request from the Python worker to the JVM for every record the Python cache has not seen.
 *
 * <p>Input: rows of {@link #inputType} (row {@code dedup.input} of jvm/contract/rows.txt), written by the Python
 * decode stage ({@code udfs.dedup.dedup_row}): key, delete, version, content hash, text hash, payload (the pickled
 * {@code udfs.records.Change}), chunks (how many chunks the change writes, 0 when not chunked). Output: rows of {@link #outputType} (row {@code dedup.output}), read by {@code
 * udfs.dedup.applied_change}: for each change to apply, the payload, whether the change replaces a live record and
 * how many chunks that record's live version wrote (so that the surplus ones can be deleted).
 * The payload is never looked at here. The rules are those of {@link Dedup}.
 *
 * <p>Counts ({@link RunTotals}: operator-scope metric counters and run-total accumulators {@code dedup.<name>}):
 * {@code records_in}, {@code skipped_unchanged}, {@code skipped_stale}, {@code text_unchanged}.
 */
public class DedupFunction extends KeyedProcessFunction<String, Row, Row> implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    /** Name of the keyed value state; part of savepoint compatibility, never rename. */
    public static final String STATE_NAME = "dedup";

    /** The fields of an input row, in order: row {@code dedup.input} of jvm/contract/rows.txt. */
    public static final String[] INPUT_FIELDS = {
        "key", "delete", "version", "content_hash", "text_hash", "payload", "chunks", "seq"
    };

    /** Positions of the input row's fields (in {@link #INPUT_FIELDS}). */
    public static final int KEY = 0;
    public static final int DELETE = 1;
    public static final int VERSION = 2;
    public static final int CONTENT_HASH = 3;
    public static final int TEXT_HASH = 4;
    public static final int PAYLOAD = 5;
    public static final int CHUNKS = 6;
    /**
     * The change's record's sequence number in its JVM decode subtask ({@code io.github.kpf.decode}), which puts the
     * changes of the JVM and the Python decoder back in order before this operator; null without the JVM decode
     * path. Not read here.
     */
    public static final int SEQ = 7;

    /** The fields of an output row, in order: row {@code dedup.output} of jvm/contract/rows.txt. */
    public static final String[] OUTPUT_FIELDS = {"payload", "replaces", "previous_chunks"};

    /** Positions of the output row's fields (in {@link #OUTPUT_FIELDS}). */
    public static final int OUT_PAYLOAD = 0;
    public static final int OUT_REPLACES = 1;
    public static final int OUT_PREVIOUS_CHUNKS = 2;

    private final long ttlMillis;
    private final boolean inInputTask;
    private transient ValueState<DedupState> state;
    private transient RunTotals totals;

    /**
     * @param ttlMillis state expiry in milliseconds, counted from the last write (expired state is never read); 0
     *     keeps state forever
     */
    public DedupFunction(long ttlMillis) {
        this(ttlMillis, false);
    }

    /**
     * @param ttlMillis state expiry in milliseconds, counted from the last write (expired state is never read); 0
     *     keeps state forever
     * @param inInputTask whether this function runs keyed without a keyed exchange before it ({@link #apply} with
     *     {@code inInputTask}): then it refuses to open at a parallelism above 1, where its input would hold ids of
     *     other subtasks' key groups
     */
    public DedupFunction(long ttlMillis, boolean inInputTask) {
        if (ttlMillis < 0) {
            throw new IllegalArgumentException("ttlMillis must be >= 0, got " + ttlMillis);
        }
        this.ttlMillis = ttlMillis;
        this.inInputTask = inInputTask;
    }

    /** The type of the rows this function reads (see {@link #INPUT_FIELDS}). */
    public static TypeInformation<Row> inputType() {
        TypeInformation<byte[]> bytes = PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
        return Types.ROW_NAMED(
                INPUT_FIELDS.clone(),
                Types.STRING,
                Types.BOOLEAN,
                Types.STRING,
                bytes,
                bytes,
                bytes,
                Types.LONG,
                Types.LONG);
    }

    /** The type of the rows this function emits: payload, replaces, previous chunks (see {@link #OUTPUT_FIELDS}). */
    public static TypeInformation<Row> outputType() {
        return Types.ROW_NAMED(
                OUTPUT_FIELDS.clone(),
                PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO,
                Types.BOOLEAN,
                Types.LONG);
    }

    /**
     * The keyed dedup stage on {@code input}: keyed by {@link ChangeKey}, this function with a state TTL of {@code
     * ttlMillis}. Refuses an input whose row type is not {@link #inputType} (names, order and types): a row written
     * to another layout would be read wrongly, field by field, without any error.
     */
    public static SingleOutputStreamOperator<Row> apply(DataStream<Row> input, long ttlMillis) {
        return apply(input, ttlMillis, false);
    }

    /**
     * The keyed dedup stage on {@code input}, as {@link #apply(DataStream, long)}; with {@code inInputTask}, keyed
     * in place instead of through a keyed exchange ({@link DataStreamUtils#reinterpretAsKeyedStream}), so that Flink
     * chains it into its input's task: no serialization, exchange and task loop per change. That is correct only
     * while a single subtask holds every key group, so it needs an {@code input} of parallelism 1, and the operator
     * is pinned to it; the keyed state is the same either way (same uid, key, key groups and state), so a savepoint
     * of one shape restores into the other. See {@link #canRunInInputTask} for when a job may ask for it.
     */
    public static SingleOutputStreamOperator<Row> apply(DataStream<Row> input, long ttlMillis, boolean inInputTask) {
        RowTypes.requireInput("the dedup operator", "dedup.input", inputType(), input.getType());
        if (!inInputTask) {
            return input.keyBy(new ChangeKey()).process(new DedupFunction(ttlMillis), outputType());
        }
        if (input.getParallelism() != 1) {
            throw new IllegalArgumentException(
                    "the dedup operator can run in its input's task only at parallelism 1, and its input has "
                            + "parallelism "
                            + input.getParallelism());
        }
        return DataStreamUtils.reinterpretAsKeyedStream(input, new ChangeKey())
                .process(new DedupFunction(ttlMillis, true), outputType())
                .setParallelism(1);
    }

    /**
     * Whether a job on {@code env} may run its dedup in its input's task ({@link #apply(DataStream, long, boolean)}):
     * when its parallelism is 1 and nothing will rescale it while it runs. The adaptive scheduler may (reactive mode
     * does on its own; otherwise the REST API's rescaling does), so not with {@code jobmanager.scheduler: adaptive}
     * or {@code scheduler-mode: reactive} in the job's configuration. A rescale through a savepoint builds the job
     * again, and asks again.
     */
    public static boolean canRunInInputTask(StreamExecutionEnvironment env) {
        ReadableConfig config = env.getConfiguration();
        return env.getParallelism() == 1
                && config.get(JobManagerOptions.SCHEDULER) != JobManagerOptions.SchedulerType.Adaptive
                && config.getOptional(JobManagerOptions.SCHEDULER_MODE).orElse(null)
                        != SchedulerExecutionMode.REACTIVE;
    }

    /**
     * The keyed state's descriptor: a POJO value state; with a TTL, expiry counts from the last write and expired
     * state is never returned (a tombstone then stops fencing, as the option's documentation says).
     */
    public static ValueStateDescriptor<DedupState> stateDescriptor(long ttlMillis) {
        ValueStateDescriptor<DedupState> descriptor =
                new ValueStateDescriptor<>(STATE_NAME, TypeInformation.of(DedupState.class));
        if (ttlMillis > 0) {
            descriptor.enableTimeToLive(
                    StateTtlConfig.newBuilder(Duration.ofMillis(ttlMillis))
                            .setUpdateType(StateTtlConfig.UpdateType.OnCreateAndWrite)
                            .setStateVisibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
                            .build());
        }
        return descriptor;
    }

    @Override
    public void open(OpenContext openContext) {
        int parallelism = getRuntimeContext().getTaskInfo().getNumberOfParallelSubtasks();
        if (inInputTask && parallelism != 1) {
            throw new IllegalStateException(
                    "the dedup operator was built to run in its input's task, which is correct only at parallelism "
                            + "1, and it now runs at parallelism "
                            + parallelism
                            + " (rescaled while it runs, by the adaptive scheduler?): start the job again from its "
                            + "last checkpoint or savepoint with the parallelism you want, or with "
                            + "--dedup.in-source-task=false to rescale it while it runs");
        }
        state = getRuntimeContext().getState(stateDescriptor(ttlMillis));
    }

    @Override
    public void initializeState(FunctionInitializationContext context) throws Exception {
        totals = RunTotals.restore(context, getRuntimeContext(), "dedup", "kpf-totals-dedup");
        totals.declare("records_in", "skipped_unchanged", "skipped_stale", "text_unchanged");
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) throws Exception {
        totals.snapshot();
    }

    @Override
    public void processElement(Row row, Context ctx, Collector<Row> out) throws Exception {
        totals.add("records_in", 1);
        Dedup.Decision decision =
                Dedup.decide(
                        state.value(),
                        Boolean.TRUE.equals(row.getField(DELETE)),
                        (String) row.getField(VERSION),
                        (byte[]) row.getField(CONTENT_HASH),
                        (byte[]) row.getField(TEXT_HASH),
                        chunksOf(row));
        if (decision.state != null) {
            state.update(decision.state);
        }
        switch (decision.action) {
            case Dedup.EMIT:
                if (decision.textUnchanged) {
                    totals.add("text_unchanged", 1);
                }
                Row applied = new Row(OUTPUT_FIELDS.length);
                applied.setField(OUT_PAYLOAD, row.getField(PAYLOAD));
                applied.setField(OUT_REPLACES, decision.replaces);
                applied.setField(OUT_PREVIOUS_CHUNKS, (long) decision.previousChunks);
                out.collect(applied);
                break;
            case Dedup.SKIP_UNCHANGED:
                totals.add("skipped_unchanged", 1);
                break;
            default:
                totals.add("skipped_stale", 1);
        }
    }

    private static int chunksOf(Row row) {
        Object chunks = row.getArity() > CHUNKS ? row.getField(CHUNKS) : null;
        return chunks == null ? 0 : Math.toIntExact(((Number) chunks).longValue());
    }
}
