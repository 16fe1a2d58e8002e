"""End to end: a real Kafka broker, the Flink mini-cluster, the local Pinecone server through the real SDK.

Each test runs the ingest job as its own process on a bounded stream and checks where every record ended: in the
index (read back through the SDK) or in the dead-letter topic (with its error pinned).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from typing import Any

import pytest

from kafka_pinecone_flink.jobs import status
from kafka_pinecone_flink.stack.cluster import RestClient
from kafka_pinecone_flink.stack.kafka_client import consume
from kafka_pinecone_flink.udfs.ids import uuid_for
from tests.integration.ingest_harness import IngestHarness, dead_letter_headers, value

pytestmark = pytest.mark.integration


def test_precomputed_vectors_deletes_and_every_kind_of_bad_input_end_where_the_readme_says(
    ingest: IngestHarness,
) -> None:
    big = "x" * 41_000
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"k1", value(values=[1, 0, 0, 0], title="a", nested={"x": 1, "y": None}, tags=["a", "b"], n=None)),
        (b"k2", value(values="[0, 1, 0, 0]", title="b", price=12)),
        (b"k3", value(values=[0, 0, 1, 0])),
        (b"k3", None),  # tombstone
        (b"k4", value(values=[0, 0, 0, 1])),
        (b"k4", value(values=[0, 0, 0, 1], __deleted="true")),
        (b"k5", value(op="c", before=None, after={"values": [1, 1, 0, 0], "title": "e"})),
        (b"k5", value(op="d", before={"values": [1, 1, 0, 0], "title": "e"}, after=None)),
        (b"bad-json", b'{"values": [1, 0'),
        (b"bad-empty", b""),
        (b"bad-dimension", value(values=[1, 2, 3])),
        (b"bad-nan", value(values="[NaN, 0, 0, 0]")),
        (b"bad-element", value(values=["a", 0, 0, 0])),
        (b"bad-string", value(values="not a vector")),
        (None, value(values=[1, 0, 0, 1])),  # no key: no id
        (b"bad-metadata", value(values=[1, 0, 1, 0], blob=big)),
        (b"bad-zero", value(values=[0, 0, 0, 0])),
        (b"bad-array", b"[1, 2, 3]"),
    ]
    run = ingest.run(records, dimension=4)

    namespace = run.topics[0]
    index = run.snapshot(namespace)
    assert set(index) == {uuid_for(b"k1"), uuid_for(b"k2")}
    values, metadata = index[uuid_for(b"k1")]
    assert values == (1.0, 0.0, 0.0, 0.0)
    assert metadata == {"title": "a", "nested.x": 1.0, "tags": ["a", "b"]}
    assert index[uuid_for(b"k2")] == ((0.0, 1.0, 0.0, 0.0), {"title": "b", "price": 12.0})

    expected = {
        b"bad-json": ("InvalidJsonError", "not valid JSON"),
        b"bad-empty": ("EmptyValueError", "empty"),
        b"bad-dimension": ("DimensionMismatchError", "dimension 3 does not match the dimension of the index 4"),
        b"bad-nan": ("NonFiniteVectorError", ""),
        b"bad-element": ("InvalidVectorError", ""),
        b"bad-string": ("InvalidVectorError", ""),
        None: ("MissingIdError", ""),
        b"bad-metadata": ("MetadataTooLargeError", "40960"),
        b"bad-zero": ("ZeroVectorError", ""),
        b"bad-array": ("NotAnObjectError", ""),
    }
    dead = run.dead_letters(expected=len(expected))
    assert len(dead) == len(expected)
    offsets = {key: offset for offset, (key, _) in enumerate(records)}
    for message in dead:
        headers = dead_letter_headers(message)
        error_class, fragment = expected[message.key]
        assert headers["kpf.error.class"] == error_class, headers
        assert fragment in headers["kpf.error.message"]
        assert headers["kpf.error.stage"] == "decode"
        assert headers["kpf.source.topic"] == namespace
        assert headers["kpf.source.partition"] == "0"
        assert headers["kpf.source.offset"] == str(offsets[message.key])
        assert message.value == records[offsets[message.key]][1], "the original value bytes are kept"


def test_field_ids_versions_and_namespace_template_keep_the_newest_version_and_never_resurrect_a_delete(
    ingest: IngestHarness,
) -> None:
    records = [
        (b"a", value(id="u1", values=[1, 0, 0, 0], v=1, name="one")),
        (b"b", value(id="u1", values=[1, 0, 0, 0], v=3, name="three")),
        (b"c", value(id="u1", values=[0, 1, 0, 0], v=2, name="two")),  # stale: older than 3
        (b"d", value(id="u2", values=[0, 0, 1, 0], v=1)),
        (b"d", value(id="u2", values=[0, 0, 1, 0], v=1)),  # unchanged duplicate
        (b"e", value(id="u3", values=[0, 0, 0, 1], v=5)),
        (b"e", value(id="u3", values=[0, 0, 0, 1], v=6, __deleted="true")),
        (b"e", value(id="u3", values=[0, 1, 0, 1], v=4)),  # late and older than the delete
        (b"f", value(id="x" * 513, values=[1, 1, 1, 1], v=1)),
        (b"g", value(values=[1, 1, 1, 0], v=1)),
        (b"h", value(id="u4", values=[1, 1, 1, 0])),  # no version
    ]
    run = ingest.run(
        records,
        "--id.strategy=field",
        "--id.field=id",
        "--id.format=raw",
        "--dedup.version-field=v",
        "--pinecone.namespace-template=pinecone_${topic}",
    )
    index = run.snapshot(f"pinecone_{run.topics[0]}")
    assert set(index) == {"u1", "u2"}
    assert index["u1"] == ((1.0, 0.0, 0.0, 0.0), {"id": "u1", "v": 3.0, "name": "three"})
    classes = sorted(dead_letter_headers(m)["kpf.error.class"] for m in run.dead_letters(expected=3))
    assert classes == ["IdTooLongError", "MissingIdError", "MissingVersionError"]


def test_text_records_are_embedded_with_the_packaged_model_and_updates_keep_vectors_in_step(
    ingest: IngestHarness,
) -> None:
    from kafka_pinecone_flink.udfs.embed_model import load_encoder

    rows = [
        {"sku": "s1", "title": "Trail rain jacket", "description": "Waterproof shell", "price": 100},
        {"sku": "s2", "title": "Espresso machine", "description": "Fifteen-bar pump", "price": 300},
        {"sku": "s1", "title": "Trail rain jacket", "description": "Waterproof shell", "price": 80},  # text same
        {"sku": "s2", "title": "Espresso machine", "description": "Steam wand for milk", "price": 300},
        {"sku": "s3", "title": "Desk lamp", "description": "", "price": 20, "values": [0.5] * 384},  # own vector
    ]
    records = [(str(row["sku"]).encode(), json.dumps(row).encode()) for row in rows]
    run = ingest.run(
        records,
        "--id.strategy=field",
        "--id.field=sku",
        "--id.format=raw",
        "--embedding.text-fields=title,description",
        dimension=384,
    )
    index = run.snapshot(run.topics[0])
    assert set(index) == {"s1", "s2", "s3"}
    encoder = load_encoder("default", device="cpu", batch_size=8)
    expected = encoder.encode(["Trail rain jacket\nWaterproof shell", "Espresso machine\nSteam wand for milk"])
    for sku, vector in zip(("s1", "s2"), expected, strict=True):
        got = index[sku][0]
        assert max(abs(a - float(b)) for a, b in zip(got, vector, strict=True)) < 1e-4, sku
    assert index["s1"][1]["price"] == 80.0
    assert index["s2"][1]["description"] == "Steam wand for milk"
    assert index["s3"][0] == tuple([0.5] * 384)


def test_a_record_pinecone_rejects_after_the_jvm_decode_path_is_dead_lettered_with_its_original_value(
    ingest: IngestHarness,
) -> None:
    """The JVM decode path leaves the value out of the change (it is most of such a record); the dead letter reads it
    back from Kafka (``ValueRefetch``), so it is the record as it was produced, headers included."""
    records = [
        (b"k1", value(values=[1, 0, 0, 0], title="a")),
        (b"k2", value(values=[0, 1, 0, 0], title="b"), [("trace", b"t-2")]),
        (b"k3", value(values=[0, 0, 1, 0])),
    ]
    admin = ingest.pinecone_admin
    admin("PUT", "/admin/faults", {"fail_next": [{"kind": "upsert", "count": 1000, "status": 400}]})
    try:
        run = ingest.run(records)  # type: ignore[arg-type]
    finally:
        admin("POST", "/admin/faults/reset")
    dead = {message.key: message for message in run.dead_letters(expected=3)}
    assert set(dead) == {b"k1", b"k2", b"k3"}
    for offset, (key, original, *headers) in enumerate(records):
        message = dead[key]
        context = dead_letter_headers(message)
        assert context["kpf.error.stage"] == "sink", context
        assert context["kpf.source.offset"] == str(offset)
        assert message.value == original, "the value read back from Kafka"
        assert "kpf.refetch.value" not in context and "kpf.truncated" not in context, context
        assert [h for h in message.headers if not h[0].startswith("kpf.")] == (headers[0] if headers else [])
    assert run.snapshot(run.topics[0]) == {}


def test_fail_fast_stops_the_job_with_an_error_naming_the_record(ingest: IngestHarness) -> None:
    records = [(b"k1", value(values=[1, 0, 0, 0])), (b"k2", value(values=[0, 1, 0, 0])), (b"k3", b"{oops")]
    run = ingest.run(
        records,
        "--errors.tolerance=none",
        "--flink.conf=restart-strategy.type=none",
        expect_success=False,
    )
    assert run.result.returncode != 0
    assert f"record {run.topics[0]}[0]@2 rejected in decode: InvalidJsonError" in run.output


def test_fail_fast_in_the_sink_names_the_record_and_leaves_the_group_out_of_the_error(ingest: IngestHarness) -> None:
    """PyFlink wraps a failed async call's error in a message with ``str()`` of its whole input: this group's records,
    2 KB of metadata each, made a 131 KB first line before the line that names the record (udfs.python_worker)."""
    title = "confidential-title-" * 100
    records = [(f"k{i}".encode(), value(values=[1, 0, 0, 0], title=title)) for i in range(50)]
    admin = ingest.pinecone_admin
    admin("PUT", "/admin/faults", {"fail_next": [{"kind": "upsert", "count": 1000, "status": 400}]})
    try:
        run = ingest.run(
            records,  # type: ignore[arg-type]
            "--errors.tolerance=none",
            "--flink.conf=restart-strategy.type=none",
            expect_success=False,
        )
    finally:
        admin("POST", "/admin/faults/reset")
    assert run.result.returncode != 0
    assert re.search(rf"record {re.escape(run.topics[0])}\[0\]@\d+ rejected in sink: PineconeRejectedError", run.output)
    assert re.search(r"during handling input .a group of \d+ items \(content left out\)", run.output), run.output[
        -3000:
    ]
    assert "confidential-title" not in run.output
    assert max(map(len, run.output.splitlines())) < 5_000


def test_a_missing_index_fails_at_start_naming_the_index(ingest: IngestHarness) -> None:
    run = ingest.run([], index=("no-such-index", None), expect_success=False)
    assert run.result.returncode != 0
    assert "'no-such-index' does not exist" in run.output


def test_schema_evolution_none_requires_the_namespace_to_exist(ingest: IngestHarness) -> None:
    run = ingest.run([(b"k", value(values=[1, 0, 0, 0]))], "--schema.evolution=none", expect_success=False)
    assert run.result.returncode != 0
    assert "do not exist" in run.output and run.topics[0] in run.output


def _stream(count: int, ids: int) -> list[tuple[bytes | None, bytes | None]]:
    """Upserts, updates and deletes over ``ids`` ids, deterministic."""
    records: list[tuple[bytes | None, bytes | None]] = []
    for i in range(count):
        key = f"id-{(i * 7) % ids}".encode()
        if i % 11 == 5:
            records.append((key, None))
        else:
            records.append((key, value(values=[1.0, (i % 13) / 13, (i % 5) / 5, 0.5], seq=i, group=f"g{i % 3}")))
    return records


def test_unversioned_changes_of_one_id_apply_in_kafka_order_whichever_decoder_took_each_record(
    ingest: IngestHarness,
) -> None:
    """The JVM decode path takes plain records at once and leaves the others to the Python decoder, whose answers
    come a linger and a Python round trip later; ``SequencedMerge`` (the "Decode order" operator) puts them back in
    their records' order before dedup. Without versions, dedup applies changes in arrival order, so a record the JVM
    took must not overtake an earlier record of its id that Python took: here each id ends on a record the JVM takes
    (a plain object) right after one only Python takes (nested metadata, a tombstone, a delete flag: pinned in
    test_jvm_decode.py), and the index must hold the last record of each."""
    python_only = {
        b"after-nested": value(values=[1, 0, 0, 0], nested={"a": 1}),
        b"after-tombstone": None,
        b"after-delete-flag": value(values=[1, 0, 0, 0], __deleted="true"),
    }
    records: list[tuple[bytes | None, bytes | None]] = []
    for key, earlier in python_only.items():
        records.append((key, value(values=[0, 0, 1, 0], step="first")))  # the JVM's
        records.append((key, earlier))  # Python's
        records.append((key, value(values=[0, 1, 0, 0], step="last")))  # the JVM's, right after it
    # Many ids alternating between the two decoders, so that the JVM's changes run well ahead of Python's.
    for i in range(40):
        key = f"mixed-{i}".encode()
        records.append((key, value(values=[1, 1, 0, 0], nested={"i": i})))
        records.append((key, value(values=[0, 1, 1, 0], step="last")))
    run = ingest.run(records)

    index = run.snapshot(run.topics[0])
    expected = {uuid_for(key): ((0.0, 1.0, 0.0, 0.0), {"step": "last"}) for key in python_only}
    expected.update({uuid_for(f"mixed-{i}".encode()): ((0.0, 1.0, 1.0, 0.0), {"step": "last"}) for i in range(40)})
    assert index == expected
    assert run.dead_letters(expected=0) == []


def test_after_an_injected_failure_mid_stream_the_index_equals_an_undisturbed_runs(
    ingest: IngestHarness,
) -> None:
    records = _stream(4000, 600)
    common = ("--sink.batch-size=20", "--sink.max-retries=1", "--sink.retry-interval-ms=10")
    undisturbed = ingest.run(records, *common)
    expected = undisturbed.snapshot(undisturbed.topics[0])
    assert 300 < len(expected) < 600

    admin = ingest.pinecone_admin
    # The 11th upsert and the five after it fail: mid-stream whatever the host's speed (the stream takes at least
    # 15 upserts: over 300 ids, at most 20 vectors an upsert). Waiting for a vector count first could race a fast job
    # to its end.
    admin("PUT", "/admin/faults", {"fail_next": [{"kind": "upsert", "count": 6, "status": 503, "after": 10}]})
    try:
        disturbed = ingest.run(records, *common)
        failed = admin("GET", "/admin/faults")["counters"]["failed_next"]
    finally:
        admin("POST", "/admin/faults/reset")
    assert failed == 6, failed
    assert "SinkUnavailableError" in disturbed.output, "the injected failure did not fail the job"
    assert disturbed.snapshot(disturbed.topics[0]) == expected
    # The closing summary counts each record once although the disturbed run replayed part of its input: the run
    # totals restart from the restored checkpoint's. Which writes a batch supersedes depends on batch boundaries,
    # so the applied kinds are compared as a sum.
    before, after = _summary(undisturbed.output), _summary(disturbed.output)
    assert before["records in"] == after["records in"] == len(records)
    applied = ("upserted", "updated", "deleted", "superseded")
    assert sum(after[k] for k in applied) == sum(before[k] for k in applied) > 0
    assert (after["skipped"], after["dead-lettered"]) == (before["skipped"], before["dead-lettered"])
    assert "not accounted for" not in undisturbed.output + disturbed.output


def _summary(output: str) -> dict[str, int]:
    """The figures of the job's closing summary (jobs/run_summary.py) in its printed output."""
    start = output.rindex("Run summary (")
    figures = {}
    for line in output[start:].splitlines()[1:]:
        found = re.match(r"  (records in|upserted|updated|deleted|superseded|skipped|dead-lettered) +([\d,]+)", line)
        if found:
            figures[found.group(1)] = int(found.group(2).replace(",", ""))
    assert len(figures) == 7, output[start:]
    return figures


