"""In-memory vector store: indexes, namespaces, records, and exact search.

A namespace exists from its first write (or ``POST /namespaces``) until ``DELETE /namespaces/{name}``; deleting its
records, even all of them, leaves it in place (empty), as in Pinecone.

A namespace keeps its dense vectors in one float32 matrix that grows by doubling, plus parallel Python lists for
ids, metadata and sparse vectors; deletes move the last row into the hole, so rows stay dense. Metadata keys that
filters have used also live in columnar form (``columns``), kept in step by every mutator here, so filters are
evaluated as numpy masks. Mutating methods assume their input was validated (see ``validation``) and never fail
half-way.

Thread safety: the server calls the store only from its event-loop thread, so operations are serialised; the store
itself holds no locks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .columns import KeyColumn, MetadataColumns
from .search import Match, top_matches
from .validation import MetadataDict, SparseVector, UpsertBatch, VectorSpace

_INITIAL_CAPACITY = 64


class RowFilter(Protocol):
    """What ``matching_rows`` needs of a compiled filter (``filters.Filter``)."""

    def mask(self, source: Namespace) -> np.ndarray:
        """One boolean per live row of ``source``."""


class Namespace:
    """The records of one namespace of one index."""

    def __init__(self, space: VectorSpace, schema: dict[str, Any] | None = None) -> None:
        self.space = space
        self.schema = schema
        """The metadata schema given to ``POST /namespaces`` (``{"fields": {name: {"filterable": true}}}``), if any."""
        self.ids: list[str] = []
        self.rows: dict[str, int] = {}
        self.matrix = np.zeros((_INITIAL_CAPACITY, space.dimension), dtype=np.float32)
        self.sq_norms = np.zeros(_INITIAL_CAPACITY, dtype=np.float32)
        self.metadata: list[MetadataDict | None] = []
        self.sparse: list[SparseVector | None] = []
        self.sparse_count = 0
        self._sorted_ids: list[str] | None = None
        self.columns = MetadataColumns()

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dense(self) -> np.ndarray:
        """The live rows of the matrix (a view)."""
        return self.matrix[: len(self.ids)]

    def _reserve(self, needed: int) -> None:
        capacity = self.matrix.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        matrix = np.zeros((capacity, self.space.dimension), dtype=np.float32)
        matrix[: len(self.ids)] = self.dense
        norms = np.zeros(capacity, dtype=np.float32)
        norms[: len(self.ids)] = self.sq_norms[: len(self.ids)]
        self.matrix, self.sq_norms = matrix, norms

    def upsert(self, batch: UpsertBatch) -> None:
        """Insert or wholly replace each record of ``batch`` (ids in ``batch`` are unique)."""
        count = len(batch.ids)
        start = len(self.ids)
        self._reserve(start + count)
        rows: slice | np.ndarray
        if self.rows.keys().isdisjoint(batch.ids):
            # All ids are new (the usual case when loading): append with list/dict bulk operations.
            self.rows.update(zip(batch.ids, range(start, start + count), strict=True))
            self.ids.extend(batch.ids)
            self.metadata.extend(batch.metadata)
            self.sparse.extend(batch.sparse)
            self.sparse_count += count - batch.sparse.count(None)
            self._sorted_ids = None
            rows = slice(start, start + count)
            if self.columns.columns:
                self.columns.set_rows(range(start, start + count), batch.metadata, len(self.ids))
        else:
            rows = self._upsert_rows(batch)
        if self.space.dimension:
            self.matrix[rows] = batch.values
            self.sq_norms[rows] = np.einsum("ij,ij->i", batch.values, batch.values)

    def _upsert_rows(self, batch: UpsertBatch) -> np.ndarray:
        rows = np.empty(len(batch.ids), dtype=np.int64)
        for position, vector_id in enumerate(batch.ids):
            row = self.rows.get(vector_id)
            if row is None:
                row = len(self.ids)
                self.rows[vector_id] = row
                self.ids.append(vector_id)
                self.metadata.append(batch.metadata[position])
                self.sparse.append(batch.sparse[position])
                self.sparse_count += batch.sparse[position] is not None
                self._sorted_ids = None
            else:
                self.metadata[row] = batch.metadata[position]
                self.sparse_count += (batch.sparse[position] is not None) - (self.sparse[row] is not None)
                self.sparse[row] = batch.sparse[position]
            rows[position] = row
        if self.columns.columns:
            self.columns.set_rows(rows.tolist(), batch.metadata, len(self.ids))
        return rows

    def delete(self, ids: Iterable[str]) -> int:
        """Remove the given ids (unknown ids are ignored); returns how many were removed."""
        removed = 0
        for vector_id in ids:
            row = self.rows.pop(vector_id, None)
            if row is None:
                continue
            removed += 1
            self.sparse_count -= self.sparse[row] is not None
            last = len(self.ids) - 1
            if row != last:
                moved = self.ids[last]
                self.ids[row] = moved
                self.rows[moved] = row
                self.metadata[row] = self.metadata[last]
                self.sparse[row] = self.sparse[last]
                self.matrix[row] = self.matrix[last]
                self.sq_norms[row] = self.sq_norms[last]
                self.columns.move(last, row)
            else:
                self.columns.clear_row(row)
            self.ids.pop()
            self.metadata.pop()
            self.sparse.pop()
        if removed:
            self._sorted_ids = None
        return removed

    def update(
        self,
        vector_id: str,
        values: np.ndarray | None,
        sparse: SparseVector | None,
        metadata: MetadataDict | None,
    ) -> None:
        """Replace values and/or sparse values and/or set metadata of one existing record."""
        row = self.rows[vector_id]
        if values is not None and self.space.dimension:
            self.matrix[row] = values
            self.sq_norms[row] = float(np.dot(values, values))
        if sparse is not None:
            self.sparse_count += self.sparse[row] is None
            self.sparse[row] = sparse
        if metadata is not None:
            self.set_metadata(row, metadata)

    def set_metadata(self, row: int, metadata: MetadataDict | None) -> None:
        """Replace the metadata of ``row``."""
        self.metadata[row] = metadata
        if self.columns.columns:
            self.columns.set_rows((row,), (metadata,), len(self.ids))

    def column(self, key: str) -> KeyColumn:
        """The columnar form of metadata key ``key`` (built on first use, then maintained)."""
        return self.columns.column(key, self.metadata)

    def matching_rows(self, selection: RowFilter) -> np.ndarray:
        """Row numbers (ascending) whose metadata satisfies ``selection``."""
        return np.flatnonzero(selection.mask(self))

    def sorted_ids(self) -> list[str]:
        """All ids in byte order of their UTF-8 encoding (cached until the next insert or delete)."""
        if self._sorted_ids is None:
            self._sorted_ids = sorted(self.ids, key=lambda s: s.encode("utf-8"))
        return self._sorted_ids

    def record(self, row: int, include_values: bool = True) -> dict[str, Any]:
        """The wire form of one record (``values`` as a float32 array for orjson)."""
        out: dict[str, Any] = {"id": self.ids[row]}
        out["values"] = self.matrix[row] if include_values and self.space.dimension else []
        sparse = self.sparse[row]
        if include_values and sparse is not None:
            out["sparseValues"] = {"indices": sparse[0], "values": sparse[1]}
        if self.metadata[row] is not None:
            out["metadata"] = self.metadata[row]
        return out

    def search(
        self,
        dense: np.ndarray | None,
        sparse: SparseVector | None,
        top_k: int,
        candidate_rows: np.ndarray | None,
    ) -> list[Match]:
        """Exact top-k over the namespace (or over ``candidate_rows`` only)."""
        return top_matches(self, dense, sparse, top_k, candidate_rows)


@dataclass
class IndexState:
    """One index: its description (as created) and its namespaces."""

    name: str
    space: VectorSpace
    description: dict[str, Any]
    namespaces: dict[str, Namespace] = field(default_factory=dict)

    @property
    def document_schema(self) -> bool:
        """True for an index created with named schema fields (served by the documents API in Pinecone)."""
        return "schema_fields" in self.description

    def namespace(self, name: str) -> Namespace | None:
        """The namespace, or ``None`` if it does not exist (it may exist and be empty)."""
        return self.namespaces.get(name)

    def namespace_exists(self, name: str) -> bool:
        """Whether requests may address the namespace: it was created (by a write or ``POST /namespaces``) and not
        deleted since. On a vectors-API index the default namespace ``""`` always exists; on a document index it is an
        ordinary name (Pinecone SDK 10.2.0, ``Index.describe_namespace``)."""
        return name in self.namespaces or (name == "" and not self.document_schema)

    def namespace_for_write(self, name: str) -> Namespace:
        """The namespace, created on first write."""
        namespace = self.namespaces.get(name)
        if namespace is None:
            namespace = self.namespaces[name] = Namespace(self.space)
        return namespace

    def total(self) -> int:
        """Records across all namespaces."""
        return sum(len(ns) for ns in self.namespaces.values())


class Store:
    """All indexes, by name."""

    def __init__(self) -> None:
        self.indexes: dict[str, IndexState] = {}

    def get(self, name: str) -> IndexState | None:
        """The index, or ``None``."""
        return self.indexes.get(name)
