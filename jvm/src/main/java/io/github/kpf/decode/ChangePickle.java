package io.github.kpf.decode;

import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Map;

/**
 * Writes the pickle of an upsert {@code Change} (udfs/records.py) that carries its request JSON, as the JVM decode
 * path hands it to the Python stages: {@code pickle.loads} of it (udfs/dedup.py {@code applied_change}) gives the
 * {@code Change} the Python decoder would have made.
 *
 * <p>It is what {@code Change.__reduce__} and {@code SourceRecord.__reduce__} reduce to: {@code
 * _unpickle_change(op, namespace, id, source, packed, sparse, metadata, text, version, content_hash, text_hash,
 * replaces, json, chunk_spans, previous_chunks, follows)} with {@code source = SourceRecord(topic, partition, offset,
 * timestamp_ms, key, value, headers)}, and {@code packed}, {@code sparse} and {@code metadata} None as Python writes
 * them for a change with JSON ({@code _unpickle_change} turns that metadata into {@code {}}).
 *
 * <p>Pickle protocol 4, written from the opcode documentation of Python's {@code pickletools}: {@code PROTO 4}, the two
 * functions by {@code STACK_GLOBAL} (module and name as {@code SHORT_BINUNICODE}), their arguments as {@code MARK ...
 * TUPLE} then {@code REDUCE}, and {@code STOP}. No {@code FRAME} (framing is optional when loading) and no memo
 * opcodes (nothing is referred to twice). The values are written with the opcodes Python's own pickler picks for
 * them: strings as UTF-8 with {@code SHORT_BINUNICODE} (under 256 bytes), {@code BINUNICODE} or {@code BINUNICODE8};
 * bytes with {@code SHORT_BINBYTES} or {@code BINBYTES}; integers with {@code BININT1} (0 to 255), {@code BININT2}
 * (to 65535), {@code BININT} (signed 32 bits), else {@code LONG1}/{@code LONG4} (two's complement, little-endian,
 * fewest bytes); tuples of up to three items with {@code TUPLE1}/{@code TUPLE2}/{@code TUPLE3}, the empty tuple with
 * {@code EMPTY_TUPLE}; None, False with {@code NONE}, {@code NEWFALSE}.
 *
 * <p>Cost: the pickle's exact size is computed first (one pass over each string for its UTF-8 length), then it is
 * written into one array of that size, which is returned: no growable buffer, no final copy, the value and the JSON
 * copied once each with {@link System#arraycopy}. Strings are encoded straight into it, with no intermediate byte
 * array. Stateless and thread-safe.
 *
 * <p>A Java string is UTF-16; a surrogate pair is written as the 4-byte UTF-8 of its code point. A lone surrogate
 * (which the decode path never passes) is written as its 3-byte form, which Python's unpickler decodes
 * ({@code surrogatepass}) back to that lone surrogate: the string Python gets has the code units the Java one had.
 */
public final class ChangePickle {

    // Opcodes (pickletools.opcodes).
    private static final byte MARK = '(';
    private static final byte STOP = '.';
    private static final byte BININT = 'J';
    private static final byte BININT1 = 'K';
    private static final byte BININT2 = 'M';
    private static final byte NONE = 'N';
    private static final byte REDUCE = 'R';
    private static final byte BINUNICODE = 'X';
    private static final byte BINBYTES = 'B';
    private static final byte SHORT_BINBYTES = 'C';
    private static final byte TUPLE = 't';
    private static final byte EMPTY_TUPLE = ')';
    private static final byte PROTO = (byte) 0x80;
    private static final byte TUPLE1 = (byte) 0x85;
    private static final byte TUPLE2 = (byte) 0x86;
    private static final byte TUPLE3 = (byte) 0x87;
    private static final byte NEWFALSE = (byte) 0x89;
    private static final byte LONG1 = (byte) 0x8a;
    private static final byte LONG4 = (byte) 0x8b;
    private static final byte SHORT_BINUNICODE = (byte) 0x8c;
    private static final byte BINUNICODE8 = (byte) 0x8d;
    private static final byte STACK_GLOBAL = (byte) 0x93;
    private static final byte MEMOIZE = (byte) 0x94;
    private static final byte NEWTRUE = (byte) 0x88;
    private static final byte BINGET = 'h';
    private static final byte POP = '0';
    private static final byte EMPTY_LIST = ']';
    private static final byte APPENDS = 'e';

