"""``pip install .`` installs one top-level package, kafka_pinecone_flink, that works on its own (no clone on the
path), and the kpf command it installs runs it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from kafka_pinecone_flink.stack.paths import ROOT

pytestmark = pytest.mark.integration


def _run(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    return subprocess.run(argv, cwd=cwd, env={**clean, **env}, capture_output=True, text=True, timeout=300, check=False)


def test_the_wheel_installs_only_the_namespace_and_runs_from_site_packages(tmp_path: Path) -> None:
    source = tmp_path / "src"  # a copy: building in the clone would leave build/ and egg-info behind
    shutil.copytree(
        ROOT,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(".git", ".venv", "build", ".run", "__pycache__", "*.egg-info", "docs"),
    )
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(source)],
        cwd=tmp_path,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = tmp_path.glob("kafka_pinecone_flink-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "kafka_pinecone_flink",
        wheel.name.split("-py3")[0] + ".dist-info",
    }
    for package in ("jobs", "udfs", "sinks", "stack", "pinecone_local"):
        assert f"kafka_pinecone_flink/{package}/__init__.py" in names
    assert not any(name.startswith(("kafka_pinecone_flink/chaos/", "tests/")) or "pytest" in name for name in names)

    site = tmp_path / "site"
    installed = _run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
        cwd=tmp_path,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert sorted(path.name for path in site.iterdir() if path.name != "bin") == [
        "kafka_pinecone_flink",
        wheel.name.split("-py3")[0] + ".dist-info",
    ]
    # -P and a working directory outside the clone: only the installed copy can be imported.
    probe = (
        "import kafka_pinecone_flink.jobs.ingest_job as job, kafka_pinecone_flink.stack.paths as paths, "
        "kafka_pinecone_flink.pinecone_local.launcher as launcher, importlib.util as u\n"
        "print(job.__file__); print(paths.ROOT); print(launcher._ROOT); print(u.find_spec('jobs'))"
    )
    imported = _run([sys.executable, "-P", "-c", probe], cwd=tmp_path, PYTHONPATH=str(site))
    assert imported.returncode == 0, imported.stderr
    job_file, root, launcher_root, bare = imported.stdout.splitlines()
    assert Path(job_file) == site / "kafka_pinecone_flink" / "jobs" / "ingest_job.py"
    # The directory that holds the package, as in a clone: what goes on a subprocess's PYTHONPATH, so the
    # namespace's folders never become top-level names there.
    assert Path(root) == site and Path(launcher_root) == site
    assert bare == "None"
    kpf = _run([str(site / "bin" / "kpf"), "--help"], cwd=tmp_path, PYTHONPATH=str(site))
    assert kpf.returncode == 0, kpf.stderr
    assert kpf.stdout.startswith("usage: kpf")
