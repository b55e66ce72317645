#!/usr/bin/python3
"""Write the seed corpora for the `http` and `control` fuzz targets.

http (fuzz/corpus/http/): 4 schedule bytes (segment size, peer FIN, send-buffer room; see
fuzz/fuzz_targets/http.rs) followed by what a client sends: GET, HEAD, /bytes/<N>, uploads,
pipelined and keep-alive requests, HTTP/1.0, Expect: 100-continue, and malformed heads.
control (fuzz/corpus/control/): request and response lines of the control protocol
(src/driver/control.rs). Run: /usr/bin/python3 fuzz/make_service_corpus.py
"""
import json
import os

here = os.path.dirname(os.path.abspath(__file__))

# schedule: byte 0 = log2 of the largest segment (mod 14), byte 1 bit 0 = peer sends FIN,
# byte 2 = send-buffer room 64 << (b % 11), byte 3 = more PRNG seed.
WHOLE_FIN = bytes([13, 1, 10, 0])
SMALL_FIN = bytes([2, 1, 0, 7])
WHOLE = bytes([13, 0, 10, 0])

http = {
    "get_root": WHOLE_FIN + b"GET / HTTP/1.1\r\nHost: 198.18.0.2\r\n\r\n",
    "get_root_bytewise": SMALL_FIN + b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: curl/8\r\nAccept: */*\r\n\r\n",
    "get_handshake": WHOLE_FIN + b"GET /handshake HTTP/1.1\r\nHost: x\r\n\r\n",
    "head_root": WHOLE_FIN + b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n",
    "bytes_small_window": bytes([9, 1, 0, 3]) + b"GET /bytes/100000 HTTP/1.1\r\nHost: x\r\n\r\n",
    "bytes_close": WHOLE + b"GET /bytes/5000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    "put_body": WHOLE_FIN + b"PUT /up HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world",
    "post_split": SMALL_FIN + b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nabcde",
    "post_expect": WHOLE_FIN + b"POST /u HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\nabcd",
    "pipelined": bytes([5, 1, 3, 9]) + b"GET / HTTP/1.1\r\n\r\nHEAD /x HTTP/1.1\r\n\r\nGET /bytes/10 HTTP/1.1\r\n\r\nPUT / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi",
    "http10": WHOLE_FIN + b"GET / HTTP/1.0\r\n\r\n",
    "http10_keepalive": WHOLE_FIN + b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET /bytes/3 HTTP/1.0\r\n\r\n",
    "leading_crlf": WHOLE_FIN + b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "not_found": WHOLE_FIN + b"GET /nowhere HTTP/1.1\r\n\r\n",
    "favicon": WHOLE_FIN + b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\n\r\n",
    "unknown_method": WHOLE_FIN + b"DELETE / HTTP/1.1\r\n\r\n",
    "options_star": WHOLE_FIN + b"OPTIONS * HTTP/1.1\r\n\r\n",
    "bad_version": WHOLE_FIN + b"GET / HTTP/2.0\r\n\r\n",
    "bad_content_length": WHOLE_FIN + b"PUT / HTTP/1.1\r\nContent-Length: 1, 2\r\n\r\n",
    "two_content_lengths": WHOLE_FIN + b"PUT / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
    "chunked": WHOLE_FIN + b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    "obs_fold": WHOLE_FIN + b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
    "bare_lf": WHOLE_FIN + b"GET / HTTP/1.1\nHost: x\n\n",
    "huge_head": WHOLE_FIN + b"GET / HTTP/1.1\r\nX: " + b"a" * 9000 + b"\r\n\r\n",
    "truncated_head": WHOLE_FIN + b"GET / HTTP/1.1\r\nHost:",
    "truncated_body": WHOLE_FIN + b"PUT / HTTP/1.1\r\nContent-Length: 100\r\n\r\nshort",
    "bytes_too_big": WHOLE_FIN + b"GET /bytes/99999999999999999999 HTTP/1.1\r\n\r\n",
}

control = {
    "status": {"cmd": "status"},
    "stats": {"cmd": "stats"},
    "connect_v4": {"cmd": "connect", "addr": "198.18.0.1:8080", "data": "68656c6c6f0a"},
    "connect_v6": {"cmd": "connect", "addr": "[2001:2::1]:7", "data": ""},
    "trace": {"cmd": "trace", "follow": False},
    "trace_follow": {"cmd": "trace", "follow": True},
    "resp_status": {"status": {"rows": [{
        "state": "ESTABLISHED", "recv_q": 0, "send_q": 12, "local": "198.18.0.2:80",
        "peer": "198.18.0.1:40000", "app": "http", "rtt_us": 1200, "rto_us": 201000,
        "cwnd": 14600, "retransmissions": 0, "age_us": 5000000}, {
        "state": "LISTEN", "recv_q": 0, "send_q": 0, "local": "0.0.0.0:7", "peer": None,
        "app": "echo", "rtt_us": None, "rto_us": None, "cwnd": None, "retransmissions": 0,
        "age_us": None}]}},
    "resp_stats": {"stats": {"counters": [["segments_in", 10], ["ListenDrops", 0]]}},
    "resp_connecting": {"connecting": {"local": "198.18.0.2:49152"}},
    "resp_connected": "connected",
    "resp_data": {"data": {"data": "00ff10"}},
    "resp_closed": {"closed": {"outcome": "connection reset by peer"}},
    "resp_ladder": {"ladder": {"local": "198.18.0.2:80", "peer": "198.18.0.1:1", "finished": True, "text": "a\nb"}},
    "resp_error": {"error": {"message": "bad request: x"}},
}

def write(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

for name, data in http.items():
    write("http", name, data)
for name, msg in control.items():
    write("control", name, json.dumps(msg).encode() + b"\n")
write("control", "odd_hex", b'{"cmd":"connect","addr":"198.18.0.1:1","data":"abc"}\n')
write("control", "not_json", b"status\n")
write("control", "two_lines", b'{"cmd":"stats"}\n{"cmd":"status"}\n')
