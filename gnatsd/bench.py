"""`gnatsd bench`: a NATS load generator that needs no Go (the same as `python -m gnatsd.bench`).

    gnatsd bench pubsub --url nats://127.0.0.1:4222 -n 1000000 --size 16
    gnatsd bench fanout --subs 5
    gnatsd bench req -n 20000              # request/reply latency, p50/p90/p99
    gnatsd bench suite --plot bench.png    # the standard set of runs, as a table, JSON and a chart

Modes (modelled on shared/natsbench/main.go, the Go load generator used for official numbers):

    pub     P publishers send N messages in all; rate = what the server ingests (each publisher
            ends with PING/PONG, so every message has been processed when the clock stops).
    pubsub  P publishers, S subscribers on one subject (S=1 by default); rate = messages
            delivered to all subscribers per second (N*S of them).
    fanout  pubsub with S=5 by default.
    queue   P publishers, S subscribers in one queue group (S=3 by default); each message is
            delivered once, and the run checks that the subscribers got N in all.
    req     P requesters (1 by default) send N requests in all, one at a time each, and wait for
            each reply from S responders (a queue group, 1 by default); latency percentiles.
    suite   pub 16 B, pubsub 16 B, fanout 5 x 16 B, queue 3 x 16 B, pubsub 16 KiB, req 16 B.

Each client is its own process (multiprocessing) with a raw socket: publishers write
pre-built batches of PUB frames with one sendall per ~64 KiB; subscribers read large chunks
and count MSG frames by their sizes, skipping a whole frame at a time when it is the expected
one. The generator does not patch gevent and does not use a NATS client library.

Counts are checked: a delivery run that does not receive exactly what it should (within
--timeout) fails with the numbers. Output: a table on stdout, then one JSON line per run (the
fields of natsbench's JSON, plus p90, per-client counts and the server's INFO); --format
picks one of them, --json-file writes the JSON lines to a file and --plot FILE.png draws a
chart (needs matplotlib: `pip install 'gnatsd[bench]'`).

Exit codes: 0 when every run passed, 1 when a run failed (cannot connect, server error,
timeout, wrong count), 2 for a bad command line.

A machine with few cores runs the server and the generator on the same cores: the numbers
then measure both. The generator's processes use a core each while they run; see
loadtests/README.md for what that means on a 2-core machine.
"""
from __future__ import annotations

import argparse
import array
import datetime
import json
import math
import multiprocessing
import os
import platform
import re
import socket
import sys
import threading
import time
from urllib.parse import unquote, urlsplit

MODES = ("pub", "pubsub", "fanout", "queue", "req", "suite")
DEFAULT_SUBS = {"pub": 0, "pubsub": 1, "fanout": 5, "queue": 3, "req": 1}
DEFAULT_URL = "nats://127.0.0.1:4222"
BATCH_BYTES = 64 * 1024        # bytes per sendall of pipelined PUBs
RECV_BYTES = 256 * 1024        # bytes per recv
MAX_CONTROL_LINE = 4096
POLL = 0.05                    # how often idle workers look at the stop flag
READY_TIMEOUT = 30.0           # connect + SUB + PING/PONG of every client

monotonic = time.monotonic


class BenchError(Exception):
    """A run failed: the message says why (it goes on stderr and in the JSON's "error")."""


# -- arguments -----------------------------------------------------------------------------------


_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kKmM]?)(?:i?[bB])?\s*$")


