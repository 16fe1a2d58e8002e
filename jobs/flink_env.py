"""Creating the Flink environment a job runs in: a local mini-cluster (with its Web UI) or a cluster via ``flink run``.

Locally, the PyFlink client starts a JVM gateway that runs a mini-cluster in the same process; the Python
workers then run inside this process too (loopback mode). The configuration comes from ``flink-conf/`` rendered by
:mod:`stack.flink`; the Kafka connector jar and the project's JVM operators (``build/kpf-flink.jar``) are added with
``env.add_jars`` (``-Dpipeline.jars`` would not reach the Python client).

Under ``flink run`` the cluster's own configuration applies (plus the job's own settings, see ``create_session``);
the connector jar travels with ``-j`` and the operators' jar is added by the driver (``env.add_jars``: loaded into
the client, then uploaded with the job); nothing is rendered.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_pinecone_flink.stack.flink import render_conf_dir
from kafka_pinecone_flink.stack.paths import RUN_DIR, connector_jar, kpf_jar


@dataclass
class FlinkSession:
    env: Any
    t_env: Any
    web_ui: str | None


CLUSTER_LEVEL_SETTINGS = frozenset({"rest.port"})
"""Settings of the cluster itself: a job submitted with ``flink run`` cannot change them, so they are not applied."""


def under_flink_run() -> bool:
    """True when this script is the Python driver of ``flink run``: that client starts the Java gateway itself and
    hands its port to the driver in ``PYFLINK_GATEWAY_PORT`` (``org.apache.flink.client.python.PythonEnvUtils``;
    ``pyflink.java_gateway`` then connects to it instead of launching a JVM). ``FLINK_BIN_DIR`` is no signal:
    ``config.sh`` exports it to every process a Flink script starts, the TaskManager's Python workers included,
    and users often have it set in their shell."""
    return "PYFLINK_GATEWAY_PORT" in os.environ


_USER_JVM_ARGS = os.environ.get("JVM_ARGS")
"""``JVM_ARGS`` as the user set it, before ``create_session`` sets it for the gateway."""


def gateway_jvm_args(settings: Mapping[str, str], user: str | None) -> str:
    """``JVM_ARGS`` for the local gateway JVM, which runs the mini-cluster: Flink's client options
    (``env.java.opts.client``, flink-conf/ sets the heap there) first, then the user's ``JVM_ARGS`` (later flags win).

    PyFlink's local launcher reads only ``env.java.opts.all`` (which a cluster's JobManager and TaskManagers read too)
    and ``JVM_ARGS``; without a maximum heap the JVM grows towards a quarter of the machine's memory (1.76 GiB in the
    benchmark's vector workload, 24 GiB machine)."""
    return " ".join(
        part for part in (str(settings.get("env.java.opts.client", "")).strip(), (user or "").strip()) if part
    )


_USER_HADOOP_CLASSPATH = os.environ.get("HADOOP_CLASSPATH")
"""``HADOOP_CLASSPATH`` as the user set it, before ``create_session`` adds the metric reporters' jars to it."""


def reporter_jars(settings: Mapping[str, str]) -> list[Path]:
    """The jars of the metric reporters that ``settings`` configure (``metrics.reporter.<name>.factory.class``), from
    the plugins folder of the installed apache-flink package (plugins/metrics-<kind>/).

    A local mini-cluster does not load plugins (Flink 2.2 logs "The reporter factory ... could not be found" and
    reports nothing), so a local run puts these jars on the gateway JVM's classpath instead."""
    import pyflink

    wanted = {
        value.rsplit(".", 1)[-1].removesuffix("ReporterFactory").lower()
        for key, value in settings.items()
        if key.startswith("metrics.reporter.") and key.endswith(".factory.class")
    }
    plugins = Path(pyflink.__file__).parent / "plugins"
    return sorted(jar for kind in wanted for jar in plugins.glob(f"metrics-{kind}/*.jar"))


def gateway_classpath(settings: Mapping[str, str], user: str | None) -> str:
    """``HADOOP_CLASSPATH`` for the local gateway JVM: the configured reporters' jars, then the user's entries.
    PyFlink's local launcher appends ``HADOOP_CLASSPATH`` to the gateway's classpath (the one hook it offers)."""
    return os.pathsep.join([*(str(jar) for jar in reporter_jars(settings)), *([user] if user else [])])


def create_session(
    overrides: Mapping[str, str] | None = None,
    run_dir: Path = RUN_DIR,
    parallelism: int | None = None,
    checkpoint_interval_ms: int | None = None,
) -> FlinkSession:
    """A StreamExecutionEnvironment and its table environment, configured from ``flink-conf/``.

    ``overrides`` are flat Flink settings (e.g. ``{"rest.port": "0"}``) applied last. Under ``flink run`` the
    cluster's configuration applies, with ``overrides`` except ``CLUSTER_LEVEL_SETTINGS`` on top of it.
    ``parallelism`` applies over the configuration's ``parallelism.default``; None leaves that in force (flink-conf's
    1 locally; under ``flink run``, its ``-p`` or else the cluster's setting, the Flink convention).
    ``checkpoint_interval_ms`` enables checkpointing where the configuration (with ``overrides``) enables none:
    ``flink run`` keeps a cluster's own ``execution.checkpointing.interval`` (or ``-D``'s).
    """
    from pyflink.common import Configuration
    from pyflink.datastream import StreamExecutionEnvironment
    from pyflink.table import StreamTableEnvironment

    if under_flink_run():
        env = StreamExecutionEnvironment.get_execution_environment()
        # The cluster's config.yaml applies; the job's own settings (checkpoint interval, --flink.conf) are
        # applied on top for this job, as ``flink run -D`` would.
        job_settings = Configuration()
        for key, value in (overrides or {}).items():
            if key not in CLUSTER_LEVEL_SETTINGS:
                job_settings.set_string(key, value)
        env.configure(job_settings)
        env.add_jars(kpf_jar().resolve().as_uri())
        web_ui = None
    else:
        conf_dir = run_dir / "flink-conf"
        settings = render_conf_dir(conf_dir, overrides, run_dir=run_dir)
        # Read by the gateway JVM when it starts (the first environment of this process).
        os.environ["FLINK_CONF_DIR"] = str(conf_dir)
        os.environ["FLINK_LOG_DIR"] = settings["env.log.dir"]
        os.environ["JVM_ARGS"] = gateway_jvm_args(settings, _USER_JVM_ARGS)
        classpath = gateway_classpath(settings, _USER_HADOOP_CLASSPATH)
        if classpath:
            os.environ["HADOOP_CLASSPATH"] = classpath
        config = Configuration()
        for key, value in settings.items():
            config.set_string(key, value)
        env = StreamExecutionEnvironment.get_execution_environment(config)
        env.add_jars(connector_jar().resolve().as_uri(), kpf_jar().resolve().as_uri())
        port = settings.get("rest.port")
        web_ui = f"http://127.0.0.1:{port}" if port and port != "0" else None
    if parallelism is not None:
        env.set_parallelism(parallelism)
    if checkpoint_interval_ms is not None and env.get_checkpoint_interval() <= 0:
        env.enable_checkpointing(checkpoint_interval_ms)
    t_env = StreamTableEnvironment.create(env)
    return FlinkSession(env=env, t_env=t_env, web_ui=web_ui)
