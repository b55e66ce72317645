#!/usr/bin/python3
"""Turns the raw results of scripts/bench.sh into a markdown table, a CSV and a PNG chart.

Input: a JSON-lines file, one object per measurement:
    {"server": "smoltcp", "mtu": 1500, "figure": "up1", "run": 1, "r": {...bench-client output...}}
with "r": null for a failed measurement. Every figure is the median over the runs that
produced a value. Standard library only; the chart needs matplotlib and is skipped without it.
"""

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time

SERVERS = ["synack", "smoltcp", "kernel"]
SERVER_TITLES = {"synack": "synack (TUN)", "smoltcp": "smoltcp (TUN)", "kernel": "kernel (veth)",
                 "baseline": "baseline synack (TUN)"}
GIB = float(1 << 30)

# (key, title, unit, higher_is_better)
FIGURES = [
    ("up1", "client→server, 1 connection", "Gbit/s", True),
    ("down1", "server→client, 1 connection", "Gbit/s", True),
    ("upN", "client→server, parallel connections", "Gbit/s", True),
    ("downN", "server→client, parallel connections", "Gbit/s", True),
    ("cps_seq", "connections/s, sequential", "conn/s", True),
    ("cps_par", "connections/s, parallel", "conn/s", True),
    ("cpu_up", "server CPU per GiB received", "s/GiB", False),
    ("cpu_down", "server CPU per GiB sent", "s/GiB", False),
    ("rss", "server peak RSS (VmHWM)", "MiB", False),
]
TUN_FIGURES = [
    ("tun_read", "TUN read ceiling (kernel→userspace)", "Gbit/s"),
    ("tun_read_pps", "TUN read ceiling", "kpps"),
    ("tun_write", "TUN write ceiling (userspace→kernel)", "Gbit/s"),
    ("tun_write_pps", "TUN write ceiling", "kpps"),
    ("tun_read_offload", "TUN read ceiling with offload (64 KiB super-packets)", "Gbit/s"),
    ("tun_write_offload", "TUN write ceiling with offload (64 KiB super-packets)", "Gbit/s"),
]


def value_of(figure, r):
    """The number one raw measurement contributes to `figure`, or None."""
    if r is None:
        return None
    if figure in ("up1", "down1", "upN", "downN"):
        return r.get("gbps")
    if figure in ("cps_seq", "cps_par"):
        return r.get("conns_per_s")
    if figure in ("cpu_up", "cpu_down"):
        cpu, moved = r.get("server_cpu_s"), r.get("bytes")
        if cpu is None or not moved:
            return None
        return cpu / (moved / GIB)
    if figure == "rss":
        kib = r.get("kib")
        return None if kib is None else kib / 1024.0
    if figure in ("tun_read", "tun_write", "tun_read_offload", "tun_write_offload"):
        return r.get("gbps")
    if figure in ("tun_read_pps", "tun_write_pps"):
        pps = r.get("pps")
        return None if pps is None else pps / 1000.0
    return None


def load(path):
    """{(server, mtu, figure): {"values": [...], "runs": n, "incomplete": k}}"""
    data = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            r = rec.get("r")
            figs = [rec["figure"]]
            # One transfer feeds both its throughput and its CPU-per-GiB figure.
            if rec["figure"] == "up1":
                figs.append("cpu_up")
            elif rec["figure"] == "down1":
                figs.append("cpu_down")
            elif rec["figure"] == "tun_read":
                figs.append("tun_read_pps")
            elif rec["figure"] == "tun_write":
                figs.append("tun_write_pps")
            for fig in figs:
                slot = data.setdefault(
                    (rec["server"], int(rec["mtu"]), fig),
                    {"values": [], "runs": 0, "incomplete": 0},
                )
                slot["runs"] += 1
                v = value_of(fig, r)
                if v is not None:
                    slot["values"].append(v)
                if r is not None and r.get("complete") is False:
                    slot["incomplete"] += 1
    return data


def median(data, server, mtu, fig):
    slot = data.get((server, mtu, fig))
    if not slot or not slot["values"]:
        return None
    return statistics.median(slot["values"])


def fmt(v, unit=""):
    if v is None:
        return "n/a"
    if unit in ("conn/s", "kpps"):
        return f"{v:,.0f}"
    if abs(v) >= 100:
        return f"{v:.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def cell(data, server, mtu, fig, unit):
    slot = data.get((server, mtu, fig))
    text = fmt(median(data, server, mtu, fig), unit)
    if slot and slot["values"]:
        notes = []
        if len(slot["values"]) < slot["runs"]:
            notes.append(f"{len(slot['values'])}/{slot['runs']} runs")
        if slot["incomplete"]:
            notes.append(f"{slot['incomplete']} capped")
        if notes:
            text += " (" + ", ".join(notes) + ")"
    return text


