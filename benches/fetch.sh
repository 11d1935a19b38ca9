#!/usr/bin/env bash
# fetch.sh — download one file from distpoint with `distpoint fetch` (1, 4, 8 connections,
# verifying every chunk, fsync + rename), curl (one stream, no verification) and
# aria2c -x8 through the ?metalink document (checks every piece). Prints seconds and MB/s.
#
#   benches/fetch.sh [SIZE_MIB]      (default 1024)
set -euo pipefail
size_mib=${1:-1024}
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v aria2c >/dev/null || (apt-get update -qq && apt-get install -y -qq aria2 >/dev/null)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release/distpoint"
work=$(mktemp -d /tmp/distpoint-fetch.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/content" "$work/out"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/content/big.bin"
sleep 3   # let the file settle so its manifest is persisted and chunks cached
"$bin" certs dev --out "$work/certs" >/dev/null
printf '[server]\nlisten = ["127.0.0.1:9557"]\nstate_dir = "state"\n[tls]\ncert = "certs/server.crt"\nkey = "certs/server.key"\n[[vpath]]\nurl = "/"\ndir = "content"\nanonymous = true\n' > "$work/c.toml"
RUST_LOG=warn "$bin" serve --config "$work/c.toml" >/dev/null 2>&1 &
pid=$!
url=https://127.0.0.1:9557/big.bin
ca="$work/certs/ca.crt"
for _ in $(seq 50); do curl -s --cacert "$ca" -o /dev/null https://127.0.0.1:9557/ && break || sleep 0.1; done
curl -s --cacert "$ca" -o /dev/null "$url"   # warm: manifest made, chunk cache filled
root=$(curl -s --cacert "$ca" "$url?manifest" | sed -E 's/.*"root":"([0-9a-f]+)".*/\1/')
bytes=$((size_mib * 1024 * 1024))
run() { # LABEL CMD...
  rm -f "$work/out/"*
  local s e
  s=$(date +%s.%N); "${@:2}" >/dev/null 2>&1; e=$(date +%s.%N)
  cmp -s "$work/out/big.bin" "$work/content/big.bin" || { echo "$1: output differs" >&2; exit 1; }
  awk -v l="$1" -v s="$s" -v e="$e" -v b="$bytes" 'BEGIN{printf "%-28s %6.2f s %6.0f MB/s\n", l, e-s, b/(e-s)/1e6}'
}
for c in 1 4 8; do
  run "distpoint fetch -c$c" "$bin" fetch "$url" -o "$work/out/big.bin" --expect "$root" --connections "$c" --cacert "$ca"
done
run "curl (1 stream)" curl -s --cacert "$ca" -o "$work/out/big.bin" "$url"
run "aria2c -x8 ?metalink" aria2c -q -x8 -s8 --ca-certificate="$ca" -d "$work/out" --follow-metalink=mem "$url?metalink"
