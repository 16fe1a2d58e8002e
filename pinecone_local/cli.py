"""Command line: ``python -m pinecone_local serve|start|stop|status|faults``.

* ``serve``  runs in the foreground until SIGINT/SIGTERM.
* ``start``  runs ``serve`` as a detached process, writes a pid file, and returns once the server answers health
  checks (exit 1 if it does not within ``--timeout``).
* ``stop``   sends SIGTERM to the pid in the pid file (SIGKILL after ``--timeout``) and removes the file.
* ``status`` prints whether the server is up (exit 0) or not (exit 1).
* ``faults`` shows or changes fault injection of a running server through its admin endpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .faults import parse_fail_next, parse_kv
from .limits import DEFAULT_COMPACT_BYTES, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_START_TIMEOUT_S, READY_POLL_INTERVAL_S

DEFAULT_PID_FILE = Path(".pinecone_local.pid")
API_KEY_ENV = "PINECONE_LOCAL_API_KEY"


def _add_serve_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default %(default)s)")
    parser.add_argument("--port", type=int, default=argparse.SUPPRESS, help="port to bind; 0 picks a free one")
    parser.add_argument("--advertise-host", help="host name put in index hosts (default: the bind address)")
    parser.add_argument("--data-dir", type=Path, help="persist to this directory (default: memory only)")
    parser.add_argument(
        "--api-key", default=os.environ.get(API_KEY_ENV), help=f"require this Api-Key header (or ${API_KEY_ENV})"
    )
    parser.add_argument("--fsync", action="store_true", help="fsync the log on every write (power-loss safety)")
    parser.add_argument(
        "--compact-bytes", type=int, default=DEFAULT_COMPACT_BYTES, help="log size that triggers a snapshot"
    )
    parser.add_argument("--port-file", type=Path, help="write the bound port here once ready")
    parser.add_argument(
        "--ack-log",
        type=Path,
        help="append '<time.time()> TAB index TAB namespace TAB id' per written record once applied (benchmarks)",
    )
    parser.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    faults = parser.add_argument_group("fault injection")
    faults.add_argument(
        "--rate-limit",
        action="append",
        default=[],
        metavar="KIND=RPS",
        help="per-namespace requests/s for KIND (or *); beyond it: 429 with Retry-After",
    )
    faults.add_argument("--error-rate", type=float, default=0.0, help="share of requests answered with an error")
    faults.add_argument("--error-status", type=int, default=503, help="status of --error-rate errors")
    faults.add_argument("--error-kinds", default="*", help="comma-separated kinds --error-rate applies to")
    faults.add_argument("--latency-ms", type=float, default=0.0, help="latency added to every request")
    faults.add_argument(
        "--fail-next",
        action="append",
        default=[],
        metavar="KIND:COUNT[:STATUS[:AFTER]]",
        help="let AFTER requests of KIND through (default 0), then fail the next COUNT (default status 503)",
    )
    faults.add_argument("--fault-seed", type=int, help="seed for --error-rate")


def _fault_config(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "rate_limits": dict(parse_kv(item) for item in args.rate_limit),
        "error_rate": args.error_rate,
        "error_status": args.error_status,
        "error_kinds": [k for k in args.error_kinds.split(",") if k],
        "latency_ms": args.latency_ms,
        "fail_next": [parse_fail_next(item) for item in args.fail_next],
        "seed": args.fault_seed,
    }


def _url(args: argparse.Namespace) -> str:
    return args.url or f"http://{DEFAULT_HOST}:{args.port}"


def _admin(url: str, path: str, method: str = "GET", body: Any = None, api_key: str | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if api_key:
        request.add_header("Api-Key", api_key)
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def is_healthy(url: str) -> bool:
    """Whether a server answers ``GET /admin/health`` at ``url``."""
    try:
        _admin(url, "/admin/health")
        return True
    except (OSError, urllib.error.URLError, ValueError):
        return False


def wait_until_healthy(url: str, timeout: float, process: subprocess.Popen[bytes] | None = None) -> bool:
    """Poll health until it answers, the process exits, or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if is_healthy(url):
            return True
        if process is not None and process.poll() is not None:
            return False
        time.sleep(READY_POLL_INTERVAL_S)
    return False


def _serve(args: argparse.Namespace) -> int:
    from .server import ServeOptions, serve

    try:
        faults = _fault_config(args)
    except ValueError as exc:
        print(f"pinecone_local: {exc}", file=sys.stderr)
        return 2
    serve(
        ServeOptions(
            host=args.host,
            port=args.port,
            advertise_host=args.advertise_host,
            data_dir=args.data_dir,
            api_key=args.api_key,
            fsync=args.fsync,
            compact_bytes=args.compact_bytes,
            port_file=args.port_file,
            log_level=args.log_level,
            ack_log=args.ack_log,
            faults=faults,
        )
    )
    return 0


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _start(args: argparse.Namespace) -> int:
    if args.pid_file.exists() and _pid_alive(int(args.pid_file.read_text().split()[0])):
        print(f"pinecone_local already running (pid file {args.pid_file})", file=sys.stderr)
        return 1
    argv = [sys.executable, "-m", "kafka_pinecone_flink.pinecone_local", "serve", *args.serve_argv]
    if args.port != DEFAULT_PORT:
        argv += ["--port", str(args.port)]
    log = open(args.log_file, "ab") if args.log_file else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(argv, stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True)
    args.pid_file.write_text(f"{process.pid}\n")
    url = f"http://{DEFAULT_HOST}:{args.port}"
    if not wait_until_healthy(url, args.timeout, process):
        print(f"pinecone_local did not become ready at {url} within {args.timeout:g}s", file=sys.stderr)
        if process.poll() is None:
            process.kill()
        args.pid_file.unlink(missing_ok=True)
        return 1
    print(f"pinecone_local running at {url} (pid {process.pid})")
    return 0


