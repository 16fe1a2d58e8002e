package io.github.kpf.decode;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.AbstractMap.SimpleEntry;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/**
 * {@link ChangePickle} at the opcode level, without Python: each pickle is read back by {@link Reader}, a loader of
 * the opcodes it may write (pickletools' documentation), which refuses any other opcode (memo opcodes included) and
 * bytes after STOP. tests/integration/test_change_pickle_jvm.py loads them with Python's {@code pickle.loads}.
 */
class ChangePickleTest {

    private static final String MODULE = "kafka_pinecone_flink.udfs.records";

    /** {@code REDUCE} of a {@code STACK_GLOBAL}: the function's module and name, and its arguments. */
    record Call(String module, String name, List<Object> args) {}

    /** An opcode and the value it pushed (null for an opcode that pushes none, and for None). */
    record Op(int code, Object value) {}

    /** A Python value: str as String, bytes as ByteBuffer (equal by content), int as BigInteger, tuple as List. */
    static final class Reader {
        private static final Object MARK = new Object();
        private final ByteBuffer in;
        final List<Op> ops = new ArrayList<>();
        private final List<Object> values = new ArrayList<>();

        Reader(byte[] pickle) {
            in = ByteBuffer.wrap(pickle).order(ByteOrder.LITTLE_ENDIAN);
        }

        Object load() {
            while (true) {
                int code = in.get() & 0xff;
                Object pushed = null;
                switch (code) {
                    case 0x80 -> assertEquals(4, in.get() & 0xff, "protocol");
                    case 0x8c -> pushed = push(text(in.get() & 0xff));
                    case 'X' -> pushed = push(text(in.getInt()));
                    case 0x8d -> pushed = push(text(Math.toIntExact(in.getLong())));
                    case 'C' -> pushed = push(ByteBuffer.wrap(take(in.get() & 0xff)));
                    case 'B' -> pushed = push(ByteBuffer.wrap(take(in.getInt())));
                    case 'K' -> pushed = push(BigInteger.valueOf(in.get() & 0xff));
                    case 'M' -> pushed = push(BigInteger.valueOf(in.getShort() & 0xffff));
                    case 'J' -> pushed = push(BigInteger.valueOf(in.getInt()));
                    case 0x8a -> pushed = push(littleEndian(take(in.get() & 0xff)));
                    case 0x8b -> pushed = push(littleEndian(take(in.getInt())));
                    case 'N' -> push(null);
                    case 0x89 -> pushed = push(Boolean.FALSE);
                    case 0x88 -> pushed = push(Boolean.TRUE);
                    case ')' -> pushed = push(List.of());
                    case '}' -> pushed = push(Map.of());
                    case 0x85, 0x86, 0x87 -> pushed = push(popN(code - 0x84));
                    case '(' -> values.add(MARK);
                    case 't' -> {
                        int mark = values.lastIndexOf(MARK);
                        List<Object> items = popN(values.size() - mark - 1);
                        values.remove(values.size() - 1);
                        pushed = push(items);
                    }
                    case 0x93 -> {
                        List<Object> names = popN(2);
                        pushed = push(new Call((String) names.get(0), (String) names.get(1), null));
                    }
                    case 'R' -> {
                        List<Object> fa = popN(2);
                        Call function = (Call) fa.get(0);
                        @SuppressWarnings("unchecked")
                        List<Object> args = (List<Object>) fa.get(1);
                        pushed = push(new Call(function.module(), function.name(), args));
                    }
                    case '.' -> {
                        ops.add(new Op(code, null));
                        assertEquals(0, in.remaining(), "bytes after STOP");
                        assertEquals(1, values.size(), "values at STOP");
                        return values.get(0);
                    }
                    default -> fail(String.format("opcode 0x%02x at %d", code, in.position() - 1));
                }
                ops.add(new Op(code, pushed));
            }
        }

        private Object push(Object value) {
            values.add(value);
            return value;
        }

        private List<Object> popN(int n) {
            List<Object> top = new ArrayList<>(values.subList(values.size() - n, values.size()));
            for (Object item : top) {
                if (item == MARK) {
                    fail("a MARK inside a tuple");
                }
            }
            values.subList(values.size() - n, values.size()).clear();
            return top;
        }

