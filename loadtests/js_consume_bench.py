"""Pull-consumer delivery rate: gnatsd against the Go nats-server, in one run.

A file stream is filled with N messages (128 bytes, published without waiting for acks),
then one raw-socket client drains it through a durable pull consumer with requests of
`--batch` messages, sending the next request when a batch is in. With `--ack explicit`
every message is acked (a PUB to its reply, pipelined, no ack sync); with `none` the
consumer has ack_policy none. The rate is messages delivered per second, from the first
request to the last message.

    python loadtests/js_consume_bench.py [--n 50000] [--batch 500] [--ack none,explicit]
                                         [--rounds 3] [--server NAME=COMMAND ...]

Default servers: `gnatsd` (this checkout on the running interpreter), `gnatsd-pypy`
(/tmp/pypy-venv/bin/python with this checkout first on PYTHONPATH, when it exists) and `go`
(nats-server on PATH). Each round starts every server afresh with an empty store directory;
the median of the rounds is reported with the ratio to Go's.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from servers import start  # noqa: E402

ROOT = os.path.dirname(HERE)
MSG_RE = re.compile(rb"(H?)MSG (\S+) (\S+) ([^\r]*)\r\n")


class Conn:
    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.read_line()  # INFO
        self.sock.sendall(b'CONNECT {"verbose":false,"headers":true,"no_responders":true}\r\nSUB _r 1\r\nPING\r\n')
        while self.read_line() != b"PONG":
            pass

    def fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError
        self.buf += chunk

    def read_line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    def next_msg(self):
        """(subject, reply, header, payload) of the next MSG/HMSG; PINGs answered."""
        while True:
            line = self.read_line()
            if line == b"PING":
                self.sock.sendall(b"PONG\r\n")
                continue
            parts = line.split()
            if parts[0] not in (b"MSG", b"HMSG"):
                continue
            hdr = parts[0] == b"HMSG"
            reply = parts[3] if len(parts) == (6 if hdr else 5) else None
            hlen, total = (int(parts[-2]), int(parts[-1])) if hdr else (0, int(parts[-1]))
            while len(self.buf) < total + 2:
                self.fill()
            data, self.buf = self.buf[:total], self.buf[total + 2:]
            return parts[1], reply, data[:hlen], data[hlen:]

    def request(self, subject, body):
        self.sock.sendall(b"PUB %s _r %d\r\n%s\r\n" % (subject.encode(), len(body), body))
        return json.loads(self.next_msg()[3])


def run_one(cmd, n, batch, ack):
    sd = tempfile.mkdtemp(prefix="jsbench-")
    proc, port = start(f"{cmd} -js -sd {sd}")
    try:
        c = Conn(port)
        c.request("$JS.API.STREAM.CREATE.B", b'{"name":"B","subjects":["b"],"storage":"file"}')
        payload = b"x" * 128
        pub = b"PUB b 128\r\n" + payload + b"\r\n"
        for i in range(0, n, 1000):
            c.sock.sendall(pub * min(1000, n - i))
        deadline = time.time() + 120
        while c.request("$JS.API.STREAM.INFO.B", b"")["state"]["messages"] < n:
            if time.time() > deadline:
                raise RuntimeError("stream did not fill")
            time.sleep(0.05)
        cfg = {"durable_name": "d", "ack_policy": ack}
        c.request("$JS.API.CONSUMER.DURABLE.CREATE.B.d",
                  json.dumps({"stream_name": "B", "config": cfg}).encode())
        c.sock.sendall(b"SUB inbox 2\r\n")
        req = json.dumps({"batch": batch, "expires": 10 * 10**9}).encode()
        nextreq = b"PUB $JS.API.CONSUMER.MSG.NEXT.B.d inbox %d\r\n%s\r\n" % (len(req), req)
        got = 0
        t0 = time.perf_counter()
        while got < n:
            c.sock.sendall(nextreq)
            want = min(batch, n - got)
            acks = []
            k = 0
            while k < want:
                _, reply, hdr, _ = c.next_msg()
                if hdr:
                    continue  # a status: the request ended early
                k += 1
                if ack == "explicit":
                    acks.append(b"PUB %s 0\r\n\r\n" % reply)
                    if len(acks) >= 100:
                        c.sock.sendall(b"".join(acks))
                        acks = []
            if acks:
                c.sock.sendall(b"".join(acks))
            got += k
        return n / (time.perf_counter() - t0)
    finally:
        proc.kill()
        proc.wait()
        shutil.rmtree(sd, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=50000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--ack", default="none,explicit")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--server", action="append", default=[])
    args = ap.parse_args()
    servers = dict(s.split("=", 1) for s in args.server)
    if not servers:
        servers["gnatsd"] = f"env PYTHONPATH={ROOT} {sys.executable} -m gnatsd"
        if os.path.exists("/tmp/pypy-venv/bin/python"):
            servers["gnatsd-pypy"] = f"env PYTHONPATH={ROOT} /tmp/pypy-venv/bin/python -m gnatsd"
        servers["go"] = "nats-server"
    for ack in args.ack.split(","):
        rates = {name: [] for name in servers}
        for _ in range(args.rounds):
            for name, cmd in servers.items():
                rates[name].append(run_one(cmd, args.n, args.batch, ack))
        go = statistics.median(rates["go"]) if "go" in rates else None
        for name, r in rates.items():
            med = statistics.median(r)
            ratio = f"  {med / go:.2f} of go" if go else ""
            print(f"ack={ack:8} {name:12} {med:10.0f} msg/s{ratio}   rounds: {', '.join(f'{x:.0f}' for x in r)}")


if __name__ == "__main__":
    main()
