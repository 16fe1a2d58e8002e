"""The job's configuration: one spec gives the flags, the YAML loader and the README table; every bad value, unknown
name and inconsistent combination is a JobConfigError naming the flag, the value and what is allowed; secrets never
show."""

from __future__ import annotations

import dataclasses
import pickle
from collections.abc import Mapping
from pathlib import Path

import pytest

from kafka_pinecone_flink.jobs.config import (
    BY_NAME,
    OPTIONS,
    JobConfig,
    JobConfigError,
    load_job_config,
    main,
    markdown,
    parser,
)
from kafka_pinecone_flink.jobs.kafka_io import source_table_ddl
from kafka_pinecone_flink.jobs.masking import mask_urls
from kafka_pinecone_flink.jobs.options import Kind, Option
from kafka_pinecone_flink.sinks.config import PineconeSinkConfig
from kafka_pinecone_flink.udfs.embed import EmbedConfig
from kafka_pinecone_flink.udfs.route_config import RouteConfig
from kafka_pinecone_flink.udfs.stage_batch import DEFAULT_LINGER_MS, DEFAULT_MAX_BYTES, DEFAULT_MAX_RECORDS

pytestmark = pytest.mark.unit

API_KEY = "pcsk_unit-test-secret-9f8e7d"
JAAS = "org.apache.kafka.common.security.plain.PlainLoginModule required username='u' password='hunter2-secret';"
ENV: Mapping[str, str] = {"PINECONE_API_KEY": API_KEY}
BASE = ("--kafka.topics", "orders", "--pinecone.index", "products")
README = Path(__file__).resolve().parents[2] / "README.md"
START_MARKER, END_MARKER = "<!-- options:start -->", "<!-- options:end -->"


def load(*argv: str, env: Mapping[str, str] = ENV) -> JobConfig:
    return load_job_config([*BASE, *argv], env)


def error(*argv: str, env: Mapping[str, str] = ENV, base: bool = True) -> str:
    with pytest.raises(JobConfigError) as info:
        load_job_config([*(BASE if base else ()), *argv], env)
    return str(info.value)


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "job.yaml"
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- defaults -----------------------------------------------------------------------------------------------------


def test_the_defaults_are_the_documented_ones() -> None:
    config = load()
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert config.kafka.group_id == "kafka-pinecone-flink"
    assert config.kafka.starting_position == "committed" and config.kafka.bounded is False
    assert dict(config.kafka.properties) == {}
    assert config.sink.api_key == API_KEY and config.sink.index_name == "products"
    assert (config.sink.batch_size, config.sink.max_retries, config.sink.retry_interval_ms) == (250, 3, 1000)
    assert (config.sink.linger_ms, config.sink.error_tolerance, config.sink.schema_evolution) == (100, "none", "basic")
    assert config.embed is None
    assert config.route.namespace_template == "${topic}" and config.route.id_strategy == "kafka"
    assert config.route.id_format == "uuid" and config.route.vector_field == "values"
    assert config.route.delete_enabled is True and config.route.metadata_fields is None
    assert config.route.max_metadata_bytes == 40_960
    assert config.dedup.state_ttl_ms == 0
    assert config.errors_tolerance == "none" and config.dead_letter_topic == "pinecone-dead-letter"
    # Neither parallelism nor checkpoint interval of its own: flink-conf's locally, flink run's or the cluster's there.
    assert (config.flink.parallelism, config.flink.checkpoint_interval_ms, config.flink.rest_port) == (None, None, 8081)
    assert config.flink.run_dir.name == ".run"
    assert config.api_key_env == "PINECONE_API_KEY"


def test_the_batch_options_default_to_the_stage_batch_defaults() -> None:
    batch = load().batch
    assert (batch.max_records, batch.max_bytes, batch.linger_ms) == (250, 16 * 1024 * 1024, 50)
    assert (DEFAULT_MAX_RECORDS, DEFAULT_MAX_BYTES, DEFAULT_LINGER_MS) == (250, 16 * 1024 * 1024, 50)


def test_the_batch_options_reach_the_config_within_their_bounds() -> None:
    low = load("--batch.max-records", "1", "--batch.max-bytes", str(1024 * 1024), "--batch.linger-ms", "0").batch
    assert (low.max_records, low.max_bytes, low.linger_ms) == (1, 1024 * 1024, 0)
    high = load(
        "--batch.max-records", "100000", "--batch.max-bytes", str(256 * 1024 * 1024), "--batch.linger-ms", "10000"
    ).batch
    assert (high.max_records, high.max_bytes, high.linger_ms) == (100_000, 256 * 1024 * 1024, 10_000)


@pytest.mark.parametrize(
    ("flag", "value", "allowed"),
    [
        ("--batch.max-records", "0", "from 1 to 100,000"),
        ("--batch.max-records", "100001", "from 1 to 100,000"),
        ("--batch.max-bytes", str(1024 * 1024 - 1), "from 1,048,576 to 268,435,456"),
        ("--batch.max-bytes", str(256 * 1024 * 1024 + 1), "from 1,048,576 to 268,435,456"),
        ("--batch.linger-ms", "-1", "from 0 to 10,000"),
        ("--batch.linger-ms", "10001", "from 0 to 10,000"),
    ],
)
def test_a_batch_option_out_of_range_is_rejected(flag: str, value: str, allowed: str) -> None:
    assert error(flag, value) == f"{flag}: got '{value}'; expected an integer {allowed}"


