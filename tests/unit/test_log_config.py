"""The Log4j configurations in flink-conf/: the filter that keeps Beam's environment dumps (which may hold the API
key) out of the logs sits on every appender, and nowhere it would cost a regex on every logging call."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

CONF = Path(__file__).resolve().parents[2] / "flink-conf"
FILES = sorted(CONF.glob("log4j*.properties"))


def _properties(path: Path) -> dict[str, str]:
    entries = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries[key.strip()] = value.strip()
    return entries


def test_every_flink_process_has_a_log4j_configuration() -> None:
    assert {path.name for path in FILES} >= {
        "log4j.properties",
        "log4j-cli.properties",
        "log4j-console.properties",
        "log4j-session.properties",
    }


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_no_filter_runs_before_the_level_check(path: Path) -> None:
    # Log4j evaluates a configuration-level filter on every logging call, before the logger's level: Flink's
    # per-record TRACE calls then formatted each record and ran the regex (~20% of the job's JVM CPU in JFR).
    top_level = [key for key in _properties(path) if key.startswith("filter.")]
    assert top_level == [], f"{path.name}: configuration-level filter entries {top_level}"


@pytest.mark.parametrize("path", FILES, ids=lambda path: path.name)
def test_every_appender_drops_beams_environment_dumps(path: Path) -> None:
    entries = _properties(path)
    appenders = {key.split(".")[1] for key in entries if re.fullmatch(r"appender\.\w+\.name", key)}
    assert appenders
    for appender in appenders:
        prefix = f"appender.{appender}.filter.beamenv."
        assert entries.get(prefix + "type") == "RegexFilter", f"{path.name}: appender {appender} has no filter"
        assert entries[prefix + "onMatch"] == "DENY"
        pattern = re.compile(entries[prefix + "regex"].replace("(?s)", ""), re.S)
        assert pattern.fullmatch('Closing environment urn: "beam:env:process:v1"\npayload: "PINECONE_API_KEY=x"')
        assert pattern.fullmatch("Starting Python process with environment variables: {PINECONE_API_KEY=x}")
        assert not pattern.fullmatch("Checkpoint 3 of job 0a completed")
