"""Locust users that speak NATS (over gevent sockets: locust itself runs on gevent).

    locust -f loadtests/locustfile.py --headless -u 8 -r 8 -t 30s --host nats://127.0.0.1:4222
    locust -f loadtests/locustfile.py --host nats://127.0.0.1:4222          # web UI on :8089
    locust -f loadtests/locustfile.py NatsRequester NatsResponder ...      # only some users

Users (each one connection; pick some by naming their classes on the command line):

    NatsPublisher  PublishTasks: PUB one message and flush (PING/PONG); reported as request type
                   PUB, its response time the round trip of the flush. A -ERR from the server
                   (e.g. 'Maximum Payload Violation') or a lost connection is a failure.
    NatsSubscriber SubscribeTasks: SUB to the subject; every message received is reported as
                   request type MSG with its end-to-end latency (publishers stamp the send time
                   in the payload when it has room: 10 bytes or more).
    NatsRequester  RequestTasks: a request (PUB with a reply inbox) and the wait for its reply;
                   request type REQ. No reply within --nats-timeout, a no-responders status or a
                   -ERR is a failure.
    NatsResponder  RespondTasks: answers requests (queue group `locust-responders`); not reported.
                   One is started before the others (fixed_count), and requesters wait up to
                   --nats-wait-responders seconds for a responder before their first request.

Connecting is reported as request type CONNECT (failures: refused, -ERR at CONNECT, timeout).
The host is `nats://[user:pass@|token@]host:port`. Options (also as LOCUST_NATS_* environment
variables): --nats-subject (PUB/SUB, default locust.msgs), --nats-req-subject (requests,
default locust.req), --nats-payload, --nats-timeout, --nats-wait-responders, --nats-think.
See loadtests/README.md.
"""
from __future__ import annotations

import itertools
import json
import logging
import os
import struct
import time
from urllib.parse import unquote, urlsplit

import gevent
from gevent import socket
from gevent.event import AsyncResult
from gevent.lock import Semaphore
from locust import TaskSet, User, constant, events, task

log = logging.getLogger("locust.nats")

DEFAULTS = {
    "nats_subject": "locust.msgs",
    "nats_req_subject": "locust.req",
    "nats_payload": 16,
    "nats_timeout": 2.0,
    "nats_wait_responders": 5.0,
    "nats_think": 0.0,
}
STAMP = b"LT"  # payload prefix: b"LT" + 8-byte big-endian time.time_ns()
STAMP_LEN = 10


@events.init_command_line_parser.add_listener
def _add_arguments(parser):
    group = parser.add_argument_group("NATS users (loadtests/locustfile.py)")
    group.add_argument("--nats-subject", default=DEFAULTS["nats_subject"], env_var="LOCUST_NATS_SUBJECT",
                       help="subject for publishers and subscribers (default %(default)s)")
    group.add_argument("--nats-req-subject", default=DEFAULTS["nats_req_subject"],
                       env_var="LOCUST_NATS_REQ_SUBJECT",
                       help="subject for requesters and responders (default %(default)s)")
    group.add_argument("--nats-payload", type=int, default=DEFAULTS["nats_payload"], env_var="LOCUST_NATS_PAYLOAD",
                       help="payload bytes (default %(default)s)")
    group.add_argument("--nats-timeout", type=float, default=DEFAULTS["nats_timeout"],
                       env_var="LOCUST_NATS_TIMEOUT", help="seconds to wait for a PONG or a reply (default %(default)s)")
    group.add_argument("--nats-wait-responders", type=float, default=DEFAULTS["nats_wait_responders"],
                       env_var="LOCUST_NATS_WAIT_RESPONDERS",
                       help="requesters wait this long for a responder before starting (default %(default)s)")
    group.add_argument("--nats-think", type=float, default=DEFAULTS["nats_think"], env_var="LOCUST_NATS_THINK",
                       help="seconds each publisher/requester waits between tasks (default %(default)s)")


@events.init.add_listener
def _refresh_loop_clock(environment, **_kwargs):
    """gevent's loop caches its clock between iterations, and locust sets its --run-time timer
    (`gevent.spawn_later`) before the loop has run since start-up: after a slow start (imports
    on a loaded machine) a `-t 3s` run could stop after a fraction of a second. `init` is
    the last hook before that timer."""
    gevent.get_hub().loop.update_now()


