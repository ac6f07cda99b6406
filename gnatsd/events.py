"""The system account: server events and the `$SYS.REQ` monitoring requests.

Ports nats-server `server/events.go` for one server: the internal system client and its send
loop (internalSendLoop, sendInternalMsg), STATSZ (sendStatsz, heartbeatStatsz), connect,
disconnect, auth-error and shutdown events, account connection counts (sendAccConnsUpdate),
the request subscriptions of initEventTracking (statszReq, zReq, connsRequest, nsubsRequest)
and the system imports every account gets (addSystemAccountExports, registerSystemImports).

Messages the server sends go through a queue and one greenlet, as in Go: an event raised
while a client's message is being delivered (say, a request answered from inside
process_msg_results) is published after that delivery, never in the middle of it.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import logging
import random
import time

import gevent
from gevent.event import Event

from . import const, gofmt
from .accounts import STREAMED, AccountError, get_header
from .const import CLIENT, SYSTEM
from .gojson import BOOL, INT, STRING, STRINGS, UINT, decode_struct

log = logging.getLogger("gnatsd")

EVENTS_HB_INTERVAL = 30.0  # Go: eventsHBInterval
STATSZ_FIRST = 0.25  # Go: the first STATSZ goes out after 250ms, then the interval doubles

CONNECT_EVENT_SUBJ = "$SYS.ACCOUNT.%s.CONNECT"
DISCONNECT_EVENT_SUBJ = "$SYS.ACCOUNT.%s.DISCONNECT"
ACC_DIRECT_REQ_SUBJ = "$SYS.REQ.ACCOUNT.%s.%s"
ACC_PING_REQ_SUBJ = "$SYS.REQ.ACCOUNT.PING.%s"
ACC_CONNS_EVENT_SUBJ_NEW = "$SYS.ACCOUNT.%s.SERVER.CONNS"
ACC_CONNS_EVENT_SUBJ_OLD = "$SYS.SERVER.ACCOUNT.%s.CONNS"
CONNS_RESP_SUBJ = "$SYS._INBOX_.%s"
SHUTDOWN_EVENT_SUBJ = "$SYS.SERVER.%s.SHUTDOWN"
AUTH_ERROR_EVENT_SUBJ = "$SYS.SERVER.%s.CLIENT.AUTH.ERR"
SERVER_STATS_SUBJ = "$SYS.SERVER.%s.STATSZ"
SERVER_DIRECT_REQ_SUBJ = "$SYS.REQ.SERVER.%s.%s"
SERVER_PING_REQ_SUBJ = "$SYS.REQ.SERVER.PING.%s"
SERVER_STATS_PING_REQ_SUBJ = "$SYS.REQ.SERVER.PING"
ACC_NUM_SUBS_REQ_SUBJ = "$SYS.REQ.ACCOUNT.NSUBS"
ACC_SUBS_SUBJ = "$SYS.DEBUG.SUBSCRIBERS"

CONNECT_EVENT_TYPE = "io.nats.server.advisory.v1.client_connect"
DISCONNECT_EVENT_TYPE = "io.nats.server.advisory.v1.client_disconnect"
ACC_NUM_CONNS_TYPE = "io.nats.server.advisory.v1.account_connections"

_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

# Go: EventFilterOptions, in every request body.
_FILTER_FIELDS = {"server_name": STRING, "cluster": STRING, "host": STRING, "tags": STRINGS, "domain": STRING}
# Go: the options structs' JSON names -> (monitor option attribute, kind).
_OPTION_FIELDS = {
    "CONNZ": {"sort": ("sort", STRING), "auth": ("username", BOOL), "subscriptions": ("subscriptions", BOOL),
              "subscriptions_detail": ("subscriptions_detail", BOOL), "offset": ("offset", INT),
              "limit": ("limit", INT), "cid": ("cid", UINT), "mqtt_client": ("mqtt_client", STRING),
              "state": ("state", INT), "user": ("user", STRING), "acc": ("account", STRING),
              "filter_subject": ("filter_subject", STRING)},
    "SUBSZ": {"offset": ("offset", INT), "limit": ("limit", INT), "subscriptions": ("subscriptions", BOOL),
              "account": ("account", STRING), "test": ("test", STRING)},
    "ROUTEZ": {"subscriptions": ("subscriptions", BOOL), "subscriptions_detail": ("subscriptions_detail", BOOL)},
    "GATEWAYZ": {"name": ("name", STRING), "accounts": ("accounts", BOOL), "account_name": ("account_name", STRING)},
    "LEAFZ": {"subscriptions": ("subscriptions", BOOL), "account": ("account", STRING)},
    "ACCOUNTZ": {"account": ("account", STRING)},
    "JSZ": {"account": ("account", STRING), "accounts": ("accounts", BOOL), "streams": ("streams", BOOL),
            "consumer": ("consumer", BOOL), "config": ("config", BOOL), "leader_only": ("leader_only", BOOL),
            "offset": ("offset", INT), "limit": ("limit", INT)},
    "HEALTHZ": {"js-enabled-only": ("js_enabled_only", BOOL), "js-server-only": ("js_server_only", BOOL)},
    "STATZ": {"accounts": ("accounts", STRINGS), "include_unused": ("include_unused", BOOL)},
    "VARZ": {}, "INFO": {},
}


class SkipRequest(Exception):
    """Go: errSkipZreq. This server does not answer."""


def get_hash(name):
    """Go: getHash. Eight base-62 characters from the SHA-256 of `name`."""
    return "".join(_DIGITS[b % 62] for b in hashlib.sha256(name.encode()).digest()[:8])


def _nuid():
    """A unique id for an event (Go: nuid.Next, 22 characters of base 62)."""
    return "".join(random.choice(_DIGITS) for _ in range(22))


class Internal:
    """Go: internal. The system account's client, its send queue and its timers."""

    def __init__(self, srv, account):
        self.account = account
        self.client = srv.create_internal_client(account, SYSTEM)
        self.seq = 0
        self.sid = 0
        self.sendq = []  # (client or None, subject, reply, message)
        self.wake = Event()
        self.statsz = EVENTS_HB_INTERVAL
        self.cstatsz = STATSZ_FIRST
        self.stmr = None
        self.acc_timers = {}  # account name -> its connection-count heartbeat timer
        self.loop = None
        self.running = True


