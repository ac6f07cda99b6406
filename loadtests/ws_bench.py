"""Pub/sub throughput over WebSocket (ws://): gnatsd against the Go nats-server, in one run.

One publisher and one subscriber, each a raw-socket WebSocket client in its own process
(CPython, whatever interpreter runs the server): the publisher sends pre-built masked frames
of many PUBs each, as fast as the socket takes them; the subscriber reads the server's
frames and counts delivered bytes. The rate is messages delivered per second, from the
publisher's first byte to the subscriber's last message.

    python loadtests/ws_bench.py [--rounds 5] [--sizes 16,16384] [--server NAME=COMMAND ...]

Default servers: `gnatsd` (this checkout on the running interpreter), `gnatsd-pypy`
(/tmp/pypy-venv/bin/gnatsd with this checkout first on PYTHONPATH, when it exists) and `go`
(nats-server on PATH). Each server runs once for the whole benchmark; the rounds go through
every server and size in turn (interleaved), after one warm-up run each, and the median of
the rounds is reported with the ratio to Go's.
"""
from __future__ import annotations

import argparse
import base64
import multiprocessing
import os
import shlex
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from servers import free_port  # noqa: E402

ROOT = os.path.dirname(HERE)
MASK = b"\x11\x22\x33\x44"
SUBJECT = b"bench.ws"


def ws_connect(port):
    """A socket after the WebSocket upgrade and the server's INFO frame."""
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(4096)
    head, rest = buf.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return s, rest


