"""distpoint against nginx on every scenario of issue 11, in one run. Started by ../compare.sh.

Makes the files and the certificate once, starts both servers on them (pinned to
two cores, then to one for the scaling table), warms both up, runs the rounds
and prints the tables. See ../compare.sh for the options.
"""
import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

import report
import runner
import scenarios as scen
from clients import Clients
from servers import Distpoint, Nginx

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.abspath(os.path.join(HERE, "..", ".."))
MIB = 1 << 20
BINARY = os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target")), "release", "distpoint")


def nginx_script():
    """../shared/bench/nginx-baseline.sh next to the checkout, or $NGINX_BASELINE."""
    for path in (os.environ.get("NGINX_BASELINE"),
                 os.path.join(REPO, "..", "shared", "bench", "nginx-baseline.sh"),
                 "/work/shared/bench/nginx-baseline.sh"):
        if path and os.access(path, os.X_OK):
            return os.path.abspath(path)
    raise SystemExit("nginx-baseline.sh not found: set NGINX_BASELINE to the shared script "
                     "(../shared/bench/nginx-baseline.sh next to the checkout)")


@dataclass
class File:
    path: str  # URL path
    size: int


class Ctx:
    """What scenarios need: servers, clients, files, sizes, the round number."""


def parse_args():
    p = argparse.ArgumentParser(prog="benches/compare.sh", description=__doc__)
    p.add_argument("--quick", action="store_true",
                   help="smoke test: small files, short runs, 1 round, 100 idle connections")
    p.add_argument("--rounds", type=int, help="rounds (default 4: A B B A A B B A; quick 1)")
    p.add_argument("--only", help="comma-separated scenario keys or prefixes (stream, load_h2_16, ranges, ...)")
    p.add_argument("--no-scaling", action="store_true", help="skip the one-core runs")
    p.add_argument("--retries", type=int, help="retakes of a sample with foreign load (default 1; quick 0)")
    p.add_argument("--noisy", type=float, default=0.25,
                   help="foreign load, in cores, above which a sample is retaken (default 0.25)")
    p.add_argument("--wait-quiet", type=float,
                   help="seconds to wait before a sample for the foreign load to drop (default 10; quick 0)")
    p.add_argument("--noise-budget", type=float,
                   help="total seconds for such waits and retakes (default 600; quick 0)")
    p.add_argument("--chunk-cache-mib", type=int,
                   help="distpoint's [server] chunk_cache_bytes, in MiB (default: the server's own, RAM/8)")
    p.add_argument("--list", action="store_true", help="list the scenario keys and exit")
    return p.parse_args()


def make_files(work, quick):
    content = os.path.join(work, "content")
    os.makedirs(os.path.join(content, "small"))
    os.makedirs(os.path.join(content, "fresh"))

    def random_file(rel, size):
        subprocess.run(f"head -c {size} /dev/urandom > '{os.path.join(content, rel)}'",
                       shell=True, check=True)
        return File("/" + rel, size)

    big = random_file("big.bin", (64 if quick else 1024) * MIB)
    mid = random_file("mid.bin", (16 if quick else 64) * MIB)
    small = [random_file(f"small/f{i:03}.bin", MIB) for i in range(20 if quick else 200)]
    with open(os.path.join(content, "tiny.txt"), "w") as f:
        f.write("distpoint benchmark\n")
    # nginx's workers run as an unprivileged user.
    for root, dirs, files in os.walk(work):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for n in files:
            os.chmod(os.path.join(root, n), 0o644)
    os.chmod(work, 0o755)
    return {"big": big, "mid": mid, "small": small, "fresh": Fresh(content, big)}


class Fresh:
    """A copy of big.bin that no server has served yet, one per round, made when first asked
    for (the previous round's copy is deleted then, so one copy takes disk space at a time)."""

    def __init__(self, content, big):
        self.content, self.big, self.made = content, big, {}

    def __getitem__(self, round_):
        if round_ not in self.made:
            for old in self.made.values():
                os.remove(os.path.join(self.content, old.path.lstrip("/")))
            self.made.clear()
            path = os.path.join(self.content, f"fresh/f{round_}.bin")
            shutil.copyfile(os.path.join(self.content, self.big.path.lstrip("/")), path)
            os.chmod(path, 0o644)
            settle(path)
            self.made[round_] = File(f"/fresh/f{round_}.bin", self.big.size)
        return self.made[round_]