# -- start and stop -----------------------------------------------------------------------------


def start_events(srv):
    """Go: setSystemAccount with initEventTracking, addSystemAccountExports and the STATSZ
    timer. Runs on the server's hub once it listens."""
    acc = srv.sys_account
    sys = srv.sys = Internal(srv, acc)
    sys.loop = gevent.spawn(internal_send_loop, srv)
    init_event_tracking(srv)
    add_system_account_exports(srv, acc)
    sys.stmr = srv.loop.timer(sys.cstatsz)
    sys.stmr.start(heartbeat_statsz, srv)


def shutdown_eventing(srv):
    """Go: shutdownEventing. The SHUTDOWN event goes out (flushed) before the clients close."""
    sys = srv.sys
    if sys is None:
        return
    for t in [sys.stmr] + list(sys.acc_timers.values()):
        if t is not None:
            t.close()
    sys.acc_timers.clear()
    sys.running = False
    sys.sendq.append((None, (SHUTDOWN_EVENT_SUBJ % srv.server_id).encode(), None, {"server": None}, None))
    _drain(srv)  # in place: the process may exit right after
    sys.loop.kill(block=False)
    srv.sys = None


# -- sending ------------------------------------------------------------------------------------


def send_internal_msg(srv, subject, reply, msg, client=None, encoding=None):
    """Go: sendInternalMsg / sendInternalAccountMsg. Queue `msg` (bytes, or a dict marshalled
    as Go's JSON, whose `"server": None` the send loop fills with the server's identity, as Go
    fills in a ServerInfo, or a (header block, body) pair of bytes) for the system client, or
    `client`; `encoding` ("gzip" or "identity") sets a dict's Content-Encoding. `subject`
    is str or bytes. Does not yield."""
    sys = srv.sys
    if sys is None or not sys.running:
        return
    sys.sendq.append((client, subject if type(subject) is bytes else subject.encode(), reply, msg, encoding))
    sys.wake.set()


