"""WebSocket clients (gnatsd/websocket.py): the upgrade and its refusals, frames in both
directions, control frames and the close handshake, permessage-deflate, TLS (wss), auth and
limits, monitoring, and nats-py over its WebSocket transport. Go: server/websocket_test.go.

What each refusal looks like (status line, close status, whether a close frame is sent at
all) was taken from nats-server 2.9.10 with the same requests.
"""
from __future__ import annotations

import asyncio
import functools
import json
import os
import socket
import struct
import time
import zlib

import pytest

import nats
from nats.errors import NoRespondersError

from gnatsd import Options, Server
from gnatsd.errors import ClosedState
from gnatsd.monitor.monitor import connz, varz
from gnatsd.opts import ProcessConfigErr, WebsocketOpts, process_config_file
from gnatsd.server import ConfigError
from gnatsd.websocket import (
    WS_CLOSE_MESSAGE,
    WS_PING_MESSAGE,
    WS_PONG_MESSAGE,
    WsReadInfo,
    parse_request,
    ws_accept_key,
    ws_create_close_message,
    ws_create_frame_header,
    ws_unmask,
)

from conftest import check_for, flushed
from test_tls import certs  # noqa: F401 (the session's certificates, a fixture)

aiohttp = pytest.importorskip("aiohttp")

KEY = "dGhlIHNhbXBsZSBub25jZQ=="  # RFC 6455's example
CONNECT = b'CONNECT {"verbose":false,"pedantic":false,"headers":true,"protocol":1}\r\n'
COMPRESS_HEADER = "Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; server_no_context_takeover"


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def frame(op, payload, fin=True, mask=True, rsv1=False, key=b"\x12\x34\x56\x78", length=None):
    """A client frame (masked unless told otherwise)."""
    b0 = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | op
    n = len(payload) if length is None else length
    mbit = 0x80 if mask else 0
    if n < 126:
        h = bytes((b0, mbit | n))
    elif n < 65536:
        h = bytes((b0, mbit | 126)) + struct.pack(">H", n)
    else:
        h = bytes((b0, mbit | 127)) + struct.pack(">Q", n)
    if mask:
        return h + key + ws_unmask(key, payload)
    return h + payload


def deflate(data):
    c = zlib.compressobj(6, zlib.DEFLATED, -15)
    return (c.compress(data) + c.flush(zlib.Z_SYNC_FLUSH))[:-4]


class WsConn:
    """A raw WebSocket client: the upgrade, then frames (Go test: testWSCreateClient)."""

    def __init__(self, port, headers=(), ctx=None, timeout=5.0, request=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        if ctx is not None:
            sock = ctx.wrap_socket(sock, server_hostname="localhost")
        self.sock = sock
        self.buf = b""
        self.timeout = timeout
        if request is None:
            request = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n"
                       + "".join(h + "\r\n" for h in headers) + "\r\n").encode()
        sock.sendall(request)

    def response(self):
        """The upgrade's answer: (status line, {lower-case name: value})."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers[k.strip().lower()] = v.strip()
        return lines[0], headers

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; buffered: {self.buf[:200]!r}")
        self.buf += chunk

    def send(self, data):
        self.sock.sendall(data)

    def send_msg(self, payload, **kw):
        self.sock.sendall(frame(2, payload, **kw))

    def read_frame(self):
        """(opcode, fin, rsv1, payload) of the next server frame; server frames are never masked."""
        while True:
            if len(self.buf) >= 2:
                b0, b1 = self.buf[0], self.buf[1]
                assert not b1 & 0x80, "server frames must not be masked"
                n, p = b1 & 0x7F, 2
                if n == 126:
                    n, p = (struct.unpack(">H", self.buf[2:4])[0] if len(self.buf) >= 4 else -1), 4
                elif n == 127:
                    n, p = (struct.unpack(">Q", self.buf[2:10])[0] if len(self.buf) >= 10 else -1), 10
                if n >= 0 and len(self.buf) >= p + n:
                    payload, self.buf = self.buf[p:p + n], self.buf[p + n:]
                    return b0 & 0x0F, bool(b0 & 0x80), bool(b0 & 0x40), payload
            self._fill()

    def read_msg(self):
        """The next data message's payload, inflated, answering nothing (control frames fail)."""
        op, fin, rsv1, payload = self.read_frame()
        assert op == 2, (op, payload)
        parts = [payload]
        while not fin:
            op, fin, _, more = self.read_frame()
            assert op == 0
            parts.append(more)
        data = b"".join(parts)
        if rsv1:
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        return data

    def expect(self, want):
        """Read messages until `want` has appeared in their concatenation; return it all."""
        got = b""
        while want not in got:
            got += self.read_msg()
        return got

    def connect(self):
        self.response()
        info = self.read_msg()
        assert info.startswith(b"INFO ")
        self.send_msg(CONNECT + b"PING\r\n")
        assert self.expect(b"PONG\r\n").endswith(b"PONG\r\n")
        return json.loads(info[5:].strip())

    def closed_without_frame(self):
        """True when the server closes the TCP connection without a close frame."""
        while True:
            try:
                op, _, _, payload = self.read_frame()
            except (EOFError, ConnectionResetError):
                return True
            if op == WS_CLOSE_MESSAGE:
                return False

    def close_frame(self):
        """(status, reason) of the server's close frame, skipping data before it; then EOF."""
        while True:
            op, _, _, payload = self.read_frame()
            if op == WS_CLOSE_MESSAGE:
                break
        status = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else None
        with pytest.raises((EOFError, ConnectionResetError)):
            self.read_frame()
        return status, payload[2:].decode()

    def close(self):
        self.sock.close()


