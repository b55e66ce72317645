"""The kernel oracle: Linux's TCP standing in for synack, to validate the e2e harness.

Started by harness.KernelOracle as `unshare -n -- python3 oracle_server.py` (so it lives in
its own, second namespace). Protocol with the harness: we bring `lo` up and print
`netns-ready` on stdout; the harness creates the veth pair (our end: oracle0) and writes `go`
on stdin; we configure 198.18.0.2/24 and 2001:2::2/64, add permanent neighbour entries for the
crafted peer (198.18.0.7, 2001:2::7), and serve echo (7), discard (9), chargen (19) and a small
HTTP/1.1 server (80) that imitates synack's. SIGTERM closes every connection and exits 0;
the namespace, and with it the veth pair, disappears with us.
"""

import os
import signal
import socket
import subprocess
import sys
import threading

HOST_MAC = "02:00:5e:12:00:01"
IFACE = "oracle0"
conns = set()
conns_lock = threading.Lock()


def sh(cmd):
    subprocess.run(cmd, shell=True, check=True)


def log(msg):
    print(f"oracle: {msg}", file=sys.stderr, flush=True)


def serve(port, handler):
    s = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    s.bind(("::", port))
    s.listen(512)

    def accept_loop():
        while True:
            c, peer = s.accept()
            with conns_lock:
                conns.add(c)
            threading.Thread(target=run_handler, args=(handler, c, peer), daemon=True).start()

    threading.Thread(target=accept_loop, daemon=True).start()


def run_handler(handler, c, peer):
    try:
        handler(c, peer)
    except OSError as e:
        log(f"{peer}: {e}")
    finally:
        with conns_lock:
            conns.discard(c)
        c.close()


def echo(c, _peer):
    while data := c.recv(65536):
        c.sendall(data)


def discard(c, _peer):
    while c.recv(65536):
        pass


def chargen(c, _peer):
    done = threading.Event()

    def reader():
        try:
            while c.recv(65536):
                pass
        except OSError:
            pass
        done.set()

    threading.Thread(target=reader, daemon=True).start()
    chars = bytes(range(32, 127))
    i = 0
    while not done.is_set():
        c.sendall((chars + chars)[i % 95 : i % 95 + 72] + b"\r\n")
        i += 1


def http(c, peer):
    buf = b""
    while True:
        while b"\r\n\r\n" not in buf:
            data = c.recv(65536)
            if not data:
                return
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ")
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip().lower()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or parts[0] not in ("GET", "HEAD"):
            body = b"bad request\n"
            c.sendall(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\n"
                + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
            c.shutdown(socket.SHUT_WR)
            drain(c)
            return
        method, path = parts[0], parts[1]
        close = headers.get("connection") == "close"
        if path == "/":
            status = "200 OK"
            local = c.getsockname()
            body = (
                f"kernel oracle standing in for synack\n"
                f"you: [{peer[0]}]:{peer[1]}\nme: [{local[0]}]:{local[1]}\n"
                f"state: ESTABLISHED\n"
            ).encode()
        else:
            status = "404 Not Found"
            body = b"not found\n"
        head = (
            f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
            + ("Connection: close\r\n" if close else "")
            + "\r\n"
        ).encode()
        if close:  # FIN on the last data segment, before the client can close
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        c.sendall(head + (b"" if method == "HEAD" else body))
        if close:
            c.shutdown(socket.SHUT_WR)
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
            drain(c)
            return


def drain(c):
    c.settimeout(5)
    while c.recv(65536):
        pass


def close_all_and_exit():
    log("SIGTERM: closing connections")
    with conns_lock:
        for c in list(conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
    os._exit(0)


def main():
    # Blocked here and so in every thread; only sigwait() below receives it.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    sh("ip link set lo up")
    print("netns-ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit(1)
    for cmd in (
        f"ip addr add 198.18.0.2/24 dev {IFACE}",
        f"ip addr add 2001:2::2/64 dev {IFACE} nodad",
        f"ip link set {IFACE} up",
        f"ip neigh replace 198.18.0.7 lladdr {HOST_MAC} dev {IFACE} nud permanent",
        f"ip neigh replace 2001:2::7 lladdr {HOST_MAC} dev {IFACE} nud permanent",
    ):
        sh(cmd)
    # Linux rate-limits the ACKs it sends for out-of-window segments (500 ms per socket);
    # the tests send such segments back to back.
    with open("/proc/sys/net/ipv4/tcp_invalid_ratelimit", "w") as f:
        f.write("0")
    for port, handler in ((7, echo), (9, discard), (19, chargen), (80, http)):
        serve(port, handler)
    log("listening on 198.18.0.2 and 2001:2::2 ports 7 9 19 80")
    signal.sigwait({signal.SIGTERM})
    close_all_and_exit()


if __name__ == "__main__":
    main()
