"""Pinecone's metadata filter language: parsing, validation and evaluation.

``compile_filter(spec)`` validates a filter once and returns a ``Filter``: call it on one record's metadata dict (or
``None`` for a record without metadata), or ask it for the boolean ``mask`` of a whole namespace, computed with numpy
on the namespace's metadata columns (see ``columns``). The per-record form is the reference semantics; the mask form
must agree with it on every record (property tests check this). Invalid filters raise ``ApiError(400)`` before any
record is looked at.

Semantics (Pinecone's, plus the choices Pinecone leaves implicit, stated here once):

* ``{"f": v}`` is ``{"f": {"$eq": v}}``; several keys in one object, or several operators on one field, are ANDed.
* ``$eq $in $gt $gte $lt $lte`` on a **list** field match when *any* element matches.
* ``$ne`` and ``$nin`` are the exact negations of ``$eq`` and ``$in``: on a list field they match only when *no*
  element matches, and a record that lacks the field matches them (it is not equal to the value).
* Range operators take numbers only and compare numbers only; strings and booleans never satisfy them.
* Numbers compare as float64 (metadata numbers are stored as float64); booleans are not numbers (``true != 1``).
* ``$exists: true`` matches records that have the field, ``false`` those that do not.
* ``$and`` / ``$or`` take a non-empty list of filters. The empty filter ``{}`` matches every record.
* Size: at most ``MAX_FILTER_DEPTH`` levels of ``$and``/``$or`` and ``MAX_FILTER_CLAUSES`` conditions, checked by an
  iterative scan before anything recursive runs, so a hostile filter is a 400 and never a RecursionError.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

from .columns import KeyColumn
from .errors import ApiError, bad_request, echo
from .limits import MAX_FILTER_CLAUSES, MAX_FILTER_DEPTH, MAX_FILTER_IN_VALUES

Metadata = Mapping[str, Any] | None
Predicate = Callable[[Metadata], bool]


class ColumnSource(Protocol):
    """What a mask is computed over: a namespace (``store.Namespace``)."""

    def __len__(self) -> int: ...

    def column(self, key: str) -> KeyColumn:
        """The metadata column of ``key``."""
        ...


MaskFunction = Callable[[ColumnSource], np.ndarray]


class Filter:
    """A validated filter: ``filter(metadata)`` tests one record, ``filter.mask(namespace)`` tests every row."""

    __slots__ = ("_mask", "_predicate")

    def __init__(self, predicate: Predicate, mask: MaskFunction) -> None:
        self._predicate = predicate
        self._mask = mask

    def __call__(self, metadata: Metadata) -> bool:
        return self._predicate(metadata)

    def mask(self, source: ColumnSource) -> np.ndarray:
        """One boolean per row of ``source`` (a fresh array the caller may modify)."""
        return self._mask(source)


_SCALAR_OPS = ("$eq", "$ne")
_RANGE_OPS = ("$gt", "$gte", "$lt", "$lte")
_SET_OPS = ("$in", "$nin")
FIELD_OPERATORS = frozenset((*_SCALAR_OPS, *_RANGE_OPS, *_SET_OPS, "$exists"))
LOGICAL_OPERATORS = frozenset(("$and", "$or"))


def _fail(message: str) -> ApiError:
    return bad_request(f"Invalid filter: {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bool)) or _is_number(value)


def _scalar_equals(stored: Any, wanted: Any) -> bool:
    if isinstance(wanted, bool):
        return isinstance(stored, bool) and stored is wanted
    if isinstance(wanted, str):
        return isinstance(stored, str) and stored == wanted
    return _is_number(stored) and float(stored) == float(wanted)


def _matches_eq(stored: Any, wanted: Any) -> bool:
    if isinstance(stored, list):
        return any(_scalar_equals(element, wanted) for element in stored)
    return _scalar_equals(stored, wanted)


def _make_eq(field: str, wanted: Any) -> Filter:
    def eq(md: Metadata) -> bool:
        return md is not None and field in md and _matches_eq(md[field], wanted)

    def eq_mask(source: ColumnSource) -> np.ndarray:
        return source.column(field).equals(len(source), wanted)

    return Filter(eq, eq_mask)


def _make_in(field: str, wanted: list[Any]) -> Filter:
    strings = frozenset(v for v in wanted if isinstance(v, str))
    numbers = frozenset(float(v) for v in wanted if _is_number(v))
    bools = frozenset(v for v in wanted if isinstance(v, bool))

    def one(stored: Any) -> bool:
        if isinstance(stored, str):
            return stored in strings
        if isinstance(stored, bool):
            return stored in bools
        return _is_number(stored) and float(stored) in numbers

    def is_in(md: Metadata) -> bool:
        if md is None or field not in md:
            return False
        stored = md[field]
        if isinstance(stored, list):
            return any(one(element) for element in stored)
        return one(stored)

    def in_mask(source: ColumnSource) -> np.ndarray:
        return source.column(field).is_in(len(source), strings, numbers, bools)

    return Filter(is_in, in_mask)


def _make_range(field: str, op: str, bound: float) -> Filter:
    compare: Callable[[float], bool]
    if op == "$gt":
        compare = bound.__lt__
    elif op == "$gte":
        compare = bound.__le__
    elif op == "$lt":
        compare = bound.__gt__
    else:
        compare = bound.__ge__

    def one(stored: Any) -> bool:
        return _is_number(stored) and compare(float(stored))

    def in_range(md: Metadata) -> bool:
        if md is None or field not in md:
            return False
        stored = md[field]
        if isinstance(stored, list):
            return any(one(element) for element in stored)
        return one(stored)

    def range_mask(source: ColumnSource) -> np.ndarray:
        return source.column(field).within(len(source), op, bound)

    return Filter(in_range, range_mask)


def _make_exists(field: str, wanted: bool) -> Filter:
    def exists(md: Metadata) -> bool:
        return (md is not None and field in md) is wanted

    def exists_mask(source: ColumnSource) -> np.ndarray:
        present = source.column(field).present(len(source))
        return present if wanted else ~present

    return Filter(exists, exists_mask)


def _negate(inner: Filter) -> Filter:
    def negated(md: Metadata) -> bool:
        return not inner(md)

    def negated_mask(source: ColumnSource) -> np.ndarray:
        return ~inner.mask(source)

    return Filter(negated, negated_mask)


def _all_of(parts: list[Filter]) -> Filter:
    if len(parts) == 1:
        return parts[0]

    def all_of(md: Metadata) -> bool:
        return all(p(md) for p in parts)

    def all_of_mask(source: ColumnSource) -> np.ndarray:
        mask = parts[0].mask(source)
        for part in parts[1:]:
            mask &= part.mask(source)
        return mask

    return Filter(all_of, all_of_mask)


def _any_of(parts: list[Filter]) -> Filter:
    def any_of(md: Metadata) -> bool:
        return any(p(md) for p in parts)

    def any_of_mask(source: ColumnSource) -> np.ndarray:
        mask = parts[0].mask(source)
        for part in parts[1:]:
            mask |= part.mask(source)
        return mask

    return Filter(any_of, any_of_mask)


def _match_all(md: Metadata) -> bool:
    return True


def _match_all_mask(source: ColumnSource) -> np.ndarray:
    return np.ones(len(source), dtype=bool)


_MATCH_ALL = Filter(_match_all, _match_all_mask)


def _compile_operator(field: str, op: str, operand: Any) -> Filter:
    if op in _SCALAR_OPS:
        if not _is_scalar(operand):
            raise _fail(f"{op} on field {echo(field)} expects a string, number or boolean, got {echo(operand)}")
        predicate = _make_eq(field, operand)
        return predicate if op == "$eq" else _negate(predicate)
    if op in _RANGE_OPS:
        if not _is_number(operand):
            raise _fail(f"{op} on field {echo(field)} expects a number, got {echo(operand)}")
        return _make_range(field, op, float(operand))
    if op in _SET_OPS:
        if not isinstance(operand, list):
            raise _fail(f"{op} on field {echo(field)} expects an array, got {echo(operand)}")
        if len(operand) > MAX_FILTER_IN_VALUES:
            raise _fail(f"{op} on field {echo(field)} has {len(operand)} values; the maximum is {MAX_FILTER_IN_VALUES}")
        for value in operand:
            if not _is_scalar(value):
                raise _fail(f"{op} on field {echo(field)} expects strings, numbers or booleans, got {echo(value)}")
        predicate = _make_in(field, operand)
        return predicate if op == "$in" else _negate(predicate)
    if op == "$exists":
        if not isinstance(operand, bool):
            raise _fail(f"$exists on field {echo(field)} expects a boolean, got {echo(operand)}")
        return _make_exists(field, operand)
    raise _fail(f"unknown operator {echo(op)} on field {echo(field)}")


def _compile_field(field: str, condition: Any) -> Filter:
    if field.startswith("$"):
        raise _fail(f"unknown operator {echo(field)}")
    if isinstance(condition, Mapping):
        if not condition:
            raise _fail(f"empty condition for field {echo(field)}")
        return _all_of([_compile_operator(field, str(op), operand) for op, operand in condition.items()])
    if _is_scalar(condition):
        return _make_eq(field, condition)
    raise _fail(f"field {echo(field)} must be compared with a string, number, boolean or operator object")


def _compile_logical(op: str, operand: Any) -> Filter:
    if not isinstance(operand, list) or not operand:
        raise _fail(f"{op} expects a non-empty array of filters")
    parts = []
    for sub in operand:
        if not isinstance(sub, Mapping):
            raise _fail(f"{op} expects filter objects, got {echo(sub)}")
        parts.append(_compile_object(sub))
    return _all_of(parts) if op == "$and" else _any_of(parts)


def _compile_object(spec: Mapping[str, Any]) -> Filter:
    if not spec:
        return _MATCH_ALL
    parts: list[Filter] = []
    for key, condition in spec.items():
        if not isinstance(key, str):
            raise _fail("keys must be strings")
        if key in LOGICAL_OPERATORS:
            parts.append(_compile_logical(key, condition))
        else:
            parts.append(_compile_field(key, condition))
    return _all_of(parts)


def _check_size(spec: Mapping[str, Any]) -> None:
    """Bound nesting depth and the number of conditions without recursing (the compiler below recurses)."""
    pending: list[tuple[Any, int]] = [(spec, 0)]
    clauses = 0
    while pending:
        node, depth = pending.pop()
        if not isinstance(node, Mapping):
            continue  # the compiler words the grammar error
        if depth > MAX_FILTER_DEPTH:
            raise _fail(f"filters may nest $and/$or at most {MAX_FILTER_DEPTH} levels deep")
        for key, condition in node.items():
            clauses += 1 + (len(condition) if isinstance(condition, Mapping) else 0)
            if key in LOGICAL_OPERATORS and isinstance(condition, list):
                clauses += len(condition)
                pending.extend((sub, depth + 1) for sub in condition)
            if clauses > MAX_FILTER_CLAUSES:
                raise _fail(f"a filter may hold at most {MAX_FILTER_CLAUSES} conditions")


def compile_filter(spec: Any) -> Filter:
    """Validate ``spec`` and return it compiled (a predicate over one record's metadata, and a namespace mask).

    Raises:
        ApiError: 400 when the filter is not an object or breaks the grammar described in the module docstring.
    """
    if not isinstance(spec, Mapping):
        raise _fail(f"a filter must be an object, got {type(spec).__name__}")
    _check_size(spec)
    return _compile_object(spec)


def is_empty_filter(spec: Any) -> bool:
    """True for ``None`` or ``{}``: no filtering requested."""
    return spec is None or (isinstance(spec, Mapping) and not spec)
