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
repo=$(cd "$(dirname "$0")/.." && pwd)
nginx_script="$repo/../shared/bench/nginx-baseline.sh"
command -v curl >/dev/null || { echo "curl is needed" >&2; exit 1; }

cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release/distpoint"

work=$(mktemp -d /tmp/distpoint-bench.XXXXXX)
chmod 755 "$work"
trap 'kill $dp_pid 2>/dev/null || true; [ -n "${ng_pid:-}" ] && "$nginx_script" stop "$ng_pid"; rm -rf "$work"' EXIT
mkdir -p "$work/content"
chmod 755 "$work/content"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/content/big.bin"
chmod 644 "$work/content/big.bin"
"$bin" certs dev --out "$work/certs" >/dev/null
chmod 644 "$work/certs/server.key"   # nginx's workers read it as an unprivileged user (temp files, deleted after)
cat > "$work/distpoint.toml" <<CONF
[server]
listen = ["127.0.0.1:9444"]
state_dir = "state"
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
[[vpath]]
url = "/"
dir = "content"
anonymous = true
CONF
RUST_LOG=warn "$bin" serve --config "$work/distpoint.toml" >/dev/null 2>"$work/distpoint.log" &
dp_pid=$!
ng_pid=$("$nginx_script" start "$work/content" "$work/certs/server.crt" "$work/certs/server.key" 9443)
for _ in $(seq 50); do curl -s --cacert "$work/certs/ca.crt" -o /dev/null https://127.0.0.1:9444/ && break || sleep 0.1; done
cat "$work/content/big.bin" > /dev/null   # page cache warm for both
# One full download each first: distpoint hashes a file on its first request
# (integrity = "auto") and then serves it from its verified-chunk cache.
for port in 9444 9443; do curl -s --cacert "$work/certs/ca.crt" -o /dev/null "https://127.0.0.1:$port/big.bin"; done

single() { # URL HTTPFLAG -> MB/s
  curl -s "$2" --cacert "$work/certs/ca.crt" -o /dev/null -w '%{speed_download}' "$1" | awk '{printf "%.0f", $1/1e6}'
}
parallel() { # URL -> aggregate MB/s over $conns concurrent downloads
  local start end
  start=$(date +%s.%N)
  for _ in $(seq "$conns"); do curl -s --http1.1 --cacert "$work/certs/ca.crt" -o /dev/null "$1" & done
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
