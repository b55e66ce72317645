"""What outside tools found (issue #12): martian sources, challenge ACKs per connection,
SYN+FIN in LISTEN, HTTP's 100-continue, 501 and favicon, and subcommand options in either
order. Crafted packets come from the harness's Peer (AF_PACKET on synack0), which can send
from any source address; the HTTP checks use curl itself."""

import json
import time

import pytest

from scapy.all import ICMP

from harness import (
    IP,
    SYNACK4,
    SYNACK6,
    TCP,
    IPv6,
    describe_all,
    flagset,
    oracle_mode,
    run,
    seq_add,
    wait_until,
)
from conftest import synack_cmd

pytestmark = pytest.mark.skipif(oracle_mode(), reason="synack's counters, HTTP service and CLI")


def stats() -> dict:
    out = synack_cmd("stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def counter_reaches(name: str, value: int, timeout=3.0) -> bool:
    """The daemon reads the TUN and the control socket in one loop: wait for the packets just
    sent to be counted."""
    return wait_until(lambda: stats().get(name, 0) >= value, timeout, interval=0.05)


def assert_silent(p, timeout=0.7):
    got = p.expect_nothing(timeout)
    assert got == [], f"expected no answer, got:\n{describe_all(got)}"


def assert_answers_syn(peer, family=4, dport=7):
    """A fresh SYN from the peer's own address gets a SYN+ACK: synack is alive."""
    fresh = peer(family, dport)
    fresh.syn()
    fresh.expect_synack()


# --- martian sources (RFC 1122 §3.2.1.3, RFC 4291)

MARTIANS = [
    pytest.param(4, "127.0.0.1", id="loopback"),
    pytest.param(4, "0.0.0.0", id="zero"),
    pytest.param(4, "255.255.255.255", id="broadcast"),
    pytest.param(4, "224.0.0.1", id="multicast"),
    pytest.param(4, SYNACK4, id="own4"),
    pytest.param(6, "::1", id="loopback6"),
    pytest.param(6, "::", id="unspecified6"),
    pytest.param(6, "ff02::1", id="multicast6"),
    pytest.param(6, "::ffff:198.18.0.7", id="v4mapped"),
    pytest.param(6, SYNACK6, id="own6"),
]


@pytest.mark.parametrize("family,src", MARTIANS)
def test_martian_sources_get_no_syn_ack_and_no_echo_reply(synack, peer, family, src):
    before = stats().get("martian_source", 0)
    p = peer(family, 7)
    p.src = src  # the spoofed source; any answer would be addressed to it
    p.syn()
    # And an echo request from the same source.
    if family == 4:
        ping = IP(src=src, dst=SYNACK4) / ICMP(type=8, id=7, seq=1) / b"martian"
    else:
        from scapy.layers.inet6 import ICMPv6EchoRequest

        ping = IPv6(src=src, dst=SYNACK6) / ICMPv6EchoRequest(id=7, seq=1, data=b"martian")
    replies_before = stats()["echo_replies"]
    p.send_raw(bytes(ping))
    assert_silent(p)
    assert counter_reaches("martian_source", before + 2), stats()
    after = stats()
    assert after["echo_replies"] == replies_before, after
    assert_answers_syn(peer, family)


# --- challenge ACKs per connection (Linux's tcp_invalid_ratelimit)


def test_400_in_window_rsts_get_only_a_handful_of_challenge_acks(synack, peer):
    p = peer(4, 7)
    p.handshake()
    before = stats()
    # In the window, not at RCV.NXT: each one is a challenge (RFC 5961 §3.2). One packet,
    # sent 400 times within a second.
    rst = bytes(p.segment("R", seq=seq_add(p.snd_nxt, 1000), ack=0))
    start = time.monotonic()
    for _ in range(400):
        p.send_raw(rst)
    sent_in = time.monotonic() - start
    assert sent_in < 1.0, f"sending took {sent_in:.2f}s"
    answers = p.expect_nothing(1.0)
    challenges = [a for a in answers if flagset(a) == {"A"} and a[TCP].ack == p.snd_nxt]
    assert challenges and len(answers) == len(challenges), describe_all(answers)
    # One per 500 ms: at most three in the time it took to send them and look.
    assert len(challenges) <= 3, describe_all(answers)
    # The second of listening above let synack read them all.
    after = stats()
    challenged = after["rst_challenged"] - before["rst_challenged"]
    assert challenged >= 390, (before, after)
    skipped = after["challenge_acks_skipped"] - before["challenge_acks_skipped"]
    assert skipped >= challenged - 3, (before, after)
    # The connection is untouched: data is still echoed.
    p.send_data(b"still here\n")
    data, _ = p.collect(until=lambda d, f: len(d) >= 11, timeout=3)
    assert data == b"still here\n"


# --- SYN+FIN in LISTEN (decisions table: dropped, as Linux does)


@pytest.mark.parametrize("family", [pytest.param(4, id="ipv4"), pytest.param(6, id="ipv6")])
def test_syn_fin_in_listen_is_dropped_and_counted(synack, peer, family):
    before = stats()
    p = peer(family, 80)
    p.send("SF", seq=p.iss, ack=0)
    assert_silent(p)
    assert counter_reaches("listen_syn_fin", before["listen_syn_fin"] + 1), stats()
    assert stats()["passive_opens"] == before["passive_opens"]
    # The same port then opens as usual with a plain SYN.
    p.syn()
    p.expect_synack()


# --- HTTP


def test_curl_upload_gets_100_continue_at_once(synack, tmp_path):
    body = tmp_path / "upload.bin"
    body.write_bytes(bytes(range(256)) * 8192)  # 2 MiB: curl asks for 100-continue
    # Make curl wait up to 10 s for the 100 (its default is 1 s): only an immediate answer
    # keeps the upload fast.
    start = time.monotonic()
    r = run(["curl", "-v", "-sS", "--expect100-timeout", "10", "-T", str(body),
             f"http://{SYNACK4}/upload"], timeout=30)
    elapsed = time.monotonic() - start
    assert r.returncode == 0, r.stderr
    assert "Expect: 100-continue" in r.stderr, r.stderr
    assert "HTTP/1.1 100 Continue" in r.stderr, r.stderr
    assert r.stdout.startswith("received 2097152 bytes\n"), r.stdout
    assert elapsed < 5, f"the upload took {elapsed:.1f}s: the 100 Continue came late"


@pytest.mark.parametrize("method", ["DELETE", "PATCH", "TRACE"])
def test_unsupported_methods_get_501_with_allow(synack, method):
    r = run(["curl", "-sS", "-i", "-X", method, f"http://{SYNACK4}/"], timeout=10)
    assert r.returncode == 0, r.stderr
    head = r.stdout.split("\n\n")[0]  # text mode: CRLF reads as LF
    assert head.startswith("HTTP/1.1 501 Not Implemented"), head
    assert "\nAllow: GET, HEAD, PUT, POST, OPTIONS\n" in head, head


def test_options_and_favicon_get_204(synack):
    r = run(["curl", "-sS", "-i", "-X", "OPTIONS", f"http://{SYNACK4}/"], timeout=10)
    assert r.stdout.startswith("HTTP/1.1 204 No Content"), r.stdout
    assert "\nAllow: GET, HEAD, PUT, POST, OPTIONS\n" in r.stdout, r.stdout
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}",
             f"http://{SYNACK4}/favicon.ico"], timeout=10)
    assert r.stdout == "204", r.stderr


