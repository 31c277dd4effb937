#!/usr/bin/env bash
# Benchmarks the workspace page and the tile list (release build, `pbi-bridge up`: server + sandbox + SQLite):
#   1. browser: time for the workspace page with N pinned tiles to be ready (every tile frame `rendered`),
#      headless Chromium, over several loads;
#   2. server: GET of that workspace page (20 pins), requests per second (wrk);
#   3. tile list: the JSON API's GET /api/v1/tiles with an API token, and the page GET /workspaces/{id}/pin,
#      for a connected user: each asks the sandbox, as the user, for their Power BI workspaces, dashboards
#      and tiles; requests per second (wrk);
#   4. tile token: the JSON API's GET /api/v1/workspaces/{id}/pins/{pin}/token (what each tile frame asks
#      for, and again to renew); requests per second (wrk).
# Usage: bench/workspace.sh [seconds per wrk run, default 10] [pins, default 20]. Prints wrk's own figures.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
pins=${2:-20}
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
. bench/up.sh

echo "== browser: workspace page with $pins pinned tiles, until every tile is rendered (10 loads)"
setup=$(node "$browser_dir/bench-workspace.mjs" "$base" "$pins" 10 "$sandbox")
echo "$setup" | json '"ms per load: %s; median %d ms" % (d["timings"], sorted(d["timings"])[len(d["timings"])//2])'
cookie=$(echo "$setup" | json 'd["cookie"]')
workspace=$(echo "$setup" | json 'd["workspace"]')
pin=$(echo "$setup" | json 'd["pin"]')
token=$(echo "$setup" | json 'd["token"]')

echo
echo "== server: GET $workspace ($pins pins), ${seconds}s, 2 threads, 32 connections"
wrk -t2 -c32 -d"${seconds}s" --latency -H "Cookie: $cookie" "$base$workspace"
echo
echo "== tile list API: GET /api/v1/tiles with an API token (Power BI calls as the user to the sandbox), ${seconds}s, 2 threads, 16 connections"
wrk -t2 -c16 -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$base/api/v1/tiles"
echo
echo "== tile list page: GET $workspace/pin (the same calls, as HTML), ${seconds}s, 2 threads, 16 connections"
wrk -t2 -c16 -d"${seconds}s" --latency -H "Cookie: $cookie" "$base$workspace/pin"
echo
echo "== tile token API: GET /api/v1$workspace/pins/$pin/token with an API token, ${seconds}s, 2 threads, 32 connections"
wrk -t2 -c32 -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$base/api/v1$workspace/pins/$pin/token"
echo
curl -s "$base/metrics" | grep -E '^pbi_bridge_(powerbi_calls|token_refreshes|http_server_errors)' || true
echo "pbi-bridge up resident memory (server + sandbox): $(ps -o rss= -p $up_pid | awk '{printf "%.1f MiB", $1/1024}')"
