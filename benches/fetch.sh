#!/usr/bin/env bash
# fetch.sh — download one file from distpoint with `distpoint fetch` (1, 4, 8 connections,
# verifying every chunk, fsync + rename), curl (one stream, no verification) and
# aria2c -x8 through the ?metalink document (checks every piece). Prints seconds and MB/s.
#
#   benches/fetch.sh [SIZE_MIB]      (default 1024)
set -euo pipefail
size_mib=${1:-1024}
. "$(dirname "$0")/common.sh"
command -v aria2c >/dev/null || (apt-get update -qq && apt-get install -y -qq aria2 >/dev/null)
setup fetch "$size_mib"
mkdir "$work/out"
sleep 3   # let the file settle so its manifest is persisted and chunks cached
anonymous_config 9557
start_server "$bin" 9557
url=https://127.0.0.1:9557/big.bin
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
