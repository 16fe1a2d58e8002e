"""``kpf dlq replay``: re-produce dead letters to their source topic (or ``--to`` another), fixed on the way.

Policy: the whole dead-letter topic is read from its beginning to its end (as it is when the command starts); the
records matching every given filter are selected; each is fixed (``--set`` first, then ``--transform``) and only if
every selected record could be fixed is anything produced. A replayed record keeps its original key, value (unless
fixed) and headers, without the ``kpf.*`` headers the job added. Nothing is committed or deleted in the dead-letter
topic: a second replay re-sends the same records, which the job's dedup skips when they are unchanged (their content
hash is in its state). Dead letters that exist but match no filter are an error (exit 1, naming the error classes
the topic holds), so a mistyped ``--error-class`` never passes for a replay; an empty dead-letter topic is nothing to
do (exit 0). ``--transform MODULE:FUNCTION`` imports MODULE, which runs its top-level code (also with ``--dry-run``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import importlib
import importlib.util
import logging
import math
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import orjson

from kafka_pinecone_flink.jobs.cli_errors import EXIT_OK, CommandError, UsageError
from kafka_pinecone_flink.jobs.masking import masked_text

DEFAULT_DEAD_LETTER_TOPIC = "pinecone-dead-letter"
"""The job's default ``errors.dead-letter-topic`` (jobs.config is not imported for it: that import is slow)."""
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DLQ_READ_TIMEOUT_S = 60.0
"""Longest time to read the dead-letter topic to its end."""
KAFKA_CONNECT_TIMEOUT_S = 10.0
"""Longest wait for the Kafka cluster's first answer (its metadata); at most --timeout-s."""
POLL_TIMEOUT_S = 0.5
PRODUCE_TIMEOUT_S = 60.0


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text.split('=')[0]!r}...")
    return key, value


def _positive_seconds(text: str) -> float:
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return seconds


def _set_item(text: str) -> tuple[list[str], Any]:
    """``--set KEY=JSON``: a dotted path into the value and the parsed JSON to put there."""
    key, raw = _key_value(text)
    path = key.split(".")
    if any(not part for part in path):
        raise argparse.ArgumentTypeError(f"--set {key!r}: expected a field name or a dotted path such as after.title")
    try:
        return path, orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise argparse.ArgumentTypeError(
            f"--set {key}: the value must be JSON (a string needs quotes: {key}='\"text\"')"
        ) from None


Transform = Callable[[Any], Any]


def _frame_in(exc: BaseException, filename: str | None) -> str:
    """`` (FILE, line N)`` of the innermost frame of ``exc``'s traceback in ``filename`` (the user's module), or of
    the innermost frame at all when ``filename`` is unknown; ``""`` without a traceback."""
    found = ""
    tb = exc.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if filename is None or code.co_filename == filename:
            found = f" ({code.co_filename}, line {tb.tb_lineno})"
        tb = tb.tb_next
    return found