        private byte[] take(int n) {
            byte[] b = new byte[n];
            in.get(b);
            return b;
        }

        private String text(int n) {
            return new String(take(n), StandardCharsets.UTF_8);
        }

        private static BigInteger littleEndian(byte[] b) {
            byte[] big = new byte[b.length];
            for (int i = 0; i < b.length; i++) {
                big[i] = b[b.length - 1 - i];
            }
            return b.length == 0 ? BigInteger.ZERO : new BigInteger(big);
        }
    }

    private static final byte[] HASH = bytes(16, 7);
    private static final byte[] JSON = "{\"id\":\"a\",\"values\":[0.5]}".getBytes(StandardCharsets.US_ASCII);

    private static byte[] bytes(int n, int seed) {
        byte[] b = new byte[n];
        for (int i = 0; i < n; i++) {
            b[i] = (byte) (i * 31 + seed);
        }
        return b;
    }

    private static ByteBuffer buf(byte[] b) {
        return b == null ? null : ByteBuffer.wrap(b);
    }

    private static byte[] pickle(String namespace, String id, BigInteger version) {
        return ChangePickle.upsert(
                namespace, id, new SourceRecord("t", 0, 0L, null, null, new byte[0], List.of()), version, HASH, JSON);
    }

    private static Reader read(byte[] pickle) {
        Reader reader = new Reader(pickle);
        reader.load();
        return reader;
    }

    /** The opcode that pushed {@code value} (the first one). */
    private static int opcodeOf(Reader reader, Object value) {
        for (Op op : reader.ops) {
            if (value.equals(op.value())) {
                return op.code();
            }
        }
        return fail("no opcode pushed " + value);
    }

    private static Call expected(
            String namespace,
            String id,
            String topic,
            int partition,
            long offset,
            Long timestampMs,
            byte[] key,
            byte[] value,
            List<List<Object>> headers,
            BigInteger version,
            byte[] contentHash,
            byte[] json) {
        Call source = new Call(MODULE, "SourceRecord", Arrays.asList(
                topic,
                BigInteger.valueOf(partition),
                BigInteger.valueOf(offset),
                timestampMs == null ? null : BigInteger.valueOf(timestampMs),
                buf(key),
                buf(value),
                new ArrayList<Object>(headers)));
        return new Call(MODULE, "_unpickle_change", Arrays.asList(
                "upsert", namespace, id, source, null, null, null, null, version, buf(contentHash), null,
                false, buf(json), null, BigInteger.ZERO, false));
    }

    @Test
    void loadsAsTheReduceOfChangeAndSourceRecord() {
        byte[] value = bytes(6000, 3);
        byte[] key = "k1".getBytes(StandardCharsets.UTF_8);
        List<Map.Entry<String, byte[]>> headers = Arrays.asList(
                new SimpleEntry<>("trace", "abc".getBytes(StandardCharsets.UTF_8)), new SimpleEntry<>("none", null));
        byte[] pickle = ChangePickle.upsert(
                "ns", "id-1", new SourceRecord("topic", 7, 1L << 40, 1_700_000_000_123L, key, value, headers),
                BigInteger.valueOf(42), HASH, JSON);
        Reader reader = new Reader(pickle);
        Object loaded = reader.load();
        List<List<Object>> headerTuples = List.of(
                Arrays.asList("trace", buf("abc".getBytes(StandardCharsets.UTF_8))), Arrays.asList("none", null));
        assertEquals(
                expected("ns", "id-1", "topic", 7, 1L << 40, 1_700_000_000_123L, key, value, headerTuples,
                        BigInteger.valueOf(42), HASH, JSON),
                loaded);
        assertEquals(0x80, pickle[0] & 0xff, "PROTO");
        assertEquals(4, pickle[1], "protocol 4");
        assertEquals('.', pickle[pickle.length - 1], "STOP");
        assertEquals(0x8c, opcodeOf(reader, MODULE), "module: SHORT_BINUNICODE");
        assertEquals('B', opcodeOf(reader, ByteBuffer.wrap(value)), "6 KB value: BINBYTES");
        assertEquals('C', opcodeOf(reader, ByteBuffer.wrap(HASH)), "hash: SHORT_BINBYTES");
        assertEquals(0x8a, opcodeOf(reader, BigInteger.ONE.shiftLeft(40)), "2**40: LONG1");
    }

