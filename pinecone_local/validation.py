"""Request validation for the data plane: turns a decoded JSON body into checked, typed values or raises 400.

Every check runs before anything is written, so a rejected request changes nothing. Limits come from ``limits``.
Messages follow Pinecone's wording where it is known (dimension mismatch, metadata size).
"""

from __future__ import annotations

import math
from array import array
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .errors import ApiError, bad_request, echo
from .limits import (
    DEFAULT_NAMESPACE_STATS_NAME,
    MAX_ID_LENGTH,
    MAX_IDS_PER_REQUEST,
    MAX_METADATA_BYTES,
    MAX_NAMESPACE_NAME_LENGTH,
    MAX_REQUEST_BYTES,
    MAX_SPARSE_INDEX,
    MAX_SPARSE_NONZEROS,
    MAX_TOP_K,
    MAX_UPSERT_RECORDS,
    MIN_TOP_K,
)

_EXACT_FLOAT_INTEGER_LIMIT = float(2**53)
"""Above this magnitude an integer may round differently via float64 than directly to float32, so such matrices
take the reference path (see ``dense_matrix``)."""

SparseVector = tuple[np.ndarray, np.ndarray]
"""(indices uint32, values float32), indices strictly increasing."""
MetadataDict = dict[str, Any]


@dataclass(frozen=True)
class VectorSpace:
    """What an index accepts: ``dimension`` is 0 for a sparse index."""

    dimension: int
    metric: str
    sparse: bool


@dataclass
class UpsertBatch:
    """A validated upsert: ``values`` has one float32 row per id; duplicate ids were collapsed, last one wins."""

    ids: list[str]
    values: np.ndarray
    metadata: list[MetadataDict | None]
    sparse: list[SparseVector | None]


def raise_body_too_large(size: int) -> None:
    """The 400 Pinecone gives a write body over its 2 MB request limit."""
    raise bad_request(f"Request size {size / (1024 * 1024):.1f}MB exceeds the maximum supported size of 2MB")


def check_body_size(body: bytes) -> None:
    """Reject write bodies over Pinecone's 2 MB request limit."""
    if len(body) > MAX_REQUEST_BYTES:
        raise_body_too_large(len(body))


def require_object(body: Any) -> dict[str, Any]:
    """The decoded body must be a JSON object."""
    if not isinstance(body, dict):
        raise bad_request("Request body must be a JSON object")
    return body


def check_namespace_name(name: Any, what: str = "Namespace name", allow_empty: bool = False) -> str:
    """Pinecone's namespace rule: 1-512 characters, each an ASCII code point 1-127 (so no NUL). ``allow_empty`` admits
    ``""`` (the default namespace in a request body, or a list prefix matching every name)."""
    if not isinstance(name, str):
        raise bad_request(f"{what} must be a string, got {type(name).__name__}")
    if not name and not allow_empty:
        raise bad_request(f"{what} must not be empty; namespace names are 1-{MAX_NAMESPACE_NAME_LENGTH} characters")
    if len(name) > MAX_NAMESPACE_NAME_LENGTH:
        raise bad_request(
            f"{what} is {len(name)} characters long; namespace names are at most {MAX_NAMESPACE_NAME_LENGTH} characters"
        )
    if not name.isascii() or "\x00" in name:
        raise bad_request(f"{what} must contain only ASCII characters (code points 1-127) and no NUL, got {echo(name)}")
    return name


def resolve_namespace(name: str) -> str:
    """A namespace as stored: ``__default__`` names the default namespace ``""``."""
    return "" if name == DEFAULT_NAMESPACE_STATS_NAME else name


def namespace_of(body: dict[str, Any]) -> str:
    """The checked ``namespace`` field; absent, null, ``""`` and ``__default__`` all mean the default namespace."""
    namespace = body.get("namespace")
    if namespace is None:
        return ""
    return resolve_namespace(check_namespace_name(namespace, "namespace", allow_empty=True))


def namespace_param(value: str | None) -> str:
    """The checked ``namespace`` query parameter (same rules as ``namespace_of``)."""
    if value is None:
        return ""
    return resolve_namespace(check_namespace_name(value, "namespace", allow_empty=True))