@pytest.fixture
def ws_server(make_server):
    """Factory: a server with a plain (no_tls) WebSocket listener; keyword arguments go to
    WebsocketOpts, except `opts`, a dict of other Options fields."""

    def make(opts=None, **ws):
        ws.setdefault("port", -1)
        ws.setdefault("no_tls", True)
        return make_server(websocket=WebsocketOpts(host="127.0.0.1", **ws), **(opts or {}))

    return make


@pytest.fixture
def ws_conn():
    conns = []

    def make(server, **kw):
        c = WsConn(server.websocket.addr[1], **kw)
        conns.append(c)
        return c

    yield make
    for c in conns:
        c.close()


def closed_reasons(server):
    return [c.reason for c in server.closed_clients.closed_clients()]


# -- frames without a server ----------------------------------------------------------------------


def test_accept_key_is_rfc_6455s_example():
    assert ws_accept_key(KEY) == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_frame_headers_use_the_three_length_encodings():
    assert ws_create_frame_header(False, 2, 125) == b"\x82\x7d"
    assert ws_create_frame_header(True, 2, 126) == b"\xc2\x7e\x00\x7e"
    assert ws_create_frame_header(False, 2, 65536) == b"\x82\x7f" + (65536).to_bytes(8, "big")
    assert ws_create_frame_header(False, 2, 10, first=False, final=False) == b"\x00\x0a"


def test_close_message_is_cut_to_a_control_frame():
    assert ws_create_close_message(1000, "bye") == b"\x03\xe8bye"
    long = ws_create_close_message(1002, "x" * 200)
    assert len(long) == 125 and long.endswith(b"...")


@pytest.mark.parametrize("size", [0, 3, 16, 255, 256, 1000, 8192, 8193, 70000])
def test_unmask_matches_a_byte_loop(size):
    data = os.urandom(size)
    key = b"\x01\x80\xfe\x7f"
    assert ws_unmask(key, data) == bytes(b ^ key[i & 3] for i, b in enumerate(data))


def _decode_split(stream, sizes, mask=True):
    """Feed `stream` to a WsReadInfo in pieces of the given sizes; (payload, controls)."""
    controls = []
    r = WsReadInfo(lambda op, p: controls.append((op, p)), mask)
    out = []
    pos = 0
    for n in sizes:
        out.extend(r.read(stream[pos:pos + n]))
        pos += n
        assert r.err is None, r.err
    out.extend(r.read(stream[pos:]))
    return b"".join(out), controls


STREAM = (frame(2, b"PUB foo 5\r\nhel", fin=False) + frame(WS_PING_MESSAGE, b"p1")
          + frame(0, b"lo\r\n" + b"x" * 300, fin=False, key=b"\xaa\xbb\xcc\xdd")
          + frame(WS_PONG_MESSAGE, b"") + frame(0, b"", fin=True)
          + frame(2, b"y" * 70000) + frame(2, deflate(b"compressed " * 50), rsv1=True)
          + frame(2, deflate(b"in two frames " * 40)[:7], rsv1=True, fin=False)
          + frame(0, deflate(b"in two frames " * 40)[7:]) + frame(2, b"END"))
PLAIN = (b"PUB foo 5\r\nhello\r\n" + b"x" * 300 + b"y" * 70000 + b"compressed " * 50 + b"in two frames " * 40
         + b"END")


def test_decoder_whole_and_split_at_every_byte():
    whole = _decode_split(STREAM, [])
    assert whole == (PLAIN, [(WS_PING_MESSAGE, b"p1"), (WS_PONG_MESSAGE, b"")])
    head = len(STREAM) - 70100
    # every split point of the frames around the big one (each byte on its own)
    assert _decode_split(STREAM, [1] * head) == whole
    assert _decode_split(STREAM, [1] * 2000 + [7] * 5000) == whole


def test_decoder_stops_at_a_close_frame_and_reports_protocol_errors():
    closes = []
    r = WsReadInfo(lambda op, p: closes.append((op, p)))
    assert r.read(frame(2, b"a") + frame(WS_CLOSE_MESSAGE, b"\x03\xe8") + frame(2, b"ignored")) == [b"a"]
    assert r.closed and closes == [(WS_CLOSE_MESSAGE, b"\x03\xe8")]
    for stream, err in [
        (frame(2, b"x", mask=False), "mask bit missing"),
        (frame(WS_PING_MESSAGE, b"x" * 126), "control frame length bigger than maximum allowed of 125 bytes"),
        (frame(WS_PING_MESSAGE, b"x", fin=False), "control frame does not have final bit set"),
        (frame(3, b"x"), "unknown opcode 3"),
        (frame(0, b"x"), "invalid continuation frame"),
        (frame(2, b"x", fin=False) + frame(0, b"x", rsv1=True), "invalid continuation frame"),
        (frame(2, b"x", fin=False) + frame(2, b"y"), "new message started before final frame for previous "
                                                      "message was received"),
    ]:
        r = WsReadInfo(lambda op, p: None)
        r.read(stream)
        assert r.err == err


def test_http_request_parsing():
    req = parse_request(b"GET /x HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nx-a:  2 ")
    assert (req.method, req.uri, req.proto, req.headers["x-a"]) == ("GET", "/x", "HTTP/1.1", ["1", "2"])