    @Test
    void noKeyNoTimestampNoVersionAreNone() {
        Object loaded = new Reader(pickle("", "", null)).load();
        assertEquals(expected("", "", "t", 0, 0, null, null, new byte[0], List.of(), null, HASH, JSON), loaded);
        Call change = (Call) loaded;
        assertNull(change.args().get(8));
    }

    @Test
    void stringsAreUtf8WithTheirLengthOpcode() {
        String[] strings = {
            "é", "日本", "😀", "a😀é日", "x".repeat(255), "x".repeat(256), "é".repeat(127), "é".repeat(128),
            "日".repeat(85), "日".repeat(86), "😀".repeat(63), "😀".repeat(64), "y".repeat(300), "z".repeat(70_000),
        };
        for (String s : strings) {
            Reader reader = read(pickle(s, "id", null));
            int utf8 = s.getBytes(StandardCharsets.UTF_8).length;
            assertEquals(utf8, ChangePickle.utf8Length(s), s);
            assertEquals(utf8 < 256 ? 0x8c : 'X', opcodeOf(reader, s), "opcode of a string of " + utf8 + " bytes");
        }
    }

    @Test
    void aLoneSurrogateIsWrittenAsPythonsSurrogatepassReadsIt() {
        byte[] pickle = pickle("a\ud800b", "id", null);
        byte[] expected = {(byte) 0x8c, 5, 'a', (byte) 0xed, (byte) 0xa0, (byte) 0x80, 'b'};
        int at = indexOf(pickle, expected);
        assertTrue(at > 0, "a\\ud800b as 5 bytes");
    }

    private static int indexOf(byte[] haystack, byte[] needle) {
        outer:
        for (int i = 0; i + needle.length <= haystack.length; i++) {
            for (int j = 0; j < needle.length; j++) {
                if (haystack[i + j] != needle[j]) {
                    continue outer;
                }
            }
            return i;
        }
        return -1;
    }

    @Test
    void integersUseTheSmallestOpcodeAndPythonsLongEncoding() {
        Object[][] cases = {
            {"0", 'K', 2}, {"255", 'K', 2}, {"256", 'M', 3}, {"65535", 'M', 3}, {"65536", 'J', 5}, {"-1", 'J', 5},
            {"2147483647", 'J', 5}, {"-2147483648", 'J', 5}, {"2147483648", 0x8a, 7}, {"-2147483649", 0x8a, 7},
            {"-128", 'J', 5}, {"9223372036854775808", 0x8a, 11}, {"-9223372036854775809", 0x8a, 11},
            {"-1267650600228229401496703205376", 0x8a, 15}, // -(2**100): 13 bytes
        };
        for (Object[] c : cases) {
            BigInteger version = new BigInteger((String) c[0]);
            byte[] pickle = pickle("n", "i", version);
            Reader reader = new Reader(pickle);
            Call change = (Call) reader.load();
            assertEquals(version, change.args().get(8), (String) c[0]);
            int code = c[1] instanceof Character ch ? ch : (Integer) c[1];
            // The version is written after the four Nones that follow the source's REDUCE.
            int at = indexOf(pickle, new byte[] {'R', 'N', 'N', 'N', 'N'}) + 5;
            assertEquals(code, pickle[at] & 0xff, "opcode of " + c[0]);
            assertEquals(c[2], indexOf(pickle, new byte[] {'C', 16}) - at, "encoded length of " + c[0]);
        }
        // Beyond 255 bytes: LONG4.
        BigInteger huge = BigInteger.ONE.shiftLeft(2100).negate();
        Reader reader = new Reader(pickle("n", "i", huge));
        assertEquals(huge, ((Call) reader.load()).args().get(8));
        assertEquals(0x8b, opcodeOf(reader, huge), "LONG4 beyond 255 bytes");
    }

