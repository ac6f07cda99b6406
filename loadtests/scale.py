#!/usr/bin/env python3
"""Memory and scale figures for docs/BENCHMARKS.md: gnatsd beside the Go nats-server.

    python loadtests/scale.py idle --server 'gnatsd' --server 'nats-server' [--conns 10000]
    python loadtests/scale.py subs --server 'gnatsd' --server 'nats-server' [--max 100000]

`idle`: opens N raw client connections (CONNECT and one SUB each), then reads the server's
RSS from /proc. `subs`: one connection holds K subscriptions (K = 1k, 10k, 100k; literal
subjects plus every tenth a `*` wildcard), and a requester measures the round trip of a
request to a responder on one of them, so the figure includes the server's subject match;
flat latencies mean the match does not grow with K.

Each server command must accept `-a HOST -p PORT`. Needs file descriptors for N connections
on both sides (`ulimit -n`). Prints one JSON line per server and measurement.
"""
from __future__ import annotations

import argparse
import json
import socket
import statistics
import time

from servers import start


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def connect(port):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.recv(4096)  # INFO
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n')
    return s


def sync(s):
    """PING/PONG: everything sent before has been processed."""
    s.sendall(b"PING\r\n")
    buf = b""
    while b"PONG\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk


def idle(cmd, conns):
    proc, port = start(cmd)
    try:
        base = rss_mb(proc.pid)
        socks = []
        for i in range(conns):
            s = connect(port)
            s.sendall(b"SUB idle.%d 1\r\n" % i)
            socks.append(s)
        for s in socks[:: max(conns // 100, 1)]:
            sync(s)
        time.sleep(1)
        out = {"server": cmd, "test": "idle", "conns": conns, "rss_mb": round(rss_mb(proc.pid), 1),
               "rss_at_start_mb": round(base, 1)}
        for s in socks:
            s.close()
        return out
    finally:
        proc.terminate()
        proc.wait(10)


def request_p50_us(req, n=300):
    lat = []
    for i in range(n):
        t = time.perf_counter()
        req.sendall(b"PUB svc.target _INBOX.r 1\r\nx\r\n")
        buf = b""
        while not buf.endswith(b"\r\nok\r\n"):
            buf += req.recv(4096)
        lat.append((time.perf_counter() - t) * 1e6)
    return statistics.median(lat)


def subs(cmd, counts):
    proc, port = start(cmd)
    try:
        holder = connect(port)
        resp = connect(port)
        req = connect(port)
        resp.sendall(b"SUB svc.target 1\r\n")
        req.sendall(b"SUB _INBOX.r 1\r\n")
        sync(resp)
        sync(req)
        # The responder answers from its own thread-free loop: a tiny echo in this process.
        have = 0
        results = []
        for k in counts:
            lines = []
            for i in range(have, k):
                subject = b"scale.%d.*" % i if i % 10 == 0 else b"scale.%d.leaf" % i
                lines.append(b"SUB %s %d\r\n" % (subject, i + 10))
            holder.sendall(b"".join(lines))
            sync(holder)
            have = k
            results.append({"server": cmd, "test": "subs", "subscriptions": k,
                            "req_p50_us": round(_with_responder(resp, req), 1),
                            "rss_mb": round(rss_mb(proc.pid), 1)})
        return results
    finally:
        proc.terminate()
        proc.wait(10)


def _with_responder(resp, req):
    import threading

    stop = threading.Event()

    def answer():
        buf = b""
        resp.settimeout(0.2)
        while not stop.is_set():
            try:
                buf += resp.recv(65536)
            except socket.timeout:
                continue
            while True:
                end = buf.find(b"\r\n")
                if end < 0:
                    break
                line = buf[:end]
                if line.startswith(b"MSG "):
                    size = int(line.split()[-1])
                    if len(buf) < end + 2 + size + 2:
                        break
                    buf = buf[end + 2 + size + 2:]
                    resp.sendall(b"PUB _INBOX.r 2\r\nok\r\n")
                else:
                    buf = buf[end + 2:]

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        request_p50_us(req, 50)  # warm up
        return request_p50_us(req)
    finally:
        stop.set()
        t.join()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("test", choices=("idle", "subs"))
    ap.add_argument("--server", action="append", required=True, help="server command (repeat)")
    ap.add_argument("--conns", type=int, default=10000)
    ap.add_argument("--max", type=int, default=100000)
    a = ap.parse_args()
    for cmd in a.server:
        if a.test == "idle":
            print(json.dumps(idle(cmd, a.conns)), flush=True)
        else:
            counts = [c for c in (1000, 10000, 100000, 1000000) if c <= a.max]
            for row in subs(cmd, counts):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
