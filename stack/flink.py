"""Flink configuration for this machine: renders ``flink-conf/`` with the machine-dependent settings filled in.

``flink-conf/config.yaml`` holds every setting a user tunes. What depends on where the job runs (the Python
interpreter, checkpoint, savepoint and log directories) is added here, so the same directory serves a local
mini-cluster, the standalone cluster started from the pip package, and the tests.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from kafka_pinecone_flink.stack.paths import FLINK_CONF_DIR, RUN_DIR


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Flink's nested YAML as flat ``a.b.c`` keys with string values (how Flink itself reads it)."""
    flat: dict[str, str] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif isinstance(value, bool):
            flat[name] = str(value).lower()
        else:
            flat[name] = str(value)
    return flat


def load_config(conf_dir: Path = FLINK_CONF_DIR) -> dict[str, str]:
    """The project's Flink configuration as flat keys."""
    with open(conf_dir / "config.yaml") as handle:
        return flatten(yaml.safe_load(handle) or {})


def machine_settings(run_dir: Path = RUN_DIR, python: str = sys.executable) -> dict[str, str]:
    """Settings that depend on this machine: the interpreter of the Python workers and the state directories."""
    return {
        "python.executable": python,
        "python.client.executable": python,
        "execution.checkpointing.dir": (run_dir / "checkpoints").resolve().as_uri(),
        "execution.checkpointing.savepoint-dir": (run_dir / "savepoints").resolve().as_uri(),
        "env.log.dir": str((run_dir / "flink-logs").resolve()),
        "io.tmp.dirs": str((run_dir / "flink-tmp").resolve()),
    }


def render_conf_dir(
    target: Path,
    overrides: Mapping[str, str] | None = None,
    run_dir: Path = RUN_DIR,
) -> dict[str, str]:
    """Write a complete Flink configuration directory to ``target`` and return its settings (flat).

    The log4j files and worker lists are copied as they are; ``config.yaml`` is written flat with the project's
    settings, then this machine's, then ``overrides``.
    """
    target.mkdir(parents=True, exist_ok=True)
    for source in FLINK_CONF_DIR.iterdir():
        if source.name != "config.yaml" and source.is_file():
            shutil.copyfile(source, target / source.name)
    settings = with_java_temp_dir({**load_config(), **machine_settings(run_dir), **(overrides or {})})
    for path in (settings["env.log.dir"], *_directories(settings["io.tmp.dirs"])):
        Path(path).mkdir(parents=True, exist_ok=True)
    with open(target / "config.yaml", "w") as handle:
        handle.write("# Rendered by stack/flink.py from flink-conf/config.yaml: edit that file, not this one.\n")
        yaml.safe_dump(settings, handle, default_flow_style=False, sort_keys=True)
    return settings


JAVA_OPTS_KEYS = (
    "env.java.opts.all",
    "env.java.opts.client",
    "env.java.opts.jobmanager",
    "env.java.opts.taskmanager",
    "env.java.default-opts.all",
)


def _directories(value: str) -> list[str]:
    """The directories of a list setting such as ``io.tmp.dirs`` (Flink splits it at commas and path separators)."""
    return [part for part in re.split(f"[,{re.escape(os.pathsep)}]", value) if part.strip()]


def with_java_temp_dir(settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with ``-Djava.io.tmpdir=<the first of io.tmp.dirs>`` at the front of ``env.java.opts.all``, unless
    a JVM option setting already names ``java.io.tmpdir``.

    Flink keeps most of its temporary files under ``io.tmp.dirs``, but some components write to the JVM's own
    temporary directory: the table planner loader extracts a 44 MB jar there in every job client (the ingest job
    builds its Kafka source with the Table API), the mini-cluster's file cache and the Web UI their folders. They are
    removed when the JVM exits normally and left behind when it is killed, so every crashed or ``kill -9``-ed run
    (the chaos and crash-replay tests do it on purpose) left 44 MB in ``/tmp``. With this they go where the run's
    other files go: the JobManager, TaskManagers, ``flink run`` and the local gateway JVM all read
    ``env.java.opts.all``."""
    out = dict(settings)
    if any("java.io.tmpdir" in str(out.get(key, "")) for key in JAVA_OPTS_KEYS):
        return out
    directories = _directories(str(out.get("io.tmp.dirs", "")))
    if directories:
        current = str(out.get("env.java.opts.all", "")).strip()
        out["env.java.opts.all"] = f"-Djava.io.tmpdir={directories[0]} {current}".strip()
    return out


# Set in a process that has run PyFlink (its gateway, or Python workers in loopback mode): a job started from such a
# process (a test, the demo) must not inherit them, or it would think it runs inside a worker or under `flink run`.
_INHERITED_FLINK_VARIABLES = (
    "PYFLINK_GATEWAY_DISABLED",
    "PYFLINK_GATEWAY_PORT",
    "FLINK_HOME",
    "FLINK_LIB_DIR",
    "FLINK_PLUGINS_DIR",
    "FLINK_OPT_DIR",
    "FLINK_BIN_DIR",
    "FLINK_CONF_DIR",
    "FLINK_LOG_DIR",
    "_PYFLINK_ENTRY_POINT",
)


def job_process_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment for starting a job as its own process from this one: this process's environment without
    PyFlink's process-local variables, with the project on ``PYTHONPATH``."""
    import os

    from kafka_pinecone_flink.stack.paths import ROOT

    env = {k: v for k, v in os.environ.items() if k not in _INHERITED_FLINK_VARIABLES}
    env["PYTHONPATH"] = str(ROOT)
    env.update(extra or {})
    return env
