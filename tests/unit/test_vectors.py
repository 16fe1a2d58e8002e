"""Dense and sparse vector validation: every rule pinned by error class and message fragment."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.decode_errors import (
    DimensionMismatchError,
    InvalidSparseVectorError,
    InvalidVectorError,
    NonFiniteVectorError,
    ZeroVectorError,
)
from kafka_pinecone_flink.udfs.metadata import InexactNumberError
from kafka_pinecone_flink.udfs.records import SparseVector
from kafka_pinecone_flink.udfs.vectors import MAX_SPARSE_INDEX, MAX_SPARSE_NON_ZEROS, parse_dense, parse_sparse

pytestmark = pytest.mark.unit


def dense(raw: Any, dimension: int = 3, metric: str = "cosine") -> list[float]:
    return parse_dense(raw, "values", dimension, metric)


def test_a_list_of_floats_is_returned_as_is() -> None:
    raw = [0.1, -0.2, 0.3]
    assert dense(raw) == [0.1, -0.2, 0.3]


def test_integers_become_floats_so_equal_vectors_compare_equal() -> None:
    values = dense([1, 0, 2])
    assert values == [1.0, 0.0, 2.0]
    assert all(type(value) is float for value in values)


def test_a_json_string_holding_an_array_is_parsed() -> None:
    assert dense("[0.5, 1, -2.25]") == [0.5, 1.0, -2.25]


@pytest.mark.parametrize("text", ["[0.1, NaN, 0.3]", "[0.1, Infinity, 0.3]", "[0.1, -Infinity, 0.3]"])
def test_a_vector_string_with_nan_or_infinity_is_rejected_by_name(text: str) -> None:
    with pytest.raises(NonFiniteVectorError, match=r"element 1 is (nan|inf|-inf), not a finite number"):
        dense(text)


def test_a_non_finite_element_in_a_list_is_rejected() -> None:
    with pytest.raises(NonFiniteVectorError, match="element 2 is nan"):
        dense([0.1, 0.2, float("nan")])
    with pytest.raises(NonFiniteVectorError, match="element 0 is inf"):
        dense([float("inf"), 0.2, 0.3])


def test_float32_values_whose_sum_and_norm_overflow_float32_are_accepted() -> None:
    assert dense([3e38, 3e38, -3e38], metric="dotproduct") == [3e38, 3e38, -3e38]


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([0.1, "x", 0.3], "element 1 is a JSON string, not a number"),
        ([0.1, True, 0.3], "element 1 is a JSON boolean, not a number"),
        ([None, 0.2, 0.3], "element 0 is a JSON null, not a number"),
        ([0.1, 0.2, [0.3]], "element 2 is a JSON array, not a number"),
    ],
)
def test_a_non_numeric_element_is_rejected_with_its_position(raw: list[Any], fragment: str) -> None:
    with pytest.raises(InvalidVectorError, match=fragment):
        dense(raw)


def test_a_vector_string_that_is_not_json_is_rejected() -> None:
    with pytest.raises(InvalidVectorError, match="holds a string that is not a JSON array of numbers"):
        dense("0.1, 0.2, 0.3]")


def test_a_vector_string_holding_something_other_than_an_array_is_rejected() -> None:
    with pytest.raises(InvalidVectorError, match="holds a JSON number, not an array of numbers"):
        dense("5")


def test_a_vector_string_with_nan_that_is_not_an_array_is_invalid_not_non_finite() -> None:
    with pytest.raises(InvalidVectorError, match="not a JSON array of numbers") as raised:
        dense('{"v": NaN}')
    assert type(raised.value) is InvalidVectorError


@pytest.mark.parametrize(("raw", "kind"), [({"a": 1}, "object"), (5, "number"), (True, "boolean")])
def test_a_vector_that_is_not_an_array_is_rejected(raw: Any, kind: str) -> None:
    with pytest.raises(InvalidVectorError, match=f"holds a JSON {kind}, not an array of numbers"):
        dense(raw)


def test_an_empty_vector_is_rejected() -> None:
    with pytest.raises(InvalidVectorError, match="holds an empty vector"):
        dense([])


def test_a_wrong_dimension_is_rejected_with_pinecones_wording() -> None:
    with pytest.raises(
        DimensionMismatchError, match="Vector dimension 2 does not match the dimension of the index 384"
    ):
        dense([0.1, 0.2], dimension=384)


@pytest.mark.parametrize("raw", [[0.0, 0.0, 0.0], [0, -0.0, 0]])
def test_an_all_zero_vector_is_rejected_under_cosine(raw: list[float]) -> None:
    with pytest.raises(ZeroVectorError, match="all-zero vector, which a cosine index rejects"):
        dense(raw, metric="cosine")


@pytest.mark.parametrize("metric", ["dotproduct", "euclidean"])
def test_an_all_zero_vector_is_accepted_under_other_metrics(metric: str) -> None:
    assert dense([0.0, 0.0, 0.0], metric=metric) == [0.0, 0.0, 0.0]


def test_an_integer_too_large_for_a_float_is_rejected() -> None:
    with pytest.raises(InvalidVectorError, match="integer too large for a float"):
        dense([10**400, 1, 2])


# Pinecone stores vector values as float32: a finite float64 beyond float32's range would be stored as infinity.
FLOAT32_MAX = 3.4028234663852886e38
FLOAT32_OVERFLOW = 3.4028235677973366e38
"""The smallest magnitude that rounds to infinity as float32 (2**128 - 2**103); just below it rounds to FLOAT32_MAX."""


@pytest.mark.parametrize("value", [FLOAT32_MAX, -FLOAT32_MAX, 3.4028235e38, math.nextafter(FLOAT32_OVERFLOW, 0)])
def test_dense_values_up_to_the_float32_range_are_accepted(value: float) -> None:
    assert dense([value, 1.0, 0.0]) == [value, 1.0, 0.0]


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ([3.5e38, 1, 0], "3.5e+38"),
        ([1, -1e39, 0], "-1e+39"),
        ([1, 0, FLOAT32_OVERFLOW], "3.4028235677973366e+38"),
        ([1, 0, 10**39], "1e+39"),
        ([1e308, 1, 0], "1e+308"),
    ],
)
def test_dense_values_beyond_float32_are_rejected_as_non_finite(raw: list[Any], shown: str) -> None:
    position = next(i for i, v in enumerate(raw) if abs(v) > FLOAT32_MAX)
    with pytest.raises(
        NonFiniteVectorError,
        match=f"element {position} is {re.escape(shown)}, which is not a finite 32-bit float",
    ):
        dense(raw)


def sparse(raw: Any) -> SparseVector | None:
    return parse_sparse(raw, "sparse")


@pytest.mark.parametrize(("value", "shown"), [(1e39, "1e+39"), (-3.5e38, "-3.5e+38"), (10**39, "1e+39")])
def test_sparse_values_beyond_float32_are_rejected_like_dense_ones(value: Any, shown: str) -> None:
    with pytest.raises(
        InvalidSparseVectorError, match=f"element 1 is {re.escape(shown)}, which is not a finite 32-bit float"
    ):
        sparse({"indices": [1, 2], "values": [0.5, value]})


def test_sparse_values_at_the_float32_maximum_are_accepted() -> None:
    assert sparse({"indices": [1], "values": [FLOAT32_MAX]}) == SparseVector((1,), (FLOAT32_MAX,))


def test_a_sparse_index_read_as_a_float_from_a_big_integer_asks_for_an_exact_parse() -> None:
    # orjson reads 10**30 as the float 1e30; decode re-reads the value exactly, so the message can show the integer.
    with pytest.raises(InexactNumberError):
        parse_sparse({"indices": [1e30], "values": [1.0]}, "sparse", exact=False)
    with pytest.raises(InvalidSparseVectorError, match="index 0 is 1000000000000000000000000000000, not an integer"):
        parse_sparse({"indices": [10**30], "values": [1.0]}, "sparse", exact=True)


def test_a_valid_sparse_vector_is_returned_as_tuples_of_ints_and_floats() -> None:
    assert sparse({"indices": [3, 0, MAX_SPARSE_INDEX], "values": [1, 0.5, -2.0]}) == SparseVector(
        (3, 0, MAX_SPARSE_INDEX), (1.0, 0.5, -2.0)
    )


def test_an_empty_sparse_vector_is_the_same_as_none() -> None:
    assert sparse({"indices": [], "values": []}) is None


def test_a_sparse_vector_with_exactly_the_maximum_non_zeros_is_accepted() -> None:
    result = sparse({"indices": list(range(MAX_SPARSE_NON_ZEROS)), "values": [1.0] * MAX_SPARSE_NON_ZEROS})
    assert result is not None and len(result.indices) == MAX_SPARSE_NON_ZEROS


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ([1, 2], "holds a JSON array, not an object"),
        ({"indices": [1]}, "needs arrays 'indices' and 'values'"),
        ({"indices": "1", "values": [1.0]}, "needs arrays 'indices' and 'values'"),
        ({"indices": [1, 2], "values": [1.0]}, "has 2 indices but 1 values"),
        ({"indices": [-1], "values": [1.0]}, "index 0 is -1, not an integer from 0 to 4294967295"),
        ({"indices": [0, 2**32], "values": [1.0, 1.0]}, "index 1 is 4294967296, not an integer"),
        ({"indices": [1.5], "values": [1.0]}, "index 0 is 1.5, not an integer"),
        ({"indices": [True], "values": [1.0]}, "index 0 is True, not an integer"),
        ({"indices": [4, 4], "values": [1.0, 2.0]}, "duplicate indices"),
        ({"indices": [1], "values": ["x"]}, "element 0 is a JSON string, not a number"),
        ({"indices": [1, 2], "values": [1.0, float("nan")]}, "element 1 is nan, not a finite number"),
    ],
)
def test_a_malformed_sparse_vector_is_rejected(raw: Any, fragment: str) -> None:
    with pytest.raises(InvalidSparseVectorError, match=fragment):
        sparse(raw)


def test_a_sparse_vector_over_the_non_zero_limit_is_rejected() -> None:
    count = MAX_SPARSE_NON_ZEROS + 1
    with pytest.raises(InvalidSparseVectorError, match="2049 non-zero entries, more than Pinecone's 2048"):
        sparse({"indices": list(range(count)), "values": [1.0] * count})
