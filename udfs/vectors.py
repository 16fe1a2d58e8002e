"""Dense and sparse vector parsing and validation, to Pinecone's rules.

Dense vectors are accepted as a JSON array of numbers or as a JSON string holding such an array (``"[0.1, 0.2]"``,
the form pgvector columns take through Debezium). A valid dense vector is non-empty, holds only finite numbers
(booleans are not numbers), has exactly the index dimension, and, for a cosine index, is not all zeros. Integers
are converted to floats, so ``[1, 0]`` and ``[1.0, 0.0]`` are the same vector.

Sparse vectors are a JSON object ``{"indices": [...], "values": [...]}``: indices are unique integers in the uint32
range, as many as the values, at most 2,048; values are finite numbers. An empty sparse vector (no indices) is the
same as none.

Float32: Pinecone stores vector values as 32-bit floats, so a value must be finite as a float32, not only as a
float64: a magnitude of 2**128 - 2**103 (~3.4028235677973366e38) or more would be stored as infinity and is rejected
(``NonFiniteVectorError`` for dense, ``InvalidSparseVectorError`` for sparse values); values up to that round to at
most float32's largest value, 3.4028234663852886e38.

Finite numbers: the JSON parsers used (orjson; Python's ``json`` with NaN/Infinity refused) never produce NaN or
infinity, and a JSON text containing them is invalid JSON. The checks here still verify finiteness, so that
vectors built any other way are held to the same rules.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

from kafka_pinecone_flink.udfs.decode_errors import (
    DimensionMismatchError,
    InvalidSparseVectorError,
    InvalidVectorError,
    NonFiniteVectorError,
    ZeroVectorError,
)
from kafka_pinecone_flink.udfs.metadata import check_exact
from kafka_pinecone_flink.udfs.records import SparseVector

MAX_SPARSE_NON_ZEROS = 2048
MAX_SPARSE_INDEX = 2**32 - 1
FLOAT32_OVERFLOW = float(2**128 - 2**103)
"""The smallest magnitude that rounds to infinity as a float32 (round to nearest even): values must stay below it."""
_NUMBER_KINDS = (float, int)
_NON_FINITE_WORDS = ("NaN", "Infinity")


def json_kind(value: Any) -> str:
    """The JSON type name of a decoded value, for messages."""
    if value is None:
        return "null"
    kind = type(value)
    if kind is bool:
        return "boolean"
    if kind is int or kind is float:
        return "number"
    if kind is str:
        return "string"
    if kind is list:
        return "array"
    if kind is dict:
        return "object"
    return kind.__name__


def parse_dense(raw: Any, field: str, dimension: int, metric: str) -> list[float]:
    """The validated dense vector held in ``raw`` (the value of ``field``); raises an ``InvalidVectorError``."""
    if type(raw) is str:
        raw = _parse_vector_string(raw, field)
    if type(raw) is not list:
        raise InvalidVectorError(f"field {field!r} holds a JSON {json_kind(raw)}, not an array of numbers")
    values: list[Any] = raw
    if not values:
        raise InvalidVectorError(f"field {field!r} holds an empty vector")
    if len(values) != dimension:
        # Pinecone's own wording, so users recognise it.
        raise DimensionMismatchError(
            f"Vector dimension {len(values)} does not match the dimension of the index {dimension}"
        )
    values = _as_floats(values, field, InvalidVectorError)
    if metric == "cosine" and not any(values):
        raise ZeroVectorError(f"field {field!r} holds an all-zero vector, which a cosine index rejects")
    return values


def parse_sparse(raw: Any, field: str, *, exact: bool = True) -> SparseVector | None:
    """The validated sparse vector held in ``raw``, or None if it has no entries; raises
    ``InvalidSparseVectorError``. ``exact=False`` says integers beyond 64 bits may have been read as floats: such an
    index raises ``InexactNumberError`` (decode reads the value again exactly, so the message shows the integer)."""
    if type(raw) is not dict:
        raise InvalidSparseVectorError(
            f'field {field!r} holds a JSON {json_kind(raw)}, not an object {{"indices": [...], "values": [...]}}'
        )
    indices = raw.get("indices")
    values = raw.get("values")
    if type(indices) is not list or type(values) is not list:
        raise InvalidSparseVectorError(f"field {field!r} needs arrays 'indices' and 'values'")
    if len(indices) != len(values):
        raise InvalidSparseVectorError(
            f"field {field!r} has {len(indices)} indices but {len(values)} values; they must be as many"
        )
    if not indices:
        return None
    if len(indices) > MAX_SPARSE_NON_ZEROS:
        raise InvalidSparseVectorError(
            f"field {field!r} has {len(indices)} non-zero entries, more than Pinecone's {MAX_SPARSE_NON_ZEROS}"
        )
    for position, index in enumerate(indices):
        if type(index) is not int or not 0 <= index <= MAX_SPARSE_INDEX:
            if not exact and type(index) is float:
                check_exact(index)
            raise InvalidSparseVectorError(
                f"field {field!r} index {position} is {_short(index)}, not an integer from 0 to {MAX_SPARSE_INDEX}"
            )
    if len(set(indices)) != len(indices):
        raise InvalidSparseVectorError(f"field {field!r} has duplicate indices")
    floats = _as_floats(values, field, InvalidSparseVectorError)
    return SparseVector(tuple(indices), tuple(floats))


def _as_floats(
    values: list[Any], field: str, error: type[InvalidVectorError | InvalidSparseVectorError]
) -> list[float]:
    # map(type), list.count and sum run in C: an all-float, all-finite vector costs three C-speed passes.
    if list(map(type, values)).count(float) != len(values):
        for position, value in enumerate(values):
            if type(value) not in _NUMBER_KINDS:
                raise error(f"field {field!r} element {position} is a JSON {json_kind(value)}, not a number")
        try:
            values = [float(value) for value in values]
        except OverflowError:
            raise error(f"field {field!r} holds an integer too large for a float") from None
    # The Euclidean norm bounds every element's magnitude and is NaN or infinite if an element is: a norm below the
    # float32 limit proves every element finite as a float32, in one C call (as cheap as sum()). A larger norm may
    # come from many large but valid elements: then each one is checked.
    if not math.hypot(*values) < FLOAT32_OVERFLOW:
        kind = NonFiniteVectorError if error is InvalidVectorError else error
        for position, value in enumerate(values):
            if not math.isfinite(value):
                raise kind(f"field {field!r} element {position} is {value}, not a finite number")
            if not -FLOAT32_OVERFLOW < value < FLOAT32_OVERFLOW:
                raise kind(
                    f"field {field!r} element {position} is {value}, which is not a finite 32-bit float "
                    f"(Pinecone stores vectors as float32, largest magnitude ~3.4028235e+38)"
                )
    return values


def _parse_vector_string(text: str, field: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        reason = exc.msg
    # Python's json.dumps writes NaN and Infinity by default: name them rather than only "invalid JSON".
    if any(word in text for word in _NON_FINITE_WORDS):
        try:
            lenient = json.loads(text)
        except (ValueError, RecursionError):
            lenient = None
        if type(lenient) is list:
            for position, value in enumerate(lenient):
                if type(value) is float and not math.isfinite(value):
                    raise NonFiniteVectorError(
                        f"field {field!r} holds a vector string whose element {position} is {value}, "
                        f"not a finite number (NaN and Infinity are not allowed)"
                    )
    raise InvalidVectorError(f"field {field!r} holds a string that is not a JSON array of numbers: {reason}")


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