# --- one value at a time ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "1001"])
def test_an_integer_out_of_range_names_the_flag_the_value_and_the_range(value: str) -> None:
    assert error("--sink.batch-size", value) == f"--sink.batch-size: got '{value}'; expected an integer from 1 to 1,000"


def test_a_value_that_is_not_an_integer_is_rejected_with_the_range() -> None:
    message = error("--flink.parallelism", "two")
    assert message == "--flink.parallelism: got 'two'; expected an integer from 1 to 32,768"


def test_integers_are_plain_ascii_digits() -> None:
    assert "--sink.max-retries: got '1_0'" in error("--sink.max-retries", "1_0")


def test_a_value_outside_the_choices_lists_the_choices() -> None:
    message = error("--kafka.starting-position", "first")
    assert message == "--kafka.starting-position: got 'first'; expected one of earliest, latest, committed, timestamp"


def test_a_boolean_flag_alone_means_true_and_takes_true_or_false() -> None:
    assert load("--kafka.bounded").kafka.bounded is True
    assert load("--kafka.bounded", "false").kafka.bounded is False
    assert error("--kafka.bounded", "maybe") == "--kafka.bounded: got 'maybe'; expected true or false"


def test_a_number_option_takes_decimals_within_its_range() -> None:
    assert load("--sink.request-timeout-s", "2.5").sink.request_timeout_s == 2.5
    message = error("--sink.request-timeout-s", "0")
    assert message == "--sink.request-timeout-s: got '0'; expected a number from 0.1 to 600"


def test_a_state_ttl_takes_a_unit_and_rounds_up_to_whole_days() -> None:
    half_day = load("--dedup.state-ttl", "12h").dedup
    assert half_day.state_ttl_ms == 43_200_000  # kept to the millisecond, not rounded to days
    assert load("--dedup.state-ttl", "7d").dedup.state_ttl_ms == 7 * 86_400_000
    assert load("--dedup.state-ttl", "0").dedup.state_ttl_ms == 0


@pytest.mark.parametrize("value", ["5", "7 days", "-1d", "1.5h"])
def test_a_duration_without_a_valid_unit_is_rejected(value: str) -> None:
    message = error(f"--dedup.state-ttl={value}")
    assert message == (
        f"--dedup.state-ttl: got {value!r}; expected a duration with a unit (500ms, 45s, 30m, 12h, 7d) or 0"
    )


def test_a_state_ttl_beyond_the_dedup_limit_is_rejected() -> None:
    assert "--dedup.state-ttl: got '36501d'; expected a duration" in error("--dedup.state-ttl", "36501d")


def test_list_flags_are_comma_separated_and_add_up_when_repeated() -> None:
    config = load("--kafka.topics", "customers, invoices", "--embedding.text-fields", "title,body")
    assert config.kafka.topics == ("orders", "customers", "invoices")
    assert config.route.text_fields == ("title", "body")


def test_an_empty_list_item_is_rejected() -> None:
    message = error("--kafka.topics", "a,,b", base=False)
    assert message == "--kafka.topics: got ('a', '', 'b'); expected a comma-separated list of non-empty names"


def test_an_empty_metadata_fields_list_means_no_metadata() -> None:
    assert load("--metadata.fields", "").route.metadata_fields == ()
    assert load("--metadata.fields", "title,price").route.metadata_fields == ("title", "price")


def test_a_map_entry_without_equals_is_rejected_without_echoing_it() -> None:
    message = error("--kafka.property", "sasl.jaas.config:hunter2-secret")
    assert message == "--kafka.property: got (value hidden); expected key=value with a non-empty key"
    assert "hunter2" not in message


def test_a_malformed_kafka_property_name_is_rejected_without_echoing_the_entry() -> None:
    message = error("--kafka.property", "sasl.jaas.config:" + JAAS)  # the first "=" is inside the JAAS text
    assert (
        message
        == "--kafka.property: got (value hidden); expected Kafka client property names (a-z A-Z 0-9 . _ -) as keys"
    )
    assert "hunter2" not in message and "PlainLoginModule" not in message


def test_a_missing_required_option_is_named() -> None:
    message = error("--kafka.topics", "orders", base=False)
    assert message.startswith("--pinecone.index is required: Name of the Pinecone index")


def test_an_invalid_topic_name_is_rejected() -> None:
    message = error("--kafka.topics", "bad topic", "--pinecone.index", "products", base=False)
    assert message.startswith("--kafka.topics: got ('bad topic',); expected Kafka topic names of 1 to 249 characters")


@pytest.mark.parametrize(
    ("servers", "expected"),
    [("localhost", "comma-separated host:port pairs"), ("broker:70000", "ports from 1 to 65535")],
)
def test_bootstrap_servers_must_be_host_port_pairs(servers: str, expected: str) -> None:
    assert error("--kafka.bootstrap-servers", servers) == f"--kafka.bootstrap-servers: got {servers!r}; expected " + (
        "comma-separated host:port pairs, e.g. 127.0.0.1:9092,broker2:9092" if "pairs" in expected else expected
    )


