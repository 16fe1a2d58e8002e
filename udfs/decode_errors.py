"""The kinds of bad input the decode/validate/route stage rejects.

Each class names one kind of bad input; its name travels to the dead-letter topic as the error class, so names
are part of the job's interface: rename none of them lightly. Messages name the field and the offending value
(shortened) but never repeat a whole record value.
"""

from __future__ import annotations

from kafka_pinecone_flink.udfs.errors import RecordError


class EmptyValueError(RecordError):
    """The Kafka value is zero bytes (not a tombstone, which is a null value)."""


class InvalidJsonError(RecordError):
    """The Kafka value is not UTF-8 JSON (NaN and Infinity included: they are not JSON), holds a string that is not
    valid Unicode (a lone surrogate escape such as ``"\\ud800"``), or a number out of range (a float beyond float64,
    an integer of more than 4,300 digits)."""


class DuplicateKeyError(InvalidJsonError):
    """A JSON object in the Kafka value holds the same name twice (parsers would silently keep the last)."""


class NotAnObjectError(RecordError):
    """The Kafka value (or a schema-wrapped payload) is JSON, but not a JSON object."""


class InvalidEnvelopeError(RecordError):
    """A Debezium envelope whose ``before``/``after`` row is not what its ``op`` requires."""


class UnsupportedOperationError(RecordError):
    """A Debezium operation or delete flag this job cannot map to one record (truncate, message, unknown), or an
    envelope (``before``/``after``) without ``op``."""


class MissingIdError(RecordError):
    """The id source (Kafka key or id field) is missing, null or empty."""


class InvalidIdError(RecordError):
    """The id source cannot become an id: invalid UTF-8 key, a float, an object or an array, a text that is not valid
    Unicode (a lone surrogate escape in a JSON key), a key object with the id field twice."""


class IdTooLongError(RecordError):
    """The formatted id is longer than Pinecone's 512 characters."""


class UnaddressableDeleteError(RecordError):
    """A delete under id strategy ``none``: random ids cannot address an earlier record."""


class MissingVectorError(RecordError):
    """An upsert with neither a dense vector nor (when text is configured) any text to embed."""


class InvalidVectorError(RecordError):
    """The dense vector is not a non-empty array of numbers (or a string holding one)."""


class NonFiniteVectorError(InvalidVectorError):
    """The dense vector (given as a string) holds NaN or Infinity."""


class DimensionMismatchError(InvalidVectorError):
    """The dense vector's length differs from the index dimension."""


class ZeroVectorError(InvalidVectorError):
    """An all-zero dense vector for a cosine index (cosine similarity is undefined for it)."""


class InvalidSparseVectorError(RecordError):
    """The sparse vector is malformed or beyond Pinecone's sparse limits."""


class InvalidMetadataKeyError(RecordError):
    """A metadata key Pinecone rejects (starts with ``$``, or is empty)."""


class MetadataKeyCollisionError(InvalidMetadataKeyError):
    """Two fields flatten to the same metadata key (e.g. ``"a.b"`` and ``{"a": {"b": ...}}``)."""


class MetadataTooDeepError(RecordError):
    """Metadata objects or lists nested deeper than the flattening policy allows (32 levels)."""


class MetadataTooLargeError(RecordError):
    """The JSON-encoded metadata is larger than the configured limit (Pinecone: 40 KB)."""


class MissingVersionError(RecordError):
    """A version field is configured but the record does not carry it."""


class InvalidVersionError(RecordError):
    """The version field holds something that is neither a number nor an ISO-8601 timestamp."""


class InvalidNamespaceError(RecordError):
    """The namespace the template renders for a topic is not a valid Pinecone namespace."""
