package io.github.kpf.dedup;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.github.kpf.decode.ChangePickle;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.flink.api.common.typeinfo.PrimitiveArrayTypeInfo;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.java.typeutils.ListTypeInfo;
import org.apache.flink.streaming.api.datastream.DataStream;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.types.Row;
import org.junit.jupiter.api.Test;

/**
 * {@link AppliedGroups}: a group of dedup rows becomes {@link ChangePickle#appliedGroup} of their fields (a missing
 * flag or count read as False and 0, as Python's {@code bool}/{@code int(... or 0)} read them), and a stream of any
 * other type is refused. tests/integration/test_change_pickle_jvm.py loads such groups with Python's pickle.
 */
class AppliedGroupsTest {

    private static byte[] pythonPickle(String text) {
        // What the group holds as bytes: anything that is not ChangePickle's (here a protocol-5 pickle of a str).
        byte[] utf8 = text.getBytes(StandardCharsets.UTF_8);
        byte[] out = new byte[utf8.length + 5];
        out[0] = (byte) 0x80;
        out[1] = 5;
        out[2] = (byte) 0x8c;
        out[3] = (byte) utf8.length;
        System.arraycopy(utf8, 0, out, 4, utf8.length);
        out[out.length - 1] = '.';
        return out;
    }

    @Test
    void aGroupOfRowsIsThePickleOfTheirFields() {
        byte[] a = pythonPickle("a");
        byte[] b = pythonPickle("b");
        byte[] c = pythonPickle("c");
        List<Row> group = new ArrayList<>();
        group.add(Row.of(a, true, 3L));
        group.add(Row.of(b, false, 0L));
        group.add(Row.of(c, null, null));

        byte[] got = new AppliedGroups().map(group);

        byte[] expected = ChangePickle.appliedGroup(
                List.of(a, b, c), new boolean[] {true, false, false}, new long[] {3, 0, 0});
        assertArrayEquals(expected, got);
    }

    @Test
    void anEmptyGroupIsTheEmptyList() {
        byte[] got = new AppliedGroups().map(List.of());
        assertArrayEquals(ChangePickle.appliedGroup(List.of(), new boolean[0], new long[0]), got);
        assertEquals(']', got[got.length - 2]); // EMPTY_LIST, then STOP: no MARK ... APPENDS
        assertEquals('.', got[got.length - 1]);
    }

    @Test
    void aRowWithoutAPayloadIsRefusedByItsPosition() {
        List<Row> group = Arrays.asList(Row.of(pythonPickle("a"), false, 0L), Row.of(null, false, 0L));
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> new AppliedGroups().map(group));
        assertEquals("row 1 of a group of 2 has no payload", e.getMessage());
    }

    @Test
    void aStreamOfAnyOtherTypeIsRefused() {
        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        var pickled = PrimitiveArrayTypeInfo.BYTE_PRIMITIVE_ARRAY_TYPE_INFO;
        ListTypeInfo<Row> wrongType = new ListTypeInfo<>(Types.ROW(Types.STRING));
        DataStream<List<Row>> wrong = env.fromData(List.of(List.<Row>of()), wrongType);
        IllegalArgumentException e =
                assertThrows(IllegalArgumentException.class, () -> AppliedGroups.apply(wrong, pickled));
        assertTrue(e.getMessage().startsWith("applied groups must be lists of the dedup operator's rows"));
        ListTypeInfo<Row> rightType = new ListTypeInfo<>(DedupFunction.outputType());
        DataStream<List<Row>> right = env.fromData(List.of(List.<Row>of()), rightType);
        assertEquals(pickled, AppliedGroups.apply(right, pickled).getType());
    }

    @Test
    void theGroupsLengthsMustAgree() {
        assertThrows(
                IllegalArgumentException.class,
                () -> ChangePickle.appliedGroup(List.of(pythonPickle("a")), new boolean[0], new long[] {0}));
    }
}
