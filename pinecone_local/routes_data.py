"""Data plane handlers for one index: upsert, query, fetch, delete, update, stats, list, namespaces.

Each handler validates the whole request first and only then calls the engine, so a 4xx never changes anything.
Handlers are synchronous and run on the event-loop thread: one request's check-then-write cannot interleave with
another's. A namespace exists from its first write (or ``POST /namespaces``) until it is deleted, empty or not; the
default namespace always exists. Reads of a namespace that does not exist return empty results; deletes there answer
404, as Pinecone serverless does. Vector writes to a document-schema index are refused with Pinecone's message.
"""

from __future__ import annotations

import base64
import bisect
from typing import Any

import numpy as np

from .engine import Engine, merged_metadata
from .errors import ApiError, bad_request, echo, not_found
from .filters import compile_filter, is_empty_filter
from .http import Request, Response, json_response
from .limits import (
    DEFAULT_FETCH_BY_METADATA_LIMIT,
    DEFAULT_LIST_LIMIT,
    DEFAULT_NAMESPACE_LIST_LIMIT,
    DEFAULT_NAMESPACE_STATS_NAME,
    MAX_FETCH_BY_METADATA_LIMIT,
    MAX_LIST_LIMIT,
)
from .store import IndexState, Namespace
from .validation import (
    check_body_size,
    check_bool,
    check_id,
    check_ids,
    check_metadata,
    check_metadata_size,
    check_namespace_name,
    check_sparse,
    check_top_k,
    check_upsert,
    dense_matrix,
    namespace_of,
    namespace_param,
    require_object,
    resolve_namespace,
)

_EMPTY = b"{}"


DOCUMENT_SCHEMA_WRITE_REFUSED = (
    "This index has a document schema, so writes must go through the documents API. Use "
    "`POST /namespaces/{namespace}/documents/upsert`, `/update` or `/delete` with the `X-Pinecone-API-Version` header "
    "set to `2026-07` or later. The vectors and records write endpoints do not support document schemas."
)
"""Pinecone's answer to a vectors-API write on an index created with named schema fields (quoted in the SDK 10
migration notes, ``docs/migration/v10-2026-07-vector-models.md``)."""

STATS_FILTER_REFUSED = "Serverless and starter indexes do not support describing index stats with metadata filtering."


def _namespace_missing(namespace: str) -> ApiError:
    return not_found(f"Namespace '{namespace}' not found")


def _refuse_document_schema_write(index: IndexState) -> None:
    if index.document_schema:
        raise bad_request(DOCUMENT_SCHEMA_WRITE_REFUSED)


def _namespace_description(name: str, ns: Namespace | None) -> dict[str, Any]:
    out: dict[str, Any] = {"name": _wire_namespace(name), "record_count": str(len(ns) if ns is not None else 0)}
    if ns is not None and ns.schema is not None:
        out["schema"] = ns.schema
        out["indexed_fields"] = {"fields": sorted(ns.schema["fields"])}
    return out


def _check_namespace_schema(schema: Any) -> dict[str, Any] | None:
    """``{"fields": {name: {"filterable": true}}}``; Pinecone accepts only ``filterable: true``."""
    if schema is None:
        return None
    if not isinstance(schema, dict) or set(schema) != {"fields"} or not isinstance(schema["fields"], dict):
        raise bad_request('schema must be {"fields": {<field>: {"filterable": true}}}')
    for field, config in schema["fields"].items():
        if not field or field.startswith("$"):
            raise bad_request(f"Invalid metadata field name {echo(field)} in schema")
        if not isinstance(config, dict) or set(config) != {"filterable"} or config["filterable"] is not True:
            raise bad_request(
                f"Field '{field}' is set to filterable: false. Only filterable: true is supported. To avoid "
                "indexing the field, omit it from the list of fields."
            )
    return {"fields": {field: {"filterable": True} for field in schema["fields"]}}


def _wire_namespace(name: str) -> str:
    return name or DEFAULT_NAMESPACE_STATS_NAME


def _path_namespace(name: str) -> str:
    return "" if name == DEFAULT_NAMESPACE_STATS_NAME else name


def _encode_token(last: str) -> str:
    return base64.urlsafe_b64encode(last.encode("utf-8")).decode("ascii")


def _decode_token(token: str | None) -> str | None:
    if token is None or token == "":
        return None
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode("utf-8")
    except (ValueError, UnicodeError) as exc:
        raise bad_request("Invalid pagination token") from exc


def _parse_limit(raw: Any, default: int, maximum: int) -> int:
    if raw is None:
        return default
    try:
        limit = int(raw)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"limit must be an integer, got {echo(raw)}") from exc
    if not 1 <= limit <= maximum:
        raise bad_request(f"limit must be between 1 and {maximum}, got {limit}")
    return limit