def mask(data):
    n = len(data)
    k = (MASK * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def client_frame(payload):
    n = len(payload)
    if n < 126:
        h = bytes((0x82, 0x80 | n))
    elif n < 65536:
        h = bytes((0x82, 0x80 | 126)) + struct.pack(">H", n)
    else:
        h = bytes((0x82, 0x80 | 127)) + struct.pack(">Q", n)
    return h + MASK + mask(payload)


class Deframer:
    """Counts the payload bytes of unmasked server frames, and the server's PINGs in them
    (both servers ping a client after about 2 s; MSG payloads are all "x", so "PING\r\n"
    is only ever a PING)."""

    def __init__(self, rest=b""):
        self.buf = rest
        self.need = 0  # payload bytes left in the current frame
        self.payload = 0
        self.pings = 0
        self.tail = b""  # the last payload bytes: a PING or PONG split between reads

    def feed(self, data):
        buf = self.buf + data if self.buf else data
        pos, end = 0, len(buf)
        while pos < end:
            if self.need:
                n = min(self.need, end - pos)
                self.payload += n
                self.need -= n
                seen = self.tail[-5:] + buf[pos:pos + n]
                self.pings += seen.count(b"PING\r\n")
                self.tail = seen[-16:]
                pos += n
                continue
            if end - pos < 2:
                break
            n = buf[pos + 1] & 0x7F
            p = pos + 2
            if n == 126:
                if end - p < 2:
                    break
                n = struct.unpack(">H", buf[p:p + 2])[0]
                p += 2
            elif n == 127:
                if end - p < 8:
                    break
                n = struct.unpack(">Q", buf[p:p + 8])[0]
                p += 8
            self.need = n
            pos = p
        self.buf = buf[pos:]


def subscriber(port, n, msg_len, ready, done):
    s, rest = ws_connect(port)
    d = Deframer(rest)
    s.sendall(client_frame(b'CONNECT {"verbose":false,"pedantic":false}\r\nSUB ' + SUBJECT + b" 1\r\nPING\r\n"))
    while not d.tail.endswith(b"PONG\r\n"):
        d.feed(s.recv(65536))
    base = d.payload
    ready.set()
    want = base + n * msg_len
    recv = s.recv
    while d.payload - 6 * d.pings < want:
        data = recv(1 << 20)
        if not data:
            raise SystemExit("subscriber: connection closed (slow consumer?)")
        d.feed(data)
    done.value = time.perf_counter()
    s.close()


def publisher(port, n, size, start):
    s, _ = ws_connect(port)
    s.sendall(client_frame(b'CONNECT {"verbose":false,"pedantic":false}\r\n'))
    op = b"PUB " + SUBJECT + b" " + str(size).encode() + b"\r\n" + b"x" * size + b"\r\n"
    per_frame = max(1, 65536 // len(op))
    full = client_frame(op * per_frame)
    frames, left = divmod(n, per_frame)
    start.value = time.perf_counter()
    send = s.sendall
    for _ in range(frames):
        send(full)
    if left:
        send(client_frame(op * left))
    send(client_frame(b"PING\r\n"))
    d = Deframer()
    while not d.tail.endswith(b"PONG\r\n"):  # everything was processed (skipping a server PING)
        d.feed(s.recv(4096))
    s.close()


def run_once(port, n, size):
    msg_len = len(b"MSG " + SUBJECT + b" 1 " + str(size).encode() + b"\r\n") + size + 2
    ctx = multiprocessing.get_context("fork")
    ready, start, done = ctx.Event(), ctx.Value("d", 0.0), ctx.Value("d", 0.0)
    sub = ctx.Process(target=subscriber, args=(port, n, msg_len, ready, done))
    sub.start()
    if not ready.wait(20):
        sub.kill()
        raise SystemExit("subscriber not ready")
    pub = ctx.Process(target=publisher, args=(port, n, size, start))
    pub.start()
    pub.join(300)
    sub.join(300)
    if sub.exitcode != 0 or pub.exitcode != 0:
        raise SystemExit(f"client failed (sub {sub.exitcode}, pub {pub.exitcode})")
    return n / (done.value - start.value)


def start_server(cmd, tmp):
    port, ws_port = free_port(), free_port()
    conf = os.path.join(tmp, f"ws-{ws_port}.conf")
    with open(conf, "w") as f:
        f.write(f'listen: "127.0.0.1:{port}"\nwebsocket {{ listen: "127.0.0.1:{ws_port}", no_tls: true }}\n')
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen(shlex.split(cmd) + ["-c", conf], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=env)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", ws_port), timeout=0.2).close()
            return proc, ws_port
        except OSError:
            if proc.poll() is not None:
                raise SystemExit(f"server exited at start: {cmd}")
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"server did not listen: {cmd}")


def default_servers():
    servers = [("gnatsd", f"{shlex.quote(sys.executable)} -m gnatsd")]
    if os.path.exists("/tmp/pypy-venv/bin/gnatsd"):
        servers.append(("gnatsd-pypy", "/tmp/pypy-venv/bin/gnatsd"))
    go = shutil.which("nats-server")
    if go:
        servers.append(("go", go))
    return servers


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--sizes", default="16,16384")
    ap.add_argument("-n", type=int, default=0, help="messages per run (default: 400,000 for 16 B, 256 MiB of payload "
                                                   "for larger sizes)")
    ap.add_argument("--server", action="append", default=[], metavar="NAME=COMMAND")
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.sizes.split(",")]
    servers = [tuple(s.split("=", 1)) for s in args.server] or default_servers()
    tmp = tempfile.mkdtemp(prefix="ws_bench_")
    running = {}
    try:
        for name, cmd in servers:
            running[name] = start_server(cmd, tmp)
        counts = {size: args.n or (400_000 if size <= 1024 else (256 << 20) // size) for size in sizes}
        rates = {(name, size): [] for name, _ in servers for size in sizes}
        for r in range(args.rounds + 1):  # round 0 warms up (PyPy's JIT)
            for size in sizes:
                for name, _ in servers:
                    rate = run_once(running[name][1], counts[size], size)
                    if r:
                        rates[name, size].append(rate)
                    print(f"round {r} {name:12s} {size:6d} B {rate:12,.0f} msgs/s", file=sys.stderr)
        print(f"\n{'server':12s} {'size':>7s} {'msgs/s (median)':>16s} {'MB/s':>8s} {'x Go':>6s}   rounds")
        for size in sizes:
            go = statistics.median(rates["go", size]) if ("go", size) in rates else None
            for name, _ in servers:
                med = statistics.median(rates[name, size])
                ratio = f"{med / go:6.2f}" if go else "     -"
                print(f"{name:12s} {size:7d} {med:16,.0f} {med * size / 1e6:8.1f} {ratio}   "
                      + " ".join(f"{x:,.0f}" for x in rates[name, size]))
    finally:
        for proc, _ in running.values():
            proc.terminate()
            proc.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
