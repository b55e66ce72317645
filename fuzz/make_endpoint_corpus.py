#!/usr/bin/python3
"""Write the seed corpus for the `endpoint` fuzz target (fuzz/corpus/endpoint/).

The input format is described in src/endpoint/scenario.rs: records of (tag, wait, flags,
seq mode, ack mode, window, options, ..., payload length), or raw packets. These seeds are
conversations that reach the state machine: handshakes, data, closes, a SYN flood past the
backlog (SYN cookies), blind RSTs and SYNs, keep-alive, and malformed raw packets.
Run: /usr/bin/python3 fuzz/make_endpoint_corpus.py (the seeds are committed).
"""
import os
import struct

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10
PORT = {7: 0, 9: 1, 19: 2, 80: 3, 5555: 4}


def tag(peer=0, port=7, sport=0):
    return peer | (PORT[port] << 2) | (sport << 5)


def seg(flags, peer=0, port=7, sport=0, wait=0, seq=0, ack=0, window=0xFFFF, mss=None,
        ws=None, sack_ok=False, ts=None, length=0):
    """One structured record; seq/ack are modes (0 expected, (1, d) near, (2, v) raw, 3 one below)."""
    out = bytes([tag(peer, port, sport), wait, flags])
    for mode in (seq, ack):
        if isinstance(mode, tuple):
            kind, value = mode
            out += bytes([kind]) + (struct.pack(">h", value) if kind == 1 else struct.pack(">I", value))
        else:
            out += bytes([mode])
    opts = (1 if mss is not None else 0) | (2 if ws is not None else 0) | (4 if sack_ok else 0) | (8 if ts is not None else 0)
    out += struct.pack(">H", window) + bytes([opts])
    if mss is not None:
        out += struct.pack(">H", mss)
    if ws is not None:
        out += bytes([ws])
    if ts is not None:
        out += struct.pack(">I", ts)
    return out + bytes([length])


def raw(data):
    return bytes([0x80, len(data)]) + data


def handshake(**kw):
    return seg(SYN, mss=1460, **kw) + seg(ACK, **kw)


seeds = {}
seeds["echo_conversation"] = (
    handshake() + seg(PSH | ACK, length=4) + seg(ACK, wait=10) + seg(FIN | ACK) + seg(ACK, wait=20)
)
seeds["linux_options"] = (
    seg(SYN, mss=1460, ws=7, sack_ok=True, ts=1000) + seg(ACK, ts=1001)
    + seg(PSH | ACK, ts=1002, length=100) + seg(ACK, ts=1003, wait=50)
)
seeds["http_and_chargen"] = (
    handshake(port=80) + seg(PSH | ACK, port=80, length=3)
    + handshake(port=19, sport=1) + seg(ACK, port=19, sport=1, wait=30) + seg(RST, port=19, sport=1)
)
flood = b""
for peer in range(3):
    for sport in range(4):
        flood += seg(SYN, peer=peer, sport=sport, mss=1460, ts=5)
flood += seg(ACK, peer=2, sport=3, ts=6) + seg(PSH | ACK, peer=2, sport=3, length=2)
seeds["syn_flood_cookies"] = flood
seeds["blind_attacks"] = (
    handshake() + seg(RST, seq=(1, 500)) + seg(SYN, seq=(1, 1)) + seg(RST, seq=(2, 12345))
    + seg(PSH | ACK, seq=(1, 3000), length=2) + seg(ACK, ack=(1, -30000)) + seg(ACK, ack=(1, 20))
    + seg(RST)
)
seeds["keepalive_and_timeouts"] = handshake() + seg(ACK, wait=40) + seg(ACK, seq=3, wait=40) + seg(ACK, wait=255)
seeds["closed_port_and_strays"] = seg(SYN, port=5555) + seg(ACK, port=9, ack=(2, 7)) + seg(RST, port=9) + seg(FIN, port=80)
seeds["raw_malformed"] = (
    raw(bytes([0x45, 0, 0, 20]) + bytes(16))
    + raw(bytes([0x4F]) + bytes(30))
    + raw(bytes([0x60]) + bytes(50))
    + raw(b"")
    + handshake()
)
seeds["time_wait_reuse"] = (
    handshake(port=80) + seg(FIN | ACK, port=80) + seg(ACK, port=80, wait=5)
    + seg(SYN, port=80, seq=(1, 100), mss=536)
)

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "endpoint")
os.makedirs(out, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
print(f"wrote {len(seeds)} seeds to {out}")
