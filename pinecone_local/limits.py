"""Every limit and default of the local server, in one place.

The values mirror Pinecone's documented serverless limits (see ``shared/design/PINECONE.md``); the server enforces
them because the SDK checks few of them, and a client that passes here should pass against Pinecone.
"""

from __future__ import annotations

# --- data plane -------------------------------------------------------------------------------------------------------
MAX_UPSERT_RECORDS = 1_000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
"""Largest upsert/update body Pinecone accepts (2 MB)."""
MAX_READ_BODY_BYTES = 64 * 1024 * 1024
"""Hard cap on any request body the server will buffer; larger bodies are refused with 413 before parsing."""
MAX_IDS_PER_REQUEST = 1_000
"""ids per fetch or delete request."""
MAX_ID_LENGTH = 512
MIN_DIMENSION = 1
MAX_DIMENSION = 20_000
MAX_SPARSE_NONZEROS = 2_048
MAX_SPARSE_INDEX = 2**32 - 1
MAX_METADATA_BYTES = 40 * 1024
"""40 KB per record, measured as the compact JSON encoding of the metadata object."""
MIN_TOP_K = 1
MAX_TOP_K = 10_000
MAX_FILTER_IN_VALUES = 10_000
MAX_FILTER_DEPTH = 32
"""Deepest nesting of ``$and``/``$or`` a filter may have. Pinecone documents no figure; realistic filters nest a
few levels, and the bound keeps validation and evaluation (both recursive) far from Python's recursion limit."""
MAX_FILTER_CLAUSES = 10_000
"""Most conditions (field comparisons plus ``$and``/``$or`` nodes) one filter may hold (own bound, see above)."""
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 100
DEFAULT_NAMESPACE_LIST_LIMIT = 100
MAX_NAMESPACE_NAME_LENGTH = 512
"""Namespace names are 1-512 characters of ASCII code points 1-127 (no NUL); the SDK applies the same rule."""
MAX_FETCH_BY_METADATA_LIMIT = 10_000
DEFAULT_FETCH_BY_METADATA_LIMIT = 100
DEFAULT_NAMESPACE_STATS_NAME = "__default__"
"""How the empty-string namespace is named in describe_index_stats and the namespace API; a request that names it
addresses the default namespace."""

# --- control plane ----------------------------------------------------------------------------------------------------
MAX_INDEX_NAME_LENGTH = 45
GENERATED_INDEX_NAME_PREFIX = "index-"
"""A create without ``name`` gets ``index-<12 hex digits>`` (Pinecone generates a name; its format is undocumented)."""
MAX_SCHEMA_FIELD_NAME_BYTES = 64
DENSE_FIELD = "_values"
SPARSE_FIELD = "_sparse_values"
"""The reserved schema field names the vectors API addresses; a schema of only these is a vectors-API index."""
METRICS = ("cosine", "dotproduct", "euclidean")
DEFAULT_CLOUD = "aws"
DEFAULT_REGION = "us-east-1"

# --- server -----------------------------------------------------------------------------------------------------------
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 5080
DATA_PATH_PREFIX = "/indexes-data"
"""Each index's data plane is served under ``http://<host>:<port>/indexes-data/<name>``; the SDK keeps a host's path."""
API_KEY_HEADER = "api-key"
DEFAULT_COMPACT_BYTES = 256 * 1024 * 1024
"""Rewrite the snapshot and start a fresh log once the write-ahead log grows past this many bytes."""
SNAPSHOT_CHUNK_RECORDS = 4_096
"""Records per upsert frame when writing a snapshot."""
READY_POLL_INTERVAL_S = 0.05
DEFAULT_START_TIMEOUT_S = 30.0
