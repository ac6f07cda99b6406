"""WebSocket clients: the listener, the HTTP/1.1 upgrade, frames in and out, permessage-deflate.

Ports nats-server `server/websocket.go` (wsUpgrade, wsRead, wsHandleControlFrame,
wsEnqueueControlMessage, wsEnqueueCloseMessage, wsCollapsePtoNB, checkOrigin,
validateWebsocketOptions, startWebsocketServer, createWSClient) and the WebSocket branches of
`client.go` (readLoop, flushOutbound, markConnAsClosed) and `auth.go`.

A WebSocket client is a `WsClient`, a `Client` whose `parse` first decodes frames and whose
flushes wrap the pending bytes into frames: the NATS protocol code is the same, and the plain
TCP path carries no WebSocket test. Frames are written by hand (RFC 6455); `WsReadInfo` is the
sans-IO decoder, Go's `wsReadInfo`.

Where Go's net/http does the work (reading the request, its 4xx/5xx answers, keep-alive after
a refused upgrade), `serve_http` does what Go's server answers, status line and headers.
"""
from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import socket as _stdsocket
import struct
import sys
import zlib
from email.utils import formatdate
from urllib.parse import urlsplit

import gevent

from . import tls
from .auth import validate_no_auth_user
from .conn import _SKIP_FLUSH, Client
from .errors import ClosedState, ProtocolError
from .parser import Parser

log = logging.getLogger("gnatsd")

# RFC 6455 section 5.2
WS_CONTINUATION_FRAME = 0
WS_TEXT_MESSAGE = 1
WS_BINARY_MESSAGE = 2
WS_CLOSE_MESSAGE = 8
WS_PING_MESSAGE = 9
WS_PONG_MESSAGE = 10

WS_FINAL_BIT = 0x80
WS_RSV1_BIT = 0x40  # compressed (RFC 7692)
WS_MASK_BIT = 0x80

WS_MAX_CONTROL_PAYLOAD_SIZE = 125
WS_FRAME_SIZE_FOR_BROWSERS = 4096  # Go: browsers behave better with small frames
WS_COMPRESS_THRESHOLD = 64  # Go: smaller outbound data is not compressed
WS_CLOSE_STATUS_SIZE = 2

# RFC 6455 section 11.7
WS_CLOSE_STATUS_NORMAL_CLOSURE = 1000
WS_CLOSE_STATUS_GOING_AWAY = 1001
WS_CLOSE_STATUS_PROTOCOL_ERROR = 1002
WS_CLOSE_STATUS_NO_STATUS_RECEIVED = 1005
WS_CLOSE_STATUS_ABNORMAL_CLOSURE = 1006
WS_CLOSE_STATUS_INVALID_PAYLOAD_DATA = 1007
WS_CLOSE_STATUS_POLICY_VIOLATION = 1008
WS_CLOSE_STATUS_MESSAGE_TOO_BIG = 1009
WS_CLOSE_STATUS_INTERNAL_SRV_ERROR = 1011
WS_CLOSE_STATUS_TLS_HANDSHAKE = 1015

WS_NO_MASKING_HEADER = "nats-no-masking"
WS_PMC_EXTENSION = "permessage-deflate"
WS_PMC_FULL_RESPONSE = (b"Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; "
                        b"client_no_context_takeover\r\n")
WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# RFC 7692 7.2.2: what a compressed message lacks at its end
WS_DEFLATE_TAIL = b"\x00\x00\xff\xff"

# Go's net/http: DefaultMaxHeaderBytes plus the 4096 bytes of slack its reader allows.
MAX_HEADER_BYTES = (1 << 20) + 4096

# Go: wsEnqueueCloseMessage, the close status for each reason (others: internal error)
_CLOSE_STATUS = {
    ClosedState.ClientClosed: WS_CLOSE_STATUS_NORMAL_CLOSURE,
    ClosedState.AuthenticationTimeout: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.AuthenticationViolation: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.SlowConsumerPendingBytes: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.SlowConsumerWriteDeadline: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.MaxAccountConnectionsExceeded: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.MaxConnectionsExceeded: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.MaxControlLineExceeded: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.MaxSubscriptionsExceeded: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.MissingAccount: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.AuthenticationExpired: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.Revocation: WS_CLOSE_STATUS_POLICY_VIOLATION,
    ClosedState.TLSHandshakeError: WS_CLOSE_STATUS_TLS_HANDSHAKE,
    ClosedState.ParseError: WS_CLOSE_STATUS_PROTOCOL_ERROR,
    ClosedState.ProtocolViolation: WS_CLOSE_STATUS_PROTOCOL_ERROR,
    ClosedState.BadClientProtocolVersion: WS_CLOSE_STATUS_PROTOCOL_ERROR,
    ClosedState.MaxPayloadExceeded: WS_CLOSE_STATUS_MESSAGE_TOO_BIG,
    ClosedState.ServerShutdown: WS_CLOSE_STATUS_GOING_AWAY,
    ClosedState.WriteError: WS_CLOSE_STATUS_ABNORMAL_CLOSURE,
    ClosedState.ReadError: WS_CLOSE_STATUS_ABNORMAL_CLOSURE,
    ClosedState.StaleConnection: WS_CLOSE_STATUS_ABNORMAL_CLOSURE,
}