def check_id(vector_id: Any, what: str = "Vector ID") -> str:
    """An id is a string of 1..512 ASCII characters without NUL (as the SDK also requires)."""
    if not isinstance(vector_id, str):
        raise bad_request(f"{what} must be a string, got {type(vector_id).__name__}")
    if not vector_id:
        raise bad_request(f"{what} must not be empty; vector IDs are 1-{MAX_ID_LENGTH} characters")
    if len(vector_id) > MAX_ID_LENGTH:
        raise bad_request(f"{what} exceeds the maximum length of {MAX_ID_LENGTH} characters (got {len(vector_id)})")
    if not vector_id.isascii() or "\x00" in vector_id:
        raise bad_request(f"{what} must contain only ASCII characters and no NUL, got {echo(vector_id[:64])}")
    return vector_id


def check_ids(ids: Any, what: str) -> list[str]:
    """A non-empty list of at most 1,000 valid ids."""
    if not isinstance(ids, list) or not ids:
        raise bad_request(f"{what} must be a non-empty array of vector IDs")
    if len(ids) > MAX_IDS_PER_REQUEST:
        raise bad_request(f"{what} has {len(ids)} IDs; the maximum per request is {MAX_IDS_PER_REQUEST}")
    return [check_id(i) for i in ids]


def check_top_k(value: Any) -> int:
    """topK is an integer in 1..10,000."""
    if isinstance(value, bool) or not isinstance(value, int) or not MIN_TOP_K <= value <= MAX_TOP_K:
        raise bad_request(f"topK must be an integer between {MIN_TOP_K} and {MAX_TOP_K}, got {echo(value)}")
    return value


def check_bool(body: dict[str, Any], key: str) -> bool:
    """An optional boolean flag (absent = False)."""
    value = body.get(key, False)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_request(f"{key} must be a boolean")
    return value


def _metadata_value(key: str, value: Any) -> Any:
    if isinstance(value, (str, bool)):
        return value
    if isinstance(value, (int, float)):
        number = float(value)
        if not math.isfinite(number):
            raise bad_request(f"Metadata value for field '{key}' must be a finite number")
        return number
    if isinstance(value, list):
        for element in value:
            if not isinstance(element, str):
                raise bad_request(f"Metadata list values must be strings; field '{key}' contains {echo(element)}")
        return list(value)
    if value is None:
        raise bad_request(f"Metadata value for field '{key}' must not be null")
    if isinstance(value, dict):
        raise bad_request(
            f"Metadata value for field '{key}' must be a string, number, boolean or list of strings; "
            "nested objects are not supported"
        )
    raise bad_request(f"Metadata value for field '{key}' has an unsupported type")


def check_metadata(metadata: Any) -> MetadataDict:
    """A flat object of string/number/bool/list-of-string values, no ``$`` keys, at most 40 KB as JSON.

    Numbers are returned as float64, as Pinecone stores them.
    """
    clean = _clean_metadata(metadata)
    check_metadata_size(clean)
    return clean


def _clean_metadata(metadata: Any) -> MetadataDict:
    """``check_metadata`` without the size check."""
    if not isinstance(metadata, dict):
        raise bad_request("Metadata must be a JSON object")
    clean: MetadataDict = {}
    for key, value in metadata.items():
        if not key:
            raise bad_request("Metadata keys must not be empty")
        if key[0] == "$":
            raise bad_request(f"Metadata key '{key}' must not start with '$'")
        # Exact-type checks first: they settle the common values without the general dispatch.
        kind = type(value)
        if kind is str or kind is bool or (kind is float and math.isfinite(value)):
            clean[key] = value
        elif kind is int:
            clean[key] = float(value)
        else:
            clean[key] = _metadata_value(key, value)
    return clean


def _metadata_sizes_fit(metadata: list[MetadataDict | None]) -> bool:
    """True when every entry is within the size limit: one encoding of the whole list settles the usual case."""
    if len(orjson.dumps(metadata)) <= MAX_METADATA_BYTES:
        return True
    return all(entry is None or len(orjson.dumps(entry)) <= MAX_METADATA_BYTES for entry in metadata)


