"""Profile one server during compare.sh's scenarios. Started by ../profile.sh.

For each scenario, the server (alone on the machine's last two cores, warmed up
like in compare.sh) is measured with one tool while the scenario's load runs once:

- perf:   `perf record --call-graph dwarf` on the server; prints the hottest
          functions (self time), time by area (crypto, hashing, copies, malloc,
          kernel network, scheduler ...) and the inclusive share of chosen frames.
- strace: `strace -c -f` on the server; prints system calls per request.
- counts: `perf stat` of context switches, CPU migrations and CPU time per request.
- allocs: malloc/free/realloc/calloc calls per request (`perf stat` on libc
          uprobes; each call then traps, so the server runs much slower and
          per-connection costs such as handshakes weigh more per request).
- allocsites: where the mallocs come from: the first caller outside the
          allocator for each (sampled) malloc/realloc/calloc, per request.
"""
import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import main as harness
import procs
import scenarios as scen
from clients import Clients
from servers import Distpoint, Nginx

LIBC = "/lib/x86_64-linux-gnu/libc.so.6"
ALLOC = ("malloc", "free", "realloc", "calloc")

# User-space leaf functions by area (the first pattern that matches the leaf wins).
LEAF_AREAS = [
    ("AES-GCM (TLS record encryption)", r"aes|gcm|ghash|gfmul|chacha|poly1305"),
    ("SHA-256 (chunk verification)", r"sha256|sha2::|Sha256|compress256"),
    ("memcpy / memmove / memset (user)", r"memcpy|memmove|memset"),
    ("malloc / free", r"malloc|free|realloc|calloc|_int_|tcache|arena|unlink_chunk|consolidate"),
]
CRATES = ["h2", "hyper", "hyper_util", "rustls", "tokio_rustls", "tokio", "http", "tracing",
          "distpoint", "notify", "ring"]


def syscall_of(frames):
    """The system call a kernel stack is in: the frame called by do_syscall_64."""
    for i, f in enumerate(frames):
        if f == "do_syscall_64" and i > 0:
            name = frames[i - 1]
            if name == "x64_sys_call" and i > 1:
                name = frames[i - 2]
            return re.sub(r"^(__x64_sys_|__do_sys_|__se_sys_|ksys_|do_sys_|do_|__)", "", name)
    return None


def classify(frames):
    """One sample's area from its whole stack (leaf first)."""
    text = "\n".join(frames)
    if "blocking::pool" in text and re.search(r"futex|Condvar|lock_contended|try_to_wake_up", text):
        return "blocking-pool hand-off (futex wait/wake, pool mutex)"
    if re.search(r"tokio::runtime::(scheduler|park|driver)", text) and "futex" in text:
        return "runtime worker park/unpark (futex)"
    sys = syscall_of(frames)
    kernel_leaf = frames and re.match(r"[a-z_0-9.]+$", frames[0]) is not None
    if "handle_softirqs" in text or "do_softirq" in text:
        return "kernel: softirq (loopback TCP receive/ACK)"
    if "exc_page_fault" in text:
        return "kernel: page faults (fresh buffers)"
    if sys:
        return f"kernel: {sys}"
    if kernel_leaf and any("entry_SYSCALL" in f or "exit_to_user" in f or "irqentry" in f for f in frames[:6]):
        return "kernel: syscall entry/exit, preemption"
    leaf = frames[0] if frames else "?"
    for name, rx in LEAF_AREAS:
        if re.search(rx, leaf, re.I):
            return name
    for f in frames:
        m = re.match(r"^<?(\w+)::", f)
        if m and m.group(1) in CRATES:
            return f"user: {m.group(1)}"
    return "user: other (std, libc)"


def stack_areas(data):
    text = subprocess.run(["perf", "script", "-i", data, "-F", "ip,sym,dso"],
                          capture_output=True, text=True).stdout
    areas, total = {}, 0
    for block in text.split("\n\n"):
        frames, dsos = [], []
        for l in block.strip().splitlines():
            m = re.match(r"\s*[0-9a-f]+ (.*) \((\S+)\)$", l)
            if m:
                frames.append(re.sub(r"(\+0x[0-9a-f]+| \(inlined\))$", "", m.group(1)))
                dsos.append(os.path.basename(m.group(2)))
        if not frames:
            continue
        total += 1
        area = classify(frames)
        if area == "user: other (std, libc)" and dsos[0].startswith(("libcrypto", "libssl")):
            area = "OpenSSL (libcrypto/libssl: AES-GCM, record layer)"
        elif area == "user: other (std, libc)" and dsos[0] == "nginx":
            area = "user: nginx"
        areas[area] = areas.get(area, 0) + 1
    return areas, total


