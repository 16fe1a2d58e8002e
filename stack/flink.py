"""Flink configuration for this machine: renders ``flink-conf/`` with the machine-dependent settings filled in.

``flink-conf/config.yaml`` holds every setting a user tunes. What depends on where the job runs (the Python
interpreter, checkpoint, savepoint and log directories) is added here, so the same directory serves a local
mini-cluster, the standalone cluster started from the pip package, and the tests.
"""

from __future__ import annotations

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
    settings = {**load_config(), **machine_settings(run_dir), **(overrides or {})}
    for key in ("env.log.dir", "io.tmp.dirs"):
        Path(settings[key]).mkdir(parents=True, exist_ok=True)
    with open(target / "config.yaml", "w") as handle:
        handle.write("# Rendered by stack/flink.py from flink-conf/config.yaml: edit that file, not this one.\n")
        yaml.safe_dump(settings, handle, default_flow_style=False, sort_keys=True)
    return settings


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
