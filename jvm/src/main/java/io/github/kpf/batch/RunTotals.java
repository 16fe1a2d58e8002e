package io.github.kpf.batch;

import java.util.HashMap;
import java.util.Map;
import org.apache.flink.api.common.accumulators.LongCounter;
import org.apache.flink.api.common.functions.RuntimeContext;
import org.apache.flink.api.common.state.ListState;
import org.apache.flink.api.common.state.ListStateDescriptor;
import org.apache.flink.api.common.typeinfo.TypeHint;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.tuple.Tuple2;
import org.apache.flink.metrics.Counter;
import org.apache.flink.runtime.state.FunctionInitializationContext;

/**
 * Named counts of one operator that add up over the whole logical run, restarts included, for the closing summary
 * of a bounded run.
 *
 * <p>Each count is a Flink metric counter (operator scope, for the Web UI and reporters) and an accumulator named
 * {@code <prefix>.<name>}, which the job's driver reads from the job's result after it ends. Accumulators of a task
 * start at zero on every restart, so the totals are kept in operator state too: a restored task starts its
 * accumulators at the totals of the checkpoint it restores, and records replayed after the checkpoint are counted
 * once more from there. The final accumulators therefore count each record once, as the run without a crash would.
 */
public final class RunTotals {
    private final String prefix;
    private final RuntimeContext context;
    private final ListState<Tuple2<String, Long>> state;
    private final Map<String, LongCounter> totals = new HashMap<>();
    private final Map<String, Counter> metrics = new HashMap<>();

    private RunTotals(String prefix, RuntimeContext context, ListState<Tuple2<String, Long>> state) {
        this.prefix = prefix;
        this.context = context;
        this.state = state;
    }

    /**
     * The totals of an operator, restored from its operator state (list state {@code stateName}, redistributed
     * evenly on rescaling: the sums over all subtasks stay the same).
     */
    public static RunTotals restore(
            FunctionInitializationContext initialization, RuntimeContext context, String prefix, String stateName)
            throws Exception {
        ListState<Tuple2<String, Long>> state =
                initialization
                        .getOperatorStateStore()
                        .getListState(
                                new ListStateDescriptor<>(
                                        stateName, TypeInformation.of(new TypeHint<Tuple2<String, Long>>() {})));
        RunTotals totals = new RunTotals(prefix, context, state);
        if (initialization.isRestored()) {
            for (Tuple2<String, Long> entry : state.get()) {
                totals.counter(entry.f0).add(entry.f1);
            }
        }
        return totals;
    }

    /** Registers the named counts now (at zero), so that their metrics exist before the first record. */
    public void declare(String... names) {
        for (String name : names) {
            counter(name);
            metric(name);
        }
    }

    /** Adds {@code count} to the named total (and its metric counter). */
    public void add(String name, long count) {
        if (count == 0) {
            return;
        }
        counter(name).add(count);
        metric(name).inc(count);
    }

    /** Writes the totals into the operator state for a checkpoint. */
    public void snapshot() throws Exception {
        state.clear();
        for (Map.Entry<String, LongCounter> entry : totals.entrySet()) {
            state.add(Tuple2.of(entry.getKey(), entry.getValue().getLocalValue()));
        }
    }

    private Counter metric(String name) {
        Counter metric = metrics.get(name);
        if (metric == null) {
            metric = context.getMetricGroup().counter(name);
            metrics.put(name, metric);
        }
        return metric;
    }

    private LongCounter counter(String name) {
        LongCounter counter = totals.get(name);
        if (counter == null) {
            counter = new LongCounter();
            context.addAccumulator(prefix + "." + name, counter);
            totals.put(name, counter);
        }
        return counter;
    }
}
