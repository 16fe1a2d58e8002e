"""Minimal request/response types for the raw ASGI app (no framework on the hot path)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from .errors import bad_request

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY
_JSON_HEADERS = [(b"content-type", b"application/json")]


@dataclass
class Request:
    """One HTTP request with its body fully read."""

    method: str
    path: str
    query_string: bytes
    headers: dict[str, str]
    body: bytes
    raw_path: bytes = b""
    """The path as sent (percent-encoded), for splitting into segments before decoding them."""
    _query: dict[str, list[str]] | None = field(default=None, repr=False)

    @property
    def query(self) -> dict[str, list[str]]:
        """Query parameters; repeated keys keep every value."""
        if self._query is None:
            self._query = parse_qs(self.query_string.decode("latin-1"), keep_blank_values=True)
        return self._query

    def param(self, name: str, default: str | None = None) -> str | None:
        """The first value of a query parameter."""
        values = self.query.get(name)
        return values[0] if values else default

    def json(self) -> Any:
        """The decoded JSON body (an empty body decodes to ``{}``); malformed JSON is a 400."""
        if not self.body:
            return {}
        try:
            return orjson.loads(self.body)
        except orjson.JSONDecodeError as exc:
            raise bad_request(f"Malformed JSON in request body: {exc}") from exc


@dataclass
class Response:
    """Status, body bytes and extra headers."""

    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """Headers as ASGI wants them."""
        out = list(_JSON_HEADERS) if self.body else []
        out.append((b"content-length", str(len(self.body)).encode("ascii")))
        out.extend((k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items())
        return out


def json_response(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """Serialize ``payload`` with orjson (numpy arrays become JSON arrays)."""
    return Response(status, orjson.dumps(payload, option=JSON_OPTIONS), headers or {})
