"""Loss recovery as the kernel's client sees it (issue 19), from captures on synack0.

`--impair loss=` drops packets inside the daemon, both ways, after synack sent them (so the
capture holds what reached the kernel) and before synack reads the kernel's (the capture holds
everything the kernel sent). The impairer neither reorders nor duplicates here, so:

- a lost tail (the last segments of a response) is repaired by a tail loss probe or RACK, not
  by the retransmission timer: synack's data never stalls for an RTO-length while some of it
  is unacknowledged;
- every retransmission repairs a loss: the kernel never has to report a duplicate with a
  D-SACK block (RFC 2883), beyond a probe or a timeout that was not needed (the ACK was lost,
  not the data).
"""

import hashlib
import subprocess

from harness import SYNACK4
from scapy.all import TCP
from test_bulk import pattern_prefix
from test_network_signals import stats

import pytest

MOD = 1 << 32


def after(a: int, b: int) -> bool:
    """Sequence number a is above b (RFC 1982 arithmetic)."""
    return 0 < (a - b) % MOD < MOD // 2


def curl_many(n: int, size: int) -> str:
    """n downloads of `size` bytes over one keep-alive connection; the SHA-256 of all bytes."""
    urls = " ".join(f"http://{SYNACK4}/bytes/{size}" for _ in range(n))
    cmd = f"curl -sS --max-time 15 {urls} | sha256sum"
    out = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], capture_output=True, text=True,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    return out.stdout.split()[0]


def data_stalls(pkts, port=80, at_least=2 * 1448):
    """The gaps between consecutive data segments from synack while at least `at_least` bytes
    of its data were unacknowledged (the kernel's highest ACK that far below the highest end
    synack sent), longest first, as (gap in seconds, the segment's time). With two segments
    or more outstanding a probe is due after 2·SRTT + 2 ms (RFC 8985 §7.2); only a lone
    segment waits for the peer's delayed-ACK allowance, as long as an RTO."""
    gaps = []
    last_t = high_end = high_ack = None
    outstanding = 0
    for p in sorted(pkts, key=lambda p: float(p.time)):
        tcp = p[TCP]
        t = float(p.time)
        if tcp.sport == port:
            n = len(tcp.payload)
            if n == 0:
                continue
            if last_t is not None and outstanding >= at_least:
                gaps.append((t - last_t, t))
            last_t = t
            end = (tcp.seq + n) % MOD
            if high_end is None or after(end, high_end):
                high_end = end
        elif tcp.dport == port and "A" in str(tcp.flags):
            if high_ack is None or after(tcp.ack, high_ack):
                high_ack = tcp.ack
        if high_end is not None and high_ack is not None:
            outstanding = (high_end - high_ack) % MOD if after(high_end, high_ack) else 0
    return sorted(gaps, reverse=True)


def dsack_blocks(pkts, port=80) -> int:
    """ACKs from the kernel whose first SACK block reports a duplicate (RFC 2883 §4: below
    the cumulative ACK, or inside the second block)."""
    n = 0
    for p in pkts:
        tcp = p[TCP]
        if tcp.dport != port:
            continue
        for kind, value in tcp.options:
            if kind != "SAck" or len(value) < 2:
                continue
            left, right = value[0], value[1]
            below = not after(right, tcp.ack)
            inside = len(value) >= 4 and not after(value[2], left) and not after(right, value[3])
            n += below or inside
    return n


@pytest.mark.kernel_differs("counts synack's own counters")
@pytest.mark.synack_args("--impair", "loss=3%,delay=5ms,seed=19")
def test_lost_tails_under_3_percent_loss_are_repaired_without_an_rto_stall(synack, capture):
    # 100 responses of 10 segments each on one connection: 100 tails, about 60 losses.
    n, size = 100, 10 * 1448
    with capture("tcp port 80") as cap:
        digest = curl_many(n, size)
    assert digest == hashlib.sha256(pattern_prefix(size) * n).hexdigest()
    s = stats()
    assert s["impair_lost"] >= 20, s
    # Tails were probed (RFC 8985 §7).
    assert s["loss_probes"] >= 1, s
    # From the capture: while two segments or more were unacknowledged, synack's data stopped
    # for an RTO-length (200 ms at least; the probe is due after 2·SRTT + 2 ms, about 25 ms
    # here) only where a retransmission was itself lost at the tail, which only the timer
    # repairs (RFC 8985 §7: no probe outside the Open state; Linux the same): about one in
    # 33 retransmissions, one or two a run. Waiting for the timer at every lost tail, as
    # before issue 19, stalls ten times or more. (Timeouts of the handshake or the FIN are
    # not data stalls; the capture does not show what the impairer dropped.)
    gaps = data_stalls(cap.packets())
    assert gaps, "no data captured"
    stalls = [g for g in gaps if g[0] >= 0.15]
    # (Up to 5: on a loaded machine the RTT, hence the probe's timer, grows; one run during
    # parallel builds failed the earlier bound of 3.)
    assert len(stalls) <= 5, f"stalls (s, at): {stalls}"
    # None backed off far: each was about one RTO (200 ms plus four times the RTT's variance,
    # which a loaded machine inflates: a CI run beside a benchmark saw one of 0.6 s).
    assert gaps[0][0] < 1.0, f"stalls (s, at): {gaps[:5]}"


@pytest.mark.kernel_differs("counts synack's own counters")
@pytest.mark.synack_args("--impair", "loss=1%,seed=7")
def test_a_lossy_download_gets_no_dsack_from_the_kernel(synack, capture):
    # The case: 4 MB at 1 % loss made 62 retransmissions for about 30 losses, and
    # the kernel answered 28 second copies with a D-SACK.
    size = 4 << 20
    with capture("tcp port 80") as cap:
        digest = curl_many(1, size)
    assert digest == hashlib.sha256(pattern_prefix(size)).hexdigest()
    s = stats()
    dsacks = dsack_blocks(cap.packets())
    assert s["impair_lost"] >= 10, s
    # Loss only, no reordering: a duplicate can come only from a probe or a timeout whose ACK,
    # not data, was lost.
    allowed = s["loss_probes"] + s["rto_expirations"]
    assert dsacks <= allowed, f"{dsacks} D-SACKs from the kernel, {allowed} allowed: {s}"
    assert s["dsack_recv"] <= allowed, s
    # One retransmission per loss (the impairer's count covers both directions).
    assert s["retransmissions"] <= s["impair_lost"] + s["loss_probes"], s
