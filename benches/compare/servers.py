"""The two servers under test, started on the same files with the same certificate.

distpoint serves `content/` under `/` (verify = "cached", the default) and
again under `/always` (verify = "always"); nginx serves `content/` under `/`
through ../shared/bench/nginx-baseline.sh. Both are started under `taskset`
on the cores given, nginx with one worker per core; distpoint's runtime sizes
itself from the affinity mask (std's available_parallelism reads it).
"""
import os
import shutil
import signal
import subprocess
import time

import procs


def _answers(url, ca):
    r = subprocess.run(["curl", "-s", "--cacert", ca, "-o", "/dev/null", "--max-time", "1", url])
    return r.returncode == 0


def _wait_until_up(url, ca, alive, what, log):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _answers(url, ca):
            return
        if not alive():
            break
        time.sleep(0.05)
    raise SystemExit(f"{what} did not answer on {url}; its log:\n{open(log).read() if log else ''}")


class Distpoint:
    name = "distpoint"

    def __init__(self, binary, work, port, ca, chunk_cache_mib=None):
        self.binary, self.work, self.port, self.ca = binary, work, port, ca
        self.proc = None
        # distpoint watches its config file's folder: a folder of its own, so that
        # logs and tool output written meanwhile raise no events there.
        os.makedirs(os.path.join(work, "etc"), exist_ok=True)
        self.config = os.path.join(work, "etc", "distpoint.toml")
        with open(self.config, "w") as f:
            f.write(
                "[server]\n"
                f'listen = ["127.0.0.1:{port}"]\n'
                'state_dir = "../state"\n'
                + (f"chunk_cache_bytes = {chunk_cache_mib << 20}\n" if chunk_cache_mib is not None else "")
                + "[tls]\n"
                'cert = "../certs/server.crt"\n'
                'key = "../certs/server.key"\n'
                "[[vpath]]\n"
                'url = "/"\n'
                'dir = "../content"\n'
                "anonymous = true\n"
                "[[vpath]]\n"
                'url = "/always"\n'
                'dir = "../content"\n'
                "anonymous = true\n"
                'verify = "always"\n'
            )

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    @property
    def pid(self):
        return self.proc.pid

    def start(self, cpus):
        log = os.path.join(self.work, "distpoint.log")
        env = dict(os.environ, RUST_LOG="warn")
        self.proc = subprocess.Popen(
            ["taskset", "-c", cpus, self.binary, "serve", "--config", self.config],
            stdout=subprocess.DEVNULL, stderr=open(log, "a"), env=env, cwd=self.work)
        _wait_until_up(self.url("/tiny.txt"), self.ca, lambda: self.proc.poll() is None,
                       "distpoint", log)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)  # shutdown_grace_secs is 30
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Nginx:
    name = "nginx"

    def __init__(self, script, work, port, ca):
        self.script, self.work, self.port, self.ca = script, work, port, ca
        self._pid = None

    def url(self, path):
        return f"https://127.0.0.1:{self.port}{path}"

    @property
    def pid(self):
        return self._pid

    def start(self, cpus):
        workers = str(len(parse_cpus(cpus)))
        out = subprocess.run(
            ["taskset", "-c", cpus, self.script, "start", os.path.join(self.work, "content"),
             os.path.join(self.work, "certs/server.crt"),
             os.path.join(self.work, "certs/server.key"), str(self.port), workers],
            check=True, capture_output=True, text=True)
        self._pid = int(out.stdout.split()[-1])
        _wait_until_up(self.url("/tiny.txt"), self.ca, lambda: _alive(self._pid), "nginx", None)

    def stop(self):
        if self._pid is None:
            return
        pids = procs.tree(self._pid)
        run_dir = _config_dir(self._pid)
        subprocess.run([self.script, "stop", str(self._pid)], check=False)
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        # The baseline script leaves its temporary folder (config, logs) behind.
        if run_dir and os.path.basename(run_dir).startswith("nginx-baseline."):
            shutil.rmtree(run_dir, ignore_errors=True)
        self._pid = None


def _config_dir(pid):
    """The folder of the config nginx was started with (`-c FILE`)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            # nginx rewrites its title: "nginx: master process nginx -c FILE -g ...".
            args = f.read().decode().replace("\0", " ").split()
        return os.path.dirname(args[args.index("-c") + 1])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return ") Z " not in f.read()
    except OSError:
        return False


def parse_cpus(spec):
    """'0-1,3' -> [0, 1, 3]"""
    out = []
    for part in spec.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b or a) + 1))
    return out
