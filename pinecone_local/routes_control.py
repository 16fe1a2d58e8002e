"""Control plane: create, describe, list, configure and delete indexes.

Accepts both create bodies: the 10.x ``schema``/``deployment`` form and the older ``dimension``/``metric``/``spec``
form. Every index is ready as soon as it is created, and a delete is complete when it returns. Describe carries the
fields both SDK generations read (``schema``/``deployment`` and the legacy ``dimension``/``metric``/``spec``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from .engine import Engine
from .errors import ApiError, bad_request, not_found, unprocessable
from .http import Request, Response, json_response
from .limits import DEFAULT_CLOUD, DEFAULT_REGION, MAX_DIMENSION, MAX_INDEX_NAME_LENGTH, METRICS, MIN_DIMENSION
from .store import IndexState
from .validation import VectorSpace

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DELETION_PROTECTION = ("enabled", "disabled")


def _check_name(name: Any) -> str:
    if not isinstance(name, str):
        raise unprocessable("Failed to deserialize the JSON body: missing or invalid field `name`")
    if not name or len(name) > MAX_INDEX_NAME_LENGTH or not _NAME.match(name):
        raise bad_request(
            f"Invalid index name {name!r}: it must be 1-{MAX_INDEX_NAME_LENGTH} characters of lower case letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return name


def _check_metric(metric: Any) -> str:
    metric = "cosine" if metric is None else metric
    if not isinstance(metric, str) or metric.lower() not in METRICS:
        raise bad_request(f"Invalid metric {metric!r}: must be one of {', '.join(METRICS)}")
    return metric.lower()


def _check_dimension(dimension: Any) -> int:
    if isinstance(dimension, bool) or not isinstance(dimension, int):
        raise unprocessable(f"Failed to deserialize the JSON body: `dimension` must be an integer, got {dimension!r}")
    if not MIN_DIMENSION <= dimension <= MAX_DIMENSION:
        raise bad_request(f"Dimension must be between {MIN_DIMENSION} and {MAX_DIMENSION}, got {dimension}")
    return dimension


def _space_from_schema(schema: Any) -> VectorSpace:
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), dict) or not schema["fields"]:
        raise unprocessable("Failed to deserialize the JSON body: `schema.fields` must be a non-empty object")
    dense = [f for f in schema["fields"].values() if isinstance(f, dict) and f.get("type") == "dense_vector"]
    sparse = [f for f in schema["fields"].values() if isinstance(f, dict) and f.get("type") == "sparse_vector"]
    others = [
        f
        for f in schema["fields"].values()
        if not isinstance(f, dict) or f.get("type") not in ("dense_vector", "sparse_vector")
    ]
    if others or len(dense) > 1 or len(sparse) > 1:
        raise unprocessable(
            "pinecone_local supports schemas with one dense_vector field or one sparse_vector field only"
        )
    if dense:
        return VectorSpace(_check_dimension(dense[0].get("dimension")), _check_metric(dense[0].get("metric")), False)
    metric = _check_metric(sparse[0].get("metric", "dotproduct"))
    if metric != "dotproduct":
        raise bad_request("Sparse indexes must use the dotproduct metric")
    return VectorSpace(0, metric, True)


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
        raise bad_request(f"Invalid vector_type {vector_type!r}: must be 'dense' or 'sparse'")
    if body.get("dimension") is None:
        raise unprocessable("Failed to deserialize the JSON body: missing field `dimension`")
    return VectorSpace(_check_dimension(body["dimension"]), _check_metric(body.get("metric")), False)


def _deployment(body: dict[str, Any]) -> dict[str, Any]:
    deployment = body.get("deployment")
    if isinstance(deployment, dict) and deployment.get("deployment_type"):
        return dict(deployment)
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


def _schema_for(space: VectorSpace) -> dict[str, Any]:
    if space.sparse:
        return {"fields": {"_sparse_values": {"type": "sparse_vector"}}}
    return {"fields": {"_values": {"type": "dense_vector", "dimension": space.dimension, "metric": space.metric}}}


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
        raise bad_request(f"Invalid deletion_protection {value!r}: must be 'enabled' or 'disabled'")
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
            "schema": _schema_for(index.space),
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
        """``POST /indexes``: 201 with the describe document; 409 if the name is taken."""
        body = request.json()
        if not isinstance(body, dict):
            raise unprocessable("Failed to deserialize the JSON body: expected an object")
        name = _check_name(body.get("name"))
        space = _space_from_schema(body["schema"]) if "schema" in body else _space_from_legacy(body)
        description = {
            "deployment": _deployment(body),
            "deletion_protection": _check_protection(body.get("deletion_protection")),
            "tags": _check_tags(body.get("tags")),
        }
        if self.engine.store.get(name) is not None:
            raise ApiError(409, f"Resource {name} already exists")
        index = self.engine.create_index(name, space, description)
        return json_response(self.describe_body(index), status=201)

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