    @Test
    void longCoordinatesRoundTrip() {
        long[] offsets = {0, 255, 256, 65535, 65536, Integer.MAX_VALUE, 1L << 31, 1L << 40, Long.MAX_VALUE, -1,
            Long.MIN_VALUE};
        for (long offset : offsets) {
            Object loaded = new Reader(ChangePickle.upsert(
                    "n", "i", new SourceRecord("t", Integer.MAX_VALUE, offset, offset, null, new byte[0], null), null,
                    HASH, JSON))
                    .load();
            assertEquals(
                    expected("n", "i", "t", Integer.MAX_VALUE, offset, offset, null, new byte[0], List.of(), null,
                            HASH, JSON),
                    loaded,
                    "offset " + offset);
        }
    }

    @Test
    void headersAreATupleOfPairsInOrder() {
        for (int n = 0; n <= 5; n++) {
            List<Map.Entry<String, byte[]>> headers = new ArrayList<>();
            List<List<Object>> tuples = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                byte[] value = i % 2 == 1 ? null : bytes(i * 100, i);
                headers.add(new SimpleEntry<>("h" + i + "é", value));
                tuples.add(Arrays.asList("h" + i + "é", buf(value)));
            }
            byte[] pickle = ChangePickle.upsert(
                    "n", "i", new SourceRecord("t", 1, 2, 3L, null, new byte[0], headers), null, HASH, JSON);
            Reader reader = new Reader(pickle);
            Object loaded = reader.load();
            assertEquals(expected("n", "i", "t", 1, 2, 3L, null, new byte[0], tuples, null, HASH, JSON), loaded);
            int tupleOpcode = n == 0 ? ')' : n == 1 ? 0x85 : n == 2 ? 0x86 : n == 3 ? 0x87 : 't';
            assertEquals(tupleOpcode, opcodeOf(reader, new ArrayList<Object>(tuples)), n + " headers");
        }
        assertArrayEquals(
                ChangePickle.upsert(
                        "n", "i", new SourceRecord("t", 1, 2, 3L, null, new byte[0], null), null, HASH, JSON),
                ChangePickle.upsert(
                        "n", "i", new SourceRecord("t", 1, 2, 3L, null, new byte[0], Collections.emptyList()), null,
                        HASH, JSON),
                "null headers are no headers");
    }

    @Test
    void theSmallestPickleIsExactlyThisSequence() {
        byte[] pickle = ChangePickle.upsert(
                "n", "i", new SourceRecord("t", 0, 0, null, null, new byte[0], null), null, new byte[0], new byte[0]);
        ByteBuffer expected = ByteBuffer.allocate(pickle.length);
        expected.put(new byte[] {(byte) 0x80, 4});
        global(expected, "_unpickle_change");
        expected.put((byte) '(');
        shortString(expected, "upsert");
        shortString(expected, "n");
        shortString(expected, "i");
        global(expected, "SourceRecord");
        expected.put((byte) '(');
        shortString(expected, "t");
        expected.put(new byte[] {'K', 0, 'K', 0, 'N', 'N', 'C', 0, ')', 't', 'R'});
        expected.put(new byte[] {'N', 'N', 'N', 'N', 'N', 'C', 0, 'N', (byte) 0x89, 'C', 0, 'N', 'K', 0, (byte) 0x89,
            't', 'R', '.'});
        assertEquals(0, expected.remaining());
        assertArrayEquals(expected.array(), pickle);
    }

    private static void shortString(ByteBuffer out, String s) {
        out.put((byte) 0x8c).put((byte) s.length()).put(s.getBytes(StandardCharsets.US_ASCII));
    }

    private static void global(ByteBuffer out, String name) {
        shortString(out, MODULE);
        shortString(out, name);
        out.put((byte) 0x93);
    }

    @Test
    void nullStringsAndHeaderKeysAreRefused() {
        assertThrows(NullPointerException.class, () -> pickle(null, "i", null));
        assertThrows(NullPointerException.class, () -> ChangePickle.upsert(
                "n", "i", new SourceRecord(null, 0, 0, null, null, new byte[0], null), null, HASH, JSON));
        List<Map.Entry<String, byte[]>> nullKey = List.of(new SimpleEntry<>(null, new byte[0]));
        assertThrows(NullPointerException.class, () -> ChangePickle.upsert(
                "n", "i", new SourceRecord("t", 0, 0, null, null, new byte[0], nullKey), null, HASH, JSON));
    }
}
