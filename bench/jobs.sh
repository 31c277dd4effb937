#!/usr/bin/env bash
# Issue 11's job-engine benchmarks, on both backends (docs/bench/jobs.md has the figures and how they were read).
# Builds crates/pbi-jobs/examples/jobs_bench.rs in release and runs, one after another (they would share the
# two cores otherwise):
#   1. 100,000 schedules whose first occurrences fall due evenly over WINDOW seconds (3600: the issue's hour);
#   2. a burst: 10,000 jobs due in the same second (no-op handler);
#   3. a burst of 10,000 schedules' occurrences due in the same second.
# PostgreSQL: 127.0.0.1:5432 with trust auth (a database is created for each run and dropped after); this
# machine's cluster runs without autovacuum, so the PostgreSQL runs ANALYZE every minute (--analyze-every).
# Usage: bench/jobs.sh [sqlite|postgres|both]   (WINDOW=600 bench/jobs.sh both: a shorter, denser window)
set -euo pipefail
cd "$(dirname "$0")/.."
backends=${1:-both}
window=${WINDOW:-3600}
out=${OUT:-target/bench-jobs}
mkdir -p "$out"
cargo build --release --locked -p pbi-jobs --example jobs_bench
bench="${CARGO_TARGET_DIR:-target}/release/examples/jobs_bench"

run() {
  local name=$1
  shift
  echo "== $name: $*" | tee "$out/$name.txt"
  "$bench" "$@" 2>&1 | tee -a "$out/$name.txt"
}

for backend in sqlite postgres; do
  [[ $backends == both || $backends == "$backend" ]] || continue
  extra=()
  [[ $backend == postgres ]] && extra=(--analyze-every 60)
  run "schedules-100k-$backend" schedules --backend "$backend" --count 100000 --window "$window" "${extra[@]}"
  run "burst-jobs-10k-$backend" jobs --backend "$backend" --count 10000 "${extra[@]}"
  run "burst-schedules-10k-$backend" schedules --backend "$backend" --count 10000 --window 0 "${extra[@]}"
done
echo "figures in $out/"
