"""The ASGI application: routing, API-key check, fault injection, error rendering.

Routes (one listening socket serves all of them):

* control plane: ``/indexes``, ``/indexes/{name}``;
* data plane of index ``name``: ``/indexes-data/{name}/...`` (the ``host`` that describe returns ends with this
  prefix, and the SDK appends its data-plane paths to it);
* admin: ``/admin/health``, ``/admin/faults`` (GET/PUT), ``/admin/faults/reset`` (POST).

Request flow: read body -> API key -> route -> decode JSON -> fault decision (may sleep, may answer an error) ->
handler. Handlers are synchronous, so each request's validation and write happen without interleaving.
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
from .errors import ApiError, bad_request, not_found
from .faults import FaultState
from .http import Request, Response, json_response
from .limits import API_KEY_HEADER, DATA_PATH_PREFIX, DEFAULT_COMPACT_BYTES, MAX_READ_BODY_BYTES
from .routes_control import ControlRoutes
from .routes_data import DataRoutes
from .store import IndexState

logger = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
DataHandler = Callable[[IndexState, Request, Any], Response]

_WRITE_KINDS = frozenset(("upsert", "delete", "update", "delete_namespace"))


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
        try:
            body = await _read_body(receive)
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            request = Request(scope["method"], path, scope.get("query_string", b""), headers, body)
            self._check_api_key(request)
            response = await self._route(request, data_plane)
        except ApiError as error:
            payload = error.data_plane_body() if data_plane else error.control_plane_body()
            response = json_response(payload, status=error.status, headers=error.headers)
        except Exception:
            logger.exception("unhandled error serving %s %s", scope["method"], path)
            internal = ApiError(500, "Internal error in pinecone_local")
            response = json_response(internal.data_plane_body() if data_plane else internal.control_plane_body(), 500)
        await send({"type": "http.response.start", "status": response.status, "headers": response.raw_headers()})
        await send({"type": "http.response.body", "body": response.body})

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
        rest = request.path[len(DATA_PATH_PREFIX) + 1 :]
        name, _, sub = rest.partition("/")
        name = unquote(name)
        sub = "/" + sub.rstrip("/")
        index = self.engine.store.get(name)
        if index is None:
            raise not_found(f"Index '{name}' not found")
        route = self._data_routes.get((request.method, sub))
        if route is not None:
            kind, handler = route
            body = request.json() if request.method == "POST" else {}
            namespace = request.param("namespace", "") if request.method == "GET" else _body_namespace(body)
            await self._fault_gate(kind, name, namespace or "")
            response = handler(index, request, body)
            if kind in _WRITE_KINDS:
                self.engine.maybe_compact()
            return response
        if sub.startswith("/namespaces/") and sub.count("/") == 2:
            namespace = unquote(sub[len("/namespaces/") :])
            if request.method == "GET":
                await self._fault_gate("describe_namespace", name, namespace)
                return self.data.describe_namespace(index, request, namespace)
            if request.method == "DELETE":
                await self._fault_gate("delete_namespace", name, namespace)
                return self.data.delete_namespace(index, request, namespace)
        if (request.method, sub) == ("POST", "/namespaces"):
            raise ApiError(501, "Creating an empty namespace is not supported by pinecone_local; upsert into it")
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
    if isinstance(body, dict) and isinstance(body.get("namespace"), str):
        return str(body["namespace"])
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