def machine():
    model = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = "unknown"
    try:
        with open("/proc/meminfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = f"{int(line.split()[1]) / (1 << 20):.1f} GiB"
                    break
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "model": model,
        "kernel": platform.release(),
        "memory": mem,
    }


def with_baseline(data):
    """SERVERS, with the baseline synack (`bench.sh --baseline REV`) after synack if measured."""
    if any(k[0] == "baseline" for k in data):
        return ["synack", "baseline"] + SERVERS[1:]
    return SERVERS


def markdown(data, mtus, meta):
    m = machine()
    servers = with_baseline(data)
    base = "baseline" in servers
    out = []
    out.append(f"# synack benchmark — {meta.get('date') or time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    out.append("")
    out.append(
        f"Machine: {m['cpus']} CPUs, {m['model']}, Linux {m['kernel']}, {m['memory']} RAM; "
        f"load average at start: {meta.get('load', '?')}."
    )
    out.append(
        f"Runs per figure: {meta.get('runs', '?')} (median shown); transfer size "
        f"{meta.get('bytes', '?')} bytes, capped at {meta.get('cap', '?')} s; "
        f"parallel = {meta.get('conns', '?')} connections; connections/s over "
        f"{meta.get('count', '?')} connect-and-close; commit {meta.get('commit', '?')}"
        + (f"; baseline synack at {meta.get('baseline')}." if base else ".")
    )
    for mtu in mtus:
        out.append("")
        out.append(f"## MTU {mtu}")
        out.append("")
        out.append(
            "| Figure | unit | "
            + " | ".join(SERVER_TITLES[s] for s in servers)
            + " | synack/smoltcp | synack/kernel |"
            + (" synack/baseline |" if base else "")
        )
        out.append("|---|---|" + "---:|" * (len(servers) + 2 + base))
        for key, title, unit, better in FIGURES:
            row = [title + ("" if better else " (lower is better)"), unit]
            row += [cell(data, s, mtu, key, unit) for s in servers]
            syn = median(data, "synack", mtu, key)
            row.append(fmt(ratio(syn, median(data, "smoltcp", mtu, key))))
            row.append(fmt(ratio(syn, median(data, "kernel", mtu, key))))
            if base:
                row.append(fmt(ratio(syn, median(data, "baseline", mtu, key))))
            out.append("| " + " | ".join(row) + " |")
        out.append("")
        out.append("| TUN ceiling | unit | value |")
        out.append("|---|---|---:|")
        for key, title, unit in TUN_FIGURES:
            out.append(f"| {title} | {unit} | {cell(data, 'tun', mtu, key, unit)} |")
        up = median(data, "synack", mtu, "up1")
        ceiling = median(data, "tun", mtu, "tun_read")
        out.append(
            f"| client→synack / TUN read ceiling | ratio | {fmt(ratio(up, ceiling))} |"
        )
        down = median(data, "synack", mtu, "down1")
        for title, v, key in (
            ("client→synack / TUN read ceiling with offload", up, "tun_read_offload"),
            ("synack→client / TUN write ceiling with offload", down, "tun_write_offload"),
        ):
            out.append(
                f"| {title} | ratio | {fmt(ratio(v, median(data, 'tun', mtu, key)))} |"
            )
    if 1500 in mtus:
        out.append("")
        out.append("## Targets (issue 3, MTU 1500)")
        out.append("")
        out.append("| Target | measured | verdict |")
        out.append("|---|---:|---|")
        checks = [
            ("client→synack ≥ 1.2 × smoltcp", "up1", "smoltcp", 1.2),
            ("synack→client ≥ 1.5 × smoltcp", "down1", "smoltcp", 1.5),
            ("sequential connections/s ≥ smoltcp", "cps_seq", "smoltcp", 1.0),
            ("parallel connections/s ≥ smoltcp", "cps_par", "smoltcp", 1.0),
            ("client→synack ≥ 0.8 × TUN read ceiling", "up1", "tun", 0.8),
        ]
        for title, key, other, need in checks:
            theirs = median(data, other, 1500, "tun_read" if other == "tun" else key)
            r = ratio(median(data, "synack", 1500, key), theirs)
            verdict = "n/a" if r is None else ("PASS" if r >= need else "FAIL")
            out.append(f"| {title} | {fmt(r)} | {verdict} |")
    return "\n".join(out) + "\n"


def write_csv(data, mtus, path):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(
            ["mtu", "figure", "unit", "synack", "smoltcp", "kernel", "tun",
             "synack_over_smoltcp", "synack_over_kernel", "baseline", "synack_over_baseline"]
        )

        def num(v):
            return "" if v is None else f"{v:.6g}"

        for mtu in mtus:
            for key, _title, unit, _better in FIGURES:
                vals = [median(data, s, mtu, key) for s in SERVERS]
                b = median(data, "baseline", mtu, key)
                w.writerow(
                    [mtu, key, unit] + [num(v) for v in vals] + [""]
                    + [num(ratio(vals[0], vals[1])), num(ratio(vals[0], vals[2]))]
                    + [num(b), num(ratio(vals[0], b))]
                )
            for key, _title, unit in TUN_FIGURES:
                w.writerow([mtu, key, unit, "", "", "", num(median(data, "tun", mtu, key)), "", "",
                            "", ""])


def write_png(data, mtus, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report.py: matplotlib not available, no chart", file=sys.stderr)
        return False
    colors = {"synack": "#d62728", "smoltcp": "#1f77b4", "kernel": "#7f7f7f", "tun": "#2ca02c",
              "baseline": "#ff9896"}
    servers = with_baseline(data)
    groups = [("up1", "c→s\n1 conn"), ("down1", "s→c\n1 conn"),
              ("upN", "c→s\nparallel"), ("downN", "s→c\nparallel")]
    fig, axes = plt.subplots(1, len(mtus) + 1, figsize=(5.2 * (len(mtus) + 1), 4.6))
    width = 0.8 / (len(servers) + 1)
    def bars(ax, server, i, points):
        """One server's bars at group positions; n/a where it has no value."""
        for g, v in enumerate(points):
            x = g + (i - 1) * width
            label = SERVER_TITLES[server] if g == 0 else None
            if v is None:
                ax.text(x, 0, "n/a", rotation=90, ha="center", va="bottom", fontsize=7)
                # A zero-height bar keeps the server in the legend.
                ax.bar(x, 0, width, color=colors[server], label=label)
            else:
                ax.bar(x, v, width, color=colors[server], label=label)

    for ax, mtu in zip(axes, mtus):
        for i, server in enumerate(servers):
            bars(ax, server, i, [median(data, server, mtu, key) for key, _l in groups])
        # The TUN ceilings as fourth and fifth bars on the single-connection groups: one
        # packet per read/write, and 64 KiB super-packets (offload).
        for g, key, off in ((0, "tun_read", "tun_read_offload"), (1, "tun_write", "tun_write_offload")):
            v = median(data, "tun", mtu, key)
            if v is not None:
                ax.bar(g + (len(servers) - 1) * width, v, width, color=colors["tun"],
                       label="TUN ceiling, packet per call" if g == 0 else None)
            v = median(data, "tun", mtu, off)
            if v is not None:
                ax.bar(g + len(servers) * width, v, width, color="#98df8a",
                       label="TUN ceiling, with offload" if g == 0 else None)
        ax.set_xticks(range(len(groups)))
        ax.set_xticklabels([label for _k, label in groups])
        ax.set_ylabel("Gbit/s")
        ax.set_title(f"Throughput, MTU {mtu}")
        ax.margins(y=0.3)
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=7, loc="upper left", ncol=2)
        ax.grid(axis="y", alpha=0.3)
    ax = axes[-1]
    cps = [(mtu, key) for mtu in mtus for key in ("cps_seq", "cps_par")]
    for i, server in enumerate(servers):
        bars(ax, server, i, [median(data, server, mtu, key) for mtu, key in cps])
    ax.set_xticks(range(len(cps)))
    ax.set_xticklabels([f"{'seq' if k == 'cps_seq' else 'par'}\nMTU {m}" for m, k in cps])
    ax.set_ylabel("connections/s")
    ax.set_title("Connect-and-close rate")
    ax.margins(y=0.3)
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="upper left", ncol=2)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw", help="raw JSON-lines results")
    p.add_argument("outdir", help="where latest.md, latest.csv, latest.png go")
    p.add_argument("--mtus", default="1500,9000")
    for k in ("runs", "bytes", "cap", "conns", "count", "commit", "load", "date", "baseline"):
        p.add_argument("--" + k, default="?")
    a = p.parse_args()
    mtus = [int(m) for m in a.mtus.split(",") if m]
    data = load(a.raw)
    meta = {k: getattr(a, k) for k in ("runs", "bytes", "cap", "conns", "count", "commit",
                                        "load", "date", "baseline")}
    os.makedirs(a.outdir, exist_ok=True)
    md = markdown(data, mtus, meta)
    with open(os.path.join(a.outdir, "latest.md"), "w", encoding="utf-8") as f:
        f.write(md)
    write_csv(data, mtus, os.path.join(a.outdir, "latest.csv"))
    write_png(data, mtus, os.path.join(a.outdir, "latest.png"))
    sys.stdout.write(md)


if __name__ == "__main__":
    main()
