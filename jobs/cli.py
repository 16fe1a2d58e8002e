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

This module runs ``run``, ``validate``, ``checkpoints`` and ``stack``; ``status`` is :mod:`jobs.status`, ``dlq replay``
(and its policy) :mod:`jobs.dlq_replay`.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from kafka_pinecone_flink.jobs import dlq_replay, status
from kafka_pinecone_flink.jobs.cli_errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE, PROG, CommandError, UsageError
from kafka_pinecone_flink.jobs.masking import MASK, mask_urls, masked_setting, masked_text
from kafka_pinecone_flink.stack.paths import ROOT, RUN_DIR

DEFAULT_KAFKA_PORT = 9092
DEFAULT_KAFKA_CONTROLLER_PORT = 9093
DEFAULT_PINECONE_PORT = 5080
SETTING_FLAGS = ("--kafka.property", "--flink.conf")
"""Job options whose values are KEY=VALUE settings, some of them secret by their key."""


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
    from kafka_pinecone_flink.jobs.checkpoints import IGNORE_UNCLAIMED_SETTING, RECOVERY_SETTING

    for flag, value, needed, given in (
        ("--archive", args.archive, "--print-flink-run", args.print_flink_run),
        ("--flink", args.flink, "--print-flink-run", args.print_flink_run),
        ("--checkpoint-dir", args.checkpoint_dir, "--resume-from-latest", args.resume_from_latest),
    ):
        if value is not None and not given:
            raise UsageError(f"{flag} applies to {needed} only: give both, or leave {flag} out")
    config = _load_config(job_args)
    if args.savepoint and RECOVERY_SETTING in config.flink.conf:
        raise UsageError(
            f"--savepoint and --flink.conf={RECOVERY_SETTING}=... both name where to resume from: give one of them"
        )
    resume_from = _latest_checkpoint(args, config) if args.resume_from_latest else None
    restore = resume_from.uri if resume_from is not None else args.savepoint
    if args.allow_non_restored_state and restore is None and RECOVERY_SETTING not in config.flink.conf:
        raise UsageError(
            "--allow-non-restored-state applies to a restore: give --savepoint or --resume-from-latest with it"
        )
    if not args.print_flink_run:
        from kafka_pinecone_flink.jobs.ingest_job import main as run_job

        if restore is not None:
            job_args = [*job_args, f"--flink.conf={RECOVERY_SETTING}={restore}"]
        if args.allow_non_restored_state:
            job_args = [*job_args, f"--flink.conf={IGNORE_UNCLAIMED_SETTING}=true"]
        return run_job(job_args)
    from kafka_pinecone_flink.stack.cluster import ARCHIVE_NAME, build_job_archive, flink_run_command

    archive = build_job_archive(Path(args.archive) if args.archive else Path(config.flink.run_dir) / ARCHIVE_NAME)
    shown, masked = _masked(job_args, config.secrets())
    command = flink_run_command(
        shown,
        archive=archive,
        savepoint=restore,
        allow_non_restored_state=args.allow_non_restored_state,
        flink=args.flink,
    )
    print(shlex.join(command))
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
    run.add_argument("--savepoint", help="resume from this savepoint (with --print-flink-run: adds -s)")
    run.add_argument(
        "--allow-non-restored-state",
        action="store_true",
        help="with --savepoint or --resume-from-latest: restore even if the savepoint holds state that no operator "
        "of this job takes, which is then dropped (with --print-flink-run: adds -n); needed once for a savepoint of "
        "a version before 2026-12-07 (README: Upgrading)",
    )
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

    status.add_parser(commands)
    dlq_replay.add_parser(commands)
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
