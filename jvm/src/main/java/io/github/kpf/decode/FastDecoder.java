package io.github.kpf.decode;

import java.io.Serializable;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.math.BigInteger;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * The JVM decode path: decodes the records that bring their own dense vector, in the most common shape, exactly as
 * the Python decoder ({@code udfs.decode.decode}) would, and answers {@code null} for every other record, which then
 * goes to the Python decoder. It never rejects a record: dead letters, skips, deletes, texts to embed, Debezium
 * envelopes, sparse vectors and every doubtful case are Python's.
 *
 * <p>Taken here: a plain JSON object ({@link JsonScan}: no nested objects, no duplicate keys, valid Unicode) that is
 * not a schema-wrapped value or a Debezium envelope and has no {@code __deleted}/{@code __op} field; its id from the
 * Kafka key or a top-level field (string, integer or boolean); a dense vector in {@code vector_field} given as a JSON
 * array of the index's dimension whose numbers have at most 15 significant digits (not all zero for a cosine
 * index); no sparse vector; metadata from every other top-level field (strings, booleans, numbers, lists of strings,
 * nulls dropped, {@code __} control fields dropped) within the size limit; a version, when configured, that is a JSON
 * integer.
 *
 * <p>What it makes is what Python makes, byte for byte: the dedup key, the version text, the content hash (SHA-256
 * truncated to 128 bits, over the op, the packed doubles and the canonical metadata JSON), and the pickled {@code
 * Change} holding the upsert's JSON ({@link ChangePickle}). tests/integration/test_jvm_decode.py holds the two
 * decoders to that on random records, with the Python decoder as the oracle.
 */
public final class FastDecoder implements Serializable {
    private static final long serialVersionUID = 1L;

