#!/usr/bin/env bash
# verify.sh — what verification costs when serving: one 1 GiB file over one HTTP/1.1 stream (curl),
# with verify = "cached" (first request ever, warm cache, cold cache after a restart) and
# verify = "always". With a second binary that has no verification (an older build), also "off".
#
#   benches/verify.sh [SIZE_MIB] [BINARY_WITHOUT_VERIFICATION]
set -euo pipefail
size_mib=${1:-1024}
off_bin=${2:-}
repo=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release/distpoint"
work=$(mktemp -d /tmp/distpoint-verify.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/content"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/content/big.bin"
cat "$work/content/big.bin" > /dev/null
sleep 3   # files changed in the last 2 s are never cached nor their manifests persisted
"$bin" certs dev --out "$work/certs" >/dev/null
cat > "$work/c.toml" <<CONF
[server]
listen = ["127.0.0.1:9556"]
state_dir = "state"
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
[[vpath]]
url = "/cached"
dir = "content"
anonymous = true
[[vpath]]
url = "/always"
dir = "content"
anonymous = true
verify = "always"
CONF
start() { RUST_LOG=warn "$1" serve --config "$work/c.toml" >/dev/null 2>&1 & pid=$!
  for _ in $(seq 50); do curl -s --cacert "$work/certs/ca.crt" -o /dev/null https://127.0.0.1:9556/ && return || sleep 0.1; done; }
get() { curl -s --http1.1 --cacert "$work/certs/ca.crt" -o /dev/null -w '%{speed_download}' "https://127.0.0.1:9556/$1" | awk '{printf "%.0f MB/s", $1/1e6}'; }
start "$bin"
echo "first request (hash + send): $(get cached/big.bin)"
echo "cached, warm:                $(get cached/big.bin) $(get cached/big.bin) $(get cached/big.bin)"
echo "always:                      $(get always/big.bin) $(get always/big.bin) $(get always/big.bin)"
kill "$pid"; wait "$pid" 2>/dev/null || true
start "$bin"
echo "cached, cold (restart):      $(get cached/big.bin)"
kill "$pid"; wait "$pid" 2>/dev/null || true
if [ -n "$off_bin" ]; then
  start "$off_bin"
  echo "off (no verification):       $(get cached/big.bin) $(get cached/big.bin) $(get cached/big.bin)"
  kill "$pid"; wait "$pid" 2>/dev/null || true
fi
