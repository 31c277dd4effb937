#!/usr/bin/env bash
# Benchmarks the sandbox (release build) with wrk on this machine:
#   1. authenticated GET /v1.0/myorg/groups (a service principal's token), requests per second;
#   2. POST .../rows with 10,000 rows per request into a basicFIFO push table, push limits off.
# Usage: bench/sandbox.sh [seconds per run, default 10]. Prints wrk's own figures.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
command -v wrk >/dev/null || { echo "installing wrk"; apt-get install -y -qq wrk >/dev/null; }
. bench/lib.sh
token=$(curl -s "$base/contoso.onmicrosoft.com/oauth2/v2.0/token" -d grant_type=client_credentials -d client_id="$client" \
  --data-urlencode client_secret="$secret" -d scope=https://analysis.windows.net/powerbi/api/.default | json 'd["access_token"]')
workspace=$(curl -s -H "Authorization: Bearer $token" "$base/v1.0/myorg/groups" | json 'd["value"][0]["id"]')
dataset=$(curl -s -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
  "$base/v1.0/myorg/groups/$workspace/datasets?defaultRetentionPolicy=basicFIFO" \
  -d '{"name":"Bench","tables":[{"name":"Events","columns":[{"name":"At","dataType":"DateTime"},{"name":"Device","dataType":"String"},{"name":"Reading","dataType":"Double"},{"name":"Count","dataType":"Int64"},{"name":"Ok","dataType":"Boolean"}]}]}' | json 'd["id"]')
python3 -c "
import json
rows=[{'At':'2026-01-01T00:00:00Z','Device':'device-%d'%i,'Reading':i*0.5,'Count':i,'Ok':i%2==0} for i in range(10000)]
open('$work/rows.json','w').write(json.dumps({'rows':rows}))"
cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
local f = io.open("$work/rows.json", "rb"); wrk.body = f:read("*a"); f:close()
LUA

echo "== GET /v1.0/myorg/groups (authenticated), ${seconds}s, 2 threads, 64 connections"
wrk -t2 -c64 -d"${seconds}s" --latency -H "Authorization: Bearer $token" "$base/v1.0/myorg/groups"
echo
echo "== POST rows, 10,000 rows ($(wc -c <"$work/rows.json") bytes) per request, ${seconds}s, 1 thread, 4 connections"
wrk -t1 -c4 -d"${seconds}s" --latency -s "$work/post.lua" "$base/v1.0/myorg/groups/$workspace/datasets/$dataset/tables/Events/rows"
rows=$(curl -s "$base/_sandbox/datasets/$dataset/tables/Events/rows?top=0" | json 'd["count"]')
echo "rows kept in the basicFIFO table afterwards: $rows"
echo "sandbox resident memory: $(ps -o rss= -p $sandbox_pid | awk '{printf "%.1f MiB", $1/1024}')"
