package io.github.kpf;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kpf.batch.BatchResults;
import io.github.kpf.dedup.DedupFunction;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ListTypeInfo;
import org.apache.flink.api.java.typeutils.MapTypeInfo;
import org.apache.flink.api.java.typeutils.RowTypeInfo;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The Java side of the rows that cross between the Python stages and the JVM operators, checked against
 * jvm/contract/rows.txt; tests/unit/test_jvm_contract.py checks the Python side against the same file.
 */
class RowContractTest {
    /** Stands for a stage's record type ({@code RECORD} in the contract). */
    private static final TypeInformation<Row> RECORD = Types.ROW_NAMED(new String[] {"a_record"}, Types.STRING);

    private static final Pattern ROW_NAME = Pattern.compile("[a-z][a-z0-9_]*(?:\\.[a-z0-9_]+)+");

    private static Map<String, List<String[]>> rows;

    @BeforeAll
    static void readContract() throws IOException {
        Path path = Path.of(System.getProperty("kpf.contract", "contract/rows.txt"));
        rows = parse(Files.readString(path, StandardCharsets.UTF_8));
    }

    /** The contract's rows: row name to its fields ({name, type text}), in field order. */
    static Map<String, List<String[]>> parse(String text) {
        Map<String, List<String[]>> parsed = new LinkedHashMap<>();
        for (String line : text.split("\n")) {
            String content = line.split("#", 2)[0].trim();
            if (content.isEmpty()) {
                continue;
            }
            String[] parts = content.split("\\s+");
            assertEquals(3, parts.length, "a contract line is: row field type, got: " + line);
            parsed.computeIfAbsent(parts[0], k -> new ArrayList<>()).add(new String[] {parts[1], parts[2]});
        }
        return parsed;
    }

    /** A contract type with the rows it names written out as {@code ROW<field type,...>}. */
    static String expand(String type, Map<String, List<String[]>> rows) {
        Matcher matcher = ROW_NAME.matcher(type);
        StringBuilder out = new StringBuilder();
        while (matcher.find()) {
            List<String[]> fields = rows.get(matcher.group());
            if (fields == null) {
                throw new AssertionError("the contract names no row " + matcher.group());
            }
            List<String> written = new ArrayList<>();
            for (String[] field : fields) {
                written.add(field[0] + " " + expand(field[1], rows));
            }
            matcher.appendReplacement(out, Matcher.quoteReplacement("ROW<" + String.join(",", written) + ">"));
        }
        matcher.appendTail(out);
        return out.toString();
    }

    /** A Flink type in the contract's notation (rows written out). */
    static String render(TypeInformation<?> type) {
        if (type == RECORD) {
            return "RECORD";
        }
        if (type instanceof RowTypeInfo row) {
            List<String> written = new ArrayList<>();
            for (int i = 0; i < row.getArity(); i++) {
                written.add(row.getFieldNames()[i] + " " + render(row.getTypeAt(i)));
            }
            return "ROW<" + String.join(",", written) + ">";
        }
        if (type instanceof ListTypeInfo<?> list) {
            return "LIST<" + render(list.getElementTypeInfo()) + ">";
        }
        if (type instanceof MapTypeInfo<?, ?> map) {
            return "MAP<" + render(map.getKeyTypeInfo()) + "," + render(map.getValueTypeInfo()) + ">";
        }
        if (type.equals(PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO)) {
            return "BYTES";
        }
        if (type.equals(Types.STRING)) {
            return "STRING";
        }
        if (type.equals(Types.BOOLEAN)) {
            return "BOOLEAN";
        }
        if (type.equals(Types.LONG)) {
            return "LONG";
        }
        throw new AssertionError("no contract notation for " + type);
    }

    private static List<String> fieldNames(String row) {
        List<String> names = new ArrayList<>();
        for (String[] field : rows.get(row)) {
            names.add(field[0]);
        }
        return names;
    }

    /** A contract row as a Flink type (only the notation's plain types and rows; for a type the Java side lacks). */
    @SuppressWarnings("unchecked")
    private static TypeInformation<Row> build(String row) {
        List<String[]> fields = rows.get(row);
        String[] names = new String[fields.size()];
        TypeInformation<?>[] types = new TypeInformation<?>[fields.size()];
        for (int i = 0; i < names.length; i++) {
            names[i] = fields.get(i)[0];
            types[i] =
                    switch (fields.get(i)[1]) {
                        case "BYTES" -> PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
                        case "MAP<STRING,BYTES>" ->
                                Types.MAP(Types.STRING, PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO);
                        default -> throw new AssertionError("unsupported here: " + fields.get(i)[1]);
                    };
        }
        return (TypeInformation<Row>) (TypeInformation<?>) Types.ROW_NAMED(names, types);
    }

    @Test
    void theContractParsesAndRendersTypesAsWritten() {
        Map<String, List<String[]>> sample =
                parse("a.b  x  BYTES\na.b  y  MAP<STRING,LONG>  # note\nc.d  z  LIST<a.b>\n");
        assertEquals("ROW<z LIST<ROW<x BYTES,y MAP<STRING,LONG>>>>", expand("c.d", sample));
        assertEquals(
                "ROW<x LONG,y LIST<RECORD>>",
                render(Types.ROW_NAMED(new String[] {"x", "y"}, Types.LONG, new ListTypeInfo<>(RECORD))));
        assertThrows(AssertionError.class, () -> render(Types.INT));
    }

