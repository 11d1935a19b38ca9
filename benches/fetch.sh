#!/usr/bin/env bash
# fetch.sh — `distpoint fetch` (every chunk verified, fsync + rename) against the usual clients on
# the same 1 GiB file, as medians of alternated rounds, and as ratios:
#
#   1. one connection: `fetch --connections 1` against curl (one stream, no verification, no fsync);
#   2. eight connections: `fetch --connections 8` against `aria2c -x8 -s8` through ?metalink
#      (aria2c checks every piece too);
#   3. mirrors: `fetch` from three sources (distpoint + two nginx, --connections 2 each) against
#      the same from distpoint alone.
#
#   benches/fetch.sh [SIZE_MIB] [ROUNDS]      (defaults 1024 and 3)
#
# Every output is compared byte for byte with the source. The machine may be shared: the load
# average is printed before and after, and only ratios of alternated runs mean much. The ratio
# column is the median of the per-round ratios (each pair ran back to back); the medians of the
# rates are given as well.
set -euo pipefail
size_mib=${1:-1024}
rounds=${2:-3}
. "$(dirname "$0")/common.sh"
command -v aria2c >/dev/null || (apt-get update -qq && apt-get install -y -qq aria2 >/dev/null)
baseline="$repo/../shared/bench/nginx-baseline.sh"
[ -x "$baseline" ] || baseline=/work/shared/bench/nginx-baseline.sh
setup fetch "$size_mib"
mkdir "$work/out"
anonymous_config 9557
start_server "$bin" 9557
nginx_a=$("$baseline" start "$work/content" "$work/certs/server.crt" "$work/certs/server.key" 9558)
nginx_b=$("$baseline" start "$work/content" "$work/certs/server.crt" "$work/certs/server.key" 9559)
on_exit="$baseline stop $nginx_a; $baseline stop $nginx_b"
url=https://127.0.0.1:9557/big.bin
curl -s --cacert "$ca" -o /dev/null "$url"   # warm: manifest made, chunk cache filled
curl -s --cacert "$ca" "$url?manifest" > "$work/big.manifest.json"
root=$(sed -E 's/.*"root":"([0-9a-f]+)".*/\1/' "$work/big.manifest.json")
bytes=$((size_mib * 1024 * 1024))
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)"

declare -A results
run() { # LABEL CMD...: one timed run, output checked; appends MB/s to results[LABEL]
  rm -f "$work/out/"*
  local s e
  s=$(date +%s.%N); "${@:2}" >/dev/null 2>"$work/run.err" || { echo "$1 failed:" >&2; cat "$work/run.err" >&2; exit 1; }
  e=$(date +%s.%N)
  cmp -s "$work/out/big.bin" "$work/content/big.bin" || { echo "$1: output differs" >&2; exit 1; }
  results[$1]+="$(awk -v s="$s" -v e="$e" -v b="$bytes" 'BEGIN{printf "%.0f", b/(e-s)/1e6}') "
}
median() { tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
fetch() { "$bin" fetch "$@" -o "$work/out/big.bin" --expect "$root" --cacert "$ca"; }

for _ in $(seq "$rounds"); do
  run curl curl -s --cacert "$ca" -o "$work/out/big.bin" "$url"
  run fetch1 fetch "$url" --connections 1
  run aria2c aria2c -q -x8 -s8 --ca-certificate="$ca" -d "$work/out" --follow-metalink=mem "$url?metalink"
  run fetch8 fetch "$url" --connections 8
  run one fetch "$url" --connections 2
  run three fetch "$url" --mirror https://127.0.0.1:9558/big.bin --mirror https://127.0.0.1:9559/big.bin --connections 2
done
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"

row() { # LABEL KEY BASE_KEY
  local m b r
  m=$(median "${results[$2]}"); b=$(median "${results[$3]}")
  r=$(paste -d/ <(tr ' ' '\n' <<<"${results[$2]}" | grep .) <(tr ' ' '\n' <<<"${results[$3]}" | grep .) |
      awk -F/ '{printf "%.3f ", $1/$2}')
  printf '| %s | %s | %s | %s | %s | %.2f× |\n' "$1" "${results[$2]% }" "${results[$3]% }" "$m" "$b" "$(median "$r")"
}
echo
echo "| distpoint fetch | MB/s per round | baseline MB/s per round | median | baseline median | ratio (median of rounds) |"
echo "|---|---|---|---|---|---|"
row "-c1 vs curl (one stream)" fetch1 curl
row "-c8 vs aria2c -x8 ?metalink" fetch8 aria2c
row "3 sources (distpoint + 2 nginx) -c2 vs distpoint alone -c2" three one