def test_a_second_run_with_the_same_group_resumes_from_the_committed_offsets(ingest: IngestHarness) -> None:
    group = f"resume-{uuid.uuid4().hex[:6]}"
    name, index = ingest.create_index(4)
    first = ingest.run([(b"a", value(values=[1, 0, 0, 0]))], f"--kafka.group-id={group}", index=(name, index))
    assert set(first.snapshot(first.topics[0])) == {uuid_for(b"a")}
    # Remove what the first run wrote: if the second run re-read the topic from the start, "a" would come back.
    index.delete(ids=[uuid_for(b"a")], namespace=first.topics[0])
    from kafka_pinecone_flink.stack.kafka_client import produce

    produce(ingest.broker.bootstrap_servers, first.topics[0], [(b"b", value(values=[0, 1, 0, 0]))])
    second = ingest.run(
        [],
        f"--kafka.topics={first.topics[0]}",
        f"--kafka.group-id={group}",
        "--kafka.starting-position=committed",
        index=(name, index),
    )
    assert set(second.snapshot(first.topics[0])) == {uuid_for(b"b")}


def test_the_jobs_metrics_are_visible_in_the_flink_rest_api(ingest: IngestHarness) -> None:
    records = [(f"k{i}".encode(), value(values=[1, i, 0, 0])) for i in range(40)]
    records += [(b"k1", value(values=[1, 1, 0, 0])), (b"bad", b"{"), (b"k2", value(values=[1, 0, 0, 0], v=0))]
    seen: dict[str, dict[str, float]] = {}
    summaries: list[dict[str, float]] = []

    def read_metrics(job: Any) -> None:
        # Python metrics are reported at bundle ends: read until the whole input has been counted.
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen["decode"] = job.operator_metrics(
                ["Decode JVM", "Decode results"], ["records_in", "decoded", "dead_lettered"]
            )
            seen["sink"] = job.operator_metrics(
                ["Dedup", "Pinecone sink", "Pinecone sink results"],
                ["upserted", "updated", "superseded", "skipped_unchanged", "lag_ms"],
            )
            # kpf status reads the same REST API (the job runs at parallelism 1: one vertex, Dedup included).
            client = RestClient(job.rest_url)
            summaries.append(status.job_summary(client, status.pick_job(client.jobs(), None)["jid"]))
            if seen["decode"]["records_in"] == 43 and seen["sink"]["updated"] == 1:
                return
            time.sleep(0.5)

    ingest.run(records, during=read_metrics, unbounded=True, expect_success=False)
    assert seen["decode"] == {"records_in": 43, "decoded": 42, "dead_lettered": 1}
    assert summaries[-1]["records_in"] == 43.0, summaries[-1]  # not Dedup's 42 again
    assert summaries[-1]["dead_lettered"] == 1.0, summaries[-1]
    # 40 inserts, the unchanged k1 skipped by dedup, k2's update applied. When k2's insert and update meet in one
    # batch, the insert is superseded (one write, the update): each insert is written or superseded, never both.
    sink = {name: int(seen["sink"][name]) for name in ("upserted", "updated", "superseded", "skipped_unchanged")}
    assert sink["upserted"] + sink["superseded"] == 40 and sink["superseded"] <= 1, sink
    assert (sink["updated"], sink["skipped_unchanged"]) == (1, 1), sink
    assert int(seen["sink"]["lag_ms"]) > 0


