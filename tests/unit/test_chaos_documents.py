"""The chaos harness's document workload (chaos.documents): its expected chunk sets are the ones the job's own stages
reach (decode with chunking, keyed dedup per document in partition order, the embed stage's chunk operations), and
the verifier reports an orphan chunk, a missing chunk and a chunk with the wrong text."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from chaos.documents import CHUNK_TOKENS, DIMENSION, TEXT_FIELD, generate
from chaos.verify import FoundVector, compare
from chaos.workload import Workload
from kafka_pinecone_flink.udfs.chunking import expand
from kafka_pinecone_flink.udfs.decode import decode
from kafka_pinecone_flink.udfs.dedup import Action, DedupState, decide
from kafka_pinecone_flink.udfs.records import DELETE, SourceRecord
from kafka_pinecone_flink.udfs.route_config import RouteConfig

pytestmark = pytest.mark.unit

TOPICS = ("docs-a", "docs-b")
CONFIG = RouteConfig(
    dimension=DIMENSION,
    metric="cosine",
    id_strategy="field",
    id_field="id",
    id_format="raw",
    version_field="version",
    text_fields=("body",),
    metadata_fields=("id", "version", "title"),
    chunk_tokens=CHUNK_TOKENS,
    chunk_text_field=TEXT_FIELD,
)


@pytest.fixture(scope="module")
def workload() -> Workload:
    return generate(600, seed=3, topics=TOPICS, partitions=2)


def _replay(workload: Workload) -> tuple[dict[str, dict[str, FoundVector]], Counter[Action]]:
    """The index the job's stages leave: decode, dedup per document (per partition, in order), chunk operations."""
    index: dict[str, dict[str, FoundVector]] = {}
    states: dict[str, DedupState] = {}
    actions: Counter[Action] = Counter()
    for (topic, partition), records in workload.by_partition().items():
        for offset, (key, value) in enumerate(records):
            change = decode(SourceRecord(topic, partition, offset, None, key, value), CONFIG)
            assert not isinstance(change, str)
            decision = decide(states.get(change.key), change)  # type: ignore[arg-type]
            actions[decision.action] += 1
            if decision.state is not None:
                states[change.key] = decision.state  # type: ignore[union-attr]
            if decision.action is not Action.EMIT:
                continue
            spans = change.chunk_spans or ()  # type: ignore[union-attr]
            vectors = None if change.op == DELETE else [[0.0] * 2 for _ in spans]  # type: ignore[union-attr]
            for operation in expand(change, vectors, TEXT_FIELD):
                held = index.setdefault(change.namespace, {})  # type: ignore[union-attr]
                if operation.op == DELETE:
                    held.pop(operation.id, None)
                else:
                    held[operation.id] = FoundVector(tuple(operation.values), operation.metadata)
    return index, actions


def test_the_job_stages_reach_exactly_the_expected_chunks(workload: Workload) -> None:
    index, actions = _replay(workload)
    report = compare(workload.expected, index, [], len(workload.records))
    assert report.ok, report.render()
    # The workload exercises what it claims: edits, growth, shrinking, deletes, fencing and duplicates.
    assert {"edit_paragraph", "grow", "shrink", "delete_row", "tombstone", "late_older", "duplicate"} <= set(
        workload.kinds
    )
    assert actions[Action.SKIP_STALE] > 0 and actions[Action.SKIP_UNCHANGED] > 0
    assert report.expected_deleted > 50  # chunk ids that older versions had and the latest has not
    assert len(workload.records) == 600


def test_the_verifier_reports_an_orphan_a_missing_chunk_and_a_wrong_text(workload: Workload) -> None:
    index, _ = _replay(workload)
    namespace = next(n for n in workload.expected.namespaces if workload.expected.deleted.get(n))
    orphan = sorted(workload.expected.deleted[namespace])[0]
    held: dict[str, Any] = dict(index[namespace])
    held[orphan] = FoundVector((0.0,), {})
    present = sorted(held)
    gone, changed = present[0] if present[0] != orphan else present[1], present[-1]
    del held[gone]
    held[changed] = FoundVector(held[changed].values, {**held[changed].metadata, TEXT_FIELD: "older text"})
    report = compare(workload.expected, {**index, namespace: held}, [], len(workload.records))
    assert not report.ok
    assert report.resurrected == [f"{namespace}/{orphan}"]
    assert report.missing == [f"{namespace}/{gone}"]
    assert [entry.split(" ")[0] for entry in report.stale] == [f"{namespace}/{changed}"]


def test_the_document_workload_is_deterministic() -> None:
    assert generate(200, seed=9, topics=TOPICS).records == generate(200, seed=9, topics=TOPICS).records


def test_a_late_record_is_always_older_than_the_newest_version_produced_before_it() -> None:
    # Found by the first real run: a record kept "late" across a tombstone (which carries no version) had the same
    # version as the newest applied one, so the job re-inserted it (equal versions are not stale) while the workload
    # expected it fenced.
    import orjson

    from chaos import documents

    workload = documents.generate(2_000, 42, TOPICS, 4)
    newest: dict[bytes | None, int] = {}
    lates = 0
    for record in workload.records:
        version = None if record.value is None else orjson.loads(record.value).get("version")
        if record.kind == documents.LATE_OLDER:
            lates += 1
            assert version is not None and version < newest[record.key], record.key
        elif version is not None:
            newest[record.key] = max(newest.get(record.key, version), version)
    assert lates > 20
