"""Duplicate keys in JSON objects: found exactly, paid for only when a cheap count says there may be some.

JSON (RFC 8259) says the names of an object SHOULD be unique; parsers keep the last of repeated names (orjson
silently), so ``{"__deleted": "true", "__deleted": "false"}`` would be an upsert and ``{"id": 1, "id": 2}`` would
name record 2. The job rejects any object with a repeated name rather than guess which one was meant.

orjson does not report repeats, and re-parsing every value with Python's ``json`` and an ``object_pairs_hook`` would
cost more than the rest of decoding. So decode compares two counts first (``may_repeat_keys``); a repeat drops a
name (and its value) from the parse but not from the text, so the text's count is larger whenever there is one:

- values up to ``_SHORT_VALUE`` bytes: the ``"`` in the text (``bytes.count``) against twice the names and string
  values of the parsed objects (``string_count``); escaped quotes inside strings only add to the text's count;
- longer values (vectors): the colons that follow a ``"`` (``_name_ends``; such colons inside strings only add)
  against the names of the parsed objects (``key_count``; lists that do not start with an object or a list are not
  walked: they would only make the count smaller).

If both counts are equal, no object can hold a repeated name. Otherwise (a repeat, an escaped quote, a colon inside
a string, a list of objects after a scalar) the value is parsed again with ``unique_object`` as the hook, which finds
repeats exactly, at every level.
"""

from __future__ import annotations

from typing import Any

_QUOTE = ord('"')
_WHITESPACE = b" \t\r\n"
_SHORT_VALUE = 2048
"""Up to this size, ``bytes.count`` and ``string_count`` are cheapest; beyond it (vectors), ``_name_ends``."""
_CONTAINERS = (dict, list)
_MAX_WALK_DEPTH = 64
"""Deeper objects are not counted: the exact check then runs (and the record is rejected as too deep anyway)."""


class DuplicateKey(Exception):
    """Raised by ``unique_object`` (through ``json.loads``) for the first repeated name of an object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def unique_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """``object_pairs_hook`` for ``json.loads``: the object as a dict, or ``DuplicateKey`` for a repeated name."""
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return obj


def may_repeat_keys(value: bytes, obj: dict[str, Any]) -> bool:
    """False only if no object in ``value`` (the JSON text ``obj`` was parsed from) repeats a name; see above."""
    if len(value) <= _SHORT_VALUE:
        return value.count(b'"') != 2 * string_count(obj, 0)
    return _name_ends(value) != key_count(obj, 0)


def _name_ends(value: bytes) -> int:
    """The colons of ``value`` that follow a ``"`` (whitespace between allowed): every name's, and maybe a few in
    strings. ``find`` of one byte is a memchr: far cheaper than a count or a regex over a long value (a vector)."""
    count = 0
    find = value.find
    position = find(b":")
    while position > 0:
        before = value[position - 1]
        if before == _QUOTE:
            count += 1
        elif before in _WHITESPACE:
            back = position - 2
            while back > 0 and value[back] in _WHITESPACE:
                back -= 1
            count += value[back] == _QUOTE
        position = find(b":", position + 1)
    return count


def key_count(obj: dict[str, Any], depth: int) -> int:
    """The names of ``obj`` and of the objects inside it (lists walked only when they start with a container)."""
    count = len(obj)
    if depth >= _MAX_WALK_DEPTH:
        return count
    for item in obj.values():
        kind = type(item)
        if kind is dict:
            count += key_count(item, depth + 1)
        elif kind is list and item and type(item[0]) in _CONTAINERS:
            for element in item:
                if type(element) is dict:
                    count += key_count(element, depth + 2)
    return count


def string_count(obj: dict[str, Any], depth: int) -> int:
    """The names and string values of ``obj`` and of everything inside it."""
    count = len(obj)
    if depth >= _MAX_WALK_DEPTH:
        return count
    for item in obj.values():
        kind = type(item)
        if kind is str:
            count += 1
        elif kind is dict:
            count += string_count(item, depth + 1)
        elif kind is list and item:
            count += _list_string_count(item, depth + 1)
    return count


def _list_string_count(items: list[Any], depth: int) -> int:
    # map, list.count and ``in`` run in C: only containers in a list cost a Python step each.
    kinds = list(map(type, items))
    count = kinds.count(str)
    if (dict in kinds or list in kinds) and depth < _MAX_WALK_DEPTH:
        for item in items:
            kind = type(item)
            if kind is dict:
                count += string_count(item, depth + 1)
            elif kind is list and item:
                count += _list_string_count(item, depth + 1)
    return count
