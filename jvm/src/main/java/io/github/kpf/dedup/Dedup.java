package io.github.kpf.dedup;

import java.math.BigDecimal;
import java.util.Arrays;
import java.util.Objects;

/**
 * The dedup rules: what to do with one change of a record given what the record's state says.
 *
 * <p>These are the rules the job runs. In short: a versioned change older than the state's version is stale; an
 * upsert with the content hash of the live state is unchanged; a delete of a tombstone is unchanged; everything else
 * is applied, and the state keeps the highest version seen. They are documented in the module docstring of {@code
 * udfs.dedup}, whose {@code udfs.dedup.decide} is their Python test oracle, not used by the job: the JUnit tests
 * (DedupTest, DedupFunctionTest) pin the rules and the operator, and tests/unit/test_dedup_jvm.py and
 * tests/unit/test_dedup.py require this class and the oracle to decide alike.
 */
public final class Dedup {
    /** Apply the change. */
    public static final int EMIT = 0;
    /** Drop it: it changes nothing. */
    public static final int SKIP_UNCHANGED = 1;
    /** Drop it: a newer version was applied. */
    public static final int SKIP_STALE = 2;

    private Dedup() {}

    /** What {@link #decide} returns; {@code state} is the state to store, or null to leave the stored one. */
    public static final class Decision {
        public final int action;
        public final DedupState state;
        /** For an emitted change: the record held a live applied version (an update, not an insert). */
        public final boolean replaces;
        /** For an emitted upsert that replaces a live record: its text hash equals the stored one. */
        public final boolean textUnchanged;
        /** For an emitted change: the chunks of the live version it replaces (0 when none, or not chunked). */
        public final int previousChunks;

        Decision(int action, DedupState state, boolean replaces, boolean textUnchanged) {
            this(action, state, replaces, textUnchanged, 0);
        }

        Decision(int action, DedupState state, boolean replaces, boolean textUnchanged, int previousChunks) {
            this.action = action;
            this.state = state;
            this.replaces = replaces;
            this.textUnchanged = textUnchanged;
            this.previousChunks = previousChunks;
        }
    }

    /** Compares two versions given as exact decimal text (see {@link DedupState#version}). */
    public static int compareVersions(String a, String b) {
        if (a.equals(b)) {
            return 0;
        }
        return new BigDecimal(a).compareTo(new BigDecimal(b));
    }

    private static String maxVersion(String stored, String incoming) {
        if (incoming == null) {
            return stored;
        }
        if (stored == null) {
            return incoming;
        }
        return compareVersions(incoming, stored) > 0 ? incoming : stored;
    }

    /**
     * Decides what to do with a change.
     *
     * @param state the record's state, or null when the record was never seen
     * @param delete whether the change is a delete
     * @param version the change's version as exact decimal text, or null (arrival order)
     * @param contentHash the change's content hash; empty means not computed (never matches)
     * @param textHash the change's text hash when it is to be embedded, else null
     */
    public static Decision decide(
            DedupState state, boolean delete, String version, byte[] contentHash, byte[] textHash) {
        return decide(state, delete, version, contentHash, textHash, 0);
    }

    /**
     * {@link #decide(DedupState, boolean, String, byte[], byte[])} for a change that writes {@code chunks} chunks
     * (0: not chunked): the state keeps the count of an applied upsert, and an emitted change learns the count of the
     * live version it replaces ({@link Decision#previousChunks}).
     */
    public static Decision decide(
            DedupState state, boolean delete, String version, byte[] contentHash, byte[] textHash, int chunks) {
        if (state == null) {
            DedupState created =
                    delete
                            ? new DedupState(version, contentHash, null, true)
                            : new DedupState(version, contentHash, textHash, false, chunks);
            return new Decision(EMIT, created, false, false);
        }
        if (version != null && state.version != null && compareVersions(version, state.version) < 0) {
            return new Decision(SKIP_STALE, null, false, false);
        }
        String highest = maxVersion(state.version, version);
        boolean raised = !Objects.equals(highest, state.version);
        if (delete) {
            if (state.deleted) {
                DedupState kept = raised ? new DedupState(highest, state.contentHash, null, true) : null;
                return new Decision(SKIP_UNCHANGED, kept, false, false);
            }
            return new Decision(EMIT, new DedupState(highest, contentHash, null, true), true, false, state.chunks);
        }
        if (!state.deleted
                && contentHash != null
                && contentHash.length > 0
                && Arrays.equals(contentHash, state.contentHash)) {
            DedupState kept =
                    raised ? new DedupState(highest, state.contentHash, state.textHash, false, state.chunks) : null;
            return new Decision(SKIP_UNCHANGED, kept, false, false);
        }
        boolean replaces = !state.deleted;
        boolean textUnchanged = replaces && textHash != null && Arrays.equals(textHash, state.textHash);
        return new Decision(
                EMIT,
                new DedupState(highest, contentHash, textHash, false, chunks),
                replaces,
                textUnchanged,
                replaces ? state.chunks : 0);
    }
}
