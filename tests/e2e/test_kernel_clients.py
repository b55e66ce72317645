"""The kernel's own clients (nc, curl, ping, Python sockets) against synack, checked on the
wire with tcpdump where the shape of the conversation matters."""

import hashlib
import os
import re
import socket
import threading
import time

import pytest

from harness import (
    DEFAULT_MSS,
    BackgroundSend,
    HOST4,
    HOST6,
    SYNACK4,
    SYNACK6,
    TCP,
    chargen_line,
    checksums_ok,
    describe_all,
    flagset,
    log_has,
    mss,
    oracle_mode,
    payload,
    run,
    seq_add,
)

ADDRS = [pytest.param(SYNACK4, id="ipv4"), pytest.param(SYNACK6, id="ipv6")]


def url(addr, path="/"):
    return f"http://[{addr}]{path}" if ":" in addr else f"http://{addr}{path}"


def connect(addr, port, timeout=5.0):
    return socket.create_connection((addr, port), timeout=timeout)


def recv_until_eof(sock, timeout=10.0) -> bytes:
    """Everything until the peer's FIN, within `timeout` seconds (fails otherwise)."""
    deadline = time.monotonic() + timeout
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"no EOF within {timeout}s ({sum(map(len, chunks))} bytes read)"
        sock.settimeout(remaining)
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def tcp_from(pkts, addr, port=None):
    """Packets sent by addr (from `port`, if given)."""
    return [p for p in pkts if p.src == addr and (port is None or p[TCP].sport == port)]


def flow(pkts, port):
    """Packets of the connection whose client-side port is `port`."""
    return [p for p in pkts if port in (p[TCP].sport, p[TCP].dport)]


def transition_logged(daemon, port, before, after, timeout=3.0) -> bool:
    """synack's log has `before -> after` on a line that names the client's port."""
    rx = rf"(?m)^(?=.*\b{port}\b).*{before}\s*(?:->|→)\s*{after}"
    return log_has(daemon, rx, timeout)


def assert_daemon_checksums(pkts, addr):
    if oracle_mode():  # veth checksum offload leaves partial checksums on the capture
        return
    bad = [p for p in tcp_from(pkts, addr) if not checksums_ok(p)]
    assert not bad, f"packets from synack with bad checksums:\n{describe_all(bad)}"


# --- echo, discard, chargen


@pytest.mark.parametrize("addr", ADDRS)
def test_nc_echo_prints_the_line_and_exits(synack, addr):
    r = run(["nc", "-N", addr, "7"], input="hi\n", timeout=5)
    assert (r.returncode, r.stdout) == (0, "hi\n"), r.stderr


def test_echo_returns_a_1mib_random_blob_intact(synack):
    blob = os.urandom(1 << 20)
    with connect(SYNACK4, 7) as s:
        sender = BackgroundSend(s, blob)
        got = recv_until_eof(s, timeout=30)
        error = sender.join(timeout=5)
    assert error is None, error
    assert len(got) == len(blob)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(blob).hexdigest()


def test_discard_swallows_1mib_and_closes_cleanly(synack, capture):
    # Only synack's segments (its ACKs and FIN): the upload itself would crowd tcpdump.
    with capture(f"tcp and src host {SYNACK4}") as cap, connect(SYNACK4, 9) as s:
        port = s.getsockname()[1]
        s.sendall(os.urandom(1 << 20))
        s.shutdown(socket.SHUT_WR)
        assert recv_until_eof(s, timeout=10) == b""
        # This connection's FIN: the capture may also hold the FINs of the readiness probes.
        pkts = cap.wait_for(
            lambda ps: any("F" in flagset(p) for p in tcp_from(flow(ps, port), SYNACK4)),
            timeout=10,
        )
    mine = tcp_from(flow(pkts, port), SYNACK4)
    assert any("F" in flagset(p) for p in mine), describe_all(mine[-10:])
    assert not any("R" in flagset(p) for p in mine), describe_all(mine[-10:])
    assert_daemon_checksums(pkts, SYNACK4)


def test_chargen_sends_the_rfc864_pattern_and_stops_when_the_client_closes(synack, capture):
    # Only FIN and RST segments are captured: chargen's flood would overrun tcpdump's buffer
    # and the one segment this test is about could be among those it drops.
    only_fin_rst = "tcp and (tcp[tcpflags] & (tcp-fin|tcp-rst) != 0)"
    with capture(only_fin_rst) as cap, connect(SYNACK4, 19) as s:
        port = s.getsockname()[1]
        want = b"".join(chargen_line(i) for i in range(100))
        got = b""
        deadline = time.monotonic() + 5
        while len(got) < len(want) and time.monotonic() < deadline:
            got += s.recv(65536)
        assert got[: len(want)] == want
        s.shutdown(socket.SHUT_WR)
        recv_until_eof(s, timeout=10)  # the rest of the pattern, then synack's FIN
        pkts = cap.wait_for(
            lambda ps: any("F" in flagset(p) for p in tcp_from(flow(ps, port), SYNACK4)),
            timeout=10,
        )
    mine = tcp_from(flow(pkts, port), SYNACK4)
    assert any("F" in flagset(p) for p in mine)
    assert not any("R" in flagset(p) for p in mine)


