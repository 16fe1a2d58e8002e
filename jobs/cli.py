"""``kpf``: the users' command line (also ``python -m jobs.cli``).

    kpf run [--print-flink-run] JOB-OPTIONS      run the ingest job here (a Flink mini-cluster), or print the
                                                 ``flink run`` command that submits it to a cluster
    kpf run --resume-from-latest JOB-OPTIONS     the same, resumed from the run's newest complete checkpoint
    kpf checkpoints [--run-dir DIR]              list a run's checkpoints, newest complete one first
    kpf validate JOB-OPTIONS                     load and check a configuration; print it, secrets masked
    kpf stack start|stop|status                  the local Kafka broker and Pinecone-compatible server (in .run/)
    kpf status [--rest-url URL] [--job ID]       a running job's state and key metrics, from the Flink REST API
    kpf dlq replay [filters] [fixes] [--dry-run] re-produce dead letters to their source topic (or --to TOPIC)

Exit codes everywhere: 0 ok, 1 runtime failure (a process, broker, server or job failed), 2 usage or configuration
error, including an address where nothing answers (``cannot reach Kafka at X``, ``cannot reach the Flink REST API at
X``, after a bounded wait). Errors are one line (``kpf: error: ...``), never a traceback. Secrets (the Pinecone API
key, secret Kafka properties and Flink settings, credentials inside URLs) are never printed: ``validate`` masks them
and ``--print-flink-run`` shows them as ``***``.

Dead-letter replay policy: the whole dead-letter topic is read from its beginning to its end (as it is when the
command starts); the records matching every given filter are selected; each is fixed (``--set`` first, then
``--transform``) and only if every selected record could be fixed is anything produced. A replayed record keeps its
original key, value (unless fixed) and headers, without the ``kpf.*`` headers the job added. Nothing is committed or
deleted in the dead-letter topic: a second replay re-sends the same records, which the job's dedup skips when they
are unchanged (their content hash is in its state). Dead letters that exist but match no filter are an error (exit
1, naming the error classes the topic holds), so a mistyped ``--error-class`` never passes for a replay; an empty
dead-letter topic is nothing to do (exit 0). ``--transform MODULE:FUNCTION`` imports MODULE, which runs its top-level
code (also with ``--dry-run``).
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
import shlex
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

import orjson

from kafka_pinecone_flink.jobs.masking import MASK, mask_urls, masked_setting, masked_text
from kafka_pinecone_flink.stack.paths import ROOT, RUN_DIR

PROG = "kpf"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
DEFAULT_REST_URL = "http://127.0.0.1:8081"
DEFAULT_DEAD_LETTER_TOPIC = "pinecone-dead-letter"
"""The job's default ``errors.dead-letter-topic`` (jobs.config is not imported for it: that import is slow)."""
DEFAULT_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_KAFKA_PORT = 9092
DEFAULT_KAFKA_CONTROLLER_PORT = 9093
DEFAULT_PINECONE_PORT = 5080
DLQ_READ_TIMEOUT_S = 60.0
"""Longest time to read the dead-letter topic to its end."""
REST_CONNECT_TIMEOUT_S = 5.0
KAFKA_CONNECT_TIMEOUT_S = 10.0
"""Longest wait for the Kafka cluster's first answer (its metadata); at most --timeout-s."""
POLL_TIMEOUT_S = 0.5
PRODUCE_TIMEOUT_S = 60.0
SETTING_FLAGS = ("--kafka.property", "--flink.conf")
"""Job options whose values are KEY=VALUE settings, some of them secret by their key."""
DECODE_VERTEX = "Decode"
SKIPPED_PREFIX = "skipped_"
STATUS_COUNTERS = (
    ("records in", "records_in"),
    ("upserted", "upserted"),
    ("updated", "updated"),
    ("deleted", "deleted"),
    ("dead-lettered", "dead_lettered"),
    ("skipped", SKIPPED_PREFIX),
)


class UsageError(Exception):
    """A usage or configuration error: exit 2."""


class CommandError(Exception):
    """A runtime failure: exit 1."""


def _fail(message: str, code: int) -> int:
    # Every error goes through here: the credentials of any URL it quotes (a --rest-url, a broker address, a token
    # endpoint in a client's message) are masked.
    print(f"{PROG}: error: {mask_urls(message)}", file=sys.stderr)
    return code


