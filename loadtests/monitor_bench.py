#!/usr/bin/env python3
"""What HTTP monitoring costs message delivery: gnatsd beside the Go nats-server.

    python loadtests/monitor_bench.py --server 'gnatsd' --server 'nats-server' [--conns 2000]
        [--path '/connz'] [--samples 2000]

Opens N idle client connections (CONNECT and two SUBs each, so /connz has a full page to
format), then measures the round trip of a message a client publishes to a subject it
subscribes to (PUB -> MSG back on the same connection), first with no monitoring requests,
then while another process requests `--path` back to back (a process, so that parsing the
answers does not take the measuring thread's GIL). It also reports how long those
requests take. gnatsd formats monitoring answers on the same hub that delivers messages, so
the second round-trip figures show how long a request holds delivery up.

Each server command must accept `-a HOST -p PORT -m PORT`. Needs file descriptors for N
connections on both sides (`ulimit -n`). Prints one JSON line per server and phase.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import socket
import statistics
import time

from servers import start


def read_until(sock, buf, token):
    while token not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise EOFError("server closed the connection")
        buf += chunk
    i = buf.index(token) + len(token)
    return buf[:i], buf[i:]


def connect(port, subs=()):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _, rest = read_until(s, b"", b"\r\n")  # INFO
    lines = [b'CONNECT {"verbose":false,"pedantic":false,"name":"bench","lang":"python","version":"0"}']
    lines += [b"SUB %s %d" % (subj, i + 1) for i, subj in enumerate(subs)]
    s.sendall(b"\r\n".join(lines) + b"\r\nPING\r\n")
    _, rest = read_until(s, rest, b"PONG\r\n")
    return s


def round_trips(port, samples):
    """Seconds per PUB -> MSG round trip on one connection."""
    s = connect(port, [b"echo"])
    buf = b""
    out = []
    try:
        for _ in range(samples):
            t0 = time.perf_counter()
            s.sendall(b"PUB echo 2\r\nhi\r\n")
            _, buf = read_until(s, buf, b"hi\r\n")
            out.append(time.perf_counter() - t0)
    finally:
        s.close()
    return out


def poll(mport, path, stop, results):
    """Runs in its own process: request `path` until `stop` is set; put the durations."""
    times = []
    c = http.client.HTTPConnection("127.0.0.1", mport, timeout=60)
    while not stop.is_set():
        t0 = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        times.append(time.perf_counter() - t0)
    c.close()
    results.put(times)


def summary(xs):
    xs = sorted(xs)
    ms = [x * 1000 for x in xs]
    return {"n": len(xs), "p50_ms": round(statistics.median(ms), 3), "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 3),
            "max_ms": round(ms[-1], 3)}


def bench(cmd, conns, path, samples):
    proc, port, mport = start(cmd, monitor=True)
    idle = []
    try:
        for i in range(conns):
            idle.append(connect(port, [b"idle.%d" % i, b"all"]))
        round_trips(port, 200)  # warm up
        quiet = round_trips(port, samples)
        print(json.dumps({"server": cmd, "conns": conns, "phase": "no monitoring", "round_trip": summary(quiet)}))
        stop = multiprocessing.Event()
        results = multiprocessing.Queue()
        poller = multiprocessing.Process(target=poll, args=(mport, path, stop, results), daemon=True)
        poller.start()
        time.sleep(0.5)
        busy = round_trips(port, samples)
        stop.set()
        times = results.get(timeout=60)
        poller.join(60)
        print(json.dumps({"server": cmd, "conns": conns, "phase": f"polling {path}", "round_trip": summary(busy),
                          "request": summary(times)}))
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", required=True, help="server command (repeatable)")
    ap.add_argument("--conns", type=int, default=2000)
    ap.add_argument("--path", default="/connz")
    ap.add_argument("--samples", type=int, default=2000)
    args = ap.parse_args()
    for cmd in args.server:
        bench(cmd, args.conns, args.path, args.samples)


if __name__ == "__main__":
    main()
