"""The write path: every state change is journaled (when a data directory is set) and then applied to the store.

Each public mutating method takes already-validated input, appends one frame describing the change to the journal,
applies it, and returns. The frame is written before the method returns, so before the HTTP response is sent.
Replay decodes the same frames and calls the same ``_apply_*`` functions, so recovery rebuilds exactly the
acknowledged state. Frames are idempotent given their order (upserts carry whole records, updates carry the final
metadata), which keeps a snapshot-plus-log replay correct.
"""

from __future__ import annotations

import logging
import struct
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from .journal import Journal
from .limits import DEFAULT_COMPACT_BYTES, SNAPSHOT_CHUNK_RECORDS
from .store import IndexState, Namespace, Store
from .validation import MetadataDict, SparseVector, UpsertBatch, VectorSpace
from .wal import encode_frame

logger = logging.getLogger(__name__)

OP_CREATE_INDEX = 1
OP_DELETE_INDEX = 2
OP_UPSERT = 3
OP_DELETE_IDS = 4
OP_DELETE_NAMESPACE = 5
OP_UPDATE = 6
OP_CONFIGURE_INDEX = 7
OP_SET_METADATA_MANY = 8
OP_CREATE_NAMESPACE = 9
OP_DELETE_ALL = 10

_U32 = struct.Struct("<I")


def _sparse_to_json(sparse: SparseVector | None) -> list[list[Any]] | None:
    return None if sparse is None else [sparse[0].tolist(), sparse[1].tolist()]


def _sparse_from_json(raw: list[list[Any]] | None) -> SparseVector | None:
    if raw is None:
        return None
    return np.asarray(raw[0], dtype=np.uint32), np.asarray(raw[1], dtype=np.float32)


def _space_to_json(space: VectorSpace) -> dict[str, Any]:
    return {"dimension": space.dimension, "metric": space.metric, "sparse": space.sparse}


def _space_from_json(raw: dict[str, Any]) -> VectorSpace:
    return VectorSpace(dimension=int(raw["dimension"]), metric=str(raw["metric"]), sparse=bool(raw["sparse"]))


def _merge_metadata(current: MetadataDict | None, patch: MetadataDict) -> MetadataDict:
    merged = dict(current or {})
    merged.update(patch)
    return merged


