#!/usr/bin/env python3
"""Report of the loss suite (issue 19): bench/loss.sh's JSON lines → a Markdown table of flow
completion times (median, p90, synack/Linux) against the issue's targets, the recovery counters
of both TCPs per transfer, and the impairing bridge's own CPU time and drops.

Usage: loss_report.py RAW.jsonl OUT.md [--commit C] [--date D] [--load L] [--load-end L] [--rtt-ms N]
"""
import argparse
import json
import statistics

COUNTERS = [
    ("TcpRetransSegs", "retransmitted segments"),
    ("TcpExtTCPTimeouts", "RTOs"),
    ("TcpExtTCPLossProbes", "tail loss probes"),
    ("TcpExtTCPLossProbeRecovery", "losses repaired by a probe"),
    ("TcpExtTCPSackRecovery", "SACK recoveries"),
    ("TcpExtTCPDSACKRecv", "D-SACKs received"),
    ("TcpExtTCPDSACKUndo", "D-SACK undos"),
    ("TcpExtTCPFullUndo", "timestamp undos"),
    ("TcpExtTCPLossUndo", "RTO undos"),
    ("TcpExtTCPSpuriousRTOs", "spurious RTOs"),
    ("TcpOutSegs", "segments sent"),
]
COND = {
    "loss0": "0 % loss",
    "loss1": "1 % loss",
    "loss3": "3 % loss",
    "bottleneck": "100 Mbit/s, 100-packet queue",
}


