#!/usr/bin/env bash
# objstore.sh — serve-through paths (issue 14): one file served by the same distpoint server
# from a local `dir` and through from an S3-compatible store (Garage on 127.0.0.1), next to nginx
# on the same file, as medians of alternated rounds.
#
#   benches/objstore.sh [SIZE_MIB] [ROUNDS]        defaults: 256 MiB, 5 rounds
#
# Each round restarts distpoint with an empty cache_dir (and so an empty memory cache), then:
#   cold   GET of the serve-through file: every chunk read from the store (ranged GET), hashed
#   then, alternating the order round by round (A B B A …):
#   warm   the same GET again: every chunk from the caches (memory, then cache_dir)
#   disk   the same, from a second server with chunk_cache_bytes = 0: every chunk read from
#          cache_dir and hashed again (filled by one cold GET first, not timed)
#   local  the same file from a `dir` path of the same server (published, verify = "cached")
#   nginx  the same file from nginx (../shared/bench/nginx-baseline.sh), as the usual baseline
# One HTTP/1.1 stream with curl, TLS, body to /dev/null. "store bytes/GiB" is
# distpoint_store_read_bytes_total{path="/st"} (the server's own counter of chunk bytes read from
# the store) over the bytes served, in GiB per GiB. Garage ($GARAGE, else `garage` on PATH) is
# started in the work folder: single-node layout, a bucket and a key made with its CLI.
set -euo pipefail
source "$(dirname "$0")/common.sh"
size=${1:-256}
rounds=${2:-5}
garage=${GARAGE:-$(command -v garage || true)}
[ -x "$garage" ] || { echo "objstore.sh needs Garage: set GARAGE or put garage on PATH" >&2; exit 1; }
setup objstore "$size"
port=$((20000 + RANDOM % 20000)); nport=$((port + 1))
s3=$((port + 2)); rpc=$((port + 3)); admin=$((port + 4)); dport=$((port + 5))

# --- Garage ----------------------------------------------------------------------------------
g="$work/garage"; mkdir -p "$g"
cat > "$g/garage.toml" <<EOF
metadata_dir = "$g/meta"
data_dir = "$g/data"
db_engine = "lmdb"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$rpc"
rpc_public_addr = "127.0.0.1:$rpc"
rpc_secret = "$(openssl rand -hex 32)"
[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$s3"
root_domain = ".s3.garage.localhost"
[admin]
api_bind_addr = "127.0.0.1:$admin"
EOF
gcli() { "$garage" -c "$g/garage.toml" "$@"; }
RUST_LOG=garage=warn "$garage" -c "$g/garage.toml" server >"$g/log" 2>&1 &
gpid=$!
nginx_pid=""; dpid=""
on_exit='[ -z "$dpid" ] || kill $dpid 2>/dev/null || true; kill $gpid 2>/dev/null || true; wait $gpid 2>/dev/null || true; [ -z "$nginx_pid" ] || bash "$repo/../shared/bench/nginx-baseline.sh" stop "$nginx_pid" >/dev/null 2>&1 || true'
for _ in $(seq 300); do gcli status >/dev/null 2>&1 && break || sleep 0.2; done
node=$(gcli node id -q | cut -d@ -f1)
gcli layout assign -z dc1 -c 10G "$node" >/dev/null
gcli layout apply --version 1 >/dev/null
for _ in $(seq 300); do gcli bucket create bench >/dev/null 2>&1 && break || sleep 0.2; done
keyinfo=$(gcli key create bench)
printf '%s\n' "$(sed -n 's/^Key ID: *//p' <<<"$keyinfo")" > "$work/s3.key"
printf '%s\n' "$(sed -n 's/^Secret key: *//p' <<<"$keyinfo")" > "$work/s3.secret"
chmod 600 "$work/s3.key" "$work/s3.secret"
gcli bucket allow --read --write --owner bench --key bench >/dev/null

# --- publish, configure ----------------------------------------------------------------------
"$bin" publish --gen-key "$work/pub.pem" >/dev/null
AWS_ACCESS_KEY_ID=$(cat "$work/s3.key") AWS_SECRET_ACCESS_KEY=$(cat "$work/s3.secret") \
  "$bin" publish "$work/content" --key "$work/pub.pem" --to s3://bench/PKG \
  --endpoint "http://127.0.0.1:$s3" --region garage >/dev/null
cat > "$work/c.toml" <<EOF
[server]
listen = ["127.0.0.1:$port"]
state_dir = "state"
[tls]
cert = "certs/server.crt"
key = "certs/server.key"
[metrics]
anonymous = true
[[vpath]]
url = "/local"
dir = "content"
integrity = "published"
publisher_keys = ["pub.pem.pub"]
anonymous = true
[[vpath]]
url = "/st"
origin = "s3://bench/PKG"
integrity = "published"
publisher_keys = ["pub.pem.pub"]
anonymous = true
cache_dir = "cache"
cache_bytes = $((2 * size * 1024 * 1024))
interval_secs = 3600
[origins.bench]
endpoint = "http://127.0.0.1:$s3"
region = "garage"
access_key_file = "s3.key"
secret_key_file = "s3.secret"
EOF
# The disk-cache-only server: its own port, state and cache_dir, no memory cache.
sed -e "s/127.0.0.1:$port\"/127.0.0.1:$dport\"/" -e 's/^state_dir = "state"$/state_dir = "state2"\nchunk_cache_bytes = 0/' \
  -e 's/^cache_dir = "cache"$/cache_dir = "cache2"/' "$work/c.toml" > "$work/c2.toml"
grep -q "chunk_cache_bytes = 0" "$work/c2.toml" && grep -q cache2 "$work/c2.toml"
start_disk_server() {
  RUST_LOG=warn "$bin" serve --config "$work/c2.toml" >/dev/null 2>"$work/distpoint2.log" &
  dpid=$!
  for _ in $(seq 50); do curl -s --cacert "$ca" -o /dev/null "https://127.0.0.1:$dport/" && return || sleep 0.1; done
  echo "the second distpoint did not answer:" >&2; cat "$work/distpoint2.log" >&2; exit 1
}
stop_disk_server() { [ -z "$dpid" ] || { kill "$dpid" 2>/dev/null || true; wait "$dpid" 2>/dev/null || true; dpid=""; }; }

chmod 755 "$work" "$work/content"   # nginx's workers read the same file as another user
chmod 644 "$work/content/big.bin"
nginx_pid=$(bash "$repo/../shared/bench/nginx-baseline.sh" start "$work/content" \
  "$work/certs/server.crt" "$work/certs/server.key" "$nport")
for _ in $(seq 50); do curl -s --cacert "$ca" -o /dev/null "https://127.0.0.1:$nport/big.bin" && break || sleep 0.1; done

bytes=$(stat -c %s "$work/content/big.bin")
# GB/s of one GET (10^9 bytes per second); fails loudly on anything but a whole 200.
get() {
  local out
  out=$(curl -s --http1.1 --cacert "$ca" -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1")
  read -r code got secs <<<"$out"
  [ "$code" = 200 ] && [ "$got" = "$bytes" ] || { echo "GET $1: $out" >&2; cat "$work/distpoint.log" >&2; exit 1; }
  python3 -c "print(f'{$bytes / $secs / 1e9:.3f}')"
}
store_read() {
  curl -s --cacert "$ca" "https://127.0.0.1:$port/.well-known/distpoint/metrics" |
    awk '/^distpoint_store_read_bytes_total\{path="\/st"\}/ {print $2} END {}' | tail -1
}
url() { echo "https://127.0.0.1:$1/$2"; }

declare -A runs
for r in $(seq "$rounds"); do
  stop_server; stop_disk_server
  rm -rf "$work/cache" "$work/state" "$work/cache2" "$work/state2"
  start_server "$bin" "$port"
  start_disk_server
  runs[cold]+="$(get "$(url "$port" st/big.bin)") "
  cold_read=$(store_read)
  get "$(url "$dport" st/big.bin)" >/dev/null   # fills cache2
  # Until the background cache writes are done.
  for _ in $(seq 100); do [ "$(du -sb "$work/cache2" | cut -f1)" -ge "$bytes" ] && break || sleep 0.1; done
  order=(warm disk local nginx)
  if [ $((r % 4)) -eq 2 ] || [ $((r % 4)) -eq 3 ]; then order=(nginx local disk warm); fi
  for what in "${order[@]}"; do
    case $what in
      warm)
        before=$(store_read)
        runs[warm]+="$(get "$(url "$port" st/big.bin)") "
        after=$(store_read)
        runs[warm_store]+="$(python3 -c "print(f'{(${after:-0} - ${before:-0}) / $bytes:.4f}')") " ;;
      disk) runs[disk]+="$(get "$(url "$dport" st/big.bin)") " ;;
      local) runs[local]+="$(get "$(url "$port" local/big.bin)") " ;;
      nginx) runs[nginx]+="$(get "$(url "$nport" big.bin)") " ;;
    esac
  done
  runs[cold_store]+="$(python3 -c "print(f'{${cold_read:-0} / $bytes:.4f}')") "
  echo "round $r: cold $(echo ${runs[cold]} | awk '{print $NF}') GB/s, done" >&2
