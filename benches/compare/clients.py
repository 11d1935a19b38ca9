"""The load generators, each run once and parsed into plain numbers.

Every runner returns a dict with at least `bytes` (body bytes received),
`requests` (completed), `seconds` (wall time of the load) and `errors`
(requests that failed or had an unexpected status); p99 latency in seconds
where the tool gives one (h2load through its per-request log, wrk through
its latency histogram).
"""
import os
import re
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


class Clients:
    def __init__(self, ca, cpus):
        self.ca = ca
        # The load generators' cores (taskset list), or None for all of them.
        self.prefix = ["taskset", "-c", cpus] if cpus else []

    def _run(self, cmd, timeout=600):
        r = subprocess.run(self.prefix + cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            raise RuntimeError(f"{cmd[0]} failed ({r.returncode}): {r.stderr.strip()[-500:]}")
        return r.stdout

    def curl(self, url, http2, expect_bytes):
        """One download: throughput, time to first byte, total time."""
        out = self._run([
            "curl", "-s", "--http2" if http2 else "--http1.1", "--cacert", self.ca,
            "-o", "/dev/null", "-w",
            "%{http_code} %{size_download} %{time_starttransfer} %{time_total}", url])
        code, size, ttfb, total = out.split()
        size = int(size)
        errors = int(code != "200" or size != expect_bytes)
        return {"bytes": size, "requests": 1, "seconds": float(total), "ttfb": float(ttfb),
                "errors": errors}

    def h2load(self, urls, conns, http1=False, requests=None, duration=None, headers=()):
        """h2load over one URL or a list (cycled through); count- or time-bound."""
        with tempfile.TemporaryDirectory() as tmp:
            log = os.path.join(tmp, "requests.log")
            cmd = ["h2load", "-t", str(min(2, conns)), "-c", str(conns), "-m", "1",
                   f"--log-file={log}"]
            if http1:
                cmd.append("--h1")
            if duration:
                cmd += ["-D", str(duration)]
            else:
                cmd += ["-n", str(requests)]
            for h in headers:
                cmd += ["-H", h]
            if isinstance(urls, str):
                cmd.append(urls)
            else:
                uri_file = os.path.join(tmp, "uris")
                with open(uri_file, "w") as f:
                    f.write("\n".join(urls) + "\n")
                cmd += ["-i", uri_file]
            out = self._run(cmd)
            latencies = _h2load_latencies(log)
        return _parse_h2load(out, latencies)

    def wrk_ranges(self, url, conns, duration, size, length=4096):
        """wrk with benches/compare/ranges.lua: random LENGTH-byte ranges of a SIZE-byte file."""
        out = self._run([
            "wrk", "-t", str(min(2, conns)), "-c", str(conns), "-d", f"{duration}s",
            "--timeout", "10s", "-s", os.path.join(HERE, "ranges.lua"), url, "--",
            str(size), str(length)])
        line = next(l for l in out.splitlines() if l.startswith("RESULT "))
        v = {k: int(x) for k, x in (kv.split("=") for kv in line.split()[1:])}
        return {"bytes": v["bytes"], "requests": v["requests"],
                "seconds": v["duration_us"] / 1e6, "p99": v["p99_us"] / 1e6,
                "errors": v["errors"] + v["status_errors"]}


def _h2load_latencies(log):
    """Per-request durations (s) from h2load's --log-file (start µs, status, duration µs)."""
    out = []
    with open(log) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 3:
                out.append(int(parts[2]) / 1e6)
    return out


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0}


def _parse_h2load(out, latencies):
    m = re.search(r"finished in ([\d.]+)(us|ms|s),", out)
    seconds = float(m.group(1)) * _UNITS[m.group(2)]
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    codes = re.search(r"status codes: (\d+) 2xx", out)
    data = re.search(r"\((\d+)\) data", out)
    done, succeeded = int(req.group(3)), int(req.group(4))
    ok_2xx = int(codes.group(1))
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] if latencies else None
    return {"bytes": int(data.group(1)), "requests": succeeded, "seconds": seconds,
            "p99": p99, "errors": (done - succeeded) + (succeeded - ok_2xx)}
