package io.github.kpf.dedup;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import org.apache.flink.api.common.typeinfo.TypeInformation;
import org.apache.flink.api.java.typeutils.PojoTypeInfo;
import org.junit.jupiter.api.Test;

/** The dedup rules ({@link Dedup#decide}): the decision and the state each one leaves. */
class DedupTest {
    private static byte[] hash(String text) {
        return text.getBytes(StandardCharsets.UTF_8);
    }

    private static DedupState live(String version, String content, String text) {
        return new DedupState(version, hash(content), hash(text), false);
    }

    @Test
    void aFirstUpsertIsAnInsertAndStoresItsVersionAndHashes() {
        Dedup.Decision d = Dedup.decide(null, false, "3", hash("c"), hash("t"));
        assertEquals(Dedup.EMIT, d.action);
        assertFalse(d.replaces);
        assertEquals(live("3", "c", "t"), d.state);
    }

    @Test
    void anUnchangedUpsertWithANewerVersionRaisesTheStoredVersionOnly() {
        Dedup.Decision d = Dedup.decide(live("5", "c", "t"), false, "7", hash("c"), hash("t"));
        assertEquals(Dedup.SKIP_UNCHANGED, d.action);
        assertEquals(live("7", "c", "t"), d.state);
        Dedup.Decision same = Dedup.decide(live("5", "c", "t"), false, "5", hash("c"), hash("t"));
        assertEquals(Dedup.SKIP_UNCHANGED, same.action);
        assertNull(same.state); // nothing to write
    }

    @Test
    void aStaleChangeWritesNothing() {
        Dedup.Decision d = Dedup.decide(live("5", "c", "t"), false, "4", hash("new"), hash("new"));
        assertEquals(Dedup.SKIP_STALE, d.action);
        assertNull(d.state);
    }

    @Test
    void anUnversionedChangeKeepsTheHighestVersionSoFar() {
        Dedup.Decision d = Dedup.decide(live("5", "c", "t"), false, null, hash("new"), hash("t"));
        assertEquals(Dedup.EMIT, d.action);
        assertTrue(d.replaces);
        assertTrue(d.textUnchanged);
        assertEquals(live("5", "new", "t"), d.state);
    }

    @Test
    void anUpdateWithNewTextIsNotTextUnchanged() {
        Dedup.Decision d = Dedup.decide(live("5", "c", "t"), false, "6", hash("new"), hash("other"));
        assertTrue(d.replaces);
        assertFalse(d.textUnchanged);
    }

    @Test
    void aDeleteLeavesATombstoneAndARepeatedDeleteOnlyRaisesItsVersion() {
        Dedup.Decision d = Dedup.decide(live("5", "c", "t"), true, "6", hash("delete"), null);
        assertEquals(Dedup.EMIT, d.action);
        assertTrue(d.replaces);
        assertEquals(new DedupState("6", hash("delete"), null, true), d.state);
        Dedup.Decision again = Dedup.decide(d.state, true, "8", hash("delete"), null);
        assertEquals(Dedup.SKIP_UNCHANGED, again.action);
        assertEquals(new DedupState("8", hash("delete"), null, true), again.state);
    }

    @Test
    void anUpsertAfterADeleteIsAReinsertEvenWithTheOldContent() {
        DedupState tombstone = new DedupState("6", hash("c"), null, true);
        Dedup.Decision d = Dedup.decide(tombstone, false, "7", hash("c"), hash("t"));
        assertEquals(Dedup.EMIT, d.action);
        assertFalse(d.replaces);
        assertFalse(d.textUnchanged);
    }

    @Test
    void versionsCompareExactly() {
        assertEquals(0, Dedup.compareVersions("2", "2.0"));
        assertEquals(1, Dedup.compareVersions("9007199254740993", "9007199254740992"));
        assertEquals(1, Dedup.compareVersions("0.1000000000000000055511151231257827021181583404541015625", "0"));
        assertEquals(-1, Dedup.compareVersions("-1", "0.5"));
    }

    @Test
    void theStateKeepsTheChunksOfTheAppliedVersionAndAnEmittedChangeLearnsThoseItReplaces() {
        Dedup.Decision first = Dedup.decide(null, false, "1", hash("c1"), hash("t1"), 5);
        assertEquals(0, first.previousChunks);
        assertEquals(5, first.state.chunks);
        Dedup.Decision shrink = Dedup.decide(first.state, false, "2", hash("c2"), hash("t2"), 2);
        assertEquals(Dedup.EMIT, shrink.action);
        assertEquals(5, shrink.previousChunks);
        assertEquals(2, shrink.state.chunks);
        Dedup.Decision raised = Dedup.decide(shrink.state, false, "3", hash("c2"), hash("t2"), 2);
        assertEquals(Dedup.SKIP_UNCHANGED, raised.action);
        assertEquals(2, raised.state.chunks); // a raised version keeps the chunk count
        Dedup.Decision stale = Dedup.decide(raised.state, false, "1", hash("c9"), hash("t9"), 9);
        assertEquals(Dedup.SKIP_STALE, stale.action);
        Dedup.Decision delete = Dedup.decide(raised.state, true, "4", hash("d"), null, 0);
        assertEquals(Dedup.EMIT, delete.action);
        assertEquals(2, delete.previousChunks);
        assertEquals(0, delete.state.chunks);
        Dedup.Decision reinsert = Dedup.decide(delete.state, false, "5", hash("c3"), hash("t3"), 3);
        assertEquals(0, reinsert.previousChunks); // nothing live after a tombstone
        assertEquals(3, reinsert.state.chunks);
    }

    @Test
    void theStateStaysAFlinkPojoSoThatAddingTheChunkCountIsASchemaEvolution() {
        // Flink's POJO serializer restores state written before a field was added (the field keeps its default, 0
        // chunks here); a state type that fell back to Kryo would not evolve.
        TypeInformation<DedupState> type = TypeInformation.of(DedupState.class);
        assertTrue(type instanceof PojoTypeInfo, type.toString());
        assertTrue(((PojoTypeInfo<DedupState>) type).getFieldIndex("chunks") >= 0);
        assertEquals(0, new DedupState().chunks);
    }
}