# --- http


@pytest.mark.parametrize("addr", ADDRS)
def test_http_get_describes_the_clients_connection(synack, addr):
    r = run(["curl", "-sS", "-g", "-w", r"\n%{http_code} %{local_port}", url(addr)])
    assert r.returncode == 0, r.stderr
    body, _, trailer = r.stdout.rpartition("\n")
    code, port = trailer.split()
    assert code == "200", r.stdout
    assert re.search(rf"\b{port}\b", body), f"page does not mention client port {port}:\n{body}"
    assert "ESTABLISHED" in body, body


def test_http_head_has_headers_and_no_body(synack):
    with connect(SYNACK4, 80) as s:
        s.sendall(b"HEAD / HTTP/1.1\r\nHost: synack\r\nConnection: close\r\n\r\n")
        response = recv_until_eof(s, timeout=5)
    head, sep, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response
    assert sep and body == b"", f"HEAD response carries a body: {response!r}"


def test_http_keepalive_reuses_one_connection(synack, capture):
    with capture() as cap:
        r = run(["curl", "-sSv", "-o", "/dev/null", "-o", "/dev/null", url(SYNACK4),
                 url(SYNACK4, "/?again")])
        assert r.returncode == 0, r.stderr
        pkts = cap.wait_for(lambda ps: any("F" in flagset(p) for p in tcp_from(ps, SYNACK4)))
    assert "Re-using existing connection" in r.stderr, r.stderr
    syns = [p for p in tcp_from(pkts, HOST4) if flagset(p) == {"S"}]
    assert len(syns) == 1, describe_all(pkts)


def test_http_connection_close_makes_synack_close_first(synack, capture):
    with capture() as cap:
        r = run(["curl", "-sS", "-H", "Connection: close", "-o", "/dev/null", "-w",
                 "%{http_code} %{local_port}", url(SYNACK4)])
        assert r.returncode == 0, r.stderr
        code, port = r.stdout.split()
        port = int(port)

        def closed(ps):
            fl = flow(ps, port)
            fins = [p for p in fl if "F" in flagset(p)]
            return len(fins) >= 2 and fl[-1].src == SYNACK4 and flagset(fl[-1]) == {"A"}

        pkts = flow(cap.wait_for(closed), port)
    assert code == "200"
    fins = [p for p in pkts if "F" in flagset(p)]
    assert len(fins) >= 2 and fins[0].src == SYNACK4, describe_all(pkts)
    our_fin, their_fin = fins[0], next(p for p in fins if p.src == HOST4)
    fin_acked = seq_add(our_fin[TCP].seq, len(payload(our_fin)) + 1)
    assert their_fin[TCP].ack == fin_acked, describe_all(pkts)
    last = pkts[-1]
    assert last.src == SYNACK4 and last[TCP].ack == seq_add(their_fin[TCP].seq, 1), (
        describe_all(pkts)
    )
    assert not any("R" in flagset(p) for p in pkts), describe_all(pkts)
    assert transition_logged(synack, port, "ESTABLISHED", "FIN-WAIT-1"), "no FIN-WAIT-1"
    # FIN-WAIT-2 only if the client ACKed our FIN before sending its own.
    separate_ack = any(
        p.src == HOST4 and flagset(p) == {"A"} and p[TCP].ack == fin_acked
        and p.time < their_fin.time
        for p in pkts
    )
    if separate_ack:
        assert transition_logged(synack, port, "FIN-WAIT-1", "FIN-WAIT-2")
        assert transition_logged(synack, port, "FIN-WAIT-2", "TIME-WAIT")
    else:
        # The FIN,ACK both acknowledges our FIN and carries the client's: RFC 9293
        # §3.10.7.4 passes through FIN-WAIT-2 (fifth step) on its way to TIME-WAIT
        # (eighth step); a stack may also go straight there.
        assert transition_logged(
            synack, port, "(?:FIN-WAIT-1|FIN-WAIT-2|CLOSING)", "TIME-WAIT"
        )


