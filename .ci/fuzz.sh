#!/usr/bin/env bash
# fuzz.sh [SECONDS] [TARGET...] — build the cargo-fuzz targets in fuzz/ and run
# each for SECONDS (default 30), one after the other, from the committed seeds
# (fuzz/seeds/TARGET) plus what earlier runs found (fuzz/corpus/TARGET, not
# committed). Prints one line per target: runs, seconds, execs/s, corpus size.
# A crash stops the script with libFuzzer's report and the input under
# fuzz/artifacts/TARGET/.
#
# Toolchain: the machine has one stable Rust and no nightly can be fetched.
# With `-s none` (below) cargo-fuzz passes only stable `-C` flags
# (`-Cpasses=sancov-module`, `-Cllvm-args=-sanitizer-coverage-…`), so it
# builds and runs on stable as it is. A sanitizer needs `-Zsanitizer=…`,
# which stable rustc refuses; RUSTC_BOOTSTRAP=1 makes it accept it (checked
# with rustc 1.95: an AddressSanitizer build links `__asan_init` and runs).
# Catch: cargo caches rustc's target-info probe in target/.rustc_info.json
# without RUSTC_BOOTSTRAP in the key, so after one run without it a
# sanitizer build keeps failing with "the option `Z` is only accepted on the
# nightly compiler" until that file is removed.
# Why `-s none` by default: the crate is `#![forbid(unsafe_code)]`, so
# AddressSanitizer finds nothing a panic would not, and it slows the runs
# down; FUZZ_SANITIZER=address turns it on. `-a`: debug assertions and
# overflow checks on, which are part of the oracle.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-30}"
shift || true
san="${FUZZ_SANITIZER:-none}"
if [ "$san" != none ]; then export RUSTC_BOOTSTRAP=1; fi
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then mapfile -t targets < <(cargo fuzz list); fi
flags=(-s "$san" -a -O)
cargo fuzz build "${flags[@]}" >/dev/null 2>&1 || cargo fuzz build "${flags[@]}"
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  log="$(mktemp)"
  start=$(date +%s)
  if ! cargo fuzz run "${flags[@]}" "$t" "corpus/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 >"$log" 2>&1; then
    tail -n 60 "$log"
    echo "fuzz $t: FAILED (input in fuzz/artifacts/$t/)" >&2
    exit 1
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  echo "fuzz $t: ${runs:-?} runs in ${secs} s of fuzzing (${rate:-?}/s; $(( $(date +%s) - start )) s with the build check), corpus $(ls "corpus/$t" | wc -l) inputs, clean"
  rm -f "$log"
done
rm -rf /tmp/distpoint-fuzz-* 2>/dev/null || true