def parse_size(text):
    """'16' -> 16, '16k' / '16KB' / '16KiB' -> 16384, '1M' / '1MB' -> 1048576 (NATS units)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (examples: 16, 512, 16k, 16KiB, 1MB)")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def parse_count(text):
    """'1000000', '1_000_000', '1e6', '100k', '1M' -> int >= 1."""
    t = str(text).strip().replace("_", "").replace(",", "")
    mult = 1
    if t[-1:] in ("k", "K"):
        mult, t = 1000, t[:-1]
    elif t[-1:] in ("m", "M"):
        mult, t = 1000000, t[:-1]
    try:
        value = float(t) * mult
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}") from None
    if value != int(value) or value < 1:
        raise argparse.ArgumentTypeError(f"invalid count {text!r}: must be a whole number >= 1")
    return int(value)


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def parse_url(url):
    """nats://[user:pass@|token@]host[:port] -> dict(host, port, user, password, token, url)."""
    text = url.strip()
    if "," in text:
        raise ValueError(f"give one server URL, not a list: {url!r}")
    if "://" not in text:
        text = "nats://" + text
    parts = urlsplit(text)
    if parts.scheme in ("tls", "wss", "ws"):
        raise ValueError(f"{parts.scheme}:// is not supported by gnatsd bench (plain nats:// only): {url!r}")
    if parts.scheme != "nats":
        raise ValueError(f"not a NATS URL (want nats://host:port): {url!r}")
    try:
        port = parts.port or 4222
    except ValueError:
        raise ValueError(f"bad port in {url!r}") from None
    host = parts.hostname
    if not host:
        raise ValueError(f"no host in {url!r}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    token = None
    if user is not None and password is None:
        token, user = user, None
    return {"host": host, "port": port, "user": user, "password": password, "token": token,
            "url": f"nats://{host}:{port}" if ":" not in host else f"nats://[{host}]:{port}"}


def size_label(size):
    """16 -> '16', 16384 -> '16k', 1048576 -> '1M'."""
    for div, suffix in ((1024 * 1024, "M"), (1024, "k")):
        if size >= div and size % div == 0:
            return f"{size // div}{suffix}"
    return str(size)


def default_msgs(mode, size):
    """Messages per run when -n is not given: 1M for throughput runs (at most 256 MiB of
    payload), 10k requests for req."""
    if mode == "req":
        return 10000
    return max(100, min(1000000, (256 * 1024 * 1024) // max(size, 1)))


def build_parser():
    p = argparse.ArgumentParser(
        prog="gnatsd bench",
        description="NATS load generator: raw sockets, one process per client. Prints a table and "
                    "one JSON line per run.",
        epilog="Modes: pub (publish only), pubsub (1 publisher, S subscribers), fanout (pubsub, "
               "S=5), queue (queue group of S=3), req (request/reply latency), suite (the "
               "standard set). Sizes take k/KB/KiB/M/MB (1024-based). Exit codes: 0 ok, 1 a "
               "run failed, 2 bad arguments. See loadtests/README.md.",
    )
    p.add_argument("modes", nargs="*", metavar="MODE", default=None,
                   help="one or more of: " + ", ".join(MODES) + " (default: pubsub)")
    p.add_argument("-s", "--url", "--server", dest="url", default=DEFAULT_URL,
                   help=f"server URL, nats://[user:pass@]host:port (default {DEFAULT_URL})")
    p.add_argument("-n", "--msgs", type=parse_count, default=None,
                   help="messages to publish in all (requests for req); default 1M for 16 B "
                        "(at most 256 MiB of payload), 10k requests; in the suite, the 16 KiB "
                        "and req runs use a tenth of -n")
    p.add_argument("--size", type=parse_size, default=16, help="payload bytes (default 16)")
    p.add_argument("--pubs", type=_positive_int, default=1,
                   help="publisher (or requester) processes (default 1)")
    p.add_argument("--subs", type=int, default=None,
                   help="subscriber (or responder) processes (default: pubsub 1, fanout 5, "
                        "queue 3, req 1)")
    p.add_argument("--subject", default=None, help="subject (default: bench.<mode>.<random>)")
    p.add_argument("--timeout", type=_positive_float, default=120.0,
                   help="give up on a run after this many seconds (default 120)")
    p.add_argument("--req-timeout", type=_positive_float, default=5.0,
                   help="req: give up on one reply after this many seconds (default 5)")
    p.add_argument("--format", choices=("both", "table", "json"), default="both",
                   help="stdout: the table, the JSON lines, or both (default)")
    p.add_argument("--json-file", metavar="FILE", help="also write the JSON lines to FILE")
    p.add_argument("--plot", metavar="FILE.png", help="draw the results (needs matplotlib)")
    p.add_argument("--label", default=None, help="a name for this server in the table, JSON and plot")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return p


def parse_args(argv):
    parser = build_parser()
    args = parser.parse_intermixed_args(argv)
    modes = args.modes or ["pubsub"]
    for m in modes:
        if m not in MODES:
            parser.error(f"unknown mode {m!r} (choose from {', '.join(MODES)})")
    args.modes = modes
    try:
        args.server = parse_url(args.url)
    except ValueError as e:
        parser.error(str(e))
    if args.subs is not None:
        if args.subs < 0:
            parser.error(f"--subs must be >= 0, got {args.subs}")
        for m in modes:
            if m in ("pubsub", "fanout", "queue", "req") and args.subs < 1:
                parser.error(f"{m} needs --subs >= 1")
    if args.size > 64 * 1024 * 1024:
        parser.error(f"--size {args.size} is larger than any NATS server's max_payload limit (64 MB)")
    if args.subject is not None:
        if not args.subject or any(c in args.subject for c in " \t\r\n") or args.subject.endswith("."):
            parser.error(f"invalid subject {args.subject!r}")
        if "*" in args.subject.split(".") or ">" in args.subject.split("."):
            parser.error(f"the subject must not contain wildcards: {args.subject!r}")
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error("--plot needs matplotlib: pip install 'gnatsd[bench]' (or pip install matplotlib)")
    return args


def scenarios(args):
    """The list of runs (dicts) the arguments ask for."""
    runs = []
    for mode in args.modes:
        if mode == "suite":
            n = args.msgs
            tenth = max(1, n // 10) if n else None
            runs += [
                _scenario(args, "pub16", "pub", 16, n, args.pubs, 0),
                _scenario(args, "pubsub16", "pubsub", 16, n, 1, 1),
                _scenario(args, "fanout5x16", "fanout", 16, n, 1, 5),
                _scenario(args, "queue3x16", "queue", 16, n, 1, 3),
                _scenario(args, "pubsub16k", "pubsub", 16384, tenth, 1, 1),
                _scenario(args, "req16", "req", 16, tenth, 1, 1),
            ]
        else:
            subs = args.subs if args.subs is not None else DEFAULT_SUBS[mode]
            if mode == "pub":
                subs = 0
            many = mode in ("fanout", "queue") or (mode == "pubsub" and subs != 1)
            size = size_label(args.size)
            name = f"{mode}{subs}x{size}" if many else f"{mode}{size}"
            if args.pubs > 1:
                name = f"{args.pubs}{name}"
            runs.append(_scenario(args, name, mode, args.size, args.msgs, args.pubs, subs))
    return runs


def _scenario(args, name, mode, size, msgs, pubs, subs):
    return {"name": name, "mode": mode, "size": size, "msgs": msgs or default_msgs(mode, size),
            "pubs": pubs, "subs": subs, "subject": args.subject or f"bench.{mode}.{os.urandom(4).hex()}",
            "server": args.server, "timeout": args.timeout, "req_timeout": args.req_timeout}


# -- the client side of the protocol (workers) ---------------------------------------------------


class Conn:
    """One raw NATS connection: INFO, CONNECT, PING/PONG, and a generic op scanner.

    The hot loops (publish, count) are in the workers; this handles everything else."""

    def __init__(self, server, name, timeout=10.0, headers=False):
        self.errors = []
        self.pongs = 0
        self.msgs = 0
        self.on_msg = None  # fn(args, data, payload_start, size) for MSG when set
        try:
            self.sock = socket.create_connection((server["host"], server["port"]), timeout=timeout)
        except OSError as e:
            raise BenchError(f"cannot connect to {server['url']}: {e.strerror or e}") from None
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rest = b""
        line = self._read_line(timeout)
        if not line.startswith(b"INFO"):
            raise BenchError(f"{server['url']} is not a NATS server (first line {line[:80]!r})")
        try:
            self.info = json.loads(line[4:].strip())
        except ValueError:
            raise BenchError(f"bad INFO from {server['url']}: {line[:200]!r}") from None
        connect = {"verbose": False, "pedantic": False, "name": name, "lang": "python-gnatsd-bench",
                   "version": "1", "protocol": 1, "echo": True, "headers": headers,
                   "no_responders": headers}
        if server.get("user") is not None:
            connect["user"] = server["user"]
            connect["pass"] = server["password"] or ""
        if server.get("token") is not None:
            connect["auth_token"] = server["token"]
        self.sock.sendall(b"CONNECT " + json.dumps(connect).encode() + b"\r\n")
        self.ping_pong(timeout)

    def _read_line(self, timeout):
        deadline = monotonic() + timeout
        while b"\r\n" not in self.rest:
            self.sock.settimeout(max(deadline - monotonic(), 0.001))
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise BenchError("no INFO from the server") from None
            if not chunk:
                raise BenchError("the server closed the connection before sending INFO")
            self.rest += chunk
            if len(self.rest) > 65536:
                raise BenchError("no INFO line from the server")
        line, _, self.rest = self.rest.partition(b"\r\n")
        return line

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def error_text(self):
        return "; ".join(self.errors) if self.errors else ""

    def control(self, data, pos):
        """Process the op at data[pos:]; return the position after it, or -1 if it is not all
        there yet. MSG/HMSG go to self.on_msg (or are counted in self.msgs)."""
        eol = data.find(b"\r\n", pos)
        if eol < 0:
            if len(data) - pos > MAX_CONTROL_LINE + 64 * 1024 * 1024:
                raise BenchError("protocol error: no end of line from the server")
            return -1
        c = data[pos]
        if c == 77 or c == 72:  # MSG / HMSG: size is the last argument
            args = data[pos + (4 if c == 77 else 5):eol].split()
            size = int(args[-1])
            nxt = eol + 4 + size
            if nxt > len(data):
                return -1
            if self.on_msg is None:
                self.msgs += 1
            else:
                self.on_msg(args, data, eol + 2, size, c == 72)
            return nxt
        op = data[pos:eol]
        if op.startswith(b"PING"):
            self.sock.sendall(b"PONG\r\n")
        elif op.startswith(b"PONG"):
            self.pongs += 1
        elif op.startswith(b"-ERR"):
            self.errors.append(op[4:].strip().decode("utf-8", "replace"))
        # +OK, INFO: nothing to do
        return eol + 2

    def scan(self, data):
        """Scan everything complete in data (after self.rest); keep the rest."""
        if self.rest:
            data = self.rest + data
        pos = 0
        n = len(data)
        control = self.control
        while pos < n:
            nxt = control(data, pos)
            if nxt < 0:
                break
            pos = nxt
        self.rest = data[pos:]

    def recv_some(self, timeout):
        """recv once and scan it; False on timeout. Raises BenchError when the server closed."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(RECV_BYTES)
        except socket.timeout:
            return False
        except OSError as e:
            raise self.closed_error(e) from None
        if not data:
            raise self.closed_error()
        self.scan(data)
        return True

    def closed_error(self, exc=None):
        self.drain_errors()
        why = self.error_text() or (exc.strerror if exc is not None and exc.strerror else "")
        return BenchError("the server closed the connection" + (f": {why}" if why else ""))

    def drain_errors(self):
        """After a failed send: read whatever the server said before it closed (for its -ERR)."""
        try:
            self.sock.settimeout(0.5)
            while True:
                data = self.sock.recv(RECV_BYTES)
                if not data:
                    break
                self.rest += data
                if b"-ERR" in self.rest:
                    break
        except OSError:
            pass
        for m in re.finditer(rb"-ERR\s*([^\r\n]*)", self.rest):
            text = m.group(1).strip().decode("utf-8", "replace")
            if text not in self.errors:
                self.errors.append(text)

    def ping_pong(self, timeout):
        """Send PING, process everything until its PONG (Go's Flush)."""
        want = self.pongs + 1
        try:
            self.sock.sendall(b"PING\r\n")
        except OSError as e:
            raise self.closed_error(e) from None
        deadline = monotonic() + timeout
        while self.pongs < want:
            if self.errors and _fatal(self.errors[-1]):
                raise BenchError(f"server error: -ERR {self.errors[-1]}")
            left = deadline - monotonic()
            if left <= 0:
                raise BenchError(f"no PONG from the server within {timeout:g}s")
            self.recv_some(left)
        if self.errors and _fatal(self.errors[-1]):
            raise BenchError(f"server error: -ERR {self.errors[-1]}")


def _fatal(err):
    # Go's client treats these -ERRs as not closing the connection; all others do.
    low = err.lower()
    return not ("permissions violation" in low or "invalid subject" in low)


def _orphaned(parent):
    return os.getppid() != parent


def _worker(role, idx, cfg, counters, stamps, start_evt, stop_evt, results, parent):
    """Process entry point: runs one client and reports ("ready"|"done"|"error", idx, data)."""
    try:
        fn = {"pub": _pub_worker, "sub": _sub_worker, "req": _req_worker, "rep": _rep_worker}[role]
        fn(idx, cfg, counters, stamps, start_evt, stop_evt, results, parent)
    except BenchError as e:
        results.put(("error", idx, f"{role} {idx}: {e}"))
    except KeyboardInterrupt:
        pass
    except BaseException as e:  # noqa: BLE001 - reported to the parent, which fails the run
        results.put(("error", idx, f"{role} {idx}: {type(e).__name__}: {e}"))


def _ready(results, idx, conn):
    info = conn.info
    results.put(("ready", idx, {"server_name": info.get("server_name"), "version": info.get("version"),
                                "go": info.get("go"), "max_payload": info.get("max_payload"),
                                "headers": info.get("headers")}))


def _wait_start(start_evt, parent):
    while not start_evt.wait(1.0):
        if _orphaned(parent):
            raise BenchError("the bench process went away")


def _pub_worker(idx, cfg, counters, stamps, start_evt, stop_evt, results, parent):
    n = cfg["n"]
    conn = Conn(cfg["server"], f"bench-pub-{idx}")
    payload = b"x" * cfg["size"]
    mp = conn.info.get("max_payload")
    if isinstance(mp, int) and cfg["size"] > mp:
        raise BenchError(f"--size {cfg['size']} is larger than the server's max_payload {mp}")
    frame = b"PUB " + cfg["subject"].encode() + b" " + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n"
    k = max(1, BATCH_BYTES // len(frame))
    batch = frame * k
    _ready(results, idx, conn)
    _wait_start(start_evt, parent)
    sock = conn.sock
    sock.settimeout(cfg["timeout"])
    sendall = sock.sendall
    sent = 0
    try:
        while sent + k <= n:
            sendall(batch)
            sent += k
            counters[idx] = sent
        if sent < n:
            sendall(frame * (n - sent))
            sent = n
            counters[idx] = sent
    except socket.timeout:
        raise BenchError(f"send blocked for {cfg['timeout']:g}s after {sent} messages") from None
    except OSError as e:
        conn.drain_errors()
        why = conn.error_text() or e.strerror or str(e)
        raise BenchError(f"the server closed the connection after {sent} of {n} messages: {why}") from None
    conn.ping_pong(cfg["timeout"])
    stamps[idx] = monotonic()
    results.put(("done", idx, {"sent": sent, "end": stamps[idx], "errors": conn.errors}))
    conn.close()


def _sub_worker(idx, cfg, counters, stamps, start_evt, stop_evt, results, parent):
    conn = Conn(cfg["server"], f"bench-sub-{idx}")
    subj = cfg["subject"].encode()
    queue = cfg.get("queue")
    conn.sock.sendall(b"SUB " + subj + (b" " + queue.encode() if queue else b"") + b" 1\r\n")
    conn.ping_pong(10.0)
    _ready(results, idx, conn)
    expect = cfg["expect"]  # 0: until told to stop
    size = cfg["size"]
    hdr = b"MSG " + subj + b" 1 " + str(size).encode() + b"\r\n"
    flen = len(hdr) + size + 2
    sock = conn.sock
    sock.settimeout(POLL)
    recv = sock.recv
    control = conn.control
    count = 0
    last = 0.0
    rest = conn.rest
    conn.rest = b""
    pending = 0  # bytes still to come of an expected frame whose header has been seen
    while not expect or count + conn.msgs < expect:
        try:
            data = recv(RECV_BYTES)
        except socket.timeout:
            if stop_evt.is_set() or _orphaned(parent):
                break
            continue
        except OSError as e:
            raise conn.closed_error(e) from None
        if not data:
            raise conn.closed_error()
        n = len(data)
        before = count + conn.msgs
        pos = 0
        if pending:  # the rest of a large payload: skipped, never copied
            if n < pending:
                pending -= n
                continue
            pos = pending
            pending = 0
            count += 1
        elif rest:
            data = rest + data
            n = len(data)
        while pos < n:
            if data.startswith(hdr, pos):
                nxt = pos + flen
                if nxt > n:
                    pending = nxt - n
                    pos = n
                    break
                count += 1
                pos = nxt
                continue
            nxt = control(data, pos)
            if nxt < 0:
                break
            pos = nxt
        rest = data[pos:]
        total = count + conn.msgs
        if total != before:
            last = monotonic()
            counters[idx] = total
            stamps[idx] = last
        if conn.errors and _fatal(conn.errors[-1]):
            raise BenchError(f"server error: -ERR {conn.errors[-1]}")
    # Anything still on its way (a duplicate would show here): PING, count until PONG.
    conn.rest = rest
    before = conn.msgs
    conn.ping_pong(10.0)
    if conn.msgs != before:
        last = monotonic()
    total = count + conn.msgs
    counters[idx] = total
    results.put(("done", idx, {"received": total, "last": last, "errors": conn.errors}))
    conn.close()


def _req_worker(idx, cfg, counters, stamps, start_evt, stop_evt, results, parent):
    n = cfg["n"]
    conn = Conn(cfg["server"], f"bench-req-{idx}", headers=True)
    inbox = b"_INBOX.bench" + os.urandom(6).hex().encode()
    conn.sock.sendall(b"SUB " + inbox + b".* 1\r\n")
    conn.ping_pong(10.0)
    payload = b"x" * cfg["size"]
    tail = b" " + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n"
    head = b"PUB " + cfg["subject"].encode() + b" "
    state = {"want": b"", "got": False, "status": None}

    def on_msg(args, data, start, size, hmsg):
        if args[0] == state["want"]:
            state["got"] = True
            if hmsg:  # a status reply, e.g. 503 no responders
                line = data[start:data.find(b"\r\n", start)]
                state["status"] = line.decode("utf-8", "replace")
        # replies to earlier requests that timed out are dropped

    conn.on_msg = on_msg
    req_timeout = cfg["req_timeout"]
    lat = array.array("d")
    _ready(results, idx, conn)
    _wait_start(start_evt, parent)
    sendall = conn.sock.sendall
    perf = time.perf_counter
    recv_some = conn.recv_some
    for i in range(n):
        reply = inbox + b"." + str(i).encode()
        state["want"] = reply
        state["got"] = False
        t0 = perf()
        try:
            sendall(head + reply + tail)
        except OSError as e:
            raise conn.closed_error(e) from None
        deadline = t0 + req_timeout
        while not state["got"]:
            left = deadline - perf()
            if left <= 0:
                raise BenchError(f"request {i + 1} of {n}: no reply within {req_timeout:g}s")
            recv_some(left)
            if conn.errors and _fatal(conn.errors[-1]):
                raise BenchError(f"server error: -ERR {conn.errors[-1]}")
        lat.append(perf() - t0)
        if state["status"] is not None:
            status = state["status"]
            raise BenchError(f"request {i + 1} of {n}: {'no responders' if ' 503' in status else status}")
        counters[idx] = i + 1
    stamps[idx] = monotonic()
    results.put(("done", idx, {"sent": n, "end": stamps[idx], "lat": lat.tobytes(), "errors": conn.errors}))
    conn.close()


def _rep_worker(idx, cfg, counters, stamps, start_evt, stop_evt, results, parent):
    conn = Conn(cfg["server"], f"bench-rep-{idx}")
    conn.sock.sendall(b"SUB " + cfg["subject"].encode() + b" bench-responders 1\r\n")
    conn.ping_pong(10.0)
    payload = b"x" * cfg["size"]
    tail = b" " + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n"
    out = []
    answered = [0]

    def on_msg(args, data, start, size, hmsg):
        if len(args) >= 4 - hmsg:  # subject sid reply [hdr] size
            out.append(b"PUB " + args[2] + tail)
            answered[0] += 1

    conn.on_msg = on_msg
    _ready(results, idx, conn)
    sock = conn.sock
    while True:
        if not conn.recv_some(POLL):
            if stop_evt.is_set() or _orphaned(parent):
                break
            continue
        if out:
            sock.settimeout(cfg["timeout"])
            try:
                sock.sendall(b"".join(out))
            except OSError as e:
                raise conn.closed_error(e) from None
            del out[:]
            counters[idx] = answered[0]
    results.put(("done", idx, {"received": answered[0], "errors": conn.errors}))
    conn.close()


# -- running one scenario (the parent) ------------------------------------------------------------


def _context():
    """fork is fastest; when threads are running (an in-process server, a test runner), fork
    is unsafe, so use forkserver (or spawn where there is no fork)."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return multiprocessing.get_context("fork")
    if "forkserver" in methods:
        return multiprocessing.get_context("forkserver")
    return multiprocessing.get_context("spawn")


def _split(n, parts):
    return [n // parts + (1 if i < n % parts else 0) for i in range(parts)]


def percentile(sorted_values, q):
    """Nearest-rank percentile of an ascending list (q in 0..100)."""
    if not sorted_values:
        return 0.0
    k = max(0, min(len(sorted_values) - 1, int(math.ceil(q / 100.0 * len(sorted_values))) - 1))
    return sorted_values[k]


class Progress:
    """One line on stderr, for runs longer than a second: refreshed in place on a terminal,
    one line a second otherwise."""

    def __init__(self, enabled, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown = False
        self.last_print = 0.0

    def update(self, elapsed, text):
        if not self.enabled or elapsed < 1.0:
            return
        now = monotonic()
        if self.tty:
            if now - self.last_print >= 0.2:
                self.stream.write("\r" + text + "\x1b[K")
                self.stream.flush()
                self.last_print = now
                self.shown = True
        elif now - self.last_print >= 1.0:
            self.stream.write(text + "\n")
            self.stream.flush()
            self.last_print = now
            self.shown = True

    def done(self):
        if self.shown and self.tty:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.shown = False
        self.last_print = 0.0


def run_scenario(sc, progress=None, on_start=None):
    """Run one scenario; return its result dict (with "error" set when it failed).

    `on_start()`, when given, is called once every client is connected, as the clock starts
    (loadtests/monitor_bench.py starts its monitoring requests there)."""
    mode, n, size = sc["mode"], sc["msgs"], sc["size"]
    pubs, subs = sc["pubs"], sc["subs"]
    base = {"server": sc["server"], "subject": sc["subject"], "size": size, "timeout": sc["timeout"],
            "req_timeout": sc["req_timeout"]}
    # Receivers first (indexes 0..subs-1), then senders.
    roles = []
    if mode == "req":
        for i in range(subs):
            roles.append(("rep", dict(base)))
        for share in _split(n, pubs):
            roles.append(("req", dict(base, n=share)))
    else:
        for i in range(subs):
            roles.append(("sub", dict(base, expect=0 if mode == "queue" else n,
                                      queue="bench-q" if mode == "queue" else None)))
        for share in _split(n, pubs):
            roles.append(("pub", dict(base, n=share)))
    recv_idx = list(range(subs))
    send_idx = list(range(subs, len(roles)))

    result = {"name": sc["name"], "mode": mode, "msgs": 0, "size": size, "pubs": pubs, "subs": subs,
              "seconds": 0.0, "msgs_per_s": 0.0, "mb_per_s": 0.0, "url": sc["server"]["url"],
              "published": 0, "received": 0}
    ctx = _context()
    counters = ctx.RawArray("q", len(roles))
    stamps = ctx.RawArray("d", len(roles))
    start_evt, stop_evt = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    procs = []
    ready, done = {}, {}
    parent = os.getpid()
    progress = progress or Progress(False)

    def collect(timeout):
        try:
            kind, idx, data = results.get(timeout=timeout)
        except Exception:  # queue.Empty
            for i, p in enumerate(procs):
                if p.exitcode is not None and i not in done and (p.exitcode != 0 or i not in ready):
                    raise BenchError(f"{roles[i][0]} {i} exited with code {p.exitcode}")
            return
        if kind == "error":
            raise BenchError(data)
        (ready if kind == "ready" else done)[idx] = data

    def start(indexes):
        for i in indexes:
            role, cfg = roles[i]
            p = ctx.Process(target=_worker, name=f"gnatsd-bench-{role}-{i}",
                            args=(role, i, cfg, counters, stamps, start_evt, stop_evt, results, parent))
            p.daemon = True
            p.start()
            procs.append(p)
        deadline = monotonic() + READY_TIMEOUT
        while not all(i in ready for i in indexes):
            if monotonic() > deadline:
                raise BenchError(f"clients not connected after {READY_TIMEOUT:g}s")
            collect(0.1)

    t0 = None
    try:
        start(recv_idx)
        start(send_idx)
        info = ready[send_idx[0]]
        result["server_info"] = info
        if on_start is not None:
            on_start()
        t0 = monotonic()
        start_evt.set()
        deadline = t0 + sc["timeout"]
        want_recv = n * subs if mode in ("pubsub", "fanout") else n
        while True:
            senders_done = all(i in done for i in send_idx)
            if mode == "pub":
                if senders_done:
                    break
            elif mode == "req":
                if senders_done:
                    stop_evt.set()
                    if all(i in done for i in recv_idx):
                        break
            elif mode == "queue":
                if senders_done and sum(counters[i] for i in recv_idx) >= n:
                    stop_evt.set()
                    if all(i in done for i in recv_idx):
                        break
            elif senders_done and all(i in done for i in recv_idx):
                break
            now = monotonic()
            if now > deadline:
                got = sum(counters[i] for i in recv_idx)
                sent = sum(counters[i] for i in send_idx)
                what = f"received {got} of {want_recv}" if mode != "req" and mode != "pub" else f"sent {sent} of {n}"
                raise BenchError(f"timeout after {sc['timeout']:g}s: {what}")
            progress.update(now - t0, _progress_text(sc, now - t0, counters, send_idx, recv_idx, want_recv))
            collect(0.1)
        stop_evt.set()
        # Results.
        published = sum(done[i]["sent"] for i in send_idx)
        result["published"] = published
        if mode == "pub":
            end = max(done[i]["end"] for i in send_idx)
            result["msgs"] = published
        elif mode == "req":
            end = max(done[i]["end"] for i in send_idx)
            result["msgs"] = published
            result["received"] = published
            lat = array.array("d")
            for i in send_idx:
                lat.frombytes(done[i]["lat"])
            lat = sorted(lat)
            result["p50_us"] = round(percentile(lat, 50) * 1e6, 1)
            result["p90_us"] = round(percentile(lat, 90) * 1e6, 1)
            result["p99_us"] = round(percentile(lat, 99) * 1e6, 1)
            result["min_us"] = round(lat[0] * 1e6, 1)
            result["max_us"] = round(lat[-1] * 1e6, 1)
            result["mean_us"] = round(sum(lat) / len(lat) * 1e6, 1)
            result["per_responder"] = [done[i]["received"] for i in recv_idx]
        else:
            per = [done[i]["received"] for i in recv_idx]
            result["received"] = sum(per)
            result["per_sub"] = per
            result["msgs"] = sum(per)
            end = max(done[i]["last"] for i in recv_idx)
            bad = [c for c in per if c != n] if mode != "queue" else ([] if sum(per) == n else per)
            if published != n or bad:
                raise BenchError(f"published {published} of {n}; subscribers received {per} "
                                 f"(want {'%d in all' % n if mode == 'queue' else '%d each' % n})")
        seconds = max(end - t0, 1e-9)
        result["seconds"] = round(seconds, 6)
        result["msgs_per_s"] = round(result["msgs"] / seconds, 1)
        result["mb_per_s"] = round(result["msgs"] / seconds * size / 1e6, 3)
        if mode in ("pubsub", "fanout", "queue"):
            result["pub_msgs_per_s"] = round(published / seconds, 1)
        errors = [e for d in done.values() for e in d.get("errors", [])]
        if errors:
            result["server_errors"] = errors
    except BenchError as e:
        result["error"] = str(e)
        if t0 is not None:
            result["seconds"] = round(monotonic() - t0, 6)
            result["published"] = sum(counters[i] for i in send_idx)
            if mode != "req":
                result["received"] = sum(counters[i] for i in recv_idx)
    finally:
        progress.done()
        stop_evt.set()
        start_evt.set()
        for p in procs:
            p.join(2.0)
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(1.0)
        results.close()
        results.join_thread()
    return result


def _progress_text(sc, elapsed, counters, send_idx, recv_idx, want_recv):
    sent = sum(counters[i] for i in send_idx)
    text = f"{sc['name']}: {elapsed:5.1f}s  sent {sent:,}/{sc['msgs']:,}"
    if sc["mode"] not in ("pub", "req"):
        text += f"  received {sum(counters[i] for i in recv_idx):,}/{want_recv:,}"
    return text


# -- output -------------------------------------------------------------------------------------


def _fmt_int(v):
    return f"{int(round(v)):,}"


def format_table(results, label=None):
    head = ["run", "mode", "size", "pubs", "subs", "msgs", "seconds", "msgs/s", "MB/s", "p50 us", "p90 us",
            "p99 us"]
    rows = []
    for r in results:
        if r.get("error"):
            rows.append([r["name"], r["mode"], str(r["size"]), str(r["pubs"]), str(r["subs"]),
                         "FAILED: " + r["error"]])
            continue
        lat = [f"{r[k]:,.0f}" if k in r else "" for k in ("p50_us", "p90_us", "p99_us")]
        rows.append([r["name"], r["mode"], str(r["size"]), str(r["pubs"]), str(r["subs"]), _fmt_int(r["msgs"]),
                     f"{r['seconds']:.3f}", _fmt_int(r["msgs_per_s"]), f"{r['mb_per_s']:.1f}"] + lat)
    widths = [len(h) for h in head]
    for row in rows:
        widths = [max(w, len(c)) for w, c in zip(widths, row if len(row) == len(head) else row[:5])] + widths[
            len(head) if len(row) == len(head) else 5:]
    left = {0, 1}

    def line(cells):
        if len(cells) != len(head):  # a failed run: first cells aligned, then the error
            return "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i])
                             for i, c in enumerate(cells[:5])) + "  " + cells[5]
        return "  ".join(c.ljust(widths[i]) if i in left else c.rjust(widths[i]) for i, c in enumerate(cells)).rstrip()

    out = []
    first = next((r for r in results if r.get("server_info")), None)
    title = "gnatsd bench"
    if results:
        title += f"  {results[0]['url']}"
    if first:
        si = first["server_info"]
        title += f"  server {si.get('server_name') or '?'} v{si.get('version')} ({si.get('go')})"
    if label:
        title += f"  [{label}]"
    out.append(title)
    out.append(line(head))
    out.append(line(["-" * w for w in widths]))
    out.extend(line(r) for r in rows)
    return "\n".join(out)


def _si(value, _pos=None):
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if value >= div:
            return f"{value / div:g}{suffix}"
    return f"{value:g}"


def plot(results, path, label=None):
    """Throughput bars (msgs/s, MB/s in the labels) and, for req runs, latency percentiles."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    ok = [r for r in results if not r.get("error")]
    thr = [r for r in ok if r["mode"] != "req"]
    lat = [r for r in ok if r["mode"] == "req"]
    panels = (1 if thr else 0) + (1 if lat else 0) or 1
    fig, axes = plt.subplots(1, panels, figsize=(6.5 * panels, 0.6 * max(len(thr), 3) + 2.2), squeeze=False)
    axes = list(axes[0])
    if thr:
        ax = axes.pop(0)
        names = [r["name"] for r in thr][::-1]
        rates = [r["msgs_per_s"] for r in thr][::-1]
        bars = ax.barh(names, rates, color="#2a7ab9")
        for b, r in zip(bars, thr[::-1]):
            ax.text(b.get_width(), b.get_y() + b.get_height() / 2,
                    f" {r['msgs_per_s'] / 1000:,.0f}k/s  {r['mb_per_s']:,.1f} MB/s", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(min(rates) / 2, max(rates) * 8)
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(_si))
        ax.set_xlabel("messages per second, log scale (delivered; published for pub)")
        ax.set_title("throughput")
    if lat:
        ax = axes.pop(0)
        qs = ("p50_us", "p90_us", "p99_us")
        width = 0.8 / len(lat)
        for j, r in enumerate(lat):
            xs = [i + j * width for i in range(len(qs))]
            bars = ax.bar(xs, [r[q] for q in qs], width=width, label=f"{r['name']} ({r['size']} B)")
            for b, q in zip(bars, qs):
                ax.text(b.get_x() + b.get_width() / 2, b.get_height(), f"{r[q]:,.0f}", ha="center",
                        va="bottom", fontsize=8)
        ax.set_xticks([i + width * (len(lat) - 1) / 2 for i in range(len(qs))])
        ax.set_xticklabels(["p50", "p90", "p99"])
        ax.set_ylabel("round trip (µs)")
        ax.set_title("request/reply latency")
        ax.legend(fontsize=8)
    if not ok:
        axes[0].text(0.5, 0.5, "every run failed", ha="center", va="center")
        axes[0].set_axis_off()
    title = "gnatsd bench"
    if results:
        title += f" - {results[0]['url']}"
        si = next((r["server_info"] for r in results if r.get("server_info")), None)
        if si:
            title += f" - v{si.get('version')} ({si.get('go')})"
    if label:
        title += f" [{label}]"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# -- main ---------------------------------------------------------------------------------------


def _patched():
    gevent_monkey = sys.modules.get("gevent.monkey")
    return gevent_monkey is not None and gevent_monkey.is_module_patched("socket")


def main(argv=None):
    """Run the benchmark; returns the exit code (argparse exits with 2 on bad arguments)."""
    args_list = sys.argv[1:] if argv is None else list(argv)
    if _patched():
        # A gevent-patched process (gnatsd.cli imported some other way): run unpatched.
        import subprocess

        return subprocess.call([sys.executable, "-m", "gnatsd.bench"] + args_list)
    args = parse_args(args_list)
    progress = Progress(not args.no_progress)
    results = []
    json_lines = []
    started = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0).isoformat()
    host = {"python": f"{platform.python_implementation()} {platform.python_version()}", "cpus": os.cpu_count()}
    try:
        for sc in scenarios(args):
            r = run_scenario(sc, progress)
            r["date"] = started
            r["generator"] = host
            if args.label:
                r["label"] = args.label
            results.append(r)
            json_lines.append(json.dumps(r, separators=(",", ":")))
            if r.get("error"):
                sys.stderr.write(f"gnatsd bench: {r['name']}: {r['error']}\n")
                sys.stderr.flush()
                if "cannot connect" in r["error"]:
                    break
    except KeyboardInterrupt:
        sys.stderr.write("gnatsd bench: interrupted\n")
        return 130
    if args.format in ("both", "table"):
        sys.stdout.write(format_table(results, args.label) + "\n")
    if args.format in ("both", "json"):
        if args.format == "both":
            sys.stdout.write("\n")
        sys.stdout.write("\n".join(json_lines) + "\n")
    sys.stdout.flush()
    if args.json_file:
        with open(args.json_file, "w") as f:
            f.write("\n".join(json_lines) + "\n")
    if args.plot:
        plot(results, args.plot, args.label)
    return 1 if any(r.get("error") for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
