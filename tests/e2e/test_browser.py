"""Issue 10: TCP in a real browser, and /metrics for Prometheus.

Debian's chromium, headless, loads synack's pages at http://198.18.0.2/ inside the test's
network namespace. Each test keeps its screenshots and DOMs under tests/e2e/artifacts/
(ignored by git) and prints where they are.
"""

import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from xml.etree import ElementTree

import pytest

import harness
from conftest import synack_binary
from harness import REPO_ROOT

pytestmark = pytest.mark.kernel_differs("synack's own pages")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "tests/e2e/artifacts"
BASE = f"http://{harness.SYNACK4}"
SVG_NS = "{http://www.w3.org/2000/svg}"


def chromium(tmp_path, url, *args, timeout=90):
    """Run headless chromium once on `url`; returns the CompletedProcess (text output)."""
    profile = tmp_path / f"profile{time.monotonic_ns()}"
    profile.mkdir()
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-proxy-server", "--disable-extensions",
        "--disable-features=Translate,MediaRouter,OptimizationHints",
        f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *args, url,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={"HOME": str(tmp_path), "PATH": "/usr/bin:/bin"})


def console_errors(stderr: str):
    """What the page's scripts complained about (chromium logs console messages as CONSOLE)."""
    return [line for line in stderr.splitlines()
            if "Uncaught" in line or re.search(r"CONSOLE\(\d+\)\].*(Error|error)", line)]


def artifact_dir(name) -> Path:
    d = ARTIFACTS / name
    d.mkdir(parents=True, exist_ok=True)
    return d


def dump_dom(tmp_path, url, name):
    """The page's DOM after load, parsed as XML (synack writes XHTML-compatible pages)."""
    r = chromium(tmp_path, url, "--dump-dom")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not console_errors(r.stderr), console_errors(r.stderr)
    out = artifact_dir("dom") / f"{name}.html"
    out.write_text(r.stdout)
    print(f"DOM of {url}: {out}")
    return r.stdout


def svg_arrows(dom: str):
    """(class, label) of each segment arrow in the page's diagram."""
    start = dom.index("<svg")
    end = dom.index("</svg>", start) + len("</svg>")
    svg = ElementTree.fromstring(dom[start:end])
    arrows = []
    for g in svg.iter(f"{SVG_NS}g"):
        cls = g.get("class", "")
        if cls.startswith("seg "):
            texts = [t.text or "" for t in g.iter(f"{SVG_NS}text")]
            arrows.append((cls, texts[0] if texts else ""))
    return arrows


def screenshot(tmp_path, url, name):
    png = artifact_dir("screenshots") / f"{name}.png"
    png.unlink(missing_ok=True)
    r = chromium(tmp_path, url, f"--screenshot={png}", "--window-size=1100,1000",
                 "--hide-scrollbars")
    assert r.returncode == 0, r.stderr[-3000:]
    assert not console_errors(r.stderr), console_errors(r.stderr)
    assert png.is_file(), r.stderr[-3000:]
    print(f"screenshot of {url}: {png}")
    from PIL import Image
    img = Image.open(png).convert("RGB")
    colors = img.getcolors(maxcolors=1 << 20) or []
    non_white = sum(n for n, c in colors if c != (255, 255, 255))
    assert len(colors) > 8 and non_white > 0.005 * img.width * img.height, (
        f"{png} looks blank: {len(colors)} colours, {non_white} non-white pixels")
    return png


def http_get(path, accept="*/*"):
    req = urllib.request.Request(BASE + path, headers={"Accept": accept})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.headers.get("Content-Type"), resp.read().decode()


def test_handshake_renders_in_chromium_with_one_arrow_per_segment(synack, capture, tmp_path):
    with capture("tcp port 80") as cap:
        dom = dump_dom(tmp_path, BASE + "/handshake", "handshake")
        arrows = svg_arrows(dom)
        # The connection that carried the request: its SYN is the first arrow. Count what the
        # capture shows of it before synack's response (the diagram is drawn before that).
        pkts = cap.wait_for(lambda p: any(q.haslayer("TCP") and q["TCP"].sport == 80
                                          and len(q["TCP"].payload) for q in p))
    syns = [p for p in pkts if p["TCP"].flags & 0x02 and not p["TCP"].flags & 0x10]
    responded = None
    for syn in syns:
        port = syn["TCP"].sport
        flow = [p for p in pkts if port in (p["TCP"].sport, p["TCP"].dport)]
        first_data = next((i for i, p in enumerate(flow)
                           if p["TCP"].sport == 80 and len(p["TCP"].payload)), None)
        if first_data is not None:
            responded = flow[:first_data]
            break
    assert responded, "no response from synack in the capture"
    assert arrows[0] == ("seg in", arrows[0][1]) and arrows[0][1].startswith("SYN "), arrows
    assert len(arrows) == len(responded), (arrows, [p.summary() for p in responded])
    ours = sum(1 for p in responded if p["TCP"].sport == 80)
    assert sum(1 for c, _ in arrows if c == "seg out") == ours
    screenshot(tmp_path, BASE + "/handshake", "handshake")


