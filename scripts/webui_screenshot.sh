#!/usr/bin/env bash
# Screenshot of a running job's graph in the Flink Web UI, taken in headless Chromium (apt-get install chromium).
# Usage: scripts/webui_screenshot.sh REST_URL OUTPUT.png   (e.g. http://127.0.0.1:8081 docs/flink-web-ui-job-graph.png)
set -euo pipefail
rest=${1:?REST URL of a local run or cluster}
out=${2:?output PNG}
job=$(curl -sf "$rest/jobs" | python3 -c 'import json,sys; print([j["id"] for j in json.load(sys.stdin)["jobs"] if j["status"] == "RUNNING"][0])')
profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
  --disable-component-update --disable-sync --user-data-dir="$profile" --window-size=1600,900 \
  --virtual-time-budget=15000 --screenshot="$out" "$rest/#/job/running/$job/overview" 2>/dev/null
echo "$out: job $job"