    private static final String MODULE = "kafka_pinecone_flink.udfs.records";

    /** Largest array a JVM reliably allocates. */
    private static final long MAX_PICKLE = Integer.MAX_VALUE - 8;

    /** {@code PROTO 4}, {@code _unpickle_change}, {@code MARK}, {@code "upsert"}. */
    private static final byte[] CHANGE_HEAD = concat(
            new byte[] {PROTO, 4},
            global("_unpickle_change"),
            new byte[] {MARK},
            asciiString("upsert"));

    /** {@code SourceRecord}, {@code MARK}. */
    private static final byte[] SOURCE_HEAD = concat(global("SourceRecord"), new byte[] {MARK});

    /** The source's {@code TUPLE REDUCE}, then packed, sparse, metadata and text: None. */
    private static final byte[] SOURCE_TAIL = {TUPLE, REDUCE, NONE, NONE, NONE, NONE};

    /** After the content hash: text_hash None, replaces False. */
    private static final byte[] AFTER_HASH = {NONE, NEWFALSE};

    /** After the JSON: chunk_spans None, previous_chunks 0, follows False; the change's TUPLE REDUCE; STOP. */
    private static final byte[] CHANGE_TAIL = {NONE, BININT1, 0, NEWFALSE, TUPLE, REDUCE, STOP};

    private final byte[] out;
    private int pos;

    /**
     * {@code PROTO 4}, {@code _applied_change} (put in the memo at 0 and popped), {@code EMPTY_LIST}: the head of
     * every {@link #appliedGroup}.
     */
    private static final byte[] GROUP_HEAD =
            concat(new byte[] {PROTO, 4}, global("_applied_change"), new byte[] {MEMOIZE, POP, EMPTY_LIST});

    private ChangePickle(int size) {
        out = new byte[size];
    }

