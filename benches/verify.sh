#!/usr/bin/env bash
# verify.sh — what verification costs when serving: one 1 GiB file over one HTTP/1.1 stream (curl),
# with verify = "cached" (first request ever, warm cache, cold cache after a restart) and
# verify = "always". With a second binary that has no verification (an older build), also "off".
#
#   benches/verify.sh [SIZE_MIB] [BINARY_WITHOUT_VERIFICATION]
set -euo pipefail
size_mib=${1:-1024}
off_bin=${2:-}
. "$(dirname "$0")/common.sh"
setup verify "$size_mib"
cat "$work/content/big.bin" > /dev/null
sleep 3   # files changed in the last 2 s are never cached nor their manifests persisted
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
get() { curl -s --http1.1 --cacert "$ca" -o /dev/null -w '%{speed_download}' "https://127.0.0.1:9556/$1" | awk '{printf "%.0f MB/s", $1/1e6}'; }
start_server "$bin" 9556
echo "first request (hash + send): $(get cached/big.bin)"
echo "cached, warm:                $(get cached/big.bin) $(get cached/big.bin) $(get cached/big.bin)"
echo "always:                      $(get always/big.bin) $(get always/big.bin) $(get always/big.bin)"
stop_server
start_server "$bin" 9556
echo "cached, cold (restart):      $(get cached/big.bin)"
stop_server
if [ -n "$off_bin" ]; then
  start_server "$off_bin" 9556
  echo "off (no verification):       $(get cached/big.bin) $(get cached/big.bin) $(get cached/big.bin)"
  stop_server
fi
