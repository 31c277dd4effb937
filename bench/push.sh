#!/usr/bin/env bash
# Streams 1,000,000 CSV rows into a sandbox push table with `pbi-bridge powerbi create-rows` (release build,
# push limits off) and reports rows per second, the number of POST rows requests (must be exactly 100) and
# the CLI's peak memory (target: under 64 MB whatever the input size).
# Usage: bench/push.sh [rows, default 1000000]
set -euo pipefail
cd "$(dirname "$0")/.."
rows=${1:-1000000}
. bench/lib.sh
export PBI_BRIDGE_CLIENT_SECRET=$secret
workspace=$(echo "$seed" | json '[w["id"] for w in d["workspaces"] if w["name"]=="Sales Analytics"][0]')
common=(--api-base "$base" --authority "$base/contoso.onmicrosoft.com" --client-id "$client" --workspace "$workspace")

echo '{"name":"Bench","tables":[{"name":"Events","columns":[{"name":"At","dataType":"DateTime"},{"name":"Device","dataType":"String"},{"name":"Reading","dataType":"Double"},{"name":"Count","dataType":"Int64"},{"name":"Ok","dataType":"Boolean"}]}]}' \
  | $bin powerbi create-dataset --definition - --fifo --json "${common[@]}" >"$work/dataset.json"
dataset=$(json 'd["id"]' <"$work/dataset.json")
python3 - "$rows" >"$work/rows.csv" <<'PY'
import sys
n = int(sys.argv[1])
out = sys.stdout
out.write("At,Device,Reading,Count,Ok\n")
for i in range(n):
    out.write(f"2026-01-01T00:00:00Z,device-{i % 1000},{i * 0.25},{i},{'true' if i % 2 else 'false'}\n")
PY
echo "input: $rows rows, $(du -h "$work/rows.csv" | cut -f1)"
curl -s -X DELETE "$base/_sandbox/requests" >/dev/null
start=$(date +%s.%N)
/usr/bin/time -f "%M" -o "$work/rss" $bin powerbi create-rows --dataset "$dataset" --table Events --file "$work/rows.csv" "${common[@]}"
end=$(date +%s.%N)
posts=$(curl -s "$base/_sandbox/requests" | json 'sum(1 for r in d["requests"] if r["method"]=="POST" and r["path"].endswith("/tables/Events/rows"))')
python3 -c "
elapsed = $end - $start
print(f'elapsed: {elapsed:.2f} s; {$rows / elapsed:,.0f} rows/s; POST rows requests: $posts; CLI peak RSS: {$(cat "$work/rss") / 1024:.1f} MiB')"
