#!/usr/bin/env bash
# Compiles the project's JVM operators (jvm/src/main/java) into one jar.
#
#   jvm/build-jar.sh FLINK_LIB_DIR CONNECTOR_JAR OUT_JAR
#
# FLINK_LIB_DIR holds the Flink jars to compile against: the apache-flink package's pyflink/lib in set-up, the
# Flink image's /opt/flink/lib in docker/Dockerfile; both are the Flink release the job runs on, so no Flink jar is
# downloaded for this. CONNECTOR_JAR is the Flink Kafka SQL connector jar the job loads (jvm/pom.xml pins it): the
# partition-lag operator asks Kafka for the latest offsets with the Kafka client shaded inside it. Needs a JDK (javac
# and jar), Java 17.
set -euo pipefail
[ $# -eq 3 ] || { echo "usage: $0 FLINK_LIB_DIR CONNECTOR_JAR OUT_JAR" >&2; exit 2; }
lib=$1
connector=$2
out=$3
[ -f "$connector" ] || { echo "$0: no connector jar at $connector" >&2; exit 2; }
src=$(cd "$(dirname "$0")" && pwd)/src/main/java
classes=$(mktemp -d)
trap 'rm -rf "$classes"' EXIT
javac --release 17 -Xlint:all -Werror -encoding UTF-8 -d "$classes" -cp "$lib/*:$connector" $(find "$src" -name '*.java' | sort)
mkdir -p "$(dirname "$out")"
jar --create --file "$out.partial" --date=2000-01-01T00:00:00Z -C "$classes" .
mv "$out.partial" "$out"
