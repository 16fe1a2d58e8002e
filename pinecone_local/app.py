"""The ASGI application: routing, API-key check, fault injection, error rendering.

Routes (one listening socket serves all of them):

* control plane: ``/indexes``, ``/indexes/{name}``;
* data plane of index ``name``: ``/indexes-data/{name}/...`` (the ``host`` that describe returns ends with this
  prefix, and the SDK appends its data-plane paths to it);
* admin: ``/admin/health``, ``/admin/faults`` (GET/PUT), ``/admin/faults/reset`` (POST).

Request flow: API key and declared body size (before the body is read; a refusal closes the connection) -> read
body -> route (on the percent-encoded path, segment by segment) -> decode JSON -> fault decision (may sleep, may
answer an error) -> handler. Calls Pinecone has but this server does not serve (documents and records APIs, imports,
collections, backups) are refused as Pinecone refuses what it does not support: 400 "... is not supported".
Handlers are synchronous, so each request's validation and write happen without interleaving.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import orjson

from .engine import Engine
from .errors import ApiError, bad_request, not_found, unsupported
from .faults import FaultState
from .http import Request, Response, json_response
from .limits import (
    API_KEY_HEADER,
    DATA_PATH_PREFIX,
    DEFAULT_COMPACT_BYTES,
    MAX_READ_BODY_BYTES,
    MAX_REQUEST_BYTES,
)
from .routes_control import ControlRoutes
from .routes_data import DataRoutes
from .store import IndexState
from .validation import raise_body_too_large

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
DataHandler = Callable[[IndexState, Request, Any], Response]

_WRITE_KINDS = frozenset(("upsert", "delete", "update", "delete_namespace", "create_namespace"))
_SIZE_LIMITED_PATHS = ("/vectors/upsert", "/vectors/update")
_UNSERVED_DATA_PREFIXES = (
    ("/records/", "the records API (integrated embedding)"),
    ("/bulk/imports", "bulk import"),
)
_UNSERVED_CONTROL_PREFIXES = (
    ("/indexes/create-for-model", "integrated-embedding indexes"),
    ("/collections", "collections"),
    ("/backups", "backups"),
    ("/restore-jobs", "restore jobs"),
)


@dataclass(frozen=True)
class ServerSettings:
    """Everything the app needs to know about how it is reached and where it stores data."""

    public_url: str
    data_dir: Path | None = None
    api_key: str | None = None
    fsync: bool = False
    compact_bytes: int = DEFAULT_COMPACT_BYTES
    ack_log: Path | None = None

    def __repr__(self) -> str:
        key = "***" if self.api_key else None
        return f"ServerSettings(public_url={self.public_url!r}, data_dir={self.data_dir!r}, api_key={key!r})"


class PineconeLocalApp:
    """ASGI callable serving the control plane, every index's data plane and the admin API."""

    def __init__(self, settings: ServerSettings, faults: FaultState | None = None) -> None:
        self.settings = settings
        self.faults = faults or FaultState()
        self.engine = Engine(
            settings.data_dir, fsync=settings.fsync, compact_bytes=settings.compact_bytes, ack_log=settings.ack_log
        )
        self.control = ControlRoutes(self.engine, self.data_host)
        self.data = DataRoutes(self.engine)
        self._data_routes: dict[tuple[str, str], tuple[str, DataHandler]] = {
            ("POST", "/vectors/upsert"): ("upsert", self.data.upsert),
            ("POST", "/query"): ("query", self.data.query),
            ("GET", "/vectors/fetch"): ("fetch", self.data.fetch),
            ("POST", "/vectors/fetch_by_metadata"): ("fetch_by_metadata", self.data.fetch_by_metadata),
            ("POST", "/vectors/delete"): ("delete", self.data.delete),
            ("POST", "/vectors/update"): ("update", self.data.update),
            ("POST", "/describe_index_stats"): ("describe_index_stats", self.data.describe_index_stats),
            ("GET", "/describe_index_stats"): ("describe_index_stats", self.data.describe_index_stats),
            ("GET", "/vectors/list"): ("list", self.data.list_ids),
            ("GET", "/namespaces"): ("list_namespaces", self.data.list_namespaces),
            ("POST", "/namespaces"): ("create_namespace", self.data.create_namespace),
        }

    def data_host(self, name: str) -> str:
        """The data-plane host URL of index ``name``."""
        return f"{self.settings.public_url}{DATA_PATH_PREFIX}/{name}"

    def close(self) -> None:
        """Compact (so the next start replays little) and close the journal."""
        if self.engine.journal is not None:
            self.engine.compact()
        self.engine.close()

    # --- ASGI -------------------------------------------------------------------------------------------------------
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        data_plane = path.startswith(DATA_PATH_PREFIX + "/")
        body_read = False
        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            raw_path = scope.get("raw_path") or path.encode("utf-8")
            request = Request(scope["method"], path, scope.get("query_string", b""), headers, b"", raw_path)
            # Everything that needs no body is decided before a byte of it is read: a refused request costs the
            # server its headers only (uvicorn buffers at most 64 KiB of an unread body, then stops reading).
            self._check_api_key(request)
            self._check_declared_length(request, data_plane)
            request.body = await _read_body(receive)
            body_read = True
            response = await self._route(request, data_plane)
        except ApiError as error:
            payload = error.data_plane_body() if data_plane else error.control_plane_body()
            response = json_response(payload, status=error.status, headers=error.headers)
        except Exception:
            logger.exception("unhandled error serving %s %s", scope["method"], path)
            internal = ApiError(500, "Internal error in pinecone_local")
            response = json_response(internal.data_plane_body() if data_plane else internal.control_plane_body(), 500)
        if not body_read:
            # The body was never read: close the connection rather than drain it.
            response.headers["connection"] = "close"
        await send({"type": "http.response.start", "status": response.status, "headers": response.raw_headers()})
        await send({"type": "http.response.body", "body": response.body})

    @staticmethod
    def _check_declared_length(request: Request, data_plane: bool) -> None:
        """Refuse a body by its ``Content-Length`` before reading it: over the server's buffer cap (413), or an
        upsert/update over Pinecone's 2 MB request limit (the same 400 the read body would get)."""
        declared = request.headers.get("content-length")
        if declared is None:
            return
        try:
            length = int(declared)
        except ValueError as exc:
            raise bad_request("Invalid Content-Length header") from exc
        if length > MAX_READ_BODY_BYTES:
            raise ApiError(413, f"Request body exceeds {MAX_READ_BODY_BYTES} bytes")
        if data_plane and length > MAX_REQUEST_BYTES and request.path.rstrip("/").endswith(_SIZE_LIMITED_PATHS):
            raise_body_too_large(length)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def _check_api_key(self, request: Request) -> None:
        expected = self.settings.api_key
        if not expected or request.path == "/admin/health":
            return
        given = request.headers.get(API_KEY_HEADER, "")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            raise ApiError(401, "Invalid API Key")

    async def _fault_gate(self, kind: str, index: str, namespace: str) -> None:
        if not self.faults.active:
            return
        delay, error = self.faults.decide(kind, index, namespace)
        if delay > 0:
            await asyncio.sleep(delay)
        if error is not None:
            raise error

    # --- routing ----------------------------------------------------------------------------------------------------
    async def _route(self, request: Request, data_plane: bool) -> Response:
        if data_plane:
            return await self._route_data(request)
        if request.path.startswith("/admin/"):
            return self._route_admin(request)
        return await self._route_control(request)

    async def _route_control(self, request: Request) -> Response:
        method, path = request.method, request.path.rstrip("/")
        index_backups = path.startswith("/indexes/") and path.count("/") == 3 and path.endswith("/backups")
        for prefix, what in _UNSERVED_CONTROL_PREFIXES:
            if path.startswith(prefix) or (prefix == "/backups" and index_backups):
                raise unsupported(what)
        if path == "/indexes":
            if method == "GET":
                await self._fault_gate("list_indexes", "", "")
                return self.control.list(request)
            if method == "POST":
                await self._fault_gate("create_index", "", "")
                return self.control.create(request)
        elif path.startswith("/indexes/") and path.count("/") == 2:
            name = unquote(path[len("/indexes/") :])
            handlers = {
                "GET": ("describe_index", self.control.describe),
                "DELETE": ("delete_index", self.control.delete),
                "PATCH": ("configure_index", self.control.configure),
            }
            if method in handlers:
                kind, handler = handlers[method]
                await self._fault_gate(kind, name, "")
                return handler(request, name)
        raise not_found(f"No route for {method} {request.path}")

    async def _route_data(self, request: Request) -> Response:
        # Split the percent-encoded path, then decode each segment: an index or namespace name may contain "/".
        raw = request.raw_path.decode("utf-8", "replace")[len(DATA_PATH_PREFIX) + 1 :].rstrip("/")
        name_raw, _, sub_raw = raw.partition("/")
        name = unquote(name_raw)
        segments = [unquote(part) for part in sub_raw.split("/")] if sub_raw else []
        sub = "/" + "/".join(segments)
        index = self.engine.store.get(name)
        if index is None:
            raise not_found(f"Index '{name}' not found")
        route = self._data_routes.get((request.method, sub)) if len(segments) <= 2 else None
        if route is not None:
            kind, handler = route
            body = request.json() if request.method == "POST" else {}
            namespace = request.param("namespace", "") if request.method == "GET" else _body_namespace(body)
            await self._fault_gate(kind, name, namespace or "")
            response = handler(index, request, body)
            if kind in _WRITE_KINDS:
                self.engine.maybe_compact()
            return response
        if len(segments) >= 3 and segments[0] == "namespaces" and segments[2] == "documents":
            raise unsupported("the documents API")
        for prefix, what in _UNSERVED_DATA_PREFIXES:
            if sub.startswith(prefix):
                raise unsupported(what)
        if len(segments) == 2 and segments[0] == "namespaces":
            namespace = segments[1]
            if request.method == "GET":
                await self._fault_gate("describe_namespace", name, namespace)
                return self.data.describe_namespace(index, request, namespace)
            if request.method == "DELETE":
                await self._fault_gate("delete_namespace", name, namespace)
                return self.data.delete_namespace(index, request, namespace)
        raise not_found(f"No route for {request.method} {sub}")

    def _route_admin(self, request: Request) -> Response:
        method, path = request.method, request.path.rstrip("/")
        if path == "/admin/health" and method == "GET":
            return json_response({"status": "ok", "indexes": len(self.engine.store.indexes)})
        if path == "/admin/faults" and method == "GET":
            return json_response(self.faults.to_json())
        if path == "/admin/faults" and method in ("PUT", "POST", "PATCH"):
            changes = request.json()
            if not isinstance(changes, dict):
                raise bad_request("faults body must be an object")
            try:
                self.faults.apply(changes)
            except (ValueError, TypeError, KeyError) as exc:
                raise bad_request(str(exc)) from exc
            return json_response(self.faults.to_json())
        if path == "/admin/faults/reset" and method == "POST":
            self.faults.reset()
            return json_response(self.faults.to_json())
        if path == "/admin/compact" and method == "POST":
            self.engine.compact()
            return json_response({"compacted": self.engine.journal is not None})
        raise not_found(f"No route for {method} {request.path}")


def _body_namespace(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("namespace", "name"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return ""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > MAX_READ_BODY_BYTES:
                raise ApiError(413, f"Request body exceeds {MAX_READ_BODY_BYTES} bytes")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def dumps(payload: Any) -> bytes:
    """orjson with the server's options (for the CLI and tests)."""
    return orjson.dumps(payload)