def internal_send_loop(srv):
    """Go: internalSendLoop. Publish queued messages as the system client. A greenlet."""
    sys = srv.sys
    while True:
        sys.wake.wait()
        if not sys.running:
            return  # woken for a message, then shut down: shutdown_eventing sent the queue
        sys.wake.clear()
        _drain(srv)


def server_info(srv):
    """Go: ServerInfo, as the send loop fills it in (seq counts every message sent)."""
    sys = srv.sys
    sys.seq += 1
    si = {"name": srv.name, "host": srv._info.get("host", ""), "id": srv.server_id}
    if srv.cluster_name:
        si["cluster"] = srv.cluster_name
    si.update({"ver": const.VERSION, "seq": sys.seq, "jetstream": srv.js is not None,
               "time": gofmt.format_time(time.time_ns())})
    return si


def _drain(srv):
    """Publish what is queued; each client fed gets one write per batch (a batch of PubAcks,
    say, leaves in one write, not one per ack)."""
    sys = srv.sys
    while sys.sendq:
        batch, sys.sendq = sys.sendq, []
        senders = {}
        for client, subject, reply, msg, encoding in batch:
            hdr = b""
            if isinstance(msg, tuple):
                hdr, msg = msg
            elif isinstance(msg, dict):
                if "server" in msg and msg["server"] is None:
                    msg["server"] = server_info(srv)
                msg = gofmt.marshal(msg).encode()
            if encoding is not None:
                if encoding == "gzip" and msg:
                    msg = gzip.compress(msg)
                hdr = b"NATS/1.0\r\nContent-Encoding: " + encoding.encode() + b"\r\n\r\n"
            c = client or sys.client
            publish(c, subject, reply.encode() if reply else None, msg, hdr, False)
            senders[c] = None
        for c in senders:
            c.flush_clients()


def publish(c, subject, reply, body, hdr=b"", flush=True):
    """Process a message from an internal client as if it had arrived (Go: the send loop's
    processInboundClientMsg, then flushClients unless `flush` is False: the caller flushes
    once after a batch). `hdr` is a header block or b"". Does not yield."""
    c.pa_subject, c.pa_reply = subject, reply
    body = hdr + body
    c.pa_szb = str(len(body)).encode()
    c.pa_hdr, c.pa_hdb = (len(hdr), str(len(hdr)).encode()) if hdr else (-1, b"")
    c.process_inbound_msg(body + b"\r\n")  # received counts are the readloop's: not these
    if flush:
        c.flush_clients()


# -- STATSZ -------------------------------------------------------------------------------------


def statsz(srv):
    """Go: sendStatsz's ServerStatsMsg, without the server part."""
    from .monitor.monitor import proc_usage
    import os
    pcpu, rss, _ = proc_usage()
    active = sum(1 for a in srv.accounts.values() if a.clients or a is srv.sys_account)
    return {
        "start": gofmt.format_time(gofmt.time_ns(srv.start_time)),
        "mem": rss,
        "cores": os.cpu_count() or 1,
        "cpu": pcpu,
        "connections": len(srv.clients),
        "total_connections": srv.total_clients,
        "active_accounts": active,
        "subscriptions": srv.num_subscriptions(),
        "sent": {"msgs": srv.out_msgs, "bytes": srv.out_bytes},
        "received": {"msgs": srv.in_msgs, "bytes": srv.in_bytes},
        "slow_consumers": srv.slow_consumers,
        "active_servers": 1,
    }


def send_statsz(srv, subject):
    send_internal_msg(srv, subject, None, {"server": None, "statsz": statsz(srv)})