def test_a_flink_setting_that_has_its_own_option_is_rejected() -> None:
    message = error("--flink.conf=rest.port=9000")
    assert message == "--flink.conf: got {'rest.port': '9000'}; expected no 'rest.port' setting (set --flink.rest-port)"
    assert load("--flink.conf=restart-strategy.type=none").flink.conf == {"restart-strategy.type": "none"}


def test_a_kafka_property_that_has_its_own_option_is_rejected() -> None:
    message = error("--kafka.property", "bootstrap.servers=elsewhere:9092")
    assert message == (
        "--kafka.property: got (value hidden); expected no 'bootstrap.servers' property "
        "(set it with --kafka.bootstrap-servers)"
    )


def test_a_key_pasted_as_the_api_key_env_name_is_not_echoed() -> None:
    message = error("--pinecone.api-key-env", API_KEY)
    assert message.startswith("--pinecone.api-key-env: got (value hidden); expected an environment variable name")
    assert API_KEY not in message


# --- rules between options --------------------------------------------------------------------------------------------


def test_topics_and_a_topic_pattern_together_are_rejected() -> None:
    message = error("--kafka.topic-pattern", "orders-.*")
    assert message == (
        "--kafka.topics (orders) and --kafka.topic-pattern ('orders-.*') are both set; expected exactly one of them"
    )


def test_neither_topics_nor_a_topic_pattern_is_rejected() -> None:
    message = error("--pinecone.index", "products", base=False)
    assert message.startswith("neither --kafka.topics nor --kafka.topic-pattern is set; expected exactly one of them")


def test_a_topic_pattern_alone_is_accepted() -> None:
    config = load_job_config(["--kafka.topic-pattern", "orders-.*", "--pinecone.index", "products"], ENV)
    assert config.kafka.topic_pattern == "orders-.*" and config.kafka.topics == ()


def test_starting_position_timestamp_requires_a_timestamp() -> None:
    message = error("--kafka.starting-position", "timestamp")
    assert message.startswith("--kafka.starting-timestamp-ms is required with --kafka.starting-position timestamp")
    config = load("--kafka.starting-position", "timestamp", "--kafka.starting-timestamp-ms", "1700000000000")
    assert config.kafka.starting_timestamp_ms == 1_700_000_000_000


def test_a_timestamp_without_starting_position_timestamp_is_rejected() -> None:
    message = error("--kafka.starting-timestamp-ms", "1700000000000")
    assert message == (
        "--kafka.starting-timestamp-ms: got 1700000000000; "
        "expected no value unless --kafka.starting-position is timestamp (it is committed)"
    )


def test_id_strategy_field_requires_an_id_field() -> None:
    message = error("--id.strategy", "field")
    assert message.startswith("--id.field is required with --id.strategy field")
    assert load("--id.strategy", "field", "--id.field", "after.id").route.id_field == "after.id"


def test_an_id_field_without_id_strategy_field_is_rejected() -> None:
    message = error("--id.field", "sku")
    assert message == "--id.field: got 'sku'; expected no value unless --id.strategy is field (it is kafka)"


def test_id_strategy_none_with_deletes_enabled_explains_why_and_what_to_set() -> None:
    message = error("--id.strategy", "none")
    assert message.startswith("--id.strategy none cannot be used with --delete.enabled true")
    assert "cannot address the record it should remove" in message
    assert "Set --delete.enabled false" in message
    config = load("--id.strategy", "none", "--delete.enabled", "false")
    assert config.route.id_strategy == "none" and config.route.delete_enabled is False


def test_an_id_format_with_id_strategy_none_is_rejected() -> None:
    message = error("--id.strategy", "none", "--delete.enabled", "false", "--id.format", "raw")
    assert message == "--id.format: got 'raw'; expected no value with --id.strategy none (ids are random UUIDs)"


def test_embedding_is_on_only_with_text_fields_or_a_text_template() -> None:
    assert load().embed is None
    with_fields = load("--embedding.text-fields", "title", "--embedding.batch-size", "128")
    assert with_fields.embed == EmbedConfig(batch_size=128)
    with_template = load("--embedding.text-template", "${title}. ${body}")
    assert with_template.embed == EmbedConfig() and with_template.route.text_template == "${title}. ${body}"


def test_a_job_that_embeds_runs_python_bundles_of_one_group_unless_flink_conf_says_otherwise() -> None:
    key = "python.fn-execution.bundle.size"
    assert key not in load().flink_overrides()  # no model: flink-conf's bundles
    assert load("--embedding.text-fields", "title").flink_overrides()[key] == "1"
    chosen = load("--embedding.text-fields", "title", "--flink.conf", f"{key}=8")
    assert chosen.flink_overrides()[key] == "8"


def test_the_checkpoint_interval_is_set_for_the_job_only_when_given() -> None:
    key = "execution.checkpointing.interval"
    assert key not in load().flink_overrides()  # flink-conf's locally, the cluster's (or -D's) under flink run
    assert load("--flink.checkpoint-interval-ms", "2500").flink_overrides()[key] == "2500ms"


