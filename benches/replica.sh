#!/usr/bin/env bash
# replica.sh — what a branch distribution point costs on the WAN, through the real binaries:
#
#   1. one-chunk update: a site publishes SIZE_MIB of random data, a branch replicates it; 100
#      bytes change in the middle, the site republishes, the branch syncs. Printed: content bytes
#      the site sent for the update (from its access log) and the branch's own figures (bytes
#      fetched, documents included, and bytes reused from its served version);
#   2. rate limit: a second branch with rate_limit = RATE bytes/s pulls RATE_MIB of new data;
#      printed: bytes fetched / wall time of `distpoint sync`, against RATE, in %.
#
#   benches/replica.sh [SIZE_MIB] [RATE] [RATE_MIB]      (defaults 256, 5000000 and 60)
#
# DISTPOINT_BIN picks the binary (default: target/release/distpoint, built first). Needs about
# 4 × SIZE_MIB of free space under /tmp; everything is removed on exit.
set -euo pipefail
size_mib=${1:-256}
rate=${2:-5000000}
rate_mib=${3:-60}
repo=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "${DISTPOINT_BIN:-}" ]; then
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
  DISTPOINT_BIN="$repo/target/release/distpoint"
fi
dp() { "$DISTPOINT_BIN" "$@"; }
work=$(mktemp -d /tmp/distpoint-replica.XXXXXX)
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done; rm -rf "$work"' EXIT
cd "$work"
mkdir -p site/pkg branch/pkg limited/pkg
for t in site branch limited; do dp certs dev --out $t/certs >/dev/null; done
dp publish --gen-key site/publisher.key >/dev/null
head -c $((size_mib << 20)) /dev/urandom > site/pkg/big.bin
dp publish site/pkg --key site/publisher.key --sequence 1 >/dev/null

cat > site/site.toml <<'EOF'
[server]
listen = ["127.0.0.1:9571"]
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
client_ca = "certs/ca.crt"
[[vpath]]
url = "/pkg"
dir = "pkg"
integrity = "published"
publisher_keys = ["publisher.key.pub"]
allow = ["cert:client01"]
EOF
branch_config() { # FOLDER PORT EXTRA
  cat > "$1/$1.toml" <<EOF
[server]
listen = ["127.0.0.1:$2"]
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
[[vpath]]
url = "/pkg"
dir = "pkg"
integrity = "published"
publisher_keys = ["../site/publisher.key.pub"]
anonymous = true
[vpath.upstream]
sources = ["https://127.0.0.1:9571/pkg"]
ca = "../site/certs/ca.crt"
client_cert = "../site/certs/client.crt"
client_key = "../site/certs/client.key"
interval_secs = 3600
$3
EOF
}
branch_config branch 9572 ""
branch_config limited 9573 "rate_limit = $rate"

start() { # CONFIG LOG
  RUST_LOG=info "$DISTPOINT_BIN" serve --config "$1" >"$2.out" 2>"$2" &
  pids+=($!)
  for _ in $(seq 100); do grep -q "listening on" "$2.out" 2>/dev/null && return || sleep 0.1; done
  echo "$1 did not start:" >&2; cat "$2" >&2; exit 1
}
# Content bytes the site sent (access log lines for files below /pkg/).
site_bytes() {
  grep 'distpoint::access' site.log | grep -v 'path=/pkg/ ' | sed -nE 's/.* bytes=([0-9]+) .*/\1/p' |
    awk '{s += $1} END {print s + 0}'
}
field() { sed -nE "s/.*\"$1\":([0-9]+).*/\1/p"; }

start site/site.toml site.log
start branch/branch.toml branch.log
dp sync --config branch/branch.toml --json > /dev/null
before=$(site_bytes)
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"

# 1. One changed chunk in the middle.
printf 'x%.0s' $(seq 100) | dd of=site/pkg/big.bin bs=1 seek=$(((size_mib << 19) + 17)) conv=notrunc status=none
dp publish site/pkg --key site/publisher.key --sequence 2 >/dev/null
out=$(dp sync --config branch/branch.toml --json)
sleep 0.5   # the last access-log lines
sent=$(($(site_bytes) - before))
echo "one-chunk update of $size_mib MiB: site sent $sent content bytes;" \
  "branch: $(echo "$out" | field bytes_fetched) bytes fetched (documents included)," \
  "$(echo "$out" | field bytes_reused) reused"
cmp site/pkg/big.bin <(curl -s --cacert branch/certs/ca.crt https://127.0.0.1:9572/pkg/big.bin) &&
  echo "  the branch serves the new bytes"

# 2. Rate limit: new data only (the limited branch has nothing yet).
rm site/pkg/big.bin
head -c $((rate_mib << 20)) /dev/urandom > site/pkg/new.bin
dp publish site/pkg --key site/publisher.key --sequence 3 >/dev/null
start limited/limited.toml limited.log
# Its start-up sync pulls sequence 3; wait for it to end, then time a sync of sequence 4.
for _ in $(seq 600); do
  dp status --config limited/limited.toml --json 2>/dev/null | grep -q '"sequence":3' && break
  sleep 0.2
done
head -c $((rate_mib << 20)) /dev/urandom > site/pkg/new.bin
dp publish site/pkg --key site/publisher.key --sequence 4 >/dev/null
t0=$(date +%s.%N)
out=$(dp sync --config limited/limited.toml --json)
t1=$(date +%s.%N)
fetched=$(echo "$out" | field bytes_fetched)
awk -v b="$fetched" -v t0="$t0" -v t1="$t1" -v r="$rate" 'BEGIN {
  s = t1 - t0; m = b / s
  printf "rate_limit %d B/s: %d bytes in %.2f s = %.0f B/s (%+.2f %%)\n", r, b, s, m, (m / r - 1) * 100 }'
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg)"
