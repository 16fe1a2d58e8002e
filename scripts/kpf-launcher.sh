#!/usr/bin/env bash
# `kpf` of a clone: set-up copies this file to bin/kpf of the shared virtual environment, so that <clone>/.venv/bin/kpf
# exists. The environment is shared by every clone on the machine (.venv is a link into ~/.cache/kafka-pinecone-flink,
# keyed by requirements.lock), so this script must not name a clone: it runs the code of the clone it was called
# through. Nothing in it depends on the clone, so every set-up writes the same bytes and the cache stays reusable.
#
# Which clone: the path it was called by (<clone>/.venv/bin/kpf, read without resolving the .venv link), else the
# nearest directory at or above the current one that holds jobs/cli.py (a clone's root). The clone's root comes first
# on sys.path and the current directory is not on it (python -P), so another clone's working directory cannot shadow
# the code.
set -euo pipefail

is_clone() { [ -f "$1/jobs/cli.py" ] && [ -f "$1/scripts/setup.sh" ]; }

root=""
called_as_dir=$(dirname -- "$0")
# Logical path: "<clone>/.venv/bin/../.." is <clone>, not the cache directory the link points to.
candidate=$(cd -L -- "$called_as_dir/../.." 2>/dev/null && pwd -L) || candidate=""
if [ -n "$candidate" ] && is_clone "$candidate"; then
  root=$candidate
else
  dir=$(pwd -L)
  while :; do
    if is_clone "$dir"; then root=$dir; break; fi
    [ "$dir" = / ] && break
    dir=$(dirname -- "$dir")
  done
fi
if [ -z "$root" ]; then
  echo "kpf: error: cannot tell which kafka-pinecone-flink clone to run: call it as <clone>/.venv/bin/kpf, or from" \
    "a directory inside a clone (or use <clone>/.venv/bin/python -m kafka_pinecone_flink.jobs.cli)" >&2
  exit 2
fi
# The environment's interpreter, next to this file wherever it was called from (a link to it included).
venv_bin=$(dirname -- "$(readlink -f -- "$0")")
export PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}"
# The packages import as kafka_pinecone_flink.* (the clone's kafka_pinecone_flink/ links to the folders); a clone from
# before that layout has only the bare folders. Both share this environment, so the launcher serves both.
if [ -f "$root/kafka_pinecone_flink/__init__.py" ]; then module=kafka_pinecone_flink.jobs.cli; else module=jobs.cli; fi
exec "$venv_bin/python" -P -m "$module" "$@"