def test_lanes_reach_the_embed_stage_and_are_range_checked() -> None:
    assert load("--embedding.text-fields", "title").embed.lanes == 0  # type: ignore[union-attr]
    assert load("--embedding.text-fields", "title", "--embedding.lanes", "3").embed.lanes == 3  # type: ignore[union-attr]
    message = error("--embedding.text-fields", "title", "--embedding.lanes", "17")
    assert message.startswith("--embedding.lanes: got '17'; expected an integer from 0 to 16")
    assert "embedding" in error("--embedding.lanes", "2")  # meaningless without the model


def test_torch_threads_reach_the_embed_stage_and_are_range_checked() -> None:
    config = load("--embedding.text-fields", "title", "--embedding.torch-threads", "1")
    assert config.embed is not None and config.embed.torch_threads == 1
    message = error("--embedding.text-fields", "title", "--embedding.torch-threads", "-1")
    assert message.startswith("--embedding.torch-threads: got '-1'; expected an integer from 0 to 256")


def test_text_fields_and_a_text_template_together_are_rejected() -> None:
    message = error("--embedding.text-fields", "title", "--embedding.text-template", "${title}")
    assert message == (
        "--embedding.text-fields (title) and --embedding.text-template ('${title}') are both set; "
        "expected at most one of them"
    )


def test_an_embedding_option_while_embedding_is_off_is_rejected() -> None:
    message = error("--embedding.device", "cuda")
    assert message == (
        "--embedding.device: got 'cuda'; expected no value while embedding is off: set --embedding.text-fields or "
        "--embedding.text-template to turn it on"
    )


def test_the_dead_letter_topic_must_not_be_a_source_topic() -> None:
    message = error("--errors.dead-letter-topic", "orders")
    assert message.startswith("--errors.dead-letter-topic: got 'orders'; expected a topic that is not a source topic")


def test_the_dead_letter_topic_must_not_match_the_topic_pattern() -> None:
    argv = ["--kafka.topic-pattern", ".*", "--pinecone.index", "products"]
    with pytest.raises(JobConfigError, match=r"^--errors\.dead-letter-topic: got 'pinecone-dead-letter'; expected"):
        load_job_config(argv, ENV)


def test_a_namespace_map_key_that_is_not_a_source_topic_is_rejected_with_a_suggestion() -> None:
    message = error("--pinecone.namespace-map", "order=sales")
    assert message == (
        "--pinecone.namespace-map: got 'order'; expected only topics of --kafka.topics (orders) as keys "
        "(did you mean orders?)"
    )
    assert load("--pinecone.namespace-map", "orders=").route.namespace_map == {"orders": ""}


def test_a_missing_api_key_names_the_environment_variable() -> None:
    message = error(env={})
    assert message.startswith("the Pinecone API key is missing: set the environment variable PINECONE_API_KEY")
    custom = error("--pinecone.api-key-env", "MY_PINECONE_KEY")
    assert "set the environment variable MY_PINECONE_KEY" in custom
    assert load("--pinecone.api-key-env", "MY_PINECONE_KEY", env={"MY_PINECONE_KEY": "k"}).sink.api_key == "k"


def test_a_local_server_needs_no_api_key() -> None:
    config = load("--pinecone.controller-host", "http://127.0.0.1:5080", env={})
    assert config.sink.api_key is None and config.sink.controller_host == "http://127.0.0.1:5080"


def test_an_api_key_with_surrounding_whitespace_is_rejected_without_showing_it() -> None:
    message = error(env={"PINECONE_API_KEY": API_KEY + "\n"})
    assert message == (
        "the API key in $PINECONE_API_KEY (named by --pinecone.api-key-env): got (value hidden); "
        "expected a non-empty string without surrounding whitespace"
    )
    assert API_KEY not in message


# --- the rules the stages share with the options: one check, one message format ---------------------------------------


def test_a_sparse_field_equal_to_the_vector_field_names_both_flags() -> None:
    message = error("--vector.sparse-field", "values")
    assert message == "--vector.sparse-field: got 'values'; expected a field other than --vector.field ('values')"


def test_an_invalid_index_name_names_the_index_flag() -> None:
    message = error("--kafka.topics", "orders", "--pinecone.index", "Products_1", base=False)
    assert message == (
        "--pinecone.index: got 'Products_1'; expected 1..45 lowercase letters, digits or '-' "
        "(not starting or ending with '-')"
    )


def test_a_host_with_spaces_names_the_host_flag() -> None:
    message = error("--pinecone.host", "http://a b")
    assert message == (
        "--pinecone.host: got 'http://a b'; expected a non-empty URL without spaces (e.g. 'http://127.0.0.1:5080')"
    )


def test_a_retry_cap_below_the_first_interval_names_the_cap() -> None:
    message = error("--sink.retry-interval-ms", "5000", "--sink.max-retry-interval-ms", "1000")
    assert message == "--sink.max-retry-interval-ms: got 1000; expected at least --sink.retry-interval-ms (5000)"