done
stop_server; stop_disk_server

python3 - "$size" "$rounds" "${runs[cold]}" "${runs[warm]}" "${runs[local]}" "${runs[nginx]}" \
  "${runs[cold_store]}" "${runs[warm_store]}" "${runs[disk]}" <<'PY'
import statistics, sys
size, rounds = sys.argv[1], sys.argv[2]
cold, warm, local, nginx, cold_store, warm_store, disk = (
    [float(x) for x in a.split()] for a in sys.argv[3:10])
med = statistics.median
def fmt(v): return f"{med(v):.2f} ({min(v):.2f}–{max(v):.2f})"
print(f"{size} MiB file, 1 MiB chunks, one HTTP/1.1 stream (curl), {rounds} rounds; median (min–max)\n")
print("| served from | GB/s | ÷ local dir | ÷ nginx | store bytes read per byte served |")
print("|---|---:|---:|---:|---:|")
print(f"| serve-through, cold (every chunk from the store) | {fmt(cold)} | {med(cold)/med(local):.2f}× | {med(cold)/med(nginx):.2f}× | {med(cold_store):.3f} |")
print(f"| serve-through, warm (every chunk from the cache) | {fmt(warm)} | {med(warm)/med(local):.2f}× | {med(warm)/med(nginx):.2f}× | {med(warm_store):.3f} |")
print(f"| serve-through, warm from `cache_dir` only (`chunk_cache_bytes = 0`) | {fmt(disk)} | {med(disk)/med(local):.2f}× | {med(disk)/med(nginx):.2f}× | — |")
print(f"| local `dir` (published, same server) | {fmt(local)} | 1.00× | {med(local)/med(nginx):.2f}× | — |")
print(f"| nginx (same file) | {fmt(nginx)} | {med(nginx)/med(local):.2f}× | 1.00× | — |")
print(f"\nWarm: {med(warm_store) * 1024**3:.0f} bytes read from the store per GiB served (max {max(warm_store) * 1024**3:.0f}).")
PY