def test_connections_page_and_a_connections_own_page_render(synack, tmp_path):
    # A finished connection to look at: curl's, closed by the client.
    subprocess.run(["curl", "-s", "-o", "/dev/null", BASE + "/bytes/20000"], check=True,
                   timeout=10)
    dom = dump_dom(tmp_path, BASE + "/connections", "connections")
    links = re.findall(r'href="(/connections/[^"]+)"', dom)
    assert links, dom
    # Self-refreshing, with the few lines of script that do it.
    assert "location.reload" in dom
    page = links[-1]
    dom = dump_dom(tmp_path, BASE + page, "connection")
    arrows = svg_arrows(dom)
    assert arrows and arrows[0][1].startswith("SYN "), arrows
    screenshot(tmp_path, BASE + "/connections", "connections")
    screenshot(tmp_path, BASE + page, "connection")
    # The JSON is synack status --json.
    ctype, body = http_get("/connections.json")
    assert ctype == "application/json"
    import json
    rows = json.loads(body)
    assert {"state", "local", "peer", "cwnd", "rtt_us"} <= set(rows[0])


def test_metrics_parse_with_the_prometheus_parser_and_counters_grow(synack):
    from prometheus_client.parser import text_string_to_metric_families

    def scrape():
        ctype, body = http_get("/metrics")
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        return {f.name: f for f in text_string_to_metric_families(body)}

    first = scrape()
    # prometheus_client strips _total from counter family names.
    assert first["synack_segments_in"].type == "counter"
    conns = first["synack_connections"]
    assert conns.type == "gauge"
    states = {s.labels["state"]: s.value for s in conns.samples}
    assert states["ESTABLISHED"] >= 1, states
    assert first["synack_buffer_memory_bytes"].type == "gauge"
    second = scrape()

    def value(fams, name):
        return next(s.value for s in fams[name].samples if s.name == name + "_total")

    assert value(second, "synack_segments_in") > value(first, "synack_segments_in")


def test_trace_svg_follow_writes_a_picture_per_closed_connection(synack, tmp_path):
    out_dir = tmp_path / "svgs"
    follower = subprocess.Popen([str(synack_binary()), "trace", "--svg", str(out_dir), "--follow"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert harness.wait_until(out_dir.is_dir, 5), "trace --svg did not create its directory"
        subprocess.run(["curl", "-s", "-o", "/dev/null", "--local-port", "45123",
                        BASE + "/handshake"], check=True, timeout=10)
        name = f"{harness.SYNACK4}_80-{harness.HOST4}_45123.svg"
        path = out_dir / name
        assert harness.wait_until(path.is_file, 5), sorted(p.name for p in out_dir.iterdir())
        # Written whole: it parses, and it shows the close (curl closes first).
        assert harness.wait_until(lambda: b"</svg>" in path.read_bytes(), 5)
        svg = ElementTree.parse(path).getroot()
        arrows = [g for g in svg.iter(f"{SVG_NS}g") if g.get("class", "").startswith("seg ")]
        assert len(arrows) >= 8, len(arrows)  # handshake, request, response, 4-way close
    finally:
        follower.terminate()
        follower.wait(timeout=5)


def test_status_info_shows_each_connections_internals_like_ss_ti(synack):
    import json
    import socket
    from conftest import synack_cmd
    with socket.create_connection((harness.SYNACK4, 7), timeout=5) as s:
        s.sendall(b"hello\n")
        assert s.recv(100) == b"hello\n"
        text = synack_cmd("status", "--info")
        assert text.returncode == 0, text.stderr
        out = text.stdout.decode()
        info_lines = [l for l in out.splitlines() if l.startswith("\t ")]
        assert any("cc:cubic" in l and "bytes_received:6" in l and "mss:" in l
                   for l in info_lines), out
        rows = json.loads(synack_cmd("status", "--info", "--json").stdout)
        conns = [r for r in rows if r.get("peer")]
        assert conns and all("info" in r for r in conns), rows
        assert {"cwnd", "rtt_us", "snd_wnd", "rcv_wnd", "delivery_rate", "limited"} <= set(conns[0]["info"])
        plain = json.loads(synack_cmd("status", "--json").stdout)
        assert all("info" not in r for r in plain)
