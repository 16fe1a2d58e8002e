package io.github.kpf.decode;

import java.util.ArrayDeque;
import java.util.HashMap;
import java.util.Map;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.StateSnapshotContext;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.datastream.SingleOutputStreamOperator;
import org.apache.flink.streaming.api.operators.AbstractStreamOperator;
import org.apache.flink.streaming.api.operators.OneInputStreamOperator;
import org.apache.flink.streaming.runtime.streamrecord.StreamRecord;
import org.apache.flink.types.Row;
import io.github.kpf.dedup.DedupFunction;

/**
 * Puts the changes of the two decoders back in their records' order before the keyed dedup operator, so that the
 * changes of one id reach it in Kafka order whichever decoder took each record (version fencing alone could not
 * order unversioned changes).
 *
 * <p>It runs in the source's task, chained after the Python decode stage, and has two inputs there. Its stream input:
 * the changes of the Python decode stage for the rows {@link FastDecodeFunction} handed it, each with its row's
 * sequence number, in order, plus a marker (null key) after each group, whose sequence number is the group's last:
 * every row up to it is decoded (a dead letter or a skip makes no change). Its other input, {@link #jvm}: the changes
 * {@link FastDecodeFunction} of the same task decoded and its markers of the rows it handed to Python, each with its
 * sequence number, in order; the decode function calls it directly, from the same thread, instead of sending its
 * changes through a network exchange and a task of their own to an operator with two inputs (that exchange cost (a)
 * of the benchmark a tenth of its CPU; BENCHMARKS.md). The two find each other by a token the job gives both
 * ({@link #forTask}); the job uses this path only with operator chaining on, and the decode function refuses to run
 * without its merge in its task.
 *
 * <p>A change is handed on once every row before it has been: a JVM change waits for the Python verdicts of the rows
 * before it, a Python change for the JVM changes before it. Most records pass straight through: nothing waits while
 * no row is with Python.
 *
 * <p>Checkpoints: nothing waits when a barrier passes, because the batcher before the Python stage flushes before the
 * barrier and the Python stage answers the whole group before it, all in this task ahead of this operator. So the
 * operator has no state. The job leaves this path off with unaligned checkpoints; {@link #snapshotState} refuses a
 * checkpoint that finds a change waiting rather than lose it.
 */
public class SequencedMerge extends AbstractStreamOperator<Row> implements OneInputStreamOperator<Row, Row> {
    private static final long serialVersionUID = 1L;

    /** The merges open in this thread (a task's operators all run in its one thread), by token. */
    private static final ThreadLocal<Map<String, SequencedMerge>> OPEN = ThreadLocal.withInitial(HashMap::new);

    private final String token;
    /** The JVM decoder's changes and markers in order, from the first entry that waits. */
    private transient ArrayDeque<Row> jvm;
    /** Python changes that wait for the JVM decoder's input to reach their place. */
    private transient ArrayDeque<Row> python;
    /** Every row handed to Python up to this sequence number has been answered. */
    private transient long answered;
    /**
     * The operator's records-in count (Flink counts the Python decoder's changes and markers as they come in on its
     * stream input); the JVM decoder's changes, which come by {@link #jvm}, are counted here, so that the Web UI shows
     * every change that passes.
     */
    private transient Counter recordsIn;

    /** @param token what pairs this merge with the {@link FastDecodeFunction} of its task (same token) */
    public SequencedMerge(String token) {
        this.token = token;
    }

    /**
     * The merge after {@code python} (the Python decode stage's changes, in the task of the {@link
     * FastDecodeFunction} made with {@code token}).
     */
    public static SingleOutputStreamOperator<Row> apply(DataStream<Row> python, String token) {
        return python.forward().transform("Decode order", FastDecodeFunction.outputType(), new SequencedMerge(token));
    }

    /** The merge with {@code token} open in the calling thread's task, or null when there is none. */
    static SequencedMerge forTask(String token) {
        return OPEN.get().get(token);
    }

    @Override
    public void open() throws Exception {
        super.open();
        jvm = new ArrayDeque<>();
        python = new ArrayDeque<>();
        answered = -1;
        recordsIn = getMetricGroup().getIOMetricGroup().getNumRecordsInCounter();
        OPEN.get().put(token, this);
    }

    @Override
    public void close() throws Exception {
        OPEN.get().remove(token, this);
        super.close();
    }

    @Override
    public void snapshotState(StateSnapshotContext context) throws Exception {
        if (!jvm.isEmpty() || !python.isEmpty()) {
            throw new IllegalStateException(
                    "decoded changes were waiting for their order when a checkpoint barrier passed ("
                            + jvm.size()
                            + " from the JVM decoder, "
                            + python.size()
                            + " from Python)");
        }
        super.snapshotState(context);
    }

    private static long seqOf(Row row) {
        return (Long) row.getField(DedupFunction.SEQ);
    }

    private static boolean isMarker(Row row) {
        return row.getField(DedupFunction.KEY) == null;
    }

    private void emit(Row row) {
        output.collect(new StreamRecord<>(row));
    }

    /** A change of the JVM decoder, or its marker of a row it handed to Python; in the order of their rows. */
    void jvm(Row row) {
        boolean marker = isMarker(row);
        if (!marker) {
            recordsIn.inc();
        }
        if (jvm.isEmpty() && !marker) {
            emit(row);
            return;
        }
        jvm.addLast(row);
        drain();
    }

    /** A change of the Python decode stage, or the marker after its group. */
    @Override
    public void processElement(StreamRecord<Row> element) {
        Row row = element.getValue();
        answered = Math.max(answered, seqOf(row));
        if (!isMarker(row)) {
            python.addLast(row);
        }
        drain();
    }

    private void drain() {
        while (!jvm.isEmpty()) {
            Row head = jvm.peekFirst();
            if (!isMarker(head)) {
                emit(jvm.pollFirst());
                continue;
            }
            long seq = seqOf(head);
            if (answered < seq) {
                return; // Python has not answered this row yet
            }
            while (!python.isEmpty() && seqOf(python.peekFirst()) <= seq) {
                emit(python.pollFirst());
            }
            jvm.pollFirst();
        }
    }
}