# --- run and validate -------------------------------------------------------------------------------------------------


class _JobOptionsHelp(argparse.Action):
    """``-h``/``--help`` of ``run`` and ``validate``: the subcommand's own flags, then every job option."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_: Any, **__: Any) -> NoReturn:
        from kafka_pinecone_flink.jobs.config import parser as job_parser

        parser.print_help()
        print("\njob options (the same as python -m kafka_pinecone_flink.jobs.ingest_job):")
        job_help = job_parser().format_help()
        print(job_help[job_help.find("\n\n") + 2 :] if "\n\n" in job_help else job_help)
        parser.exit(EXIT_OK)


def _load_config(job_args: Sequence[str]) -> Any:
    from kafka_pinecone_flink.jobs.config import JobConfigError, load_job_config

    try:
        return load_job_config(job_args, os.environ)
    except JobConfigError as exc:
        raise UsageError(str(exc)) from None


def _masked(job_args: Sequence[str], secrets: Sequence[str]) -> tuple[list[str], bool]:
    """``job_args`` with every secret value and every credential inside a URL replaced by ``***``, and whether any
    was."""
    masked: list[str] = []
    for arg in job_args:
        flag, sep, setting = arg.partition("=")
        if masked and masked[-1] in SETTING_FLAGS and not arg.startswith("-"):  # --kafka.property KEY=VALUE
            arg = masked_setting(arg)
        elif sep and flag in SETTING_FLAGS:  # --kafka.property=KEY=VALUE
            arg = f"{flag}={masked_setting(setting)}"
        masked.append(masked_text(arg, secrets))
    return masked, masked != list(job_args)


def _latest_checkpoint(args: argparse.Namespace, config: Any) -> Any:
    """``--resume-from-latest``: the newest complete checkpoint of the run's checkpoint directory, printed."""
    from kafka_pinecone_flink.jobs.checkpoints import (
        RECOVERY_SETTING,
        CheckpointError,
        checkpoint_dir,
        latest_checkpoint,
    )

    if args.savepoint:
        raise UsageError("--resume-from-latest and --savepoint both name where to resume from: give one of them")
    if RECOVERY_SETTING in config.flink.conf:
        raise UsageError(
            f"--resume-from-latest and --flink.conf={RECOVERY_SETTING}=... both name where to resume from: give one "
            "of them"
        )
    try:
        directory = (
            Path(args.checkpoint_dir)
            if args.checkpoint_dir
            else checkpoint_dir(Path(config.flink.run_dir), config.flink.conf)
        )
        checkpoint = latest_checkpoint(directory)
    except CheckpointError as exc:
        raise UsageError(str(exc)) from None
    print(f"{PROG}: resuming from the latest complete checkpoint: {checkpoint.describe()}", flush=True)
    return checkpoint


def cmd_run(args: argparse.Namespace, job_args: list[str]) -> int:
    from kafka_pinecone_flink.jobs.checkpoints import RECOVERY_SETTING

    resume_from = _latest_checkpoint(args, _load_config(job_args)) if args.resume_from_latest else None
    if not args.print_flink_run:
        from kafka_pinecone_flink.jobs.ingest_job import main as run_job

        if resume_from is not None:
            job_args = [*job_args, f"--flink.conf={RECOVERY_SETTING}={resume_from.uri}"]
        return run_job(job_args)
    from kafka_pinecone_flink.stack.cluster import ARCHIVE_NAME, build_job_archive, flink_run_command

    config = _load_config(job_args)
    archive = build_job_archive(Path(args.archive) if args.archive else Path(config.flink.run_dir) / ARCHIVE_NAME)
    shown, masked = _masked(job_args, config.secrets())
    savepoint = resume_from.uri if resume_from is not None else args.savepoint
    print(shlex.join(flink_run_command(shown, archive=archive, savepoint=savepoint, flink=args.flink)))
    if masked:
        print(f"{PROG}: secret values are shown as {MASK}: put them in a --config file instead", file=sys.stderr)
    return EXIT_OK