    private static final byte[] ID_NAMESPACE = {
        (byte) 0x68, (byte) 0x4b, (byte) 0x84, (byte) 0xd4, (byte) 0x42, (byte) 0x52, (byte) 0x52, (byte) 0xa8,
        (byte) 0xb1, (byte) 0x6f, (byte) 0x14, (byte) 0xeb, (byte) 0x0a, (byte) 0xce, (byte) 0xc7, (byte) 0x8b
    };
    private static final byte[] HEX = "0123456789abcdef".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] UPSERT_TAG = "upsert\0".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] ID_PREFIX = "{\"id\":".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] VALUES_PREFIX = ",\"values\":[".getBytes(StandardCharsets.US_ASCII);
    private static final byte[] METADATA_PREFIX = ",\"metadata\":".getBytes(StandardCharsets.US_ASCII);
    private static final int MAX_ID_CHARS = 512;
    private static final int HASH_BYTES = 16;
    private static final VarHandle DOUBLE_LE =
            MethodHandles.byteArrayViewVarHandle(double[].class, ByteOrder.LITTLE_ENDIAN);
    /** Vector values must be finite as float32: below 1e38 (first digit's exponent at most 37) is always so. */
    private static final int MAX_VECTOR_EXPONENT = 37;

    /** The id strategies this path takes ({@code udfs.route_config.ID_STRATEGIES} less {@code none}). */
    public static final String KAFKA = "kafka";

    public static final String FIELD = "field";

    private final Map<String, String> namespaces;
    private final Map<String, String> labels;
    private final boolean idFromKey;
    private final boolean uuidIds;
    private final String idField;
    private final String vectorField;
    private final String sparseField;
    private final int dimension;
    private final boolean cosine;
    private final String versionField;
    private final int maxMetadataBytes;

    /** Leave the value out of a change whose record's dead letter would fit in this many bytes (0: any record;
     * -1: never), {@link #withValueRefetch}. */
    private long refetchValuesUpTo = -1;

    private transient MessageDigest sha1;
    private transient MessageDigest sha256;
    private transient byte[] packed;
    private transient JsonOut metadata;
    private transient JsonOut request;

    /**
     * @param topics the topics whose records this path takes, with {@code namespaces[i]} the namespace of {@code
     *     topics[i]} ({@code RouteConfig.namespace_for}) and {@code labels[i]} the namespace label of its counts
     *     ({@code DecodeFunction.namespace_label}); records of any other topic go to Python
     * @param idStrategy {@code kafka} or {@code field}
     * @param idFormat {@code uuid} or {@code raw}
     * @param idField the id field ({@code field} strategy), else null
     * @param sparseField the sparse vector field, or null: a record that has one goes to Python
     * @param versionField the version field, or null
     */
    public FastDecoder(
            String[] topics,
            String[] namespaces,
            String[] labels,
            String idStrategy,
            String idFormat,
            String idField,
            String vectorField,
            String sparseField,
            int dimension,
            String metric,
            String versionField,
            int maxMetadataBytes) {
        if (topics.length != namespaces.length || topics.length != labels.length) {
            throw new IllegalArgumentException("topics, namespaces and labels must be as many");
        }
        if (!KAFKA.equals(idStrategy) && !FIELD.equals(idStrategy)) {
            throw new IllegalArgumentException("the JVM decode path takes id strategies kafka and field, not " + idStrategy);
        }
        if (FIELD.equals(idStrategy) && idField == null) {
            throw new IllegalArgumentException("id strategy field needs an id field");
        }
        if (!"uuid".equals(idFormat) && !"raw".equals(idFormat)) {
            throw new IllegalArgumentException("id format must be uuid or raw, not " + idFormat);
        }
        this.namespaces = new HashMap<>();
        this.labels = new HashMap<>();
        for (int i = 0; i < topics.length; i++) {
            this.namespaces.put(topics[i], namespaces[i]);
            this.labels.put(topics[i], labels[i]);
        }
        this.idFromKey = KAFKA.equals(idStrategy);
        this.uuidIds = "uuid".equals(idFormat);
        this.idField = idField;
        this.vectorField = vectorField;
        this.sparseField = sparseField;
        this.dimension = dimension;
        this.cosine = "cosine".equals(metric);
        this.versionField = versionField;
        this.maxMetadataBytes = maxMetadataBytes;
    }

    /**
     * Room kept in a dead letter for what the sink adds to its record: the error context headers
     * ({@code sinks.dead_letter.DLQ_HEADER_NAMES}; the message at most {@code udfs.errors.MAX_MESSAGE_CHARS} = 1,000
     * characters, up to 4,000 bytes of UTF-8) and the refetch header, with a wide margin.
     */
    public static final long DEAD_LETTER_CONTEXT_BYTES = 16_384;

    /**
     * From now on, leave each record's value out of the change it decodes ({@link SourceRecord#withoutValue}) when
     * the record's dead letter would fit in {@code deadLetterMaxBytes} without truncation (0 or less: no limit), so
     * that the value, the largest part of a change, stops travelling through the exchanges and the Python sink. The
     * job then runs {@link ValueRefetch} on the sink's dead letters.
     *
     * @return this decoder
     */
    public FastDecoder withValueRefetch(long deadLetterMaxBytes) {
        this.refetchValuesUpTo = Math.max(0, deadLetterMaxBytes);
        return this;
    }

    /** The record as the change's {@code source}: without its value where {@link #withValueRefetch} allows. */
    private SourceRecord changeSource(SourceRecord record) {
        if (refetchValuesUpTo < 0
                || (refetchValuesUpTo > 0 && record.size() + DEAD_LETTER_CONTEXT_BYTES > refetchValuesUpTo)) {
            return record;
        }
        return record.withoutValue();
    }

    /** A record this path decoded: what the dedup operator reads, and the label of its namespace's counts. */
    public static final class Decoded {
        /** Namespace and id, NUL-separated ({@code Change.key}). */
        public final String key;
        /** The version as exact decimal text ({@code udfs.dedup.version_text}), or null. */
        public final String version;

        public final byte[] contentHash;
        /** The pickled {@code Change}. */
        public final byte[] payload;
        /** The namespace label of the record's vector counts. */
        public final String label;

        Decoded(String key, String version, byte[] contentHash, byte[] payload, String label) {
            this.key = key;
            this.version = version;
            this.contentHash = contentHash;
            this.payload = payload;
            this.label = label;
        }
    }

    /** The label of {@code topic}'s vector counts, or null when this path does not take the topic. */
    public String label(String topic) {
        return labels.get(topic);
    }

    /**
     * Decodes one Kafka record, or returns null when the Python decoder must (see the class doc). The record's headers
     * keep their order ({@code SourceRecord.headers}); a header's value may be null. The record becomes the change's
     * {@code source} as it is, or without its value ({@link #withValueRefetch}).
     */
    public Decoded decode(SourceRecord record) {
        String topic = record.topic;
        byte[] key = record.key;
        byte[] value = record.value;
        String namespace = namespaces.get(topic);
        if (namespace == null || value == null || value.length == 0) {
            return null;
        }
        Map<String, Object> row = JsonScan.object(value);
        if (row == null
                || (row.size() == 2 && row.containsKey("payload") && row.containsKey("schema"))
                || (row.containsKey("op") && row.containsKey("after") && row.containsKey("before"))
                || row.containsKey("__deleted")
                || row.containsKey("__op")) {
            return null;
        }
        String id = id(key, row);
        if (id == null) {
            return null;
        }
        Object vector = row.get(vectorField);
        if (!(vector instanceof List) || ((List<?>) vector).size() != dimension) {
            return null;
        }
        if (sparseField != null) {
            Object sparse = row.get(sparseField);
            if (sparse != null && sparse != JsonScan.NULL) {
                return null;
            }
        }
        BigInteger version = null;
        if (versionField != null) {
            Object raw = row.get(versionField);
            if (!(raw instanceof Num) || !((Num) raw).integer) {
                return null;
            }
            version = ((Num) raw).bigInteger();
        }
        byte[] metadataJson = metadataJson(row);
        if (metadataJson == null) {
            return null;
        }
        JsonOut out = request();
        out.reset();
        out.raw(ID_PREFIX).string(id).raw(VALUES_PREFIX);
        int digits = 0; // OR of the numbers' digit counts: 0 when every number is zero (no branch per number)
        List<?> items = (List<?>) vector;
        byte[] packed = packed(items.size());
        for (int i = 0; i < items.size(); i++) {
            if (!(items.get(i) instanceof Num)) {
                return null;
            }
            Num number = (Num) items.get(i);
            if (!number.hasFloatJson() || number.exp10 - 1 > MAX_VECTOR_EXPONENT) { // a zero passes (Num.ZERO_EXPONENT)
                return null;
            }
            digits |= number.digitCount();
            if (i > 0) {
                out.raw((byte) ',');
            }
            number.writeFloatJson(out);
            DOUBLE_LE.set(packed, 8 * i, number.doubleValue());
        }
        if (cosine && digits == 0) {
            return null;
        }
        out.raw((byte) ']');
        if (metadataJson.length > 2) { // not "{}": Python leaves out empty metadata
            out.raw(METADATA_PREFIX).raw(metadataJson);
        }
        out.raw((byte) '}');
        byte[] contentHash = contentHash(packed, 8 * items.size(), metadataJson);
        byte[] payload =
                ChangePickle.upsert(namespace, id, changeSource(record), version, contentHash, out.toBytes());
        return new Decoded(
                namespace + "\0" + id,
                version == null ? null : version.toString(),
                contentHash,
                payload,
                labels.get(topic));
    }

    /**
     * {@code _content_hash} of udfs/decode.py for an upsert with a dense vector and no text: SHA-256 of the op's tag,
     * the vector's doubles (little-endian, {@code struct.pack("<d")}) and the metadata JSON, truncated to 128 bits.
     */
    private byte[] contentHash(byte[] packed, int packedBytes, byte[] metadataJson) {
        if (sha256 == null) {
            sha256 = digest("SHA-256");
        }
        sha256.reset();
        sha256.update(UPSERT_TAG);
        sha256.update((byte) 'V');
        sha256.update(packed, 0, packedBytes);
        sha256.update((byte) 'M');
        sha256.update(metadataJson);
        return Arrays.copyOf(sha256.digest(), HASH_BYTES);
    }

    /** A new digest of {@code algorithm}, which every Java platform has (SHA-1, SHA-256). */
    private static MessageDigest digest(String algorithm) {
        try {
            return MessageDigest.getInstance(algorithm);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(algorithm + " is not available", e);
        }
    }

    /** A reused array for the doubles of a vector of {@code dimension} values. */
    private byte[] packed(int dimension) {
        if (packed == null || packed.length < 8 * dimension) {
            packed = new byte[8 * dimension];
        }
        return packed;
    }

    private JsonOut request() {
        if (request == null) {
            request = new JsonOut(8192);
        }
        return request;
    }

    /** The record's id ({@code udfs.ids.upsert_id}), or null for Python to decide. */
    private String id(byte[] key, Map<String, Object> row) {
        if (idFromKey) {
            if (key == null || key.length == 0) {
                return null;
            }
            if (uuidIds) {
                return uuidFor(key);
            }
            String text;
            try {
                text =
                        StandardCharsets.UTF_8
                                .newDecoder()
                                .onMalformedInput(CodingErrorAction.REPORT)
                                .onUnmappableCharacter(CodingErrorAction.REPORT)
                                .decode(ByteBuffer.wrap(key))
                                .toString();
            } catch (CharacterCodingException e) {
                return null;
            }
            return text.codePointCount(0, text.length()) <= MAX_ID_CHARS ? text : null;
        }
        Object raw = row.get(idField);
        String text;
        if (raw instanceof String) {
            text = (String) raw;
        } else if (raw instanceof Boolean) {
            text = ((Boolean) raw) ? "true" : "false";
        } else if (raw instanceof Num && ((Num) raw).integer) {
            text = ((Num) raw).integerText();
        } else {
            return null; // absent (or a dotted path into an object), null, a float, an array: Python's
        }
        if (text.isEmpty()) {
            return null;
        }
        if (uuidIds) {
            return uuidFor(text.getBytes(StandardCharsets.UTF_8));
        }
        return text.codePointCount(0, text.length()) <= MAX_ID_CHARS ? text : null;
    }

    /** {@code str(uuid5(ID_NAMESPACE, name))} for any bytes ({@code udfs.ids.uuid_for}). */
    String uuidFor(byte[] name) {
        if (sha1 == null) {
            sha1 = digest("SHA-1");
        }
        sha1.reset();
        sha1.update(ID_NAMESPACE);
        byte[] digest = sha1.digest(name);
        digest[6] = (byte) ((digest[6] & 0x0F) | 0x50);
        digest[8] = (byte) ((digest[8] & 0x3F) | 0x80);
        char[] text = new char[36];
        int at = 0;
        for (int i = 0; i < 16; i++) {
            if (i == 4 || i == 6 || i == 8 || i == 10) {
                text[at++] = '-';
            }
            text[at++] = (char) HEX[(digest[i] >> 4) & 0xF];
            text[at++] = (char) HEX[digest[i] & 0xF];
        }
        return new String(text);
    }

    /**
     * The canonical metadata JSON ({@code udfs.metadata.encode_metadata} of {@code flatten_metadata}): every
     * top-level field but the vector fields, nulls and {@code __} control fields, keys sorted by code point; null
     * when a field needs Python (an empty or {@code $} key, a list that is not all strings, a float this path does not
     * write) or the JSON is over the size limit.
     */
    private byte[] metadataJson(Map<String, Object> row) {
        List<String> keys = new ArrayList<>(row.size());
        for (Map.Entry<String, Object> field : row.entrySet()) {
            String name = field.getKey();
            Object value = field.getValue();
            if (value == JsonScan.NULL || name.equals(vectorField) || name.equals(sparseField)) {
                continue;
            }
            if (name.isEmpty() || name.charAt(0) == '$') {
                return null;
            }
            if (name.startsWith("__")) {
                continue;
            }
            keys.add(name);
        }
        keys.sort(FastDecoder::compareCodePoints);
        if (metadata == null) {
            metadata = new JsonOut(2048);
        }
        JsonOut out = metadata;
        out.reset();
        out.raw((byte) '{');
        for (int k = 0; k < keys.size(); k++) {
            String name = keys.get(k);
            if (k > 0) {
                out.raw((byte) ',');
            }
            out.string(name).raw((byte) ':');
            Object value = row.get(name);
            if (value instanceof String) {
                out.string((String) value);
            } else if (value instanceof Boolean) {
                out.ascii(((Boolean) value) ? "true" : "false");
            } else if (value instanceof Num) {
                Num number = (Num) value;
                if (number.integer) {
                    if (number.isExactInFloat()) {
                        out.ascii(number.integerText());
                    } else {
                        out.string(number.integerText()); // beyond 2**53: the decimal string, every digit kept
                    }
                } else {
                    if (!number.hasFloatJson()) {
                        return null;
                    }
                    number.writeFloatJson(out);
                }
            } else {
                List<?> items = (List<?>) value;
                out.raw((byte) '[');
                for (int i = 0; i < items.size(); i++) {
                    if (!(items.get(i) instanceof String)) {
                        return null;
                    }
                    if (i > 0) {
                        out.raw((byte) ',');
                    }
                    out.string((String) items.get(i));
                }
                out.raw((byte) ']');
            }
            if (out.size() > maxMetadataBytes) {
                return null;
            }
        }
        out.raw((byte) '}');
        return out.size() <= maxMetadataBytes ? out.toBytes() : null;
    }

    /** Python's str ordering (code points), which orjson's sorted keys follow; Java's compareTo is UTF-16 units. */
    static int compareCodePoints(String a, String b) {
        int i = 0;
        int j = 0;
        while (i < a.length() && j < b.length()) {
            int x = a.codePointAt(i);
            int y = b.codePointAt(j);
            if (x != y) {
                return Integer.compare(x, y);
            }
            i += Character.charCount(x);
            j += Character.charCount(y);
        }
        return Integer.compare(a.length() - i, b.length() - j);
    }
}
