#!/usr/bin/env bash
# Builds jvm/src and runs its JUnit tests (jvm/src/test/java) with Maven: `make test-jvm`, part of `make test`.
#
#   jvm/test.sh [MAVEN ARGS...]      e.g. jvm/test.sh -Dtest=DedupFunctionTest
#
# Offline (mvn -o) when the local Maven repository (~/.m2) already holds the build's plugins and dependencies, so a
# fresh clone on a machine that ran it once needs no network; otherwise Maven fetches them from Maven Central once.
set -euo pipefail
cd "$(dirname "$0")"
command -v mvn >/dev/null 2>&1 || { echo "test-jvm: mvn was not found: install Maven" >&2; exit 1; }
rm -rf target/surefire-reports
log=$(mktemp)
trap 'rm -f "$log"' EXIT
mvn_args=(-B -q -Dstyle.color=never test "$@")
if ! mvn -o "${mvn_args[@]}" >"$log" 2>&1; then
  if grep -q "offline mode" "$log"; then
    echo "test-jvm: fetching the JVM build's plugins and dependencies from Maven Central (once)" >&2
    mvn "${mvn_args[@]}" >"$log" 2>&1 || { sed 's/\x1b\[[0-9;]*m//g' "$log" >&2; exit 1; }
  else
    sed 's/\x1b\[[0-9;]*m//g' "$log" >&2
    exit 1
  fi
fi
sed 's/\x1b\[[0-9;]*m//g' "$log"
awk '/^Tests run:/ { gsub(",", ""); run += $3; failed += $5 + $7; skipped += $9 }
     END { printf "JVM tests: %d run, %d failed, %d skipped\n", run, failed, skipped }' target/surefire-reports/*.txt
