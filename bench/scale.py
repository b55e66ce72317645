#!/usr/bin/python3
"""The scale part of the benchmark (issue 9), driven by `scripts/bench.sh --suite scale`.

  scale.py poll --synack BIN --control SOCK [--interval 0.05] [--max-secs 120]
      Polls `synack status --json` until SIGTERM (or --max-secs) and then prints one JSON
      object: for rcv_wnd, rcv_space, snd_wnd, snd_buf and cwnd, the largest value seen on
      any connection, and how long after the first connection appeared it first reached 90 %
      of that largest value ("time to full window"); plus the number of samples.

  scale.py ab-parse < ab-output
      ApacheBench's text output as one JSON object (complete, failed, non_2xx, rps, mean_ms,
      longest_ms).

  scale.py report RAW OUTDIR [--commit C] [--date D] [--load L] [--baseline REV] ...
      Turns the raw results (one JSON object per line:
      {"server": "synack"|"baseline", "figure": ..., "param": ..., "r": {...}}) into
      OUTDIR/scale.md (printed too) and OUTDIR/scale.jsonl.

Standard library only.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from report import fmt, machine  # noqa: E402

FIELDS = ("rcv_wnd", "rcv_space", "snd_wnd", "snd_buf", "cwnd")
FULL = 0.9  # "full window": 90 % of the largest value seen
KIB, MIB = 1024.0, 1024.0 * 1024.0


# ---------------------------------------------------------------------------------------------
# poll


def poll(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    samples = []  # (t, {field: max over connections})
    t0 = None
    start = time.monotonic()
    while not stop and time.monotonic() - start < args.max_secs:
        try:
            out = subprocess.run([args.synack, "--control", args.control, "status", "--json"],
                                 capture_output=True, timeout=5)
            rows = json.loads(out.stdout) if out.returncode == 0 else []
        except (subprocess.TimeoutExpired, ValueError):
            rows = []
        conns = [r for r in rows if r.get("peer")]
        now = time.monotonic()
        if conns:
            if t0 is None:
                t0 = now
            sample = {}
            for f in FIELDS:
                vals = [r[f] for r in conns if isinstance(r.get(f), (int, float))]
                if vals:
                    sample[f] = max(vals)
            samples.append((now - t0, sample))
        time.sleep(args.interval)
    result = {"samples": len(samples)}
    for f in FIELDS:
        vals = [(t, s[f]) for t, s in samples if f in s]
        if not vals:
            result[f] = None
            continue
        top = max(v for _t, v in vals)
        result[f] = top
        result[f + "_full_s"] = next(t for t, v in vals if v >= FULL * top)
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------------------------
# ab-parse


def ab_parse(text):
    def num(label):
        m = re.search(rf"^{re.escape(label)}:\s+([\d.]+)", text, re.M)
        return float(m.group(1)) if m else None

    longest = re.search(r"100%\s+(\d+) \(longest request\)", text)
    non2xx = re.search(r"^Non-2xx responses:\s+(\d+)", text, re.M)
    # ab stops at the first request that times out and then says only how many completed.
    aborted = re.search(r"^Total of (\d+) requests completed", text, re.M)
    mean = re.search(r"^Time per request:\s+([\d.]+) \[ms\] \(mean\)$", text, re.M)
    return {
        "complete": num("Complete requests") or (int(aborted.group(1)) if aborted else None),
        "failed": num("Failed requests"),
        "non_2xx": int(non2xx.group(1)) if non2xx else 0,
        "rps": num("Requests per second"),
        "mean_ms": float(mean.group(1)) if mean else None,
        "longest_ms": int(longest.group(1)) if longest else None,
        "error": "; ".join(l for l in text.splitlines() if "apr_" in l or "Total of" in l),
    }


# ---------------------------------------------------------------------------------------------
# report


def load(path):
    recs = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                recs.append(json.loads(line))
            except ValueError:
                pass
    return recs


def find(recs, server, figure, param=None):
    for r in recs:
        if r["server"] == server and r["figure"] == figure and (param is None or r.get("param") == param):
            return r.get("r")
    return None


def gbps(r):
    t = (r or {}).get("transfer") or {}
    v = t.get("gbps")
    if v is None:
        return "n/a"
    return fmt(v) + ("" if t.get("complete") else " (capped)")


def window(r, field):
    w = (r or {}).get("window") or {}
    v = w.get(field)
    if v is None:
        return "n/a", "n/a"
    return f"{v / KIB:,.0f} KiB", f"{w.get(field + '_full_s', 0):.2f} s"


def delay_rows(recs, server, delays):
    rows = []
    for d in delays:
        up, down = find(recs, server, "delay_up", d), find(recs, server, "delay_down", d)
        rtt = f"{2 * float(d.rstrip('ms')):g} ms"
        uw, ut = window(up, "rcv_wnd")
        db, dt = window(down, "snd_buf")
        dw, _ = window(down, "cwnd")
        rows.append(f"| {d} | {rtt} | {gbps(up)} | {uw} | {ut} | {gbps(down)} | {db} | {dt} | {dw} |")
    return rows


def conns_rows(recs, server):
    idle = find(recs, server, "conns_idle")
    base = (idle or {}).get("rss_kib")
    rows = []
    for r in recs:
        if r["server"] != server or r["figure"] != "conns_open" or not r.get("r"):
            continue
        o = r["r"]
        n, rss = o.get("conns") or 0, o.get("rss_kib")
        per = (f"{(rss - base) * 1024 / n:,.0f} B" if rss is not None and base is not None and n
               else "n/a")
        slab = o.get("kernel_slab_bytes") or {}
        sock = sum(slab.get(k, 0) for k in ("TCP", "tcp_bind_bucket", "tcp_bind2_bucket",
                                           "sock_inode_cache"))
        vfs = sum(slab.get(k, 0) for k in ("filp", "dentry"))
        ker = f"{sock / n:,.0f} B + {vfs / n:,.0f} B" if n else "n/a"
        mem = o.get("kernel_tcp_mem_bytes")
        kmem = f"{mem / n:,.0f} B" if mem is not None and n else "n/a"
        rows.append(f"| {o.get('target', '?'):,} | {n:,} ({o.get('failed', 0)} failed) | "
                    f"{o.get('secs', 0):.1f} s | "
                    f"{'n/a' if rss is None else f'{rss / 1024:,.1f} MiB'} | {per} | {ker} | {kmem} |")
    return rows


def part_notes(recs, server, part):
    """What synack and the kernel counted during one part: TUN drops, retransmissions, SYN
    cookies, memory pressure (from the `stats` and `tun_link` records of that part)."""
    stats = find(recs, server, "stats", part) or {}
    link = find(recs, server, "tun_link", part)
    notes = []
    if isinstance(link, list) and link:
        st = link[0].get("stats64", {})
        notes.append(f"synack0 drops: {st.get('tx', {}).get('dropped', '?')} kernel→synack, "
                     f"{st.get('rx', {}).get('dropped', '?')} synack→kernel")
    for k in ("retransmissions", "syn_cookies_sent", "buffer_memory_limited",
              "memory_pressure_entered", "rcv_memory_drops"):
        if k in stats:
            notes.append(f"{k} {stats[k]:,}")
    return "Counters: " + "; ".join(notes) + "." if notes else ""


def echo_cell(r):
    if not r:
        return "n/a"
    lost = [f"{r[k]:,} {k.replace('_', ' ')}" for k in ("missing", "bad", "closed", "send_failed")
            if r.get(k)]
    return (f"{r.get('ok', 0):,} of {r.get('conns', 0):,} correct in {r.get('secs', 0):.1f} s"
            + (f" ({', '.join(lost)})" if lost else ""))


def count(v):
    return "n/a" if v is None else f"{v:,.0f}"


def load_cells(recs, server):
    opened = find(recs, server, "load_open")
    echo = find(recs, server, "load_echo")
    ab = find(recs, server, "ab")
    out = {
        "20,000 concurrent echo connections (every default): opened": (
            "n/a" if not opened else f"{opened.get('conns', 0):,} ({opened.get('failed', 0)} failed) "
            f"in {opened.get('secs', 0):.1f} s"),
        "… then one line echoed on each": echo_cell(echo),
        "ab -n 20000 -c 100, no keep-alive: complete / failed": (
            "n/a" if not ab else f"{count(ab.get('complete'))} / {count(ab.get('failed'))}"
            + (f" ({ab['error']})" if ab.get("error") else "")),
        "… requests/s": "n/a" if not ab or ab.get("rps") is None else f"{ab['rps']:,.0f}",
        "… mean / longest request": (
            "n/a" if not ab or ab.get("longest_ms") is None
            else f"{ab.get('mean_ms') or 0:.1f} ms / {ab['longest_ms']} ms"),
    }
    return out


def targets(recs, server, meta_bytes):
    out = []
    up, down = find(recs, server, "delay_up", "20ms"), find(recs, server, "delay_down", "20ms")

    def rate(r):
        return ((r or {}).get("transfer") or {}).get("gbps")

    def verdict(ok):
        return "n/a" if ok is None else ("PASS" if ok else "FAIL")

    mib = f"{int(meta_bytes) >> 20} MiB" if str(meta_bytes).isdigit() else "?"
    for title, r in ((f"{mib} upload at 40 ms RTT ≥ 1 Gbit/s", up),
                     (f"{mib} download at 40 ms RTT ≥ 1 Gbit/s", down)):
        v = rate(r)
        out.append(f"| {title} | {fmt(v)} Gbit/s | {verdict(None if v is None else v >= 1.0)} |")
    opens = [r["r"] for r in recs if r["server"] == server and r["figure"] == "conns_open" and r.get("r")]
    last = opens[-1] if opens else None
    echo = find(recs, server, "conns_echo")
    if last:
        rss = last.get("rss_kib")
        ok = rss is not None and rss <= 400 * 1024 and last.get("conns") == last.get("target")
        out.append(f"| {last.get('target', 0):,} concurrent connections, daemon RSS ≤ 400 MiB | "
                   f"{'n/a' if rss is None else f'{rss / 1024:,.0f} MiB'} | {verdict(ok)} |")
        if echo:
            out.append(f"| … each echoing one line, all correct | {echo.get('ok', 0):,} of "
                       f"{last.get('target', 0):,} | {verdict(echo.get('ok') == last.get('target'))} |")
    le = find(recs, server, "load_echo")
    if le:
        out.append(f"| 20,000 concurrent connections with every default, all served | "
                   f"{le.get('ok', 0):,} | {verdict(le.get('ok') == 20000)} |")
    ab = find(recs, server, "ab")
    if ab:
        ok = ab.get("complete") == 20000 and ab.get("failed") == 0 and not ab.get("non_2xx")
        out.append(f"| ab: all 20,000 requests complete | {count(ab.get('complete'))} "
                   f"({count(ab.get('failed'))} failed) | {verdict(ok)} |")
        lo = ab.get("longest_ms")
        out.append(f"| ab: no request longer than 1 s | {'n/a' if lo is None else f'{lo} ms'} | "
                   f"{verdict(None if lo is None else lo < 1000)} |")
    return out


def memory_rows(recs, server):
    """Issue 22: daemon RSS per service with every connection held, and once they are gone."""
    rows = []
    for kind, what in (("echo", "echo, one line each"), ("http", "http, one keep-alive `GET /` each"),
                       ("time-wait", "http with `Connection: close`: TIME-WAIT on synack's side")):
        idle = find(recs, server, f"mem_{kind}_idle") or {}
        opened = find(recs, server, f"mem_{kind}_open") or {}
        used = find(recs, server, f"mem_{kind}_echo") or {}
        gone = find(recs, server, f"mem_{kind}_gone") or {}
        if not used:
            continue
        base, held, after = idle.get("rss_kib"), used.get("rss_kib"), gone.get("rss_kib")
        n = opened.get("conns") or 0
        per = f"{(held - base) * 1024 / n:,.0f} B" if n and base and held else "n/a"
        mib = lambda k: f"{k / 1024:.1f} MiB" if k else "n/a"  # noqa: E731
        rows.append(f"| {what} | {n:,} | {used.get('ok', 0):,} | {mib(base)} | {mib(held)} | {per} "
                    f"| {mib(after)} |")
    return rows


def markdown(recs, meta):
    m = machine()
    servers = [s for s in ("synack", "baseline") if any(r["server"] == s for r in recs)]
    title = {"synack": f"synack at {meta['commit']}",
             "baseline": f"baseline synack at {meta.get('baseline') or '?'}"}
    delays = []
    for r in recs:
        if r["figure"] == "delay_up" and r.get("param") not in delays:
            delays.append(r["param"])
    out = [f"# synack scale benchmark — {meta['date']}", "",
           f"Machine: {m['cpus']} CPUs, {m['model']}, Linux {m['kernel']}, {m['memory']} RAM; "
           f"load average at start: {meta['load']}. Every figure is one run.", ""]
    for s in servers:
        out += [f"## {title[s]}", ""]
        if delays:
            out += [f"### Delay × bandwidth ({meta['bytes']} bytes each way, capped at "
                    f"{meta['cap']} s; client tcp_rmem/tcp_wmem max 32 MiB)", "",
                    "| --impair | RTT | upload Gbit/s | largest rcv_wnd | time to 90 % of it | "
                    "download Gbit/s | largest snd_buf | time to 90 % of it | largest cwnd |",
                    "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
            out += delay_rows(recs, s, delays)
            out.append("")
        rows = conns_rows(recs, s)
        if rows:
            idle = find(recs, s, "conns_idle") or {}
            out += ["### Concurrent established connections to echo", "",
                    f"Daemon VmRSS before the first connection: "
                    f"{(idle.get('rss_kib') or 0) / 1024:.1f} MiB. Per connection = (RSS − that) / "
                    "connections. Kernel, per client socket: slab (TCP + tcp_bind_bucket + "
                    "sock_inode_cache) + VFS (filp + dentry), machine-wide /proc/slabinfo deltas; "
                    "and TCP buffer memory (/proc/net/sockstat `mem`).", "",
                    "| target | established | time to open | daemon VmRSS | daemon per connection | "
                    "kernel per client socket (sock + VFS) | kernel buffers per socket |",
                    "|---:|---:|---:|---:|---:|---:|---:|"]
            out += rows
            out += ["", f"Echo after all were open: {echo_cell(find(recs, s, 'conns_echo'))}.",
                    "", part_notes(recs, s, "conns"), ""]
        cells = load_cells(recs, s)
        if any(v != "n/a" for v in cells.values()):
            out += ["### Every default: 20,000 concurrent connections and ab", "",
                    "| figure | value |", "|---|---:|"]
            out += [f"| {k} | {v} |" for k, v in cells.items()]
            out += ["", f"Echo part: {part_notes(recs, s, 'load')} ab part: {part_notes(recs, s, 'ab')}", ""]
        rows = memory_rows(recs, s)
        if rows:
            out += ["### Daemon memory per service (issue 22)", "",
                    "RSS before the first connection, with every connection held after its "
                    "exchange, per connection, and 15 s after the clients closed them all "
                    "(`--time-wait 10s`).", "",
                    "| connections | held | answered | RSS before | RSS held | per connection | "
                    "RSS once gone |", "|---|---:|---:|---:|---:|---:|---:|"]
            out += rows + [""]
        t = targets(recs, s, meta["bytes"])
        if t:
            out += ["### Targets (issue 9)", "", "| target | measured | verdict |",
                    "|---|---:|---|"] + t + [""]
    return "\n".join(out)


def report(args):
    recs = load(args.raw)
    meta = {"commit": args.commit, "date": args.date, "load": args.load, "bytes": args.bytes,
            "cap": args.cap, "baseline": args.baseline}
    md = markdown(recs, meta)
    os.makedirs(args.outdir, exist_ok=True)
    with open(os.path.join(args.outdir, "scale.md"), "w", encoding="utf-8") as f:
        f.write(md)
    shutil.copyfile(args.raw, os.path.join(args.outdir, "scale.jsonl"))
    sys.stdout.write(md)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("poll")
    p.add_argument("--synack", required=True)
    p.add_argument("--control", required=True)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--max-secs", type=float, default=120)
    sub.add_parser("ab-parse")
    p = sub.add_parser("report")
    p.add_argument("raw")
    p.add_argument("outdir")
    for k in ("commit", "date", "load", "bytes", "cap", "baseline"):
        p.add_argument("--" + k, default="?")
    a = ap.parse_args()
    if a.cmd == "poll":
        poll(a)
    elif a.cmd == "ab-parse":
        print(json.dumps(ab_parse(sys.stdin.read())))
    else:
        report(a)


if __name__ == "__main__":
    main()