def heartbeat_statsz(srv):
    """Go: heartbeatStatsz. Every 250ms at first, doubling up to every 30s. A hub callback."""
    sys = srv.sys
    if sys is None:
        return
    sys.cstatsz = min(sys.cstatsz * 2, sys.statsz)
    sys.stmr = srv.loop.timer(sys.cstatsz)
    sys.stmr.start(heartbeat_statsz, srv)
    send_statsz(srv, SERVER_STATS_SUBJ % srv.server_id)


# -- account and client events ----------------------------------------------------------------


def _event(kind):
    return {"type": kind, "id": _nuid(), "timestamp": gofmt.format_time(time.time_ns())}


def _client_event_info(c, stop=None):
    """Go: the ClientInfo of connect and disconnect events."""
    from .monitor.monitor import _raw_auth_user
    copts = c.copts
    ci = {"start": gofmt.format_time(gofmt.time_ns(c.start)), "host": c.host, "id": c.cid, "acc": c.acc.name}
    user = _raw_auth_user(copts)
    if user:
        ci["user"] = user
    for key, opt in (("name", "name"), ("lang", "lang"), ("ver", "version")):
        if copts.get(opt):
            ci[key] = copts[opt]
    if stop is not None:
        rtt = int(c.rtt * 1e9)
        if rtt:
            ci["rtt"] = rtt
        ci["stop"] = gofmt.format_time(gofmt.time_ns(stop))
    if copts.get("jwt"):
        ci["jwt"] = copts["jwt"]
    ci["kind"] = "Client"
    ci["client_type"] = "nats"
    return ci


def account_connect_event(c):
    """Go: accountConnectEvent. Not for the global account."""
    srv = c.srv
    if srv.sys is None or c.acc is srv.gacc:
        return
    m = _event(CONNECT_EVENT_TYPE)
    m["server"] = None
    m["client"] = _client_event_info(c)
    send_internal_msg(srv, CONNECT_EVENT_SUBJ % c.acc.name, None, m)


def _disconnect_msg(c, reason):
    now = time.time()
    m = _event(DISCONNECT_EVENT_TYPE)
    m["server"] = None
    m["client"] = _client_event_info(c, stop=now)
    m["sent"] = {"msgs": c.in_msgs, "bytes": c.in_bytes}
    m["received"] = {"msgs": c.out_msgs, "bytes": c.out_bytes}
    m["reason"] = reason
    return m


def account_disconnect_event(c, reason):
    """Go: accountDisconnectEvent. Not for the global account."""
    srv = c.srv
    if srv.sys is None or c.acc is srv.gacc:
        return
    send_internal_msg(srv, DISCONNECT_EVENT_SUBJ % c.acc.name, None, _disconnect_msg(c, reason))


def send_auth_error_event(c):
    """Go: sendAuthErrorEvent."""
    srv = c.srv
    if srv.sys is None:
        return
    send_internal_msg(srv, AUTH_ERROR_EVENT_SUBJ % srv.server_id, None,
                      _disconnect_msg(c, "Authentication Failure"))


def acc_conns_update(srv, acc):
    """Go: accConnsUpdate. An account's connection count, on each change and every 30s while
    it has connections."""
    sys = srv.sys
    if sys is None:
        return
    send_acc_conns_update(srv, acc, ACC_CONNS_EVENT_SUBJ_OLD % acc.name, ACC_CONNS_EVENT_SUBJ_NEW % acc.name)


def send_acc_conns_update(srv, acc, *subjects):
    """Go: sendAccConnsUpdate."""
    sys = srv.sys
    from .monitor.monitor import account_stat
    stat = account_stat(acc)
    timer = sys.acc_timers.pop(acc.name, None)
    if timer is not None:
        timer.close()
    if stat["total_conns"]:
        timer = sys.acc_timers[acc.name] = srv.loop.timer(EVENTS_HB_INTERVAL)
        timer.start(acc_conns_update, srv, acc)
    m = _event(ACC_NUM_CONNS_TYPE)
    m["server"] = None
    m.update(stat)
    for subject in subjects:
        send_internal_msg(srv, subject, None, m)


# -- requests -----------------------------------------------------------------------------------