def settle(path):
    """distpoint never caches chunks of a file changed in the last 2 s: wait that out,
    and let the kernel write the new files back before anything is measured."""
    os.sync()
    files = [os.path.join(r, n) for r, _, fs in os.walk(path) for n in fs] if os.path.isdir(path) else [path]
    newest = max(os.stat(f).st_ctime for f in files)
    time.sleep(max(0.0, newest + 2.5 - time.time()))


def openssl_speed(alg):
    """Bytes per second of one core over 1 MiB blocks (best of two runs)."""
    best = 0.0
    for _ in range(2):
        out = subprocess.run(["openssl", "speed", "-mr", "-evp", alg, "-bytes", str(MIB), "-seconds", "1"],
                             capture_output=True, text=True).stdout
        for line in out.splitlines():
            if line.startswith("+F:"):
                best = max(best, float(line.split(":")[-1]))
    return best


def core_sets():
    cpus = sorted(os.sched_getaffinity(0))
    two, one = cpus[-2:], cpus[-1:]
    rest = [c for c in cpus if c not in two]
    to_list = lambda cs: ",".join(map(str, cs))
    return to_list(two), to_list(one), (to_list(rest) if rest else None)


def warm_up(ctx, servers):
    """Every file once through each server (distpoint hashes a file on its first request,
    and its chunk cache starts empty), big.bin twice."""
    for s in servers:
        for _ in range(2):
            ctx.clients.curl(s.url(ctx.files["big"].path), False, ctx.files["big"].size)
        ctx.clients.curl(s.url(ctx.files["mid"].path), False, ctx.files["mid"].size)
        ctx.clients.h2load([s.url(f.path) for f in ctx.files["small"]], 1,
                           requests=len(ctx.files["small"]))


