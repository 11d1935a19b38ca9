"""Rounds of alternated samples, each wrapped in the server's and the machine's counters.

Round r runs every scenario once per variant, in the order A B on even rounds
and B A on odd ones, so that two rounds make A B B A and a drift in the
machine's load falls on both servers alike. Before each sample the runner
waits (up to `max_wait` seconds) for other processes to use less than
`noisy_cores` of the machine; a sample during which they used more is taken
again, up to `retries` times, and the quietest attempt is kept (the foreign
load of every attempt is recorded).
"""
import sys
import time

import procs


def measure(ctx, variant):
    pid = variant.server.pid
    procs.reset_rss_peak(pid)
    rss_start = procs.rss_mib(pid)
    busy0, srv0 = procs.machine_busy_seconds(), procs.cpu_seconds(pid)
    cli0, own0 = procs.children_cpu_seconds(), procs.own_cpu_seconds()
    t0 = time.monotonic()
    sample = variant.run(ctx)
    wall = time.monotonic() - t0
    srv = procs.cpu_seconds(pid) - srv0
    cli = procs.children_cpu_seconds() - cli0
    own = procs.own_cpu_seconds() - own0
    foreign = max(0.0, procs.machine_busy_seconds() - busy0 - srv - cli - own)
    sample.update(cpu=srv, client_cpu=cli, wall=wall, foreign_cores=foreign / wall,
                  rss_peak=procs.rss_peak_mib(pid), rss_start=rss_start)
    return sample


def foreign_now(seconds=0.5):
    """Cores other processes keep busy right now (the servers are idle between samples)."""
    busy0, own0 = procs.machine_busy_seconds(), procs.own_cpu_seconds()
    time.sleep(seconds)
    return max(0.0, procs.machine_busy_seconds() - busy0 - (procs.own_cpu_seconds() - own0)) / seconds


class Budget:
    """Seconds the whole run may spend waiting for quiet and retaking noisy samples, so
    that a machine that stays busy costs a bounded delay, not one per sample."""
    left = 0.0


def wait_quiet(max_wait, noisy_cores):
    """Wait up to max_wait seconds (within the budget) for the other processes' load to
    drop below noisy_cores."""
    t0 = time.monotonic()
    deadline = t0 + min(max_wait, Budget.left)
    while time.monotonic() < deadline and foreign_now() > noisy_cores:
        pass
    Budget.left -= time.monotonic() - t0


def attempt(ctx, scenario, variant, max_wait, noisy_cores):
    if scenario.fresh_server:
        variant.server.stop()
        variant.server.start(ctx.cores)
    wait_quiet(max_wait, noisy_cores)
    sample = measure(ctx, variant)
    if scenario.fresh_server:
        ctx.warm_up([variant.server])
    return sample


def take(ctx, scenario, variant, retries, noisy_cores, max_wait):
    attempts = [attempt(ctx, scenario, variant, max_wait, noisy_cores)]
    while (scenario.retry and attempts[-1]["foreign_cores"] > noisy_cores
           and len(attempts) <= retries and Budget.left > 0):
        t0 = time.monotonic()
        attempts.append(attempt(ctx, scenario, variant, max_wait, noisy_cores))
        Budget.left -= time.monotonic() - t0
    best = min(attempts, key=lambda s: s["foreign_cores"])
    best["attempts"] = len(attempts)
    best["foreign_all"] = [round(a["foreign_cores"], 2) for a in attempts]
    return best


def run_rounds(ctx, scenarios, rounds, retries, noisy_cores, max_wait, results, section):
    """results[section][scenario.key][variant.label] -> list of samples."""
    store = results.setdefault(section, {})
    for r in range(rounds):
        ctx.round = r
        for sc in scenarios:
            variants = sc.variants if r % 2 == 0 else list(reversed(sc.variants))
            for v in variants:
                s = take(ctx, sc, v, retries, noisy_cores, max_wait)
                s["round"] = r
                store.setdefault(sc.key, {}).setdefault(v.label, []).append(s)
                flag = " ERRORS" if s["errors"] else ""
                print(f"  [{section} r{r + 1}/{rounds}] {sc.key:<20} {v.label:<9} "
                      f"{summary(sc, s)} foreign {s['foreign_cores']:.2f} cores"
                      f"{' x' + str(s['attempts']) if s['attempts'] > 1 else ''}{flag}",
                      file=sys.stderr, flush=True)


def summary(sc, s):
    if "pss" in s:
        return f"PSS {s['pss']:.1f} MiB (idle {s['pss_before']:.1f})"
    if "ranges" in sc.tags:
        return f"{s['requests'] / s['seconds'] / 1e3:7.1f} kreq/s {s['cpu'] * 1e6 / max(1, s['requests']):6.1f} us/req"
    gbps = s["bytes"] / s["seconds"] / 1e9
    return f"{gbps:6.2f} GB/s {s['cpu'] / (s['bytes'] / 2**30):5.2f} CPU-s/GiB"