def _usage(units: int = 1) -> dict[str, int]:
    return {"readUnits": max(1, units)}


class DataRoutes:
    """Data-plane handlers; each takes the resolved index, the request and its decoded body."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def upsert(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /vectors/upsert``: atomic per request."""
        _refuse_document_schema_write(index)
        check_body_size(request.body)
        body = require_object(body)
        namespace = namespace_of(body)
        batch = check_upsert(body, index.space)
        count = self.engine.upsert(index, namespace, batch)
        return json_response({"upsertedCount": count})

    def _query_inputs(
        self, index: IndexState, ns: Namespace | None, body: dict[str, Any]
    ) -> tuple[np.ndarray | None, Any]:
        vector, vector_id, sparse_raw = body.get("vector"), body.get("id"), body.get("sparseVector")
        if "queries" in body:
            raise bad_request("The 'queries' field is no longer supported; send one 'vector' or 'id' per request")
        if vector is not None and vector_id is not None:
            raise bad_request("Cannot provide both 'vector' and 'id' in a query")
        sparse = None if sparse_raw is None else check_sparse(sparse_raw, index.space)
        if vector_id is not None:
            check_id(vector_id, "Query id")
            if ns is None or vector_id not in ns.rows:
                return None, None
            row = ns.rows[vector_id]
            dense = ns.matrix[row].copy() if index.space.dimension else None
            return dense, sparse if sparse is not None else ns.sparse[row]
        if vector is not None and not (index.space.sparse and vector == []):
            if index.space.sparse:
                raise bad_request("Dense query vectors are not supported on a sparse index; send sparseVector")
            return dense_matrix([vector], index.space, "Query vector")[0], sparse
        if sparse is None:
            raise bad_request("A query needs one of 'vector', 'sparseVector' or 'id'")
        if not index.space.sparse:
            raise bad_request("A query on a dense index needs 'vector' or 'id'")
        return None, sparse

    def query(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /query``: exact top-k, optionally filtered."""
        body = require_object(body)
        namespace = namespace_of(body)
        top_k = check_top_k(body.get("topK", body.get("top_k")))
        include_values = check_bool(body, "includeValues")
        include_metadata = check_bool(body, "includeMetadata")
        raw_filter = body.get("filter")
        predicate = None if is_empty_filter(raw_filter) else compile_filter(raw_filter)
        ns = index.namespace(namespace)
        dense, sparse = self._query_inputs(index, ns, body)
        matches: list[dict[str, Any]] = []
        if ns is not None and (dense is not None or sparse is not None):
            rows = None if predicate is None else ns.matching_rows(predicate)
            for match in ns.search(dense, sparse, top_k, rows):
                entry: dict[str, Any] = {"id": ns.ids[match.row], "score": np.float32(match.score)}
                entry["values"] = ns.matrix[match.row] if include_values and index.space.dimension else []
                stored_sparse = ns.sparse[match.row]
                if include_values and stored_sparse is not None:
                    entry["sparseValues"] = {"indices": stored_sparse[0], "values": stored_sparse[1]}
                if include_metadata and ns.metadata[match.row] is not None:
                    entry["metadata"] = ns.metadata[match.row]
                matches.append(entry)
        units = 1 + (len(ns) if ns is not None else 0) // 10_000
        return json_response({"matches": matches, "namespace": namespace, "usage": _usage(units)})

    def fetch(self, index: IndexState, request: Request, body: Any) -> Response:
        """``GET /vectors/fetch?ids=..&namespace=..``: missing ids are simply absent."""
        namespace = namespace_param(request.param("namespace"))
        ids = check_ids(request.query.get("ids"), "ids")
        ns = index.namespace(namespace)
        vectors: dict[str, Any] = {}
        if ns is not None:
            for vector_id in ids:
                row = ns.rows.get(vector_id)
                if row is not None:
                    vectors[vector_id] = ns.record(row)
        return json_response({"vectors": vectors, "namespace": namespace, "usage": _usage()})

    def fetch_by_metadata(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /vectors/fetch_by_metadata``: records matching a filter, in id order, paginated."""
        body = require_object(body)
        namespace = namespace_of(body)
        predicate = compile_filter(body.get("filter") or {})
        limit = _parse_limit(body.get("limit"), DEFAULT_FETCH_BY_METADATA_LIMIT, MAX_FETCH_BY_METADATA_LIMIT)
        after = _decode_token(body.get("paginationToken"))
        ns = index.namespace(namespace)
        vectors: dict[str, Any] = {}
        more = False
        if ns is not None:
            selected = predicate.mask(ns)
            for vector_id in ns.sorted_ids():
                if after is not None and vector_id.encode() <= after.encode():
                    continue
                row = ns.rows[vector_id]
                if not selected[row]:
                    continue
                if len(vectors) == limit:
                    more = True
                    break
                vectors[vector_id] = ns.record(row)
        out: dict[str, Any] = {"vectors": vectors, "namespace": namespace, "usage": _usage()}
        if more:
            out["pagination"] = {"next": _encode_token(next(reversed(vectors)))}
        return json_response(out)

    def delete(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /vectors/delete``: exactly one of ids, deleteAll, filter. The namespace stays, even emptied."""
        _refuse_document_schema_write(index)
        body = require_object(body)
        namespace = namespace_of(body)
        ids, delete_all, raw_filter = body.get("ids"), check_bool(body, "deleteAll"), body.get("filter")
        selectors = (ids is not None) + delete_all + (raw_filter is not None)
        if selectors != 1:
            raise bad_request("Exactly one of 'ids', 'deleteAll' or 'filter' must be provided")
        if ids is not None:
            ids = check_ids(ids, "ids")
        predicate = None
        if raw_filter is not None:
            if is_empty_filter(raw_filter):
                raise bad_request("Delete filter must not be empty; use deleteAll to delete every record")
            predicate = compile_filter(raw_filter)
        if not index.namespace_exists(namespace):
            raise _namespace_missing(namespace)
        ns = index.namespace(namespace)
        if ns is None:
            pass  # the default namespace before its first write: nothing to delete
        elif delete_all:
            self.engine.delete_all(index, namespace)
        elif predicate is not None:
            doomed = [ns.ids[row] for row in ns.matching_rows(predicate)]
            if doomed:
                self.engine.delete_ids(index, namespace, doomed)
        else:
            self.engine.delete_ids(index, namespace, ids)
        return Response(200, _EMPTY)

    def update(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /vectors/update``: by id (values, sparseValues, setMetadata merge) or by filter (setMetadata)."""
        _refuse_document_schema_write(index)
        check_body_size(request.body)
        body = require_object(body)
        namespace = namespace_of(body)
        vector_id, raw_filter = body.get("id"), body.get("filter")
        values_raw, sparse_raw, patch_raw = body.get("values"), body.get("sparseValues"), body.get("setMetadata")
        if (vector_id is None) == (raw_filter is None):
            raise bad_request("Exactly one of 'id' or 'filter' must be provided")
        patch = None if patch_raw is None else check_metadata(patch_raw)
        ns = index.namespace(namespace)
        if raw_filter is not None:
            if values_raw is not None or sparse_raw is not None:
                raise bad_request("An update by filter may only set metadata")
            if patch is None:
                raise bad_request("An update by filter needs setMetadata")
            if is_empty_filter(raw_filter):
                raise bad_request("Update filter must not be empty")
            predicate = compile_filter(raw_filter)
            matched = [] if ns is None else [ns.ids[row] for row in ns.matching_rows(predicate)]
            if ns is not None:
                for vector_id in matched:
                    check_metadata_size(merged_metadata(ns.metadata[ns.rows[vector_id]], patch))
            if matched and not check_bool(body, "dryRun"):
                self.engine.set_metadata_many(index, namespace, matched, patch)
            return json_response({"matchedRecords": len(matched)})
        check_id(vector_id)
        if values_raw is None and sparse_raw is None and patch is None:
            raise bad_request("An update needs at least one of 'values', 'sparseValues' or 'setMetadata'")
        values = None
        if values_raw is not None and not (index.space.sparse and values_raw == []):
            if index.space.sparse:
                raise bad_request("Dense values are not supported on a sparse index")
            values = dense_matrix([values_raw], index.space)[0]
        sparse = None if sparse_raw is None else check_sparse(sparse_raw, index.space)
        if ns is None or vector_id not in ns.rows:
            return json_response({"matchedRecords": 0})
        metadata = None
        if patch is not None:
            metadata = merged_metadata(ns.metadata[ns.rows[vector_id]], patch)
            check_metadata_size(metadata)
        self.engine.update(index, namespace, vector_id, values, sparse, metadata)
        return json_response({"matchedRecords": 1})

    def describe_index_stats(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /describe_index_stats``: per-namespace counts, every existing namespace (an emptied one counts 0).
        A non-empty ``filter`` is refused, as Pinecone refuses it for serverless indexes."""
        body = require_object(body) if body is not None else {}
        raw_filter = body.get("filter")
        if not is_empty_filter(raw_filter):
            raise bad_request(STATS_FILTER_REFUSED)
        namespaces: dict[str, Any] = {}
        total = 0
        for name, ns in sorted(index.namespaces.items()):
            namespaces[_wire_namespace(name)] = {"vectorCount": len(ns)}
            total += len(ns)
        out: dict[str, Any] = {
            "namespaces": namespaces,
            "indexFullness": 0.0,
            "totalVectorCount": total,
            "metric": index.space.metric,
            "vectorType": "sparse" if index.space.sparse else "dense",
        }
        if not index.space.sparse:
            out["dimension"] = index.space.dimension
        return json_response(out)

    def list_ids(self, index: IndexState, request: Request, body: Any) -> Response:
        """``GET /vectors/list``: ids in byte order, by prefix, paginated; no ``pagination`` on the last page."""
        namespace = namespace_param(request.param("namespace"))
        prefix = request.param("prefix", "") or ""
        limit = _parse_limit(request.param("limit"), DEFAULT_LIST_LIMIT, MAX_LIST_LIMIT)
        after = _decode_token(request.param("paginationToken"))
        ns = index.namespace(namespace)
        page: list[str] = []
        more = False
        if ns is not None:
            ordered = ns.sorted_ids()
            start_key = max(prefix.encode(), after.encode() + b"\x00" if after is not None else b"")
            start = bisect.bisect_left(ordered, start_key, key=lambda s: s.encode("utf-8"))
            for vector_id in ordered[start:]:
                if not vector_id.startswith(prefix):
                    break
                if len(page) == limit:
                    more = True
                    break
                page.append(vector_id)
        out: dict[str, Any] = {"vectors": [{"id": i} for i in page], "namespace": namespace, "usage": _usage()}
        if more:
            out["pagination"] = {"next": _encode_token(page[-1])}
        return json_response(out)

    def list_namespaces(self, index: IndexState, request: Request, body: Any) -> Response:
        """``GET /namespaces``: every existing namespace (empty ones too), by name, paginated."""
        prefix = check_namespace_name(request.param("prefix", "") or "", "namespace prefix", allow_empty=True)
        limit = _parse_limit(request.param("limit"), DEFAULT_NAMESPACE_LIST_LIMIT, DEFAULT_NAMESPACE_LIST_LIMIT)
        after = _decode_token(request.param("paginationToken"))
        names = sorted(_wire_namespace(n) for n in index.namespaces)
        selected = [n for n in names if n.startswith(prefix) and (after is None or n > after)]
        page = selected[:limit]
        out: dict[str, Any] = {
            "namespaces": [_namespace_description(n, index.namespaces[_path_namespace(n)]) for n in page],
            "total_count": len(selected) if after is None else len([n for n in names if n.startswith(prefix)]),
        }
        if len(selected) > limit:
            out["pagination"] = {"next": _encode_token(page[-1])}
        return json_response(out)

    def create_namespace(self, index: IndexState, request: Request, body: Any) -> Response:
        """``POST /namespaces``: an empty namespace, optionally with a metadata schema; 409 if it exists."""
        body = require_object(body)
        if "name" not in body:
            raise bad_request("name is required")
        name = check_namespace_name(body["name"], "Namespace name")
        if name == DEFAULT_NAMESPACE_STATS_NAME:
            raise bad_request(
                f"'{DEFAULT_NAMESPACE_STATS_NAME}' is reserved: it names the default namespace, which always exists"
            )
        unknown = sorted(set(body) - {"name", "schema"})
        if unknown:
            raise bad_request(f"Unknown field(s) in request body: {', '.join(unknown)}")
        schema = _check_namespace_schema(body.get("schema"))
        if index.namespace(name) is not None:
            raise ApiError(409, f"Namespace '{name}' already exists")
        ns = self.engine.create_namespace(index, name, schema)
        return json_response(_namespace_description(name, ns))

    def describe_namespace(self, index: IndexState, request: Request, name: str) -> Response:
        """``GET /namespaces/{name}`` (``__default__`` names the default namespace, which always exists)."""
        namespace = resolve_namespace(check_namespace_name(name, "namespace"))
        if not index.namespace_exists(namespace):
            raise _namespace_missing(namespace)
        return json_response(_namespace_description(namespace, index.namespace(namespace)))

    def delete_namespace(self, index: IndexState, request: Request, name: str) -> Response:
        """``DELETE /namespaces/{name}``: removes the namespace and its records."""
        namespace = resolve_namespace(check_namespace_name(name, "namespace"))
        if not index.namespace_exists(namespace):
            raise _namespace_missing(namespace)
        if index.namespace(namespace) is not None:
            self.engine.delete_namespace(index, namespace)
        return Response(200, _EMPTY)