def test_an_empty_namespace_template_means_the_default_namespace() -> None:
    assert load("--pinecone.namespace-template", "").route_config(4, "cosine").namespace_for("orders") == ""
    assert error("--kafka.group-id", "") == "--kafka.group-id: got ''; expected a non-empty string"


def test_a_namespace_template_with_another_placeholder_is_rejected() -> None:
    message = error("--pinecone.namespace-template", "${topic}-${env}")
    assert message == (
        "--pinecone.namespace-template: got '${topic}-${env}'; expected no placeholder other than ${topic}"
    )


def test_a_namespace_map_value_that_is_not_a_namespace_names_the_map_flag() -> None:
    message = error("--pinecone.namespace-map", "orders=" + "n" * 513)
    assert message.startswith("--pinecone.namespace-map: got {'orders': 'nnn")
    assert message.endswith("expected valid Pinecone namespaces as values (it is 513 characters long, more than 512)")


def test_a_text_template_without_placeholders_is_rejected() -> None:
    message = error("--embedding.text-template", "no fields")
    assert message == (
        "--embedding.text-template: got 'no fields'; expected a template with at least one '${field}' placeholder"
    )


def test_metadata_fields_must_not_include_the_vector_field() -> None:
    message = error("--metadata.fields", "title,values")
    assert message == (
        "--metadata.fields: got ('title', 'values'); expected fields other than the vector fields "
        "(--vector.field, --vector.sparse-field)"
    )


def test_an_embedding_model_must_be_the_bundled_one_or_a_local_model_directory(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    message = error("--embedding.text-fields", "title", "--embedding.model", str(missing))
    assert message.startswith(f"--embedding.model: got {str(missing)!r}; expected 'default' (the bundled")
    (tmp_path / "config.json").write_text("{}")
    assert load("--embedding.text-fields", "title", "--embedding.model", str(tmp_path)).embed == EmbedConfig(
        model=str(tmp_path)
    )


def test_route_config_is_built_for_the_index_dimension_and_metric() -> None:
    config = load("--dedup.version-field", "ts_ms", "--embedding.text-fields", "title")
    route = config.route_config(384, "dotproduct")
    assert route.dimension == 384 and route.metric == "dotproduct"
    assert route.version_field == "ts_ms" and route.text_fields == ("title",) and route.has_text
    with pytest.raises(JobConfigError, match=r"^the index's dimension: 0 is not allowed; allowed: an integer from 1"):
        config.route_config(0, "cosine")


# --- unknown names and where values come from -------------------------------------------------------------------------


def test_an_unknown_flag_names_the_closest_option_and_not_its_value() -> None:
    message = error("--sink.batchsize=777")
    assert message == "unknown option --sink.batchsize (did you mean --sink.batch-size?); see --help for the options"


def test_stray_values_are_not_echoed() -> None:
    message = error(API_KEY)
    assert message.startswith("1 unexpected argument(s) (value hidden)") and API_KEY not in message


def test_the_api_key_is_refused_as_a_flag_without_echoing_it() -> None:
    message = error("--pinecone.api-key", API_KEY)
    assert message.startswith("--pinecone.api-key is not an option: the Pinecone API key is read only from")
    assert API_KEY not in message


def test_an_unknown_yaml_key_names_the_closest_option(tmp_path: Path) -> None:
    path = write(tmp_path, "sink:\n  batch-sise: 10\n")
    message = error("--config", path)
    assert message == f"--config {path}: unknown option 'sink.batch-sise' (did you mean sink.batch-size?)"


def test_the_api_key_is_refused_in_yaml_without_echoing_it(tmp_path: Path) -> None:
    path = write(tmp_path, f"pinecone:\n  api-key: {API_KEY}\n")
    message = error("--config", path)
    assert message.startswith(f"--config {path}: 'pinecone.api-key' is not an option") and API_KEY not in message


def test_a_yaml_syntax_error_gives_the_position_but_not_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, f'kafka.property:\n  sasl.jaas.config: "{JAAS}\n  x: [\n')
    message = error("--config", path)
    assert message.startswith(f"--config {path}: not valid YAML at line")
    assert "hunter2" not in message


def test_a_yaml_file_must_hold_a_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- kafka.topics\n")
    assert error("--config", path) == (
        f"--config {path}: expected a mapping of option names to values at the top level"
    )


def test_a_yaml_key_given_twice_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "sink.batch-size: 10\nsink.batch-size: 20\n")
    assert error("--config", path) == f"--config {path}: key 'sink.batch-size' appears twice in one mapping (line 2)"


def test_the_same_option_flat_and_nested_is_rejected(tmp_path: Path) -> None:
    path = write(tmp_path, "sink.batch-size: 10\nsink:\n  batch-size: 20\n")
    assert error("--config", path) == f"--config {path}: sink.batch-size is given twice (flat and nested)"


def test_a_missing_yaml_file_is_an_error(tmp_path: Path) -> None:
    path = str(tmp_path / "absent.yaml")
    assert error("--config", path) == f"--config {path}: cannot read the file (No such file or directory)"