def pct(xs, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    xs = sorted(xs)
    if not xs:
        return None
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def size_name(n):
    return f"{n // 1_000_000} MB" if n >= 1_000_000 else f"{n // 1000} KB"


def ms(x):
    return "n/a" if x is None else (f"{x * 1000:.0f}" if x >= 1 else f"{x * 1000:.1f}")


def ratio(a, b):
    return "n/a" if a is None or not b else f"{a / b:.2f}×"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("raw")
    ap.add_argument("out")
    ap.add_argument("--commit", default="?")
    ap.add_argument("--date", default="?")
    ap.add_argument("--load", default="?")
    ap.add_argument("--load-end", default="?")
    ap.add_argument("--rtt-ms", default="40")
    ap.add_argument("--linux-cc", default="?")
    ap.add_argument("--linux-cc-seen", default="?")
    a = ap.parse_args()
    fct, fails, counters, bridge, order = {}, {}, {}, {}, []
    tun_drops, last_drops = {}, 0
    for line in open(a.raw):
        line = line.strip()
        if not line:
            continue
        r = json.loads(line)
        if "tun_drops" in r:
            tun_drops[r["cond"]] = r["tun_drops"] - last_drops
            last_drops = r["tun_drops"]
        elif "bridge" in r:
            bridge[r["cond"]] = r["bridge"]
        elif "counters" in r:
            counters[(r["cond"], r["size"])] = r
        else:
            key = (r["cond"], r["size"])
            if key not in order:
                order.append(key)
            if r["fct"] is None:
                fails[(key, r["server"])] = fails.get((key, r["server"]), 0) + 1
            else:
                fct.setdefault((key, r["server"]), []).append(r["fct"])

    out = [
        f"# Loss recovery: synack against Linux behind the same impairing bridge (issue 19)",
        "",
        f"{a.date}, commit {a.commit}; RTT {a.rtt_ms} ms (bench/src/bin/impair-bridge.rs); "
        f"load average at the start {a.load}, at the end {a.load_end}. Linux's congestion "
        f"control: {a.linux_cc} (set on the server's socket; `ss -ti` during a transfer said "
        f"{a.linux_cc_seen}); synack's: CUBIC. Flow completion time "
        "from curl in the client namespace (kernel TCP): from connect() to the last byte. "
        "Targets: synack's median ≤ 1.0× Linux's, p90 ≤ 1.1×; at the bottleneck no more "
        "retransmissions than Linux and the completion time within 5 %.",
        "",
        "| download | path | runs | synack median ms | Linux median ms | ratio | synack p90 ms "
        "| Linux p90 ms | ratio | synack retrans/transfer | Linux retrans/transfer | target |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key in order:
        cond, size = key
        s, lx = fct.get((key, "synack"), []), fct.get((key, "linux"), [])
        sm, lm = pct(s, 0.5), pct(lx, 0.5)
        s9, l9 = pct(s, 0.9), pct(lx, 0.9)
        c = counters.get(key)
        rs = rl = None
        if c:
            runs = max(1, c["runs"])
            b, e = c["counters"]["before"], c["counters"]["after"]
            d = lambda side, n: e[side].get(n, 0) - b[side].get(n, 0)
            rs = d("synack", "TcpRetransSegs") / runs
            rl = d("linux", "TcpRetransSegs") / runs
        verdict = "n/a"
        if sm and lm and s9 and l9:
            if cond == "bottleneck":
                ok = rs is not None and rs <= rl and sm <= 1.05 * lm
            else:
                ok = sm <= lm and s9 <= 1.1 * l9
            verdict = "met" if ok else "missed"
        nf = fails.get((key, "synack"), 0) + fails.get((key, "linux"), 0)
        runs_txt = f"{len(s)}+{len(lx)}" + (f" ({nf} failed)" if nf else "")
        out.append(
            f"| {size_name(size)} | {COND.get(cond, cond)} | {runs_txt} | {ms(sm)} | {ms(lm)} | {ratio(sm, lm)} "
            f"| {ms(s9)} | {ms(l9)} | {ratio(s9, l9)} | "
            f"{'n/a' if rs is None else f'{rs:.1f}'} | {'n/a' if rl is None else f'{rl:.1f}'} | {verdict} |"
        )
    out += ["", "Recovery counters per transfer (synack / Linux; synack's under Linux's name):", ""]
    out.append("| download | path | " + " | ".join(n for _, n in COUNTERS) + " |")
    out.append("|---|---|" + "---|" * len(COUNTERS))
    for key in order:
        c = counters.get(key)
        if not c:
            continue
        runs = max(1, c["runs"])
        b, e = c["counters"]["before"], c["counters"]["after"]
        cells = []
        for name, _ in COUNTERS:
            vs = (e["synack"].get(name, 0) - b["synack"].get(name, 0)) / runs
            vl = (e["linux"].get(name, 0) - b["linux"].get(name, 0)) / runs
            cells.append(f"{vs:.1f} / {vl:.1f}")
        out.append(f"| {size_name(key[1])} | {COND.get(key[0], key[0])} | " + " | ".join(cells) + " |")
    out += ["", "The bridge (one thread; both directions; CPU = user + system over its lifetime):", "",
            "| path | wall s | CPU s | CPU % | packets read | lost | queue drops | deepest queue "
            "| dropped by the TUNs before the bridge read them |",
            "|---|---|---|---|---|---|---|---|---|"]
    for cond, br in bridge.items():
        if not br:
            out.append(f"| {COND.get(cond, cond)} | n/a ||||||||")
            continue
        cpu = br["cpu_user_s"] + br["cpu_sys_s"]
        rd = br["a2b_read"] + br["b2a_read"]
        lost = br["a2b_lost"] + br["b2a_lost"]
        qd = br["a2b_queue_drops"] + br["b2a_queue_drops"]
        mq = max(br["a2b_max_queue"], br["b2a_max_queue"])
        out.append(f"| {COND.get(cond, cond)} | {br['wall_s']:.1f} | {cpu:.2f} | "
                   f"{100 * cpu / max(br['wall_s'], 1e-9):.1f} | {rd} | {lost} | {qd} | {mq} "
                   f"| {tun_drops.get(cond, 'n/a')} |")
    text = "\n".join(out) + "\n"
    open(a.out, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
