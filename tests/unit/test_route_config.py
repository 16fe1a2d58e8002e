"""RouteConfig validation: every bad option is named, with its value and what is allowed."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

from kafka_pinecone_flink.udfs.decode_errors import InvalidNamespaceError
from kafka_pinecone_flink.udfs.route_config import (
    DEFAULT_ID_FORMAT,
    DEFAULT_ID_STRATEGY,
    DEFAULT_MAX_METADATA_BYTES,
    DEFAULT_NAMESPACE_TEMPLATE,
    DEFAULT_VECTOR_FIELD,
    MISSING,
    FieldPath,
    RouteConfig,
    RouteConfigError,
)

pytestmark = pytest.mark.unit


def config(**options: Any) -> RouteConfig:
    options.setdefault("dimension", 384)
    options.setdefault("metric", "cosine")
    return RouteConfig(**options)


def test_the_defaults_are_the_documented_constants() -> None:
    default = config()
    assert default.namespace_template == DEFAULT_NAMESPACE_TEMPLATE == "${topic}"
    assert default.id_strategy == DEFAULT_ID_STRATEGY == "kafka"
    assert default.id_format == DEFAULT_ID_FORMAT == "uuid"
    assert default.vector_field == DEFAULT_VECTOR_FIELD == "values"
    assert default.max_metadata_bytes == DEFAULT_MAX_METADATA_BYTES == 40_960
    assert default.delete_enabled is True
    assert default.metadata_fields is None and default.text_fields == () and default.text_template is None


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"dimension": 0}, "RouteConfig.dimension: 0 is not allowed; allowed: an integer from 1 to 20000"),
        ({"dimension": 20_001}, "RouteConfig.dimension: 20001 is not allowed"),
        ({"dimension": True}, "RouteConfig.dimension: True is not allowed"),
        ({"dimension": "384"}, "RouteConfig.dimension: '384' is not allowed"),
        ({"metric": "cos"}, "RouteConfig.metric: 'cos' is not allowed; allowed: 'cosine', 'dotproduct', 'euclidean'"),
        (
            {"namespace_template": "${table}"},
            r"RouteConfig.namespace_template: '\$\{table\}' is not allowed; "
            r"allowed: no placeholder other than \$\{topic\}",
        ),
        ({"namespace_template": "x" * 300 + "${topic}"}, "a valid Pinecone namespace for any topic"),
        ({"namespace_template": "a\nb"}, "non-printable characters"),
        ({"namespace_map": {"t": 5}}, r"RouteConfig.namespace_map\['t'\]: 5 is not allowed; allowed: a string"),
        ({"namespace_map": {"t": "n" * 513}}, r"namespace_map\['t'\].*513 characters long, more than 512"),
        ({"namespace_map": {"": "n"}}, "RouteConfig.namespace_map: '' is not allowed; allowed: non-empty topic"),
        ({"namespace_map": ["t"]}, "RouteConfig.namespace_map: \\['t'\\] is not allowed; allowed: a mapping"),
        ({"id_strategy": "key"}, "RouteConfig.id_strategy: 'key' is not allowed; allowed: 'none', 'field', 'kafka'"),
        ({"id_format": "hash"}, "RouteConfig.id_format: 'hash' is not allowed; allowed: 'uuid', 'raw'"),
        ({"id_strategy": "field"}, "RouteConfig.id_field: None is not allowed; allowed: a non-empty field name"),
        ({"id_field": "id"}, "RouteConfig.id_field: 'id' is not allowed; allowed: None unless id_strategy is 'field'"),
        ({"vector_field": ""}, "RouteConfig.vector_field: '' is not allowed"),
        ({"sparse_field": "values"}, "RouteConfig.sparse_field: 'values' is not allowed; allowed: a field other"),
        ({"text_fields": "title"}, "RouteConfig.text_fields: 'title' is not allowed; allowed: a list or tuple"),
        ({"text_fields": ("title", "")}, "RouteConfig.text_fields: .* allowed: non-empty field names"),
        ({"text_fields": ("a",), "text_template": "${a}"}, "RouteConfig.text_template: .* None when text_fields"),
        ({"text_template": "plain"}, "RouteConfig.text_template: 'plain' .* at least one"),
        ({"text_template": "${title"}, r"RouteConfig.text_template: .* every '\$\{' is closed"),
        ({"text_template": "a ${} b"}, "RouteConfig.text_template: .* placeholders that name a field"),
        ({"delete_enabled": "yes"}, "RouteConfig.delete_enabled: 'yes' is not allowed; allowed: True or False"),
        ({"version_field": ""}, "RouteConfig.version_field: '' is not allowed"),
        ({"metadata_fields": ("a", "values")}, "RouteConfig.metadata_fields: .* fields other than the vector"),
        ({"max_metadata_bytes": 40_961}, "RouteConfig.max_metadata_bytes: 40961 is not allowed; .* from 1 to 40960"),
        ({"max_metadata_bytes": 0}, "RouteConfig.max_metadata_bytes: 0 is not allowed"),
    ],
)
def test_a_bad_option_is_rejected_naming_the_option_the_value_and_what_is_allowed(
    options: dict[str, Any], fragment: str
) -> None:
    with pytest.raises(RouteConfigError, match=fragment):
        config(**options)


def test_lists_of_names_are_accepted_and_stored_as_tuples() -> None:
    loaded = config(text_fields=["title", "body"], metadata_fields=["a"])
    assert loaded.text_fields == ("title", "body")
    assert loaded.metadata_fields == ("a",)


def test_the_config_survives_pickling_as_flink_ships_it() -> None:
    original = config(id_strategy="field", id_field="after.id", text_template="${a} ${b}", namespace_map={"t": "n"})
    original.namespace_for("t")
    copy = pickle.loads(pickle.dumps(original))
    assert copy == original
    assert copy.id_path == FieldPath.parse("after.id")
    assert copy.namespace_for("t") == "n"


def test_the_template_substitutes_the_topic() -> None:
    assert config(namespace_template="pinecone_${topic}").namespace_for("orders") == "pinecone_orders"


def test_a_constant_template_routes_every_topic_to_one_namespace_including_the_default() -> None:
    assert config(namespace_template="shared").namespace_for("a") == "shared"
    assert config(namespace_template="").namespace_for("a") == ""


def test_the_namespace_map_overrides_the_template() -> None:
    routed = config(namespace_template="ns_${topic}", namespace_map={"legacy": "", "b": "bee"})
    assert routed.namespace_for("legacy") == ""
    assert routed.namespace_for("b") == "bee"
    assert routed.namespace_for("c") == "ns_c"


def test_a_topic_that_renders_an_invalid_namespace_is_a_record_error() -> None:
    with pytest.raises(InvalidNamespaceError, match=r"namespace 'bad\\ttopic' rendered for topic .* non-printable"):
        config().namespace_for("bad\ttopic")


def test_a_field_path_distinguishes_missing_from_null_and_never_walks_into_non_objects() -> None:
    path = FieldPath.parse("a.b")
    assert path.lookup({"a": {"b": None}}) is None
    assert path.lookup({"a": {"c": 1}}) is MISSING
    assert path.lookup({"a": [1]}) is MISSING
    assert path.lookup({"a": "text"}) is MISSING
    assert FieldPath.parse("a").lookup({}) is MISSING