# Frames whose inclusive share (children) is shown.
FRAMES = [
    "distpoint::pipeline::handle", "distpoint::resolve::open::open_beneath",
    "distpoint::integrity::IntegrityState::prepare", "<distpoint::integrity::verify::VerifiedFile",
    "distpoint::body::read_exact_at", "distpoint::logging", "distpoint::live::track",
    "tokio::runtime::blocking::pool::Spawner::spawn_blocking",
    "tokio::runtime::blocking::pool::Inner::run",
    "rustls::conn::ConnectionCommon", "hyper::proto::h1", "h2::proto", "h2::codec",
    "distpoint::io", "ring::aead", "sha2::",
]


def parse_args():
    p = argparse.ArgumentParser(prog="benches/profile.sh", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("scenarios", nargs="+", help="compare.sh scenario keys (see compare.sh --list)")
    p.add_argument("--tool", choices=["perf", "strace", "counts", "allocs", "allocsites"], default="perf")
    p.add_argument("--server", choices=["distpoint", "nginx"], default="distpoint")
    p.add_argument("--seconds", type=int, default=8, help="length of time-bound loads (ranges)")
    p.add_argument("--keep", help="write the tools' output (perf.data ...) to this folder and keep it")
    return p.parse_args()


def run_with(tool_cmd, load, out):
    """Start tool_cmd (attached to the server), run load(), stop the tool; load's result."""
    tool = subprocess.Popen(tool_cmd, stdout=subprocess.DEVNULL, stderr=open(out + ".err", "w"))
    try:
        # perf and strace attach asynchronously: give them a moment before the load.
        time.sleep(1.0)
        result = load()
    finally:
        tool.send_signal(signal.SIGINT)
        tool.wait(timeout=600)
    return result


def perf_report(data):
    base = ["perf", "report", "-i", data, "--stdio", "--no-children", "-g", "none"]
    by_sym = subprocess.run(base + ["--sort", "dso,symbol", "--percent-limit", "0"],
                            capture_output=True, text=True).stdout
    rows = []
    for line in by_sym.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(\S+)\s+\[[.k]\]\s+(.*)$", line)
        if m:
            rows.append((float(m.group(1)), m.group(2), m.group(3).strip()))
    total = sum(r[0] for r in rows) or 1
    print("\nhottest functions (self, % of the server's samples):")
    for pct, dso, sym in rows[:25]:
        print(f"  {pct:5.1f}%  {sym[:110]}  [{dso}]")
    areas, samples = stack_areas(data)
    print(f"\nby area ({samples} samples, each classified by its whole call stack):")
    for name, n in sorted(areas.items(), key=lambda x: -x[1]):
        if n / samples >= 0.005:
            print(f"  {n / samples * 100:5.1f}%  {name}")
    children = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "--children", "-g", "none", "--sort", "symbol",
         "--percent-limit", "0.5"], capture_output=True, text=True).stdout
    print("\ninclusive share of chosen frames (children):")
    seen = set()
    for line in children.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+([\d.]+)%\s+\[[.k]\]\s+(.*)$", line)
        if not m:
            continue
        sym = m.group(3).strip()
        for f in FRAMES:
            if f in sym and f not in seen:
                seen.add(f)
                print(f"  {float(m.group(1)):5.1f}%  {sym[:120]}")


def strace_report(out, requests):
    text = open(out).read()
    print(f"\nsystem calls per request ({requests} requests):")
    rows = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 5 and re.match(r"[\d.]+$", parts[0]) and parts[-1] not in ("total",):
            calls = int(parts[3])
            rows.append((calls, parts[-1]))
    total = sum(c for c, _ in rows)
    for calls, name in sorted(rows, reverse=True):
        if calls / requests >= 0.05:
            print(f"  {calls / requests:7.2f}  {name}")
    print(f"  {total / requests:7.2f}  all")


def counts_report(out, requests):
    print(f"\nper request ({requests} requests):")
    for line in open(out):
        fields = line.strip().split(",")
        if len(fields) >= 3 and re.match(r"[\d.]+$", fields[0]):
            value, unit, event = float(fields[0]), fields[1], fields[2]
            if event == "task-clock":
                value, event = value * 1000, "task-clock µs (CPU time)"  # msec -> µs
            print(f"  {value / requests:9.2f}  {event}")


def add_probes():
    for fn in ALLOC:
        subprocess.run(["perf", "probe", "-q", "-x", LIBC, "--add", fn],
                       stderr=subprocess.DEVNULL, check=False)


# The first frame from one of these crates is the allocation site; the first
# distpoint frame above it says which step of the request asked for it.
SITE = re.compile(r"^<?(distpoint|hyper|hyper_util|h2|rustls|tokio_rustls|tokio|tokio_util|http|"
                  r"tracing\w*|httpdate|mime_guess|base64|notify|ring|sha2)::")
