"""Servers behind synack's transparent relay (tests/e2e/test_transparent.py), run inside the
upstream network namespace: on every address given, port 7 echoes (RFC 862, half-close
aware), port 80 answers one HTTP request with `upstream <local address>`, port 5001 answers
the SHA-256 of everything it read once the client half-closes, port 5002 sends N bytes
(N is the decimal number in the client's first line) of a counting pattern and closes,
port 5003 reads nothing and notes how its connection ended ("eof" or "reset"), and port
5004 answers those notes, as JSON, to whoever connects. Threads, one per connection; it
runs until killed."""

import hashlib
import json
import socket
import sys
import threading
import time


def pattern(n: int) -> bytes:
    block = bytes(range(256)) * 4096
    out = bytearray()
    while len(out) < n:
        out += block[: n - len(out)]
    return bytes(out)


def echo(conn):
    while True:
        data = conn.recv(65536)
        if not data:
            break
        conn.sendall(data)


def http(conn):
    req = b""
    while b"\r\n\r\n" not in req:
        data = conn.recv(4096)
        if not data:
            return
        req += data
    addr = conn.getsockname()[0]
    body = f"upstream {addr}\n".encode()
    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                 % (len(body), body))


def sha(conn):
    h = hashlib.sha256()
    while True:
        data = conn.recv(1 << 20)
        if not data:
            break
        h.update(data)
    conn.sendall(h.hexdigest().encode() + b"\n")


def source(conn):
    line = b""
    while not line.endswith(b"\n"):
        data = conn.recv(64)
        if not data:
            return
        line += data
    n = int(line)
    block = bytes(range(256)) * 4096
    sent = 0
    while sent < n:
        chunk = block[: min(len(block), n - sent)]
        conn.sendall(chunk)
        sent += len(chunk)


ENDINGS = []


def hold(conn):
    """Read nothing (the relay must close its client's window), and note how the connection
    ends, from the socket's TCP state (a reset leaves the unread bytes readable): CLOSE
    after a reset, CLOSE-WAIT after a FIN."""
    while True:
        state = conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0]
        if state in (7, 8):  # TCP_CLOSE, TCP_CLOSE_WAIT
            ENDINGS.append("reset" if state == 7 else "eof")
            return
        time.sleep(0.05)


def endings(conn):
    conn.sendall(json.dumps(ENDINGS).encode() + b"\n")


HANDLERS = {7: echo, 80: http, 5001: sha, 5002: source, 5003: hold, 5004: endings}


def serve(addr, port, handler):
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((addr, port))
    ls.listen(4096)

    def one(conn):
        with conn:
            try:
                handler(conn)
            except OSError:
                pass

    while True:
        conn, _ = ls.accept()
        threading.Thread(target=one, args=(conn,), daemon=True).start()


def main():
    threads = [threading.Thread(target=serve, args=(a, p, h), daemon=True)
               for a in sys.argv[1:] for p, h in HANDLERS.items()]
    for t in threads:
        t.start()
    print("ready", flush=True)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()