def sys_subscribe(srv, subject, cb):
    """Go: sysSubscribe. An internal subscription of the system client."""
    sys = srv.sys
    sys.sid += 1
    return sys.client.subscribe_internal(subject.encode(), str(sys.sid).encode(), cb)


def _msg_parts(c, msg):
    """Go: msgParts. (header bytes, body bytes) of a delivered message without its CRLF."""
    hdr = c.pa_hdr
    body = msg[:-2]
    if hdr > 0:
        return body[:hdr], body[hdr:]
    return b"", body


def filter_request(srv, f):
    """Go: filterRequest. True when the request's filters leave this server out."""
    if f.get("server_name") and f["server_name"] not in srv.name:
        return True
    if f.get("host") and f["host"] not in srv._info.get("host", ""):
        return True
    if f.get("cluster") and f["cluster"] not in srv.cluster_name:
        return True
    if f.get("tags"):
        return True  # gnatsd has no server tags: a tag filter never matches
    if f.get("domain"):
        return True  # nor a JetStream domain
    return False


def z_req(srv, c, reply, msg, name, make_opts, respond):
    """Go: zReq. Decode the request's options (and filters), run `respond(opts)`, answer
    `{"server": ..., "data": ...}` or `{"server": ..., "error": {"code", "description"}}`."""
    if srv.sys is None or not reply:
        return
    fields = _OPTION_FIELDS[name]
    opts = make_opts()
    error = None
    hdr, body = _msg_parts(c, msg)
    if body:
        kinds = dict(_FILTER_FIELDS)
        kinds.update({k: kind for k, (_, kind) in fields.items()})
        values = {}
        try:
            decode_struct(body, kinds, values)
        except ValueError as e:
            error = {"code": 400, "description": str(e)}
        else:
            if filter_request(srv, values):
                return
            for k, (attr, _) in fields.items():
                if k in values and opts is not None:
                    v = values[k]
                    setattr(opts, attr, tuple(v) if isinstance(v, list) else v)
    response = {"server": None}
    if error is None:
        from .monitor.monitor import MonitorError
        try:
            response["data"] = respond(opts)
        except SkipRequest:
            return
        except MonitorError as e:
            error = {"code": 500, "description": str(e)}
    encoding = None
    if error is not None:
        response["error"] = error
    elif hdr:
        encoding = accept_encoding(hdr)
    send_internal_msg(srv, reply.decode(), None, response, encoding=encoding)


def accept_encoding(hdr):
    """Go: getAcceptEncoding. The Content-Encoding of an answer to a request with these
    headers: gzip, or identity for anything else asked for (Go's snappy/s2 answers are not
    made: gnatsd has no snappy framing yet); None when nothing is asked."""
    ae = (get_header(b"Accept-Encoding", hdr) or b"").decode("latin-1").lower()
    if not ae:
        return None
    if "gzip" in ae and "snappy" not in ae and "s2" not in ae:
        return "gzip"
    return "identity"


def statsz_req(srv, sub, c, acc, subject, reply, msg):
    """Go: statszReq. Without a reply the STATSZ goes to the usual broadcast subject."""
    if srv.sys is None:
        return
    target = reply.decode() if reply else SERVER_STATS_SUBJ % srv.server_id
    _, body = _msg_parts(c, msg)
    if body:
        values = {}
        try:
            decode_struct(body, _FILTER_FIELDS, values)
        except ValueError as e:
            send_internal_msg(srv, target, None, {"server": None, "error": {"code": 400, "description": str(e)}})
            return
        if filter_request(srv, values):
            return
    send_statsz(srv, target)