def check_metadata_size(metadata: MetadataDict) -> None:
    """Reject metadata whose JSON encoding exceeds 40 KB."""
    size = len(orjson.dumps(metadata))
    if size > MAX_METADATA_BYTES:
        raise bad_request(
            f"metadata size is {size} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes per vector"
        )


def check_sparse(sparse: Any, space: VectorSpace) -> SparseVector:
    """``{"indices": [uint32...], "values": [float...]}`` of equal length, at most 2,048 non-zeros, unique indices."""
    if space.metric != "dotproduct":
        raise bad_request("Sparse vectors are only supported for indexes with the dotproduct metric")
    if not isinstance(sparse, dict):
        raise bad_request("sparseValues must be an object with 'indices' and 'values'")
    indices, values = sparse.get("indices"), sparse.get("values")
    if not isinstance(indices, list) or not isinstance(values, list):
        raise bad_request("sparseValues must have 'indices' and 'values' arrays")
    if len(indices) != len(values):
        raise bad_request(
            f"Sparse vector indices and values must have the same length (got {len(indices)} and {len(values)})"
        )
    if len(indices) > MAX_SPARSE_NONZEROS:
        raise bad_request(f"Sparse vector has {len(indices)} non-zero values; the maximum is {MAX_SPARSE_NONZEROS}")
    if space.sparse and not indices:
        raise bad_request("Sparse vector must contain at least one non-zero value")
    for index in indices:
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_SPARSE_INDEX:
            raise bad_request(f"Sparse vector indices must be integers in 0..{MAX_SPARSE_INDEX}, got {echo(index)}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad_request(f"Sparse vector values must be finite numbers, got {echo(value)}")
    if len(set(indices)) != len(indices):
        raise bad_request("Sparse vector indices must be unique")
    index_array = np.asarray(indices, dtype=np.uint32)
    value_array = np.asarray(values, dtype=np.float32)
    order = np.argsort(index_array, kind="stable")
    return index_array[order], value_array[order]


def _fast_dense_matrix(rows: list[Any], dimension: int) -> np.ndarray | None:
    """The float32 matrix of ``rows`` when they are plainly valid, else ``None`` (the caller then runs the reference
    path, which decides and words any error).

    ``array("d", row)`` converts a list of Python numbers in C and refuses strings, nulls, lists and objects, which is
    the type check; it is about twice as fast as ``np.array`` on nested lists. Matrices the reference path could
    treat differently are handed back: all values 0/1 (possibly booleans only, which it rejects) and any magnitude
    of 2**53 or more (integers that round differently via float64, and values beyond float32's range).
    """
    for row in rows:
        if type(row) is not list or len(row) != dimension:
            return None
    try:
        packed = b"".join([array("d", row) for row in rows])
    except (TypeError, ValueError, OverflowError):
        return None
    matrix64 = np.frombuffer(packed, dtype=np.float64).reshape(len(rows), dimension)
    if not np.abs(matrix64).max() < _EXACT_FLOAT_INTEGER_LIMIT:
        return None
    if ((matrix64 == 0) | (matrix64 == 1)).all():
        return None
    return matrix64.astype(np.float32)


def dense_matrix(rows: list[Any], space: VectorSpace, what: str = "Vector") -> np.ndarray:
    """Validate dense value lists and return them as a float32 matrix (one row per list).

    Checks the dimension, that every value is a finite number representable in float32, and (cosine) that no
    vector is all zeros.
    """
    matrix = _fast_dense_matrix(rows, space.dimension) if space.dimension and rows else None
    if matrix is None:
        matrix = _reference_dense_matrix(rows, space, what)
    if space.metric == "cosine" and len(rows) and not np.any(matrix != 0, axis=1).all():
        raise bad_request(
            "Dense vectors must contain at least one non-zero value (the cosine metric cannot score them)"
        )
    return matrix


def _reference_dense_matrix(rows: list[Any], space: VectorSpace, what: str) -> np.ndarray:
    for row in rows:
        if not isinstance(row, list):
            raise bad_request(f"{what} values must be an array of numbers")
        if len(row) != space.dimension:
            raise bad_request(
                f"{what} dimension {len(row)} does not match the dimension of the index {space.dimension}"
            )
    if space.dimension == 0:
        return np.zeros((len(rows), 0), dtype=np.float32)
    try:
        matrix64 = np.array(rows)
    except (ValueError, TypeError) as exc:
        raise bad_request(f"{what} values must be numbers") from exc
    if matrix64.ndim != 2 or matrix64.dtype.kind not in "fiu":
        raise bad_request(f"{what} values must be numbers (null, NaN, strings and objects are not allowed)")
    with np.errstate(over="ignore", invalid="ignore"):
        matrix = matrix64.astype(np.float32)
    if not np.isfinite(matrix).all():
        raise bad_request(f"{what} values must be finite numbers within the float32 range (no NaN or infinity)")
    return matrix


def _batch_metadata(vectors: list[dict[str, Any]]) -> list[MetadataDict | None]:
    """Checked metadata of every record; errors are the ones ``check_metadata`` raises, first record first."""
    raws = [record.get("metadata") for record in vectors]
    try:
        clean = [None if raw is None else _clean_metadata(raw) for raw in raws]
        if _metadata_sizes_fit(clean):
            return clean
    except ApiError:
        pass
    # Some record is invalid: the per-record checks raise the same error, in the same order, as they always did.
    return [None if raw is None else check_metadata(raw) for raw in raws]


def check_upsert(body: dict[str, Any], space: VectorSpace) -> UpsertBatch:
    """Validate an upsert body in full; nothing is applied unless every record passes."""
    vectors = body.get("vectors")
    if not isinstance(vectors, list) or not vectors:
        raise bad_request("vectors must be a non-empty array")
    if len(vectors) > MAX_UPSERT_RECORDS:
        raise bad_request(
            f"Upsert request contains {len(vectors)} vectors, which exceeds the limit of {MAX_UPSERT_RECORDS} "
            "vectors per request"
        )
    last_position: dict[str, int] = {}
    for position, record in enumerate(vectors):
        if not isinstance(record, dict):
            raise bad_request("Each vector must be an object with 'id' and 'values'")
        vector_id = record.get("id")
        # Inline test of the common valid id; check_id words the error (or accepts an unusual valid one).
        if type(vector_id) is not str or not 0 < len(vector_id) <= MAX_ID_LENGTH or not vector_id.isascii():
            vector_id = check_id(vector_id)
        elif "\x00" in vector_id:
            check_id(vector_id)
        last_position[vector_id] = position
    if len(last_position) == len(vectors):
        ids = list(last_position)
    else:
        vectors = [vectors[p] for p in sorted(last_position.values())]
        ids = [record["id"] for record in vectors]

    if space.sparse:
        for record in vectors:
            if record.get("values"):
                raise bad_request("Dense values are not supported on a sparse index; send sparseValues only")
        matrix = np.zeros((len(vectors), 0), dtype=np.float32)
    else:
        matrix = dense_matrix([record.get("values") for record in vectors], space)

    if not space.sparse and not any("sparseValues" in record for record in vectors):
        # The common dense-only batch: metadata is the only per-record work left.
        return UpsertBatch(ids=ids, values=matrix, metadata=_batch_metadata(vectors), sparse=[None] * len(vectors))
    metadata: list[MetadataDict | None] = []
    sparse: list[SparseVector | None] = []
    for record in vectors:
        raw_metadata = record.get("metadata")
        metadata.append(None if raw_metadata is None else check_metadata(raw_metadata))
        raw_sparse = record.get("sparseValues")
        if raw_sparse is None:
            if space.sparse:
                raise bad_request("Sparse index records must carry sparseValues")
            sparse.append(None)
        else:
            sparse.append(check_sparse(raw_sparse, space))
    return UpsertBatch(ids=ids, values=matrix, metadata=metadata, sparse=sparse)


def invalid(message: str) -> ApiError:
    """Shorthand for a 400 raised by route code."""
    return bad_request(message)
