"""The ingest job's operators as Flink will run them, without running it: each operator's name, uid and inputs.

Run as a script (its own process, so that the Java gateway, the Flink configuration and the connector jar it loads
stay out of the test process), with job options after the fixed ones below; prints one JSON line per operator of the
stream graph that PyFlink hands to Flink (``{"name": ..., "uid": ... or null, "inputs": [...]}``, an input being
the partitioner of an edge into the operator, as Flink writes it: ``FORWARD``, ``HASH``, ...)::

    .venv/bin/python -m tests.integration.job_graph --decode.jvm=false
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.stack.flink import job_process_environment
from kafka_pinecone_flink.stack.paths import ROOT

FIXED_OPTIONS = (
    "--kafka.bootstrap-servers=127.0.0.1:9",
    "--kafka.topics=products",
    "--pinecone.index=products",
    "--pinecone.controller-host=http://127.0.0.1:9",
    "--errors.dead-letter-topic=dead-letters",
    "--errors.tolerance=all",
)


def operators(options: Sequence[str]) -> list[dict[str, Any]]:
    """The operators of the job with ``options`` (in a process of its own)."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.integration.job_graph", *options],
        cwd=ROOT,
        env=job_process_environment({"PINECONE_API_KEY": "local-test-key"}),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


def main(argv: Sequence[str]) -> int:
    from kafka_pinecone_flink.jobs.config.build import load_job_config
    from kafka_pinecone_flink.jobs.dead_letter_topic import DeadLetterTarget
    from kafka_pinecone_flink.jobs.flink_env import create_session
    from kafka_pinecone_flink.jobs.ingest_job import pipeline_spec
    from kafka_pinecone_flink.jobs.pipeline import build
    from kafka_pinecone_flink.sinks.dead_letter import KAFKA_DEFAULT_MAX_MESSAGE_BYTES

    config = load_job_config([*FIXED_OPTIONS, *argv], {"PINECONE_API_KEY": "local-test-key"})
    with tempfile.TemporaryDirectory(prefix="kpf-graph-") as run_dir:
        session = create_session(config.flink_overrides(), run_dir=Path(run_dir), parallelism=config.flink.parallelism)
        # No index and no broker to ask: the route of a 4-dimensional cosine index, Kafka's default message limit.
        route = config.route_config(4, "cosine")
        spec = pipeline_spec(config, route, DeadLetterTarget(KAFKA_DEFAULT_MAX_MESSAGE_BYTES))
        build(session.env, session.t_env, spec)
        graph = session.env._generate_stream_graph(False)
        for node in graph.getStreamNodes().toArray():
            inputs = [str(edge.getPartitioner().toString()) for edge in node.getInEdges().toArray()]
            print(
                json.dumps({"name": node.getOperatorName(), "uid": node.getTransformationUID(), "inputs": inputs}),
                flush=True,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