    /**
     * A pickled upsert Change with its request JSON (values/sparse/metadata None, as Change.__reduce__ writes one with
     * json set).
     *
     * @param namespace the Pinecone namespace
     * @param id the record id
     * @param record the Kafka record, the change's {@code source} (its value not null: a tombstone is not an upsert)
     * @param version the version, a Python int of any size; null is None
     * @param contentHash the content hash
     * @param json the record as one element of an upsert request ({@code upsert_json})
     * @return the pickle, exactly as long as it is
     * @throws IllegalArgumentException if the pickle would not fit in a Java array
     */
    public static byte[] upsert(
            String namespace,
            String id,
            SourceRecord record,
            BigInteger version,
            byte[] contentHash,
            byte[] json) {
        String topic = record.topic;
        int partition = record.partition;
        long offset = record.offset;
        Long timestampMs = record.timestampMs;
        byte[] key = record.key;
        byte[] value = record.value;
        List<Map.Entry<String, byte[]>> headers = record.headers;
        long namespaceBytes = utf8Length(namespace);
        long idBytes = utf8Length(id);
        long topicBytes = utf8Length(topic);
        byte[] bigVersion = version == null || version.bitLength() <= 31 ? null : version.toByteArray();
        int headerCount = headers == null ? 0 : headers.size();

        long size = CHANGE_HEAD.length
                + stringSize(namespaceBytes)
                + stringSize(idBytes)
                + SOURCE_HEAD.length
                + stringSize(topicBytes)
                + intSize(partition)
                + intSize(offset)
                + (timestampMs == null ? 1 : intSize(timestampMs))
                + bytesSize(key)
                + bytesSize(value)
                + (headerCount == 0 ? 1 : headerCount <= 3 ? 1 : 2)
                + SOURCE_TAIL.length
                + (version == null ? 1 : bigVersion == null ? intSize(version.intValue()) : longSize(bigVersion.length))
                + bytesSize(contentHash)
                + AFTER_HASH.length
                + bytesSize(json)
                + CHANGE_TAIL.length;
        if (headerCount > 0) {
            for (Map.Entry<String, byte[]> header : headers) {
                size += stringSize(utf8Length(header.getKey())) + bytesSize(header.getValue()) + 1;
            }
        }
        if (size > MAX_PICKLE) {
            throw new IllegalArgumentException("a pickled change of " + size + " bytes does not fit in a Java array");
        }

        ChangePickle w = new ChangePickle((int) size);
        w.raw(CHANGE_HEAD);
        w.string(namespace, namespaceBytes);
        w.string(id, idBytes);
        w.raw(SOURCE_HEAD);
        w.string(topic, topicBytes);
        w.integer(partition);
        w.integer(offset);
        if (timestampMs == null) {
            w.raw(NONE);
        } else {
            w.integer(timestampMs);
        }
        w.bytes(key);
        w.bytes(value);
        if (headerCount == 0) {
            w.raw(EMPTY_TUPLE);
        } else {
            if (headerCount > 3) {
                w.raw(MARK);
            }
            for (Map.Entry<String, byte[]> header : headers) {
                String name = header.getKey();
                w.string(name, utf8Length(name));
                w.bytes(header.getValue());
                w.raw(TUPLE2);
            }
            w.raw(headerCount == 1 ? TUPLE1 : headerCount == 2 ? TUPLE2 : headerCount == 3 ? TUPLE3 : TUPLE);
        }
        w.raw(SOURCE_TAIL);
        if (version == null) {
            w.raw(NONE);
        } else if (bigVersion == null) {
            w.integer(version.intValue());
        } else {
            w.bigEndianLong(bigVersion);
        }
        w.bytes(contentHash);
        w.raw(AFTER_HASH);
        w.bytes(json);
        w.raw(CHANGE_TAIL);
        return w.written();
    }

    /**
     * One pickle of a group of applied changes, as the stages after dedup read them: {@code pickle.loads} of it is
     * the list of the group's {@code Change}s, each with {@code replaces} and {@code previous_chunks} set (by {@code
     * _applied_change} of udfs/records.py), so that Python loads a whole group in one call instead of a row and a
     * pickle per change.
     *
     * <p>A payload that {@link #upsert} wrote is spliced in whole, less its {@code PROTO} and {@code STOP}: it has no
     * memo opcodes, so its opcodes load the same inside the group (the group's only memo entry is its {@code
     * _applied_change}, at 0, fetched by {@code BINGET 0} for each change). Any other payload (Python's pickle of a
     * change: protocol 5, with memo and frames) goes in as bytes, which {@code _applied_change} loads on its own.
     *
     * @param payloads each change's pickle, not null
     * @param replaces each change's {@code replaces}
     * @param previousChunks each change's {@code previous_chunks}
     * @return the pickle, exactly as long as it is
     * @throws IllegalArgumentException if the lengths differ or the pickle would not fit in a Java array
     */
    public static byte[] appliedGroup(List<byte[]> payloads, boolean[] replaces, long[] previousChunks) {
        int n = payloads.size();
        if (replaces.length != n || previousChunks.length != n) {
            throw new IllegalArgumentException(
                    n + " payloads, " + replaces.length + " replaces, " + previousChunks.length + " previous_chunks");
        }
        boolean[] spliced = new boolean[n];
        long size = GROUP_HEAD.length + 1 + (n == 0 ? 0 : 2); // STOP; MARK ... APPENDS
        for (int i = 0; i < n; i++) {
            byte[] payload = payloads.get(i);
            spliced[i] = spliced(payload);
            size += 2 + (spliced[i] ? payload.length - 3 : bytesSize(payload)) + 1 + intSize(previousChunks[i]) + 2;
        }
        if (size > MAX_PICKLE) {
            throw new IllegalArgumentException("a pickled group of " + size + " bytes does not fit in a Java array");
        }
        ChangePickle w = new ChangePickle((int) size);
        w.raw(GROUP_HEAD);
        if (n > 0) {
            w.raw(MARK);
            for (int i = 0; i < n; i++) {
                byte[] payload = payloads.get(i);
                w.raw(BINGET);
                w.raw((byte) 0);
                if (spliced[i]) {
                    System.arraycopy(payload, 2, w.out, w.pos, payload.length - 3);
                    w.pos += payload.length - 3;
                } else {
                    w.bytes(payload);
                }
                w.raw(replaces[i] ? NEWTRUE : NEWFALSE);
                w.integer(previousChunks[i]);
                w.raw(TUPLE3);
                w.raw(REDUCE);
            }
            w.raw(APPENDS);
        }
        w.raw(STOP);
        return w.written();
    }

