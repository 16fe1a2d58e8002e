"""The rules between the ingest job's options (exactly one source, ids, vectors, embedding, retries); each error
names the option to change, in the one message format of ``jobs.options`` where a single option is at fault."""

from __future__ import annotations

import re
from pathlib import Path

from kafka_pinecone_flink.jobs.config.table import BY_NAME, EMBEDDING_ONLY
from kafka_pinecone_flink.jobs.options import JobConfigError, Resolved, suggestion


def check_rules(r: Resolved) -> None:
    """``JobConfigError`` naming an option if the resolved values break a rule between options."""
    _check_source(r)
    _check_ids(r)
    _check_vectors(r)
    _check_embedding(r)
    _check_chunking(r)
    _check_retries(r)


def _not_both(r: Resolved, names: str, text: str, expected: str) -> None:
    """``JobConfigError`` if both the list option ``names`` and the string option ``text`` are set."""
    listed, given = r[names], r[text]
    if listed and given is not None:
        raise JobConfigError(
            f"--{names} ({','.join(listed)}) and --{text} ({given!r}) are both set; expected {expected} of them"
        )


def _check_source(r: Resolved) -> None:
    topics, pattern = r["kafka.topics"], r["kafka.topic-pattern"]
    _not_both(r, "kafka.topics", "kafka.topic-pattern", "exactly one")
    if not topics and pattern is None:
        raise JobConfigError(
            "neither --kafka.topics nor --kafka.topic-pattern is set; expected exactly one of them "
            "(e.g. --kafka.topics orders,customers)"
        )
    position, timestamp = r["kafka.starting-position"], r["kafka.starting-timestamp-ms"]
    if position == "timestamp" and timestamp is None:
        raise JobConfigError(
            "--kafka.starting-timestamp-ms is required with --kafka.starting-position timestamp: "
            "the epoch milliseconds to start from"
        )
    if position != "timestamp" and timestamp is not None:
        expected = f"no value unless --kafka.starting-position is timestamp (it is {position})"
        raise r.error(BY_NAME["kafka.starting-timestamp-ms"], expected)
    dead_letter_topic = r["errors.dead-letter-topic"]
    if dead_letter_topic in topics or (pattern is not None and _matches(pattern, dead_letter_topic)):
        raise r.error(
            BY_NAME["errors.dead-letter-topic"],
            "a topic that is not a source topic (dead letters read back would be dead-lettered again, forever)",
        )
    unknown = [topic for topic in r["pinecone.namespace-map"] if topics and topic not in topics]
    if unknown:
        expected = f"only topics of --kafka.topics ({','.join(topics)}) as keys{suggestion(unknown[0], topics)}"
        raise r.error(BY_NAME["pinecone.namespace-map"], expected, value=unknown[0])


def _matches(pattern: str, topic: str) -> bool:
    """Whether the (Java) topic pattern matches ``topic`` as a whole; False if Python's ``re`` cannot read it."""
    try:
        return re.fullmatch(pattern, topic) is not None
    except re.error:
        return False


def _check_ids(r: Resolved) -> None:
    strategy = r["id.strategy"]
    if strategy == "field" and r["id.field"] is None:
        raise JobConfigError(
            "--id.field is required with --id.strategy field: the field of the value that holds the id"
        )
    if strategy != "field" and r["id.field"] is not None:
        raise r.error(BY_NAME["id.field"], f"no value unless --id.strategy is field (it is {strategy})")
    if strategy == "none":
        if "id.format" in r.given:
            raise r.error(BY_NAME["id.format"], "no value with --id.strategy none (ids are random UUIDs)")
        if r["delete.enabled"]:
            raise JobConfigError(
                "--id.strategy none cannot be used with --delete.enabled true: under 'none' every record gets a "
                "random id, so a tombstone or a Debezium delete cannot address the record it should remove. Set "
                "--delete.enabled false (deletes are then skipped and counted), or use --id.strategy kafka or field"
            )


def _check_embedding(r: Resolved) -> None:
    _not_both(r, "embedding.text-fields", "embedding.text-template", "at most one")
    if not r["embedding.text-fields"] and r["embedding.text-template"] is None:
        for name in EMBEDDING_ONLY:
            if name in r.given:
                raise r.error(
                    BY_NAME[name],
                    "no value while embedding is off: set --embedding.text-fields or --embedding.text-template to "
                    "turn it on",
                )


def _check_chunking(r: Resolved) -> None:
    tokens = r["chunking.tokens"]
    if not tokens:
        for name in ("chunking.overlap", "chunking.text-field"):
            if name in r.given:
                raise r.error(BY_NAME[name], "no value while chunking is off: set --chunking.tokens to turn it on")
        return
    if r["chunking.overlap"] >= tokens:
        raise r.error(BY_NAME["chunking.overlap"], f"fewer word pieces than --chunking.tokens ({tokens})")
    model = _model_path(r["embedding.model"])
    if model is None:  # the model option's own check reports a missing model
        return
    if not (model / "tokenizer.json").is_file():
        expected = "a model with a fast tokenizer (tokenizer.json), which chunking counts word pieces with"
        raise r.error(BY_NAME["embedding.model"], expected)
    from kafka_pinecone_flink.udfs.chunking import max_chunk_tokens

    most = max_chunk_tokens(model)
    if most is not None and tokens > most:
        expected = f"at most {most}: the window of {r['embedding.model']!r} less its 2 special word pieces"
        raise r.error(BY_NAME["chunking.tokens"], expected)


def _model_path(model: str) -> Path | None:
    from kafka_pinecone_flink.udfs.embed_model import ModelNotFoundError, resolve_model_path

    try:
        return resolve_model_path(model)
    except (ModelNotFoundError, ValueError):
        return None


def _check_vectors(r: Resolved) -> None:
    vector, sparse = r["vector.field"], r["vector.sparse-field"]
    if sparse == vector:
        raise r.error(BY_NAME["vector.sparse-field"], f"a field other than --vector.field ({vector!r})")
    metadata = r["metadata.fields"]
    if metadata is not None and (vector in metadata or (sparse is not None and sparse in metadata)):
        expected = "fields other than the vector fields (--vector.field, --vector.sparse-field)"
        raise r.error(BY_NAME["metadata.fields"], expected)


def _check_retries(r: Resolved) -> None:
    interval = r["sink.retry-interval-ms"]
    if r["sink.max-retry-interval-ms"] < interval:
        raise r.error(BY_NAME["sink.max-retry-interval-ms"], f"at least --sink.retry-interval-ms ({interval})")
