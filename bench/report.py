#!/usr/bin/env python3
"""bench/run's arithmetic: parses wrk's output and turns the runs into a table or JSON.

  report.py wrk FILE            prints `rps p50_us p99_us requests errors` of one wrk run
  report.py table DIR [--json]  medians of DIR/results.tsv per case of DIR/cases.tsv, the
                                ratios, memory from DIR/memory.tsv and the issue's targets

cases.tsv:   id, label, nginx reference case, direct reference case ("-" for none)
results.tsv: id, repeat, rps, p50_us, p99_us, cpu_us_per_req, requests, errors,
             user_us_per_req, kernel_us_per_req, machine_us_per_req (busy CPU of the whole
             machine per request: gateway, wrk, upstream and interrupts)
memory.tsv:  gateway, peak_rss_kib, idle_open, rss_before_kib, rss_idle_kib
"""
import json
import os
import re
import statistics
import sys

UNITS = {"us": 1.0, "ms": 1000.0, "s": 1_000_000.0}
CORES = os.cpu_count() or 1


def micros(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(path: str) -> None:
    text = open(path).read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    p50 = micros(re.search(r"^\s+50%\s+(\S+)", text, re.M).group(1))
    p99 = micros(re.search(r"^\s+99%\s+(\S+)", text, re.M).group(1))
    requests = int(re.search(r"(\d+) requests in", text).group(1))
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", text):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text):
        errors += sum(int(x) for x in m.groups())
    print(f"{rps:.0f} {p50:.1f} {p99:.1f} {requests} {errors}")


def rows(path: str) -> list[list[str]]:
    try:
        with open(path) as f:
            return [line.rstrip("\n").split("\t") for line in f if line.strip()]
    except FileNotFoundError:
        return []


def table(directory: str, as_json: bool) -> None:
    cases = rows(f"{directory}/cases.tsv")
    runs: dict[str, list[list[float]]] = {}
    for case, _repeat, *numbers in rows(f"{directory}/results.tsv"):
        runs.setdefault(case, []).append([float(x) for x in numbers])

    med = {}
    for case, label, nginx_ref, direct_ref in cases:
        if case not in runs:
            continue
        columns = list(zip(*runs[case]))
        med[case] = {
            "case": case,
            "label": label,
            "rps": statistics.median(columns[0]),
            "p50_us": statistics.median(columns[1]),
            "p99_us": statistics.median(columns[2]),
            "cpu_us_per_req": statistics.median(columns[3]),
            "user_us_per_req": statistics.median(columns[6]),
            "kernel_us_per_req": statistics.median(columns[7]),
            "machine_us_per_req": statistics.median(columns[8]),
            "errors": int(sum(columns[5])),
            "runs_rps": [round(x) for x in columns[0]],
            "nginx_ref": None if nginx_ref == "-" else nginx_ref,
            "direct_ref": None if direct_ref == "-" else direct_ref,
        }
    for m in med.values():
        for ref, key in (("nginx_ref", "vs_nginx"), ("direct_ref", "vs_direct")):
            other = med.get(m[ref]) if m[ref] else None
            m[key] = round(m["rps"] / other["rps"], 3) if other else None

    memory = []
    for gateway, peak, idle_open, before, after in rows(f"{directory}/memory.tsv"):
        idle_open = int(idle_open)
        per = (float(after) - float(before)) / idle_open if idle_open else None
        memory.append({
            "gateway": gateway,
            "peak_rss_kib": int(peak),
            "idle_connections": idle_open,
            "rss_before_kib": int(before),
            "rss_idle_kib": int(after),
            "kib_per_idle_connection": round(per, 2) if per is not None else None,
        })

    targets = evaluate(med, memory)
    if as_json:
        print(json.dumps({"cases": list(med.values()), "memory": memory, "targets": targets},
                         indent=2))
        return

    def ratio(x):
        return f"{x:.2f}" if x is not None else "-"

    print("| case | req/s | p50 | p99 | gateway CPU/req | user + kernel | ×nginx | ×direct |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for m in med.values():
        flag = f" ({m['errors']} errors)" if m["errors"] else ""
        rps = f"{m['rps']:,.0f}".replace(",", " ")
        print(f"| {m['label']}{flag} | {rps} | {fmt_us(m['p50_us'])} | "
              f"{fmt_us(m['p99_us'])} | {m['cpu_us_per_req']:.1f} µs | "
              f"{m['user_us_per_req']:.1f} + {m['kernel_us_per_req']:.1f} µs | "
              f"{ratio(m['vs_nginx'])} | {ratio(m['vs_direct'])} |")
    if memory:
        print()
        print("| gateway | peak RSS | RSS before → with idle conns | per idle connection |")
        print("|---|---:|---:|---:|")
        for m in memory:
            per = m["kib_per_idle_connection"]
            print(f"| {m['gateway']} | {m['peak_rss_kib'] / 1024:.1f} MiB | "
                  f"{m['rss_before_kib'] / 1024:.1f} → {m['rss_idle_kib'] / 1024:.1f} MiB "
                  f"({m['idle_connections']} conns) | "
                  f"{'-' if per is None else f'{per:.1f} KiB'} |")
    if targets:
        print()
        print("| target | measured | |")
        print("|---|---|---|")
        for t in targets:
            print(f"| {t['target']} | {t['measured']} | {'met' if t['met'] else 'NOT met'} |")


def fmt_us(us: float) -> str:
    return f"{us / 1000:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def evaluate(med: dict, memory: list) -> list:
    """The issue's targets, each with the measured figure and whether it is met."""
    out = []

    def add(target, measured, met):
        out.append({"target": target, "measured": measured, "met": bool(met)})

    def r(a, b):
        return med[a]["rps"] / med[b]["rps"]

    def budget(case, reference, factor):
        """What `case` may spend per request to serve `factor` × `reference`'s req/s on
        this machine: the cores' time per request at that rate, less what the rest of the
        machine (wrk, the upstream, interrupts) spends per request of `case`."""
        m = med[case]
        capacity = CORES * 1e6 / (factor * med[reference]["rps"])
        allowed = capacity - (m["machine_us_per_req"] - m["cpu_us_per_req"])
        return (f"; CPU budget for it {allowed:.1f} µs/req, spends {m['cpu_us_per_req']:.1f} "
                f"({m['kernel_us_per_req']:.1f} in the kernel)")

    if {"b", "nginx"} <= med.keys():
        x = r("b", "nginx")
        p, q = med["b"]["p99_us"], med["nginx"]["p99_us"]
        add("(b) ≥ 1.2× nginx req/s, p99 ≤ nginx's",
            f"{x:.2f}×, p99 {fmt_us(p)} vs {fmt_us(q)}" + budget("b", "nginx", 1.2),
            x >= 1.2 and p <= q)
    if {"a", "direct"} <= med.keys():
        x = r("a", "direct")
        add("(a) ≥ 0.8× direct (ceiling)", f"{x:.2f}×", x >= 0.8)
    if {"b-c1", "direct-c1"} <= med.keys():
        d = med["b-c1"]["p50_us"] - med["direct-c1"]["p50_us"]
        add("(b) at 1 connection: p50 ≤ direct + 100 µs", f"+{d:.0f} µs", d <= 100)
    if {"c", "b"} <= med.keys():
        x = r("c", "b")
        add("(c) Redis ≥ 0.7× (b)", f"{x:.2f}×", x >= 0.7)
    if {"d", "b"} <= med.keys():
        x = r("d", "b")
        add("(d) JWT ES256 ≥ 0.8× (b)", f"{x:.2f}×", x >= 0.8)
    if {"b-tls", "nginx-tls"} <= med.keys():
        x = r("b-tls", "nginx-tls")
        add("TLS keep-alive ≥ nginx", f"{x:.2f}×" + budget("b-tls", "nginx-tls", 1.0),
            x >= 1.0)
    for m in memory:
        if m["gateway"].startswith("palisade") and m["kib_per_idle_connection"] is not None:
            per = m["kib_per_idle_connection"]
            add("≤ 10 KiB per idle keep-alive connection", f"{per:.1f} KiB", per <= 10)
    return out


if __name__ == "__main__":
    if sys.argv[1] == "wrk":
        parse_wrk(sys.argv[2])
    else:
        table(sys.argv[2], "--json" in sys.argv[3:])
