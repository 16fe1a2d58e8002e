"""The JVM dedup rules (``io.github.kpf.dedup.Dedup``, build/kpf-flink.jar) called from Python through PyFlink's Java
gateway, in the shape of the test oracle ``udfs.dedup.decide``, so that one behaviour test runs against both."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from py4j.java_gateway import get_field

from kafka_pinecone_flink.udfs.dedup import Action, Decision, DedupState, Version, version_text
from kafka_pinecone_flink.udfs.records import DELETE, Change
from tests.integration.jvm_gateway import kpf_gateway

ACTIONS = {0: Action.EMIT, 1: Action.SKIP_UNCHANGED, 2: Action.SKIP_STALE}


def dedup_package() -> Any:
    """The Java package ``io.github.kpf.dedup`` (the gateway's JVM, with the project's jar on its class path)."""
    return kpf_gateway().jvm.io.github.kpf.dedup


def _version(text: str | None) -> Version:
    if text is None:
        return None
    exact = Decimal(text)
    return int(exact) if exact == exact.to_integral_value() else float(exact)


def _bytes(value: Any) -> bytes | None:
    return None if value is None else bytes(value)


def to_java(jvm: Any, state: DedupState | None) -> Any:
    if state is None:
        return None
    return jvm.DedupState(version_text(state.version), state.content_hash, state.text_hash, state.deleted, state.chunks)


def from_java(state: Any) -> DedupState | None:
    if state is None:
        return None
    return DedupState(
        _version(get_field(state, "version")),
        _bytes(get_field(state, "contentHash")) or b"",
        _bytes(get_field(state, "textHash")),
        bool(get_field(state, "deleted")),
        int(get_field(state, "chunks")),
    )


def jvm_decide(jvm: Any, state: DedupState | None, change: Change) -> Decision:
    """``Dedup.decide`` as the oracle's ``decide``: the decision, and ``change.replaces`` set for an emitted change."""
    got = jvm.Dedup.decide(
        to_java(jvm, state),
        change.op == DELETE,
        version_text(change.version),
        change.content_hash,
        change.text_hash,
        change.chunk_count,
    )
    action = ACTIONS[get_field(got, "action")]
    if action is Action.EMIT:
        change.replaces = bool(get_field(got, "replaces"))
        change.previous_chunks = int(get_field(got, "previousChunks"))
    return Decision(action, from_java(get_field(got, "state")), text_unchanged=bool(get_field(got, "textUnchanged")))
