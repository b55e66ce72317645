#!/usr/bin/python3
"""Write the seed corpus for the `parse` fuzz target (fuzz/corpus/parse/).

Valid IPv4/IPv6 SYNs, data segments, FINs, ICMP echo requests, IPv4 with options,
IPv6 with extension headers, and a few near-misses, built with scapy so their checksums
come from an implementation independent of synack. Run: /usr/bin/python3 fuzz/make_corpus.py
"""
import os
from scapy.all import (
    IP, IPv6, TCP, ICMP, UDP, ICMPv6EchoRequest, ICMPv6ND_NS,
    IPv6ExtHdrHopByHop, IPv6ExtHdrDestOpt, IPv6ExtHdrRouting, IPv6ExtHdrFragment,
    IPOption_Router_Alert, RouterAlert, raw,
)

S4, D4 = "198.18.0.1", "198.18.0.2"
S6, D6 = "2001:2::1", "2001:2::2"
SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (12345, 0)), ("NOP", None), ("WScale", 7)]
DATA_OPTS = [("NOP", None), ("NOP", None), ("Timestamp", (2, 1))]
BULK = bytes(range(256)) * 5 + bytes(range(168))  # 1448 bytes
SACK_OPTS = [("NOP", None), ("NOP", None), ("SAck", (100, 200, 300, 400))]

seeds = {
    "v4_syn": IP(src=S4, dst=D4) / TCP(sport=40000, dport=80, flags="S", seq=1000, options=SYN_OPTS),
    "v6_syn": IPv6(src=S6, dst=D6) / TCP(sport=40000, dport=7, flags="S", seq=2**32 - 1, options=SYN_OPTS),
    "v4_data": IP(src=S4, dst=D4) / TCP(sport=40000, dport=7, flags="PA", seq=1, ack=2, options=DATA_OPTS) / b"hello\n",
    "v6_data_sack": IPv6(src=S6, dst=D6) / TCP(sport=40000, dport=7, flags="A", seq=5, ack=9, options=SACK_OPTS) / (b"x" * 33),
    "v4_fin": IP(src=S4, dst=D4) / TCP(sport=40000, dport=80, flags="FA", seq=7, ack=8),
    "v4_rst": IP(src=S4, dst=D4) / TCP(sport=40000, dport=80, flags="R", seq=7),
    "v4_ping": IP(src=S4, dst=D4) / ICMP(type=8, id=1, seq=1) / b"0123456789abcdef",
    "v6_ping": IPv6(src=S6, dst=D6) / ICMPv6EchoRequest(id=1, seq=1, data=b"0123456789abcdef"),
    "v4_ip_options": IP(src=S4, dst=D4, options=[IPOption_Router_Alert()]) / TCP(sport=1, dport=80, flags="S"),
    "v6_ext_headers": IPv6(src=S6, dst=D6)
        / IPv6ExtHdrHopByHop(options=[RouterAlert()])
        / IPv6ExtHdrDestOpt()
        / IPv6ExtHdrRouting(segleft=0)
        / TCP(sport=1, dport=80, flags="S", options=[("MSS", 1440)]),
    "v4_fragment": IP(src=S4, dst=D4, flags="MF") / TCP(sport=1, dport=80, flags="S"),
    "v6_fragment": IPv6(src=S6, dst=D6) / IPv6ExtHdrFragment() / TCP(sport=1, dport=80, flags="S"),
    "v4_udp": IP(src=S4, dst=D4) / UDP(sport=1, dport=53) / b"q",
    "v6_neighbour_solicitation": IPv6(src=S6, dst="ff02::1:ff00:2") / ICMPv6ND_NS(tgt=D6),
    # Full-sized data segments as in a bulk transfer (also the packets of the parse-cost bench).
    "v4_bulk": IP(src=S4, dst=D4) / TCP(sport=40000, dport=9, flags="A", seq=10, ack=20, options=DATA_OPTS) / BULK,
    "v6_bulk": IPv6(src=S6, dst=D6) / TCP(sport=40000, dport=9, flags="A", seq=10, ack=20, options=DATA_OPTS) / BULK,
    "v4_ack_sack": IP(src=S4, dst=D4) / TCP(sport=40000, dport=9, flags="A", seq=10, ack=20, options=DATA_OPTS[:2] + SACK_OPTS[2:] + [("NOP", None), ("NOP", None), ("Timestamp", (3, 4))]),
    # Authentication Header (protocol 51) in front of TCP: not for an endpoint without IPsec.
    "v4_auth_header": IP(src=S4, dst=D4, proto=51) / bytes([6, 4, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]) / TCP(sport=1, dport=80, flags="S"),
}

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "parse")
os.makedirs(out, exist_ok=True)
for name, pkt in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(raw(pkt))
# A valid SYN with trailing link padding after the IPv4 total length.
with open(os.path.join(out, "v4_syn_padded"), "wb") as f:
    f.write(raw(seeds["v4_syn"]) + b"\0" * 6)
print(f"wrote {len(seeds) + 1} seeds to {out}")
