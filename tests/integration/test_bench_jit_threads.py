"""The comparison benchmark's reading of a JVM's JIT compiler threads (``benchmarks.compare.JitThreads``), on a real
JVM: the figure that says how much of a job's CPU went to compiling its Java code (BENCHMARKS.md)."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from benchmarks.compare import JitThreads

pytestmark = pytest.mark.integration

SPIN = """
class Spin {
    public static void main(String[] args) throws Exception {
        long h = 0;
        for (int i = 0; i < 3_000_000; i++) {
            h += ("k" + i).hashCode();
        }
        System.out.println(h);
        System.out.flush();
        Thread.sleep(60_000);
    }
}
"""


def test_the_compiler_threads_of_a_running_jvm_are_found_and_read(tmp_path: Path) -> None:
    java = shutil.which("java")
    assert java is not None, "java is on PATH wherever the integration tests run"
    source = tmp_path / "Spin.java"
    source.write_text(SPIN)
    # The source launcher compiles Spin.java in the JVM itself, and the loop gets its methods compiled: the
    # compiler threads have used CPU by the time the loop's line comes out.
    process = subprocess.Popen([java, str(source)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip()
        threads = JitThreads()
        found = threads.cpu({process.pid}, time.time())
        assert found, "no C1 or C2 compiler thread found in a running JVM"
        assert sum(found.values()) > 0
        names = {Path(f"/proc/{process.pid}/task/{tid}/comm").read_text().strip() for tid in found}
        assert names <= {"C1 CompilerThre", "C2 CompilerThre"}
        # Other threads of the JVM are not counted: the main thread ran the loop.
        assert len(found) < len(list(Path(f"/proc/{process.pid}/task").iterdir()))
    finally:
        process.kill()
        process.wait()
    assert threads.cpu({process.pid}, time.time() + 2) == {}  # gone: nothing read, no error
    assert threads.cpu(set(), time.time()) == {}


def test_a_process_that_is_not_a_jvm_has_no_compiler_threads() -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert JitThreads().cpu({sleeper.pid}, time.time()) == {}
    finally:
        sleeper.kill()
        sleeper.wait()
