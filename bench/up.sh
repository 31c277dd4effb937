# Shared by the bench scripts that run all of pbi-bridge: builds the release binary, installs puppeteer-core
# when missing, and starts `pbi-bridge up` on free ports with a fresh data directory.
# Sets: browser_dir, work (a temp dir removed on exit), up_pid, base (the server URL), sandbox (the sandbox
# URL); defines json EXPR (reads JSON on stdin as d).
# PBI_BRIDGE_BIN: a pbi-bridge binary to run instead of building this tree's (to compare two builds on one
# machine in one sitting: build the other commit elsewhere and point this at it).
browser_dir=crates/pbi-bridge/tests/browser
[ -d "$browser_dir/node_modules/puppeteer-core" ] || PUPPETEER_SKIP_DOWNLOAD=1 npm ci --silent --no-audit --no-fund --prefix "$browser_dir"
if [ -z "${PBI_BRIDGE_BIN:-}" ]; then
  cargo build --release -q -p pbi-bridge
  PBI_BRIDGE_BIN="${CARGO_TARGET_DIR:-target}/release/pbi-bridge"
fi
work=$(mktemp -d)
"$PBI_BRIDGE_BIN" up --addr 127.0.0.1:0 --sandbox-addr 127.0.0.1:0 --data-dir "$work/data" >"$work/out" 2>"$work/err" &
up_pid=$!
trap 'kill $up_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 300); do grep -q "Press Ctrl-C" "$work/out" 2>/dev/null && break; sleep 0.1; done
base=$(head -1 "$work/out" | awk '{print $NF}')
sandbox=$(grep -o 'REST): http[^ ]*' "$work/out" | awk '{print $2}')
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
