"""The packaging: one import name (kafka_pinecone_flink) for the package folders, in a clone, in the wheel, in the
image and in the job archive; no pytest code in the packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from kafka_pinecone_flink.stack.cluster import NAMESPACE
from kafka_pinecone_flink.stack.paths import ROOT

pytestmark = pytest.mark.unit

PACKAGES = ("jobs", "udfs", "sinks", "stack", "pinecone_local")
BARE_IMPORT = re.compile(rf"^\s*(?:from|import) ({'|'.join(PACKAGES)})\b", re.MULTILINE)


def _python_files() -> list[Path]:
    """Every Python file of the project (not the namespace's links, not set-up's or runs' outputs)."""
    skipped = {".git", ".venv", "build", ".run", NAMESPACE}
    return [
        path
        for top in sorted(ROOT.iterdir())
        if top.name not in skipped and not top.name.startswith(".")
        for path in ([top] if top.is_file() else sorted(top.rglob("*.py")))
        if path.suffix == ".py"
    ]


def test_the_namespace_links_each_package_folder_and_pyproject_installs_exactly_those() -> None:
    links = {path.name: path for path in (ROOT / NAMESPACE).iterdir() if path.is_symlink()}
    assert set(links) == set(PACKAGES)
    for name, link in links.items():
        assert link.readlink() == Path("..") / name, "a relative link, so that it works in any clone and the image"
        assert link.resolve() == (ROOT / name).resolve()
    with open(ROOT / "pyproject.toml", "rb") as handle:
        setuptools = tomllib.load(handle)["tool"]["setuptools"]
    assert setuptools["package-dir"] == {NAMESPACE: NAMESPACE, **{f"{NAMESPACE}.{name}": name for name in PACKAGES}}
    # Every package folder and every sub-package (the explicit list would leave out one it does not name).
    sub_packages = [
        f"{NAMESPACE}.{name}." + ".".join(init.parent.relative_to(ROOT / name).parts)
        for name in PACKAGES
        for init in (ROOT / name).rglob("*/__init__.py")
    ]
    expected = [NAMESPACE, *(f"{NAMESPACE}.{name}" for name in PACKAGES), *sub_packages]
    assert sorted(setuptools["packages"]) == sorted(expected)


def test_nothing_imports_a_package_by_its_bare_folder_name() -> None:
    # In a clone the folders are importable by their bare names too; a module imported both ways would exist twice.
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for path in _python_files()
        for match in BARE_IMPORT.finditer(path.read_text())
    ]
    assert offenders == []


def test_the_packages_carry_no_pytest_code() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for name in PACKAGES
        for path in (ROOT / name).rglob("*.py")
        if re.search(r"^\s*(?:import|from) (?:pytest|_pytest)\b", path.read_text(), re.MULTILINE)
    ]
    assert offenders == []
