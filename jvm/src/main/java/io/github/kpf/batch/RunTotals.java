package io.github.kpf.batch;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
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
 *
 * <p>A count named {@code <name>@<namespace>} (the first {@code @} splits) is a count of one Pinecone namespace: its
 * metric counter is {@code <name>} in the key group {@code ("namespace", <namespace>)} (for Prometheus: {@code
 * namespace_<name>} with the label {@code namespace}); its accumulator is {@code <prefix>.<name>@<namespace>}. The
 * names given to {@link #declarePerNamespace} exist for every namespace from the first count of that namespace on (at
 * zero), so a namespace's counts are always there together.
 *
 * <p>Accumulators belong to the task, not to the operator: two chained operators of one task with the same prefix
 * (the JVM decoder and the Python decode stage's results both count {@code decode.*}) add to one accumulator. Each
 * operator keeps its own share in its operator state, so a restore puts back each share once and the task's
 * accumulator again holds their sum.
 */
public final class RunTotals {
    private final String prefix;
    private final RuntimeContext context;
    private final ListState<Tuple2<String, Long>> state;
    /** This operator's share of each count (what its state holds). */
    private final Map<String, long[]> totals = new HashMap<>();
    /** The task's accumulator of each count, which other operators of the task with the same prefix add to too. */
    private final Map<String, LongCounter> accumulators = new HashMap<>();
    private final Map<String, Counter> metrics = new HashMap<>();
    private final Set<String> namespaces = new HashSet<>();
    private String[] perNamespace = {};

    /** Separates a count's name from its namespace: {@code <name>@<namespace>}. */
    public static final String NAMESPACE_SEPARATOR = "@";

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
                totals.counter(entry.f0, entry.f1);
            }
        }
        return totals;
    }

    /** Registers the named counts now (at zero), so that their metrics exist before the first record. */
    public void declare(String... names) {
        for (String name : names) {
            counter(name, 0);
            metric(name);
        }
    }

    /**
     * Names of counts that every namespace has ({@code <name>@<namespace>}): registered at zero (with the namespace's
     * other such counts) when the namespace is first counted, or restored. Call before the first {@link #add}.
     */
    public void declarePerNamespace(String... names) {
        perNamespace = names.clone();
        for (String name : new ArrayList<>(totals.keySet())) {
            namespaceCounts(name);
        }
    }

    /** Adds {@code count} to the named total (and its metric counter). */
    public void add(String name, long count) {
        if (count == 0) {
            return;
        }
        namespaceCounts(name);
        counter(name, count);
        metric(name).inc(count);
    }

    /** For a count {@code <name>@<namespace>} of a namespace not seen before: its per-namespace counts, at zero. */
    private void namespaceCounts(String name) {
        int at = name.indexOf(NAMESPACE_SEPARATOR);
        if (at < 0) {
            return;
        }
        String namespace = name.substring(at + 1);
        if (namespaces.add(namespace)) {
            for (String each : perNamespace) {
                declare(each + NAMESPACE_SEPARATOR + namespace);
            }
            declare(name);
        }
    }

    /** Writes the totals into the operator state for a checkpoint. */
    public void snapshot() throws Exception {
        state.clear();
        for (Map.Entry<String, long[]> entry : totals.entrySet()) {
            state.add(Tuple2.of(entry.getKey(), entry.getValue()[0]));
        }
    }

    private Counter metric(String name) {
        Counter metric = metrics.get(name);
        if (metric == null) {
            int at = name.indexOf(NAMESPACE_SEPARATOR);
            metric =
                    at < 0
                            ? context.getMetricGroup().counter(name)
                            : context.getMetricGroup()
                                    .addGroup("namespace", name.substring(at + 1))
                                    .counter(name.substring(0, at));
            metrics.put(name, metric);
        }
        return metric;
    }

    /** Adds {@code count} to this operator's share of the named count and to the task's accumulator of it. */
    private void counter(String name, long count) {
        long[] share = totals.get(name);
        if (share == null) {
            share = new long[1];
            totals.put(name, share);
            // Finds the task's accumulator of this name when another operator of the task made it, else makes it.
            accumulators.put(name, context.getLongCounter(prefix + "." + name));
        }
        share[0] += count;
        accumulators.get(name).add(count);
    }
}