# -- the upgrade ----------------------------------------------------------------------------------

GOOD = ("GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n")


@pytest.mark.parametrize("request_text, status, logged", [
    (GOOD.replace("GET", "POST") + "\r\n", "HTTP/1.1 405 Method Not Allowed", "request method must be GET"),
    (GOOD.replace("HTTP/1.1", "HTTP/1.0").replace("Host: 127.0.0.1\r\n", "") + "\r\n", "HTTP/1.0 400 Bad Request",
     "'Host' missing in request"),
    (GOOD.replace("Upgrade: websocket\r\n", "") + "\r\n", "HTTP/1.1 400 Bad Request",
     "invalid value for header 'Upgrade'"),
    (GOOD.replace("Connection: Upgrade\r\n", "Connection: keep-alive\r\n") + "\r\n", "HTTP/1.1 400 Bad Request",
     "invalid value for header 'Connection'"),
    (GOOD.replace(f"Sec-WebSocket-Key: {KEY}\r\n", "") + "\r\n", "HTTP/1.1 400 Bad Request", "key missing"),
    (GOOD.replace("Version: 13", "Version: 12") + "\r\n", "HTTP/1.1 400 Bad Request", "invalid version"),
])
def test_refused_upgrades_get_gos_status_and_the_connection_stays(ws_server, ws_conn, request_text, status, logged,
                                                                    caplog):
    server = ws_server()
    c = ws_conn(server, request=request_text.encode())
    line, headers = c.response()
    assert line == status
    assert headers["sec-websocket-version"] == "13" and headers["content-type"] == "text/plain; charset=utf-8"
    assert c.buf == (status.split(" ", 2)[2] + "\n").encode()[:len(c.buf)]
    check_for(2, lambda: any(logged in r.getMessage() for r in caplog.records))
    if status.startswith("HTTP/1.1"):
        # net/http keeps the connection: the next request on it may upgrade
        c.buf = b""
        c.send(GOOD.encode() + b"\r\n")
        while b"HTTP/1.1 101" not in c.buf:
            c._fill()


