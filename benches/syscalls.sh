#!/usr/bin/env bash
# syscalls.sh — how distpoint's write path looks from the kernel: size of every socket write
# during one download over HTTP/1.1 and over HTTP/2 (strace; installs it if missing).
#
#   benches/syscalls.sh [SIZE_MIB]      (default 100)
set -euo pipefail
size_mib=${1:-100}
repo=$(cd "$(dirname "$0")/.." && pwd)
command -v strace >/dev/null || (apt-get update -qq && apt-get install -y -qq strace >/dev/null)
cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
bin="$repo/target/release/distpoint"
work=$(mktemp -d /tmp/distpoint-syscalls.XXXXXX)
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
mkdir "$work/content"
head -c "$((size_mib * 1024 * 1024))" /dev/urandom > "$work/content/f.bin"
"$bin" certs dev --out "$work/certs" >/dev/null
printf '[server]\nlisten = ["127.0.0.1:9555"]\nstate_dir = "state"\n[tls]\ncert = "certs/server.crt"\nkey = "certs/server.key"\n[[vpath]]\nurl = "/"\ndir = "content"\nanonymous = true\n' > "$work/c.toml"
RUST_LOG=warn "$bin" serve --config "$work/c.toml" >/dev/null 2>&1 &
pid=$!
for _ in $(seq 50); do curl -s --cacert "$work/certs/ca.crt" -o /dev/null https://127.0.0.1:9555/ && break || sleep 0.1; done
for v in --http1.1 --http2; do
  strace -f -e trace=write,writev,sendto,sendmsg -o "$work/trace" -p "$pid" 2>/dev/null &
  st=$!
  sleep 0.5
  curl -s "$v" --cacert "$work/certs/ca.crt" -o /dev/null https://127.0.0.1:9555/f.bin
  sleep 0.2
  kill "$st"; wait "$st" 2>/dev/null || true
  # Socket writes are the ones carrying TLS application data (records start with 0x17 = \27).
  grep -E 'write(v)?\(' "$work/trace" | grep '\\27\\3\\3' | sed -E 's/.*= ([0-9]+)$/\1/' | sort -n > "$work/sizes"
  awk -v v="$v" '{a[NR]=$1; s+=$1; if ($1 < 65536) small++} END {printf "%-9s %6d socket writes, %7.1f MB, median %7d bytes, %d under 64 KiB\n", v, NR, s/1e6, a[int((NR+1)/2)], small}' "$work/sizes"
done
