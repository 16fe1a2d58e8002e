"""The fast dense-vector conversion gives exactly the reference conversion's matrix or error (no server)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from kafka_pinecone_flink.pinecone_local.errors import ApiError
from kafka_pinecone_flink.pinecone_local.validation import (
    VectorSpace,
    _reference_dense_matrix,
    check_upsert,
    dense_matrix,
)

pytestmark = pytest.mark.unit

COSINE = VectorSpace(dimension=3, metric="cosine", sparse=False)
EUCLIDEAN = VectorSpace(dimension=3, metric="euclidean", sparse=False)
ALL_ZERO_MESSAGE = "Dense vectors must contain at least one non-zero value (the cosine metric cannot score them)"


def outcome(convert: Any, rows: list[Any], space: VectorSpace) -> tuple[str, Any]:
    try:
        matrix = convert(rows, space)
    except ApiError as error:
        return "error", (error.status, error.message)
    return "matrix", (matrix.dtype.str, matrix.tolist())


def reference(rows: list[Any], space: VectorSpace) -> np.ndarray:
    matrix = _reference_dense_matrix(rows, space, "Vector")
    if space.metric == "cosine" and not np.any(matrix != 0, axis=1).all():
        raise ApiError(400, ALL_ZERO_MESSAGE)
    return matrix


CASES: list[list[Any]] = [
    [[0.1, 0.2, 0.3], [1.5, -2.5, 3.25]],
    [[1, 2, 3], [4, 5, 6]],
    [[1, 2.5, 3], [4, 5, 6]],
    [[True, True, False], [False, True, True]],
    [[True, 0.5, 1.0], [2.0, 3.0, 4.0]],
    [[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]],
    [[0.0, 0.0, 0.0], [1.0, 2.0, 3.0]],
    [[0.1, "0.2", 0.3]],
    [[0.1, None, 0.3]],
    [[0.1, [0.2], 0.3]],
    [[0.1, {"x": 1}, 0.3]],
    [[0.1, 0.2]],
    [[0.1, 0.2, 0.3, 0.4]],
    ["not a list"],
    [[2**60 + 1, 3, 5]],
    [[2**63 - 1, 1.0, 2.0]],
    [[1e39, 1.0, 2.0]],
    [[3.4e38, 1.0, 2.0]],
    [[1e-46, 1.0, 2.0]],
]


@pytest.mark.parametrize("rows", CASES)
@pytest.mark.parametrize("space", [COSINE, EUCLIDEAN], ids=["cosine", "euclidean"])
def test_fast_conversion_matches_the_reference_matrix_or_error(rows: list[Any], space: VectorSpace) -> None:
    assert outcome(dense_matrix, rows, space) == outcome(reference, rows, space)


def test_random_float_batches_convert_bit_for_bit() -> None:
    rng = np.random.default_rng(5)
    rows = (rng.normal(size=(50, 3)) * 10.0 ** rng.integers(-30, 30, size=(50, 1))).tolist()
    assert np.array_equal(dense_matrix(rows, COSINE), reference(rows, COSINE))


def test_upsert_metadata_errors_keep_record_order() -> None:
    oversized = {"text": "x" * 41_000}
    body = {
        "vectors": [
            {"id": "a", "values": [1.0, 2.0, 3.0], "metadata": oversized},
            {"id": "b", "values": [1.0, 2.0, 3.0], "metadata": {"$bad": 1}},
        ]
    }
    with pytest.raises(ApiError) as excinfo:
        check_upsert(body, COSINE)
    assert "exceeds the limit of 40960 bytes" in excinfo.value.message


def test_upsert_with_duplicate_ids_keeps_the_last_record_in_last_position_order() -> None:
    body = {
        "vectors": [
            {"id": "a", "values": [1.0, 0.0, 0.0]},
            {"id": "b", "values": [0.0, 1.0, 0.0]},
            {"id": "a", "values": [0.0, 0.0, 1.0], "metadata": {"v": 2}},
        ]
    }
    batch = check_upsert(body, COSINE)
    assert batch.ids == ["b", "a"]
    assert batch.values.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert batch.metadata == [None, {"v": 2.0}]