# --- subcommand options before or after the subcommand


SUBCOMMANDS = [
    pytest.param(["status"], id="status"),
    pytest.param(["stats"], id="stats"),
    pytest.param(["trace"], id="trace"),
    pytest.param(["connect", "198.18.0.1:8081"], id="connect"),
]


def reached(out) -> bool:
    """The subcommand talked to the daemon: it succeeded, or the daemon's own answer failed
    (connect to a closed port is refused by the kernel)."""
    return out.returncode == 0 or b"connection refused" in out.stderr


@pytest.mark.synack_args("--control", "/run/synack/elsewhere.sock")
@pytest.mark.parametrize("sub", SUBCOMMANDS)
def test_control_and_iface_go_before_or_after_the_subcommand(synack, sub):
    path = "/run/synack/elsewhere.sock"
    for argv in (["--control", path, *sub], [*sub, "--control", path],
                 ["-i", "synack0", "--control", path, *sub],
                 [*sub, "-i", "synack0", "--control", path]):
        out = synack_cmd(*argv)
        assert reached(out), (argv, out.stderr)
    # -i after the subcommand picks the default socket of that interface: none here.
    out = synack_cmd(*sub, "-i", "nosuch0")
    assert out.returncode == 1
    assert b"no synack running on nosuch0?" in out.stderr, out.stderr


def test_stats_prints_linux_names_beside_synacks(synack):
    text = synack_cmd("stats").stdout.decode()
    lines = {line.split()[0]: line.split()[1:] for line in text.splitlines()}
    assert lines["segments_in"][0] == "TcpInSegs", text
    assert lines["listen_drops"][0] == "TcpExtListenDrops", text
    assert lines["accept_queue_full"][0] == "TcpExtListenOverflows", text
    assert lines["challenge_acks"][0] == "TcpExtTCPChallengeACK", text
    assert len(lines["listen_ignored"]) == 1, "no Linux name: only the value"
