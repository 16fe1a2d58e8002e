"""Columnar copies of one namespace's metadata, so filters run as numpy mask operations instead of per-record Python.

A ``KeyColumn`` holds one metadata key for every row of a namespace: ``kind`` (absent, number, string, boolean,
list of strings), ``number`` (float64, NaN unless the row holds a number), ``code`` (for a string its code in the
column's string dictionary, for a boolean 0/1, else -1) and, for the rows holding a list, the list itself.
Dictionary codes make string tests integer comparisons: comparing the stored ``str`` objects instead costs a memory
access and a compare per row (measured 4 ms per 100k rows, against 0.1 ms for the codes).

``MetadataColumns`` builds a key's column the first time a filter names the key (one scan of the namespace) and from
then on the namespace keeps every built column in step with its rows, so memory is spent only on keys that are
filtered on. A column whose dictionary has grown far beyond its live rows (many distinct strings overwritten or
deleted) is dropped and rebuilt on its next use.

The mask methods implement the semantics documented in ``filters`` (the per-record evaluator there is the
reference; property tests compare the two): list fields match ``$eq``/``$in`` when any element matches, range
operators compare numbers only, booleans are not numbers, and ``$ne``/``$nin`` are taken by the caller as exact
negations.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

ABSENT, NUMBER, STRING, BOOLEAN, LIST = 0, 1, 2, 3, 4

_RANGE_OPERATORS = {"$gt": np.greater, "$gte": np.greater_equal, "$lt": np.less, "$lte": np.less_equal}

STALE_CODES_PER_ROW = 2
STALE_CODES_SLACK = 1024
"""A column is rebuilt once its dictionary holds more than ``2 * rows + 1024`` strings."""


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
        self.code = np.full(capacity, -1, dtype=np.int32)
        self.codes: dict[str, int] = {}
        self.lists: dict[int, list[str]] = {}
        """The rows holding a list, with their lists (list matching is skipped while this is empty)."""

    @property
    def capacity(self) -> int:
        """Rows that can be stored without growing."""
        return len(self.kind)

    def is_stale(self, size: int) -> bool:
        """True when the string dictionary has grown far beyond the ``size`` live rows."""
        return len(self.codes) > STALE_CODES_PER_ROW * size + STALE_CODES_SLACK

    def grow(self, capacity: int) -> None:
        """Make room for ``capacity`` rows; new rows are absent."""
        if capacity <= self.capacity:
            return
        extra = capacity - self.capacity
        self.kind = np.concatenate([self.kind, np.zeros(extra, dtype=np.int8)])
        self.number = np.concatenate([self.number, np.full(extra, np.nan)])
        self.code = np.concatenate([self.code, np.full(extra, -1, dtype=np.int32)])

    def set(self, row: int, value: Any) -> None:
        """Store ``value`` (``None`` = the key is absent) at ``row``."""
        kind = _classify(value)
        self.kind[row] = kind
        self.number[row] = value if kind == NUMBER else np.nan
        if kind == STRING:
            code = self.codes.get(value)
            if code is None:
                code = self.codes[value] = len(self.codes)
            self.code[row] = code
        else:
            self.code[row] = int(value) if kind == BOOLEAN else -1
        if kind == LIST:
            self.lists[row] = value
        elif self.lists:
            self.lists.pop(row, None)

    def move(self, source: int, target: int) -> None:
        """Copy row ``source`` over row ``target`` and clear ``source`` (the namespace's swap-remove)."""
        self.kind[target] = self.kind[source]
        self.number[target] = self.number[source]
        self.code[target] = self.code[source]
        if self.lists:
            moved = self.lists.pop(source, None)
            if moved is None:
                self.lists.pop(target, None)
            else:
                self.lists[target] = moved
        self.kind[source] = ABSENT
        self.number[source] = np.nan
        self.code[source] = -1

    def clear(self, row: int) -> None:
        """Mark ``row`` absent."""
        self.set(row, None)

    # --- masks over rows [0, size) ------------------------------------------------------------------------------
    def _add_list_matches(self, mask: np.ndarray, test: Callable[[list[str]], bool]) -> np.ndarray:
        """``mask`` with the rows whose list satisfies ``test`` set."""
        hits = [row for row, items in self.lists.items() if test(items)]
        if hits:
            mask[np.asarray(hits, dtype=np.int64)] = True
        return mask

    def _strings(self, size: int, texts: Sequence[str]) -> np.ndarray:
        """Rows holding (as a plain string) one of ``texts``."""
        codes = [code for code in (self.codes.get(text) for text in texts) if code is not None]
        if not codes:
            return np.zeros(size, dtype=bool)
        if len(codes) == 1:
            matched = self.code[:size] == codes[0]
        else:
            matched = np.isin(self.code[:size], np.asarray(codes, dtype=np.int32))
        result: np.ndarray = matched & (self.kind[:size] == STRING)
        return result

    def _booleans(self, size: int, flag: bool) -> np.ndarray:
        result: np.ndarray = (self.kind[:size] == BOOLEAN) & (self.code[:size] == int(flag))
        return result

    def present(self, size: int) -> np.ndarray:
        """Rows that have the key."""
        result: np.ndarray = self.kind[:size] != ABSENT
        return result

    def equals(self, size: int, wanted: Any) -> np.ndarray:
        """Rows whose value equals ``wanted`` (a list: any element)."""
        if isinstance(wanted, bool):
            return self._booleans(size, wanted)
        if isinstance(wanted, str):
            return self._add_list_matches(self._strings(size, (wanted,)), lambda items: wanted in items)
        result: np.ndarray = self.number[:size] == float(wanted)
        return result

    def within(self, size: int, operator: str, bound: float) -> np.ndarray:
        """Rows holding a number that satisfies ``number <operator> bound`` (NaN, i.e. non-numbers, never does)."""
        result: np.ndarray = _RANGE_OPERATORS[operator](self.number[:size], bound)
        return result

    def is_in(
        self, size: int, strings: frozenset[str], numbers: frozenset[float], bools: frozenset[bool]
    ) -> np.ndarray:
        """Rows whose value is one of the given values (a list: any element)."""
        mask = self._strings(size, tuple(strings))
        if numbers:
            mask |= np.isin(self.number[:size], np.fromiter(numbers, dtype=np.float64, count=len(numbers)))
        for flag in bools:
            mask |= self._booleans(size, flag)
        if strings:
            mask = self._add_list_matches(mask, lambda items: not strings.isdisjoint(items))
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
        stale = []
        for key, column in self.columns.items():
            if column.capacity < size:
                column.grow(max(size, 2 * column.capacity))
            for row, md in zip(rows, metadata, strict=True):
                column.set(row, None if md is None else md.get(key))
            if column.is_stale(size):
                stale.append(key)
        for key in stale:
            del self.columns[key]

    def move(self, source: int, target: int) -> None:
        """Row ``source`` moved to ``target`` (``source`` is now beyond the live rows)."""
        for column in self.columns.values():
            column.move(source, target)

    def clear_row(self, row: int) -> None:
        """Row ``row`` no longer exists (it was the last one)."""
        for column in self.columns.values():
            column.clear(row)