def environment(two, one, client):
    def first_line(cmd):
        try:
            r = subprocess.run(cmd, capture_output=True, text=True)
            return (r.stdout + r.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    model = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
    mem = int(open("/proc/meminfo").readline().split()[1]) / 2**20
    commit = first_line(["git", "-C", REPO, "rev-parse", "--short", "HEAD"])
    dirty = subprocess.run(["git", "-C", REPO, "diff", "--quiet", "HEAD", "--", "src", "Cargo.toml"]).returncode
    return {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "cpu": f"{model}, {os.cpu_count()} cores", "memory_gib": round(mem, 1),
        "kernel": platform.release(), "commit": commit + ("+dirty" if dirty else ""),
        "nginx": first_line(["nginx", "-v"]).replace("nginx version: ", ""),
        "curl": " ".join(first_line(["curl", "-V"]).split()[:2]),
        "h2load": first_line(["h2load", "--version"]),
        "wrk": " ".join(first_line(["wrk", "-v"]).split()[:2]),
        "server_cores_main": two, "server_cores_scaling": one,
        "client_cores": client or "all (shared with the server)",
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


def select(all_scenarios, only):
    if not only:
        return all_scenarios
    keys = only.split(",")
    return [s for s in all_scenarios if any(s.key == k or s.key.startswith(k) for k in keys)]


def main():
    args = parse_args()
    quick = args.quick
    rounds = args.rounds or (1 if quick else 4)
    retries = args.retries if args.retries is not None else (0 if quick else 1)
    max_wait = args.wait_quiet if args.wait_quiet is not None else (0 if quick else 10)
    runner.Budget.left = args.noise_budget if args.noise_budget is not None else (0 if quick else 600)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # 1,000 idle connections

    ctx = Ctx()
    if args.list:
        ctx.servers = [Distpoint, Nginx]
        ctx.files = {"big": File("/big.bin", 1 << 30), "mid": File("/mid.bin", 64 * MIB),
                     "small": [File("/small/f.bin", MIB)] * 200}
        ctx.idle_conns = 1000
        ctx.requests_mid = lambda conns: conns
        ctx.requests_small = 0
        print("\n".join(f"{s.key:<18} {s.title}" for s in scen.build(ctx)))
        return
    ctx.range_seconds = 2 if quick else 10
    ctx.idle_conns = 100 if quick else 1000
    ctx.requests_small = 200 if quick else 2000
    ctx.requests_mid = lambda conns: max(conns, 64)
    ctx.idle_script = os.path.join(HERE, "idle.py")
    started = time.monotonic()

    work = tempfile.mkdtemp(prefix="distpoint-compare.", dir="/tmp")
    two, one, client_cpus = core_sets()
    env = environment(two, one, client_cpus)
    servers = []
    try:
        print(f"setting up in {work} ...", file=sys.stderr, flush=True)
        ctx.files = make_files(work, quick)
        subprocess.run([BINARY, "certs", "dev", "--out",
                        os.path.join(work, "certs")], check=True, stdout=subprocess.DEVNULL)
        os.chmod(os.path.join(work, "certs/server.key"), 0o644)  # temporary, removed on exit
        ctx.ca = os.path.join(work, "certs/ca.crt")
        ctx.clients = Clients(ctx.ca, client_cpus)
        dp = Distpoint(BINARY, work, 9444, ctx.ca, args.chunk_cache_mib)
        ng = Nginx(nginx_script(), work, 9443, ctx.ca)
        servers = ctx.servers = [dp, ng]
        all_sc = select(scen.build(ctx), args.only)
        sha = openssl_speed("sha256")
        aes = openssl_speed("aes-256-gcm")
        env["openssl_sha256_gbps"] = round(sha / 1e9, 2)
        env["openssl_aes256gcm_gbps"] = round(aes / 1e9, 2)
        sha_cpu_gib = 2**30 / sha
        settle(work)

        results = {}
        ctx.warm_up = lambda which: warm_up(ctx, which)
        ctx.cores = two
        for s in servers:
            s.start(two)
        warm_up(ctx, servers)
        print(f"main: servers on cores {two}, {rounds} round(s)", file=sys.stderr, flush=True)
        runner.run_rounds(ctx, all_sc, rounds, retries, args.noisy, max_wait, results, "2 cores")
        scaling_sc = [s for s in all_sc if s.key in ("stream_h1", "load_h2_16_mid", "ranges_h1", "ranges_h2")]
        if scaling_sc and not args.no_scaling and one != two:
            ctx.cores = one
            for s in servers:
                s.stop()
                s.start(one)
            warm_up(ctx, servers)
            print(f"scaling: servers on core {one}", file=sys.stderr, flush=True)
            runner.run_rounds(ctx, scaling_sc, rounds, retries, args.noisy, max_wait, results, "1 core")
        env["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
        env["wall_seconds"] = round(time.monotonic() - started)
        env["mode"] = "quick" if quick else "full"
        env["rounds"] = rounds
        text = render(env, results, all_sc, scaling_sc, sha_cpu_gib, args.noisy)
        print(text)
        save(env, results, text)
    finally:
        for s in servers:
            s.stop()
        shutil.rmtree(work, ignore_errors=True)


def render(env, results, all_sc, scaling_sc, sha_cpu_gib, noisy):
    out = [f"# distpoint against nginx — {env['mode']} mode, {env['rounds']} round(s), {env['date']}", "",
           f"- machine: {env['cpu']}, {env['memory_gib']} GiB, Linux {env['kernel']}; "
           f"distpoint {env['commit']}",
           f"- servers on cores {env['server_cores_main']} (scaling: {env['server_cores_scaling']}); "
           f"load generators on {env['client_cores']}",
           f"- {env['nginx']}; {env['curl']}; {env['h2load']}; {env['wrk']}",
           f"- openssl speed, 1 MiB blocks, one core: SHA-256 {env['openssl_sha256_gbps']} GB/s, "
           f"AES-256-GCM {env['openssl_aes256gcm_gbps']} GB/s",
           f"- load average {' '.join(env['loadavg_start'])} at the start, "
           f"{' '.join(env.get('loadavg_end', []))} at the end; run took {env['wall_seconds']} s", "",
           report.main_table(results.get("2 cores", {}), all_sc, sha_cpu_gib), ""]
    if "1 core" in results:
        out += ["## Scaling: each server pinned to one core and to two", "",
                report.scaling_table(results["1 core"], results["2 cores"], scaling_sc), ""]
    out += ["## Noise (CPU used by other processes during each sample)", "",
            report.noise_table(results, noisy), ""]
    errs = report.errors(results)
    if errs:
        out += ["## Errors", "", errs, ""]
    return "\n".join(out)


def save(env, results, text):
    folder = os.path.join(REPO, "target", "bench")
    os.makedirs(folder, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(folder, f"compare-{env['mode']}-{stamp}")
    with open(base + ".json", "w") as f:
        json.dump({"environment": env, "results": results}, f, indent=1)
    with open(base + ".md", "w") as f:
        f.write(text + "\n")
    print(f"saved {base}.md and .json", file=sys.stderr)


if __name__ == "__main__":
    main()
