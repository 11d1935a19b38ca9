#!/usr/bin/env bash
# compare.sh — distpoint against nginx on every scenario of issue 11's target table, in one run.
#
#   benches/compare.sh            full mode: 1 GiB / 64 MiB / 200 × 1 MiB files, 4 rounds
#                                 (A B B A A B B A), 10 s range runs, 1,000 idle connections,
#                                 then the scaling runs on one core (about 15–20 minutes)
#   benches/compare.sh --quick    smoke test: small files, 1 round, short runs (about 2 minutes)
#   benches/compare.sh --only ranges,stream_h1 --rounds 6    some scenarios only
#   benches/compare.sh --list     the scenario keys
#   benches/compare.sh --help     every option
#
# Same machine, same files, same certificate: distpoint (release build of this checkout, verify =
# "cached" under /, "always" under /always) and nginx started by ../shared/bench/nginx-baseline.sh
# (sendfile, one worker per core, TLS 1.2/1.3, h2), both pinned with taskset to the last two cores
# (and for the scaling table to the last one). Load: curl, h2load (nghttp2-client), wrk with
# compare/ranges.lua. Server CPU comes from /proc/PID/stat of the server's process tree, memory
# from /proc/PID/smaps_rollup (PSS) and VmHWM (peak RSS). Each sample also records how much CPU
# other processes used meanwhile; a noisy sample is taken again (--retries, --noisy).
# Prints Markdown tables (median (min–max), ratio distpoint ÷ nginx, target, met) and saves them
# with the raw samples under target/bench/. Installs what it needs with apt-get when missing.
#
# (It replaces the old `compare.sh [SIZE_MIB] [CONNECTIONS] [ROUNDS]`, whose curl runs are now
# the stream_h1 / stream_h2 scenarios; verify.sh, fetch.sh and syscalls.sh are unchanged.)
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
need=()
for tool in curl:curl h2load:nghttp2-client wrk:wrk nginx:nginx-light python3:python3 taskset:util-linux openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} ..." >&2
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null
fi
case " $* " in *" --list "*|*" --help "*|*" -h "*) ;; *)
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml" ;;
esac
exec env PYTHONDONTWRITEBYTECODE=1 python3 "$repo/benches/compare/main.py" "$@"
