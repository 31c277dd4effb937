#!/usr/bin/env bash
# How long the tile list takes when every Power BI call takes as long as it does on the real service:
# the sandbox delays each Power BI REST call by MILLIS of real time (its `delay` fault), and the JSON API's
# GET /api/v1/tiles is timed for a connected user (release build, `pbi-bridge up`, one request at a time).
# Usage: bench/tile-list-latency.sh [MILLIS per Power BI call, default 50] [requests, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
millis=${1:-50}
requests=${2:-20}
. bench/up.sh
# Alice connects and makes an API token, in the browser (one pin, one load).
token=$(node "$browser_dir/bench-workspace.mjs" "$base" 1 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
calls_before=$(curl -s "$base/metrics" | awk '/^pbi_bridge_powerbi_calls_total/ {s+=$2} END {print s+0}')
curl -s -o /dev/null "$base/api/v1/tiles" -H "Authorization: Bearer $token"
calls=$(( $(curl -s "$base/metrics" | awk '/^pbi_bridge_powerbi_calls_total/ {s+=$2} END {print s+0}') - calls_before ))
curl -s -X POST "$sandbox/_sandbox/faults" -H 'Content-Type: application/json' \
  -d "{\"path\": \"/v1.0/myorg/*\", \"count\": 1000000, \"fault\": {\"kind\": \"delay\", \"millis\": $millis}}" >/dev/null
times=$(for _ in $(seq "$requests"); do
  curl -s -o /dev/null -w '%{time_total}\n' "$base/api/v1/tiles" -H "Authorization: Bearer $token"
done | sort -n)
median=$(echo "$times" | awk '{a[NR]=$1} END {printf "%.0f", a[int((NR+1)/2)] * 1000}')
echo "GET /api/v1/tiles: $calls Power BI calls per listing, each delayed ${millis} ms by the sandbox"
echo "median over $requests requests: ${median} ms (min $(echo "$times" | head -1 | awk '{printf "%.0f", $1*1000}') ms, max $(echo "$times" | tail -1 | awk '{printf "%.0f", $1*1000}') ms)"
echo "if the calls were made one after another: at least $(( calls * millis )) ms"
