package io.github.kpf;

import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.ListTypeInfo;
import org.apache.flink.api.java.typeutils.MapTypeInfo;
import org.apache.flink.api.java.typeutils.RowTypeInfo;

/**
 * Checks of the row types that cross between the job's Python stages and its JVM operators (jvm/contract/rows.txt).
 *
 * <p>Flink hands a row across by position, so a row written to another layout than the operator reads would be read
 * wrongly, field by field, without any error. {@link RowTypeInfo#equals} ignores field names, and {@link
 * RowTypeInfo#schemaEquals} compares them only at the top level: {@link #sameSchema} compares names, order and types
 * at every depth.
 */
public final class RowTypes {
    private RowTypes() {}

    /** Whether two types are the same, field names of rows at any depth included. */
    public static boolean sameSchema(TypeInformation<?> a, TypeInformation<?> b) {
        if (a instanceof RowTypeInfo rowA && b instanceof RowTypeInfo rowB) {
            if (rowA.getArity() != rowB.getArity()) {
                return false;
            }
            for (int i = 0; i < rowA.getArity(); i++) {
                if (!rowA.getFieldNames()[i].equals(rowB.getFieldNames()[i])
                        || !sameSchema(rowA.getTypeAt(i), rowB.getTypeAt(i))) {
                    return false;
                }
            }
            return true;
        }
        if (a instanceof ListTypeInfo<?> listA && b instanceof ListTypeInfo<?> listB) {
            return sameSchema(listA.getElementTypeInfo(), listB.getElementTypeInfo());
        }
        if (a instanceof MapTypeInfo<?, ?> mapA && b instanceof MapTypeInfo<?, ?> mapB) {
            return sameSchema(mapA.getKeyTypeInfo(), mapB.getKeyTypeInfo())
                    && sameSchema(mapA.getValueTypeInfo(), mapB.getValueTypeInfo());
        }
        return a != null && a.equals(b);
    }

    /**
     * Refuses an operator's input whose type is not {@code expected} ({@link #sameSchema}).
     *
     * @param contractRow the row's name in jvm/contract/rows.txt, for the message
     * @throws IllegalArgumentException naming both types
     */
    public static void requireInput(
            String operator, String contractRow, TypeInformation<?> expected, TypeInformation<?> actual) {
        if (!sameSchema(expected, actual)) {
            throw new IllegalArgumentException(
                    operator
                            + " reads rows of "
                            + expected
                            + " (jvm/contract/rows.txt, "
                            + contractRow
                            + "), but its input is "
                            + actual);
        }
    }
}
