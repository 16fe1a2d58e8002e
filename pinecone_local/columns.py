"""Columnar copies of one namespace's metadata, so filters run as numpy mask operations instead of per-record Python.

A ``KeyColumn`` holds one metadata key for every row of a namespace: ``kind`` (absent, number, string, boolean,
list of strings), ``number`` (float64, NaN unless the row holds a number) and ``value`` (the string, boolean or list
object, ``None`` otherwise). ``MetadataColumns`` builds a key's column the first time a filter names the key (one
scan of the namespace) and from then on the namespace keeps every built column in step with its rows, so memory is
spent only on keys that are filtered on.

The mask methods implement the semantics documented in ``filters`` (the per-record evaluator there is the
reference; property tests compare the two): list fields match ``$eq``/``$in`` when any element matches, range
operators compare numbers only, booleans are not numbers, and ``$ne``/``$nin`` are taken by the caller as exact
negations.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

ABSENT, NUMBER, STRING, BOOLEAN, LIST = 0, 1, 2, 3, 4

_SMALL_STRING_SET = 4
"""Up to this many ``$in`` strings are matched with one vectorised comparison each; more use one set lookup per row."""

_RANGE_OPERATORS = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}


def _classify(value: Any) -> int:
    if value is None:
        return ABSENT
    kind = type(value)
    if kind is str:
        return STRING
    if kind is bool:
        return BOOLEAN
    if kind is float or kind is int:
        return NUMBER
    if kind is list:
        return LIST
    raise TypeError(f"unexpected metadata value type {kind.__name__}")


class KeyColumn:
    """One metadata key across the rows of a namespace (rows ``[0, size)`` are meaningful)."""

    def __init__(self, capacity: int) -> None:
        self.kind = np.zeros(capacity, dtype=np.int8)
        self.number = np.full(capacity, np.nan)
        self.value = np.full(capacity, None, dtype=object)
        self.list_rows = 0
        """How many rows hold a list; list matching is skipped entirely while it is zero."""

    @property
    def capacity(self) -> int:
        """Rows that can be stored without growing."""
        return len(self.kind)

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` rows; new rows are absent."""
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity
        self.kind = np.concatenate([self.kind, np.zeros(extra, dtype=np.int8)])
        self.number = np.concatenate([self.number, np.full(extra, np.nan)])
        self.value = np.concatenate([self.value, np.full(extra, None, dtype=object)])

    def set(self, row: int, value: Any) -> None:
        """Store ``value`` (``None`` = the key is absent) at ``row``."""
        kind = _classify(value)
        self.list_rows += (kind == LIST) - (int(self.kind[row]) == LIST)
        self.kind[row] = kind
        if kind == NUMBER:
            self.number[row] = value
            self.value[row] = None
        else:
            self.number[row] = np.nan
            self.value[row] = value

    def move(self, source: int, target: int) -> None:
        """Copy row ``source`` over row ``target`` and clear ``source`` (the namespace's swap-remove)."""
        self.list_rows -= int(self.kind[target]) == LIST
        self.kind[target] = self.kind[source]
        self.number[target] = self.number[source]
        self.value[target] = self.value[source]
        self.kind[source] = ABSENT
        self.number[source] = np.nan
        self.value[source] = None

    def clear(self, row: int) -> None:
        """Mark ``row`` absent."""
        self.set(row, None)

    # --- masks over rows [0, size) ------------------------------------------------------------------------------
    def _list_mask(self, size: int, test: Any) -> np.ndarray | None:
        """Rows holding a list for which ``test(list)`` is true, or ``None`` when no row holds a list."""
        if not self.list_rows:
            return None
        rows = np.flatnonzero(self.kind[:size] == LIST)
        hits = np.fromiter((test(self.value[row]) for row in rows), dtype=bool, count=len(rows))
        mask = np.zeros(size, dtype=bool)
        mask[rows[hits]] = True
        return mask

    def present(self, size: int) -> np.ndarray:
        """Rows that have the key."""
        return self.kind[:size] != ABSENT

    def equals(self, size: int, wanted: Any) -> np.ndarray:
        """Rows whose value equals ``wanted`` (a list: any element)."""
        if isinstance(wanted, bool):
            return (self.kind[:size] == BOOLEAN) & (self.value[:size] == wanted)
        if isinstance(wanted, str):
            mask = (self.kind[:size] == STRING) & (self.value[:size] == wanted)
            in_lists = self._list_mask(size, lambda items: wanted in items)
            return mask if in_lists is None else mask | in_lists
        return self.number[:size] == float(wanted)

    def within(self, size: int, operator: str, bound: float) -> np.ndarray:
        """Rows holding a number that satisfies ``number <operator> bound`` (NaN, i.e. non-numbers, never does)."""
        result: np.ndarray = _RANGE_OPERATORS[operator](self.number[:size], bound)
        return result

    def is_in(self, size: int, strings: frozenset[str], numbers: frozenset[float], bools: frozenset[bool]) -> np.ndarray:
        """Rows whose value is one of the given values (a list: any element)."""
        mask = np.zeros(size, dtype=bool)
        if numbers:
            mask |= np.isin(self.number[:size], np.fromiter(numbers, dtype=np.float64, count=len(numbers)))
        if bools:
            kind_is_bool = self.kind[:size] == BOOLEAN
            for flag in bools:
                mask |= kind_is_bool & (self.value[:size] == flag)
        if strings:
            kind_is_string = self.kind[:size] == STRING
            if len(strings) <= _SMALL_STRING_SET:
                for text in strings:
                    mask |= kind_is_string & (self.value[:size] == text)
            else:
                rows = np.flatnonzero(kind_is_string)
                hits = np.fromiter(map(strings.__contains__, self.value[rows]), dtype=bool, count=len(rows))
                mask[rows[hits]] = True
            in_lists = self._list_mask(size, lambda items: not strings.isdisjoint(items))
            if in_lists is not None:
                mask |= in_lists
        return mask


class MetadataColumns:
    """The built ``KeyColumn``s of one namespace; the namespace calls the mutators for every metadata change."""

    def __init__(self) -> None:
        self.columns: dict[str, KeyColumn] = {}

    def column(self, key: str, metadata: Sequence[dict[str, Any] | None]) -> KeyColumn:
        """The column of ``key``, built from ``metadata`` (one entry per row) on first use."""
        column = self.columns.get(key)
        if column is None:
            column = KeyColumn(max(len(metadata), 1))
            for row, md in enumerate(metadata):
                if md is not None:
                    value = md.get(key)
                    if value is not None:
                        column.set(row, value)
            self.columns[key] = column
        return column

    def set_rows(self, rows: Sequence[int] | range, metadata: Sequence[dict[str, Any] | None], size: int) -> None:
        """Rows ``rows[i]`` now hold ``metadata[i]``; ``size`` is the namespace's row count afterwards."""
        for key, column in self.columns.items():
            if column.capacity < size:
                column.grow(max(size, 2 * column.capacity))
            for row, md in zip(rows, metadata, strict=True):
                column.set(row, None if md is None else md.get(key))

    def move(self, source: int, target: int) -> None:
        """Row ``source`` moved to ``target`` (``source`` is now beyond the live rows)."""
        for column in self.columns.values():
            column.move(source, target)

    def clear_row(self, row: int) -> None:
        """Row ``row`` no longer exists (it was the last one)."""
        for column in self.columns.values():
            column.clear(row)
