#!/usr/bin/env bash
# syscalls.sh — how distpoint's write path looks from the kernel: size of every socket write
# during one download over HTTP/1.1 and over HTTP/2 (strace; installs it if missing).
#
#   benches/syscalls.sh [SIZE_MIB]      (default 100)
set -euo pipefail
size_mib=${1:-100}
. "$(dirname "$0")/common.sh"
command -v strace >/dev/null || (apt-get update -qq && apt-get install -y -qq strace >/dev/null)
setup syscalls "$size_mib"
anonymous_config 9555
start_server "$bin" 9555
for v in --http1.1 --http2; do
  strace -f -e trace=write,writev,sendto,sendmsg -o "$work/trace" -p "$pid" 2>/dev/null &
  st=$!
  sleep 0.5
  curl -s "$v" --cacert "$ca" -o /dev/null https://127.0.0.1:9555/big.bin
  sleep 0.2
  kill "$st"; wait "$st" 2>/dev/null || true
  # Size of every write per fd, joining strace's "<unfinished ...>" / "<... resumed>" halves
  # (threads interleave); the socket is the fd that carried the most bytes.
  python3 - "$work/trace" "$v" <<'PY'
import collections, re, sys
writes, pending = collections.defaultdict(list), {}
for line in open(sys.argv[1]):
    tid = line.split(" ", 1)[0]
    call = re.search(r"(?:write|writev|sendto|sendmsg)\((\d+),", line)
    done = re.search(r"= (\d+)$", line.strip())
    if call and "<unfinished" in line:
        pending[tid] = call.group(1)
    elif call and done:
        writes[call.group(1)].append(int(done.group(1)))
    elif "resumed>" in line and tid in pending and done:
        writes[pending.pop(tid)].append(int(done.group(1)))
sizes = sorted(max(writes.values(), key=sum))
print(f"{sys.argv[2]:<9} {len(sizes):6d} socket writes, {sum(sizes)/1e6:7.1f} MB, "
      f"median {sizes[(len(sizes) - 1) // 2]:7d} bytes, {sum(s < 65536 for s in sizes)} under 64 KiB")
PY
done
