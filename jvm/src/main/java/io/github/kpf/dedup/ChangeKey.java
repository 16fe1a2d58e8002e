package io.github.kpf.dedup;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.functions.KeySelector;
import org.apache.flink.api.java.typeutils.ResultTypeQueryable;
import org.apache.flink.types.Row;

/**
 * Keys a dedup input row by its {@code key} field ({@link DedupFunction#KEY}): the record's namespace and id ({@code
 * udfs.records.Change.key}).
 */
public class ChangeKey implements KeySelector<Row, String>, ResultTypeQueryable<String> {
    private static final long serialVersionUID = 1L;

    @Override
    public String getKey(Row row) {
        return (String) row.getField(DedupFunction.KEY);
    }

    @Override
    public TypeInformation<String> getProducedType() {
        return Types.STRING;
    }
}
