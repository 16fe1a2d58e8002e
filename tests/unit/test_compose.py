"""docker-compose.yml and docker/Dockerfile, checked structurally (there is no Docker engine where the tests run):
the services and their ports, the start order, the Flink configuration mounted from flink-conf/ and rendered by a
command that really works, and a submitter whose ``flink run`` command and job options are the ones the CLI prints
and the job accepts."""

from __future__ import annotations

import importlib.util
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from kafka_pinecone_flink.jobs.config import OPTIONS, load_job_config
from kafka_pinecone_flink.pinecone_local.cli import build_parser as pinecone_local_parser
from kafka_pinecone_flink.stack import cluster
from kafka_pinecone_flink.stack.paths import ROOT

pytestmark = pytest.mark.unit

COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "docker" / "Dockerfile"
SERVICES = {
    "kafka",
    "kafka-setup",
    "pinecone",
    "pinecone-setup",
    "jobmanager",
    "taskmanager",
    "submit",
    "prometheus",
    "grafana",
}
FLINK_SERVICES = ("jobmanager", "taskmanager", "submit")
CONF_MOUNT = "./flink-conf:/opt/kpf/flink-conf:ro"
ARCHIVE = "/opt/kpf/kpf-job.zip"
FLINK = "/opt/flink/bin/flink"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return dict(compose["services"])


def _shell(service: dict[str, Any]) -> str:
    """The script of a ``bash -c SCRIPT`` command."""
    command = service["command"]
    assert command[:2] == ["bash", "-c"], command
    return str(command[2])


def _steps(service: dict[str, Any]) -> list[list[str]]:
    """The ``&&``-separated commands of a ``bash -c`` script, split like the shell does (``exec`` dropped)."""
    steps = [shlex.split(step) for step in _shell(service).split("&&")]
    return [step[1:] if step[0] == "exec" else step for step in steps]


def _published(service: dict[str, Any]) -> set[int]:
    return {int(str(port).split(":")[0]) for port in service.get("ports", [])}


def _submit_command(services: dict[str, dict[str, Any]]) -> list[str]:
    return _steps(services["submit"])[-1]


def _job_args(services: dict[str, dict[str, Any]]) -> list[str]:
    command = _submit_command(services)
    return command[command.index("--") + 1 :]


def _pinned(package: str) -> str:
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==")[1]
    raise AssertionError(f"{package} is not pinned in requirements.lock")


def test_every_service_is_there_and_nothing_else(services: dict[str, dict[str, Any]]) -> None:
    assert set(services) == SERVICES


def test_the_host_reaches_kafka_the_web_ui_and_the_pinecone_server_on_their_usual_ports(
    services: dict[str, dict[str, Any]],
) -> None:
    assert _published(services["kafka"]) == {9092}
    assert _published(services["jobmanager"]) == {8081}
    assert _published(services["pinecone"]) == {5080}
    assert _published(services["prometheus"]) == {9090}
    assert _published(services["grafana"]) == {3000}
    public = {"kafka", "jobmanager", "pinecone", "prometheus", "grafana"}
    assert not any(_published(services[name]) for name in SERVICES - public)


