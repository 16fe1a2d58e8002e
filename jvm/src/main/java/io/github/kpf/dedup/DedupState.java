package io.github.kpf.dedup;

import java.util.Arrays;
import java.util.Objects;

/**
 * What dedup remembers about one Pinecone record (one namespace and id): the highest applied version, the content
 * and text hashes of the last applied change, and whether that change was a delete (a tombstone).
 *
 * <p>A Flink POJO (public fields, public no-argument constructor), so the state serializer is Flink's POJO
 * serializer and the state can evolve by adding fields. The version is kept as the exact decimal text the Python
 * decode stage wrote ({@code udfs.dedup.version_text}), compared as a {@link java.math.BigDecimal}: Python
 * versions are integers of any size or floats, and both compare exactly that way.
 */
public class DedupState {
    /** Highest applied version as exact decimal text; null when no applied change carried one. */
    public String version;
    /**
     * Content hash of the last applied change, 128 bits from the decode stage: SHA-256 cut to 128 bits for an upsert
     * with a dense vector, BLAKE2b-128 for any other change (udfs/decode.py).
     */
    public byte[] contentHash;
    /** Text hash of the last applied upsert that was embedded; null otherwise. */
    public byte[] textHash;
    /** True when the last applied change was a delete. */
    public boolean deleted;
    /**
     * Chunks the last applied upsert wrote ({@code <id>#0 .. <id>#chunks-1}); 0 for a tombstone or an unchunked
     * record. Added with chunking: state written before has no such field and restores as 0 (Flink's POJO
     * serializer adds fields), which is right, since no chunks were written then.
     */
    public int chunks;

    public DedupState() {}

    public DedupState(String version, byte[] contentHash, byte[] textHash, boolean deleted) {
        this(version, contentHash, textHash, deleted, 0);
    }

    public DedupState(String version, byte[] contentHash, byte[] textHash, boolean deleted, int chunks) {
        this.version = version;
        this.contentHash = contentHash;
        this.textHash = textHash;
        this.deleted = deleted;
        this.chunks = chunks;
    }

    @Override
    public boolean equals(Object other) {
        if (!(other instanceof DedupState)) {
            return false;
        }
        DedupState that = (DedupState) other;
        return deleted == that.deleted
                && chunks == that.chunks
                && Objects.equals(version, that.version)
                && Arrays.equals(contentHash, that.contentHash)
                && Arrays.equals(textHash, that.textHash);
    }

    @Override
    public int hashCode() {
        return Objects.hash(version, Arrays.hashCode(contentHash), Arrays.hashCode(textHash), deleted, chunks);
    }

    @Override
    public String toString() {
        return "DedupState(version=" + version + ", deleted=" + deleted + ", chunks=" + chunks + ")";
    }
}
