#!/usr/bin/env bash
# compare.sh — distpoint against nginx on the same machine, same file, same certificate, one run.
#
#   benches/compare.sh [SIZE_MIB] [CONNECTIONS] [ROUNDS]   (defaults: 1024 MiB, 16 connections, 3 rounds)
#
# Builds distpoint in release mode, makes a random file, starts distpoint (anonymous path "/")
# and nginx (../shared/bench/nginx-baseline.sh) on it, and downloads it with curl: one stream over
# HTTP/1.1 and HTTP/2, then CONNECTIONS parallel streams, ROUNDS times, servers alternating within
# each round. Prints the median MB/s (10^6 bytes per second) and the range.
# distpoint runs with its defaults: integrity = "auto", verify = "cached" (every chunk it sends
# was verified against its manifest; the warm-up download fills the cache).
# The client runs on the same 2 cores as the server, for both servers alike.
set -euo pipefail
size_mib=${1:-1024}
conns=${2:-16}
rounds=${3:-3}
. "$(dirname "$0")/common.sh"
nginx_script="$repo/../shared/bench/nginx-baseline.sh"
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }
setup bench "$size_mib"
# nginx's workers run as an unprivileged user: the files must be readable by it
# (temporary files, deleted on exit).
chmod 755 "$work" "$work/content"
chmod 644 "$work/content/big.bin" "$work/certs/server.key"
anonymous_config 9444
start_server "$bin" 9444
ng_pid=$("$nginx_script" start "$work/content" "$work/certs/server.crt" "$work/certs/server.key" 9443)
on_exit='"$nginx_script" stop "$ng_pid"'
cat "$work/content/big.bin" > /dev/null   # page cache warm for both
# One full download each first: distpoint hashes a file on its first request
# (integrity = "auto") and then serves it from its verified-chunk cache.
for port in 9444 9443; do curl -s --cacert "$ca" -o /dev/null "https://127.0.0.1:$port/big.bin"; done

single() { # URL HTTPFLAG -> MB/s
  curl -s "$2" --cacert "$ca" -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.0f", $1/1e6}'
}
parallel() { # URL -> aggregate MB/s over $conns concurrent downloads
  local start end
  start=$(date +%s.%N)
  for _ in $(seq "$conns"); do curl -s --http1.1 --cacert "$ca" -o /dev/null "$1" & done
  wait
  end=$(date +%s.%N)
  awk -v s="$start" -v e="$end" -v n="$conns" -v b="$((size_mib * 1024 * 1024))" 'BEGIN{printf "%.0f", n*b/(e-s)/1e6}'
}

declare -A results
for _ in $(seq "$rounds"); do
  for name in distpoint nginx; do
    port=9444; [ "$name" = nginx ] && port=9443
    url="https://127.0.0.1:$port/big.bin"
    results[$name,h1]+="$(single "$url" --http1.1) "
    results[$name,h2]+="$(single "$url" --http2) "
    results[$name,par]+="$(parallel "$url") "
  done
done
stat() { # "v1 v2 ..." -> "median (min-max)"
  tr ' ' '\n' <<<"$1" | grep . | sort -n | awk '{a[NR]=$1} END {printf "%d (%d-%d)", a[int((NR+1)/2)], a[1], a[NR]}'
}
echo "median MB/s over $rounds rounds (min-max)"
printf '%-10s %20s %20s %24s\n' server "1 x HTTP/1.1" "1 x HTTP/2" "$conns x HTTP/1.1 (sum)"
for name in distpoint nginx; do
  printf '%-10s %20s %20s %24s\n' "$name" "$(stat "${results[$name,h1]}")" "$(stat "${results[$name,h2]}")" "$(stat "${results[$name,par]}")"
done
