"""Medians, ranges, ratios and the issue's targets, as Markdown tables.

A figure is `median (min–max)` over the rounds. The ratio is distpoint's
median over nginx's; the bracket after it is the range of the per-round
ratios (each round's distpoint sample over the same round's nginx sample),
which shows how far the noise moves it.
"""
import statistics

GIB = 2**30

METRICS = {
    "gbps": ("GB/s", 2, lambda s: s["bytes"] / s["seconds"] / 1e9),
    "cpu_gib": ("CPU-s/GiB", 2, lambda s: s["cpu"] / (s["bytes"] / GIB)),
    "p99_s": ("p99 s", 2, lambda s: s.get("p99")),
    "kreq": ("k req/s", 1, lambda s: s["requests"] / s["seconds"] / 1e3),
    "cpu_req": ("CPU-µs/req", 1, lambda s: s["cpu"] * 1e6 / s["requests"]),
    "p99_ms": ("p99 ms", 2, lambda s: s["p99"] * 1e3 if s.get("p99") is not None else None),
    "ttfb": ("time to first byte, s", 2, lambda s: s["ttfb"]),
    "first_warm": ("whole first request ÷ warm request (throughput)", 2,
                   lambda s: s["warm_seconds"] / s["seconds"]),
    "pss": ("PSS MiB", 1, lambda s: s["pss"]),
    "pss_conn": ("KiB per connection (PSS growth)", 1,
                 lambda s: (s["pss"] - s["pss_before"]) * 1024 / s["requests"]),
    "rss_peak": ("peak RSS MiB", 0, lambda s: s["rss_peak"]),
}

# (scenario key prefix, metric, target kind, threshold); kinds: ge/le compare the ratio.
TARGETS = {
    "stream": [("gbps", "ge", 1.10), ("cpu_gib", "le", 0.90)],
    "load": [("gbps", "ge", 1.00), ("cpu_gib", "le", 1.00), ("p99_s", None, None)],
    "ranges": [("kreq", "ge", 1.00), ("p99_ms", "le", 1.00), ("cpu_req", "le", 1.00)],
    "idle": [("pss", "le", 2.00), ("pss_conn", None, None)],
}


def values(samples, metric):
    f = METRICS[metric][2]
    return [v for v in (f(s) for s in samples if not s["errors"]) if v is not None]


def fmt_stat(vals, digits):
    if not vals:
        return "—"
    med = statistics.median(vals)
    return f"{med:.{digits}f} ({min(vals):.{digits}f}–{max(vals):.{digits}f})"


def paired_ratios(a, b, metric):
    f = METRICS[metric][2]
    by_round = {s["round"]: s for s in b if not s["errors"]}
    out = []
    for s in a:
        o = by_round.get(s["round"])
        if o is None or s["errors"]:
            continue
        x, y = f(s), f(o)
        if x is not None and y:
            out.append(x / y)
    return out


def ratio_cell(a, b, metric):
    va, vb = values(a, metric), values(b, metric)
    if not va or not vb or not statistics.median(vb):
        return None, "—"
    r = statistics.median(va) / statistics.median(vb)
    pr = paired_ratios(a, b, metric)
    span = f" [{min(pr):.2f}–{max(pr):.2f}]" if len(pr) > 1 else ""
    return r, f"{r:.2f}×{span}"


def verdict(r, kind, threshold):
    if kind is None or r is None:
        return "", ""
    # On the figure as printed: noise is far above the third decimal.
    r = round(r, 2)
    ok = r >= threshold if kind == "ge" else r <= threshold
    return f"{'≥' if kind == 'ge' else '≤'} {threshold:.2f}×", "yes" if ok else "**no**"


def main_table(res, scenarios, sha_cpu_gib):
    rows = ["| scenario | metric | distpoint | nginx | ratio [per-round range] | target | met |",
            "|---|---|---:|---:|---:|---|---|"]
    for sc in scenarios:
        got = res.get(sc.key)
        if not got:
            continue
        kind = sc.key.split("_")[0]
        if kind in TARGETS:
            for metric, tk, th in TARGETS[kind]:
                name, digits, _ = METRICS[metric]
                dp, ng = got.get("distpoint", []), got.get("nginx", [])
                r, cell = ratio_cell(dp, ng, metric)
                target, met = verdict(r, tk, th)
                rows.append(f"| {sc.title} | {name} | {fmt_stat(values(dp, metric), digits)} | "
                            f"{fmt_stat(values(ng, metric), digits)} | {cell} | {target} | {met} |")
        elif sc.key == "verify":
            rows += verify_rows(sc, got, sha_cpu_gib)
        elif sc.key == "first":
            rows += first_rows(sc, got)
    rows += peak_rows(res)
    return "\n".join(rows)


