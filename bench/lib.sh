# Shared by the bench scripts: builds the release binary and starts a sandbox with push limits off.
# Sets: bin, work (a temp dir removed on exit), base (the sandbox URL), seed (its /_sandbox/seed JSON),
# client and secret (the demo service principal); defines json EXPR (reads JSON on stdin as d).
cargo build --release -q -p pbi-bridge
bin=./target/release/pbi-bridge
work=$(mktemp -d)
$bin sandbox --addr 127.0.0.1:0 --no-push-limits >"$work/out" 2>"$work/err" &
sandbox_pid=$!
trap 'kill $sandbox_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [ -s "$work/out" ] && break; sleep 0.1; done
base=$(head -1 "$work/out" | awk '{print $NF}')
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
seed=$(curl -s "$base/_sandbox/seed")
client=$(echo "$seed" | json '[a["clientId"] for a in d["apps"] if a["displayName"]=="pbi-bridge automation"][0]')
secret=$(echo "$seed" | json '[a["secrets"][0]["value"] for a in d["apps"] if a["displayName"]=="pbi-bridge automation"][0]')
