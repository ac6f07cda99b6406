"""One client connection: its readloop and writeloop, protocol handlers and delivery.

Ports nats-server `server/client.go` (client, readLoop, writeLoop, processConnect, processPub,
processHeaderPub, processSub, processUnsub, processPing, processPong, processInboundClientMsg,
processMsgResults, deliverMsg, queueOutbound, flushOutbound, closeConnection).

Concurrency (DESIGN.md §2): everything here runs on the server's gevent hub. Greenlets switch
only at socket I/O and explicit waits, so no state below needs a lock. Methods that never
yield say so; the yielding calls are the writeloop's socket writes, the producer stall, the
readloop's yield to others and a bcrypt check in process_connect. The two loops run as
greenlets only while they have work: the readloop while reads find data (an idle connection
parks, see Client.park), the writeloop while a backlog is left.
"""
from __future__ import annotations

import logging
import os
import random
import ssl
import time

import gevent
from gevent import Timeout
from gevent.event import Event
from greenlet import greenlet

from .const import CLIENT, MAX_BUF_SIZE, MIN_BUF_SIZE, START_BUF_SIZE
from .errors import (
    ERR_BAD_CLIENT_PROTOCOL,
    ERR_INVALID_PUB_SUBJECT,
    ERR_INVALID_SUBJECT,
    ERR_AUTH_TIMEOUT,
    ERR_AUTH_VIOLATION,
    ERR_MAX_CONNECTIONS,
    ERR_MAX_PAYLOAD,
    ERR_MAX_SUBS,
    ERR_NO_RESPONDERS_HEADERS,
    ERR_STALE_CONNECTION,
    ERR_TOO_MANY_ACCOUNT_CONNECTIONS,
    ClosedState,
    ProtocolError,
)
from . import events, gofmt, gojson, tls
from .gojson import BOOL, INT, PERMISSION, STRING, STRINGS, UINT
from .accounts import add_shadow_subscriptions, remove_shadow_subs
from .auth import auth_user_text, no_auth_user, user_jwt_limits
from .parser import Parser
from .permissions import ClientPermissions
from .trace import install_tracing
from .sublist import SublistError, is_valid_literal_subject, is_valid_subject

log = logging.getLogger("gnatsd")


CRLF = b"\r\n"
OK_PROTO = b"+OK\r\n"
PING_PROTO = b"PING\r\n"
PONG_PROTO = b"PONG\r\n"
# Go 2.9.10: the no-responders status message (HEAD adds a Nats-Subject header).
NO_RESPONDERS_HDR = b"NATS/1.0 503\r\n\r\n"
RESERVED_REPLY_PREFIXES = (b"_R_.", b"$JS.ACK.", b"_GR_.")
SYS_QUEUE_GROUP = b"_sys_"

# Go: ClientOpts. The JSON type each CONNECT key must have; unknown keys are ignored.
_CONNECT_FIELDS = {
    "verbose": BOOL, "pedantic": BOOL, "tls_required": BOOL, "echo": BOOL, "headers": BOOL,
    "no_responders": BOOL, "new_account": BOOL,
    "auth_token": STRING, "user": STRING, "pass": STRING, "nkey": STRING, "sig": STRING,
    "jwt": STRING, "name": STRING, "lang": STRING, "version": STRING, "account": STRING,
    "protocol": INT, "import": PERMISSION, "export": PERMISSION,
}
# Go: Info. A client's INFO is decoded into it (and then ignored), so types are checked.
_INFO_FIELDS = {
    "server_id": STRING, "server_name": STRING, "version": STRING, "proto": INT,
    "git_commit": STRING, "go": STRING, "host": STRING, "port": INT, "headers": BOOL,
    "auth_required": BOOL, "tls_required": BOOL, "tls_verify": BOOL, "tls_available": BOOL,
    "max_payload": INT, "jetstream": BOOL, "ip": STRING, "client_id": UINT, "client_ip": STRING,
    "nonce": STRING, "cluster": STRING, "cluster_dynamic": BOOL, "domain": STRING,
    "connect_urls": STRINGS, "ws_connect_urls": STRINGS, "ldm": BOOL,
}
# Go: defaultOpts. verbose, pedantic and echo are on unless CONNECT turns them off.
_DEFAULT_CONNECT = {"verbose": True, "pedantic": True, "echo": True, "protocol": 0}

# Close reasons after which pending output is dropped, not flushed (Go: skipFlushOnClose).
_SKIP_FLUSH = frozenset((
    ClosedState.SlowConsumerPendingBytes, ClosedState.SlowConsumerWriteDeadline,
    ClosedState.WriteError, ClosedState.ReadError,
))

SHORTS_TO_SHRINK = 2  # Go: shortsToShrink, short reads before the read size halves
MAX_WRITE = 256 * 1024  # bytes per sendall in flush_outbound
STALL_MIN = 0.1  # Go: stallClientMinDuration
STALL_MAX = 1.0  # Go: stallClientMaxDuration
_WOULD_BLOCK = (BlockingIOError, ssl.SSLWantReadError)  # a read found no data: park


def go_quote(b):
    """Go's %q of a subject, for the -ERR texts that quote one."""
    return gofmt.go_quote(b.decode("utf-8", "replace"))


def _min_limit(a, b):
    """The tighter of two limits where 0 or less means none; 0 when neither limits."""
    if a <= 0:
        return max(b, 0)
    return a if b <= 0 else min(a, b)


def parse_size(b):
    """Go: parseSize. 1 to 9 ASCII digits, else -1."""
    if 0 < len(b) <= 9 and b.isdigit():
        return int(b)
    return -1


class Subscription:
    """Go: subscription. `sid` is kept as the bytes the client sent."""

    __slots__ = ("client", "subject", "queue", "sid", "nm", "max", "icb", "im", "shadow")

    def __init__(self, client, subject, queue, sid, icb=None):
        self.client = client
        self.subject = subject
        self.queue = queue
        self.sid = sid
        self.nm = 0  # messages delivered
        self.max = 0  # auto-unsubscribe after this many (0: never)
        self.icb = icb  # an internal subscription's callback (accounts.py, events)
        self.im = None  # a shadow subscription's stream import (accounts.py)
        self.shadow = None  # the shadows of this subscription in exporting accounts

    def copy(self):
        sub = Subscription(self.client, self.subject, self.queue, self.sid, self.icb)
        sub.max = self.max
        return sub