    /** The pickle, once it is full. */
    private byte[] written() {
        if (pos != out.length) { // the sizes computed first and the writes disagree: a bug here, never the input
            throw new IllegalStateException("pickle size " + out.length + " but " + pos + " bytes written");
        }
        return out;
    }

    /**
     * Whether {@link #upsert} wrote {@code payload}: it starts with {@link #CHANGE_HEAD} (Python's pickles start with
     * {@code PROTO 5}) and ends with {@code STOP}.
     */
    private static boolean spliced(byte[] payload) {
        int head = CHANGE_HEAD.length;
        return payload.length > head
                && payload[payload.length - 1] == STOP
                && Arrays.equals(payload, 0, head, CHANGE_HEAD, 0, head);
    }

    // -- sizes ------------------------------------------------------------------------------------------------------

    /** UTF-8 length of {@code s}; a lone surrogate counts 3 bytes (see the class comment). */
    static long utf8Length(String s) {
        int n = s.length();
        long length = n;
        for (int i = 0; i < n; i++) {
            char c = s.charAt(i);
            if (c >= 0x80) {
                if (c < 0x800) {
                    length += 1;
                } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                    length += 2; // two chars, four bytes
                    i++;
                } else {
                    length += 2;
                }
            }
        }
        return length;
    }

    private static long stringSize(long utf8Bytes) {
        return utf8Bytes + (utf8Bytes < 256 ? 2 : utf8Bytes <= 0xffffffffL ? 5 : 9);
    }

    private static long bytesSize(byte[] b) {
        return b == null ? 1 : b.length + (b.length < 256 ? 2 : 5);
    }

    private static long intSize(long v) {
        if (v >= 0 && v <= 0xff) {
            return 2;
        }
        if (v >= 0 && v <= 0xffff) {
            return 3;
        }
        if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            return 5;
        }
        return longSize(longBytes(v));
    }

    /** Size of a LONG1 or LONG4 of {@code n} bytes. */
    private static long longSize(int n) {
        return n + (n < 256 ? 2 : 5);
    }

    /** Fewest bytes of {@code v} in two's complement (as Python's {@code encode_long}). */
    private static int longBytes(long v) {
        int bits = 64 - Long.numberOfLeadingZeros(v ^ (v >> 63)); // without the sign bit
        return bits / 8 + 1;
    }

    // -- writes -----------------------------------------------------------------------------------------------------

    private void raw(byte b) {
        out[pos++] = b;
    }

    private void raw(byte[] b) {
        System.arraycopy(b, 0, out, pos, b.length);
        pos += b.length;
    }

    private void le32(long v) {
        out[pos] = (byte) v;
        out[pos + 1] = (byte) (v >> 8);
        out[pos + 2] = (byte) (v >> 16);
        out[pos + 3] = (byte) (v >> 24);
        pos += 4;
    }

    private void string(String s, long utf8Bytes) {
        if (utf8Bytes < 256) {
            out[pos++] = SHORT_BINUNICODE;
            out[pos++] = (byte) utf8Bytes;
        } else if (utf8Bytes <= 0xffffffffL) {
            out[pos++] = BINUNICODE;
            le32(utf8Bytes);
        } else { // unreachable: such a pickle does not fit in a Java array (checked before)
            out[pos++] = BINUNICODE8;
            le32(utf8Bytes);
            le32(utf8Bytes >>> 32);
        }
        byte[] o = out;
        int p = pos;
        int n = s.length();
        if (utf8Bytes == n) { // ASCII
            for (int i = 0; i < n; i++) {
                o[p++] = (byte) s.charAt(i);
            }
        } else {
            for (int i = 0; i < n; i++) {
                char c = s.charAt(i);
                if (c < 0x80) {
                    o[p++] = (byte) c;
                } else if (c < 0x800) {
                    o[p++] = (byte) (0xc0 | c >> 6);
                    o[p++] = (byte) (0x80 | c & 0x3f);
                } else if (Character.isHighSurrogate(c) && i + 1 < n && Character.isLowSurrogate(s.charAt(i + 1))) {
                    int cp = Character.toCodePoint(c, s.charAt(++i));
                    o[p++] = (byte) (0xf0 | cp >> 18);
                    o[p++] = (byte) (0x80 | cp >> 12 & 0x3f);
                    o[p++] = (byte) (0x80 | cp >> 6 & 0x3f);
                    o[p++] = (byte) (0x80 | cp & 0x3f);
                } else {
                    o[p++] = (byte) (0xe0 | c >> 12);
                    o[p++] = (byte) (0x80 | c >> 6 & 0x3f);
                    o[p++] = (byte) (0x80 | c & 0x3f);
                }
            }
        }
        pos = p;
    }

    private void bytes(byte[] b) {
        if (b == null) {
            out[pos++] = NONE;
            return;
        }
        if (b.length < 256) {
            out[pos++] = SHORT_BINBYTES;
            out[pos++] = (byte) b.length;
        } else {
            out[pos++] = BINBYTES;
            le32(b.length);
        }
        raw(b);
    }

    private void integer(long v) {
        if (v >= 0 && v <= 0xff) {
            out[pos++] = BININT1;
            out[pos++] = (byte) v;
        } else if (v >= 0 && v <= 0xffff) {
            out[pos++] = BININT2;
            out[pos++] = (byte) v;
            out[pos++] = (byte) (v >> 8);
        } else if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
            out[pos++] = BININT;
            le32(v);
        } else {
            int n = longBytes(v);
            out[pos++] = LONG1;
            out[pos++] = (byte) n;
            for (int i = 0; i < n; i++) {
                out[pos++] = (byte) (v >> (8 * i));
            }
        }
    }

    /** A LONG1 or LONG4 of {@code bigEndian} ({@link BigInteger#toByteArray}: fewest bytes, two's complement). */
    private void bigEndianLong(byte[] bigEndian) {
        int n = bigEndian.length;
        if (n < 256) {
            out[pos++] = LONG1;
            out[pos++] = (byte) n;
        } else {
            out[pos++] = LONG4;
            le32(n);
        }
        for (int i = n - 1; i >= 0; i--) {
            out[pos++] = bigEndian[i];
        }
    }

    // -- constants --------------------------------------------------------------------------------------------------

    /** A short ASCII string: SHORT_BINUNICODE. */
    private static byte[] asciiString(String s) {
        byte[] text = s.getBytes(StandardCharsets.US_ASCII);
        return concat(new byte[] {SHORT_BINUNICODE, (byte) text.length}, text);
    }

    /** {@code name} of udfs/records.py: module and name, STACK_GLOBAL. */
    private static byte[] global(String name) {
        return concat(asciiString(MODULE), asciiString(name), new byte[] {STACK_GLOBAL});
    }

    private static byte[] concat(byte[]... parts) {
        int n = 0;
        for (byte[] part : parts) {
            n += part.length;
        }
        byte[] all = new byte[n];
        int p = 0;
        for (byte[] part : parts) {
            System.arraycopy(part, 0, all, p, part.length);
            p += part.length;
        }
        return all;
    }
}