def test_http_unknown_path_is_404(synack):
    r = run(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", url(SYNACK4, "/nope")])
    assert r.stdout == "404", r.stderr


def test_http_garbage_gets_400_and_synack_closes(synack, capture):
    with capture() as cap, connect(SYNACK4, 80) as s:
        port = s.getsockname()[1]
        s.sendall(b"\x16\x03\x01 definitely not http\r\n\r\n")
        response = recv_until_eof(s, timeout=5)
        pkts = flow(cap.wait_for(lambda ps: any("F" in flagset(p) for p in ps)), port)
    assert response.startswith(b"HTTP/1.1 400"), response
    fins = [p for p in pkts if "F" in flagset(p)]
    assert fins and fins[0].src == SYNACK4, describe_all(pkts)


# --- resets, ping


@pytest.mark.parametrize("addr", ADDRS)
def test_closed_port_is_refused_at_once_with_rst_ack(synack, capture, addr):
    with capture() as cap:
        start = time.monotonic()
        r = run(["nc", "-z", "-w", "3", addr, "5555"])
        elapsed = time.monotonic() - start
        pkts = cap.wait_for(lambda ps: any("R" in flagset(p) for p in ps))
    assert r.returncode != 0
    assert elapsed < 1.5, f"nc -z took {elapsed:.1f}s: refused late, not by an RST"
    syn = next(p for p in pkts if flagset(p) == {"S"} and p[TCP].dport == 5555)
    rst = next(p for p in pkts if "R" in flagset(p))
    assert rst.src == addr and flagset(rst) == {"R", "A"}, describe_all(pkts)
    assert rst[TCP].seq == 0 and rst[TCP].ack == seq_add(syn[TCP].seq, 1), describe_all(pkts)
    assert_daemon_checksums(pkts, addr)


@pytest.mark.parametrize("addr", ADDRS)
def test_ping_is_answered(synack, addr):
    r = run(["ping", "-c", "1", "-W", "3", addr], timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr


# --- the shape of whole conversations


@pytest.mark.parametrize("addr,host", [
    pytest.param(SYNACK4, HOST4, id="ipv4"), pytest.param(SYNACK6, HOST6, id="ipv6")])
def test_three_and_four_way_handshakes_on_the_wire(synack, capture, addr, host):
    family = 6 if ":" in addr else 4
    with capture() as cap:
        r = run(["nc", "-N", addr, "7"], input="hi\n", timeout=5)
        assert r.stdout == "hi\n", r.stderr

        def done(ps):  # the client's ACK of synack's FIN
            fins = [p for p in tcp_from(ps, addr) if "F" in flagset(p)]
            return fins and any(
                p.src == host and p[TCP].ack == seq_add(fins[0][TCP].seq, 1) for p in ps
            )

        # Up to 10 s: tcpdump's file can lag behind the connection (a CI run saw the
        # client's last ACK missing after 3 s; it is sent within microseconds).
        pkts = cap.wait_for(done, timeout=10)
    text = describe_all(pkts)
    c_syn = pkts[0]
    assert c_syn.src == host and flagset(c_syn) == {"S"}, text
    isn_c = c_syn[TCP].seq
    s_synack = pkts[1]
    assert s_synack.src == addr and flagset(s_synack) == {"S", "A"}, text
    assert s_synack[TCP].ack == seq_add(isn_c, 1), text
    assert mss(s_synack) == DEFAULT_MSS[family], text
    isn_s = s_synack[TCP].seq
    c_ack = pkts[2]
    assert c_ack.src == host and "A" in flagset(c_ack) and "S" not in flagset(c_ack), text
    assert (c_ack[TCP].seq, c_ack[TCP].ack) == (seq_add(isn_c, 1), seq_add(isn_s, 1)), text
    # "hi\n" each way, then FIN from the client (nc -N) and FIN from synack.
    c_fin = next(p for p in pkts if p.src == host and "F" in flagset(p))
    s_fin = next(p for p in pkts if p.src == addr and "F" in flagset(p))
    assert seq_add(c_fin[TCP].seq, len(payload(c_fin))) == seq_add(isn_c, 4), text
    assert seq_add(s_fin[TCP].seq, len(payload(s_fin))) == seq_add(isn_s, 4), text
    assert c_fin.time <= s_fin.time, f"synack closed before the client:\n{text}"
    echoed = b"".join(payload(p) for p in tcp_from(pkts, addr))
    assert echoed == b"hi\n", text
    assert any(p.src == addr and p[TCP].ack == seq_add(isn_c, 5) for p in pkts), (
        f"synack never ACKed the client's FIN:\n{text}"
    )
    assert any(p.src == host and p[TCP].ack == seq_add(isn_s, 5) for p in pkts), text
    assert not any("R" in flagset(p) for p in pkts), text
    for p in tcp_from(pkts, addr)[1:]:
        assert mss(p) is None, f"MSS option on a non-SYN segment: {text}"
    assert_daemon_checksums(pkts, addr)
    port = c_syn[TCP].sport
    assert transition_logged(synack, port, "SYN-RECEIVED", "ESTABLISHED")
    assert transition_logged(synack, port, "ESTABLISHED", "CLOSE-WAIT")
    assert transition_logged(synack, port, "CLOSE-WAIT", "LAST-ACK")


def test_200_clients_at_once(synack):
    n = 200
    barrier = threading.Barrier(n)
    results = [None] * n

    def client(i):
        msg = f"client {i} says hello\n".encode()
        try:
            barrier.wait(timeout=10)
            with connect(SYNACK4, 7, timeout=20) as s:
                s.sendall(msg)
                s.shutdown(socket.SHUT_WR)
                results[i] = recv_until_eof(s, timeout=20) == msg or "wrong echo"
        except Exception as e:  # reported below with the client's number
            results[i] = repr(e)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(n)]
    start = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(0.1, 40 - (time.monotonic() - start)))
    failures = {i: r for i, r in enumerate(results) if r is not True}
    assert not failures, f"{len(failures)} of {n} clients failed, e.g. {list(failures.items())[:5]}"
    assert synack.alive()