def test_topic_pattern_namespace_map_random_ids_sparse_values_metadata_fields_and_disabled_deletes(
    ingest: IngestHarness,
) -> None:
    sparse = {"indices": [3, 17], "values": [0.5, 0.25]}
    records = {
        "alpha": [
            (b"a1", value(values=[1, 0, 0, 0], sparse=sparse, title="first", color="red")),
            (b"a1", value(values=[1, 0, 0, 0], sparse=sparse, title="first", color="red")),
            (b"a1", None),  # deletes are disabled: a counted skip, neither a delete nor a dead letter
        ],
        "beta": [(b"b1", value(values=[0, 1, 0, 0], title="second", color="blue"))],
    }
    prefix = f"pattern-{uuid.uuid4().hex[:6]}"
    run = ingest.run(
        {f"{prefix}-alpha": records["alpha"], f"{prefix}-beta": records["beta"]},
        f"--kafka.topic-pattern={prefix}-.*",
        "--id.strategy=none",
        "--delete.enabled=false",
        f"--pinecone.namespace-map=@topic:{prefix}-alpha@=alpha-ns",
        "--vector.sparse-field=sparse",
        "--metadata.fields=title",
        "--sink.linger-ms=5",
        "--sink.batch-size=1",
        metric="dotproduct",
        exact_topic_names=True,
    )
    alpha = run.snapshot("alpha-ns")
    assert len(alpha) == 2, "id strategy none: every record is a new id (insert semantics)"
    assert all(uuid.UUID(record_id).version == 4 for record_id in alpha)
    assert all(metadata == {"title": "first"} for _, metadata in alpha.values())
    fetched = run.index.fetch(ids=list(alpha), namespace="alpha-ns")
    for vector in fetched.vectors.values():
        assert list(vector.sparse_values.indices) == [3, 17]
        assert [round(v, 5) for v in vector.sparse_values.values] == [0.5, 0.25]
    beta = run.snapshot(f"{prefix}-beta")
    assert [metadata for _, metadata in beta.values()] == [{"title": "second"}]
    assert consume(ingest.broker.bootstrap_servers, run.dead_letter_topic, timeout_s=5) == []


