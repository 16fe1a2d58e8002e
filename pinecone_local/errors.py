"""Errors the server answers with, rendered in Pinecone's two wire shapes.

Control plane: ``{"error": {"code": "NOT_FOUND", "message": "..."}, "status": 404}``.
Data plane: ``{"code": <grpc status int>, "message": "...", "details": []}``.
Raising one of these anywhere inside a handler aborts the request before anything was changed (handlers validate
fully before they mutate), and the app turns it into the response.
"""

from __future__ import annotations

import reprlib
from typing import Any

# gRPC status codes used by Pinecone's data plane bodies.
GRPC_INVALID_ARGUMENT = 3
GRPC_NOT_FOUND = 5
GRPC_ALREADY_EXISTS = 6
GRPC_PERMISSION_DENIED = 7
GRPC_RESOURCE_EXHAUSTED = 8
GRPC_FAILED_PRECONDITION = 9
GRPC_UNIMPLEMENTED = 12
GRPC_INTERNAL = 13
GRPC_UNAVAILABLE = 14
GRPC_UNAUTHENTICATED = 16

_GRPC_BY_STATUS = {
    400: GRPC_INVALID_ARGUMENT,
    401: GRPC_UNAUTHENTICATED,
    403: GRPC_PERMISSION_DENIED,
    404: GRPC_NOT_FOUND,
    409: GRPC_ALREADY_EXISTS,
    412: GRPC_FAILED_PRECONDITION,
    413: GRPC_INVALID_ARGUMENT,
    422: GRPC_INVALID_ARGUMENT,
    429: GRPC_RESOURCE_EXHAUSTED,
    500: GRPC_INTERNAL,
    501: GRPC_UNIMPLEMENTED,
    503: GRPC_UNAVAILABLE,
}

_CONTROL_CODE_BY_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    409: "ALREADY_EXISTS",
    412: "FAILED_PRECONDITION",
    413: "INVALID_ARGUMENT",
    422: "UNPROCESSABLE_ENTITY",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    503: "UNAVAILABLE",
}


_ECHO = reprlib.Repr()
_ECHO.maxlevel = 2
_ECHO.maxstring = 64
_ECHO.maxother = 64
_ECHO.maxlist = _ECHO.maxdict = 4


def echo(value: Any) -> str:
    """A short ``repr`` of request input for an error message: bounded in depth and length, so echoing a deeply
    nested or huge value can neither recurse nor bloat the response."""
    return _ECHO.repr(value)


def grpc_code_for(status: int) -> int:
    """The gRPC code Pinecone pairs with an HTTP status (UNKNOWN=2 when there is no usual pairing)."""
    return _GRPC_BY_STATUS.get(status, GRPC_INTERNAL if status >= 500 else 2)


def control_code_for(status: int) -> str:
    """The control-plane error code string for an HTTP status."""
    return _CONTROL_CODE_BY_STATUS.get(status, "INTERNAL" if status >= 500 else "UNKNOWN")


class ApiError(Exception):
    """A request failed with an HTTP status and a message; ``headers`` are added to the response."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}

    def data_plane_body(self) -> dict[str, Any]:
        """Body in the data-plane shape."""
        return {"code": grpc_code_for(self.status), "message": self.message, "details": []}

    def control_plane_body(self) -> dict[str, Any]:
        """Body in the control-plane shape."""
        return {"error": {"code": control_code_for(self.status), "message": self.message}, "status": self.status}


def bad_request(message: str) -> ApiError:
    """400 INVALID_ARGUMENT."""
    return ApiError(400, message)


def not_found(message: str) -> ApiError:
    """404 NOT_FOUND."""
    return ApiError(404, message)


def unprocessable(message: str) -> ApiError:
    """422 UNPROCESSABLE_ENTITY (control plane: a body that does not fit the schema)."""
    return ApiError(422, message)


def unsupported(what: str) -> ApiError:
    """400 for a Pinecone call this server does not serve, in the shape Pinecone gives what it does not support
    (e.g. 400 "deployment_type 'pod' is not supported on this API version")."""
    return ApiError(400, f"{what[0].upper()}{what[1:]} is not supported by pinecone_local")
