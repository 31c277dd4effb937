#!/usr/bin/env bash
# Memory of one `pbi-bridge serve` holding 100,000 schedules (issue 11). The schedules are written straight
# into a fresh SQLite database as rows of pbi-bridge's own kind `housekeeping.purge` (owners bench:0…), all
# due now; serve's sweeper then enqueues each one's occurrence, the engine runs them (a purge each), and each
# end enqueues the next occurrence an hour later, so that at the end 100,000 schedules and 100,000 waiting
# River jobs are held. Prints the resident memory (VmRSS, and the peak VmHWM) at start, while it works, and
# once every schedule has run once.
# Usage: bench/serve-memory.sh [schedules, default 100000]
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-100000}
cargo build --release -q --locked -p pbi-bridge
bin="${CARGO_TARGET_DIR:-target}/release/pbi-bridge"
work=$(mktemp -d)
trap 'kill $serve_pid 2>/dev/null; rm -rf "$work"' EXIT
memory() { awk '/VmRSS|VmHWM/ {printf "%s %s kB  ", $1, $2}' "/proc/$serve_pid/status"; echo "($1)"; }

# A first start makes the data directory, its key and the database; then it is stopped.
"$bin" serve --addr 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
serve_pid=$!
until grep -q "listening on" "$work/out" 2>/dev/null; do sleep 0.2; done
kill $serve_pid && wait $serve_pid 2>/dev/null || true
db="$work/data/pbi-bridge.db"
now=$(date +%s)
python3 - "$db" "$count" "$now" <<'PY'
import sqlite3, sys, uuid
db, count, now = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
con = sqlite3.connect(db)
con.executemany(
    "INSERT INTO schedules (id, kind, owner, args, recurrence, time_zone, next_run_at, created_at, updated_at) "
    "VALUES (?, 'housekeeping.purge', ?, '{}', '0 * * * *', 'UTC', ?, ?, ?)",
    ((str(uuid.uuid4()), f"bench:{i}", now - 1, now, now) for i in range(count)),
)
con.commit()
print(f"wrote {count} schedules, all due")
PY

"$bin" serve --addr 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
serve_pid=$!
until grep -q "listening on" "$work/out" 2>/dev/null; do sleep 0.2; done
memory "started"
started=$(date +%s)
while :; do
  sleep 30
  ran=$(sqlite3 "$db" "SELECT COUNT(*) FROM schedules WHERE owner LIKE 'bench:%' AND last_run_at IS NOT NULL")
  memory "$ran of $count have run, $(( $(date +%s) - started )) s"
  [ "$ran" -ge "$count" ] && break
done
waiting=$(sqlite3 "$db" "SELECT COUNT(*) FROM river_job WHERE kind = 'housekeeping.purge' AND state = 'scheduled'")
echo "river jobs waiting for their next occurrence: $waiting"
sleep 60
memory "a minute later, idle"
