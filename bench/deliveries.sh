#!/usr/bin/env bash
# Issue 12's delivery benchmarks (docs/bench/deliveries.md has the figures and how they were read). Builds
# pbi-bridge and crates/pbi-server/examples/deliveries_bench.rs in release and runs, one after the other:
#   1. fanout: 10,000 subscriptions of a 100-row item, all due at once, against `pbi-bridge sandbox` (push
#      limits on): delivered, POSTs per dataset, 429s, wall time, deliveries a second;
#   2. large: one item of 1,500,000 rows from a SQLite data source, on simulated time: POSTs, the densest hour,
#      simulated duration, peak memory of the delivery.
# Usage: bench/deliveries.sh [fanout|large|both]   (COUNT, ROWS and WORKERS override the sizes)
set -euo pipefail
cd "$(dirname "$0")/.."
which=${1:-both}
out=${OUT:-target/bench-deliveries}
mkdir -p "$out"
cargo build --release --locked -p pbi-bridge --bin pbi-bridge -p pbi-server --example deliveries_bench
target="${CARGO_TARGET_DIR:-target}/release"
if [[ $which == both || $which == fanout ]]; then
  "$target/examples/deliveries_bench" "$target/pbi-bridge" fanout --count "${COUNT:-10000}" --rows "${ROWS:-100}" --workers "${WORKERS:-100}" 2>&1 | tee "$out/fanout.txt"
fi
if [[ $which == both || $which == large ]]; then
  "$target/examples/deliveries_bench" "$target/pbi-bridge" large --rows "${ROWS:-1500000}" 2>&1 | tee "$out/large.txt"
fi
echo "figures in $out/"