def _server_requests(srv):
    """The monitoring endpoints a `$SYS.REQ.SERVER` request can ask for: name -> (options
    factory, function of the options)."""
    from .monitor import monitor as m
    return {
        "VARZ": (m.VarzOptions, lambda o: m.varz(srv, o)),
        "SUBSZ": (m.SubszOptions, lambda o: m.subsz(srv, o)),
        "CONNZ": (m.ConnzOptions, lambda o: m.connz(srv, o)),
        "ROUTEZ": (m.RoutezOptions, lambda o: m.routez(srv, o)),
        "GATEWAYZ": (m.GatewayzOptions, lambda o: m.gatewayz(srv, o)),
        "LEAFZ": (m.LeafzOptions, lambda o: m.leafz(srv, o)),
        "ACCOUNTZ": (m.AccountzOptions, lambda o: m.accountz(srv, o)),
        "JSZ": (m.JSzOptions, lambda o: m.jsz(srv, o)),
        "HEALTHZ": (m.HealthzOptions, lambda o: m.healthz(srv, o)),
    }


def _account_requests(srv):
    """Go: initEventTracking's monAccSrvc, for `$SYS.REQ.ACCOUNT.<acc>.<name>`."""
    from .monitor import monitor as m

    def for_account(fn, **fixed):
        def respond(o, acc):
            o.account = acc
            for k, v in fixed.items():
                setattr(o, k, v)
            return fn(srv, o)
        return respond

    def statz(o, acc):
        if acc == "PING":
            raise SkipRequest  # Go: the PING subject matches the wildcard too
        o.accounts = (acc,)
        return account_statz_or_skip(srv, o)

    return {
        "SUBSZ": (m.SubszOptions, for_account(m.subsz, subscriptions=True)),
        "CONNZ": (m.ConnzOptions, for_account(m.connz)),
        "LEAFZ": (m.LeafzOptions, for_account(m.leafz)),
        "JSZ": (m.JSzOptions, for_account(m.jsz)),
        "INFO": (lambda: None, lambda o, acc: m.account_info(srv, acc)),
        "STATZ": (m.AccountStatzOptions, statz),
    }


def init_event_tracking(srv):
    """Go: initEventTracking. The system client's request subscriptions."""
    def on(subject, handler):
        sys_subscribe(srv, subject, handler)

    on(ACC_NUM_SUBS_REQ_SUBJ, lambda *a: nsubs_request(srv, *a))
    on(SERVER_STATS_PING_REQ_SUBJ, lambda *a: statsz_req(srv, *a))
    on(SERVER_DIRECT_REQ_SUBJ % (srv.server_id, "STATSZ"), lambda *a: statsz_req(srv, *a))
    on(SERVER_PING_REQ_SUBJ % "STATSZ", lambda *a: statsz_req(srv, *a))
    for name, (make_opts, fn) in _server_requests(srv).items():
        def handler(sub, c, acc, subject, reply, msg, name=name, make_opts=make_opts, fn=fn):
            z_req(srv, c, reply, msg, name, make_opts, fn)
        on(SERVER_DIRECT_REQ_SUBJ % (srv.server_id, name), handler)
        on(SERVER_PING_REQ_SUBJ % name, handler)
    for name, (make_opts, fn) in _account_requests(srv).items():
        def acc_handler(sub, c, acc, subject, reply, msg, name=name, make_opts=make_opts, fn=fn):
            tokens = subject.split(b".")
            if len(tokens) != 5:
                z_req(srv, c, reply, msg, name, make_opts, _malformed(subject))
                return
            z_req(srv, c, reply, msg, name, make_opts, lambda o: fn(o, tokens[3].decode()))
        on(ACC_DIRECT_REQ_SUBJ % ("*", name), acc_handler)
    on(ACC_DIRECT_REQ_SUBJ % ("*", "CONNS"), lambda *a: conns_request(srv, *a))

    def acc_ping_statz(sub, c, acc, subject, reply, msg):
        from .monitor.monitor import AccountStatzOptions
        z_req(srv, c, reply, msg, "STATZ", AccountStatzOptions, lambda o: account_statz_or_skip(srv, o))
    on(ACC_PING_REQ_SUBJ % "STATZ", acc_ping_statz)


def account_statz_or_skip(srv, o):
    """Go: the STATZ responders. A server with none of the accounts asked about stays silent
    unless unused ones are wanted."""
    from .monitor.monitor import account_statz
    stz = account_statz(srv, o)
    if not stz["account_statz"] and not o.include_unused:
        raise SkipRequest
    return stz