class Engine:
    """Store plus optional journal; the only object that mutates the store."""

    def __init__(
        self,
        data_dir: Path | None = None,
        fsync: bool = False,
        compact_bytes: int = DEFAULT_COMPACT_BYTES,
        ack_log: Path | None = None,
    ):
        self.store = Store()
        self.compact_bytes = compact_bytes
        self.journal: Journal | None = None
        # Opt-in (benchmarks): one line per written record once applied; off by default, no cost when off.
        self._ack_log = open(ack_log, "a", encoding="utf-8") if ack_log is not None else None  # noqa: SIM115
        if data_dir is not None:
            self.journal = Journal(data_dir, fsync=fsync)
            replayed = 0
            for kind, payload in self.journal.recover():
                self._replay(kind, payload)
                replayed += 1
            logger.info("recovered %d journal records from %s", replayed, data_dir)

    # --- journaling -------------------------------------------------------------------------------------------------
    def _log(self, kind: int, payload: bytes) -> None:
        if self.journal is not None:
            self.journal.append(encode_frame(kind, payload))

    def maybe_compact(self) -> None:
        """Compact when the current log segment outgrew ``compact_bytes`` (call between requests)."""
        if self.journal is not None and self.journal.log_bytes > self.compact_bytes:
            self.journal.compact(self._snapshot_frames)

    def compact(self) -> None:
        """Compact now (used at clean shutdown and by tests)."""
        if self.journal is not None:
            self.journal.compact(self._snapshot_frames)

    def close(self) -> None:
        """Close the journal (and the acknowledgement log)."""
        if self.journal is not None:
            self.journal.close()
        if self._ack_log is not None:
            self._ack_log.close()
            self._ack_log = None

    def _acknowledge(self, index: str, namespace: str, ids: list[str]) -> None:
        """Append ``<time.time()> TAB <index> TAB <namespace> TAB <id>`` per written id to the acknowledgement log
        (when one is set), after the change is journaled and applied, i.e. just before the response is sent. The wall
        clock (``time.time()``) lets a client on the same machine join the lines with Kafka timestamps."""
        if self._ack_log is None or not ids:
            return
        prefix = f"{time.time():.6f}\t{index}\t{namespace}\t"
        self._ack_log.write("".join(f"{prefix}{vector_id}\n" for vector_id in ids))
        self._ack_log.flush()

    def _snapshot_frames(self) -> Iterator[bytes]:
        for index in self.store.indexes.values():
            yield encode_frame(OP_CREATE_INDEX, self._create_payload(index.name, index.space, index.description))
            for ns_name, ns in index.namespaces.items():
                yield encode_frame(OP_CREATE_NAMESPACE, self._namespace_payload(index.name, ns_name, ns.schema))
                for start in range(0, len(ns), SNAPSHOT_CHUNK_RECORDS):
                    rows = slice(start, min(len(ns), start + SNAPSHOT_CHUNK_RECORDS))
                    batch = UpsertBatch(
                        ids=ns.ids[rows], values=ns.dense[rows], metadata=ns.metadata[rows], sparse=ns.sparse[rows]
                    )
                    yield encode_frame(OP_UPSERT, self._upsert_payload(index.name, ns_name, batch))

    def _replay(self, kind: int, payload: bytes) -> None:
        if kind == OP_UPSERT:
            (header_len,) = _U32.unpack_from(payload, 0)
            header = orjson.loads(payload[4 : 4 + header_len])
            index = self.store.indexes[header["i"]]
            values = np.frombuffer(payload[4 + header_len :], dtype=np.float32).reshape(
                len(header["ids"]), index.space.dimension
            )
            batch = UpsertBatch(
                ids=header["ids"],
                values=values,
                metadata=header["m"],
                sparse=[_sparse_from_json(s) for s in header["s"]],
            )
            self._apply_upsert(index, header["n"], batch)
            return
        op = orjson.loads(payload)
        if kind == OP_CREATE_INDEX:
            self._apply_create(op["name"], _space_from_json(op["space"]), op["description"])
        elif kind == OP_DELETE_INDEX:
            self.store.indexes.pop(op["name"], None)
        elif kind == OP_CONFIGURE_INDEX:
            self.store.indexes[op["name"]].description = op["description"]
        elif kind == OP_DELETE_IDS:
            self._apply_delete_ids(self.store.indexes[op["i"]], op["n"], op["ids"])
        elif kind == OP_DELETE_NAMESPACE:
            self.store.indexes[op["i"]].namespaces.pop(op["n"], None)
        elif kind == OP_CREATE_NAMESPACE:
            self._apply_create_namespace(self.store.indexes[op["i"]], op["n"], op.get("schema"))
        elif kind == OP_DELETE_ALL:
            self._apply_delete_all(self.store.indexes[op["i"]], op["n"])
        elif kind == OP_UPDATE:
            new_values = None if op["v"] is None else np.asarray(op["v"], dtype=np.float32)
            index = self.store.indexes[op["i"]]
            self._apply_update(index, op["n"], op["id"], new_values, _sparse_from_json(op["s"]), op["m"])
        elif kind == OP_SET_METADATA_MANY:
            self._apply_set_metadata_many(self.store.indexes[op["i"]], op["n"], op["ids"], op["patch"])
        else:
            raise ValueError(f"unknown journal record type {kind}")

    # --- control plane ----------------------------------------------------------------------------------------------
    @staticmethod
    def _create_payload(name: str, space: VectorSpace, description: dict[str, Any]) -> bytes:
        return orjson.dumps({"name": name, "space": _space_to_json(space), "description": description})

    def _apply_create(self, name: str, space: VectorSpace, description: dict[str, Any]) -> IndexState:
        index = IndexState(name=name, space=space, description=description)
        self.store.indexes[name] = index
        return index

    def create_index(self, name: str, space: VectorSpace, description: dict[str, Any]) -> IndexState:
        """Create an index (the caller checked that the name is free)."""
        self._log(OP_CREATE_INDEX, self._create_payload(name, space, description))
        return self._apply_create(name, space, description)

    def delete_index(self, name: str) -> None:
        """Delete an index and all its records."""
        self._log(OP_DELETE_INDEX, orjson.dumps({"name": name}))
        self.store.indexes.pop(name, None)

    def configure_index(self, name: str, description: dict[str, Any]) -> None:
        """Replace an index's stored description (deletion protection, tags)."""
        self._log(OP_CONFIGURE_INDEX, orjson.dumps({"name": name, "description": description}))
        self.store.indexes[name].description = description

    # --- data plane -------------------------------------------------------------------------------------------------
    @staticmethod
    def _upsert_payload(index: str, namespace: str, batch: UpsertBatch) -> bytes:
        header = orjson.dumps(
            {
                "i": index,
                "n": namespace,
                "ids": batch.ids,
                "m": batch.metadata,
                "s": [_sparse_to_json(s) for s in batch.sparse],
            }
        )
        return _U32.pack(len(header)) + header + np.ascontiguousarray(batch.values, dtype=np.float32).tobytes()

    @staticmethod
    def _note_sparse(index: IndexState) -> None:
        """A dense index that receives sparse values gains the ``_sparse_values`` schema field (kept in the
        description, so the snapshot and every replay carry it)."""
        if not index.space.sparse and not index.description.get("sparse_field"):
            index.description["sparse_field"] = True

    def _apply_upsert(self, index: IndexState, namespace: str, batch: UpsertBatch) -> None:
        index.namespace_for_write(namespace).upsert(batch)
        if any(s is not None for s in batch.sparse):
            self._note_sparse(index)

    def upsert(self, index: IndexState, namespace: str, batch: UpsertBatch) -> int:
        """Insert or replace records; returns how many were upserted."""
        if self.journal is not None:
            self._log(OP_UPSERT, self._upsert_payload(index.name, namespace, batch))
        self._apply_upsert(index, namespace, batch)
        self._acknowledge(index.name, namespace, batch.ids)
        return len(batch.ids)

    def _apply_delete_ids(self, index: IndexState, namespace: str, ids: list[str]) -> None:
        ns = index.namespace(namespace)
        if ns is not None:
            ns.delete(ids)

    def delete_ids(self, index: IndexState, namespace: str, ids: list[str]) -> None:
        """Delete records by id (unknown ids are ignored)."""
        self._log(OP_DELETE_IDS, orjson.dumps({"i": index.name, "n": namespace, "ids": ids}))
        self._apply_delete_ids(index, namespace, ids)

    def delete_namespace(self, index: IndexState, namespace: str) -> None:
        """Delete every record of a namespace, and the namespace with them."""
        self._log(OP_DELETE_NAMESPACE, orjson.dumps({"i": index.name, "n": namespace}))
        index.namespaces.pop(namespace, None)

    @staticmethod
    def _apply_delete_all(index: IndexState, namespace: str) -> None:
        current = index.namespace(namespace)
        if current is not None:
            index.namespaces[namespace] = type(current)(index.space, current.schema)

    def delete_all(self, index: IndexState, namespace: str) -> None:
        """Delete every record of a namespace and keep the (now empty) namespace."""
        if index.namespace(namespace) is None:
            return
        self._log(OP_DELETE_ALL, orjson.dumps({"i": index.name, "n": namespace}))
        self._apply_delete_all(index, namespace)

    @staticmethod
    def _namespace_payload(index: str, namespace: str, schema: dict[str, Any] | None) -> bytes:
        return orjson.dumps({"i": index, "n": namespace, "schema": schema})

    @staticmethod
    def _apply_create_namespace(index: IndexState, namespace: str, schema: dict[str, Any] | None) -> None:
        index.namespace_for_write(namespace).schema = schema

    def create_namespace(self, index: IndexState, namespace: str, schema: dict[str, Any] | None) -> Namespace:
        """Create an empty namespace (the caller checked that it does not exist)."""
        self._log(OP_CREATE_NAMESPACE, self._namespace_payload(index.name, namespace, schema))
        self._apply_create_namespace(index, namespace, schema)
        return index.namespaces[namespace]

    def _apply_update(
        self,
        index: IndexState,
        namespace: str,
        vector_id: str,
        values: np.ndarray | None,
        sparse: SparseVector | None,
        metadata: MetadataDict | None,
    ) -> None:
        ns: Namespace | None = index.namespace(namespace)
        if ns is not None and vector_id in ns.rows:
            ns.update(vector_id, values, sparse, metadata)
            if sparse is not None:
                self._note_sparse(index)

    def update(
        self,
        index: IndexState,
        namespace: str,
        vector_id: str,
        values: np.ndarray | None,
        sparse: SparseVector | None,
        metadata: MetadataDict | None,
    ) -> None:
        """Update one existing record; ``metadata`` is the complete merged metadata to store."""
        self._log(
            OP_UPDATE,
            orjson.dumps(
                {
                    "i": index.name,
                    "n": namespace,
                    "id": vector_id,
                    "v": None if values is None else values.tolist(),
                    "s": _sparse_to_json(sparse),
                    "m": metadata,
                }
            ),
        )
        self._apply_update(index, namespace, vector_id, values, sparse, metadata)
        self._acknowledge(index.name, namespace, [vector_id])

    def _apply_set_metadata_many(self, index: IndexState, namespace: str, ids: list[str], patch: MetadataDict) -> None:
        ns = index.namespace(namespace)
        if ns is None:
            return
        for vector_id in ids:
            row = ns.rows.get(vector_id)
            if row is not None:
                ns.set_metadata(row, _merge_metadata(ns.metadata[row], patch))

    def set_metadata_many(self, index: IndexState, namespace: str, ids: list[str], patch: MetadataDict) -> None:
        """Merge ``patch`` into the metadata of each listed record."""
        self._log(OP_SET_METADATA_MANY, orjson.dumps({"i": index.name, "n": namespace, "ids": ids, "patch": patch}))
        self._apply_set_metadata_many(index, namespace, ids, patch)
        self._acknowledge(index.name, namespace, ids)


def merged_metadata(current: MetadataDict | None, patch: MetadataDict) -> MetadataDict:
    """``current`` with ``patch``'s keys set (Pinecone's setMetadata semantics)."""
    return _merge_metadata(current, patch)