def verify_rows(sc, got, sha):
    cached, always = got.get("cached", []), got.get("always", [])
    c, a = values(cached, "cpu_gib"), values(always, "cpu_gib")
    if not c or not a:
        return []
    bound = statistics.median(c) + sha
    r = statistics.median(a) / bound
    target, met = verdict(r, "le", 1.00)
    return [
        f"| {sc.title} | GB/s | always: {fmt_stat(values(always, 'gbps'), 2)} | "
        f"cached: {fmt_stat(values(cached, 'gbps'), 2)} | {ratio_cell(always, cached, 'gbps')[1]} "
        f"(always ÷ cached) | | |",
        f"| {sc.title} | CPU-s/GiB | always: {fmt_stat(a, 2)} | cached {statistics.median(c):.2f} "
        f"+ one SHA-256 pass {sha:.2f} = {bound:.2f} | {r:.2f}× (always ÷ that) | {target} | {met} |"]


def first_rows(sc, got):
    dp, ng = got.get("distpoint", []), got.get("nginx", [])
    out = []
    for metric, limit, kind in (("ttfb", 1.0, "abs"), ("first_warm", 0.8, "ge"), ("gbps", None, None)):
        name, digits, _ = METRICS[metric]
        v = values(dp, metric)
        target = met = ""
        if v and kind == "abs":
            target, met = f"≤ {limit:.0f} s", "yes" if statistics.median(v) <= limit else "**no**"
        elif v and kind == "ge":
            target, met = f"≥ {limit:.2f}", "yes" if statistics.median(v) >= limit else "**no**"
        out.append(f"| {sc.title} | {name} | {fmt_stat(v, digits)} | "
                   f"{fmt_stat(values(ng, metric), digits)} | | {target} | {met} |")
    return out


def peak_rows(res):
    """Peak RSS over the 64-connection runs of each round, per server."""
    peaks = {}
    for key, by_label in res.items():
        if "_64_" not in key and not key.startswith("ranges"):
            continue
        for label, samples in by_label.items():
            for s in samples:
                d = peaks.setdefault(label, {})
                d[s["round"]] = max(d.get(s["round"], 0), s["rss_peak"])
    if "distpoint" not in peaks or "nginx" not in peaks:
        return []
    dp, ng = list(peaks["distpoint"].values()), list(peaks["nginx"].values())
    diff = statistics.median(dp) - statistics.median(ng)
    met = "yes" if diff <= 64 else "**no**"
    return [f"| peak memory at 64 connections (max over the 64-conn runs) | peak RSS MiB | "
            f"{fmt_stat(dp, 0)} | {fmt_stat(ng, 0)} | {statistics.median(dp) / statistics.median(ng):.1f}× "
            f"(+{diff:.0f} MiB) | ≤ nginx + 64 MiB | {met} |"]


def scaling_table(res1, res2, scenarios):
    rows = ["| scenario | metric | distpoint 1 core | 2 cores | × | nginx 1 core | 2 cores | × "
            "| ratio 1 core | ratio 2 cores |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for sc in scenarios:
        a, b = res1.get(sc.key), res2.get(sc.key)
        if not a or not b:
            continue
        kind = sc.key.split("_")[0]
        for metric in ("kreq", "cpu_req") if kind == "ranges" else ("gbps", "cpu_gib"):
            name, digits, _ = METRICS[metric]
            cells = []
            for label in ("distpoint", "nginx"):
                v1, v2 = values(a.get(label, []), metric), values(b.get(label, []), metric)
                x = statistics.median(v2) / statistics.median(v1) if v1 and v2 else None
                cells += [fmt_stat(v1, digits), fmt_stat(v2, digits),
                          f"{x:.2f}" if x else "—"]
            r1 = ratio_cell(a.get("distpoint", []), a.get("nginx", []), metric)[1]
            r2 = ratio_cell(b.get("distpoint", []), b.get("nginx", []), metric)[1]
            rows.append(f"| {sc.title} | {name} | " + " | ".join(cells) + f" | {r1} | {r2} |")
    return "\n".join(rows)


def noise_table(results, noisy_cores):
    rows = ["| section | samples | attempts | median foreign load | worst | samples over "
            f"{noisy_cores} cores | client CPU share (median) |", "|---|---:|---:|---:|---:|---:|---:|"]
    for section, res in results.items():
        samples = [s for by in res.values() for ss in by.values() for s in ss]
        if not samples:
            continue
        foreign = [s["foreign_cores"] for s in samples]
        attempts = sum(s["attempts"] for s in samples)
        over = sum(f > noisy_cores for f in foreign)
        client = [s["client_cpu"] / s["wall"] for s in samples if s["wall"] > 0]
        rows.append(f"| {section} | {len(samples)} | {attempts} | {statistics.median(foreign):.2f} cores | "
                    f"{max(foreign):.2f} | {over} | {statistics.median(client):.2f} cores |")
    return "\n".join(rows)


def errors(results):
    out = []
    for section, res in results.items():
        for key, by in res.items():
            for label, ss in by.items():
                bad = [s for s in ss if s["errors"]]
                if bad:
                    out.append(f"- {section} {key} {label}: {len(bad)} sample(s) with errors "
                               f"({sum(s['errors'] for s in bad)} failed requests), left out")
    return "\n".join(out)