def _malformed(subject):
    def fail(o):
        from .monitor.monitor import MonitorError
        raise MonitorError(f"subject {gofmt.go_quote(subject.decode('utf-8', 'replace'))} is malformed")
    return fail


def conns_request(srv, sub, c, acc, subject, reply, msg):
    """Go: connsRequest. Answer with an account's connection count if it has local ones."""
    tokens = subject.split(b".")
    if len(tokens) != 5:
        log.error("Bad subject account connections request message")
        return
    name = tokens[3].decode()
    _, body = _msg_parts(c, msg)
    if body:
        try:
            m = json.loads(body)
        except ValueError as e:
            log.error("Error unmarshalling account connections request message: %s", e)
            return
        if not isinstance(m, dict) or m.get("acc", name) != name:
            log.error("Error unmarshalled account does not match subject")
            return
    a = srv.accounts.get(name)
    if a is not None and a.num_local_connections() > 0 and reply:
        send_acc_conns_update(srv, a, reply.decode())


def nsubs_request(srv, sub, c, acc, subject, reply, msg):
    """Go: nsubsRequest. How many local subscriptions match {"acc", "subject", "queue"}."""
    from .sublist import subject_is_literal, subject_is_subset_match
    _, body = _msg_parts(c, msg)
    try:
        m = json.loads(body) if body else None
    except ValueError as e:
        log.error("Error unmarshalling account nsubs request message: %s", e)
        return
    if not isinstance(m, dict):
        log.error("request requires a body")
        return
    a = srv.accounts.get(m.get("acc") or "")
    if a is None or not a.num_local_connections() or not reply:
        return
    subj = str(m.get("subject") or "").encode()
    queue = m.get("queue")
    queue = None if queue is None else str(queue).encode()
    if subject_is_literal(subj):
        r = a.sublist.match(subj)
        n = len(r.psubs) if queue is None else 0
        n += sum(len(g) for g in r.qsubs if queue is None or g[0].queue == queue)
    else:
        n = sum(1 for s in a.sublist.all_subs() if s.client.kind == CLIENT and subject_is_subset_match(s.subject, subj)
                and (queue is None or s.queue == queue))
    send_internal_msg(srv, reply.decode(), None, str(n).encode())


# -- system imports -----------------------------------------------------------------------------


def add_system_account_exports(srv, sacc):
    """Go: addSystemAccountExports. What every account may ask the system account."""
    for subj in (ACC_DIRECT_REQ_SUBJ % ("*", "CONNZ"), ACC_DIRECT_REQ_SUBJ % ("*", "STATZ")):
        # Go: the account_token_position clamps the importer's own name into the subject.
        sacc.add_service_export(subj.encode(), STREAMED, None, 4)
    sacc.add_service_export(ACC_SUBS_SUBJ.encode())
    for a in srv.accounts.values():
        if a is not sacc:
            register_system_imports(srv, a)


def register_system_imports(srv, a):
    """Go: registerSystemImports. `$SYS.REQ.SERVER.PING.CONNZ` and `$SYS.REQ.ACCOUNT.PING.CONNZ`
    (and `.STATZ`) asked in account `a` reach the system account as requests about `a`."""
    sacc = srv.sys_account
    mapped = (ACC_DIRECT_REQ_SUBJ % (a.name, "CONNZ")).encode()
    pairs = ((ACC_PING_REQ_SUBJ % "CONNZ", mapped), (SERVER_PING_REQ_SUBJ % "CONNZ", mapped),
             (ACC_PING_REQ_SUBJ % "STATZ", (ACC_DIRECT_REQ_SUBJ % (a.name, "STATZ")).encode()))
    for subj, to in pairs:
        if subj.encode() in a.service_imports:
            continue
        try:
            a._add_service_import(sacc, subj.encode(), to)
        except AccountError as e:
            log.error("Error setting up system service import %s -> %s for account: %s", subj, to.decode(), e)
