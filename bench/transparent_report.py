#!/usr/bin/env python3
"""Write bench/results/transparent.md from the transparent suite's JSON lines
(bench/transparent.sh): medians per path, and the issue 21 targets."""

import json
import statistics
import sys

rows = [json.loads(line) for line in open(sys.argv[1]) if line.strip()]
out, nbytes, count, commit, date, load = sys.argv[2:8]


def med(path, fig, key):
    v = [r["r"][key] for r in rows if r["path"] == path and r["fig"] == fig and r.get("r")
         and isinstance(r["r"].get(key), (int, float))]
    return statistics.median(v) if v else None


def fmt(x, unit):
    return "n/a" if x is None else f"{x:,.2f} {unit}" if unit == "Gbit/s" else f"{x:,.0f} {unit}"


def ratio(a, b):
    return "n/a" if not (a and b) else f"{a / b:.2f}"


paths = ["synack", "socks5", "tun2proxy", "direct"]
lines = ["# Transparent relay (issue 21)", "",
         f"{date}; commit {commit}; load at start {load}.",
         f"{int(nbytes):,} bytes per transfer; {int(count):,} sequential connections; medians of "
         f"{max((r['run'] for r in rows), default=0)} runs.", "",
         "| figure | synack `direct` | synack `socks5:` (microsocks) | tun2proxy 0.8.7 | direct "
         "(kernel, veth) | synack / direct (≥ 0.8) | synack / tun2proxy |",
         "|---|---|---|---|---|---|---|"]
for fig, name in [("up1", "upload, 1 connection"), ("down1", "download, 1 connection"),
                  ("up10", "upload, 10 connections"), ("down10", "download, 10 connections")]:
    v = {p: med(p, fig, "gbps") for p in paths}
    lines.append(f"| {name} | " + " | ".join(fmt(v[p], "Gbit/s") for p in paths)
                 + f" | {ratio(v['synack'], v['direct'])} | {ratio(v['synack'], v['tun2proxy'])} |")
v = {p: med(p, "connrate", "conns_per_s") for p in paths}
lines.append("| new connections per second (sequential) | " + " | ".join(
    fmt(v[p], "/s") for p in paths)
    + f" | {ratio(v['synack'], v['direct'])} | {ratio(v['synack'], v['tun2proxy'])} (≥ 10) |")
idle = {}
for r in rows:
    if r["fig"] == "idle10k" and r.get("r"):
        idle[r["path"]] = dict(r["r"], rss0_kib=r.get("rss0_kib"))
cells = []
for p in paths:
    r = idle.get(p)
    cells.append("n/a" if not r or r.get("rss_kib") is None
                 else f"{r['rss_kib'] / 1024:,.0f} MiB ({r.get('conns', 0):,} open"
                 + (f"; {r['rss0_kib'] / 1024:,.0f} MiB before)" if r.get("rss0_kib") else ")"))
rs, rt = idle.get("synack", {}).get("rss_kib"), idle.get("tun2proxy", {}).get("rss_kib")
lines.append("| daemon RSS, 10,000 idle relayed connections (fresh daemons) | " + " | ".join(cells)
             + f" | | {ratio(rs, rt)} (≤ 0.1) |")
open(out, "w").write("\n".join(lines) + "\n")
print("\n".join(lines))