# -- frames ------------------------------------------------------------------------------------


def ws_create_frame_header(compressed, frame_type, length, first=True, final=True):
    """Go: wsCreateFrameHeader / wsFillFrameHeader for a server frame (never masked)."""
    b0 = frame_type if first else 0
    if final:
        b0 |= WS_FINAL_BIT
    if compressed:
        b0 |= WS_RSV1_BIT
    if length <= 125:
        return bytes((b0, length))
    if length < 65536:
        return struct.pack(">BBH", b0, 126, length)
    return struct.pack(">BBQ", b0, 127, length)


def ws_create_close_message(status, body):
    """Go: wsCreateCloseMessage. A close payload: the status, then the body, cut to fit a
    control frame with "..." at its end."""
    b = body.encode()
    if len(b) > WS_MAX_CONTROL_PAYLOAD_SIZE - 2:
        b = b[:WS_MAX_CONTROL_PAYLOAD_SIZE - 5] + b"..."
    return struct.pack(">H", status) + b


_XOR_TABLES = [bytes(a ^ k for a in range(256)) for k in range(256)]  # for bytes.translate


def _unmask_ints(key, b):
    # CPython: XOR as one big integer for small payloads; for larger ones, each of the four
    # byte lanes through a 256-byte XOR table (bytes.translate on a strided slice, all in C;
    # the trick is wsproto's): ~600 MB/s, where a byte loop makes ~15 MB/s.
    n = len(b)
    if n < 512:
        k = (key * ((n >> 2) + 1))[:n]
        return (int.from_bytes(b, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")
    out = bytearray(b)
    out[::4] = out[::4].translate(_XOR_TABLES[key[0]])
    out[1::4] = out[1::4].translate(_XOR_TABLES[key[1]])
    out[2::4] = out[2::4].translate(_XOR_TABLES[key[2]])
    out[3::4] = out[3::4].translate(_XOR_TABLES[key[3]])
    return bytes(out)


def _unmask_loop(key, b):
    # PyPy: the JIT makes this loop ~1 GB/s; its big integers are slower than CPython's.
    n = len(b)
    if n < 256:
        return _unmask_ints(key, b)
    out = bytearray(b)
    k0, k1, k2, k3 = key[0], key[1], key[2], key[3]
    i = 0
    end = n - 3
    while i < end:
        out[i] ^= k0
        out[i + 1] ^= k1
        out[i + 2] ^= k2
        out[i + 3] ^= k3
        i += 4
    while i < n:
        out[i] ^= key[i & 3]
        i += 1
    return bytes(out)


# ws_unmask(key, b): the payload `b` XORed with the 4-byte `key`, from the key's first byte.
ws_unmask = _unmask_loop if sys.implementation.name == "pypy" else _unmask_ints


class WebsocketStartError(OSError):
    """The WebSocket port cannot be bound (Go: startWebsocketServer's "Unable to listen for
    websocket connections", fatal)."""


class WsProtocolError(Exception):
    """A frame the server refuses (Go: wsHandleProtocolError's message)."""


class WsReadInfo:
    """Go: wsReadInfo and wsRead, without I/O. `read(buf)` returns the payloads of the data
    frames in `buf` (decompressed, unmasked), keeping partial frames for the next call.

    Control frames go to `control(op, payload)`; after a close frame the rest of `buf` is
    ignored and `closed` is set. A frame that breaks the protocol sets `err` (its message)
    and stops the decoding: the payloads before it are still returned, as Go parses them.
    """

    __slots__ = ("rem", "fs", "ff", "fc", "mask", "mkey", "hdr", "cbufs", "control", "closed", "err")

    def __init__(self, control, mask=True):
        self.rem = 0  # payload bytes left in the current frame
        self.fs = True  # at a frame start
        self.ff = True  # the last data frame was final
        self.fc = False  # the current message is compressed
        self.mask = mask  # clients must mask
        self.mkey = b""  # the current mask key, rotated to the next payload byte
        self.hdr = b""  # a frame header (or control frame) still incomplete
        self.cbufs = []  # the compressed message so far
        self.control = control
        self.closed = False
        self.err = None

    def read(self, buf):
        bufs = []
        if self.hdr:
            buf = self.hdr + buf
            self.hdr = b""
        pos = 0
        end = len(buf)
        try:
            # An empty data frame at the end of `buf` is still taken in: it may end a message.
            while pos < end or (not self.fs and self.rem == 0):
                if self.fs:
                    p = self._read_header(buf, pos, end)
                    if p < 0:
                        self.hdr = buf[pos:]
                        break
                    pos = p
                    if self.closed:
                        break
                    if self.fs:
                        continue  # a control frame, handled
                n = self.rem
                if pos + n > end:
                    n = end - pos
                b = buf if pos == 0 and n == end else buf[pos:pos + n]
                pos += n
                self.rem -= n
                if self.mask and n:
                    b = self._unmask(b)
                if self.fc:
                    self.cbufs.append(b)
                    if self.ff and self.rem == 0:
                        self.fc = False
                        b = self._decompress()
                        if b:
                            bufs.append(b)
                elif n:
                    bufs.append(b)
                if self.rem == 0:
                    self.fs = True
        except WsProtocolError as e:
            self.err = str(e)
        return bufs

    def _unmask(self, b):
        key = self.mkey
        out = ws_unmask(key, b)
        k = len(b) & 3
        if k:
            self.mkey = key[k:] + key[:k]
        return out

    def _read_header(self, buf, pos, end):
        """Go: wsRead's frame-start branch. The position after the header (and after a whole
        control frame, handled), or -1 when `buf` ends first."""
        if end - pos < 2:
            return -1
        b0 = buf[pos]
        b1 = buf[pos + 1]
        frame_type = b0 & 0xF
        final = b0 & WS_FINAL_BIT
        compressed = b0 & WS_RSV1_BIT
        if self.mask and not b1 & WS_MASK_BIT:
            raise WsProtocolError("mask bit missing")
        rem = b1 & 0x7F
        if frame_type >= WS_CLOSE_MESSAGE and frame_type <= WS_PONG_MESSAGE:
            if rem > WS_MAX_CONTROL_PAYLOAD_SIZE:
                raise WsProtocolError(f"control frame length bigger than maximum allowed of "
                                      f"{WS_MAX_CONTROL_PAYLOAD_SIZE} bytes")
            if not final:
                raise WsProtocolError("control frame does not have final bit set")
        elif frame_type == WS_TEXT_MESSAGE or frame_type == WS_BINARY_MESSAGE:
            if not self.ff:
                raise WsProtocolError("new message started before final frame for previous message was received")
        elif frame_type == WS_CONTINUATION_FRAME:
            if self.ff or compressed:
                raise WsProtocolError("invalid continuation frame")
        else:
            raise WsProtocolError(f"unknown opcode {frame_type}")
        p = pos + 2
        if rem == 126:
            if end - p < 2:
                return -1
            rem = (buf[p] << 8) | buf[p + 1]
            p += 2
        elif rem == 127:
            if end - p < 8:
                return -1
            rem = int.from_bytes(buf[p:p + 8], "big")
            p += 8
        if self.mask:
            if end - p < 4:
                return -1
            key = buf[p:p + 4]
            p += 4
        else:
            key = b""
        if frame_type >= WS_CLOSE_MESSAGE:
            if end - p < rem:
                return -1
            payload = buf[p:p + rem]
            if key:
                payload = ws_unmask(key, payload)
            if frame_type == WS_CLOSE_MESSAGE:
                self.closed = True
            self.control(frame_type, payload)
            return p + rem
        # Go: the state changes once the header is complete
        if frame_type != WS_CONTINUATION_FRAME:
            self.fc = bool(compressed)
        self.ff = bool(final)
        self.mkey = key
        self.rem = rem
        self.fs = False
        return p

    def _decompress(self):
        """Go: wsReadInfo.decompress. The message's compressed frames, inflated."""
        data = b"".join(self.cbufs) + WS_DEFLATE_TAIL
        self.cbufs = []
        try:
            d = zlib.decompressobj(-15)
            return d.decompress(data) + d.flush()
        except zlib.error as e:
            raise WsProtocolError(f"flate: {e}") from None


# -- the upgrade (Go: wsUpgrade, checkOrigin, with what net/http does around it) --------------


class WsUpgrade:
    """Go: websocket, what the upgrade decided for one connection."""

    __slots__ = ("compress", "browser", "nocompfrag", "maskread", "close_sent", "cookie_jwt", "client_ip")

    def __init__(self, compress, maskread):
        self.compress = compress
        self.browser = False
        self.nocompfrag = False  # Go: no fragmented compressed frames (Safari)
        self.maskread = maskread
        self.close_sent = False
        self.cookie_jwt = ""
        self.client_ip = ""


class HTTPRequest:
    """The parts of a request the upgrade looks at. Header names are lower case; each maps to
    its values in arrival order."""

    __slots__ = ("method", "uri", "proto", "headers")

    def __init__(self, method, uri, proto, headers):
        self.method = method
        self.uri = uri
        self.proto = proto
        self.headers = headers

    def get(self, name):
        values = self.headers.get(name)
        return values[0] if values else ""


class HTTPError(Exception):
    """A request refused before the upgrade: Go's status, its text, and whether the
    connection ends (net/http's own errors close; the upgrade's refusals keep it alive)."""

    def __init__(self, status, reason="", body=None, close=False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.body = body
        self.close = close


_STATUS_TEXT = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed",
                431: "Request Header Fields Too Large", 505: "HTTP Version Not Supported"}


def parse_request(head):
    """The request line and headers (without the blank line) as Go's net/http reads them, or
    HTTPError with its answer."""
    lines = head.split(b"\n")
    lines = [ln[:-1] if ln.endswith(b"\r") else ln for ln in lines]
    try:
        first = lines[0].decode("latin-1")
    except IndexError:
        first = ""
    parts = first.split(" ")
    if len(parts) != 3 or not parts[0] or not parts[1]:
        raise HTTPError(400, close=True)
    method, uri, proto = parts
    if proto not in ("HTTP/1.0", "HTTP/1.1"):
        if proto.startswith("HTTP/") and proto[5:6].isdigit():
            raise HTTPError(505, body="505 HTTP Version Not Supported: unsupported protocol version",
                            close=True)
        raise HTTPError(400, close=True)
    headers = {}
    for ln in lines[1:]:
        name, sep, value = ln.partition(b":")
        if not sep or not name or name != name.strip():
            raise HTTPError(400, close=True)
        headers.setdefault(name.decode("latin-1").lower(), []).append(value.strip(b" \t").decode("latin-1"))
    hosts = headers.get("host", [])
    if len(hosts) > 1 or (proto == "HTTP/1.1" and not hosts):
        if not hosts:
            raise HTTPError(400, body="400 Bad Request: missing required Host header", close=True)
        raise HTTPError(400, close=True)
    return HTTPRequest(method, uri, proto, headers)


def ws_header_contains(req, name, value):
    """Go: wsHeaderContains. A comma-separated token equal to `value`, ignoring case."""
    value = value.lower()
    for s in req.headers.get(name, ()):
        for t in s.split(","):
            if t.strip(" \t").lower() == value:
                return True
    return False


def ws_pmc_extension_support(req):
    """Go: wsPMCExtensionSupport(header, true). Whether permessage-deflate is offered."""
    for ext_list in req.headers.get("sec-websocket-extensions", ()):
        for ext in ext_list.split(","):
            for p in ext.strip(" \t").split(";"):
                if p.strip(" \t").lower() == WS_PMC_EXTENSION:
                    return True
    return False


def ws_accept_key(key):
    """Go: wsAcceptKey. base64(sha1(key + GUID))."""
    return base64.b64encode(hashlib.sha1(key.encode("latin-1") + WS_GUID).digest())


def ws_get_host_and_port(is_tls, hostport):
    """Go: wsGetHostAndPort. (lower-case host, port); the scheme's port when none is given."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"address {hostport}: missing ']' in address")
        host, rest = hostport[1:end], hostport[end + 1:]
        if not rest:
            return host.lower(), "443" if is_tls else "80"
        if not rest.startswith(":"):
            raise ValueError(f"address {hostport}: unexpected character after ']'")
        return host.lower(), rest[1:]
    if ":" not in hostport:
        return hostport.lower(), "443" if is_tls else "80"
    host, _, port = hostport.rpartition(":")
    if ":" in host:
        raise ValueError(f"address {hostport}: too many colons in address")
    return host.lower(), port


def parse_origin(origin):
    """Go: url.ParseRequestURI for an origin: (scheme, host:port) or ValueError."""
    if not origin.startswith("/") and ":" not in origin:
        raise ValueError(f'parse "{origin}": invalid URI for request')
    u = urlsplit(origin)
    return u.scheme, u.netloc.rpartition("@")[2]


class SrvWebsocket:
    """Go: srvWebsocket. The server's WebSocket listener and what every upgrade checks."""

    def __init__(self, srv):
        opts = srv.opts.websocket
        self.srv = srv
        self.opts = opts
        self.listener = None
        self.addr = None
        self.tls_context = None
        if opts.tls is not None:
            from gevent import ssl as gevent_ssl
            self.tls_context = tls.gen_tls_config(opts.tls, gevent_ssl.SSLContext)
        self.tls = self.tls_context is not None
        # Go: wsConfigAuth. Any of these replaces the server's single user or token.
        self.auth_override = bool(opts.username or opts.token or opts.no_auth_user)
        self.same_origin = opts.same_origin
        self.allowed_origins = {}  # Go: host -> (scheme, port)
        for ao in opts.allowed_origins:
            try:
                scheme, hostport = parse_origin(ao)
                h, p = ws_get_host_and_port(scheme == "https", hostport)
            except ValueError as e:
                log.error("error parsing allowed origin: %s", e)
                continue
            self.allowed_origins[h] = (scheme, p)

    def check_origin(self, req):
        """Go: checkOrigin. None, or why the request's origin is refused."""
        if not self.same_origin and not self.allowed_origins:
            return None
        origin = req.get("origin") or req.get("sec-websocket-origin")
        if not origin:
            return None
        try:
            scheme, hostport = parse_origin(origin)
            oh, op = ws_get_host_and_port(scheme == "https", hostport)
        except ValueError as e:
            return str(e)
        if self.same_origin:
            try:
                rh, rp = ws_get_host_and_port(self.tls, req.get("host"))
            except ValueError as e:
                return str(e)
            if oh != rh or op != rp:
                return "not same origin"
        if self.allowed_origins:
            ao = self.allowed_origins.get(oh)
            if ao is None or scheme != ao[0] or op != ao[1]:
                return "not in the allowed list"
        return None

    def upgrade(self, req):
        """Go: wsUpgrade. The 101 answer and a WsUpgrade, or HTTPError with the reason Go logs."""
        if req.method != "GET":
            raise HTTPError(405, "request method must be GET")
        if not req.get("host"):
            raise HTTPError(400, "'Host' missing in request")
        if not ws_header_contains(req, "upgrade", "websocket"):
            raise HTTPError(400, "invalid value for header 'Upgrade'")
        if not ws_header_contains(req, "connection", "Upgrade"):
            raise HTTPError(400, "invalid value for header 'Connection'")
        key = req.get("sec-websocket-key")
        if not key:
            raise HTTPError(400, "key missing")
        if not ws_header_contains(req, "sec-websocket-version", "13"):
            raise HTTPError(400, "invalid version")
        err = self.check_origin(req)
        if err is not None:
            raise HTTPError(403, f"origin not allowed: {err}")
        compress = self.opts.compression and ws_pmc_extension_support(req)
        no_masking = req.get(WS_NO_MASKING_HEADER) == "true"
        resp = [b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Accept: ", ws_accept_key(key), b"\r\n"]
        if compress:
            resp.append(WS_PMC_FULL_RESPONSE)
        if no_masking:
            resp.append(b"Nats-No-Masking: true\r\n")
        resp.append(b"\r\n")
        ws = WsUpgrade(compress, not no_masking)
        xff = req.headers.get("x-forwarded-for")
        if xff:
            try:
                ipaddress.ip_address(xff[0])
                ws.client_ip = xff[0]
            except ValueError:
                pass
        ua = req.get("user-agent")
        if ua.startswith("Mozilla/"):
            ws.browser = True
            ws.nocompfrag = compress and "Version/" in ua and "Safari/" in ua
        if self.opts.jwt_cookie:
            ws.cookie_jwt = _cookie(req, self.opts.jwt_cookie)
        return b"".join(resp), ws


def _cookie(req, name):
    """Go: http.Request.Cookie(name).Value, or ""."""
    for line in req.headers.get("cookie", ()):
        for part in line.split(";"):
            k, sep, v = part.strip().partition("=")
            if sep and k == name:
                return v[1:-1] if len(v) > 1 and v[0] == v[-1] == '"' else v
    return ""


def http_error_response(e, req_proto, keep_alive):
    """What Go's net/http writes for an HTTPError."""
    text = _STATUS_TEXT[e.status]
    if e.reason or not e.close:
        # wsReturnHTTPError: http.Error after the Sec-Websocket-Version header
        body = (text + "\n").encode()
        head = (f"{req_proto or 'HTTP/1.1'} {e.status} {text}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Sec-Websocket-Version: 13\r\nX-Content-Type-Options: nosniff\r\n"
                f"Date: {formatdate(usegmt=True)}\r\nContent-Length: {len(body)}\r\n")
        if not keep_alive and req_proto == "HTTP/1.1":
            head += "Connection: close\r\n"
        return head.encode() + b"\r\n" + body
    body = e.body or f"{e.status} {text}"
    status = body if body.startswith(str(e.status)) else f"{e.status} {text}"
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\n"
            f"{body}").encode()


def serve_http(srv, sock, addr):
    """Go: the WebSocket listener's http.Server and its handler, for one connection. Runs in
    its own greenlet: TLS (wss), requests until one upgrades, then the client's loops."""
    ws_srv = srv.websocket
    remote = f"{addr[0]}:{addr[1]}"
    timeout = ws_srv.opts.handshake_timeout
    timer = gevent.Timeout(timeout) if timeout > 0 else None
    if timer is not None:
        timer.start()
    conn = [sock]  # the socket, wrapped once TLS starts: closed here unless a client takes it
    ws = None
    try:
        ws = _handshake(srv, ws_srv, conn, remote)
    except gevent.Timeout as t:
        if t is not timer:
            raise
    finally:
        if timer is not None:
            timer.close()
    if ws is None:
        try:
            conn[0].close()
        except OSError:
            pass
        return
    srv.create_ws_client(conn[0], addr, ws)


def _handshake(srv, ws_srv, conn, remote):
    """The WsUpgrade once a request upgraded on `conn[0]`, or None (answered and logged, or
    gone). A TLS handshake replaces `conn[0]` with the wrapped socket."""
    sock = conn[0]
    sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
    if ws_srv.tls_context is not None:
        try:
            sock = conn[0] = ws_srv.tls_context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            sock.do_handshake()
        except (OSError, ValueError) as e:
            log.error("websocket: http: TLS handshake error from %s: %s", remote, tls.handshake_error_text(e))
            return None
    buf = b""
    while srv.running:
        end = buf.find(b"\r\n\r\n")
        sep = 4
        lf = buf.find(b"\n\n")
        if lf >= 0 and (end < 0 or lf < end):
            end, sep = lf, 2
        if end < 0:
            if len(buf) > MAX_HEADER_BYTES:
                _send(sock, http_error_response(HTTPError(431, close=True), "", False))
                return None
            try:
                data = sock.recv(65536)
            except OSError:
                return None
            if not data:
                return None
            buf += data
            continue
        head, buf = buf[:end], buf[end + sep:]
        if end > MAX_HEADER_BYTES:
            _send(sock, http_error_response(HTTPError(431, close=True), "", False))
            return None
        proto = ""
        keep_alive = True
        try:
            req = parse_request(head.lstrip(b"\r\n"))
            proto = req.proto
            keep_alive = proto == "HTTP/1.1" and not ws_header_contains(req, "connection", "close")
            resp, ws = ws_srv.upgrade(req)
        except HTTPError as e:
            if e.reason:
                log.error("%s - websocket handshake error: %s", remote, e.reason)
            _send(sock, http_error_response(e, proto, keep_alive))
            if e.close or not keep_alive:
                return None
            length = _content_length(req)
            buf = buf[length:]  # a body, read and dropped as net/http does
            continue
        if buf:
            log.error("%s - websocket handshake error: client sent data before handshake is complete", remote)
            return None
        if not _send(sock, resp):
            return None
        return ws
    return None


def _content_length(req):
    v = req.get("content-length")
    return int(v) if v.isdigit() else 0


def _send(sock, data):
    try:
        sock.sendall(data)
        return True
    except OSError:
        return False


# -- the connection ----------------------------------------------------------------------------


class WsClient(Client):
    """Go: client with c.ws set. Frames in `parse`, frames out in the flushes.

    `out` holds, first, `_framed` chunks already wrapped in frames (a partial write's rest,
    control frames), then the NATS protocol bytes queued since: each flush frames those
    (Go: wsCollapsePtoNB) and writes everything.
    """

    type_string = "websocket"

    def __init__(self, server, sock, cid, addr, ws):
        self.ws = ws
        super().__init__(server, sock, cid, addr)
        self.wsr = WsReadInfo(self.ws_handle_control_frame, ws.maskread)
        self._framed = 0
        self.ws_close_msg = None  # Go: ws.closeMsg, the close frame waiting for the next flush
        self._tls = getattr(sock, "_sslobj", None)  # wss: flush_inline writes to the SSL object
        self.auth_required = server.auth_required or server.websocket.auth_override
        self.auth_pending = self.auth_required

    def __repr__(self):
        conn = f"{self.host}:{self.port}"
        cip = self.ws.client_ip
        if cip:
            conn = f"[{cip}]/{conn}" if ":" in cip else f"{cip}/{conn}"
        return f"{conn} - wid:{self.cid}"

    def run(self):
        """Go: createWSClient, then readLoop. Runs in its own greenlet."""
        srv = self.srv
        log.debug("%s - Client connection created", self)
        if not self.send_proto_now(srv.client_info_json(self, first=True)):
            self.close_connection(ClosedState.WriteError)
            return
        if not srv.register_client(self):
            return
        if self.auth_pending:
            opts = srv.opts
            timeout = opts.websocket.auth_timeout or opts.auth_timeout
            self._auth_timer = self._hub.loop.timer(timeout)
            self._auth_timer.start(self.auth_timeout)
        self._set_ping_timer(srv.opts.ping_interval)
        self.readloop()

    # -- in ---------------------------------------------------------------------------------

    _nats_parse = Parser.parse

    def parse(self, data):
        """Go: readLoop's wsRead, then parse for each payload."""
        r = self.wsr
        for b in r.read(data):
            self._nats_parse(b)
        if r.err is not None:
            raise ProtocolError(f"read error: {r.err}", None, ClosedState.ReadError)
        if r.closed:
            self.close_connection(ClosedState.ClientClosed)

    def ws_handle_control_frame(self, frame_type, payload):
        """Go: wsHandleControlFrame. Answer a ping; echo a close's status (its end of the
        close handshake); ignore a pong. Does not yield."""
        if frame_type == WS_PING_MESSAGE:
            self.ws_enqueue_control_message(WS_PONG_MESSAGE, payload)
        elif frame_type == WS_CLOSE_MESSAGE:
            status = WS_CLOSE_STATUS_NO_STATUS_RECEIVED
            body = ""
            if len(payload) >= WS_CLOSE_STATUS_SIZE:
                status = (payload[0] << 8) | payload[1]
                try:
                    body = payload[WS_CLOSE_STATUS_SIZE:].decode("utf-8")
                except UnicodeDecodeError:
                    status = WS_CLOSE_STATUS_INVALID_PAYLOAD_DATA
                    body = "invalid utf8 body in close frame"
            self.ws_enqueue_control_message(WS_CLOSE_MESSAGE, ws_create_close_message(status, body))

    # -- out --------------------------------------------------------------------------------

    def ws_enqueue_control_message(self, frame_type, payload, signal=True):
        """Go: wsEnqueueControlMessageLocked. A ping's pong goes after what is pending; the
        close frame waits, and goes after everything queued until the next flush (Go:
        closeMsg), such as the replies to what came before the close in the same read."""
        if self.sock is None:
            return
        frame = bytes((WS_FINAL_BIT | frame_type, len(payload))) + payload
        self.pb += len(frame)
        if frame_type == WS_CLOSE_MESSAGE:
            self.ws.close_sent = True
            self.ws_close_msg = frame
        else:
            self.ws_collapse()
            self.out.append(frame)
            self._framed = len(self.out)
        if not signal:
            return
        if self._in_read:
            self.pcd[self] = None
        else:
            self.signal_flush()

    def ws_collapse(self):
        """Go: wsCollapsePtoNB. Wrap the chunks queued since the last flush into frames:
        one binary frame, or 4 KiB ones for a browser, compressed when negotiated (and worth
        it). Pending bytes count the frame headers. Does not yield."""
        out = self.out
        k = self._framed
        n = len(out)
        if k == n:
            if self.ws_close_msg is not None:
                self._ws_append_close()
            return
        ws = self.ws
        mfs = WS_FRAME_SIZE_FOR_BROWSERS if ws.browser else 0
        if k == 0 and not mfs and not ws.compress:
            # the common case: one frame for everything
            total = 0
            for b in out:
                total += len(b)
            h = ws_create_frame_header(False, WS_BINARY_MESSAGE, total)
            out.insert(0, h)
            self.pb += len(h)
            self._framed = n + 1
            if self.ws_close_msg is not None:
                self._ws_append_close()
            return
        nb = out[k:]
        del out[k:]
        data = nb[0] if len(nb) == 1 else b"".join(nb)
        usz = len(data)
        if ws.compress and usz > WS_COMPRESS_THRESHOLD:
            if ws.nocompfrag:
                mfs = 0
            cp = zlib.compressobj(1, zlib.DEFLATED, -15)
            p = (cp.compress(data) + cp.flush(zlib.Z_SYNC_FLUSH))[:-4]
            csz = self._ws_frames(out, p, mfs, True)
            self.pb += csz - usz
        else:
            self.pb += self._ws_frames(out, data, mfs, False) - usz
        self._framed = len(out)
        if self.ws_close_msg is not None:
            self._ws_append_close()

    def _ws_append_close(self):
        self.out.append(self.ws_close_msg)
        self.ws_close_msg = None
        self._framed = len(self.out)

    @staticmethod
    def _ws_frames(out, p, mfs, compressed):
        """Append `p` to `out` as one message: one frame, or frames of at most `mfs` bytes
        (only the first marked compressed). Returns the bytes appended."""
        lp = len(p)
        if not mfs or lp <= mfs:
            h = ws_create_frame_header(compressed, WS_BINARY_MESSAGE, lp)
            out.append(h)
            out.append(p)
            return len(h) + lp
        size = 0
        for i in range(0, lp, mfs):
            chunk = p[i:i + mfs]
            h = ws_create_frame_header(compressed and i == 0, WS_BINARY_MESSAGE, len(chunk),
                                       first=i == 0, final=i + mfs >= lp)
            out.append(h)
            out.append(chunk)
            size += len(h) + len(chunk)
        return size

    def send_proto_now(self, data):
        """Go: sendProtoNow for a WebSocket client: `data` framed, written at once. Yields."""
        self.out.append(data)
        self.pb += len(data)
        self.ws_collapse()
        data = b"".join(self.out)
        self.out = []
        self._framed = 0
        self.pb -= len(data)
        return Client.send_proto_now(self, data)

    def flush_inline(self):
        self.ws_collapse()
        Client.flush_inline(self)
        self._framed = len(self.out)

    def flush_outbound(self):
        self.ws_collapse()
        self._framed = 0  # the base flush takes every chunk before its first write
        Client.flush_outbound(self)

    def close_connection(self, reason):
        """Go: markConnAsClosed's WebSocket part: a close frame with the reason's status
        goes after the pending data, unless that data is dropped."""
        if not self.closed and reason not in _SKIP_FLUSH:
            if not self.ws.close_sent:
                body = ws_create_close_message(_CLOSE_STATUS.get(reason, WS_CLOSE_STATUS_INTERNAL_SRV_ERROR),
                                               str(reason))
                self.ws_enqueue_control_message(WS_CLOSE_MESSAGE, body, signal=False)
            self.ws_collapse()  # the close frame into `out`: nothing is queued after it
        Client.close_connection(self, reason)


# -- options and the listener -------------------------------------------------------------------


def validate_websocket_options(o):
    """Go: validateWebsocketOptions. An error text, or None."""
    wo = o.websocket
    if wo.port == 0:
        return None
    if wo.tls is None and not wo.no_tls:
        return "websocket requires TLS configuration"
    for ao in wo.allowed_origins:
        if any(c < " " or c == "\x7f" for c in ao):
            return f'unable to parse allowed origin: parse "{ao}": net/url: invalid control character in URL'
    if wo.no_auth_user:
        err = validate_no_auth_user(o, wo.no_auth_user)
        if err:
            return err
    if o.users or o.nkeys:
        if wo.username:
            return "websocket authentication username not compatible with presence of users/nkeys"
        if wo.token:
            return "websocket authentication token not compatible with presence of users/nkeys"
    if wo.jwt_cookie and not o.trusted_operators and not o.trusted_keys:
        return (f"trusted operators or trusted keys configuration is required for JWT authentication via "
                f"cookie \"{wo.jwt_cookie}\"")
    return None