def cmd_validate(_: argparse.Namespace, job_args: list[str]) -> int:
    config = _load_config(job_args)
    print("configuration is valid:")
    for item in dataclasses.fields(config):
        print(f"  {item.name}: {masked_text(repr(getattr(config, item.name)), config.secrets())}")
    return EXIT_OK


def cmd_checkpoints(args: argparse.Namespace, _: list[str]) -> int:
    from kafka_pinecone_flink.jobs.checkpoints import checkpoint_dir, find_checkpoints

    directory = Path(args.checkpoint_dir) if args.checkpoint_dir else checkpoint_dir(Path(args.run_dir), {})
    found = find_checkpoints(directory)
    for checkpoint in found:
        print(checkpoint.describe())
    if not any(checkpoint.complete for checkpoint in found):
        print(f"no complete checkpoint under {directory}", file=sys.stderr)
        return EXIT_FAILURE
    return EXIT_OK


# --- stack ------------------------------------------------------------------------------------------------------------


def _broker(args: argparse.Namespace) -> Any:
    from kafka_pinecone_flink.stack.kafka import KafkaBroker

    return KafkaBroker(Path(args.dir) / "kafka", port=args.kafka_port, controller_port=args.kafka_controller_port)


def _pinecone_files(args: argparse.Namespace) -> dict[str, str]:
    directory = Path(args.dir)
    return {
        "--pid-file": str(directory / "pinecone.pid"),
        "--log-file": str(directory / "pinecone.log"),
        "--data-dir": str(directory / "pinecone"),
    }


def _pinecone_url(args: argparse.Namespace) -> str:
    return f"http://127.0.0.1:{args.pinecone_port}"


def cmd_stack(args: argparse.Namespace, _: list[str]) -> int:
    from kafka_pinecone_flink.pinecone_local.cli import is_healthy
    from kafka_pinecone_flink.pinecone_local.cli import main as pinecone_local
    from kafka_pinecone_flink.stack.paths import MissingPrerequisiteError

    broker = _broker(args)
    files = _pinecone_files(args)
    if args.action == "status":
        kafka_up = broker.pid() is not None and broker.is_ready()
        pinecone_up = is_healthy(_pinecone_url(args))
        print(f"Kafka broker at {broker.bootstrap_servers}: {'ready' if kafka_up else 'not running'}")
        print(f"Pinecone-compatible server at {_pinecone_url(args)}: {'ready' if pinecone_up else 'not running'}")
        return EXIT_OK if kafka_up and pinecone_up else EXIT_FAILURE
    if args.action == "stop":
        broker.stop()
        print("Kafka broker stopped")
        if Path(files["--pid-file"]).exists():
            pinecone_local(["stop", "--pid-file", files["--pid-file"]])
        return EXIT_OK
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    started_broker = broker.pid() is None
    try:
        seconds = broker.start()
    except (MissingPrerequisiteError, RuntimeError) as exc:
        raise CommandError(f"the Kafka broker did not start: {exc}") from None
    print(f"Kafka broker ready at {broker.bootstrap_servers} ({seconds:.1f}s; log: {broker.log_file})")
    if is_healthy(_pinecone_url(args)):
        print(f"Pinecone-compatible server already running at {_pinecone_url(args)}")
        return EXIT_OK
    # The server runs as `python -m pinecone_local`: make the package importable from any working directory.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    argv = ["start", "--port", str(args.pinecone_port), *(part for item in files.items() for part in item)]
    if pinecone_local(argv) != 0:
        if started_broker:
            broker.stop()  # leave nothing half-started behind
        raise CommandError(f"the Pinecone-compatible server did not start (log: {files['--log-file']})")
    return EXIT_OK


# --- status -----------------------------------------------------------------------------------------------------------


def _pick_job(jobs: list[dict[str, Any]], job_id: str | None) -> dict[str, Any]:
    if job_id is not None:
        for job in jobs:
            if job["jid"] == job_id:
                return job
        raise CommandError(f"no job {job_id} on this cluster")
    if not jobs:
        raise CommandError("no job on this cluster")
    running = [job for job in jobs if job["state"] == "RUNNING"]
    return (running or jobs)[0]