def test_a_bad_value_in_the_yaml_file_names_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "sink.batch-size: 0\n")
    assert error("--config", path) == f"--sink.batch-size: got 0 (in {path}); expected an integer from 1 to 1,000"


def test_flags_win_over_the_file_and_the_file_over_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "sink.batch-size: 10\nsink.linger-ms: 5\nkafka.topics: [customers, invoices]\n")
    config = load_job_config(["--config", path, "--pinecone.index", "products", "--sink.batch-size", "20"], ENV)
    assert config.sink.batch_size == 20  # flag over file
    assert config.sink.linger_ms == 5  # file over default
    assert config.sink.max_retries == 3  # default
    assert config.kafka.topics == ("customers", "invoices")
    replaced = load_job_config(["--config", path, "--pinecone.index", "products", "--kafka.topics", "orders"], ENV)
    assert replaced.kafka.topics == ("orders",)  # a list flag replaces the file's list


def test_map_flags_merge_into_the_file_per_key(tmp_path: Path) -> None:
    path = write(tmp_path, "kafka.property:\n  security.protocol: SASL_SSL\n  max.poll.records: 500\n")
    config = load("--config", path, "--kafka.property", "security.protocol=SSL", "--kafka.property", "a.b=c")
    assert dict(config.kafka.properties) == {"security.protocol": "SSL", "max.poll.records": "500", "a.b": "c"}


def test_nested_and_flat_yaml_keys_mean_the_same(tmp_path: Path) -> None:
    flat = write(tmp_path, "kafka.topics: orders\npinecone.index: products\nsink.batch-size: 10\n")
    nested_path = tmp_path / "nested.yaml"
    nested_path.write_text("kafka:\n  topics: [orders]\npinecone:\n  index: products\nsink:\n  batch-size: 10\n")
    assert load_job_config(["--config", flat], ENV) == load_job_config(["--config", str(nested_path)], ENV)


# --- secrets ----------------------------------------------------------------------------------------------------------


def test_repr_masks_the_api_key_and_secret_kafka_properties() -> None:
    config = load(
        "--kafka.property",
        f"sasl.jaas.config={JAAS}",
        "--kafka.property",
        "ssl.key.password=key-pass-123",
        "--kafka.property",
        "security.protocol=SASL_SSL",
    )
    for printed in (repr(config), str(config), repr(config.kafka), repr(config.sink)):
        assert API_KEY not in printed and "hunter2" not in printed and "key-pass-123" not in printed
    assert "'sasl.jaas.config': '***'" in repr(config) and "'ssl.key.password': '***'" in repr(config)
    assert "api_key='***'" in repr(config) and "'security.protocol': 'SASL_SSL'" in repr(config)
    # Masked when printed only: the Kafka connector still gets the real values.
    assert JAAS.replace("'", "''") in source_table_ddl("t", config.kafka)
    assert set(config.secrets()) == {API_KEY, JAAS, "key-pass-123"}


def test_the_config_survives_pickling_for_the_job_graph() -> None:
    config = load("--kafka.property", f"sasl.jaas.config={JAAS}", "--embedding.text-fields", "title")
    restored = pickle.loads(pickle.dumps(config))
    assert restored == config and "'***'" in repr(restored.kafka.properties)


TOKEN_URL = "https://client-7:s3cr3t-pw@idp.example.com/oauth2/token?audience=kafka&client_secret=cs-999&sig=sg-777"


def test_credentials_inside_urls_are_masked_in_every_printed_config_whatever_the_property_name() -> None:
    config = load(
        "--kafka.property",
        f"sasl.oauthbearer.token.endpoint.url={TOKEN_URL}",
        "--pinecone.controller-host=http://admin:pc-pass-1@127.0.0.1:5080",
        "--pinecone.host=http://127.0.0.1:5081/?apiKey=ak-555",
        "--flink.conf=execution.checkpointing.dir=s3://AKIA1:aws-secret-2@bucket/ckpt",
    )
    # (PineconeSinkConfig's own repr masks the API key only: the sink does not know jobs.masking; JobConfig's does.)
    for printed in (repr(config), str(config), repr(config.kafka), repr(config.flink)):
        for secret in ("s3cr3t-pw", "client-7", "cs-999", "sg-777", "pc-pass-1", "ak-555", "aws-secret-2"):
            assert secret not in printed, (secret, printed)
    printed = repr(config)
    assert "https://***@idp.example.com/oauth2/token?audience=kafka&client_secret=***&sig=***" in printed
    assert "http://***@127.0.0.1:5080" in printed and "s3://***@bucket/ckpt" in printed
    # Printed masked only: the clients get the real values, and the secrets are known for scrubbing.
    assert config.kafka.properties["sasl.oauthbearer.token.endpoint.url"] == TOKEN_URL
    assert config.sink.controller_host == "http://admin:pc-pass-1@127.0.0.1:5080"
    assert {"s3cr3t-pw", "cs-999", "sg-777", "pc-pass-1", "ak-555", "aws-secret-2"} <= set(config.secrets())


