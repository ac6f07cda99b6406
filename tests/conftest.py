"""Shared test machinery: servers on random ports, raw protocol connections, polling.

Servers run in-process on their own thread and gevent hub (`Server.start_in_thread`), so
tests use plain blocking sockets and nats-py on asyncio without monkey-patching.
"""
from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import gevent
import pytest

from gnatsd import Options, Server
from gnatsd.opts import process_config_file

# Go test/test.go regexes, as bytes.
INFO_RE = re.compile(rb"INFO\s+(\{.*?\})\s*\r\n")
PONG_RE = re.compile(rb"PONG\r\n")
OK_RE = re.compile(rb"\+OK\r\n")
ERR_RE = re.compile(rb"-ERR\s+'(.*?)'\r\n")
MSG_RE = re.compile(rb"(?:MSG\s+(\S+)\s+(\S+)\s+((?:\S+\s+)?)(\d+)\s*\r\n)")


@pytest.fixture
def make_server():
    """Factory: make_server(**option overrides) -> a running Server; all stopped at teardown."""
    started = []

    def make(**overrides):
        opts = Options(host="127.0.0.1", port=-1)
        for key, value in overrides.items():
            if not hasattr(opts, key):
                raise AttributeError(f"Options has no {key!r}")
            setattr(opts, key, value)
        server = Server(opts).start_in_thread()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop_thread()


@pytest.fixture
def server(make_server):
    """A gnatsd server with default options on a random port."""
    return make_server()


class RawConn:
    """A blocking raw-protocol connection (Go test/test.go: setupConn, sendProto, expect)."""

    def __init__(self, port, host="127.0.0.1", timeout=5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.timeout = timeout

    def close(self):
        self.sock.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def _fill(self, deadline):
        self.sock.settimeout(max(deadline - time.monotonic(), 0.001))
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; buffered: {self.buf[:200]!r}")
        self.buf += chunk

    def expect(self, regex, timeout=None):
        """Wait for `regex` (bytes pattern or compiled) and consume up to its end; return the match."""
        if isinstance(regex, (bytes, str)):
            regex = re.compile(regex.encode() if isinstance(regex, str) else regex)
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            m = regex.search(self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return m
            if time.monotonic() >= deadline:
                raise AssertionError(f"expected {regex.pattern!r}, got {self.buf[:300]!r}")
            try:
                self._fill(deadline)
            except socket.timeout:
                pass

    def read_exact(self, n, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while len(self.buf) < n:
            self._fill(deadline)
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def read_all_until_closed(self, timeout=None):
        """Everything until the server closes the connection (raises if it does not)."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            try:
                self._fill(deadline)
            except EOFError:
                data, self.buf = self.buf, b""
                return data
            except ConnectionResetError:
                data, self.buf = self.buf, b""
                return data
            except socket.timeout:
                raise AssertionError(f"server did not close; got {self.buf[:300]!r}")

    def info(self):
        return json.loads(self.expect(INFO_RE).group(1))

    def ping_pong(self):
        """Synchronise: everything sent before is processed once PONG arrives."""
        self.send(b"PING\r\n")
        self.expect(PONG_RE)


@pytest.fixture
def raw_conn():
    """Factory: raw_conn(server, connect=True, **connect_fields) -> RawConn after INFO.

    With connect=True it sends CONNECT (verbose off unless given) and syncs with PING/PONG.
    """
    conns = []

    def make(server, connect=True, **fields):
        c = RawConn(server.port)
        conns.append(c)
        c.info_json = c.info()
        if connect:
            opts = {"verbose": False, "pedantic": False}
            opts.update(fields)
            c.send(b"CONNECT " + json.dumps(opts).encode() + b"\r\n")
            c.ping_pong()
        return c

    yield make
    for c in conns:
        c.close()


def on_hub(server, fn, *args, spawn=False):
    """Run fn(*args) on the server's hub and return its result (or raise its exception):
    as a hub callback (for code that must not yield, such as the monitor's data functions),
    or with spawn=True in a greenlet of its own (for code that may yield)."""
    done = threading.Event()
    box = []

    def run():
        try:
            box.append((True, fn(*args)))
        except BaseException as e:  # handed back to the test
            box.append((False, e))
        done.set()

    if spawn:
        server.call_threadsafe(gevent.spawn, run)
    else:
        server.call_threadsafe(run)
    assert done.wait(10)
    ok, value = box[0]
    if not ok:
        raise value
    return value


def load_conf(tmp_path, text, name="test.conf"):
    """Options from a config file with `text`."""
    path = tmp_path / name
    path.write_text(text)
    o = Options()
    process_config_file(o, str(path))
    return o


def client_subs(server):
    """Subscriptions of client connections: the server's own (the system account's requests,
    service imports) aside. Reads counters only, so any thread may call it."""
    internal = [server.sys.client] if server.sys is not None else []
    internal += [a.ic for a in server.accounts.values() if a.ic is not None]
    return server.num_subscriptions() - sum(len(c.subs) for c in internal)


def internal_subs(server):
    return server.num_subscriptions() - client_subs(server)


async def flushed(nc, timeout=10):
    """A nats-py round trip that covers everything `nc` sent before: once it returns, the
    server has processed them all (and sent what they produced to its clients).

    nats-py's flush() is not enough: it writes its PING straight to the socket, ahead of the
    commands still in its pending buffer (a SUB, PUBs) that its flusher task writes a moment
    later, so the PONG can come back before the server has read them. By the time that first
    flush() returns, the flusher has run (it was woken before the PING went out, and the PONG
    needs a later turn of the loop); the second PING follows those commands on the wire.
    """
    await nc.flush(timeout)
    await nc.flush(timeout)


async def until(fn, total=10.0, sleep=0.01):
    """check_for for asyncio tests: poll `fn` without blocking the event loop."""
    deadline = time.monotonic() + total
    while not fn():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {total}s")
        await asyncio.sleep(sleep)


def check_for(total, fn, sleep=0.02):
    """Go server_test.go checkFor: poll `fn` until it returns truthy or `total` seconds pass."""
    deadline = time.monotonic() + total
    while True:
        result = fn()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {total}s")
        time.sleep(sleep)
