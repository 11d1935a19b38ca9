"""The scenarios of issue 11's target table, each a list of variants to alternate.

A variant is one server (or one distpoint setting) and a function that runs
the load once and returns the client's numbers; the runner adds the server's
CPU, peak RSS and the machine's foreign load around it.
"""
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Callable

import procs


@dataclass
class Variant:
    label: str
    server: object
    run: Callable  # (ctx) -> dict


@dataclass
class Scenario:
    key: str
    title: str
    variants: list
    # A sample taken while other processes were busy may be taken again; not
    # for first requests, which need a file never served before.
    retry: bool = True
    tags: set = field(default_factory=set)
    # Restart the server before the sample (and warm it up again after it), so that
    # memory left from earlier load runs does not count.
    fresh_server: bool = False


def human_size(n):
    return f"{n >> 30} GiB" if n >= 1 << 30 else f"{n >> 20} MiB"


def build(ctx):
    """Every scenario, for the servers and files in ctx."""
    dp, ng = ctx.servers
    big, mid = ctx.files["big"], ctx.files["mid"]
    small = ctx.files["small"]
    out = []

    def both(fn):
        return [Variant(s.name, s, lambda c, s=s: fn(c, s)) for s in (dp, ng)]

    for http2 in (False, True):
        proto = "HTTP/2" if http2 else "HTTP/1.1"
        out.append(Scenario(
            f"stream_{'h2' if http2 else 'h1'}", f"1 stream {human_size(big.size)} {proto} (curl)",
            both(lambda c, s, h=http2: c.clients.curl(s.url(big.path), h, big.size)),
            tags={"stream"}))

    for http1 in (False, True):
        proto = "HTTP/1.1" if http1 else "HTTP/2"
        for conns in (16, 64):
            for which in ("mid", "small"):
                if which == "mid":
                    what, n = human_size(mid.size), ctx.requests_mid(conns)
                    urls = lambda s: s.url(mid.path)
                else:
                    what = f"{len(small)} × {human_size(small[0].size)}"
                    n = ctx.requests_small
                    urls = lambda s: [s.url(f.path) for f in small]
                out.append(Scenario(
                    f"load_{'h1' if http1 else 'h2'}_{conns}_{which}",
                    f"h2load {conns} conns {proto}, {what}",
                    both(lambda c, s, u=urls, k=conns, n=n, h=http1:
                         c.clients.h2load(u(s), k, http1=h, requests=n)),
                    tags={"load", f"c{conns}"}))

    out.append(Scenario(
        "ranges_h1", "4 KiB ranges, 64 conns, HTTP/1.1 (wrk, random offsets)",
        both(lambda c, s: c.clients.wrk_ranges(s.url(big.path), 64, c.range_seconds, big.size)),
        tags={"ranges", "c64"}))
    # h2load sends the same headers on every request: one fixed range, off any
    # chunk or page boundary, in the middle of the file.
    at = big.size // 2 + 12345
    out.append(Scenario(
        "ranges_h2", "4 KiB ranges, 64 conns, HTTP/2 (h2load, one fixed range)",
        both(lambda c, s: c.clients.h2load(s.url(big.path), 64, duration=c.range_seconds,
                                           headers=[f"Range: bytes={at}-{at + 4095}"])),
        tags={"ranges", "c64"}))

    out.append(Scenario(
        "verify", f"verify = \"always\" against \"cached\", 1 stream {human_size(big.size)} HTTP/1.1",
        [Variant("cached", dp, lambda c: c.clients.curl(dp.url(big.path), False, big.size)),
         Variant("always", dp, lambda c: c.clients.curl(dp.url("/always" + big.path), False,
                                                        big.size))]))

    out.append(Scenario(
        "first", f"first request for an unhashed {human_size(big.size)} file, HTTP/1.1",
        both(lambda c, s: first_request(c, s)), retry=False))

    for proto in ("h1", "h2"):
        out.append(Scenario(
            f"idle_{proto}",
            f"{ctx.idle_conns} idle TLS keep-alive connections, {'HTTP/2' if proto == 'h2' else 'HTTP/1.1'}",
            both(lambda c, s, p=proto: idle(c, s, p)), fresh_server=True))
    return out


def first_request(ctx, server):
    """A file nobody asked for before (a copy made at setup), then again, warm."""
    try:
        f = ctx.files["fresh"][ctx.round]
    except OSError as e:  # no room for the copy (ENOSPC): this sample fails, the run goes on
        print(f"first request: cannot make the unhashed copy: {e}", file=sys.stderr)
        return {"bytes": 0, "requests": 1, "seconds": 1.0, "ttfb": 0.0, "warm_seconds": 1.0,
                "errors": 1}
    first = ctx.clients.curl(server.url(f.path), False, f.size)
    warm = ctx.clients.curl(server.url(f.path), False, f.size)
    first["warm_seconds"] = warm["seconds"]
    first["errors"] += warm["errors"]
    return first


def idle(ctx, server, proto):
    """PSS of a freshly started server (one small request served) before and while
    ctx.idle_conns connections sit idle."""
    before = procs.pss_mib(server.pid)
    holder = subprocess.Popen(
        ctx.clients.prefix + ["python3", ctx.idle_script, str(server.port), str(ctx.idle_conns),
                              proto, ctx.ca, "/tiny.txt"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    line = holder.stdout.readline().split()
    opened = time.monotonic() - t0
    errors = 0
    if not line or line[0] != "ready":
        errors = ctx.idle_conns
    during = procs.pss_mib(server.pid)
    holder.stdin.close()
    holder.wait(timeout=60)
    return {"bytes": 0, "requests": ctx.idle_conns, "seconds": opened, "errors": errors,
            "pss_before": before, "pss": during,
            "tls": " ".join(line[2:]) if len(line) > 2 else ""}