def test_secret_flink_settings_are_masked_by_name_like_flinks_own() -> None:
    config = load("--flink.conf=s3.secret-key=aws-secret-3", "--flink.conf=s3.endpoint=http://minio:9000")
    assert "aws-secret-3" not in repr(config) and "'s3.secret-key': '***'" in repr(config.flink)
    assert "'s3.endpoint': 'http://minio:9000'" in repr(config.flink)
    assert config.flink_overrides()["s3.secret-key"] == "aws-secret-3"
    assert "aws-secret-3" in config.secrets()


def test_an_error_message_about_a_url_masks_its_credentials() -> None:
    message = error("--kafka.topic-pattern=http://u:pw-in-pattern@h/x")  # with --kafka.topics: both set
    assert "pw-in-pattern" not in message and "http://***@h/x" in message


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("https://u:p@h:443/x?token=t1&a=1#f", "https://***@h:443/x?token=***&a=1#f"),
        ("sasl_ssl://tok@broker:9093", "sasl_ssl://***@broker:9093"),
        (
            "http://h/p?X-Amz-Signature=abc&X-Amz-Credential=c&page=2",
            "http://h/p?X-Amz-Signature=***&X-Amz-Credential=***&page=2",
        ),
        (
            "http://h/p?apiKey=k&access_token=t&password=&keyspace=ks",
            "http://h/p?apiKey=***&access_token=***&password=&keyspace=ks",
        ),
        ("'http://a:b@h' and http://c:d@e/f", "'http://***@h' and http://***@e/f"),
        ("http://u:p@ss@h/", "http://***@h/"),
        ("no url here: user:pw@host", "no url here: user:pw@host"),
        ("http://127.0.0.1:5080", "http://127.0.0.1:5080"),
    ],
)
def test_mask_urls_masks_userinfo_and_secret_query_values_only(text: str, shown: str) -> None:
    assert mask_urls(text) == shown


# --- the whole thing --------------------------------------------------------------------------------------------------


def test_a_full_valid_config_builds_every_stage_config(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """
kafka:
  bootstrap-servers: broker1:9092,broker2:9093
  topics: [orders, customers]
  group-id: ingest-test
  starting-position: timestamp
  starting-timestamp-ms: 1700000000000
  property:
    security.protocol: SASL_SSL
  bounded: true
pinecone:
  index: products
  api-key-env: TEST_PINECONE_KEY
  host: http://127.0.0.1:5081
  controller-host: http://127.0.0.1:5080
  namespace-template: ns-${topic}
  namespace-map: {customers: people}
id: {strategy: field, field: after.id, format: raw}
vector: {field: embedding, sparse-field: sparse}
embedding:
  model: default
  text-template: "${title}. ${body}"
  batch-size: 32
  linger-ms: 10
  cache-entries: 0
  device: cpu
delete.enabled: false
schema.evolution: none
dedup: {version-field: source.lsn, state-ttl: 30d}
metadata: {fields: [title, price], max-bytes: 20000}
sink:
  batch-size: 500
  max-retries: 5
  retry-interval-ms: 200
  max-retry-interval-ms: 5000
  linger-ms: 25
  request-timeout-s: 12.5
errors: {tolerance: all, dead-letter-topic: ingest-dlq}
flink:
  parallelism: 2
  checkpoint-interval-ms: 5000
  rest-port: 0
  run-dir: /tmp/kpf-run
  conf: {restart-strategy.type: none}
""",
    )
    config = load_job_config(["--config", path, "--flink.parallelism", "4"], {"TEST_PINECONE_KEY": API_KEY})

    kafka = config.kafka
    assert (kafka.bootstrap_servers, kafka.topics, kafka.group_id) == (
        "broker1:9092,broker2:9093",
        ("orders", "customers"),
        "ingest-test",
    )
    assert (kafka.starting_position, kafka.starting_timestamp_ms, kafka.bounded) == (
        "timestamp",
        1_700_000_000_000,
        True,
    )
    assert dict(kafka.properties) == {"security.protocol": "SASL_SSL"}
    assert config.sink == PineconeSinkConfig(
        index_name="products",
        api_key=API_KEY,
        index_host="http://127.0.0.1:5081",
        controller_host="http://127.0.0.1:5080",
        batch_size=500,
        linger_ms=25,
        max_retries=5,
        retry_interval_ms=200,
        max_retry_interval_ms=5000,
        request_timeout_s=12.5,
        error_tolerance="all",
        schema_evolution="none",
    )
    assert config.embed == EmbedConfig(model="default", batch_size=32, linger_ms=10, cache_entries=0, device="cpu")
    assert config.route.version_field == "source.lsn" and config.dedup.state_ttl_ms == 30 * 86_400_000
    assert (config.errors_tolerance, config.dead_letter_topic) == ("all", "ingest-dlq")
    assert config.flink.parallelism == 4 and config.flink.rest_port == 0
    assert config.flink.run_dir == Path("/tmp/kpf-run")
    assert config.flink.conf == {"restart-strategy.type": "none"}
    assert config.flink_overrides() == {
        "python.fn-execution.bundle.size": "1",  # the job embeds
        "restart-strategy.type": "none",
        "rest.port": "0",
        "execution.checkpointing.interval": "5000ms",
    }

    route = config.route_config(384, "cosine")
    assert isinstance(route, RouteConfig)
    assert route.namespace_for("orders") == "ns-orders" and route.namespace_for("customers") == "people"
    assert (route.id_strategy, route.id_field, route.id_format) == ("field", "after.id", "raw")
    assert (route.vector_field, route.sparse_field, route.text_template) == ("embedding", "sparse", "${title}. ${body}")
    assert (route.delete_enabled, route.version_field) == (False, "source.lsn")
    assert (route.metadata_fields, route.max_metadata_bytes) == (("title", "price"), 20_000)


