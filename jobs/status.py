"""``kpf status``: a running job's state and key metrics, read from the Flink REST API."""

from __future__ import annotations

import argparse
from typing import Any

import orjson

from kafka_pinecone_flink.jobs.cli_errors import EXIT_OK, CommandError, UsageError
from kafka_pinecone_flink.jobs.masking import mask_urls

DEFAULT_REST_URL = "http://127.0.0.1:8081"
REST_CONNECT_TIMEOUT_S = 5.0
RECORDS_IN_OPERATORS = ("Decode JVM", "Decode results")
"""The operators whose ``records_in`` counts what the job read: the JVM decode path's records and the Python
decoder's. The dedup counts the same records again, in the same vertex when it runs in the source's task."""
SKIPPED_PREFIX = "skipped_"
RECORDS_IN = "records_in"
STATUS_COUNTERS = (
    ("records in", RECORDS_IN),
    ("upserted", "upserted"),
    ("updated", "updated"),
    ("deleted", "deleted"),
    ("dead-lettered", "dead_lettered"),
    ("skipped", SKIPPED_PREFIX),
)
"""(label, metric name) of the figures shown; ``skipped_`` sums every ``skipped_*`` counter."""
PENDING = "pendingRecords"
"""The Kafka source's records behind the latest offsets (summed over subtasks): consumer lag."""
LARGEST = ("lag_ms", "freshness_ms_p99", "embedding_drift_ppm")
"""Gauges shown as their largest value over subtasks (and namespaces): README "Monitoring"."""


def pick_job(jobs: list[dict[str, Any]], job_id: str | None) -> dict[str, Any]:
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
    """A job's key figures from its metrics: records read by the decoders (``RECORDS_IN_OPERATORS``), sink counters
    summed over subtasks, every ``skipped_*`` counter, dead letters of every stage, the source's ``pendingRecords``
    (summed), and the largest ``lag_ms``, ``freshness_ms_p99`` and ``embedding_drift_ppm``. Counters never
    incremented are not reported by Flink and read as 0; gauges not reported are absent."""
    from kafka_pinecone_flink.stack.cluster import select_metric_ids

    wanted = {name for _, name in STATUS_COUNTERS if name != SKIPPED_PREFIX} | {PENDING, *LARGEST}
    totals: dict[str, float] = dict.fromkeys(wanted - {PENDING, *LARGEST}, 0.0)
    totals[SKIPPED_PREFIX] = 0.0
    for vertex in client.vertices(job_id):
        found = client.metric_values(job_id, str(vertex["id"]), lambda n: n in wanted or n.startswith(SKIPPED_PREFIX))
        read = set(select_metric_ids(found, RECORDS_IN.__eq__, RECORDS_IN_OPERATORS))
        for metric_id, value in found.items():
            name = metric_id.rsplit(".", 1)[-1]
            if name == RECORDS_IN and metric_id not in read:
                continue  # the dedup's (and any other operator's) records_in counts the same records again
            if name in LARGEST:
                totals[name] = max(totals.get(name, 0.0), value)
            elif name == PENDING:
                totals[PENDING] = totals.get(PENDING, 0.0) + value
            else:
                totals[SKIPPED_PREFIX if name.startswith(SKIPPED_PREFIX) else name] += value
    return totals


def rest_url(text: str) -> str:
    """``--rest-url``: an http(s) URL with a host."""
    scheme, sep, rest = text.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or not rest.strip("/"):
        raise argparse.ArgumentTypeError(
            f"expected an http:// or https:// URL such as {DEFAULT_REST_URL}, got {mask_urls(text)!r}"
        )
    return text


def check_rest_api(url: str) -> None:
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

    check_rest_api(args.rest_url)
    client = RestClient(args.rest_url)
    try:
        job = pick_job(client.jobs(), args.job)
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
        pending, freshness = summary.get(PENDING), summary.get("freshness_ms_p99")
        print(f"  {'kafka pending':<14} {'-' if pending is None else int(pending)}")
        print(f"  {'freshness p99':<14} {'-' if freshness is None else f'{freshness / 1000:.1f} s'}")
        drift = summary.get("embedding_drift_ppm")
        print(f"  {'drift (max)':<14} {'-' if drift is None else f'{drift / 1e6:.4f}'}")
    return EXIT_OK


def add_parser(commands: Any) -> None:
    """Add ``status`` to the ``kpf`` subcommands."""
    command = commands.add_parser(
        "status",
        help="a running job's state and key metrics (Flink REST API)",
        description="Show a job's state and key metrics: records in, upserted, updated, deleted, dead-lettered, "
        "skipped, the sink's lag (time since the oldest Kafka timestamp of its last batch), the records behind the "
        "latest Kafka offsets, p99 freshness and the largest embedding drift (README: Monitoring). Without --job: the "
        "newest running job, else the newest job. Exit 2 if nothing answers as a Flink REST API at --rest-url, 1 if "
        "the job cannot be found or read.",
        allow_abbrev=False,
    )
    command.add_argument(
        "--rest-url", type=rest_url, default=DEFAULT_REST_URL, help="Flink REST API / Web UI (default: %(default)s)"
    )
    command.add_argument("--job", help="job id (default: the newest running job)")
    command.add_argument("--json", action="store_true", help="print one JSON object")
    command.set_defaults(func=cmd_status)
