"""Start-up checks of the ingest job that need no server: the embedding model directory and its dimension."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from kafka_pinecone_flink.jobs import ingest_job
from kafka_pinecone_flink.jobs.config import JobConfigError, load_job_config
from kafka_pinecone_flink.jobs.ingest_job import StartupError, startup_checks
from kafka_pinecone_flink.sinks.client import IndexInfo

pytestmark = pytest.mark.unit


@pytest.fixture
def index_of_dimension(monkeypatch: pytest.MonkeyPatch) -> Any:
    def use(dimension: int) -> None:
        async def described(config: Any, namespaces: list[str]) -> IndexInfo:
            return IndexInfo("docs", "http://127.0.0.1:1", dimension, "cosine")

        monkeypatch.setattr(ingest_job, "_check_index", described)

    return use


def config(model: str) -> Any:
    return load_job_config(
        [
            "--kafka.bootstrap-servers=127.0.0.1:9092",
            "--kafka.topics=docs",
            "--pinecone.index=docs",
            "--pinecone.controller-host=http://127.0.0.1:1",
            "--embedding.text-fields=title",
            f"--embedding.model={model}",
        ],
        {},
    )


def test_a_missing_model_directory_is_a_config_error_of_a_local_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    with pytest.raises(JobConfigError, match=r"--embedding.model: got '.*absent'; expected 'default'"):
        config(str(tmp_path / "absent"))


def test_a_cluster_submission_leaves_a_missing_model_directory_to_the_task_managers(
    index_of_dimension: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PYFLINK_GATEWAY_PORT", "25333")  # how `flink run` starts the driver
    index_of_dimension(384)
    route = startup_checks(config(str(tmp_path / "absent")))
    assert (route.dimension, route.metric) == (384, "cosine")
    assert "not checked here, the TaskManagers load it" in capsys.readouterr().err


def test_a_model_whose_dimension_differs_from_the_index_stops_the_job(
    index_of_dimension: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    index_of_dimension(768)
    with pytest.raises(StartupError, match="produces 384-dimensional vectors but index 'docs' has dimension 768"):
        startup_checks(config("default"))


def _spec(monkeypatch: pytest.MonkeyPatch, *options: str) -> Any:
    """The pipeline spec the ingest job builds its graph from, for ``options`` (no Flink, no Pinecone)."""
    specs: list[Any] = []

    class Session:
        env = t_env = None
        web_ui = None

    monkeypatch.delenv("PYFLINK_GATEWAY_PORT", raising=False)
    monkeypatch.setattr(ingest_job, "startup_checks", lambda config: config.route_config(3, "cosine"))
    monkeypatch.setattr(ingest_job, "withhold_secrets_from_workers", lambda secrets: None)
    monkeypatch.setattr(ingest_job, "create_session", lambda *args, **kwargs: Session())
    monkeypatch.setattr(ingest_job, "build", lambda env, t_env, spec: specs.append(spec))
    monkeypatch.setattr(ingest_job, "run_to_end", lambda *args, **kwargs: 0)
    argv = ["--pinecone.index=docs", "--pinecone.controller-host=http://127.0.0.1:1", *options]
    assert ingest_job.main(argv) == 0
    (spec,) = specs
    return spec


def test_the_batch_options_reach_the_pipeline_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = _spec(
        monkeypatch,
        "--kafka.topics=docs",
        "--batch.max-records=600",
        f"--batch.max-bytes={2 * 1024 * 1024}",
        "--batch.linger-ms=7",
        "--sink.linger-ms=9",
    )
    assert (spec.batch_max_records, spec.batch_max_bytes, spec.batch_linger_ms) == (600, 2 * 1024 * 1024, 7)
    assert spec.sink.linger_ms == 9


def test_the_dedup_in_source_task_option_reaches_the_pipeline_spec(monkeypatch: pytest.MonkeyPatch) -> None:
    # Where the job may use it (parallelism 1, no adaptive scheduler) is DedupFunction.canRunInInputTask's
    # (DedupFunctionTest) and pipeline.dedup_in_source_task's (tests/integration/test_operator_uids.py).
    assert _spec(monkeypatch, "--kafka.topics=docs").dedup_in_source_task is True
    assert _spec(monkeypatch, "--kafka.topics=docs", "--dedup.in-source-task=false").dedup_in_source_task is False


def test_the_jvm_decode_path_is_off_with_unaligned_checkpoints_without_operator_chaining_or_when_switched_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from kafka_pinecone_flink.jobs.pipeline import jvm_decode_topics

    spec = _spec(monkeypatch, "--kafka.topics=docs,more")
    assert jvm_decode_topics(spec) == ("docs", "more")
    # SequencedMerge must run in the JVM decode stage's task, and the stage was built for aligned barriers.
    assert jvm_decode_topics(spec, unaligned_checkpoints=True) == ()
    assert jvm_decode_topics(spec, chaining=False) == ()
    assert jvm_decode_topics(_spec(monkeypatch, "--kafka.topics=docs", "--decode.jvm=false")) == ()


def test_the_gateway_gets_the_client_options_then_the_users_jvm_args() -> None:
    from kafka_pinecone_flink.jobs.flink_env import gateway_jvm_args

    assert gateway_jvm_args({"env.java.opts.client": "-Xmx512m"}, None) == "-Xmx512m"
    assert (
        gateway_jvm_args({"env.java.opts.client": "-Xmx512m"}, " -Xmx1g -XX:+UseG1GC ")
        == "-Xmx512m -Xmx1g -XX:+UseG1GC"
    )
    assert gateway_jvm_args({}, "-Xmx1g") == "-Xmx1g"
    assert gateway_jvm_args({}, None) == ""


def test_the_rendered_configuration_points_every_jvms_temporary_directory_at_the_runs_tmp_dir(tmp_path: Path) -> None:
    import yaml

    from kafka_pinecone_flink.stack.flink import render_conf_dir

    settings = render_conf_dir(tmp_path / "conf", run_dir=tmp_path / "run")
    tmp_dir = (tmp_path / "run" / "flink-tmp").resolve()
    assert settings["env.java.opts.all"].split()[0] == f"-Djava.io.tmpdir={tmp_dir}"
    assert tmp_dir.is_dir()
    written = yaml.safe_load((tmp_path / "conf" / "config.yaml").read_text())
    assert written["env.java.opts.all"] == settings["env.java.opts.all"]


def test_the_java_temp_dir_is_the_first_of_io_tmp_dirs_and_a_users_own_setting_is_kept() -> None:
    from kafka_pinecone_flink.stack.flink import with_java_temp_dir

    listed = with_java_temp_dir({"io.tmp.dirs": "/a,/b", "env.java.opts.all": "-XX:+UseG1GC"})
    assert listed["env.java.opts.all"] == "-Djava.io.tmpdir=/a -XX:+UseG1GC"
    assert with_java_temp_dir({"io.tmp.dirs": f"/c{os.pathsep}/d"})["env.java.opts.all"] == "-Djava.io.tmpdir=/c"
    own = {"io.tmp.dirs": "/a", "env.java.opts.taskmanager": "-Djava.io.tmpdir=/mine"}
    assert with_java_temp_dir(own) == own
    assert with_java_temp_dir({"io.tmp.dirs": ""}) == {"io.tmp.dirs": ""}


def test_a_local_gateway_gets_the_configured_reporters_jar_then_the_users_hadoop_classpath() -> None:
    # A local mini-cluster loads no plugins: the Prometheus reporter that flink-conf/ configures must reach the
    # gateway's classpath, or nothing is served on /metrics.
    from kafka_pinecone_flink.jobs.flink_env import gateway_classpath
    from kafka_pinecone_flink.stack.flink import load_config

    entries = gateway_classpath(load_config(), "/user/extra.jar").split(os.pathsep)
    assert len(entries) == 2 and entries[1] == "/user/extra.jar", entries
    assert Path(entries[0]).is_file() and Path(entries[0]).name.startswith("flink-metrics-prometheus-"), entries
    assert gateway_classpath({}, None) == ""
