"""Configuration of the decode/validate/route stage, validated once before the job graph is built.

``RouteConfig`` is frozen and checks every option in ``__post_init__``; a bad option raises ``RouteConfigError``
naming the option, the bad value and what is allowed. Derived, pre-parsed forms (field paths, the text template,
a per-topic namespace cache) are computed there too, so that decoding a record does no parsing of configuration.

Field paths: ``id_field``, ``version_field``, ``text_fields``, the ``${...}`` names of ``text_template`` and
``metadata_fields`` name a field of the decoded row. A name is first looked up as a literal top-level key (so a key
that itself contains a dot works); if there is no such key and the name contains dots, it is walked as a path
through nested objects (``after.id``, ``source.lsn``, ``author.name``). ``vector_field`` and ``sparse_field`` are
always literal top-level keys.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka_pinecone_flink.udfs.decode_errors import InvalidNamespaceError

# Limits of Pinecone (see shared/design/PINECONE.md).
MAX_DIMENSION = 20_000
MAX_NAMESPACE_CHARS = 512
MAX_METADATA_BYTES = 40_960
"""Pinecone's metadata limit per record (40 KB), measured here as the size of the JSON-encoded metadata."""
MAX_TOPIC_CHARS = 249
"""Kafka's limit on topic names; bounds what ``${topic}`` can add to a namespace."""

METRICS = ("cosine", "dotproduct", "euclidean")
ID_STRATEGIES = ("none", "field", "kafka")
ID_FORMATS = ("uuid", "raw")

TOPIC_PLACEHOLDER = "${topic}"
MAX_CHUNK_TOKENS = 8192
"""Bound of ``chunk_tokens``; the job also requires at most the model's window less its two special pieces."""

# Defaults, documented on the fields of RouteConfig.
DEFAULT_NAMESPACE_TEMPLATE = TOPIC_PLACEHOLDER
DEFAULT_ID_STRATEGY = "kafka"
DEFAULT_ID_FORMAT = "uuid"
DEFAULT_VECTOR_FIELD = "values"
DEFAULT_DELETE_ENABLED = True
DEFAULT_MAX_METADATA_BYTES = MAX_METADATA_BYTES


class RouteConfigError(ValueError):
    """An invalid option of ``RouteConfig``; the message names the option, the value and what is allowed, which are
    also its attributes ``option``, ``value`` and ``allowed``."""

    def __init__(self, option: str, value: object, allowed: str) -> None:
        super().__init__(f"RouteConfig.{option}: {_short(value)} is not allowed; allowed: {allowed}")
        self.option = option
        self.value = value
        self.allowed = allowed

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.option, self.value, self.allowed))


class Missing(enum.Enum):
    """Marks an absent field, as distinct from a field holding JSON null."""

    MISSING = enum.auto()


MISSING = Missing.MISSING


@dataclass(frozen=True, slots=True)
class FieldPath:
    """A field name, looked up as a literal key first, then (if dotted) as a path through nested objects."""

    text: str
    parts: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> FieldPath:
        return cls(text, tuple(text.split(".")))

    def lookup(self, obj: Mapping[str, Any]) -> Any:
        """The value at this path in ``obj``, or ``MISSING``. Never raises for any JSON-decoded ``obj``."""
        value = obj.get(self.text, MISSING)
        if value is not MISSING or len(self.parts) == 1:
            return value
        current: Any = obj
        for part in self.parts:
            if type(current) is not dict:
                return MISSING
            current = current.get(part, MISSING)
            if current is MISSING:
                return MISSING
        return current


TemplatePart = tuple[str, FieldPath | None]
"""A literal, followed by the field to substitute after it (None for the final literal)."""


def parse_text_template(template: str) -> tuple[TemplatePart, ...]:
    """Split ``"${title}. ${body}"`` into literal/field parts; raises ``RouteConfigError`` if malformed."""
    parsed = _parse_text_template(template)
    if isinstance(parsed, str):
        raise _config_error("text_template", template, parsed)
    return parsed


def text_template_problem(template: str) -> str | None:
    """What a text template must be, when ``template`` is not one; None when it is fine."""
    parsed = _parse_text_template(template)
    return parsed if isinstance(parsed, str) else None


def _parse_text_template(template: str) -> tuple[TemplatePart, ...] | str:
    """The parts of ``template``, or what a template must be when it is malformed."""
    parts: list[TemplatePart] = []
    position = 0
    while True:
        start = template.find("${", position)
        if start < 0:
            parts.append((template[position:], None))
            break
        end = template.find("}", start + 2)
        if end < 0:
            return "a template whose every '${' is closed by '}'"
        name = template[start + 2 : end]
        if not name:
            return "placeholders that name a field, e.g. '${title}'"
        parts.append((template[position:start], FieldPath.parse(name)))
        position = end + 1
    if len(parts) == 1:
        return "a template with at least one '${field}' placeholder"
    return tuple(parts)