# --- generated help and docs ------------------------------------------------------------------------------------------


def test_help_lists_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    text = parser().format_help()
    for option in OPTIONS:
        assert option.flag in text
    assert "Default: 127.0.0.1:9092." in " ".join(text.split())
    with pytest.raises(SystemExit) as exit_info:
        load_job_config(["--help"], {})
    assert exit_info.value.code == 0 and "--sink.batch-size" in capsys.readouterr().out


def test_the_markdown_table_has_one_row_per_option_in_spec_order() -> None:
    lines = markdown().splitlines()
    assert lines[:2] == ["| option | default | description |", "|---|---|---|"]
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines[2:]] == [f"`{o.name}`" for o in OPTIONS]
    assert "| `sink.batch-size` | `250` | Records per Pinecone upsert request" in markdown()
    assert "| `pinecone.index` | required |" in markdown()


def test_python_m_jobs_config_markdown_prints_the_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--markdown"]) == 0
    assert capsys.readouterr().out == markdown()


def test_python_m_jobs_config_reports_an_invalid_config_with_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--sink.batch-size", "0"]) == 2
    assert capsys.readouterr().err == "error: --sink.batch-size: got '0'; expected an integer from 1 to 1,000\n"


def test_the_readme_options_table_is_the_generated_one() -> None:
    text = README.read_text(encoding="utf-8")
    assert START_MARKER in text and END_MARKER in text, f"README.md lost its {START_MARKER} ... {END_MARKER} markers"
    documented = text.split(START_MARKER, 1)[1].split(END_MARKER, 1)[0].strip("\n")
    assert documented == markdown().strip("\n"), (
        "README.md's options table is out of date: run `python -m kafka_pinecone_flink.jobs.config --markdown` "
        f"and paste its output between {START_MARKER} and {END_MARKER}"
    )


def test_each_value_is_stored_once() -> None:
    config = load("--kafka.bounded", "--dedup.version-field", "ts_ms", "--errors.tolerance", "all")
    assert config.kafka.bounded is True and not hasattr(config.flink, "bounded")
    assert config.route.version_field == "ts_ms" and not hasattr(config.dedup, "version_field")
    assert config.errors_tolerance == config.sink.error_tolerance == "all"
    assert "errors_tolerance" not in {field.name for field in dataclasses.fields(config)}


_BOUNDED = [o for o in OPTIONS if o.target and o.low is not None and o.high is not None]


@pytest.mark.parametrize("option", _BOUNDED, ids=lambda option: option.name)
def test_every_bound_an_option_accepts_builds_its_stage_config(option: Option, tmp_path: Path) -> None:
    # Options check each value once; the stage configs built from them must then accept it (else building would
    # fail with a stage message, which nothing rewrites into option names any more).
    extra = ["--embedding.text-fields", "title"] if option.name.startswith(("embedding.", "chunking.")) else []
    if option.name.startswith("chunking."):
        # A model whose window holds the largest chunk the option allows (the default model's holds 254 pieces).
        (tmp_path / "modules.json").write_text("[]")
        (tmp_path / "sentence_bert_config.json").write_text('{"max_seq_length": 8194}')
        (tmp_path / "tokenizer.json").write_text("{}")  # only its presence is checked when the options load
        extra += ["--embedding.model", str(tmp_path)]
    if option.name == "chunking.overlap":
        extra += ["--chunking.tokens", str(int(BY_NAME["chunking.tokens"].high or 0))]
    if option.name == "sink.max-retry-interval-ms":
        extra += ["--sink.retry-interval-ms", "1"]
    if option.name == "sink.retry-interval-ms":
        extra += ["--sink.max-retry-interval-ms", str(int(BY_NAME["sink.max-retry-interval-ms"].high or 0))]
    for bound in (option.low, option.high):
        assert bound is not None
        text = str(int(bound)) if option.kind is Kind.INT else str(bound)
        load(*extra, option.flag, text)


@pytest.mark.parametrize("option", [o for o in OPTIONS if o.target and o.choices], ids=lambda option: option.name)
def test_every_choice_an_option_accepts_builds_its_stage_config(option: Option) -> None:
    extra = ["--embedding.text-fields", "title"] if option.name.startswith("embedding.") else []
    for choice in option.choices:
        rules = {
            ("id.strategy", "field"): ["--id.field", "id"],
            ("id.strategy", "none"): ["--delete.enabled", "false"],
            ("kafka.starting-position", "timestamp"): ["--kafka.starting-timestamp-ms", "0"],
        }.get((option.name, choice), [])
        load(*extra, *rules, option.flag, choice)