@pytest.mark.parametrize("id_format", ["raw", "uuid"])
def test_deletes_whose_key_id_is_not_valid_unicode_are_dead_letters_and_the_job_goes_on(
    ingest: IngestHarness, id_format: str
) -> None:
    # Issue 15: a key holding the JSON string "\ud800" (a lone surrogate escape) used to crash the job: in ids
    # (uuid: UnicodeEncodeError) or in Flink's string coder between Decode and Dedup (raw).
    surrogate_key = b'"\\ud800"'
    records: list[tuple[bytes | None, bytes | None]] = [
        (b"a", value(id="r1", values=[1, 0, 0, 0])),
        (surrogate_key, None),  # tombstone
        (surrogate_key, value(op="d", before=None, after=None)),  # Debezium delete without a before row
        (surrogate_key, value(__deleted="true", values=[1, 0, 0, 0])),  # flattened delete without the id field
        (b"b", value(id="r2", values=[0, 1, 0, 0])),
        (b'"r1"', None),  # a good tombstone after the bad ones: the job is still applying deletes
        (b"c", value(id="r3", values=[0, 0, 1, 0])),
    ]
    run = ingest.run(records, "--id.strategy=field", "--id.field=id", f"--id.format={id_format}")
    assert run.result.returncode == 0, run.output[-3000:]
    expected_ids = {"r2", "r3"} if id_format == "raw" else {uuid_for(b"r2"), uuid_for(b"r3")}
    assert set(run.snapshot(run.topics[0])) == expected_ids
    dead = run.dead_letters(expected=3)
    offsets = sorted(int(dead_letter_headers(message)["kpf.source.offset"]) for message in dead)
    assert offsets == [1, 2, 3]
    for message in dead:
        headers = dead_letter_headers(message)
        assert headers["kpf.error.class"] == "InvalidIdError", headers
        assert "the id is not valid Unicode" in headers["kpf.error.message"]
        assert headers["kpf.error.stage"] == "decode"
        assert message.key == surrogate_key