def test_kafka_is_the_official_image_in_kraft_mode_at_the_version_the_local_broker_runs(
    services: dict[str, dict[str, Any]],
) -> None:
    pom_version = re.search(r"<kafka.version>([^<]+)</kafka.version>", (ROOT / "jvm" / "pom.xml").read_text())
    assert pom_version is not None
    kafka = services["kafka"]
    assert kafka["image"] == f"apache/kafka:{pom_version.group(1)}"
    environment = kafka["environment"]
    assert set(environment["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert not any("ZOOKEEPER" in key for key in environment)
    assert "INTERNAL://kafka:19092" in environment["KAFKA_ADVERTISED_LISTENERS"]
    assert "EXTERNAL://localhost:9092" in environment["KAFKA_ADVERTISED_LISTENERS"]


def test_services_start_in_order_and_waited_for_services_have_health_checks(
    services: dict[str, dict[str, Any]],
) -> None:
    expected = {
        "kafka-setup": {"kafka": "service_healthy"},
        "pinecone-setup": {"pinecone": "service_healthy"},
        "taskmanager": {"jobmanager": "service_healthy"},
        "submit": {
            "kafka-setup": "service_completed_successfully",
            "pinecone-setup": "service_completed_successfully",
            "jobmanager": "service_healthy",
            "taskmanager": "service_started",
        },
        "grafana": {"prometheus": "service_started"},
    }
    for name, service in services.items():
        conditions = {dep: spec["condition"] for dep, spec in service.get("depends_on", {}).items()}
        assert conditions == expected.get(name, {}), name
        for dependency, condition in conditions.items():
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], dependency
    for one_shot in ("kafka-setup", "pinecone-setup", "submit"):
        assert services[one_shot]["restart"] == "no"


def test_the_project_image_is_built_from_docker_dockerfile_on_the_flink_release_of_the_lock(
    services: dict[str, dict[str, Any]],
) -> None:
    for name in ("pinecone", "pinecone-setup", *FLINK_SERVICES):
        assert services[name]["build"] == {"context": ".", "dockerfile": "docker/Dockerfile"}, name
        assert services[name]["image"] == "kafka-pinecone-flink:local"
    dockerfile = DOCKERFILE.read_text()
    flink_image = re.search(r"^ARG FLINK_IMAGE=flink:(\S+)$", dockerfile, re.MULTILINE)
    assert flink_image is not None and flink_image.group(1).split("-")[0] == _pinned("apache-flink")
    assert "uv python install 3.11" in dockerfile
    for source in re.findall(r"^COPY (?!--)(\S+) ", dockerfile, re.MULTILINE):
        assert (ROOT / source).exists(), source
    with open(ROOT / "pyproject.toml", "rb") as handle:
        assert tomllib.load(handle)["project"]["requires-python"].startswith(">=3.11")


def test_the_docker_build_context_holds_every_package_the_image_copies() -> None:
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    for package in (*cluster.JOB_PACKAGES, "pinecone_local", "flink-conf"):
        assert f"!{package}/" in ignore
    assert "!requirements.lock" in ignore
    assert "!jvm/build-jar.sh" in ignore and "!jvm/src/" in ignore


def test_the_image_compiles_the_jvm_operators_with_set_ups_script_and_points_the_job_at_them() -> None:
    dockerfile = DOCKERFILE.read_text()
    built = re.search(r"^RUN /jvm/build-jar.sh /flink-lib (\S+) (\S+)$", dockerfile, re.MULTILINE)
    assert built is not None, "the image compiles jvm/src with jvm/build-jar.sh"
    assert "COPY --from=flink /opt/flink/lib /flink-lib" in dockerfile, "against the image's own Flink jars"
    # ... and the connector jar the job loads: both stages add the same file (URL and checksum).
    added = re.findall(r"^ADD (--checksum=\S+) \\\n\s+(\S+) \\\n\s+(\S+)$", dockerfile, re.MULTILINE)
    (compiled,) = [(checksum, url) for checksum, url, target in added if target == built.group(1)]
    shipped = [(checksum, url) for checksum, url, target in added if target.startswith("/opt/kpf/jvm/connector/")]
    assert shipped == [compiled], added
    copied = re.search(rf"^COPY --from=operators {re.escape(built.group(2))} (\S+)$", dockerfile, re.MULTILINE)
    assert copied is not None
    assert f"KPF_JAR={copied.group(1)} " in dockerfile, "the job finds the jar where the image puts it"
    assert "jvm/build-jar.sh" in (ROOT / "scripts" / "setup.sh").read_text(), "set-up builds it the same way"


def test_the_flink_config_is_mounted_from_flink_conf_and_rendered_by_a_command_that_works(
    services: dict[str, dict[str, Any]], tmp_path: Path
) -> None:
    assert (ROOT / "flink-conf" / "config.yaml").is_file()
    expected = {
        "jobmanager": {"jobmanager.rpc.address": "jobmanager", "rest.bind-address": "0.0.0.0"},
        "taskmanager": {"jobmanager.rpc.address": "jobmanager", "taskmanager.host": "taskmanager"},
        "submit": {"rest.address": "jobmanager"},
    }
    for name in FLINK_SERVICES:
        assert CONF_MOUNT in services[name]["volumes"], name
        assert "flink-data:/flink-data" in services[name]["volumes"], name
        render = _steps(services[name])[0]
        assert render[:4] == ["python", "-m", "kafka_pinecone_flink.stack.cluster", "conf"], name
        assert render[render.index("--target") + 1] == "/opt/flink/conf"
        assert render[render.index("--run-dir") + 1] == "/flink-data"
        target = tmp_path / name
        render[render.index("--target") + 1] = str(target)
        render[render.index("--run-dir") + 1] = str(tmp_path / "data")
        assert cluster.main(render[3:]) == 0
        rendered = yaml.safe_load((target / "config.yaml").read_text())
        assert expected[name].items() <= rendered.items(), name
        assert rendered["execution.checkpointing.dir"] == (tmp_path / "data" / "checkpoints").as_uri()
    assert [step[0] for step in _steps(services["jobmanager"])][-1] == "/docker-entrypoint.sh"
    assert _steps(services["jobmanager"])[-1][1:] == ["jobmanager"]
    assert _steps(services["taskmanager"])[-1][1:] == ["taskmanager"]


def test_the_submitter_runs_the_flink_run_command_the_cli_prints(services: dict[str, dict[str, Any]]) -> None:
    command = _submit_command(services)
    printed = cluster.flink_run_command(_job_args(services), archive=Path(ARCHIVE), flink=FLINK)
    jar_at = printed.index("-j") + 1
    assert command[:jar_at] + command[jar_at + 1 :] == printed[:jar_at] + printed[jar_at + 1 :]
    jar = command[jar_at]
    assert Path(jar).name == cluster.connector_jar().name, "the image's connector is the one jvm/pom.xml pins"
    dockerfile = DOCKERFILE.read_text()
    assert f"    {jar}\n" in dockerfile, "the Dockerfile puts the connector jar where -j expects it"
    assert f"build_job_archive(Path('{ARCHIVE}'))" in dockerfile
    assert importlib.util.find_spec(command[command.index("-pym") + 1]) is not None


def test_the_submitted_job_options_exist_and_form_a_valid_configuration(services: dict[str, dict[str, Any]]) -> None:
    job_args = _job_args(services)
    names = {option.flag for option in OPTIONS}
    assert all(arg.startswith("--") and arg.split("=")[0] in names for arg in job_args), job_args
    config = load_job_config(job_args, {})
    assert config.kafka.bootstrap_servers == "kafka:19092"
    assert config.sink.controller_host == "http://pinecone:5080"
    created = _shell(services["kafka-setup"])
    for topic in (*config.kafka.topics, config.dead_letter_topic):
        assert topic in created.split("for topic ")[1].split(";")[0], topic
    assert f"pc.has_index('{config.sink.index_name}')" in services["pinecone-setup"]["command"][2]
    assert "dimension=384" in services["pinecone-setup"]["command"][2], "the bundled model's dimension"


def test_the_pinecone_server_listens_for_containers_and_advertises_its_service_name(
    services: dict[str, dict[str, Any]],
) -> None:
    command = services["pinecone"]["command"]
    assert command[:3] == ["python", "-m", "kafka_pinecone_flink.pinecone_local"]
    args = pinecone_local_parser().parse_args(command[3:])
    assert (args.command, args.host, args.advertise_host) == ("serve", "0.0.0.0", "pinecone")
    assert args.port in _published(services["pinecone"])
    assert str(args.data_dir) in {volume.split(":")[1] for volume in services["pinecone"]["volumes"]}
    assert "http://pinecone:5080" in services["pinecone-setup"]["command"][2]


def test_the_image_copies_the_namespace_and_every_package_folder_its_links_point_at() -> None:
    dockerfile = DOCKERFILE.read_text()
    ignore = (ROOT / "docker" / "Dockerfile.dockerignore").read_text().splitlines()
    copied = set(re.findall(r"^COPY (?!--)(\S+) \./\1$", dockerfile, re.MULTILINE))
    assert cluster.NAMESPACE in copied and f"!{cluster.NAMESPACE}/" in ignore
    for link in (ROOT / cluster.NAMESPACE).iterdir():
        if link.is_symlink():
            assert link.name in copied and f"!{link.name}/" in ignore, link.name
    assert re.search(r"^WORKDIR /opt/kpf$", dockerfile, re.MULTILINE) and "PYTHONPATH=/opt/kpf " in dockerfile


def _mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (relative to the repository) of the service's bind mounts."""
    mounts = {}
    for volume in service.get("volumes", []):
        host, container = str(volume).split(":")[:2]
        if host.startswith("./"):
            mounts[container] = ROOT / host
    return mounts


def _host_path(service: dict[str, Any], container_path: str) -> Path:
    for container, host in _mounts(service).items():
        if container_path == container or container_path.startswith(container + "/"):
            return host / container_path[len(container) :].lstrip("/")
    raise AssertionError(f"{container_path} is not mounted from the repository")


def test_prometheus_scrapes_every_flink_process_on_the_reporter_port_with_the_projects_rules(
    services: dict[str, dict[str, Any]],
) -> None:
    from kafka_pinecone_flink.stack.flink import load_config

    settings = load_config()
    assert settings["metrics.reporter.prom.factory.class"].endswith(".PrometheusReporterFactory")
    first_port = int(settings["metrics.reporter.prom.port"].split("-")[0])
    prometheus = services["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config = yaml.safe_load(_host_path(prometheus, config_arg.split("=", 1)[1]).read_text())
    rule_files = [_host_path(prometheus, path) for path in config["rule_files"]]
    assert {path.name for path in rule_files} == {"rules.yml", "alerts.yml"}
    assert all(path.is_file() for path in rule_files)
    targets = {t for job in config["scrape_configs"] for sc in job["static_configs"] for t in sc["targets"]}
    # One Flink process per container: each takes the first port of the reporter's range.
    assert targets == {f"jobmanager:{first_port}", f"taskmanager:{first_port}"}


def test_grafana_provisions_the_stacks_prometheus_and_the_projects_dashboard(
    services: dict[str, dict[str, Any]],
) -> None:
    grafana = services["grafana"]
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert _host_path(grafana, home) == ROOT / "monitoring" / "grafana" / "kpf-dashboard.json"
    provisioning = _host_path(grafana, "/etc/grafana/provisioning")
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "kpf.yml").read_text())["providers"]
    assert Path(home).parent == Path(provider["options"]["path"])