def _stop(args: argparse.Namespace) -> int:
    if not args.pid_file.exists():
        print("pinecone_local is not running (no pid file)", file=sys.stderr)
        return 1
    pid = int(args.pid_file.read_text().split()[0])
    if _pid_alive(pid):
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + args.timeout
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(READY_POLL_INTERVAL_S)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
    args.pid_file.unlink(missing_ok=True)
    print(f"pinecone_local stopped (pid {pid})")
    return 0


def _status(args: argparse.Namespace) -> int:
    url = _url(args)
    if is_healthy(url):
        print(f"pinecone_local is up at {url}")
        return 0
    print(f"pinecone_local is not answering at {url}")
    return 1


def _faults(args: argparse.Namespace) -> int:
    url, key = _url(args), args.api_key
    if args.action == "show":
        result = _admin(url, "/admin/faults", api_key=key)
    elif args.action == "reset":
        result = _admin(url, "/admin/faults/reset", "POST", {}, api_key=key)
    elif args.action == "fail-next":
        rule = {"kind": args.kind, "count": args.count, "status": args.status, "after": args.after}
        result = _admin(url, "/admin/faults", "PUT", {"fail_next": [rule], "append": True}, api_key=key)
    else:
        changes: dict[str, Any] = {}
        if args.error_rate is not None:
            changes["error_rate"] = args.error_rate
        if args.error_status is not None:
            changes["error_status"] = args.error_status
        if args.error_kinds is not None:
            changes["error_kinds"] = [k for k in args.error_kinds.split(",") if k]
        if args.latency_ms is not None:
            changes["latency_ms"] = args.latency_ms
        if args.rate_limit is not None:
            changes["rate_limits"] = dict(parse_kv(item) for item in args.rate_limit)
        result = _admin(url, "/admin/faults", "PUT", changes, api_key=key)
    print(json.dumps(result, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m pinecone_local``."""
    parser = argparse.ArgumentParser(
        prog="python -m kafka_pinecone_flink.pinecone_local", description="Pinecone-compatible local server"
    )
    # --port goes before or after the command (and after a faults action); each place leaves it unset unless given,
    # so the one given wins and main() fills in the default.
    parser.add_argument("--port", type=int, default=argparse.SUPPRESS, help=f"server port (default {DEFAULT_PORT})")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run in the foreground")
    _add_serve_flags(serve)
    serve.set_defaults(func=_serve)

    start = sub.add_parser("start", help="run detached; returns when ready (extra flags go to serve)")
    start.add_argument("--port", type=int, default=argparse.SUPPRESS)
    start.add_argument("--pid-file", type=Path, default=DEFAULT_PID_FILE)
    start.add_argument("--log-file", type=Path)
    start.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT_S)
    start.set_defaults(func=_start)

    stop = sub.add_parser("stop", help="stop the server started with start")
    stop.add_argument("--pid-file", type=Path, default=DEFAULT_PID_FILE)
    stop.add_argument("--timeout", type=float, default=10.0)
    stop.set_defaults(func=_stop)

    for name, func in (("status", _status), ("faults", _faults)):
        command = sub.add_parser(name, help=f"{name} of a running server")
        _add_connection_flags(command, url_default=None, api_key_default=os.environ.get(API_KEY_ENV))
        command.set_defaults(func=func)
        if name == "faults":
            actions = command.add_subparsers(dest="action", required=True)
            show = actions.add_parser("show")
            reset = actions.add_parser("reset")
            fail = actions.add_parser("fail-next", help="fail the next COUNT requests of KIND")
            fail.add_argument("kind")
            fail.add_argument("count", type=int)
            fail.add_argument("--status", type=int, default=503)
            fail.add_argument("--after", type=int, default=0, help="let this many requests of KIND through first")
            setter = actions.add_parser("set", help="change switches (unspecified ones stay as they are)")
            setter.add_argument("--error-rate", type=float)
            setter.add_argument("--error-status", type=int)
            setter.add_argument("--error-kinds")
            setter.add_argument("--latency-ms", type=float)
            setter.add_argument("--rate-limit", action="append", metavar="KIND=RPS")
            for action in (show, reset, fail, setter):
                _add_connection_flags(action, url_default=argparse.SUPPRESS, api_key_default=argparse.SUPPRESS)
    return parser


def _add_connection_flags(parser: argparse.ArgumentParser, url_default: Any, api_key_default: Any) -> None:
    """--port, --url and --api-key of a command that talks to a running server."""
    parser.add_argument("--port", type=int, default=argparse.SUPPRESS)
    parser.add_argument("--url", default=url_default, help="server URL (default http://127.0.0.1:PORT)")
    parser.add_argument("--api-key", default=api_key_default)


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if not hasattr(args, "port"):
        args.port = DEFAULT_PORT
    if args.command == "start":
        args.serve_argv = extra
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return int(args.func(args))
    except urllib.error.HTTPError as exc:
        print(f"pinecone_local: server answered {exc.code}: {exc.read().decode(errors='replace')}", file=sys.stderr)
        return 1
    except (OSError, urllib.error.URLError) as exc:
        print(f"pinecone_local: cannot reach the server: {exc}", file=sys.stderr)
        return 1