class Client(Parser):
    """Go: client. One connection, and its readloop and writeloop greenlets while they run."""

    ws = None  # Go: c.ws, the WebSocket state (websocket.WsClient)
    type_string = "nats"  # Go: clientTypeString, /connz's `type`

    def __init__(self, server, sock, cid, addr, kind=CLIENT):
        self.srv = server
        self.sock = sock
        self.fd = sock.fileno() if sock is not None else -1  # for flush_inline's non-blocking os.write
        self._tls = None  # the SSL object once the TLS handshake is done (flush_inline writes to it)
        self.tls_cs = None  # (TLS version, cipher suite) in Go's names once the handshake is done
        self.cid = cid
        self.kind = kind
        self.acc = server.gacc  # Go: registerWithAccount(s.globalAccount()) in createClient
        self.host, self.port = addr[0], addr[1]
        opts = server.opts
        self.mcl = opts.max_control_line  # Go: mcl, max control line
        self.mpay = opts.max_payload  # Go: mpay, max payload
        self.mp = opts.max_pending  # Go: out.mp, max pending bytes
        self.msubs = opts.max_subs  # Go: msubs, max subscriptions
        self.start = time.time()
        self.last = time.monotonic()  # last activity, for the ping timer
        # CONNECT state
        self.copts = dict(_DEFAULT_CONNECT)
        self.verbose = True
        self.pedantic = True
        self.echo = True
        self.headers = False
        self.no_responders = False
        self.connect_received = False
        self.auth_required = server.auth_required  # Go: info.AuthRequired as this client saw it
        self.auth_pending = server.auth_required  # Go: authSet && !connectReceived
        self.user = None
        self.nonce = b""  # Go: nonce, sent in this client's first INFO when nkey users exist
        self.juc = None  # operator mode: the user's jwt.UserClaims
        # permissions (permissions.py): all None for a client without any
        self.perms = None  # Go: perms, the ClientPermissions of the authenticated user
        self.pperms = None  # perms when publishing is checked: the one test per PUB
        self.dperms = None  # perms when deliveries to this client are filtered or tracked
        # outbound (Go: outbound)
        self.out = []  # chunks waiting for the writeloop
        self.pb = 0  # Go: out.pb, pending bytes
        self.pcd = {}  # Go: pcd, clients this read gave data to (an ordered set)
        # subscriptions by sid
        self.subs = {}
        # pa: the PUB being processed (Go: pubArg)
        self.pa_subject = b""
        self.pa_reply = None
        self.pa_szb = b""  # size digits as sent, echoed verbatim in MSG
        self.pa_hdr = -1  # header length for HPUB, -1 for PUB
        self.pa_hdb = b""
        self.pa_psi = []  # service imports this message went through (Go: pa.psi), against cycles
        # stats
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        # liveness
        self.pings_out = 0
        self.rtt = 0.0
        self.rtt_start = None
        self.last_client_ping = 0.0
        self.first_pong_sent = False
        self.closed = False
        self.close_reason = None
        self.stop_time = None
        self._ping_timer = None
        self._auth_timer = None
        self._wl = None  # the writeloop greenlet, while there is a backlog to write
        self._in_read = False  # inside the readloop's parse: flush_clients will write our output
        self._stall = None  # Go: out.stc, set while pending bytes are over half of max_pending
        self._yield_timer = None  # for yield_to_others
        self._read_watcher = None  # the socket's io watcher (see park)
        self._parked = False  # no readloop runs: the next readable event starts one
        self._rsize = START_BUF_SIZE  # the readloop's read size and short reads, kept while parked
        self._shorts = 0
        self._hub = gevent.get_hub()
        if opts.trace and kind == CLIENT:
            install_tracing(self, opts.max_traced_msg_len)

    def __repr__(self):
        return f"{self.host}:{self.port} - cid:{self.cid}"

    # -- the two loops -------------------------------------------------------------------

    def run(self):
        """Go: createClient's per-connection part, then readLoop. Runs in its own greenlet."""
        srv = self.srv
        tls_first = srv.tls_context is not None and srv.opts.tls_handshake_first
        if not tls_first and not self.send_proto_now(srv.client_info_json(self, first=True)):
            # Go sends the first INFO before the max-connections check, and before TLS.
            self.close_connection(ClosedState.WriteError)
            return
        if not srv.register_client(self):
            return
        if srv.tls_context is not None and not tls.start_tls(self, tls_first):
            return  # closed, the reason logged
        self._set_ping_timer(srv.opts.ping_interval)
        if self.auth_pending:
            self._auth_timer = self._hub.loop.timer(srv.opts.auth_timeout)
            self._auth_timer.start(self.auth_timeout)
        log.debug("%s - Client connection created", self)
        self.readloop()

    def readloop(self):
        """Go: readLoop. Read, parse, then signal the writeloops of the clients we fed.

        Runs in its own greenlet while the socket has data. When a read finds none, the
        connection parks (see park) and this greenlet ends: a later read starts a new one.
        """
        fd = self.fd
        sslobj = self._tls
        # Go's dynamic read size: double on a full read, halve after a few short ones, so
        # that the reads of a quiet connection allocate small buffers.
        rsize = self._rsize
        shorts = self._shorts
        try:
            # The socket is closed only after self.closed is set, and nothing yields between
            # this test and the read, so the read never sees a closed (or reused) descriptor.
            while not self.closed:
                try:
                    data = os.read(fd, rsize) if sslobj is None else tls.read(sslobj, self.sock, rsize)
                except _WOULD_BLOCK:
                    self._rsize = rsize
                    self._shorts = shorts
                    self.park()
                    return
                if not data:
                    self.close_connection(ClosedState.ClientClosed)
                    return
                n = len(data)
                while n >= rsize and rsize < MAX_BUF_SIZE:
                    # A full read: the rest has most likely arrived too. Take it before the
                    # parse, or replies to the first part leave before the rest is read (Go
                    # reads the rest a moment later; here the others ran first, and nats.py's
                    # test_tls_reconnect saw a reply after its close_notify).
                    rsize <<= 1
                    shorts = 0
                    try:
                        more = os.read(fd, rsize) if sslobj is None else tls.read(sslobj, self.sock, rsize)
                    except _WOULD_BLOCK:
                        break
                    if not more:
                        break  # the end: the next read reports it
                    data += more
                    n = len(more)
                if n >= rsize:
                    shorts = 0
                    if rsize < MAX_BUF_SIZE:
                        rsize <<= 1
                elif n < rsize >> 1:
                    shorts += 1
                    if shorts > SHORTS_TO_SHRINK and rsize > MIN_BUF_SIZE:
                        rsize >>= 1
                self.last = time.monotonic()
                self._in_read = True
                msgs0, bytes0 = self.in_msgs, self.in_bytes
                try:
                    self.parse(data)
                except ProtocolError as e:
                    self.protocol_error(e)
                if self.in_msgs != msgs0:
                    self.count_received(self.in_msgs - msgs0, self.in_bytes - bytes0)
                stalled = self.flush_clients()
                self._in_read = False
                if stalled:
                    stalled.stalled_wait(self)
                elif stalled is False:
                    self.yield_to_others()
        except OSError:
            self.close_connection(ClosedState.ReadError)
        except Exception:
            # A bug in gnatsd, not the client's fault (gevent: handle_error vs client errors).
            # Log it with its traceback and close this connection only; the server goes on.
            log.exception("%s - Internal error, closing the connection", self)
            self.close_connection(ClosedState.ProtocolViolation)

    def park(self):
        """Wait for the next read without a greenlet: a watcher on the socket starts a new
        readloop when data arrives. Does not yield.

        A greenlet suspended in recv keeps its stack, copied to the heap, and on PyPy far
        more: when the read that found no data left the JIT's machine code (a failing guard),
        the rest of the loop runs in the JIT's blackhole interpreter, whose frames (three
        256-entry register arrays, 6 KB per Python call level) stay alive for as long as the
        greenlet waits. 10,000 idle clients took 1 to 2.5 GB on PyPy that way; parked, they
        hold no greenlet at all (docs/BENCHMARKS.md, "Memory and scale").

        Everything else a connection needs between reads is on the Client (parser state,
        read size) or a hub timer. A TLS connection parks only after its SSL object asked for
        more bytes from the socket, so no decrypted data can wait unseen in OpenSSL.

        The watcher stays started from one park to the next: starting a gevent watcher on
        PyPy makes a cffi handle each time (5 % of a JetStream publisher's profile).
        """
        self._parked = True
        watcher = self._read_watcher
        if watcher is None:
            watcher = self._read_watcher = self._hub.loop.io(self.fd, 1)
        if not watcher.active:
            watcher.start(self._unpark)

    def _unpark(self):
        """The socket is readable: run a new readloop if none runs. A hub callback."""
        if self._parked:
            self._parked = False
            greenlet(self.readloop, self._hub).switch()
        else:
            # A readloop runs and waits (it yields, or a slow consumer stalls it) while more
            # data waits: stop watching until it parks, or the hub would spin on the socket.
            self._read_watcher.stop()

    def yield_to_others(self):
        """Let every other greenlet and connection run once. Yields.

        A gevent recv that finds data returns without visiting the hub, so a publisher that
        keeps its socket full would starve everyone else. gevent.sleep(0) is not enough: it
        only queues a callback, and the hub runs up to 50 rounds of callbacks before it polls
        for I/O again, so other clients waited about 100 ms per request on PyPy during a
        flood. A zero-second timer fires only after the next poll.
        """
        timer = self._yield_timer
        if timer is None:
            timer = self._yield_timer = self._hub.loop.timer(0.0)
        self._hub.wait(timer)

    def protocol_error(self, e):
        """The one place parse errors become closes (Go: readLoop's error branch)."""
        if self.closed:
            return
        if e.err is None:
            log.error("%s - %s", self, e)
        else:
            log.error("%s - %s", self, e.err)
            self.send_err(e.err)
        if e.reason == ClosedState.AuthenticationViolation:
            events.send_auth_error_event(self)  # Go: authViolation
        self.close_connection(e.reason)

    def flush_clients(self):
        """Go: flushClients. Write what this read queued for each client it fed, once.

        A client without a running writeloop gets its data written here, without blocking (Go
        flushes inline too); what the socket does not take starts its writeloop.
        Returns None when nobody was fed, False when nobody fed is backed up, else a client
        whose pending bytes passed half of max_pending (Go: out.stc, the stall gate).
        """
        pcd = self.pcd
        if not pcd:
            return None
        stalled = False
        now = self.last
        for c in pcd:
            c.last = now  # Go 2.9.10: deliveries count as activity for the ping timer
            if c._wl is None:
                c.flush_inline()
                if c.out:
                    c.signal_flush()
            if c.pb > c.mp >> 1 and c is not self and not c.closed:
                stalled = c
        pcd.clear()
        return stalled

    def flush_inline(self):
        """Write pending output with one non-blocking write; keep the rest. Does not yield.

        Only while no writeloop runs, so writes never interleave.
        """
        out = self.out
        if not out or self.sock is None:
            return
        data = out[0] if len(out) == 1 else b"".join(out)
        try:
            if self._tls is None:
                n = os.write(self.fd, data)
            else:
                # The SSL object on the non-blocking socket. On a would-block, OpenSSL may have
                # taken part of the buffer and must be given the same bytes again: the
                # writeloop's next write starts with `data`, which starts with them.
                n = self._tls.write(data if len(data) <= MAX_WRITE else data[:MAX_WRITE])
        except OSError:
            n = 0  # would block, or broken: the writeloop retries and reports the error
        self.pb -= n
        self.out = [data[n:]] if n < len(data) else []

    def stalled_wait(self, producer):
        """Go: stalledWait. Block the producer's readloop until this client's backlog drains
        below half of max_pending, or for 100 ms to 1 s as the backlog grows. Yields."""
        if self._stall is None:
            self._stall = Event()
        pb, mp = self.pb, self.mp
        ttl = STALL_MIN
        if pb >= mp:
            ttl = STALL_MAX
        elif pb > mp >> 1:
            half = mp >> 1
            ttl += STALL_MIN * ((pb - half) // max(half // 10, 1))
        if not self._stall.wait(min(ttl, STALL_MAX)):
            log.debug("%s - Timed out of fast producer stall (%dms)", producer, ttl * 1000)

    def signal_flush(self):
        """Start the writeloop unless it runs already. Does not yield."""
        if self._wl is None and self.sock is not None:
            self._wl = gevent.spawn(self.writeloop)

    def writeloop(self):
        """Go: writeLoop. Write pending chunks until none are left. Runs in its own greenlet.

        Unlike Go's, it runs only while there is a backlog, started by signal_flush, so an
        idle connection has no writeloop greenlet (10,000 idle clients used about a third
        less memory). A closed connection's socket is closed here, after the last flush.
        """
        try:
            while self.out and self.sock is not None:
                self.flush_outbound()
        finally:
            self._wl = None
            if self.closed:
                self._close_socket()

    def flush_outbound(self):
        """Go: flushOutbound. May yield: writes pending chunks, each batch within write_deadline.

        Writes in batches of about MAX_WRITE bytes so that pending bytes fall (and a stalled
        producer resumes) while a large backlog is still going out.
        """
        out = self.out
        self.out = []
        n = len(out)
        i = 0
        while i < n:
            if self.sock is None:
                return
            j = i + 1
            size = len(out[i])
            while j < n and size < MAX_WRITE:
                size += len(out[j])
                j += 1
            data = out[i] if j == i + 1 else b"".join(out[i:j])
            i = j
            timer = Timeout.start_new(self.srv.opts.write_deadline)
            try:
                self.sock.sendall(data)
            except Timeout as t:
                if t is not timer:
                    raise
                if not self.closed:
                    log.info("%s - Slow Consumer Detected: WriteDeadline of %ss exceeded with %d chunks "
                             "of %d total bytes.", self, self.srv.opts.write_deadline, n, self.pb)
                    self.srv.slow_consumers += 1
                    self.acc.slow_consumers += 1
                self.close_connection(ClosedState.SlowConsumerWriteDeadline)
                return
            except OSError:
                self.close_connection(ClosedState.WriteError)
                return
            finally:
                timer.close()
            self.pb -= len(data)
            if self._stall is not None and self.pb <= self.mp >> 1:
                self._stall.set()
                self._stall = None

    # -- outbound ------------------------------------------------------------------------

    def send_proto_now(self, data):
        """Go: sendProtoNow, before the loops run: write `data` at once. Yields. False when
        the write failed."""
        try:
            self.sock.sendall(data)
            return True
        except OSError:
            return False

    def enqueue_proto(self, data):
        """Go: enqueueProto. Queue bytes and wake the writeloop. Does not yield."""
        if self.closed:
            return
        self.out.append(data)
        self.pb += len(data)
        if self.pb > self.mp:
            self.slow_consumer()
        elif self._in_read:
            self.pcd[self] = None  # written after this read, with everything else it produced
        else:
            self.signal_flush()

    def max_conn_exceeded(self):
        """Go: maxConnExceeded."""
        log.error("%s - %s", self, ERR_MAX_CONNECTIONS)
        self.send_err(ERR_MAX_CONNECTIONS)
        self.close_connection(ClosedState.MaxConnectionsExceeded)

    def auth_violation(self):
        """Go: authViolation, outside of CONNECT (a reload that took away this client's rights)."""
        log.error("%s - %s", self, ERR_AUTH_VIOLATION)
        self.send_err(ERR_AUTH_VIOLATION)
        events.send_auth_error_event(self)
        self.close_connection(ClosedState.AuthenticationViolation)

    def slow_consumer(self):
        """Go: queueOutbound's max-pending branch. Drop the pending data and close."""
        log.info("%s - Slow Consumer Detected: MaxPending of %d Exceeded", self, self.mp)
        self.srv.slow_consumers += 1
        self.acc.slow_consumers += 1
        self.close_connection(ClosedState.SlowConsumerPendingBytes)

    def send_err(self, text):
        self.enqueue_proto(b"-ERR '" + text.encode() + b"'\r\n")

    def send_ok(self):
        self.enqueue_proto(OK_PROTO)

    # -- protocol handlers (called by the parser; none of them yields) --------------------

    def process_connect(self, arg):
        """Go: processConnect."""
        if self._auth_timer is not None:
            self._auth_timer.close()
            self._auth_timer = None
        self.last = time.monotonic()
        self.rtt = max(time.time() - self.start, 1e-6)  # Go: computeRTT(c.start)
        self._set_ping_timer(self._first_ping_interval())
        copts = self.copts
        try:
            # A second CONNECT decodes over the first, as Go's json.Unmarshal into c.opts.
            gojson.decode_struct(arg, _CONNECT_FIELDS, copts)
        except ValueError as e:
            raise ProtocolError(f"processConnect: {e}") from None
        self.connect_received = True
        self.auth_pending = False
        if self.ws is not None and not copts.get("jwt") and self.ws.cookie_jwt:
            copts["jwt"] = self.ws.cookie_jwt  # Go: a WebSocket client's JWT may come in a cookie
        if self.srv.trusted_keys is None:
            copts.pop("jwt", None)  # Go: outside operator mode the JWT is discarded
        self.verbose = copts["verbose"]
        self.pedantic = copts["pedantic"]
        self.echo = copts["echo"]
        self.headers = copts.get("headers", False) and not self.srv.opts.no_header_support
        self.no_responders = copts.get("no_responders", False)
        srv = self.srv
        # May yield: a bcrypt hash is checked in the thread pool.
        if self.auth_required and not srv.check_authentication(self):
            raise ProtocolError("authentication error", ERR_AUTH_VIOLATION,
                                ClosedState.AuthenticationViolation)
        if self.closed:
            # Closed while bcrypt ran (shutdown, lame duck): parse nothing more of this read,
            # or a SUB after this CONNECT would outlive its connection in the sublist.
            raise ProtocolError("connection closed during authentication")
        if copts.get("account") or copts.get("new_account"):
            raise ProtocolError("account designation in CONNECT", ERR_AUTH_VIOLATION,
                                ClosedState.AuthenticationViolation)
        proto = copts["protocol"]
        if proto < 0 or proto > 1:
            raise ProtocolError(ERR_BAD_CLIENT_PROTOCOL, ERR_BAD_CLIENT_PROTOCOL,
                                ClosedState.BadClientProtocolVersion)
        if self.no_responders and not self.headers:
            raise ProtocolError(ERR_NO_RESPONDERS_HEADERS, ERR_NO_RESPONDERS_HEADERS,
                                ClosedState.NoRespondersRequiresHeaders)
        events.account_connect_event(self)  # Go: checkAuthentication, for accounts other than $G
        if self.verbose:
            self.send_ok()

    def register_user(self, user):
        """Go: RegisterUser / RegisterNkeyUser. Join the account of `user` (an auth.User or
        auth.NkeyUser, as the server keeps it) and take its permissions, or none; a user's
        name goes into the CONNECT options, where logs and monitoring look for it. Returns
        False, the connection closed, when its account is full. Does not yield."""
        if user.account:
            acc = self.srv.accounts[user.account]
            if not self.register_with_account(acc):
                self.max_account_conn_exceeded()
                return False
        perms = user.permissions
        if perms is None:
            self.perms = self.pperms = self.dperms = None
        else:
            p = ClientPermissions(perms)
            self.perms = p
            self.pperms = p if p.has_pub else None
            self.dperms = p if p.has_delivery else None
        name = getattr(user, "username", "")
        if name:
            self.copts["user"] = name
        return True

    def register_with_account(self, acc):
        """Go: registerWithAccount. Move to account `acc`; False when it has no room."""
        prev = self.acc
        if prev is not None:
            prev.remove_client(self)
        self.acc = acc
        self.apply_account_limits()
        if self.kind == CLIENT and acc.max_total_connections_reached():
            return False
        acc.add_client(self)
        events.acc_conns_update(self.srv, acc)
        return True

    def apply_account_limits(self):
        """Go: applyAccountLimits. The lowest of the user JWT's, the account's and the
        server's max_payload and max_subscriptions (here 0 or less means no limit, as in the
        options)."""
        opts = self.srv.opts
        mpay, msubs = self.acc.mpay, self.acc.msubs
        if self.juc is not None:
            upay, usubs = user_jwt_limits(self.juc, self.acc)
            mpay, msubs = _min_limit(upay, mpay), _min_limit(usubs, msubs)
        self.mpay = _min_limit(mpay, opts.max_payload)
        self.msubs = _min_limit(msubs, opts.max_subs)

    def process_no_auth_user(self):
        """Go: parse at OP_START. Auth is required and the first op is not CONNECT: with a
        no_auth_user that exists, the connection becomes that user and goes on."""
        user = no_auth_user(self.srv)
        if user is None:
            return False
        self.register_user(user)
        if self._auth_timer is not None:
            self._auth_timer.close()
            self._auth_timer = None
        self.connect_received = True
        self.auth_pending = False
        events.account_connect_event(self)
        return True

    def process_info(self, arg):
        """Go: processInfo. A client's INFO is decoded and ignored."""
        try:
            gojson.decode_struct(arg, _INFO_FIELDS, {})
        except ValueError as e:
            raise ProtocolError(f"processInfo: {e}") from None

    def process_err(self, arg):
        """Go: processErr. A client that sends -ERR is logged and closed."""
        log.error("%s - Client Error %s", self, arg.decode("utf-8", "replace"))
        raise ProtocolError(f"Client Error {arg!r}", None, ClosedState.ParseError)

    def process_ping(self):
        """Go: processPing. Answer PONG; maybe send an INFO after the first one."""
        self.enqueue_proto(PONG_PROTO)
        self.last_client_ping = time.monotonic()
        if not self.first_pong_sent:
            self.first_pong_sent = True
            # Go 2.9.10 sends an INFO here only when the client's max_payload differs from
            # the server's or the cluster URLs changed since it connected.
            if self.copts["protocol"] >= 1 and self.mpay != self.srv.opts.max_payload:
                self.enqueue_proto(self.srv.client_info_json(self))

    def process_pong(self):
        """Go: processPong. Clears the outstanding pings and measures the round trip."""
        self.pings_out = 0
        if self.rtt_start is not None:
            self.rtt = time.monotonic() - self.rtt_start

    def process_pub(self, args):
        """Go: processPub. Returns the payload size the parser must read."""
        n = len(args)
        if n == 2:
            self.pa_subject, szb = args
            self.pa_reply = None
        elif n == 3:
            self.pa_subject, self.pa_reply, szb = args
        else:
            raise ProtocolError(f"processPub Parse Error: {b' '.join(args)!r}")
        size = parse_size(szb)
        if size < 0:
            raise ProtocolError(f"processPub Bad or Missing Size: {b' '.join(args)!r}")
        if size > self.mpay and self.mpay > 0:
            raise ProtocolError(ERR_MAX_PAYLOAD, ERR_MAX_PAYLOAD, ClosedState.MaxPayloadExceeded)
        self.pa_szb = szb
        self.pa_hdr = -1
        if self.pedantic and not is_valid_literal_subject(self.pa_subject):
            self.send_err(ERR_INVALID_PUB_SUBJECT)
        return size

    def process_hpub(self, args):
        """Go: processHeaderPub."""
        if not self.headers:
            raise ProtocolError("message headers not supported")
        n = len(args)
        if n == 3:
            self.pa_subject, hdb, szb = args
            self.pa_reply = None
        elif n == 4:
            self.pa_subject, self.pa_reply, hdb, szb = args
        else:
            raise ProtocolError(f"processHeaderPub Parse Error: {b' '.join(args)!r}")
        hdr = parse_size(hdb)
        if hdr < 0:
            raise ProtocolError(f"processHeaderPub Bad or Missing Header Size: {b' '.join(args)!r}")
        size = parse_size(szb)
        if size < 0:
            raise ProtocolError(f"processHeaderPub Bad or Missing Total Size: {b' '.join(args)!r}")
        if hdr > size:
            raise ProtocolError(f"processHeaderPub Header Size larger then TotalSize: {b' '.join(args)!r}")
        if size > self.mpay and self.mpay > 0:
            raise ProtocolError(ERR_MAX_PAYLOAD, ERR_MAX_PAYLOAD, ClosedState.MaxPayloadExceeded)
        self.pa_szb = szb
        self.pa_hdb = hdb
        # Go delivers an HPUB with an empty header block as a plain MSG.
        self.pa_hdr = hdr if hdr > 0 else -1
        if self.pedantic and not is_valid_literal_subject(self.pa_subject):
            self.send_err(ERR_INVALID_PUB_SUBJECT)
        return size

    def process_sub(self, args):
        """Go: processSub / processSubEx (parseSub for the arguments)."""
        n = len(args)
        if n == 2:
            subject, sid = args
            queue = None
        elif n == 3:
            subject, queue, sid = args
        else:
            raise ProtocolError(f"processSub Parse Error: {b' '.join(args)!r}")
        # Go: the permission check comes first; the `_sys_` queue group is never allowed.
        perms = self.perms
        if (perms is not None and not perms.can_subscribe(subject, queue)) or queue == SYS_QUEUE_GROUP:
            self.sub_permission_violation(subject, queue, sid)
            return
        if perms is not None and perms.mdeny is not None:
            self.dperms = perms  # a wildcard sub wider than a deny entry: filter deliveries
        max_tokens = self.srv.opts.max_sub_tokens
        if max_tokens and subject.count(b".") >= max_tokens:
            self.max_tokens_violation(subject, sid)
            return
        if self.msubs > 0 and len(self.subs) >= self.msubs:
            log.error("%s - Maximum Subscriptions Exceeded (%d)", self, self.msubs)
            self.send_err(ERR_MAX_SUBS)
            return
        if sid in self.subs:
            # Go: a duplicate sid is ignored; the first subscription stays.
            if self.verbose:
                self.send_ok()
            return
        if not is_valid_subject(subject):
            self.send_err(ERR_INVALID_SUBJECT)
            return
        sub = Subscription(self, subject, queue, sid)
        acc = self.acc
        try:
            acc.sublist.insert(sub)
        except SublistError:
            self.send_err(ERR_INVALID_SUBJECT)
            return
        self.subs[sid] = sub
        if self.verbose:
            self.send_ok()
        if acc.stream_imports:
            add_shadow_subscriptions(self, acc, sub)

    def subscribe_internal(self, subject, sid, cb, queue=None):
        """Go: processSubEx for the server's own clients: a subscription (in the queue group
        `queue`, if given) whose messages go to `cb` (see process_msg_results). Does not yield."""
        sub = Subscription(self, subject, queue, sid, cb)
        self.acc.sublist.insert(sub)
        self.subs[sid] = sub
        return sub

    def sub_permission_violation(self, subject, queue, sid):
        """Go: subPermissionViolation."""
        who = auth_user_text(self.copts)
        sid = sid.decode("utf-8", "replace")
        if queue is None:
            self.send_err(f"Permissions Violation for Subscription to {go_quote(subject)}")
            log.error("%s - Subscription Violation - %s, Subject %s, SID %s", self, who, go_quote(subject), sid)
        else:
            self.send_err(f"Permissions Violation for Subscription to {go_quote(subject)} "
                          f"using queue {go_quote(queue)}")
            log.error("%s - Subscription Violation - %s, Subject %s, Queue: %s, SID %s", self, who,
                      go_quote(subject), go_quote(queue), sid)

    def max_tokens_violation(self, subject, sid):
        """Go: maxTokensViolation."""
        self.send_err(f"Permissions Violation for Subscription to {go_quote(subject)}, too many tokens")
        log.error("%s - Subscription Violation Too Many Tokens - %s, Subject %s, SID %s", self,
                  auth_user_text(self.copts), go_quote(subject), sid.decode("utf-8", "replace"))

    def process_unsub(self, args):
        """Go: processUnsub."""
        n = len(args)
        if n == 1:
            sid, maxm = args[0], -1
        elif n == 2:
            sid, maxm = args[0], parse_size(args[1])
        else:
            raise ProtocolError(f"processUnsub Parse Error: {b' '.join(args)!r}")
        sub = self.subs.get(sid)
        unsub = False
        if sub is not None:
            if maxm > 0 and maxm > sub.nm:
                sub.max = maxm
            else:
                sub.max = 0
                unsub = True
        if self.verbose:
            self.send_ok()
        if unsub:
            self.unsubscribe(sub)

    def unsubscribe(self, sub):
        """Go: unsubscribe. Remove `sub` from this client and the sublist, with its shadows
        in other accounts; forget the service responses nobody here waits for now. Does not
        yield."""
        if self.subs.get(sub.sid) is sub:
            del self.subs[sub.sid]
            acc = self.acc
            acc.sublist.remove(sub)
            if sub.shadow is not None:
                remove_shadow_subs(sub)
            if acc.rr_map:
                acc.check_for_reverse_entry(sub.subject, None, True)

    # -- delivery ------------------------------------------------------------------------

    def count_received(self, msgs, size):
        """Go: the end of readLoop's pass. What one read brought in counts for the server and
        the account at once (the server's own messages, which no read brings, do not)."""
        srv = self.srv
        srv.in_msgs += msgs
        srv.in_bytes += size
        acc = self.acc
        acc.in_msgs += msgs
        acc.in_bytes += size

    def process_inbound_msg(self, msg):
        """Go: processInboundClientMsg. `msg` is the payload with its CRLF. Does not yield."""
        self.in_msgs += 1
        self.in_bytes += len(msg) - 2
        acc = self.acc
        if acc.mappings is not None:
            # Go maps in the parser, before the permission checks see the subject.
            mapped = acc.select_mapped_subject(self.pa_subject)
            if mapped is not None:
                self.pa_subject = mapped
        subject = self.pa_subject
        reply = self.pa_reply
        # Go's order: the gateway prefix, the publish permissions, then reserved replies.
        # Subjects and replies are never empty (split tokens): testing the first byte (`_`,
        # or `$` for $JS.ACK.) before startswith saves ~35 ns per PUB on CPython, more than
        # the permission test costs.
        if subject[0] == 95 and subject.startswith(b"_GR_.") and len(subject) > 5:
            self.pub_permission_violation(subject)
            return
        pperms = self.pperms
        if pperms is not None and not pperms.pub_allowed(subject):
            self.pub_permission_violation(subject)
            return
        if (reply is not None and (reply[0] == 95 or reply[0] == 36) and reply.startswith(RESERVED_REPLY_PREFIXES)
                and self.kind == CLIENT and self._reserved_reply(reply)):
            self.send_err(f"Permissions Violation for Publish with Reply of {go_quote(reply)}")
            return
        if self.verbose:
            self.send_ok()
        result = acc.sublist.match(subject)
        if not result.psubs and not result.qsubs:
            if reply is not None and self.no_responders:
                self.send_no_responders(reply)
            return
        delivered = self.process_msg_results(acc, result, subject, reply, msg)
        if not delivered and reply is not None and self.no_responders:
            self.send_no_responders(reply)

    def pub_permission_violation(self, subject):
        """Go: pubPermissionViolation. The message is dropped; the connection stays."""
        self.send_err(f"Permissions Violation for Publish to {go_quote(subject)}")
        log.error("%s - Publish Violation - %s, Subject %s", self, auth_user_text(self.copts), go_quote(subject))

    @staticmethod
    def _reserved_reply(reply):
        # Go: isReservedReply. `_R_.` alone counts; the others need something after the prefix.
        if reply.startswith(b"_R_."):
            return True
        return len(reply) > (8 if reply.startswith(b"$JS.ACK.") else 5)

    def process_msg_results(self, acc, result, subject, reply, msg):
        """Go: processMsgResults. Deliver to every plain sub and one member of each queue group
        of `acc`'s `result`. Returns how many got it, internal subscriptions included."""
        szb = self.pa_szb
        if self.pa_hdr < 0:
            mh = (b" " + reply + b" " + szb + CRLF) if reply is not None else (b" " + szb + CRLF)
            hmh = smh = smsg = None
        else:
            # Header-aware subscribers get HMSG; the others get MSG without the header block,
            # its size written as total - hdr in plain decimal.
            sp_reply = b" " + reply if reply is not None else b""
            hmh = sp_reply + b" " + self.pa_hdb + b" " + szb + CRLF
            smsg = msg[self.pa_hdr :]
            smh = sp_reply + b" " + str(len(smsg) - 2).encode() + CRLF
            mh = None
        delivered = internal = 0
        for sub in result.psubs:
            if sub.icb is not None or sub.im is not None:
                if self.deliver_special(acc, sub, subject, reply, mh, msg, hmh, smh, smsg):
                    if sub.icb is None:
                        delivered += 1
                    else:
                        internal += 1
            elif self.deliver_msg(sub, subject, mh, msg, hmh, smh, smsg):
                delivered += 1
        for group in result.qsubs:
            n = len(group)
            start = random.randrange(n) if n > 1 else 0
            for i in range(n):
                sub = group[(start + i) % n]
                if sub.icb is not None or sub.im is not None:
                    if self.deliver_special(acc, sub, subject, reply, mh, msg, hmh, smh, smsg):
                        if sub.icb is None:
                            delivered += 1
                        else:
                            internal += 1
                        break
                elif self.deliver_msg(sub, subject, mh, msg, hmh, smh, smsg):
                    delivered += 1
                    break
        if delivered:
            # Go: updateStats, once per message; every copy counts the full size.
            size = delivered * (len(msg) - 2)
            acc.out_msgs += delivered
            acc.out_bytes += size
            srv = self.srv
            srv.out_msgs += delivered
            srv.out_bytes += size
        return delivered + internal

    def deliver_special(self, acc, sub, subject, reply, mh, msg, hmh, smh, smsg):
        """The rare subscriptions of process_msg_results: internal ones, whose callback takes
        the message (Go: sub.icb), and shadows of another account's subscriptions, which get
        it under that account's subject (Go: sub.im)."""
        if sub.icb is not None:
            if sub.client is self and not self.echo:
                return False
            sub.icb(sub, self, acc, subject, reply, msg)
            return True
        if self.pa_psi:
            return False  # Go: a message imported from a service is not exported again as a stream
        return self.deliver_msg(sub, sub.im.deliver_subject(subject), mh, msg, hmh, smh, smsg)

    def deliver_msg(self, sub, subject, mh, msg, hmh, smh, smsg):
        """Go: deliverMsg. Queue one MSG/HMSG for `sub`'s client. Returns False if skipped."""
        client = sub.client
        if client is self and not self.echo:
            return False
        if client.closed:
            return False
        dperms = client.dperms
        if dperms is not None and dperms.mdeny is not None and dperms.deliver_denied(subject):
            return False  # Go: checkDenySub, a denied subject under a wider wildcard sub
        sub.nm += 1
        smax = sub.max
        if smax and sub.nm > smax:
            client.unsubscribe(sub)
            return False
        if mh is not None:
            line = b"MSG " + subject + b" " + sub.sid + mh
        elif client.headers:
            line = b"HMSG " + subject + b" " + sub.sid + hmh
        else:
            line = b"MSG " + subject + b" " + sub.sid + smh
            msg = smsg
        out = client.out
        out.append(line)
        out.append(msg)
        if dperms is not None and dperms.replies is not None and self.pa_reply is not None:
            dperms.add_reply(self.pa_reply)  # Go: allow_responses may now publish to it
        client.pb += len(line) + len(msg)
        client.out_msgs += 1
        client.out_bytes += len(msg) - 2
        if client.pb > client.mp:
            client.slow_consumer()
            return True
        self.pcd[client] = None
        if smax and sub.nm == smax:
            client.unsubscribe(sub)
        return True

    def send_no_responders(self, reply):
        """Go: the no-responders branch of processInboundClientMsg (subForReply)."""
        for sub in self.acc.sublist.match(reply).psubs:
            if sub.client is self:
                n = str(len(NO_RESPONDERS_HDR)).encode()
                self.enqueue_proto(b"HMSG " + reply + b" " + sub.sid + b" " + n + b" " + n + CRLF
                                   + NO_RESPONDERS_HDR + CRLF)
                return

    # -- timers --------------------------------------------------------------------------

    def _first_ping_interval(self):
        # Go: setFirstPingTimer. min(ping_interval, 2s) plus up to 20% jitter.
        d = min(self.srv.opts.ping_interval, 2.0)
        return d + random.random() * d * 0.2

    def _set_ping_timer(self, after):
        if self._ping_timer is not None:
            self._ping_timer.close()
        if self.closed:
            return
        self._ping_timer = self._hub.loop.timer(after)
        self._ping_timer.start(self.process_ping_timer)

    def process_ping_timer(self):
        """Go: processPingTimer. Runs as a hub callback: must not yield."""
        if self.closed:
            return
        opts = self.srv.opts
        now = time.monotonic()
        need_rtt = self.rtt == 0 or self.rtt_start is None or now - self.rtt_start > 3600
        if need_rtt or (now - self.last >= opts.ping_interval
                        and now - self.last_client_ping >= opts.ping_interval):
            if self.pings_out + 1 > opts.ping_max:
                log.debug("%s - Stale Client Connection - Closing", self)
                self.send_err(ERR_STALE_CONNECTION)
                self.close_connection(ClosedState.StaleConnection)
                return
            self.pings_out += 1
            self.rtt_start = now
            self.enqueue_proto(PING_PROTO)
        self._set_ping_timer(opts.ping_interval)

    def set_expiration(self, juc, valid_for):
        """Go: setExpiration. Close the connection when the user JWT expires, or when its
        connect time range (`valid_for` seconds, 0: none) ends, whichever comes first."""
        if juc.exp == 0:
            if not valid_for:
                return
            after = valid_for
        else:
            after = max(juc.exp - int(time.time()), 0)
            if valid_for and valid_for < after:
                after = valid_for
        self._auth_timer = self._hub.loop.timer(after)
        self._auth_timer.start(self.auth_expired)

    def auth_expired(self):
        """Go: authExpired. Runs as a hub callback."""
        self._auth_timer = None
        log.debug("%s - User Authentication Expired", self)
        self.send_err("User Authentication Expired")
        self.close_connection(ClosedState.AuthenticationExpired)

    def account_auth_expired(self):
        """Go: accountAuthExpired."""
        log.debug("%s - Account Authentication Expired", self)
        self.send_err("Account Authentication Expired")
        self.close_connection(ClosedState.AuthenticationExpired)

    def max_account_conn_exceeded(self):
        """Go: maxAccountConnExceeded."""
        log.error("%s - %s", self, ERR_TOO_MANY_ACCOUNT_CONNECTIONS)
        self.send_err(ERR_TOO_MANY_ACCOUNT_CONNECTIONS)
        self.close_connection(ClosedState.MaxAccountConnectionsExceeded)

    def auth_timeout(self):
        """Go: authTimeout. Runs as a hub callback."""
        self._auth_timer = None
        if self.closed or self.connect_received:
            return
        log.error("%s - Authentication Timeout", self)
        self.send_err(ERR_AUTH_TIMEOUT)
        self.close_connection(ClosedState.AuthenticationTimeout)

    # -- closing -------------------------------------------------------------------------

    def close_connection(self, reason):
        """Go: closeConnection. Idempotent; never yields.

        Subscriptions go at once. Pending output is flushed by the writeloop, which then
        closes the socket, unless the reason says to drop it (Go: skipFlushOnClose).
        """
        if self.closed:
            return
        self.closed = True
        self.close_reason = reason
        self.stop_time = time.time()
        for watcher in (self._ping_timer, self._auth_timer, self._read_watcher):
            if watcher is not None:
                watcher.close()
        # not _yield_timer: a readloop may wait on it
        self._ping_timer = self._auth_timer = self._read_watcher = None
        acc = self.acc
        sublist = acc.sublist
        for sub in self.subs.values():
            sublist.remove(sub)  # self.subs stays: /connz?state=closed&subs=1 lists them
            if sub.shadow is not None:
                remove_shadow_subs(sub)
        if acc.rr_map:
            for sub in self.subs.values():
                acc.check_for_reverse_entry(sub.subject, None, True)
        acc.remove_client(self)
        self.srv.remove_client(self)
        events.account_disconnect_event(self, str(reason))  # Go: saveClosedClient
        if acc is not self.srv.gacc:  # Go: removeClient reports every account but the global one
            events.acc_conns_update(self.srv, acc)
        if self._stall is not None:
            self._stall.set()
            self._stall = None
        log.debug("%s - Client connection closed: %s", self, reason)
        if reason in _SKIP_FLUSH:
            self.out = []
            self._close_socket()
        elif self._wl is None:
            if self.out:
                self.signal_flush()  # the writeloop flushes, then closes the socket
            else:
                self._close_socket()

    def _close_socket(self):
        sock = self.sock
        if sock is None:
            return
        self.sock = None
        if self._tls is not None:
            tls.close_notify(self._tls)
        try:
            sock.close()
        except OSError:
            pass
