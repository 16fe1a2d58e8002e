"""Acknowledged writes survive kill -9 and restart; a torn last record is harmless."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from kafka_pinecone_flink.pinecone_local.launcher import start_pinecone_local, unique_index_name

pytestmark = pytest.mark.integration


def test_every_acknowledged_write_survives_kill_9(tmp_path: Path) -> None:
    server = start_pinecone_local(data_dir=tmp_path / "data")
    try:
        pc = server.client()
        name = unique_index_name()
        host = pc.indexes.create(name=name, dimension=4, metric="euclidean").host
        idx = pc.index(host=host)
        rng = np.random.default_rng(0)
        values = rng.normal(size=(300, 4)).astype(np.float32)
        for start in range(0, 300, 50):
            idx.upsert(
                vectors=[(f"v{i}", values[i].tolist(), {"i": i}) for i in range(start, start + 50)], namespace="n"
            )
        idx.delete(ids=["v0", "v1"], namespace="n")
        idx.update(id="v2", set_metadata={"updated": True}, namespace="n")
        pc.indexes.create(name=name + "-gone", dimension=2)
        pc.indexes.delete(name + "-gone")

        server.kill()
        server.restart()

        pc = server.client()
        assert [i.name for i in pc.indexes.list()] == [name]
        idx = pc.index(name=name)
        assert idx.describe_index_stats().namespaces["n"].vector_count == 298
        fetched = idx.fetch(ids=["v0", "v2", "v299"], namespace="n").vectors
        assert set(fetched) == {"v2", "v299"}
        assert fetched["v2"].metadata == {"i": 2.0, "updated": True}
        assert fetched["v299"].values == pytest.approx(values[299].tolist())
    finally:
        server.kill()


def test_writes_acknowledged_during_concurrent_load_survive_kill_9(tmp_path: Path) -> None:
    server = start_pinecone_local(data_dir=tmp_path / "data")
    try:
        pc = server.client()
        host = pc.indexes.create(name=unique_index_name(), dimension=8).host
        acknowledged: list[str] = []
        lock = threading.Lock()
        stop = threading.Event()

        def writer(worker: int) -> None:
            idx = pc.index(host=host)
            n = 0
            while not stop.is_set():
                ids = [f"w{worker}-{n}-{k}" for k in range(20)]
                try:
                    idx.upsert(vectors=[(i, [1.0] * 8) for i in ids])
                except Exception:  # noqa: BLE001 - the kill interrupts in-flight requests
                    return
                with lock:
                    acknowledged.extend(ids)
                n += 1

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(3)]
        for t in threads:
            t.start()
        while len(acknowledged) < 600:
            threading.Event().wait(0.02)
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=30)

        server.restart()
        idx = server.client().index(host=host)
        stored = {item.id for page in idx.list() for item in page.vectors}
        assert set(acknowledged) <= stored
    finally:
        server.kill()


def test_clean_stop_compacts_and_restart_restores_state(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_pinecone_local(data_dir=data)
    try:
        pc = server.client()
        host = pc.indexes.create(name=unique_index_name(), dimension=2, metric="dotproduct").host
        pc.index(host=host).upsert(vectors=[("a", [1.0, 2.0]), ("b", [3.0, 4.0])], namespace="x")
        server.stop()
        assert (data / "snapshot.bin").exists()
        assert [p.name for p in data.glob("wal-*.log")] == ["wal-00000002.log"]
        server.restart()
        assert server.client().index(host=host).fetch(ids=["b"], namespace="x").vectors["b"].values == [3.0, 4.0]
    finally:
        server.kill()


def test_a_torn_record_at_the_end_of_the_log_is_ignored_on_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_pinecone_local(data_dir=data)
    try:
        pc = server.client()
        host = pc.indexes.create(name=unique_index_name(), dimension=2).host
        pc.index(host=host).upsert(vectors=[("a", [1.0, 0.0])])
        server.kill()
        with open(data / "wal-00000001.log", "ab") as handle:
            handle.write(b"\xff\x00\x00\x00\x12\x34\x56\x78partial")
        server.restart()
        idx = server.client().index(host=host)
        assert idx.describe_index_stats().total_vector_count == 1
        idx.upsert(vectors=[("b", [0.0, 1.0])])
        server.kill()
        server.restart()
        assert server.client().index(host=host).describe_index_stats().total_vector_count == 2
    finally:
        server.kill()