    @Test
    void theDedupInputRowIsTheContracts() {
        assertEquals(fieldNames("dedup.input"), Arrays.asList(DedupFunction.INPUT_FIELDS));
        assertEquals(expand("dedup.input", rows), render(DedupFunction.inputType()));
        List<String> names = fieldNames("dedup.input");
        assertEquals(names.indexOf("key"), DedupFunction.KEY);
        assertEquals(names.indexOf("delete"), DedupFunction.DELETE);
        assertEquals(names.indexOf("version"), DedupFunction.VERSION);
        assertEquals(names.indexOf("content_hash"), DedupFunction.CONTENT_HASH);
        assertEquals(names.indexOf("text_hash"), DedupFunction.TEXT_HASH);
        assertEquals(names.indexOf("payload"), DedupFunction.PAYLOAD);
        assertEquals(names.indexOf("chunks"), DedupFunction.CHUNKS);
    }

    @Test
    void theDedupOutputRowIsTheContracts() {
        assertEquals(fieldNames("dedup.output"), Arrays.asList(DedupFunction.OUTPUT_FIELDS));
        assertEquals(expand("dedup.output", rows), render(DedupFunction.outputType()));
        List<String> names = fieldNames("dedup.output");
        assertEquals(names.indexOf("payload"), DedupFunction.OUT_PAYLOAD);
        assertEquals(names.indexOf("replaces"), DedupFunction.OUT_REPLACES);
        assertEquals(names.indexOf("previous_chunks"), DedupFunction.OUT_PREVIOUS_CHUNKS);
    }

    @Test
    void theBatchResultRowIsTheContracts() {
        assertEquals(fieldNames("batch.result"), Arrays.asList(BatchResults.FIELDS));
        TypeInformation<Row> deadLetter = build("kafka.raw");
        assertEquals(expand("kafka.raw", rows), render(deadLetter));
        assertEquals(expand("batch.result", rows), render(BatchResults.inputType(RECORD, deadLetter)));
        List<String> names = fieldNames("batch.result");
        assertEquals(names.indexOf("records"), BatchResults.RECORDS);
        assertEquals(names.indexOf("dead_letters"), BatchResults.DEAD_LETTERS);
        assertEquals(names.indexOf("counts"), BatchResults.COUNTS);
    }

    @Test
    void theDedupStageRefusesAnInputOfAnotherRowType() {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        TypeInformation<Row> input = DedupFunction.inputType();
        DedupFunction.apply(env.fromData(input, Row.of("ns/a", false, null, new byte[0], null, new byte[0], 0L, null)), 0);

        RowTypeInfo expected = (RowTypeInfo) input;
        String[] swapped = expected.getFieldNames().clone();
        swapped[3] = "text_hash";
        swapped[4] = "content_hash";
        TypeInformation<Row> other = new RowTypeInfo(expected.getFieldTypes(), swapped);
        Row row = Row.of("ns/a", false, null, new byte[0], null, new byte[0], 0L, null);
        IllegalArgumentException refused =
                assertThrows(
                        IllegalArgumentException.class, () -> DedupFunction.apply(env.fromData(other, row), 0));
        assertTrue(refused.getMessage().contains("jvm/contract/rows.txt, dedup.input"), refused.getMessage());
    }

    @Test
    void batchResultsRefusesResultsWhoseRecordsHaveAnotherLayoutEvenInsideTheList() {
        TypeInformation<Row> deadLetter = build("kafka.raw");
        TypeInformation<Row> records = DedupFunction.inputType();
        BatchResults.requireInputType(BatchResults.inputType(records, deadLetter), records, deadLetter);

        RowTypeInfo expected = (RowTypeInfo) records;
        String[] swapped = expected.getFieldNames().clone();
        swapped[3] = "text_hash";
        swapped[4] = "content_hash";
        TypeInformation<Row> other = new RowTypeInfo(expected.getFieldTypes(), swapped);
        // Flink's own comparisons do not see it: RowTypeInfo.equals ignores names, schemaEquals looks one level deep.
        TypeInformation<Row> results = BatchResults.inputType(other, deadLetter);
        assertTrue(((RowTypeInfo) results).schemaEquals(BatchResults.inputType(records, deadLetter)));
        IllegalArgumentException refused =
                assertThrows(
                        IllegalArgumentException.class,
                        () -> BatchResults.requireInputType(results, records, deadLetter));
        assertTrue(refused.getMessage().contains("jvm/contract/rows.txt, batch.result"), refused.getMessage());
        assertFalse(RowTypes.sameSchema(Types.MAP(Types.STRING, Types.LONG), Types.MAP(Types.STRING, Types.INT)));
        assertTrue(RowTypes.sameSchema(Types.MAP(Types.STRING, other), Types.MAP(Types.STRING, other)));
    }
}