def namespace_template_problem(template: str) -> str | None:
    """What a namespace template must be, when ``template`` is not one; None when it is fine."""
    if "${" in template.replace(TOPIC_PLACEHOLDER, ""):
        return f"no placeholder other than {TOPIC_PLACEHOLDER}"
    # The longest topic name must still give a valid namespace.
    problem = namespace_problem(template.replace(TOPIC_PLACEHOLDER, "t" * MAX_TOPIC_CHARS))
    return None if problem is None else f"a valid Pinecone namespace for any topic ({problem})"


def namespace_problem(namespace: str) -> str | None:
    """Why ``namespace`` is not a valid Pinecone namespace, or None. "" (the default namespace) is valid."""
    if len(namespace) > MAX_NAMESPACE_CHARS:
        return f"it is {len(namespace)} characters long, more than {MAX_NAMESPACE_CHARS}"
    if not namespace.isprintable():
        return "it contains non-printable characters"
    return None


@dataclass(frozen=True, slots=True)
class RouteConfig:
    """How records are decoded, validated and routed to a namespace and id. Validated on construction.

    Only ``dimension`` and ``metric`` have no default: the job reads them from the index at start.
    """

    dimension: int
    """The index dimension: every dense vector must have exactly this many values (1..20,000)."""
    metric: str
    """The index metric, one of ``METRICS``; under ``cosine`` an all-zero dense vector is rejected."""
    namespace_template: str = DEFAULT_NAMESPACE_TEMPLATE
    """Namespace of a topic's records; ``${topic}`` (the only placeholder) is replaced by the topic name.
    Default ``"${topic}"``: one namespace per topic. ``""`` writes to the default namespace."""
    namespace_map: Mapping[str, str] = field(default_factory=dict)
    """Explicit topic -> namespace; a topic listed here ignores ``namespace_template``. Default: empty."""
    id_strategy: str = DEFAULT_ID_STRATEGY
    """Where ids come from: ``kafka`` (the record key, default), ``field`` (``id_field`` of the row) or ``none``
    (a random UUID per record: insert-only, deletes cannot be addressed, a replay after a crash duplicates)."""
    id_field: str | None = None
    """The row field holding the id; required for (and only allowed with) ``id_strategy="field"``."""
    id_format: str = DEFAULT_ID_FORMAT
    """``uuid`` (default): a UUIDv5 derived from the id source; ``raw``: the id source text itself (1..512 chars)."""
    vector_field: str = DEFAULT_VECTOR_FIELD
    """Top-level field holding the dense vector; default ``"values"``, the name Pinecone's record format uses."""
    sparse_field: str | None = None
    """Top-level field holding ``{"indices": [...], "values": [...]}``; default None (no sparse vectors)."""
    text_fields: tuple[str, ...] = ()
    """Fields whose texts, joined by a newline, are embedded when a record has no vector. Default: none."""
    text_template: str | None = None
    """Alternative to ``text_fields``: a template such as ``"${title}. ${description}"``. Default None."""
    delete_enabled: bool = DEFAULT_DELETE_ENABLED
    """Whether tombstones and Debezium deletes delete (default True) or are skipped and counted."""
    version_field: str | None = None
    """Field holding the source version used to fence out stale records (``ts_ms``, ``source.lsn``,
    ``updated_at``, ``__source_ts_ms``): a number or an ISO-8601 timestamp. Default None: arrival order."""
    metadata_fields: tuple[str, ...] | None = None
    """Fields that become metadata; default None: every field except the vectors and ``__`` control fields."""
    max_metadata_bytes: int = DEFAULT_MAX_METADATA_BYTES
    """Largest JSON-encoded metadata accepted per record; default and maximum 40,960 (Pinecone's limit)."""
    chunk_tokens: int = 0
    """Chunking (``udfs.chunking``): each text to embed is split into chunks of at most this many word pieces of
    ``chunk_model``'s tokenizer, written as ``<id>#<n>``. Default 0: off (one vector per record, as before)."""
    chunk_overlap: int = 0
    """Word pieces each chunk repeats from the one before (less than ``chunk_tokens``). Default 0."""
    chunk_text_field: str | None = None
    """Metadata field that holds each chunk's text; default None (not stored)."""
    chunk_model: str = "default"
    """The embedding model whose tokenizer counts the word pieces (the embed stage's model)."""

    id_path: FieldPath | None = field(init=False, repr=False, compare=False)
    version_path: FieldPath | None = field(init=False, repr=False, compare=False)
    text_paths: tuple[FieldPath, ...] = field(init=False, repr=False, compare=False)
    text_parts: tuple[TemplatePart, ...] = field(init=False, repr=False, compare=False)
    metadata_paths: tuple[FieldPath, ...] | None = field(init=False, repr=False, compare=False)
    has_text: bool = field(init=False, repr=False, compare=False)
    _namespaces: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _check_int("dimension", self.dimension, 1, MAX_DIMENSION)
        _check_choice("metric", self.metric, METRICS)
        self._check_namespaces()
        _check_choice("id_strategy", self.id_strategy, ID_STRATEGIES)
        _check_choice("id_format", self.id_format, ID_FORMATS)
        if self.id_strategy == "field":
            _check_name("id_field", self.id_field)
        elif self.id_field is not None:
            raise _config_error("id_field", self.id_field, "None unless id_strategy is 'field'")
        _check_name("vector_field", self.vector_field)
        if self.sparse_field is not None:
            _check_name("sparse_field", self.sparse_field)
            if self.sparse_field == self.vector_field:
                raise _config_error("sparse_field", self.sparse_field, "a field other than vector_field")
        text_fields = _names_tuple("text_fields", self.text_fields)
        if self.text_template is not None:
            if not isinstance(self.text_template, str):
                raise _config_error("text_template", self.text_template, "a string or None")
            if text_fields:
                raise _config_error("text_template", self.text_template, "None when text_fields is set (use one)")
        if not isinstance(self.delete_enabled, bool):
            raise _config_error("delete_enabled", self.delete_enabled, "True or False")
        if self.version_field is not None:
            _check_name("version_field", self.version_field)
        metadata_fields = None
        if self.metadata_fields is not None:
            metadata_fields = _names_tuple("metadata_fields", self.metadata_fields)
            for vector_name in (self.vector_field, self.sparse_field):
                if vector_name in metadata_fields:
                    raise _config_error("metadata_fields", self.metadata_fields, "fields other than the vector fields")
        _check_int("max_metadata_bytes", self.max_metadata_bytes, 1, MAX_METADATA_BYTES)
        _check_int("chunk_tokens", self.chunk_tokens, 0, MAX_CHUNK_TOKENS)
        if self.chunk_tokens:
            _check_int("chunk_overlap", self.chunk_overlap, 0, self.chunk_tokens - 1)
        elif self.chunk_overlap or self.chunk_text_field is not None:
            raise _config_error(
                "chunk_overlap", self.chunk_overlap, "0 and no chunk_text_field unless chunk_tokens > 0"
            )
        if self.chunk_text_field is not None:
            _check_name("chunk_text_field", self.chunk_text_field)

        setattr_ = object.__setattr__  # frozen dataclass: derived fields are set once, here
        setattr_(self, "text_fields", text_fields)
        setattr_(self, "metadata_fields", metadata_fields)
        setattr_(self, "namespace_map", dict(self.namespace_map))
        setattr_(self, "id_path", FieldPath.parse(self.id_field) if self.id_field is not None else None)
        setattr_(self, "version_path", FieldPath.parse(self.version_field) if self.version_field is not None else None)
        setattr_(self, "text_paths", tuple(FieldPath.parse(name) for name in text_fields))
        setattr_(self, "text_parts", parse_text_template(self.text_template) if self.text_template is not None else ())
        setattr_(
            self, "metadata_paths", None if metadata_fields is None else tuple(map(FieldPath.parse, metadata_fields))
        )
        setattr_(self, "has_text", bool(text_fields) or self.text_template is not None)
        setattr_(self, "_namespaces", {})

    def namespace_for(self, topic: str) -> str:
        """The namespace of ``topic``'s records; ``InvalidNamespaceError`` if the template renders an invalid one.

        Results are cached per topic (there are few topics), so this is a dict lookup on the hot path.
        """
        namespace = self._namespaces.get(topic)
        if namespace is not None:
            return namespace
        mapped = self.namespace_map.get(topic)
        namespace = mapped if mapped is not None else self.namespace_template.replace(TOPIC_PLACEHOLDER, topic)
        problem = namespace_problem(namespace)
        if problem is not None:
            raise InvalidNamespaceError(f"namespace {_short(namespace)} rendered for topic {_short(topic)}: {problem}")
        self._namespaces[topic] = namespace
        return namespace

    def _check_namespaces(self) -> None:
        template = self.namespace_template
        if not isinstance(template, str):
            raise _config_error("namespace_template", template, "a string")
        problem = namespace_template_problem(template)
        if problem is not None:
            raise _config_error("namespace_template", template, problem)
        if not isinstance(self.namespace_map, Mapping):
            raise _config_error("namespace_map", self.namespace_map, "a mapping of topic to namespace")
        for topic, namespace in self.namespace_map.items():
            if not isinstance(topic, str) or not topic:
                raise _config_error("namespace_map", topic, "non-empty topic names as keys")
            if not isinstance(namespace, str):
                raise _config_error(f"namespace_map[{topic!r}]", namespace, "a string")
            problem = namespace_problem(namespace)
            if problem is not None:
                raise _config_error(f"namespace_map[{topic!r}]", namespace, f"a valid Pinecone namespace ({problem})")


def _config_error(option: str, value: object, allowed: str) -> RouteConfigError:
    return RouteConfigError(option, value, allowed)


def _short(value: object, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_int(option: str, value: object, low: int, high: int) -> None:
    if type(value) is not int or not low <= value <= high:
        raise _config_error(option, value, f"an integer from {low} to {high}")


def _check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise _config_error(option, value, ", ".join(repr(choice) for choice in choices))


def _check_name(option: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise _config_error(option, value, "a non-empty field name")


def _names_tuple(option: str, value: object) -> tuple[str, ...]:
    # A bare string is a sequence too, and would silently become one field per character.
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise _config_error(option, value, "a list or tuple of field names")
    for name in value:
        if not isinstance(name, str) or not name:
            raise _config_error(option, value, "non-empty field names")
    return tuple(value)