OWNER = re.compile(r"^<?distpoint::")


def allocsites_report(data, requests, period):
    text = subprocess.run(["perf", "script", "-i", data, "-F", "event,ip,sym"],
                          capture_output=True, text=True).stdout
    sites, samples = {}, 0
    for block in text.split("\n\n"):
        lines = [l.strip() for l in block.strip().splitlines()]
        if len(lines) < 2:
            continue
        samples += 1
        frames = [l.split(None, 1)[1] if len(l.split(None, 1)) > 1 else l for l in lines[1:]]
        frames = [re.sub(r"(\+0x[0-9a-f]+| \(inlined\))$", "", f) for f in frames]
        i = next((i for i, f in enumerate(frames) if SITE.match(f)), None)
        if i is None:
            site = "(stack not unwound to a known crate)"
        else:
            site = frames[i]
            owner = next((f for f in frames[i:] if OWNER.match(f)), None)
            if owner and owner != site:
                site = f"{site}  ←  {owner}"
        sites[site] = sites.get(site, 0) + 1
    print(f"\nallocation sites (malloc + realloc + calloc, every {period}th call sampled), "
          f"calls per request:")
    for site, n in sorted(sites.items(), key=lambda x: -x[1])[:30]:
        print(f"  {n * period / requests:6.2f}  {site[:160]}")
    print(f"  {samples * period / requests:6.2f}  all")


def main():
    args = parse_args()
    work = tempfile.mkdtemp(prefix="distpoint-profile.", dir="/tmp")
    server = None
    try:
        ctx = harness.Ctx()
        ctx.range_seconds, ctx.idle_conns = args.seconds, 100
        ctx.requests_small, ctx.requests_mid = 2000, lambda conns: max(conns, 64)
        ctx.files = harness.make_files(work, False)
        subprocess.run([harness.BINARY, "certs", "dev", "--out",
                        os.path.join(work, "certs")], check=True, stdout=subprocess.DEVNULL)
        os.chmod(os.path.join(work, "certs/server.key"), 0o644)
        ctx.ca = os.path.join(work, "certs/ca.crt")
        two, _, client_cpus = harness.core_sets()
        ctx.clients = Clients(ctx.ca, client_cpus)
        dp = Distpoint(harness.BINARY, work, 9444, ctx.ca)
        ng = Nginx(harness.nginx_script(), work, 9443, ctx.ca)
        ctx.servers = [dp, ng]
        chosen = {s.key: s for s in scen.build(ctx)}
        harness.settle(work)
        server = dp if args.server == "distpoint" else ng
        server.start(two)
        harness.warm_up(ctx, [server])
        for key in args.scenarios:
            sc = chosen[key]
            variant = next(v for v in sc.variants if v.server is server)
            out = os.path.join(args.keep or os.path.join(work, "out"), f"{args.server}-{key}.{args.tool}")
            os.makedirs(os.path.dirname(out), exist_ok=True)
            # nginx's workers are processes of their own: attach to the whole tree.
            pids = [str(p) for p in procs.tree(server.pid)]
            pid = ",".join(pids)
            print(f"\n=== {args.server}: {sc.title} — {args.tool} ===", flush=True)
            if args.tool == "perf":
                cmd = ["perf", "record", "-F", "499", "--call-graph", "dwarf,32768", "-p", pid, "-o", out]
            elif args.tool == "strace":
                cmd = ["strace", "-c", "-f", "-o", out] + [a for p in pids for a in ("-p", p)]
            elif args.tool == "counts":
                events = "context-switches,cpu-migrations,task-clock"
                cmd = ["perf", "stat", "-x", ",", "-e", events, "-p", pid, "-o", out]
            elif args.tool == "allocsites":
                add_probes()
                events = ",".join(f"probe_libc:{f}" for f in ALLOC if f != "free")
                cmd = ["perf", "record", "-e", events, "--call-graph", "dwarf,16384", "-c", "7",
                       "-p", pid, "-o", out]
            else:
                add_probes()
                events = ",".join(f"probe_libc:{f}" for f in ALLOC)
                cmd = ["perf", "stat", "-x", ",", "-e", events, "-p", pid, "-o", out]
            result = run_with(cmd, lambda: variant.run(ctx), out)
            print(f"load: {result['requests']} requests, {result['bytes'] / 1e6:.0f} MB in "
                  f"{result['seconds']:.1f} s, errors {result['errors']}")
            if args.tool == "perf":
                perf_report(out)
            elif args.tool == "strace":
                strace_report(out, result["requests"])
            elif args.tool == "allocsites":
                allocsites_report(out, result["requests"], 7)
            else:
                counts_report(out, result["requests"])
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
