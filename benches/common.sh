# common.sh — sourced by the scripts in benches/: build the release binary, make a work folder
# with a random file and dev certificates, and start or stop distpoint on it.
#
#   setup NAME SIZE_MIB        sets $repo, $bin, $work (removed on exit), $ca; writes $work/content/big.bin
#   anonymous_config PORT      writes $work/c.toml: TLS on 127.0.0.1:PORT, "/" anonymous on content/
#   start_server BIN PORT      starts BIN on $work/c.toml, sets $pid, returns once it answers
#   stop_server                stops it
# A script may set $on_exit to run more clean-up (e.g. stopping nginx).
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin="$repo/target/release/distpoint"
pid=""
on_exit=""

setup() {
  cargo build --release --quiet --manifest-path "$repo/Cargo.toml"
  work=$(mktemp -d "/tmp/distpoint-$1.XXXXXX")
  trap 'stop_server; eval "$on_exit"; rm -rf "$work"' EXIT
  mkdir "$work/content"
  head -c "$(($2 * 1024 * 1024))" /dev/urandom > "$work/content/big.bin"
  "$bin" certs dev --out "$work/certs" >/dev/null
  ca="$work/certs/ca.crt"
}

anonymous_config() {
  printf '[server]\nlisten = ["127.0.0.1:%s"]\nstate_dir = "state"\n[tls]\ncert = "certs/server.crt"\nkey = "certs/server.key"\n[[vpath]]\nurl = "/"\ndir = "content"\nanonymous = true\n' "$1" > "$work/c.toml"
}

start_server() {
  RUST_LOG=warn "$1" serve --config "$work/c.toml" >/dev/null 2>"$work/distpoint.log" &
  pid=$!
  for _ in $(seq 50); do curl -s --cacert "$ca" -o /dev/null "https://127.0.0.1:$2/" && return || sleep 0.1; done
  echo "distpoint did not answer on port $2:" >&2; cat "$work/distpoint.log" >&2; exit 1
}

stop_server() {
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  pid=""
}
