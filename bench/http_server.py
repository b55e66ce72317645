#!/usr/bin/env python3
"""The Linux side of the loss suite (issue 19): a tiny HTTP/1.1 server on the kernel's TCP that
serves `GET /bytes/<N>` with the same bytes as synack's http service (byte i is byte i mod 8 of
the big-endian u64 floor(i/8)) and nearly the same head, so that only the TCP differs.

Usage: http_server.py ADDR PORT [CC]. CC (default cubic) is the congestion control of the
listening socket (TCP_CONGESTION; accepted sockets inherit it): this machine's default is BBR,
which does not back off on random loss, while synack runs CUBIC (RFC 9438), so the suite sets
the algorithm per socket rather than relying on net.ipv4.tcp_congestion_control (a namespace
cannot change that default; root's CAP_NET_ADMIN allows an algorithm outside
tcp_allowed_congestion_control on its own socket). One thread per connection; bodies are built once per size and
kept; keep-alive as synack does (the client closes). Never the bottleneck: the whole response
goes to the socket in one sendall().
"""
import socket
import sys
import threading

BODIES = {}
LOCK = threading.Lock()


def body(n):
    with LOCK:
        b = BODIES.get(n)
        if b is None:
            words = (n + 7) // 8
            b = b"".join(k.to_bytes(8, "big") for k in range(words))[:n]
            BODIES[n] = b
        return b


def serve(conn):
    buf = b""
    try:
        while True:
            while b"\r\n\r\n" not in buf:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                buf += chunk
            head, _, buf = buf.partition(b"\r\n\r\n")
            line = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            path = line[1] if len(line) >= 2 else ""
            n = None
            if path.startswith("/bytes/") and path[7:].isdigit():
                n = int(path[7:])
            if n is None or n > 1 << 30:
                msg = b"not found\n"
                conn.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain; charset=utf-8\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(msg), msg))
                continue
            conn.sendall(b"HTTP/1.1 200 OK\r\nServer: synack\r\n"
                         b"Content-Type: application/octet-stream\r\n"
                         b"Content-Length: %d\r\n\r\n" % n + body(n))
    except OSError:
        pass
    finally:
        conn.close()


def main():
    addr, port = sys.argv[1], int(sys.argv[2])
    cc = sys.argv[3] if len(sys.argv) > 3 else "cubic"
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())
    except OSError as e:
        sys.exit(f"http_server.py: cannot set congestion control {cc!r} on the socket: {e} "
                 "(see /proc/sys/net/ipv4/tcp_available_congestion_control; needs CAP_NET_ADMIN "
                 "for one not in tcp_allowed_congestion_control)")
    got = s.getsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, 16).rstrip(b"\0").decode()
    s.bind((addr, port))
    s.listen(128)
    for n in (100_000, 1_000_000, 10_000_000):
        body(n)
    print(f"ready cc={got}", flush=True)
    while True:
        conn, _ = s.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
