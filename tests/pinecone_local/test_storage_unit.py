"""Unit tests of the log framing, the journal and the in-process engine (no server)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from kafka_pinecone_flink.pinecone_local.engine import Engine
from kafka_pinecone_flink.pinecone_local.store import Namespace
from kafka_pinecone_flink.pinecone_local.validation import UpsertBatch, VectorSpace
from kafka_pinecone_flink.pinecone_local.wal import encode_frame, read_frames

pytestmark = pytest.mark.unit

SPACE = VectorSpace(dimension=4, metric="cosine", sparse=False)


def batch(ids: list[str], seed: int = 0) -> UpsertBatch:
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(len(ids), SPACE.dimension)).astype(np.float32)
    return UpsertBatch(
        ids=ids, values=values, metadata=[{"i": float(n)} for n in range(len(ids))], sparse=[None] * len(ids)
    )


def namespace(engine: Engine, index: str, name: str) -> Namespace:
    state = engine.store.get(index)
    assert state is not None
    ns = state.namespace(name)
    assert ns is not None
    return ns


def test_a_torn_last_frame_is_dropped_and_earlier_frames_survive() -> None:
    data = encode_frame(3, b"first") + encode_frame(3, b"second")
    torn = data + encode_frame(3, b"third")[:-2]
    frames, good = read_frames(torn)
    assert [p for _, p in frames] == [b"first", b"second"]
    assert good == len(data)


def test_a_corrupted_frame_ends_the_log() -> None:
    first = encode_frame(1, b"ok")
    second = bytearray(encode_frame(1, b"flipped"))
    second[-1] ^= 0xFF
    frames, good = read_frames(first + bytes(second))
    assert len(frames) == 1 and good == len(first)


def test_engine_recovers_every_write_from_its_log(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    index = engine.create_index("a", SPACE, {"deployment": {}, "deletion_protection": "disabled"})
    engine.upsert(index, "ns", batch(["x", "y", "z"]))
    engine.delete_ids(index, "ns", ["y"])
    engine.update(index, "ns", "x", None, None, {"i": 7.0})
    expected = namespace(engine, "a", "ns").dense.copy()
    engine.close()

    again = Engine(tmp_path)
    ns = namespace(again, "a", "ns")
    assert sorted(ns.ids) == ["x", "z"]
    assert ns.metadata[ns.rows["x"]] == {"i": 7.0}
    assert np.array_equal(ns.dense, expected)


def test_compaction_keeps_state_and_drops_old_log_segments(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    index = engine.create_index("a", SPACE, {"deployment": {}, "deletion_protection": "disabled"})
    engine.upsert(index, "", batch([f"id{i}" for i in range(50)]))
    engine.compact()
    engine.delete_ids(index, "", ["id0"])
    engine.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snapshot.bin", "wal-00000002.log"]

    again = Engine(tmp_path)
    assert len(namespace(again, "a", "")) == 49


def test_a_torn_log_tail_is_truncated_on_recovery(tmp_path: Path) -> None:
    engine = Engine(tmp_path)
    index = engine.create_index("a", SPACE, {"deployment": {}, "deletion_protection": "disabled"})
    engine.upsert(index, "", batch(["kept"]))
    engine.close()
    log = tmp_path / "wal-00000001.log"
    intact = log.stat().st_size
    with open(log, "ab") as handle:
        handle.write(b"\x40\x00\x00\x00garbage")

    again = Engine(tmp_path)
    assert namespace(again, "a", "").ids == ["kept"]
    assert log.stat().st_size == intact


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_search_returns_the_brute_force_top_k(metric: str) -> None:
    rng = np.random.default_rng(1)
    space = VectorSpace(dimension=16, metric=metric, sparse=False)
    engine = Engine()
    index = engine.create_index("a", space, {"deployment": {}, "deletion_protection": "disabled"})
    values = rng.normal(size=(500, 16)).astype(np.float32)
    ids = [f"v{i}" for i in range(500)]
    engine.upsert(index, "", UpsertBatch(ids, values, [None] * 500, [None] * 500))
    query = rng.normal(size=16).astype(np.float32)
    v64, q64 = values.astype(np.float64), query.astype(np.float64)
    if metric == "cosine":
        ref = v64 @ q64 / (np.linalg.norm(v64, axis=1) * np.linalg.norm(q64))
        order = np.argsort(-ref)
    elif metric == "dotproduct":
        ref = v64 @ q64
        order = np.argsort(-ref)
    else:
        ref = ((v64 - q64) ** 2).sum(axis=1)
        order = np.argsort(ref)
    matches = namespace(engine, "a", "").search(query, None, 10, None)
    assert [ids[m.row] for m in matches] == [ids[i] for i in order[:10]]
    assert np.allclose([m.score for m in matches], ref[order[:10]], rtol=1e-9, atol=1e-9)
