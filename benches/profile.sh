#!/usr/bin/env bash
# profile.sh — where a server's time goes during compare.sh's scenarios (perf, strace, counters).
#
#   benches/profile.sh [--tool perf|strace|counts|allocs] [--server distpoint|nginx] SCENARIO...
#   benches/profile.sh ranges_h1 ranges_h2 load_h2_16_mid stream_h1 stream_h2
#   benches/profile.sh --tool strace ranges_h1 ranges_h2
#   benches/profile.sh --tool counts --server nginx ranges_h1
#
# The server runs alone, on the same files and certificate as in compare.sh, warmed up the same
# way; each scenario's load runs once while the tool watches the server's process:
#   perf    perf record --call-graph dwarf: hottest functions, time by area, inclusive frames
#   strace  strace -c -f: system calls per request
#   counts  perf stat: context switches, CPU migrations, CPU time per request
#   allocs  perf stat on libc uprobes: malloc/free/realloc/calloc per request (slows the server)
# Installs linux-perf, strace and the load generators with apt-get when missing.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
need=()
for tool in perf:linux-perf strace:strace curl:curl h2load:nghttp2-client wrk:wrk nginx:nginx-light python3:python3 taskset:util-linux; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null
fi
case " $* " in *" --help "*|*" -h "*) ;; *)
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" ;;
esac
exec env PYTHONDONTWRITEBYTECODE=1 python3 "$repo/benches/compare/profiler.py" "$@"
