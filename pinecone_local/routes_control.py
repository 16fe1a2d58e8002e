"""Control plane: create, describe, list, configure and delete indexes.

Accepts both create bodies: the 2026-07 ``schema``/``deployment`` form (checked as Pinecone deserializes it: 422 for a
body that fits no variant, 400 for a valid declaration Pinecone refuses) and the older ``dimension``/``metric``/
``spec`` form. A schema of only the reserved fields ``_values``/``_sparse_values`` makes a vectors-API index; any named
field makes a document index, described with its own field names, whose vector writes are refused as Pinecone refuses
them. Every index is ready as soon as it is created, and a delete is complete when it returns. Describe carries the
fields both SDK generations read (``schema``/``deployment`` and the legacy ``dimension``/``metric``/``spec``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .engine import Engine
from .errors import ApiError, bad_request, echo, not_found, unprocessable
from .http import Request, Response, json_response
from .limits import (
    DEFAULT_CLOUD,
    DEFAULT_REGION,
    DENSE_FIELD,
    GENERATED_INDEX_NAME_PREFIX,
    MAX_DIMENSION,
    MAX_INDEX_NAME_LENGTH,
    MAX_SCHEMA_FIELD_NAME_BYTES,
    METRICS,
    MIN_DIMENSION,
    SPARSE_FIELD,
)
from .store import IndexState
from .validation import VectorSpace

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DELETION_PROTECTION = ("enabled", "disabled")
_CREATE_KEYS = (
    "name",
    "schema",
    "deployment",
    "read_capacity",
    "deletion_protection",
    "tags",
    "cmek_id",
    "source_collection",
    "source_backup_id",
)


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise unprocessable("Failed to deserialize the JSON body: missing or invalid field `name`")
    if not name or len(name) > MAX_INDEX_NAME_LENGTH or not _NAME.match(name):
        raise bad_request(
            f"Invalid index name {echo(name)}: it must be 1-{MAX_INDEX_NAME_LENGTH} characters of lower case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return name


def _check_metric(metric: Any) -> str:
    metric = "cosine" if metric is None else metric
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise bad_request(f"Invalid metric {echo(metric)}: must be one of {', '.join(METRICS)}")
    return metric.lower()


def _check_dimension(dimension: Any) -> int:
    if isinstance(dimension, bool) or not isinstance(dimension, int):
        raise unprocessable(
            f"Failed to deserialize the JSON body: `dimension` must be an integer, got {echo(dimension)}"
        )
    if not MIN_DIMENSION <= dimension <= MAX_DIMENSION:
        raise bad_request(f"Dimension must be between {MIN_DIMENSION} and {MAX_DIMENSION}, got {dimension}")
    return dimension


_SEARCH_STRING_KEYS = ("full_text_search", "embed", "sparse_embed")
_METADATA_TYPES = ("string_list", "float", "number", "boolean")
_FIELD_DESCRIPTION = "description"


@dataclass(frozen=True)
class CreateSchema:
    """A checked create schema: the vector space it serves, whether it is a document schema (named fields, served by
    the documents API) and the fields as describe returns them."""

    space: VectorSpace
    document: bool
    sparse_field: bool
    fields: dict[str, dict[str, Any]]


def _deserialize_error(what: str) -> ApiError:
    return unprocessable(f"Failed to deserialize the JSON body: {what}")


def _only_keys(where: str, field: dict[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(k for k in field if k not in allowed)
    if unknown:
        raise _deserialize_error(f"{where}: unknown field(s) {', '.join(unknown)}")


def _check_field_name(name: str, reserved_ok: bool) -> None:
    if not name or len(name.encode("utf-8", "surrogatepass")) > MAX_SCHEMA_FIELD_NAME_BYTES:
        raise bad_request(f"Invalid schema field name {echo(name)}: field names must be 1-64 bytes")
    if name.startswith("$"):
        raise bad_request(f"Invalid schema field name {echo(name)}: field names must not start with '$'")
    if name.startswith("_") and not (reserved_ok and name in (DENSE_FIELD, SPARSE_FIELD)):
        raise bad_request(f"Invalid schema field name {echo(name)}: names starting with '_' are reserved")


def _check_field(name: str, field: Any) -> tuple[str, dict[str, Any]]:
    """One field of a create schema: its kind (``dense``/``sparse``) and its describe form, or the error Pinecone
    gives: 422 when the field does not deserialize into any create variant, 400 when it is a valid metadata-only
    declaration (Pinecone only accepts fields used for search)."""
    where = f"schema.fields.{name}"
    if not isinstance(field, dict) or not isinstance(field.get("type"), str):
        raise _deserialize_error(f"{where} must be an object with a string `type`")
    kind = field["type"]
    description = field.get(_FIELD_DESCRIPTION)
    if description is not None and not isinstance(description, str):
        raise _deserialize_error(f"{where}.description must be a string")
    if kind == "dense_vector":
        _only_keys(where, field, ("type", "dimension", "metric", _FIELD_DESCRIPTION))
        if "dimension" not in field or "metric" not in field:
            raise _deserialize_error(
                f"{where}: missing field `{'dimension' if 'dimension' not in field else 'metric'}`"
            )
        shown = {
            "type": kind,
            "dimension": _check_dimension(field["dimension"]),
            "metric": _check_metric(field["metric"]),
        }
        if description is not None:
            shown[_FIELD_DESCRIPTION] = description
        return "dense", shown
    if kind == "sparse_vector":
        # 9.x builders sent ``metric: dotproduct`` here; Pinecone accepts and drops it (SDK 10 migration notes).
        _only_keys(where, field, ("type", "metric", _FIELD_DESCRIPTION))
        if field.get("metric") is not None and _check_metric(field["metric"]) != "dotproduct":
            raise bad_request("Sparse vector fields are scored by dot product; `metric` must be 'dotproduct'")
        return "sparse", {"type": kind} if description is None else {"type": kind, _FIELD_DESCRIPTION: description}
    if kind == "string":
        if any(k in field for k in _SEARCH_STRING_KEYS):
            raise bad_request(
                f"Schema field {echo(name)}: full-text search and integrated embedding (`full_text_search`, `embed`, "
                "`sparse_embed`) are not supported by pinecone_local"
            )
        if not isinstance(field.get("filterable"), bool):
            raise _deserialize_error(f"{where}: a string field needs `full_text_search` (or `filterable`)")
        raise _not_for_search(name)
    if kind in _METADATA_TYPES:
        if not isinstance(field.get("filterable"), bool):
            raise _deserialize_error(f"{where}: missing field `filterable`")
        raise _not_for_search(name)
    raise _deserialize_error(
        f"{where}: unknown variant `{echo(kind)}`, expected one of dense_vector, sparse_vector, string"
    )


def _not_for_search(name: str) -> ApiError:
    return bad_request(
        f"Invalid schema field {echo(name)}: the index schema only accepts fields used for search (dense_vector, "
        "sparse_vector, or string with full_text_search). Metadata fields are indexed automatically at upsert; "
        "leave them out of the schema."
    )


def _check_schema(schema: Any) -> CreateSchema:
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), dict) or not schema["fields"]:
        raise _deserialize_error("`schema.fields` must be a non-empty object")
    _only_keys("schema", schema, ("fields",))
    names = list(schema["fields"])
    reserved_only = all(n in (DENSE_FIELD, SPARSE_FIELD) for n in names)
    dense: list[tuple[str, dict[str, Any]]] = []
    sparse: list[tuple[str, dict[str, Any]]] = []
    fields: dict[str, dict[str, Any]] = {}
    for name in names:
        _check_field_name(name, reserved_only)
        kind, shown = _check_field(name, schema["fields"][name])
        (dense if kind == "dense" else sparse).append((name, shown))
        fields[name] = shown
    if len(dense) > 1 or len(sparse) > 1:
        raise bad_request("An index schema may declare at most one dense_vector field and one sparse_vector field")
    misplaced = (dense and dense[0][0] != DENSE_FIELD) or (sparse and sparse[0][0] != SPARSE_FIELD)
    if reserved_only and misplaced:
        raise bad_request(f"`{DENSE_FIELD}` must be a dense_vector field and `{SPARSE_FIELD}` a sparse_vector field")
    if dense:
        space = VectorSpace(dense[0][1]["dimension"], dense[0][1]["metric"], False)
    else:
        space = VectorSpace(0, "dotproduct", True)
    return CreateSchema(
        space=space, document=not reserved_only, sparse_field=bool(sparse) and bool(dense), fields=fields
    )


_DEPLOYMENT_KEYS = {
    "managed": (("cloud", "region"), ()),
    "byoc": (("environment",), ()),
}


def _check_deployment(deployment: Any) -> dict[str, Any]:
    """The 2026-07 ``deployment``: a union tagged by ``deployment_type`` (422 when it does not deserialize); pod
    deployments are refused as the 2026-07 API refuses them."""
    if deployment is None:
        return {"deployment_type": "managed", "cloud": DEFAULT_CLOUD, "region": DEFAULT_REGION}
    if not isinstance(deployment, dict) or not isinstance(deployment.get("deployment_type"), str):
        raise _deserialize_error("`deployment` must be an object with a `deployment_type` of managed, pod or byoc")
    kind = deployment["deployment_type"]
    if kind == "pod":
        raise bad_request("deployment_type 'pod' is not supported on this API version")
    if kind not in _DEPLOYMENT_KEYS:
        raise _deserialize_error(f"deployment: unknown variant `{echo(kind)}`, expected one of managed, pod, byoc")
    required, optional = _DEPLOYMENT_KEYS[kind]
    _only_keys("deployment", deployment, ("deployment_type", *required, *optional))
    for key in required:
        if not isinstance(deployment.get(key), str) or not deployment[key]:
            raise _deserialize_error(f"deployment: missing field `{key}`")
    return dict(deployment)


def _space_from_legacy(body: dict[str, Any]) -> VectorSpace:
    vector_type = body.get("vector_type") or "dense"
    if vector_type == "sparse":
        if body.get("dimension") is not None:
            raise bad_request("Sparse indexes must not specify a dimension")
        metric = _check_metric(body.get("metric") or "dotproduct")
        if metric != "dotproduct":
            raise bad_request("Sparse indexes must use the dotproduct metric")
        return VectorSpace(0, metric, True)
    if vector_type != "dense":
        raise bad_request(f"Invalid vector_type {echo(vector_type)}: must be 'dense' or 'sparse'")
    if body.get("dimension") is None:
        raise unprocessable("Failed to deserialize the JSON body: missing field `dimension`")
    return VectorSpace(_check_dimension(body["dimension"]), _check_metric(body.get("metric")), False)


def _legacy_deployment(body: dict[str, Any]) -> dict[str, Any]:
    if "deployment" in body:
        return _check_deployment(body["deployment"])
    spec = body.get("spec")
    if isinstance(spec, dict) and isinstance(spec.get("serverless"), dict):
        serverless = spec["serverless"]
        return {
            "deployment_type": "managed",
            "cloud": serverless.get("cloud", DEFAULT_CLOUD),
            "region": serverless.get("region", DEFAULT_REGION),
        }
    if isinstance(spec, dict) and isinstance(spec.get("pod"), dict):
        pod = spec["pod"]
        return {
            "deployment_type": "pod",
            "environment": pod.get("environment", "local"),
            "pod_type": pod.get("pod_type", "p1.x1"),
            "replicas": pod.get("replicas", 1),
            "shards": pod.get("shards", 1),
        }
    return {"deployment_type": "managed", "cloud": DEFAULT_CLOUD, "region": DEFAULT_REGION}


def _schema_for(index: IndexState) -> dict[str, Any]:
    """A document index is described with the fields it was created with; a vectors-API index with the reserved
    fields, ``_sparse_values`` included once the index holds (or was created for) sparse values."""
    named = index.description.get("schema_fields")
    if named is not None:
        return {"fields": named}
    space = index.space
    if space.sparse:
        return {"fields": {SPARSE_FIELD: {"type": "sparse_vector"}}}
    fields: dict[str, Any] = {
        DENSE_FIELD: {"type": "dense_vector", "dimension": space.dimension, "metric": space.metric}
    }
    if index.description.get("sparse_field"):
        fields[SPARSE_FIELD] = {"type": "sparse_vector"}
    return {"fields": fields}


def _legacy_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    if deployment.get("deployment_type") == "pod":
        keys = ("environment", "pod_type", "replicas", "shards")
        return {"pod": {k: deployment[k] for k in keys if k in deployment}}
    return {
        "serverless": {
            "cloud": deployment.get("cloud", DEFAULT_CLOUD),
            "region": deployment.get("region", DEFAULT_REGION),
        }
    }


def _check_tags(tags: Any) -> dict[str, str] | None:
    if tags is None:
        return None
    if not isinstance(tags, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in tags.items()):
        raise bad_request("tags must be an object of string values")
    return dict(tags)


def _check_protection(value: Any) -> str:
    value = "disabled" if value is None else value
    if value not in _DELETION_PROTECTION:
        raise bad_request(f"Invalid deletion_protection {echo(value)}: must be 'enabled' or 'disabled'")
    return str(value)


class ControlRoutes:
    """Handlers for ``/indexes``; ``data_host(name)`` gives the data-plane host URL for an index."""

    def __init__(self, engine: Engine, data_host: Callable[[str], str]) -> None:
        self.engine = engine
        self.data_host = data_host

    def describe_body(self, index: IndexState) -> dict[str, Any]:
        """The describe document of one index."""
        description = index.description
        body: dict[str, Any] = {
            "name": index.name,
            "host": self.data_host(index.name),
            "status": {"ready": True, "state": "Ready"},
            "schema": _schema_for(index),
            "deployment": description["deployment"],
            "deletion_protection": description["deletion_protection"],
            "tags": description.get("tags"),
            "metric": index.space.metric,
            "vector_type": "sparse" if index.space.sparse else "dense",
            "spec": _legacy_spec(description["deployment"]),
        }
        if not index.space.sparse:
            body["dimension"] = index.space.dimension
        return body

    def _get(self, name: str) -> IndexState:
        index = self.engine.store.get(name)
        if index is None:
            raise not_found(f"Resource {name} not found")
        return index

    def create(self, request: Request) -> Response:
        """``POST /indexes``: 201 with the describe document; 409 if the name is taken.

        A body with ``schema`` is the 2026-07 form (``name`` optional: one is generated; unknown keys are a 422); one
        without is the pre-2026-07 ``dimension``/``metric``/``spec`` form.
        """
        body = request.json()
        if not isinstance(body, dict):
            raise unprocessable("Failed to deserialize the JSON body: expected an object")
        description: dict[str, Any] = {}
        if "schema" in body:
            _only_keys("request body", body, _CREATE_KEYS)
            if body.get("source_collection") is not None or body.get("source_backup_id") is not None:
                raise bad_request("Creating an index from collection or backup is not yet supported")
            name = self._free_name() if body.get("name") is None else _check_name(body["name"])
            schema = _check_schema(body["schema"])
            space = schema.space
            deployment = _check_deployment(body.get("deployment"))
            if schema.document:
                description["schema_fields"] = schema.fields
            if schema.sparse_field:
                description["sparse_field"] = True
        else:
            name = _check_name(body.get("name"))
            space = _space_from_legacy(body)
            deployment = _legacy_deployment(body)
        description.update(
            deployment=deployment,
            deletion_protection=_check_protection(body.get("deletion_protection")),
            tags=_check_tags(body.get("tags")),
        )
        if self.engine.store.get(name) is not None:
            raise ApiError(409, f"Resource {name} already exists")
        index = self.engine.create_index(name, space, description)
        return json_response(self.describe_body(index), status=201)

    def _free_name(self) -> str:
        """A generated index name (Pinecone names an index created without one; the format here is our own)."""
        while True:
            name = f"{GENERATED_INDEX_NAME_PREFIX}{uuid.uuid4().hex[:12]}"
            if self.engine.store.get(name) is None:
                return name

    def describe(self, request: Request, name: str) -> Response:
        """``GET /indexes/{name}``."""
        return json_response(self.describe_body(self._get(name)))

    def list(self, request: Request) -> Response:
        """``GET /indexes``."""
        indexes = sorted(self.engine.store.indexes.values(), key=lambda i: i.name)
        return json_response({"indexes": [self.describe_body(i) for i in indexes]})

    def configure(self, request: Request, name: str) -> Response:
        """``PATCH /indexes/{name}``: deletion protection and tags (a tag set to "" is removed)."""
        index = self._get(name)
        body = request.json()
        if not isinstance(body, dict):
            raise unprocessable("Failed to deserialize the JSON body: expected an object")
        description = dict(index.description)
        if "deletion_protection" in body:
            description["deletion_protection"] = _check_protection(body["deletion_protection"])
        if "tags" in body:
            tags = dict(description.get("tags") or {})
            tags.update(_check_tags(body["tags"]) or {})
            description["tags"] = {k: v for k, v in tags.items() if v} or None
        self.engine.configure_index(name, description)
        return json_response(self.describe_body(index), status=200)

    def delete(self, request: Request, name: str) -> Response:
        """``DELETE /indexes/{name}``: synchronous; 403 while deletion protection is enabled."""
        index = self._get(name)
        if index.description.get("deletion_protection") == "enabled":
            raise ApiError(
                403,
                f"Deletion protection is enabled for index '{name}'. Disable deletion protection before retrying.",
            )
        self.engine.delete_index(name)
        return Response(202, b"")
