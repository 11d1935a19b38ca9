#!/usr/bin/env bash
# build-h2spec.sh [OUT] — the h2spec binary for tests/h2spec.rs; prints its path.
# Uses ../shared/tools/build-h2spec.sh (Debian's Go, h2spec 2.6 source in
# ../shared/tools/h2spec-src). That source lacks cmd/h2spec/, so when the
# shared script fails, the same source is built with our own small main
# (.ci/h2spec-main/main.go). Idempotent: an existing OUT is kept.
set -euo pipefail
out="${1:-/usr/local/bin/h2spec}"
if [ -x "$out" ]; then echo "$out"; exit 0; fi
here="$(cd "$(dirname "$0")" && pwd)"
shared="$here/../../shared/tools"
if bash "$shared/build-h2spec.sh" "$out" >/dev/null 2>&1 && [ -x "$out" ]; then echo "$out"; exit 0; fi
# The shared script installed Go and the Go libraries before it failed.
gp="$(mktemp -d)"; trap 'rm -rf "$gp"' EXIT
mkdir -p "$gp/src/github.com/summerwind"
cp -r "$shared/h2spec-src" "$gp/src/github.com/summerwind/h2spec"
mkdir -p "$gp/src/github.com/summerwind/h2spec/cmd/h2spec"
cp "$here/h2spec-main/main.go" "$gp/src/github.com/summerwind/h2spec/cmd/h2spec/main.go"
(cd "$gp/src/github.com/summerwind/h2spec" && GO111MODULE=off GOPATH="$gp:/usr/share/gocode" \
  GOCACHE="$gp/cache" go build -o "$out" ./cmd/h2spec)
echo "$out"