def job_summary(client: Any, job_id: str) -> dict[str, float]:
    """A job's key figures from its metrics: records read by Decode, sink counters summed over subtasks, every
    ``skipped_*`` counter, dead letters of every stage, and the largest ``lag_ms``. Counters never incremented are
    not reported by Flink and read as 0."""
    wanted = {name for _, name in STATUS_COUNTERS if name != SKIPPED_PREFIX} | {"lag_ms"}
    totals: dict[str, float] = dict.fromkeys(wanted - {"lag_ms"}, 0.0)
    totals[SKIPPED_PREFIX] = 0.0
    for vertex in client.vertices(job_id):
        found = client.vertex_metrics(job_id, str(vertex["id"]), lambda n: n in wanted or n.startswith(SKIPPED_PREFIX))
        for name, values in found.items():
            if name == "records_in" and DECODE_VERTEX not in vertex["name"]:
                continue  # Dedup counts the same records again after key_by
            if name == "lag_ms":
                totals["lag_ms"] = max([totals.get("lag_ms", 0.0), *values])
            else:
                totals[SKIPPED_PREFIX if name.startswith(SKIPPED_PREFIX) else name] += sum(values)
    return totals


def _rest_url(text: str) -> str:
    """``--rest-url``: an http(s) URL with a host."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL such as {DEFAULT_REST_URL}, got {mask_urls(text)!r}"
        )
    return text


def _check_rest_api(url: str) -> None:
    """``UsageError`` unless a Flink REST API answers at ``url`` (``GET /config`` names its Flink version)."""
    import httpx

    try:
        response = httpx.get(f"{url.rstrip('/')}/config", timeout=REST_CONNECT_TIMEOUT_S, trust_env=False)
    except httpx.HTTPError as exc:
        raise UsageError(f"cannot reach the Flink REST API at {url}: {exc or type(exc).__name__}") from None
    try:
        answer = response.json() if response.status_code == 200 else None
    except ValueError:
        answer = None
    if not isinstance(answer, dict) or "flink-version" not in answer:
        raise UsageError(f"{url} does not answer as a Flink REST API (GET /config answered {response.status_code})")


def cmd_status(args: argparse.Namespace, _: list[str]) -> int:
    from kafka_pinecone_flink.stack.cluster import ClusterError, RestClient

    _check_rest_api(args.rest_url)
    client = RestClient(args.rest_url)
    try:
        job = _pick_job(client.jobs(), args.job)
        summary = job_summary(client, job["jid"]) if job["state"] == "RUNNING" else {}
    except ClusterError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(orjson.dumps({"job": job["jid"], "name": job.get("name"), "state": job["state"], **summary}).decode())
        return EXIT_OK
    print(f"job {job['jid']} ({job.get('name', '?')}): {job['state']}")
    if summary:
        for label, name in STATUS_COUNTERS:
            print(f"  {label:<14} {int(summary.get(name, 0.0))}")
        lag = summary.get("lag_ms")
        print(f"  {'lag':<14} {'-' if lag is None else f'{lag / 1000:.1f} s'}")
    return EXIT_OK


# --- dlq replay -------------------------------------------------------------------------------------------------------


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


# --- the parser -------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Operate the Kafka → Pinecone ingest job: run or submit it, check configurations, run the local "
        "stack, watch a running job, replay dead letters.",
        epilog="Exit codes: 0 ok, 1 runtime failure, 2 usage or configuration error.",
        allow_abbrev=False,
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run the ingest job here (a Flink mini-cluster), or print its flink run command",
        description="Run the ingest job in a local Flink mini-cluster (exit 0 when a bounded run drained its input, "
        "1 when the job or a start-up check failed, 2 for a bad configuration). With --print-flink-run, validate the "
        "options and print the command that submits the same job to a cluster instead (it writes the job archive, "
        "the project's packages for -pyfs). Every other argument is a job option.",
        add_help=False,
        allow_abbrev=False,
    )
    run.add_argument("-h", "--help", action=_JobOptionsHelp, help="show this help and the job's options")
    run.add_argument("--print-flink-run", action="store_true", help="print the flink run command; start nothing")
    run.add_argument("--archive", help="where to write the job archive (default: <flink.run-dir>/kpf-job.zip)")
    run.add_argument("--flink", help="the flink executable to print (default: the apache-flink package's)")
    run.add_argument("--savepoint", help="resume from this savepoint (adds -s)")
    run.add_argument(
        "--resume-from-latest",
        action="store_true",
        help="resume from the newest complete checkpoint (chk-N with _metadata, newest by completion time, across "
        "every job folder) of the run's checkpoint directory, printed; exit 2 if there is none",
    )
    run.add_argument(
        "--checkpoint-dir",
        help="where --resume-from-latest looks (default: execution.checkpointing.dir of --flink.conf, else "
        "<flink.run-dir>/checkpoints)",
    )
    run.set_defaults(func=cmd_run, takes_job_options=True)

    checkpoints = commands.add_parser(
        "checkpoints",
        help="list the checkpoints of a run directory, newest complete one first",
        description="List the checkpoints a local run kept (<job id>/chk-N under the checkpoint directory): the "
        "complete ones (holding _metadata), newest first, then the incomplete ones. The first line is what "
        "kpf run --resume-from-latest resumes from. Exit 0 when there is a complete checkpoint, 1 otherwise.",
        allow_abbrev=False,
    )
    where = checkpoints.add_mutually_exclusive_group()
    where.add_argument("--run-dir", default=str(RUN_DIR), help="the job's --flink.run-dir (default: %(default)s)")
    where.add_argument("--checkpoint-dir", help="the checkpoint directory itself (default: <run-dir>/checkpoints)")
    checkpoints.set_defaults(func=cmd_checkpoints)

    validate = commands.add_parser(
        "validate",
        help="load and check a configuration without starting anything",
        description="Load the job's options (flags and --config FILE) and check them, without connecting anywhere. "
        "Prints the configuration with secrets masked; exit 0 when valid, 2 otherwise.",
        add_help=False,
        allow_abbrev=False,
    )
    validate.add_argument("-h", "--help", action=_JobOptionsHelp, help="show this help and the job's options")
    validate.set_defaults(func=cmd_validate, takes_job_options=True)

    stack = commands.add_parser(
        "stack",
        help="start, stop or check the local Kafka broker and Pinecone-compatible server",
        description="The local stack: a single-node Kafka broker (KRaft) and the Pinecone-compatible server "
        "(durable), with data, logs and pid files under --dir. status exits 0 only if both are ready.",
        allow_abbrev=False,
    )
    stack.add_argument("action", choices=("start", "stop", "status"))
    stack.add_argument("--dir", default=str(RUN_DIR), help="data and pid files (default: %(default)s)")
    stack.add_argument("--kafka-port", type=int, default=DEFAULT_KAFKA_PORT, help="(default: %(default)s)")
    stack.add_argument(
        "--kafka-controller-port", type=int, default=DEFAULT_KAFKA_CONTROLLER_PORT, help="(default: %(default)s)"
    )
    stack.add_argument("--pinecone-port", type=int, default=DEFAULT_PINECONE_PORT, help="(default: %(default)s)")
    stack.set_defaults(func=cmd_stack)

    status = commands.add_parser(
        "status",
        help="a running job's state and key metrics (Flink REST API)",
        description="Show a job's state and key metrics: records in, upserted, updated, deleted, dead-lettered, "
        "skipped, and the sink's lag (time since the oldest Kafka timestamp of its last batch). Without --job: the "
        "newest running job, else the newest job. Exit 2 if nothing answers as a Flink REST API at --rest-url, 1 if "
        "the job cannot be found or read.",
        allow_abbrev=False,
    )
    status.add_argument(
        "--rest-url", type=_rest_url, default=DEFAULT_REST_URL, help="Flink REST API / Web UI (default: %(default)s)"
    )
    status.add_argument("--job", help="job id (default: the newest running job)")
    status.add_argument("--json", action="store_true", help="print one JSON object")
    status.set_defaults(func=cmd_status)

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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``kpf``; returns the exit code."""
    parser = build_parser()
    args, extra = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    if extra and not getattr(args, "takes_job_options", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")  # exits 2
    try:
        return int(args.func(args, extra))
    except UsageError as exc:
        return _fail(str(exc), EXIT_USAGE)
    except CommandError as exc:
        return _fail(str(exc), EXIT_FAILURE)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_FAILURE)


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):  # `kpf ... | head` is not an error
        sys.exit(main())