# -- a small NATS client on gevent sockets -------------------------------------------------------


class NatsError(Exception):
    """The server answered -ERR, or the connection is gone."""


class NatsTimeout(NatsError):
    pass


class NoResponders(NatsError):
    pass


def parse_host(host):
    text = (host or "nats://127.0.0.1:4222").strip()
    if "://" not in text:
        text = "nats://" + text
    parts = urlsplit(text)
    if parts.scheme != "nats":
        raise ValueError(f"--host must be nats://host:port, got {host!r}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    return parts.hostname or "127.0.0.1", parts.port or 4222, user, password


class NatsClient:
    """One connection. A reader greenlet parses what the server sends: MSG/HMSG go to the
    subscription's callback, PONG answers the oldest flush, -ERR fails every operation in
    flight (a locust user has one at a time, so the error is the one its operation caused)."""

    def __init__(self, host, port, name, user=None, password=None, timeout=2.0):
        self.timeout = timeout
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.closed = False
        self.last_error = None
        self.pong_waiters = []
        self.requests = {}
        self.subs = {}
        self.sids = itertools.count(1)
        self.inbox = "_INBOX.locust" + os.urandom(8).hex()
        self.req_ids = itertools.count(1)
        self.buf = b""
        self.write_lock = Semaphore()
        self.reader = None
        try:
            self._handshake(name, user, password)
        except BaseException:
            self.close()
            raise

    def _handshake(self, name, user, password):
        line = self._read_line()
        if not line.startswith(b"INFO"):
            raise NatsError(f"not a NATS server: {line[:80]!r}")
        self.info = json.loads(line[4:].strip())
        opts = {"verbose": False, "pedantic": False, "name": name, "lang": "python-locust", "version": "1",
                "protocol": 1, "headers": True, "no_responders": True}
        if user is not None and password is None:
            opts["auth_token"] = user
        elif user is not None:
            opts["user"], opts["pass"] = user, password
        self.sock.sendall(b"CONNECT " + json.dumps(opts).encode() + b"\r\n")
        self.sock.settimeout(None)
        self.reader = gevent.spawn(self._read_loop)
        self.subs[b"0"] = self._on_reply
        self._send(b"SUB " + self.inbox.encode() + b".* 0\r\n")
        self.flush()  # an -ERR at CONNECT (authorization) fails here

    def _read_line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise NatsError("connection closed before INFO")
            self.buf += chunk
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line

    # -- operations

    def _send(self, data):
        if self.closed:
            raise NatsError(self.last_error or "connection closed")
        try:
            with self.write_lock:
                self.sock.sendall(data)
        except OSError as e:
            # The server may have closed after an -ERR (e.g. 'Maximum Payload Violation'):
            # let the reader take it in, so that the failure says why.
            if self.reader is not None and self.reader is not gevent.getcurrent():
                self.reader.join(timeout=0.5)
            self._close(f"connection lost: {e}")
            raise NatsError(self.last_error) from None

    def publish(self, subject, payload, reply=None):
        self._send(self.pub_frame(subject, payload, reply))

    def flush(self, timeout=None, before=b""):
        """PING and wait for the PONG (`before`: protocol to send in the same write)."""
        waiter = AsyncResult()
        self.pong_waiters.append(waiter)
        self._send(before + b"PING\r\n")
        self._wait(waiter, timeout, "PONG")

    @staticmethod
    def pub_frame(subject, payload, reply=None):
        head = b"PUB " + subject.encode() + (b" " + reply.encode() if reply else b"")
        return head + b" " + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n"

    def subscribe(self, subject, callback, queue=None):
        sid = str(next(self.sids)).encode()
        self.subs[sid] = callback
        self._send(b"SUB " + subject.encode() + (b" " + queue.encode() if queue else b"") + b" " + sid + b"\r\n")
        return sid

    def request(self, subject, payload, timeout=None):
        token = str(next(self.req_ids))
        waiter = AsyncResult()
        self.requests[token.encode()] = waiter
        try:
            self.publish(subject, payload, reply=f"{self.inbox}.{token}")
            return self._wait(waiter, timeout, "reply")
        finally:
            self.requests.pop(token.encode(), None)

    def _wait(self, waiter, timeout, what):
        timeout = self.timeout if timeout is None else timeout
        try:
            return waiter.get(timeout=timeout)
        except gevent.Timeout:
            # A PONG waiter stays queued: its late PONG must not answer the next PING.
            raise NatsTimeout(f"no {what} within {timeout:g}s") from None

    def close(self):
        self._close("closed")
        if self.reader is not None and self.reader is not gevent.getcurrent():
            self.reader.kill(block=False)

    def _close(self, why):
        if self.closed:
            return
        self.closed = True
        if self.last_error is None:
            self.last_error = why
        try:
            self.sock.close()
        except OSError:
            pass
        self._fail_pending(NatsError(self.last_error), closing=True)

    def _fail_pending(self, exc, closing=False):
        """Fail every operation in flight. Flushes stay queued while the connection lives, so
        that the PONGs still to come answer them and not later ones."""
        waiters = list(self.pong_waiters) + list(self.requests.values())
        if closing:
            self.pong_waiters = []
        self.requests.clear()
        for w in waiters:
            if not w.ready():
                w.set_exception(exc)

    # -- the reader greenlet

    def _on_reply(self, subject, reply, payload, status):
        token = subject.rpartition(b".")[2]
        waiter = self.requests.get(token)
        if waiter is None or waiter.ready():
            return  # a late reply to a request that timed out
        if status is not None and status.startswith(b"503"):
            waiter.set_exception(NoResponders("no responders"))
        elif status is not None and not status.startswith(b"2"):
            waiter.set_exception(NatsError(f"status {status.decode('latin-1')}"))
        else:
            waiter.set(payload)

    def _read_loop(self):
        buf = self.buf
        self.buf = b""
        try:
            while True:
                pos = 0
                while True:
                    eol = buf.find(b"\r\n", pos)
                    if eol < 0:
                        break
                    op = buf[pos:pos + 4]
                    if op == b"MSG " or op == b"HMSG":
                        args = buf[pos + 4:eol].split()
                        size = int(args[-1])
                        end = eol + 2 + size
                        if end + 2 > len(buf):
                            break
                        body = buf[eol + 2:end]
                        status = None
                        if op == b"HMSG":
                            hdr_len = int(args[-2])
                            status = body[9:body.find(b"\r\n")].strip() or None  # "NATS/1.0 503\r\n..."
                            body = body[hdr_len:]
                            reply = args[2] if len(args) == 5 else None
                        else:
                            reply = args[2] if len(args) == 4 else None
                        callback = self.subs.get(args[1])
                        if callback is not None:
                            callback(args[0], reply, body, status)
                        pos = end + 2
                        continue
                    line = buf[pos:eol]
                    pos = eol + 2
                    if line.startswith(b"PING"):
                        self._send(b"PONG\r\n")
                    elif line.startswith(b"PONG"):
                        if self.pong_waiters:
                            self.pong_waiters.pop(0).set(True)
                    elif line.startswith(b"-ERR"):
                        err = line[4:].strip().decode("utf-8", "replace")
                        self.last_error = f"-ERR {err}"
                        self._fail_pending(NatsError(self.last_error))
                    # +OK and INFO need nothing
                buf = buf[pos:]
                chunk = self.sock.recv(262144)
                if not chunk:
                    self._close(self.last_error or "connection closed by the server")
                    return
                buf += chunk
        except (OSError, NatsError) as e:
            self._close(self.last_error or f"connection lost: {e}")
        except Exception as e:  # a parse error: never leave waiters hanging
            self._close(f"client error: {type(e).__name__}: {e}")
            raise


# -- locust glue ---------------------------------------------------------------------------------


def _option(environment, name):
    parsed = getattr(environment, "parsed_options", None)
    value = getattr(parsed, name, None) if parsed is not None else None
    return DEFAULTS[name] if value is None else value


def _payload(size):
    if size >= STAMP_LEN:
        return STAMP + struct.pack(">Q", time.time_ns()) + b"x" * (size - STAMP_LEN)
    return b"x" * size


class NatsUser(User):
    """Base: one NATS connection per user, made on start and again after it is lost."""

    abstract = True
    kind = "user"

    def __init__(self, environment):
        super().__init__(environment)
        self.client = None
        self.subject = _option(environment, "nats_subject")
        self.req_subject = _option(environment, "nats_req_subject")
        self.think = _option(environment, "nats_think")
        self.payload_size = _option(environment, "nats_payload")
        self.timeout = _option(environment, "nats_timeout")

    def wait_time(self):
        """Between tasks of publishers and requesters (--nats-think)."""
        return self.think

    def fire(self, request_type, name, started, length=0, exception=None):
        self.environment.events.request.fire(
            request_type=request_type, name=name, response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length, exception=exception, context={})

    def nats(self):
        """The connected client, connecting first when needed (reported as CONNECT)."""
        if self.client is not None and not self.client.closed:
            return self.client
        host, port, user, password = parse_host(self.host)
        started = time.perf_counter()
        try:
            self.client = NatsClient(host, port, f"locust-{self.kind}", user, password, self.timeout)
        except (OSError, NatsError, ValueError, gevent.Timeout) as e:
            self.client = None
            self.fire("CONNECT", f"{host}:{port}", started, exception=e if isinstance(e, Exception) else None)
            gevent.sleep(0.1)  # do not spin on a server that is down
            return None
        self.fire("CONNECT", f"{host}:{port}", started)
        self.connected(self.client)
        return self.client

    def connected(self, client):
        """Hook: subscribe after (re)connecting."""

    def on_start(self):
        self.nats()

    def on_stop(self):
        if self.client is not None:
            self.client.close()
            self.client = None


class PublishTasks(TaskSet):
    @task
    def publish(self):
        user = self.user
        client = user.nats()
        if client is None:
            return
        payload = _payload(user.payload_size)
        started = time.perf_counter()
        try:
            client.flush(before=client.pub_frame(user.subject, payload))
        except NatsError as e:
            user.fire("PUB", user.subject, started, len(payload), e)
        else:
            user.fire("PUB", user.subject, started, len(payload))


class SubscribeTasks(TaskSet):
    wait_time = constant(0.5)

    @task
    def stay_subscribed(self):
        self.user.nats()  # resubscribes after a lost connection


class RequestTasks(TaskSet):
    def on_start(self):
        """Wait (unreported) until a responder answers, so that start-up order is no failure."""
        user = self.user
        deadline = time.monotonic() + _option(user.environment, "nats_wait_responders")
        while time.monotonic() < deadline:
            client = user.nats()
            if client is None:
                continue
            try:
                client.request(user.req_subject, b"", timeout=0.5)
                return
            except NatsError:
                gevent.sleep(0.05)

    @task
    def request(self):
        user = self.user
        client = user.nats()
        if client is None:
            return
        payload = _payload(user.payload_size)
        started = time.perf_counter()
        try:
            reply = client.request(user.req_subject, payload)
        except NatsError as e:
            user.fire("REQ", user.req_subject, started, 0, e)
        else:
            user.fire("REQ", user.req_subject, started, len(reply))


class RespondTasks(TaskSet):
    wait_time = constant(0.5)

    @task
    def stay_subscribed(self):
        self.user.nats()


class NatsPublisher(NatsUser):
    kind = "publisher"
    tasks = [PublishTasks]


class NatsSubscriber(NatsUser):
    kind = "subscriber"
    fixed_count = 1
    tasks = [SubscribeTasks]

    def connected(self, client):
        client.subscribe(self.subject, self._on_msg)
        client.flush()

    def _on_msg(self, subject, reply, payload, status):
        latency = 0.0
        if len(payload) >= STAMP_LEN and payload[:2] == STAMP:
            latency = max(0.0, (time.time_ns() - struct.unpack(">Q", payload[2:STAMP_LEN])[0]) / 1e6)
        self.environment.events.request.fire(request_type="MSG", name=subject.decode("latin-1"),
                                             response_time=latency, response_length=len(payload),
                                             exception=None, context={})


class NatsRequester(NatsUser):
    kind = "requester"
    tasks = [RequestTasks]


class NatsResponder(NatsUser):
    kind = "responder"
    fixed_count = 1
    tasks = [RespondTasks]

    def connected(self, client):
        def respond(subject, reply, payload, status):
            if reply is not None and not client.closed:
                try:
                    client.publish(reply.decode("latin-1"), payload)
                except NatsError:
                    pass

        client.subscribe(self.req_subject, respond, queue="locust-responders")
        client.flush()
