package io.github.kpf.decode;

import java.util.ArrayDeque;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.functions.co.CoProcessFunction;
import org.apache.flink.types.Row;
import org.apache.flink.util.Collector;
import io.github.kpf.dedup.DedupFunction;

/**
 * Puts the changes of the two decoders back in their records' order before the keyed dedup operator, so that the
 * changes of one id reach it in Kafka order whichever decoder took each record (version fencing alone could not
 * order unversioned changes).
 *
 * <p>Input 1: the main output of {@link FastDecodeFunction} of the same subtask (forward): changes it decoded and
 * markers (null key) of the rows it handed to Python, each with its sequence number, in order. Input 2: the changes
 * of the Python decode stage for those rows, each with its row's sequence number, in order, plus a marker (null key)
 * after each group, whose sequence number is the group's last: every row up to it is decoded (a dead letter or a
 * skip makes no change). A change is handed on once every row before it has been: a JVM change waits for the Python
 * verdicts of the rows before it, a Python change for the JVM changes before it. Most records pass straight through:
 * nothing waits while no row is with Python.
 *
 * <p>Checkpoints: nothing waits when a barrier passes, because the Python stage answers every group before it
 * forwards the barrier (its batcher flushes before the barrier) and this operator aligns its two inputs' barriers.
 * So the operator has no state. Unaligned checkpoints would break that; {@link #snapshotState} refuses a checkpoint
 * that finds a change waiting rather than lose it, and the job does not use this path when they are enabled.
 */
public class SequencedMerge extends CoProcessFunction<Row, Row, Row> implements CheckpointedFunction {
    private static final long serialVersionUID = 1L;

    /** Input 1 in order, from the first entry that waits: JVM changes and markers of rows with Python. */
    private transient ArrayDeque<Row> jvm;
    /** Python changes that wait for input 1 to reach their place. */
    private transient ArrayDeque<Row> python;
    /** Every row handed to Python up to this sequence number has been answered. */
    private transient long answered;

    /** The merge of {@code jvm} and {@code python} (see the class doc); both must have the same parallelism. */
    public static SingleOutputStreamOperator<Row> apply(DataStream<Row> jvm, DataStream<Row> python) {
        return jvm.forward()
                .connect(python.forward())
                .process(new SequencedMerge(), FastDecodeFunction.outputType());
    }

    @Override
    public void initializeState(FunctionInitializationContext context) {
        jvm = new ArrayDeque<>();
        python = new ArrayDeque<>();
        answered = -1;
    }

    @Override
    public void snapshotState(FunctionSnapshotContext context) {
        if (!jvm.isEmpty() || !python.isEmpty()) {
            throw new IllegalStateException(
                    "decoded changes were waiting for their order when a checkpoint barrier passed ("
                            + jvm.size()
                            + " from the JVM decoder, "
                            + python.size()
                            + " from Python); the JVM decode path needs aligned checkpoints");
        }
    }

    private static long seqOf(Row row) {
        return (Long) row.getField(DedupFunction.SEQ);
    }

    private static boolean isMarker(Row row) {
        return row.getField(DedupFunction.KEY) == null;
    }

    @Override
    public void processElement1(Row row, Context ctx, Collector<Row> out) {
        if (jvm.isEmpty() && !isMarker(row)) {
            out.collect(row);
            return;
        }
        jvm.addLast(row);
        drain(out);
    }

    @Override
    public void processElement2(Row row, Context ctx, Collector<Row> out) {
        answered = Math.max(answered, seqOf(row));
        if (!isMarker(row)) {
            python.addLast(row);
        }
        drain(out);
    }

    private void drain(Collector<Row> out) {
        while (!jvm.isEmpty()) {
            Row head = jvm.peekFirst();
            if (!isMarker(head)) {
                out.collect(jvm.pollFirst());
                continue;
            }
            long seq = seqOf(head);
            if (answered < seq) {
                return; // Python has not answered this row yet
            }
            while (!python.isEmpty() && seqOf(python.peekFirst()) <= seq) {
                out.collect(python.pollFirst());
            }
            jvm.pollFirst();
        }
    }
}