def _load_transform(spec: str) -> Transform:
    """The ``--transform MODULE:FUNCTION`` hook. Importing the module runs its top-level code; any failure there is
    a usage error naming the module, the file and the line."""
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise UsageError(f"--transform {spec!r}: expected module:function")
    # A hook module next to where kpf is called from is found, after the project's own packages (the kpf launcher
    # keeps the current directory off the path, so that it cannot shadow them).
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except SyntaxError as exc:  # the module's own text: file, line and what Python could not read
        raise UsageError(
            f"--transform {spec!r}: {type(exc).__name__} in {exc.filename}, line {exc.lineno}: {exc.msg}"
        ) from None
    except ImportError as exc:
        raise UsageError(f"--transform {spec!r}: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - the module's top-level code is the user's: any failure is named
        where = _frame_in(exc, _module_file(module_name))
        raise UsageError(
            f"--transform {spec!r}: importing {module_name} raised {type(exc).__name__}: {exc}{where}"
        ) from None
    function = getattr(module, function_name, None)
    if function is None:
        raise UsageError(f"--transform {spec!r}: module {module_name!r} ({module.__file__}) has no {function_name!r}")
    if not callable(function):
        raise UsageError(f"--transform {spec!r} is not callable")
    return function


def _module_file(module_name: str) -> str | None:
    with contextlib.suppress(ImportError, ValueError, AttributeError):
        found = importlib.util.find_spec(module_name)
        return None if found is None else found.origin
    return None


_PAIR = "None or a (key, value) pair of bytes or None"


def _shape(value: Any) -> str:
    if isinstance(value, tuple | list):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


def _checked_result(result: Any, spec: str, function: Transform) -> tuple[bytes | None, bytes | None] | None:
    """The hook's result if it has the promised shape, else ``CommandError`` saying what came back and what was
    expected."""
    if result is None:
        return None
    problem = None
    if not isinstance(result, tuple | list) or len(result) != 2:
        problem = _shape(result)
    else:
        for part, item in zip(("key", "value"), result, strict=True):
            if item is not None and not isinstance(item, bytes | bytearray):
                problem = f"a {type(item).__name__} as the {part}{' (encode it)' if isinstance(item, str) else ''}"
                break
    if problem is None:
        key, value = result
        return (None if key is None else bytes(key)), (None if value is None else bytes(value))
    code = getattr(function, "__code__", None)
    where = f" ({code.co_filename}, line {code.co_firstlineno})" if code is not None else ""
    raise CommandError(f"--transform {spec!r} returned {problem}{where}; expected {_PAIR}")


def _apply_sets(value: bytes | None, sets: Sequence[tuple[list[str], Any]], where: str) -> bytes | None:
    try:
        document = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        document = None
    if not isinstance(document, dict):
        raise CommandError(f"{where}: the value is not a JSON object, --set cannot change it (use --transform)")
    for path, new in sets:
        target = document
        for part in path[:-1]:
            child = target.get(part)
            if not isinstance(child, dict):
                child = target[part] = {}
            target = child
        target[path[-1]] = new
    return orjson.dumps(document)


@dataclasses.dataclass(frozen=True)
class Replay:
    """One record to re-produce."""

    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    origin: Any  # udfs.records.DeadLetter


_LIBRDKAFKA_LOG = logging.getLogger("kpf.librdkafka")
"""Where librdkafka's log lines go instead of stderr (a broker that is down makes it log every retry): nowhere.
What went wrong is reported once, from the client's errors."""
_LIBRDKAFKA_LOG.addHandler(logging.NullHandler())
_LIBRDKAFKA_LOG.propagate = False


class KafkaClients:
    """The Kafka clients of one replay: the settings, librdkafka kept quiet, and its errors kept to explain a
    failure in one line. ``UsageError`` for settings the client refuses (values hidden) and for a cluster that
    cannot be reached in ``connect_timeout_s``."""

    def __init__(self, servers: str, properties: Sequence[tuple[str, str]], connect_timeout_s: float) -> None:
        self.servers = servers
        self.connect_timeout_s = connect_timeout_s
        self.errors: list[Any] = []
        self._hidden = [value for _, value in properties]
        self.config: dict[str, Any] = {
            "bootstrap.servers": servers,
            **dict(properties),
            "logger": _LIBRDKAFKA_LOG,
            "error_cb": self.errors.append,
        }

    def _text(self, error: Any) -> str:
        text = error.str() if hasattr(error, "str") else str(error)
        return masked_text(text, self._hidden)  # --property values are never printed, even in librdkafka's words

    def create(self, kind: Callable[[dict[str, Any]], Any], **extra: Any) -> Any:
        from confluent_kafka import KafkaException

        try:
            return kind({**self.config, **extra})
        except KafkaException as exc:
            raise UsageError(f"invalid Kafka client setting: {self._text(exc.args[0])}") from None

    def metadata(self, client: Any, topic: str | None = None) -> Any:
        """The cluster's metadata (of ``topic`` only, when given), or ``UsageError`` naming why it cannot be had."""
        from confluent_kafka import KafkaException

        try:
            return client.list_topics(topic, timeout=self.connect_timeout_s)
        except KafkaException as exc:
            client.poll(0)  # serves the error callback: the first error says why (refused, unknown host, TLS...)
            raise UsageError(f"cannot reach Kafka at {self.servers}: {self.reason(exc.args[0])}") from None

    def reason(self, fallback: Any = None) -> str:
        """The first error the client reported (the cause; later ones are its consequences), else ``fallback``."""
        first = self.errors[0] if self.errors else fallback
        return "no answer" if first is None else self._text(first)


def _kafka_clients(args: argparse.Namespace) -> KafkaClients:
    return KafkaClients(args.bootstrap_servers, args.property, min(args.timeout_s, KAFKA_CONNECT_TIMEOUT_S))


def read_dead_letters(clients: KafkaClients, topic: str, timeout_s: float) -> list[tuple[Any, Any]]:
    """Every record of ``topic`` from the beginning to the end it has when called: ``(message, DeadLetter | None)``;
    None for a record that is not a dead letter."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition

    from kafka_pinecone_flink.sinks.dead_letter import from_kafka

    consumer = clients.create(
        Consumer,
        **{
            "group.id": f"kpf-dlq-replay-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "isolation.level": "read_committed",
        },
    )
    try:
        metadata = clients.metadata(consumer, topic)
        partitions = metadata.topics[topic].partitions if topic in metadata.topics else {}
        if not partitions or metadata.topics[topic].error is not None:
            raise CommandError(f"dead-letter topic {topic!r} does not exist")
        pending = set(partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        records: list[tuple[Any, Any]] = []
        deadline = time.monotonic() + timeout_s
        while pending:
            if time.monotonic() > deadline:
                last = f" (Kafka at {clients.servers}: {clients.reason()})" if clients.errors else ""
                raise CommandError(f"did not reach the end of {topic!r} in {timeout_s:.0f}s{last}")
            message = consumer.poll(POLL_TIMEOUT_S)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
                    continue
                raise CommandError(f"reading {topic!r}: {clients.reason(error)}")
            try:
                headers: Any = message.headers() or []
                dead_letter = from_kafka(message.key(), message.value(), headers)
            except ValueError:
                dead_letter = None
            records.append((message, dead_letter))
        return records
    finally:
        consumer.close()


def _selected(dead_letter: Any, args: argparse.Namespace) -> bool:
    return (
        (not args.error_class or dead_letter.error_class in args.error_class)
        and (args.stage is None or dead_letter.stage == args.stage)
        and (args.source_topic is None or dead_letter.source.topic == args.source_topic)
    )


def plan_replay(dead_letters: Sequence[Any], args: argparse.Namespace) -> list[Replay]:
    """The records to produce for the selected dead letters, fixed; ``CommandError`` if any cannot be fixed."""
    from kafka_pinecone_flink.sinks.dead_letter import HEADER_PREFIX

    transform = _load_transform(args.transform) if args.transform else None
    plan: list[Replay] = []
    transform_file = getattr(getattr(transform, "__code__", None), "co_filename", None)
    for dead_letter in dead_letters:
        source = dead_letter.source
        where = f"dead letter of {source.coordinates}"
        key, value = source.key, source.value
        if args.set:
            value = _apply_sets(value, args.set, where)
        if transform is not None:
            fixed = dataclasses.replace(dead_letter, source=dataclasses.replace(source, value=value))
            try:
                result = transform(fixed)
            except Exception as exc:  # noqa: BLE001 - a user's hook: any failure stops the replay, named
                line = _frame_in(exc, transform_file)
                raise CommandError(f"{where}: --transform raised {type(exc).__name__}: {exc}{line}") from None
            try:
                checked = _checked_result(result, args.transform, transform)
            except CommandError as exc:
                raise CommandError(f"{where}: {exc}") from None
            if checked is None:
                continue  # the hook leaves this record out
            key, value = checked
        headers = [(name, data) for name, data in source.headers if not name.startswith(HEADER_PREFIX)]
        plan.append(Replay(args.to or source.topic, key, value, headers, dead_letter))
    return plan


def missing_topics(clients: KafkaClients, topics: Sequence[str]) -> list[str]:
    """Those of ``topics`` the cluster does not have (a replay would wait for them until its records expire)."""
    from confluent_kafka import Producer

    producer = clients.create(Producer)
    metadata = clients.metadata(producer)
    return sorted(t for t in set(topics) if t not in metadata.topics or metadata.topics[t].error is not None)


def produce_replays(clients: KafkaClients, plan: Sequence[Replay]) -> None:
    from confluent_kafka import Producer

    producer = clients.create(Producer, **{"enable.idempotence": True})
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(clients.reason(err) if not clients.errors else str(err.str()))

    for replay in plan:
        headers: Any = replay.headers  # confluent-kafka's stubs want str | bytes values; None is allowed at run time
        producer.produce(replay.topic, key=replay.key, value=replay.value, headers=headers, on_delivery=delivered)
        producer.poll(0)
    remaining = producer.flush(PRODUCE_TIMEOUT_S)
    if errors or remaining:
        cause = errors[0] if errors else f"Kafka at {clients.servers}: {clients.reason()}"
        raise CommandError(
            f"replay failed: {remaining + len(errors)} of {len(plan)} record(s) not delivered in "
            f"{PRODUCE_TIMEOUT_S:.0f}s; first error: {cause}"
        )


def _error_classes(dead_letters: Sequence[Any]) -> str:
    counts = Counter(dead_letter.error_class for dead_letter in dead_letters)
    return ", ".join(f"{name} ({count})" for name, count in sorted(counts.items()))


def _no_match(dead_letters: Sequence[Any], args: argparse.Namespace) -> str:
    """Why nothing was selected: the filters, what the topic holds, and the closest error class to a given one."""
    filters = [f"--error-class {name}" for name in args.error_class]
    filters += [f"--stage {args.stage}"] if args.stage else []
    filters += [f"--source-topic {args.source_topic}"] if args.source_topic else []
    classes = sorted({dead_letter.error_class for dead_letter in dead_letters})
    hints = [
        f" (did you mean {close[0]}?)"
        for name in args.error_class
        if name not in classes and (close := difflib.get_close_matches(name, classes, n=1))
    ]
    sources = sorted({dead_letter.source.topic for dead_letter in dead_letters})
    return (
        f"no dead letter matched the filter ({' '.join(filters)}){''.join(hints[:1])}: {args.topic} holds "
        f"{len(dead_letters)} dead letter(s) of error classes {_error_classes(dead_letters)}; stages "
        f"{', '.join(sorted({d.stage for d in dead_letters}))}; source topics {', '.join(sources)}"
    )


def cmd_dlq_replay(args: argparse.Namespace, _: list[str]) -> int:
    if args.to is not None and args.to == args.topic:
        raise UsageError("--to must not be the dead-letter topic itself (records would loop)")
    if args.transform:
        _load_transform(args.transform)  # a bad hook is a usage error, found before anything is read
    clients = _kafka_clients(args)
    records = read_dead_letters(clients, args.topic, args.timeout_s)
    dead_letters = [dead_letter for _, dead_letter in records if dead_letter is not None]
    not_dead_letters = len(records) - len(dead_letters)
    if not_dead_letters:
        print(f"{not_dead_letters} record(s) of {args.topic} are not dead letters (no kpf.* headers): left out")
    if not dead_letters:
        print(f"no dead letters in {args.topic}: nothing to replay")
        return EXIT_OK
    selected = [dead_letter for dead_letter in dead_letters if _selected(dead_letter, args)]
    if not selected:
        # Not a success: a mistyped --error-class would otherwise look like a replay that had nothing to do.
        raise CommandError(_no_match(dead_letters, args))
    plan = plan_replay(selected, args)
    if not plan:
        print(
            f"nothing to replay: --transform left out all {len(selected)} selected dead letter(s) "
            f"(of {len(dead_letters)} in {args.topic})"
        )
        return EXIT_OK
    missing = missing_topics(clients, [replay.topic for replay in plan])
    if missing:
        raise CommandError(
            f"topic(s) {', '.join(missing)} do not exist on Kafka at {clients.servers}: create them, or replay to "
            "another topic with --to (nothing was produced)"
        )
    if args.dry_run:
        for replay in plan:
            origin = replay.origin
            print(
                f"{origin.source.coordinates} {origin.error_class} ({origin.stage}): {origin.message} -> {replay.topic}"
            )
        print(f"{len(plan)} of {len(dead_letters)} dead letter(s) would be replayed (dry run: nothing produced)")
        return EXIT_OK
    produce_replays(clients, plan)
    per_topic = Counter(replay.topic for replay in plan)
    where = ", ".join(f"{topic} ({count})" for topic, count in sorted(per_topic.items()))
    print(f"replayed {len(plan)} of {len(dead_letters)} dead letter(s) to {where}")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Add ``dlq replay`` to the ``kpf`` subcommands."""
    dlq = commands.add_parser("dlq", help="work with the dead-letter topic", allow_abbrev=False)
    dlq_commands = dlq.add_subparsers(dest="dlq_command", required=True, metavar="COMMAND")
    replay = dlq_commands.add_parser(
        "replay",
        help="re-produce dead letters to their source topic",
        description="Read the dead-letter topic to its end, select dead letters by the filters, fix them (--set, "
        "then --transform) and re-produce their original key, value and headers (without kpf.* headers) to the "
        "topic they came from, or to --to. Nothing is produced unless every selected record could be fixed.",
        epilog="--transform MODULE:FUNCTION imports and runs MODULE (as Python's import does: its top-level code "
        "runs, even with --dry-run; only name a module you trust), then calls FUNCTION(dead_letter) for each selected "
        "record with a udfs.records.DeadLetter (its source.value already changed by --set); it returns (key, value) "
        "as bytes or None to replay, or None to leave the record out. Exit codes: 0 replayed (or nothing to replay: "
        "an empty dead-letter topic, or a --transform that left every record out), 1 a failure, also when dead "
        "letters exist but none matched the filters, 2 a usage error, a bad --transform module, a Kafka setting "
        "the client refuses or a cluster that cannot be reached (in at most 10 s).",
        allow_abbrev=False,
    )
    replay.add_argument("--bootstrap-servers", default=DEFAULT_BOOTSTRAP_SERVERS, help="(default: %(default)s)")
    replay.add_argument("--topic", default=DEFAULT_DEAD_LETTER_TOPIC, help="dead-letter topic (default: %(default)s)")
    replay.add_argument(
        "--property",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Kafka client property (security settings), repeatable; values are never printed",
    )
    replay.add_argument("--error-class", action="append", default=[], help="select this error class (repeatable)")
    replay.add_argument("--stage", choices=("decode", "dedup", "embed", "sink"), help="select this stage")
    replay.add_argument("--source-topic", help="select dead letters of this source topic")
    replay.add_argument(
        "--set",
        type=_set_item,
        action="append",
        default=[],
        metavar="KEY=JSON",
        help="set a field (dotted path) of the JSON value, e.g. --set 'values=[0.1,0.2]', repeatable",
    )
    replay.add_argument(
        "--transform",
        metavar="MODULE:FUNCTION",
        help="fix each record with this function; imports and runs MODULE, even with --dry-run (see below)",
    )
    replay.add_argument("--to", help="produce to this topic instead of each record's source topic")
    replay.add_argument("--dry-run", action="store_true", help="list what would be replayed; produce nothing")
    replay.add_argument(
        "--timeout-s",
        type=_positive_seconds,
        default=DLQ_READ_TIMEOUT_S,
        help="longest time to read the dead-letter topic to its end; the wait for Kafka's first answer is at most "
        f"{KAFKA_CONNECT_TIMEOUT_S:.0f} s of it (default: %(default)s)",
    )
    replay.set_defaults(func=cmd_dlq_replay)