@pytest.mark.parametrize("request_bytes, status", [
    (b"HELLO\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (GOOD.replace("Host: 127.0.0.1\r\n", "").encode() + b"\r\n", "HTTP/1.1 400 Bad Request: missing required Host header"),
    (GOOD.replace("HTTP/1.1", "HTTP/2.0").encode() + b"\r\n",
     "HTTP/1.1 505 HTTP Version Not Supported: unsupported protocol version"),
    (GOOD.encode() + b"NoColon\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (GOOD.encode() + b"Host: two\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    (GOOD.encode() + b"X-Big: " + b"a" * ((1 << 20) + 5000) + b"\r\n\r\n", "HTTP/1.1 431 Request Header Fields Too Large"),
])
def test_bad_http_is_refused_and_closed(ws_server, ws_conn, request_bytes, status):
    server = ws_server()
    c = ws_conn(server, request=request_bytes)
    line, headers = c.response()
    assert line == status and headers["connection"] == "close"
    with pytest.raises((EOFError, ConnectionResetError)):
        while True:
            c._fill()


def test_data_sent_before_the_upgrade_answer_closes_silently(ws_server, ws_conn):
    server = ws_server()
    c = ws_conn(server, request=GOOD.encode() + b"\r\n" + frame(2, CONNECT))
    with pytest.raises((EOFError, ConnectionResetError)):
        c._fill()
    assert c.buf == b""


def test_upgrade_answer_info_and_lf_only_requests(ws_server, ws_conn):
    server = ws_server()
    c = ws_conn(server)
    line, headers = c.response()
    assert line == "HTTP/1.1 101 Switching Protocols"
    assert headers == {"upgrade": "websocket", "connection": "Upgrade",
                       "sec-websocket-accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="}
    op, fin, rsv1, info = c.read_frame()
    assert (op, fin, rsv1) == (2, True, False) and info.startswith(b"INFO {") and info.endswith(b"} \r\n")
    c2 = ws_conn(server, request=(GOOD.replace("\r\n", "\n") + "\n").encode())
    assert c2.response()[0] == "HTTP/1.1 101 Switching Protocols"


@pytest.mark.parametrize("ws_opts, origin, ok", [
    ({"allowed_origins": ["http://good.com"]}, "http://good.com", True),
    ({"allowed_origins": ["http://good.com"]}, "http://good.com:80", True),
    ({"allowed_origins": ["http://good.com"]}, "https://good.com", False),
    ({"allowed_origins": ["http://good.com"]}, "http://evil.com", False),
    ({"allowed_origins": ["http://good.com"]}, None, True),  # no Origin: not a browser
    ({"same_origin": True}, "http://127.0.0.1", True),
    ({"same_origin": True}, "http://127.0.0.1:8080", False),
    ({"same_origin": True}, "http://localhost", False),
    ({}, "http://anything.example", True),
])
def test_origin_checks(ws_server, ws_conn, caplog, ws_opts, origin, ok):
    server = ws_server(**ws_opts)
    c = ws_conn(server, headers=[f"Origin: {origin}"] if origin else [])
    line, _ = c.response()
    if ok:
        assert line == "HTTP/1.1 101 Switching Protocols"
    else:
        assert line == "HTTP/1.1 403 Forbidden"
        want = "not same origin" if "same_origin" in ws_opts else "not in the allowed list"
        check_for(2, lambda: any(f"websocket handshake error: origin not allowed: {want}" in r.getMessage()
                                 for r in caplog.records))


def test_handshake_timeout_closes_a_silent_connection(ws_server, ws_conn):
    server = ws_server(handshake_timeout=0.2)
    c = ws_conn(server, request=b"GET / HTTP/1.1\r\n")
    t = time.monotonic()
    with pytest.raises((EOFError, ConnectionResetError)):
        c._fill()
    assert time.monotonic() - t < 3


# -- frames from clients ----------------------------------------------------------------------------


def test_pub_sub_over_raw_frames_split_at_every_byte(ws_server, ws_conn):
    server = ws_server()
    sub = ws_conn(server)
    sub.connect()
    sub.send_msg(b"SUB foo 1\r\nPING\r\n")
    sub.expect(b"PONG\r\n")
    pub = ws_conn(server)
    pub.connect()
    stream = frame(2, b"PUB foo 5\r\nhel", fin=False) + frame(WS_PING_MESSAGE, b"hi") + frame(0, b"lo\r\nPING\r\n")
    for i in range(len(stream)):
        pub.send(stream[i:i + 1])
    assert pub.read_frame() == (WS_PONG_MESSAGE, True, False, b"hi")
    assert pub.expect(b"PONG\r\n") == b"PONG\r\n"
    assert sub.expect(b"hello\r\n") == b"MSG foo 1 5\r\nhello\r\n"


def test_text_frames_carry_the_protocol_too(ws_server, ws_conn):
    server = ws_server()
    c = ws_conn(server)
    c.response()
    c.read_msg()
    c.send(frame(1, CONNECT + b"PING\r\n"))
    assert c.expect(b"PONG\r\n") == b"PONG\r\n"


@pytest.mark.parametrize("bad, logged", [
    (frame(2, CONNECT, mask=False), "mask bit missing"),
    (frame(WS_PING_MESSAGE, b"x" * 126), "control frame length bigger than maximum allowed of 125 bytes"),
    (frame(WS_PING_MESSAGE, b"x", fin=False), "control frame does not have final bit set"),
    (frame(5, b"x"), "unknown opcode 5"),
    (frame(0, CONNECT), "invalid continuation frame"),
    (frame(2, b"PI", fin=False) + frame(2, b"NG\r\n"), "new message started before final frame"),
    (frame(2, b"not deflate data", rsv1=True), "flate: "),
])
def test_bad_frames_close_without_a_close_frame(ws_server, ws_conn, caplog, bad, logged):
    # Go: the read error closes the connection as "Read Error", which drops the close frame
    server = ws_server()
    c = ws_conn(server)
    c.connect()
    c.send(bad)
    assert c.closed_without_frame()
    check_for(2, lambda: closed_reasons(server) == [str(ClosedState.ReadError)])
    assert any(f"read error: {logged}" in r.getMessage() for r in caplog.records)


def test_oversized_payload_gets_err_and_close_1009(ws_server, ws_conn):
    server = ws_server(opts={"max_payload": 1024})
    c = ws_conn(server)
    c.connect()
    c.send_msg(b"PUB foo 2000\r\n" + b"x" * 2002)
    assert c.expect(b"-ERR 'Maximum Payload Violation'\r\n")
    assert c.close_frame() == (1009, "Maximum Message Payload Exceeded")


def test_a_frame_longer_than_anything_is_read_as_it_comes(ws_server, ws_conn, raw_conn):
    # Go reads such a frame's payload as it arrives; it holds nothing and does not crash
    server = ws_server()
    c = ws_conn(server)
    c.connect()
    c.send(frame(2, b"", length=2 ** 63 + 5)[:14] + ws_unmask(b"\x12\x34\x56\x78", b"PING\r\n"))
    assert c.expect(b"PONG\r\n") == b"PONG\r\n"
    c.close()
    raw_conn(server)  # still serving


def test_big_and_fragmented_messages(ws_server, ws_conn):
    server = ws_server()
    c = ws_conn(server)
    c.connect()
    payload = os.urandom(300000)
    c.send_msg(b"SUB big 1\r\nPUB big 300000\r\n" + payload[:100000], fin=False)
    c.send(frame(0, payload[100000:] + b"\r\nPING\r\n"))
    got = c.expect(b"PONG\r\n")
    assert got == b"MSG big 1 300000\r\n" + payload + b"\r\nPONG\r\n"


def test_ping_frames_get_pongs_with_their_payload(ws_server, ws_conn):
    server = ws_server()
    c = ws_conn(server)
    c.connect()
    c.send(frame(WS_PING_MESSAGE, b"abc") + frame(WS_PONG_MESSAGE, b"ignored") + frame(WS_PING_MESSAGE, b""))
    assert c.read_frame() == (WS_PONG_MESSAGE, True, False, b"abc")
    assert c.read_frame() == (WS_PONG_MESSAGE, True, False, b"")


# -- the close handshake ------------------------------------------------------------------------


@pytest.mark.parametrize("payload, echoed", [
    (b"\x03\xe8bye", (1000, "bye")),
    (b"", (1005, "")),
    (b"\x03", (1005, "")),
    (b"\x0b\xb8\xff\xfe", (1007, "invalid utf8 body in close frame")),
])
def test_client_close_is_echoed_then_closed(ws_server, ws_conn, payload, echoed):
    server = ws_server()
    c = ws_conn(server)
    c.connect()
    c.send(frame(2, b"SUB x 1\r\nPUB x 2\r\nhi\r\n") + frame(WS_CLOSE_MESSAGE, payload) + frame(2, b"PUB x 1\r\n"))
    assert c.expect(b"hi\r\n") == b"MSG x 1 2\r\nhi\r\n"  # what came before the close is processed
    assert c.close_frame() == echoed
    check_for(2, lambda: closed_reasons(server) == [str(ClosedState.ClientClosed)])


@pytest.mark.parametrize("action, status, reason", [
    ("shutdown", 1001, "Server Shutdown"),
    ("bad_op", 1002, "Protocol Violation"),
    ("auth", 1008, "Authentication Failure"),
    ("stale", 1006, "Stale Connection"),
])
def test_server_closes_send_the_reasons_status(ws_server, ws_conn, action, status, reason):
    opts = {}
    if action == "auth":
        opts = {"authorization": "secret"}
    if action == "stale":
        opts = {"ping_interval": 0.05, "ping_max": 1}
    server = ws_server(opts=opts)
    c = ws_conn(server)
    c.response()
    c.read_msg()
    if action == "shutdown":
        c.send_msg(CONNECT + b"PING\r\n")
        c.expect(b"PONG\r\n")
        server.stop_thread()
    elif action == "bad_op":
        c.send_msg(CONNECT + b"FOO\r\n")
        assert c.expect(b"-ERR 'Unknown Protocol Operation'\r\n")
    elif action == "auth":
        c.send_msg(b'CONNECT {"verbose":false,"auth_token":"wrong"}\r\n')
        assert c.expect(b"-ERR 'Authorization Violation'\r\n")
    assert c.close_frame() == (status, reason)


def test_slow_consumer_gets_no_close_frame(ws_server, ws_conn):
    server = ws_server(opts={"max_pending": 64 * 1024, "max_payload": 16384})
    c = ws_conn(server)
    c.connect()
    c.send_msg(b"SUB s 1\r\nPING\r\n")
    c.expect(b"PONG\r\n")
    pub = ws_conn(server)
    pub.connect()
    batch = frame(2, b"".join(b"PUB s 16384\r\n" + b"x" * 16384 + b"\r\n" for _ in range(8)))
    for _ in range(2000):  # until the socket buffers are full and the backlog passes max_pending
        pub.send(batch)
        if closed_reasons(server):
            break
    check_for(5, lambda: closed_reasons(server) == [str(ClosedState.SlowConsumerPendingBytes)])
    assert c.closed_without_frame()


# -- compression ----------------------------------------------------------------------------------


def test_compression_is_negotiated_only_when_on_and_asked(ws_server, ws_conn):
    on = ws_server(compression=True)
    _, headers = ws_conn(on, headers=[COMPRESS_HEADER]).response()
    assert headers["sec-websocket-extensions"] == ("permessage-deflate; server_no_context_takeover; "
                                                   "client_no_context_takeover")
    assert "sec-websocket-extensions" not in ws_conn(on).response()[1]
    off = ws_server()
    assert "sec-websocket-extensions" not in ws_conn(off, headers=[COMPRESS_HEADER]).response()[1]


def test_compressed_frames_both_ways(ws_server, ws_conn):
    server = ws_server(compression=True)
    c = ws_conn(server, headers=[COMPRESS_HEADER])
    c.response()
    op, fin, rsv1, info = c.read_frame()
    assert rsv1  # the INFO is over 64 bytes: compressed
    c.send(frame(2, deflate(CONNECT + b"SUB z 1\r\nPING\r\n"), rsv1=True))
    op, fin, rsv1, pong = c.read_frame()
    assert (rsv1, pong) == (False, b"PONG\r\n")  # small: sent as it is
    body = b"abc" * 1000
    c.send(frame(2, deflate(b"PUB z 3000\r\n" + body + b"\r\n"), rsv1=True))
    op, fin, rsv1, data = c.read_frame()
    assert rsv1 and len(data) < 200
    assert zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff") == b"MSG z 1 3000\r\n" + body + b"\r\n"


def test_browsers_get_frames_of_at_most_4k(ws_server, ws_conn):
    server = ws_server(compression=True)
    for headers, compressed in (([], False), ([COMPRESS_HEADER], True)):
        c = ws_conn(server, headers=["User-Agent: Mozilla/5.0 (X11) Chrome/120"] + headers)
        c.connect()
        body = os.urandom(10000)  # does not compress: several frames either way
        c.send_msg(b"SUB b 1\r\nPUB b 10000\r\n" + body + b"\r\n")
        op, fin, rsv1, first = c.read_frame()
        assert (op, fin, rsv1, len(first)) == (2, False, compressed, 4096)
        parts = [first]
        while not fin:
            op, fin, rsv1, more = c.read_frame()
            assert op == 0 and not rsv1 and len(more) <= 4096
            parts.append(more)
        data = b"".join(parts)
        if compressed:
            data = zlib.decompressobj(-15).decompress(data + b"\x00\x00\xff\xff")
        assert data == b"MSG b 1 10000\r\n" + body + b"\r\n"


# -- limits, auth, monitoring ---------------------------------------------------------------------


def test_max_connections_counts_websocket_clients(ws_server, ws_conn, raw_conn):
    server = ws_server(opts={"max_connections": 1})
    raw_conn(server)
    c = ws_conn(server)
    c.response()
    assert c.read_msg().startswith(b"INFO ")
    assert c.expect(b"-ERR 'maximum connections exceeded'\r\n")
    assert c.close_frame() == (1008, "Maximum Connections Exceeded")


def test_websocket_auth_overrides_the_servers(ws_server, ws_conn, raw_conn):
    server = ws_server(opts={"authorization": "tcp-token"}, username="wsuser", password="wspass")
    c = ws_conn(server)
    c.response()
    info = json.loads(c.read_msg()[5:])
    assert info["auth_required"] is True
    c.send_msg(b'CONNECT {"verbose":false,"auth_token":"tcp-token"}\r\n')
    assert c.close_frame() == (1008, "Authentication Failure")
    ok = ws_conn(server)
    ok.response()
    ok.read_msg()
    ok.send_msg(b'CONNECT {"verbose":false,"user":"wsuser","pass":"wspass"}\r\nPING\r\n')
    assert ok.expect(b"PONG\r\n")
    raw_conn(server, auth_token="tcp-token")  # TCP clients keep the server's token


def test_websocket_override_without_server_auth_requires_it(ws_server, ws_conn, raw_conn):
    server = ws_server(token="wstok", auth_timeout=0.3)
    raw_conn(server)  # no auth on the TCP port
    c = ws_conn(server)
    c.response()
    assert json.loads(c.read_msg()[5:])["auth_required"] is True
    assert c.close_frame() == (1008, "Authentication Timeout")  # the block's own timeout
    ok = ws_conn(server)
    ok.response()
    ok.read_msg()
    ok.send_msg(b'CONNECT {"verbose":false,"auth_token":"wstok"}\r\nPING\r\n')
    assert ok.expect(b"PONG\r\n")


def test_users_allowed_connection_types(make_server, ws_conn):
    from gnatsd.auth import User
    users = [User("std", "pw", allowed_connection_types=frozenset({"STANDARD"})),
             User("web", "pw", allowed_connection_types=frozenset({"WEBSOCKET"})),
             User("anon", "")]
    server = make_server(users=users, no_auth_user="anon",
                         websocket=WebsocketOpts(host="127.0.0.1", port=-1, no_tls=True))
    for user, ok in (("std", False), ("web", True)):
        c = ws_conn(server)
        c.response()
        c.read_msg()
        c.send_msg(b'CONNECT {"verbose":false,"user":"%s","pass":"pw"}\r\nPING\r\n' % user.encode())
        if ok:
            assert c.expect(b"PONG\r\n")
        else:
            assert c.close_frame() == (1008, "Authentication Failure")
    c = ws_conn(server)  # no credentials: the server's no_auth_user
    c.response()
    assert json.loads(c.read_msg()[5:])["auth_required"] is True  # Go keeps it for WebSocket clients
    c.send_msg(CONNECT + b"PING\r\n")
    assert c.expect(b"PONG\r\n")


def test_monitoring_shows_websocket_clients(ws_server, ws_conn):
    server = ws_server(compression=True, handshake_timeout=2.0, allowed_origins=["http://a.com"],
                       username="u", password="p", auth_timeout=3.0)
    c = ws_conn(server, headers=["X-Forwarded-For: 10.0.0.9"])
    c.response()
    c.read_msg()
    c.send_msg(b'CONNECT {"verbose":false,"user":"u","pass":"p","name":"browser"}\r\nSUB a 1\r\nPING\r\n')
    c.expect(b"PONG\r\n")
    v = varz(server)["websocket"]
    assert v == {"host": "127.0.0.1", "port": server.websocket.addr[1], "handshake_timeout": 2000000000,
                 "auth_timeout": 3.0, "no_tls": True, "allowed_origins": ["http://a.com"], "compression": True}
    (ci,) = connz(server)["connections"]
    assert (ci["type"], ci["kind"], ci["name"], ci["subscriptions"]) == ("websocket", "Client", "browser", 1)
    assert repr(server.clients[ci["cid"]]).startswith("10.0.0.9/127.0.0.1:")
    c.send(frame(WS_CLOSE_MESSAGE, b"\x03\xe8"))
    c.close_frame()
    check_for(2, lambda: connz(server, _closed())["connections"])
    (cc,) = connz(server, _closed())["connections"]
    assert (cc["type"], cc["reason"]) == ("websocket", "Client Closed")


def _closed():
    from gnatsd.monitor.monitor import CONN_CLOSED, ConnzOptions
    return ConnzOptions(state=CONN_CLOSED)


def test_varz_websocket_block_is_empty_without_websocket(server):
    assert varz(server)["websocket"] == {}


# -- TLS (wss) ------------------------------------------------------------------------------------


def test_wss_with_raw_frames_and_a_plain_client_refused(make_server, certs, caplog):  # noqa: F811
    tls_opts = Options(tls=True, tls_cert=certs.server[0], tls_key=certs.server[1])
    server = make_server(websocket=WebsocketOpts(host="127.0.0.1", port=-1, tls=tls_opts))
    c = WsConn(server.websocket.addr[1], ctx=certs.client_ctx())
    try:
        c.connect()
        c.send_msg(b"SUB t 1\r\nPUB t 2\r\nok\r\n")
        assert c.expect(b"ok\r\n") == b"MSG t 1 2\r\nok\r\n"
    finally:
        c.close()
    plain = WsConn(server.websocket.addr[1])
    with pytest.raises((EOFError, ConnectionResetError, AssertionError)):
        plain.response()
    plain.close()
    check_for(2, lambda: any("websocket: http: TLS handshake error from" in r.getMessage() for r in caplog.records))


# -- config ---------------------------------------------------------------------------------------


def _conf(tmp_path, text):
    path = tmp_path / "ws.conf"
    path.write_text(text)
    o = Options()
    process_config_file(o, str(path))
    return o


def test_config_block(tmp_path, certs):  # noqa: F811
    o = _conf(tmp_path, f"""
ws {{
  listen: "127.0.0.1:8443"
  advertise: "ws.example.com:443"
  tls {{ cert_file: "{certs.server[0]}", key_file: "{certs.server[1]}" }}
  compress: true
  same_origin: true
  origins: "https://a.com"
  handshake_timeout: "3s"
  authorization {{ user: u, password: p, timeout: 2.5 }}
  no_auth_user: ""
}}""")
    wo = o.websocket
    assert (wo.host, wo.port, wo.advertise, wo.compression, wo.same_origin, wo.allowed_origins) == (
        "127.0.0.1", 8443, "ws.example.com:443", True, True, ["https://a.com"])
    assert (wo.handshake_timeout, wo.username, wo.password, wo.auth_timeout) == (3.0, "u", "p", 2.5)
    assert wo.tls.tls_cert == certs.server[0] and not wo.no_tls
    assert _conf(tmp_path, "websocket { port: 1, handshake_timeout: 4 }").websocket.handshake_timeout == 4.0


@pytest.mark.parametrize("text, message", [
    ("websocket { port: 8080, nope: 1 }", 'unknown field "nope"'),
    ("websocket { port: \"x\" }", 'port: expected an integer, got string "x"'),
    ("websocket { port: 1, handshake_timeout: \"soon\" }", 'time: invalid duration "soon"'),
    ("websocket { port: 1, tls { cert_file: /nonexistent.pem, key_file: /nonexistent.pem } }",
     "error parsing X509 certificate/key pair: open /nonexistent.pem: no such file or directory"),
    ("websocket: 1", "Expected websocket to be a map, got integer 1"),
])
def test_config_errors(tmp_path, text, message):
    with pytest.raises(ProcessConfigErr) as ei:
        _conf(tmp_path, text)
    assert [e.reason for e in ei.value.errors] == [message]


@pytest.mark.parametrize("ws, extra, message", [
    ({"port": 8080}, {}, "websocket requires TLS configuration"),
    ({"port": 8080, "no_tls": True, "no_auth_user": "bob"}, {},
     'no_auth_user: "bob" present, but users are not defined'),
    ({"port": 8080, "no_tls": True, "username": "x"}, {"users": "USERS"},
     "websocket authentication username not compatible with presence of users/nkeys"),
    ({"port": 8080, "no_tls": True, "token": "x"}, {"users": "USERS"},
     "websocket authentication token not compatible with presence of users/nkeys"),
    ({"port": 8080, "no_tls": True, "jwt_cookie": "jwt"}, {},
     'trusted operators or trusted keys configuration is required for JWT authentication via cookie "jwt"'),
])
def test_options_are_validated_as_go_does(ws, extra, message):
    from gnatsd.auth import User
    if extra.get("users") == "USERS":
        extra["users"] = [User("a", "b")]
    with pytest.raises(ConfigError) as ei:
        Server(Options(websocket=WebsocketOpts(**ws), **extra))
    assert str(ei.value) == message


def test_a_websocket_port_in_use_stops_the_start():
    from gnatsd.websocket import WebsocketStartError
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        server = Server(Options(host="127.0.0.1", port=-1, websocket=WebsocketOpts(host="127.0.0.1", port=port,
                                                                                   no_tls=True)))
        with pytest.raises(WebsocketStartError) as ei:
            server.start_in_thread()
        assert ei.value.strerror == (f"Unable to listen for websocket connections: listen tcp 127.0.0.1:{port}: "
                                     f"bind: address already in use")
    finally:
        taken.close()


def test_go_refuses_the_same_configs(tmp_path):
    import shutil
    import subprocess
    if shutil.which("nats-server") is None:
        pytest.skip("needs the nats-server binary")
    path = tmp_path / "ws.conf"
    path.write_text("websocket { port: 8080 }\n")
    r = subprocess.run(["nats-server", "-c", str(path), "-p", "-1"], capture_output=True, text=True, timeout=30)
    assert r.returncode != 0 and "websocket requires TLS configuration" in r.stderr


@pytest.mark.parametrize("secure", [False, True])
def test_the_gnatsd_command_listens_for_websocket_clients(tmp_path, certs, secure):  # noqa: F811
    # the command patches the process for gevent: the tls blocks' contexts must still build
    import subprocess
    import sys
    path = tmp_path / "ws.conf"
    tls_block = f'tls {{ cert_file: "{certs.server[0]}", key_file: "{certs.server[1]}" }}'
    if secure:
        path.write_text(f"port: -1\n{tls_block}\nwebsocket {{ port: -1, {tls_block} }}\n")
    else:
        path.write_text("port: -1\nwebsocket { port: -1, no_tls: true }\n")
    p = subprocess.Popen([sys.executable, "-m", "gnatsd", "-c", str(path), "--ports_file_dir", str(tmp_path)],
                         stderr=subprocess.PIPE, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        ports = check_for(10, lambda: p.poll() is not None or [f for f in os.listdir(tmp_path) if f.endswith(".ports")])
        assert p.poll() is None, "gnatsd exited"
        urls = json.loads((tmp_path / ports[0]).read_text())["websocket"]
        assert urls[0].startswith("wss://" if secure else "ws://")
        c = WsConn(int(urls[0].rsplit(":", 1)[1]), ctx=certs.client_ctx() if secure else None)
        c.connect()
        c.close()
    finally:
        p.terminate()
        err = p.communicate(timeout=10)[1]
    if secure:
        assert "Listening for websocket clients on wss://0.0.0.0:" in err
    else:
        assert "Listening for websocket clients on ws://0.0.0.0:" in err
        assert "Websocket not configured with TLS. DO NOT USE IN PRODUCTION!" in err


# -- nats-py over its WebSocket transport -----------------------------------------------------------


@pytest.fixture(params=["plain", "compressed"])
def compression(request, monkeypatch):
    """nats-py's transport never asks for compression: for "compressed" aiohttp is told to."""
    if request.param == "compressed":
        monkeypatch.setattr(aiohttp.ClientSession, "ws_connect",
                            functools.partialmethod(aiohttp.ClientSession.ws_connect, compress=15))
    return request.param == "compressed"


def _ws_url(server, scheme="ws"):
    return f"{scheme}://127.0.0.1:{server.websocket.addr[1]}"


def test_nats_py_pub_sub_request_headers_and_large_payloads(ws_server, compression):
    server = ws_server(compression=True)

    async def main():
        nc = await nats.connect(_ws_url(server))
        (client,) = server.clients.values()
        assert client.ws.compress == compression
        sub = await nc.subscribe("big.>")
        payloads = [os.urandom(n) for n in (0, 16, 4095, 4097, 70000, 900000)]
        for i, p in enumerate(payloads):
            await nc.publish(f"big.{i}", p, headers={"X-I": str(i)} if i % 2 else None)
        for i, p in enumerate(payloads):
            m = await sub.next_msg(timeout=5)
            assert (m.subject, m.data) == (f"big.{i}", p)
            assert (m.headers or {}).get("X-I") == (str(i) if i % 2 else None)

        async def respond(msg):
            await nc.publish(msg.reply, msg.data.upper(), headers={"Re": "1"})
        await nc.subscribe("svc", cb=respond)
        r = await nc.request("svc", b"hello", timeout=5)
        assert (r.data, r.headers) == (b"HELLO", {"Re": "1"})
        with pytest.raises(NoRespondersError):
            await nc.request("nobody", b"", timeout=5)
        await nc.close()

    run(main())


def test_nats_py_ws_and_tcp_clients_talk(ws_server):
    server = ws_server()

    async def main():
        ws = await nats.connect(_ws_url(server))
        tcp = await nats.connect(server.client_url())
        sub_ws = await ws.subscribe("x")
        sub_tcp = await tcp.subscribe("y")
        await flushed(ws)
        await flushed(tcp)
        await tcp.publish("x", b"from tcp")
        await ws.publish("y", b"from ws")
        assert (await sub_ws.next_msg(timeout=5)).data == b"from tcp"
        assert (await sub_tcp.next_msg(timeout=5)).data == b"from ws"
        await ws.close()
        await tcp.close()

    run(main())


def test_nats_py_reconnects_over_websocket(make_server):
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    ws_port = probe.getsockname()[1]
    probe.close()
    wo = dict(host="127.0.0.1", port=ws_port, no_tls=True)
    first = Server(Options(host="127.0.0.1", port=-1, websocket=WebsocketOpts(**wo))).start_in_thread()
    second = []

    async def main():
        reconnected = asyncio.Event()

        async def on_reconnect():
            reconnected.set()
        nc = await nats.connect(f"ws://127.0.0.1:{ws_port}", reconnected_cb=on_reconnect, reconnect_time_wait=0.1,
                                max_reconnect_attempts=100)
        sub = await nc.subscribe("r")
        first.stop_thread()
        second.append(Server(Options(host="127.0.0.1", port=-1, websocket=WebsocketOpts(**wo))).start_in_thread())
        await asyncio.wait_for(reconnected.wait(), 10)
        await nc.publish("r", b"again")
        assert (await sub.next_msg(timeout=5)).data == b"again"
        await nc.close()

    try:
        run(main())
    finally:
        for s in second:
            s.stop_thread()


def test_nats_py_over_wss(make_server, certs, compression):  # noqa: F811
    tls_opts = Options(tls=True, tls_cert=certs.server[0], tls_key=certs.server[1])
    server = make_server(websocket=WebsocketOpts(host="127.0.0.1", port=-1, tls=tls_opts, compression=True))

    async def main():
        nc = await nats.connect(f"wss://localhost:{server.websocket.addr[1]}", tls=certs.client_ctx())
        (client,) = server.clients.values()
        assert client.ws.compress == compression and client._tls is not None
        sub = await nc.subscribe("s")
        big = os.urandom(200000)
        await nc.publish("s", big, headers={"H": "v"})
        m = await sub.next_msg(timeout=5)
        assert (m.data, m.headers) == (big, {"H": "v"})

        async def respond(msg):
            await msg.respond(b"secure")
        await nc.subscribe("q", cb=respond)
        assert (await nc.request("q", b"", timeout=5)).data == b"secure"
        await nc.close()

    run(main())
