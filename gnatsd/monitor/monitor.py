"""What the monitoring endpoints report, as plain data. Ports nats-server `server/monitor.go`:
Varz, Connz, Routez, Gatewayz, Leafz, Subsz, Accountz, AccountStatz, Jsz, healthz,
HandleStacksz's dump and HandleIPQueuesz's map, with their option structs and errors.

Each function takes the Server (Go's receiver `s`) and an options object, and returns a dict
in the field order of Go's struct, with Go's `omitempty` applied; `app.py` only turns those
into HTTP (STYLE.md, "For gnatsd" 12). Bad options raise `MonitorError` with Go's text, which
the HTTP layer answers with a 400.

Subsystems gnatsd does not have yet (routes, gateways, leafnodes, JetStream) report what the
Go server reports when they are not configured: empty lists and maps, zero counts,
`"disabled": true` for JetStream.

Concurrency: every function runs on the server's hub and never yields, so it sees the server
between two greenlet switches (Go takes the server lock for the same reason).
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from .. import const
from ..accounts import GLOBAL_ACCOUNT, RESP_TYPE_NAMES
from ..gofmt import GoMap, format_time, my_uptime, rtt_string, time_ns
from ..tls import (
    go_name_string, parse_rdn_sequence, peer_certificates, raw_subject, raw_subject_public_key_info,
)
from .pse import ProcUsage
from .ring import sub_tuple
from .sort_opts import BY_CID, BY_REASON, BY_STOP, is_valid, sort_conns

DEFAULT_CONN_LIST_SIZE = 1024  # Go: DefaultConnListSize
DEFAULT_SUB_LIST_SIZE = 1024  # Go: DefaultSubListSize
FWCS = ">"  # Go: fwcs

# Go: ConnState
CONN_OPEN, CONN_CLOSED, CONN_ALL = 0, 1, 2

# Go: server.go's endpoint paths (also the keys of http_req_stats).
ROOT_PATH = "/"
VARZ_PATH = "/varz"
CONNZ_PATH = "/connz"
ROUTEZ_PATH = "/routez"
GATEWAYZ_PATH = "/gatewayz"
LEAFZ_PATH = "/leafz"
SUBSZ_PATH = "/subsz"
STACKSZ_PATH = "/stacksz"
ACCOUNTZ_PATH = "/accountz"
ACCOUNT_STATZ_PATH = "/accstatz"
JSZ_PATH = "/jsz"
HEALTHZ_PATH = "/healthz"
IPQUEUES_PATH = "/ipqueuesz"
METRICS_PATH = "/metrics"  # not in Go: Prometheus text format (metrics.py)


class MonitorError(ValueError):
    """An option the endpoint refuses. str() is the Go server's error text (sent with a 400)."""


def _ns(seconds):
    return round(seconds * 1_000_000_000)


def _now_ns():
    return time.time_ns()


def _info(s):
    # The INFO the server sends clients (host and port after client_advertise, "go", auth).
    return getattr(s, "_info", None) or {}


def http_host(opts):
    """Go: setBaselineOptions. The monitor binds to the client host unless told otherwise."""
    return opts.http_host or opts.host


def http_base_path(opts):
    return getattr(opts, "http_base_path", "") or ""


def _http_req_stats(s):
    return GoMap(getattr(s, "http_req_stats", None) or {})


# -- /varz -------------------------------------------------------------------------------------

_proc = None


def proc_usage():
    """Go: pse.ProcUsage: (cpu percent, rss bytes, vss bytes). One sampler per process."""
    global _proc
    if _proc is None:
        _proc = ProcUsage()
    return _proc.usage()


def _websocket_varz(s):
    """Go: WebsocketOptsVarz, every field omitempty. The port is the one bound (Go writes it
    back into the options)."""
    wo = s.opts.websocket
    ws = s.websocket
    port = ws.addr[1] if ws is not None and ws.addr else wo.port
    d = {}
    for key, value in (("host", wo.host), ("port", port), ("advertise", wo.advertise),
                       ("no_auth_user", wo.no_auth_user), ("jwt_cookie", wo.jwt_cookie),
                       ("handshake_timeout", _ns(wo.handshake_timeout)), ("auth_timeout", wo.auth_timeout),
                       ("no_tls", wo.no_tls), ("tls_map", wo.tls_map), ("same_origin", wo.same_origin),
                       ("allowed_origins", list(wo.allowed_origins)), ("compression", wo.compression)):
        if value:
            d[key] = value
    return d


@dataclass
class VarzOptions:
    """Go: VarzOptions (no options defined)."""


def varz(s, varz_opts=None):
    """Go: Varz / createVarz / updateVarzRuntimeFields."""
    pcpu, rss, _ = proc_usage()
    o = s.opts
    info = _info(s)
    now = _now_ns()
    start = time_ns(s.start_time) if s.start_time else now
    v = {
        "server_id": s.server_id,
        "server_name": s.name,
        "version": const.VERSION,
        "proto": const.PROTO,
        "go": info.get("go", ""),
        "host": info.get("host", o.host),
        "port": info.get("port", o.port),
    }
    for flag in ("auth_required", "tls_required", "tls_verify"):
        if info.get(flag):
            v[flag] = True
    v["max_connections"] = o.max_connections
    if o.max_subs:
        v["max_subscriptions"] = o.max_subs
    v["ping_interval"] = _ns(o.ping_interval)  # Go: a time.Duration, in nanoseconds
    v["ping_max"] = o.ping_max
    v["http_host"] = http_host(o)
    v["http_port"] = o.http_port
    v["http_base_path"] = http_base_path(o)
    v["https_port"] = o.https_port
    v["auth_timeout"] = float(o.auth_timeout)
    v["max_control_line"] = o.max_control_line
    v["max_payload"] = o.max_payload
    v["max_pending"] = o.max_pending
    # Go: ClusterOptsVarz and the rest, every field omitempty: {} when not configured.
    v["cluster"] = {}
    v["gateway"] = {}
    v["leaf"] = {}
    v["mqtt"] = {}
    v["websocket"] = _websocket_varz(s)
    js = getattr(s, "js", None)
    if js is None:
        v["jetstream"] = {}
    else:
        # Go: JetStreamVarz {config, stats}; stats as /jsz reports them.
        st = jsz(s)
        v["jetstream"] = {"config": js.config_dict(),
                          "stats": {k: st[k] for k in ("memory", "storage", "reserved_memory", "reserved_storage",
                                                       "accounts", "ha_assets", "api")}}
    v["tls_timeout"] = float(getattr(o, "tls_timeout", const.TLS_TIMEOUT))
    v["write_deadline"] = _ns(o.write_deadline)
    v["start"] = format_time(start)
    v["now"] = format_time(now)
    v["uptime"] = my_uptime((now - start) / 1e9)
    v["mem"] = rss
    v["cores"] = os.cpu_count() or 1
    v["gomaxprocs"] = 1  # one hub thread runs all the server's Python code
    v["cpu"] = float(pcpu)
    v["connections"] = len(s.clients)
    v["total_connections"] = s.total_clients
    v["routes"] = 0
    v["remotes"] = 0
    v["leafnodes"] = 0
    v["in_msgs"] = s.in_msgs
    v["out_msgs"] = s.out_msgs
    v["in_bytes"] = s.in_bytes
    v["out_bytes"] = s.out_bytes
    v["slow_consumers"] = s.slow_consumers
    v["subscriptions"] = s.num_subscriptions()
    v["http_req_stats"] = _http_req_stats(s)
    v["config_load_time"] = format_time(time_ns(s.config_time) if s.config_time else start)  # Go: configTime
    if s.sys_account is not None:
        v["system_account"] = s.sys_account.name
    v["gnatsd_version"] = const.GNATSD_VERSION  # not in Go: gnatsd's own release (DESIGN.md 1b)
    return v


# -- /connz ------------------------------------------------------------------------------------


@dataclass
class ConnzOptions:
    """Go: ConnzOptions."""

    sort: str = ""
    username: bool = False  # Go: Username, `auth`
    subscriptions: bool = False
    subscriptions_detail: bool = False
    offset: int = 0
    limit: int = 0
    cid: int = 0
    mqtt_client: str = ""
    state: int = CONN_OPEN
    user: str = ""
    account: str = ""
    filter_subject: str = ""


def _raw_auth_user(copts):
    """Go: getRawAuthUser. A token is not shown (newer Go says "[REDACTED]" too)."""
    if copts.get("nkey"):
        return copts["nkey"]
    if copts.get("user"):
        return copts["user"]
    if copts.get("auth_token"):
        return "[REDACTED]"
    return ""


def _conn_info(cid, host, port, start, last, stop, reason, rtt, until, pending, in_msgs, out_msgs,
               in_bytes, out_bytes, num_subs, name, lang, version, ctype):
    """Go: ConnInfo (and ConnInfo.fill), up to the optional tail. Times are float seconds;
    uptime and idle are measured up to `until` (now, or when the connection stopped)."""
    ci = {
        "cid": cid,
        "kind": "Client",
        "type": ctype,
        "ip": host,
        "port": port,
        "start": format_time(time_ns(start)),
        "last_activity": format_time(time_ns(last)),
    }
    if stop is not None:
        ci["stop"] = format_time(time_ns(stop))
        if reason:
            ci["reason"] = reason
    ci["rtt"] = rtt_string(rtt)
    ci["uptime"] = my_uptime(until - start)
    ci["idle"] = my_uptime(until - last)
    ci["pending_bytes"] = pending
    ci["in_msgs"] = in_msgs
    ci["out_msgs"] = out_msgs
    ci["in_bytes"] = in_bytes
    ci["out_bytes"] = out_bytes
    ci["subscriptions"] = num_subs
    if name:
        ci["name"] = name
    if lang:
        ci["lang"] = lang
    if version:
        ci["version"] = version
    return ci


def _sub_detail(t, account=None):
    """Go: SubDetail, from a ring.sub_tuple. `account` only for subsz and closed clients."""
    subject, queue, sid, msgs, smax = t
    d = {}
    if account:
        d["account"] = account
    d["subject"] = subject
    if queue:
        d["qgroup"] = queue
    d["sid"] = sid
    d["msgs"] = msgs
    if smax:
        d["max"] = smax
    return d


def make_peer_certs(ders):
    """Go: makePeerCerts. The subject and SHA-256 sums of each DER certificate."""
    certs = []
    for der in ders:
        pc = {}
        try:
            subject = go_name_string(parse_rdn_sequence(raw_subject(der)))
            spki = hashlib.sha256(raw_subject_public_key_info(der)).hexdigest()
        except (ValueError, IndexError):  # OpenSSL took it, so not expected
            subject = spki = ""
        if subject:
            pc["subject"] = subject
        if spki:
            pc["spki_sha256"] = spki
        pc["cert_sha256"] = hashlib.sha256(der).hexdigest()
        certs.append(pc)
    return certs


def _open_conn_info(c, now, now_mono, subs, subs_det, auth):
    copts = c.copts
    last = now - (now_mono - c.last)
    ci = _conn_info(c.cid, c.host, c.port, c.start, last, None, None, c.rtt, now, c.pb, c.in_msgs,
                    c.out_msgs, c.in_bytes, c.out_bytes, len(c.subs), copts.get("name") or "",
                    copts.get("lang") or "", copts.get("version") or "", c.type_string)
    if c.tls_cs is not None:  # Go: the handshakeComplete flag
        ci["tls_version"], ci["tls_cipher_suite"] = c.tls_cs
        if auth:
            certs = make_peer_certs(peer_certificates(c))
            if certs:
                ci["tls_peer_certs"] = certs
    if auth:
        user = _raw_auth_user(copts)
        if user:
            ci["authorized_user"] = user
        if c.acc is not c.srv.gacc:  # Go: the account iff not the global one
            ci["account"] = c.acc.name
    if c.subs:
        if subs_det:
            ci["subscriptions_list_detail"] = [dict(_sub_detail(sub_tuple(sub)), cid=c.cid) for sub in c.subs.values()]
        elif subs:
            ci["subscriptions_list"] = [sub.subject.decode("utf-8", "replace") for sub in c.subs.values()]
    if auth:
        if copts.get("jwt"):
            ci["jwt"] = copts["jwt"]
        juc = c.juc
        if juc is not None:  # Go: issuerForClient, c.tags, c.nameTag
            ci["issuer_key"] = juc.iss if juc.issuer_account else c.acc.name
            if juc.name:
                ci["name_tag"] = juc.name
            if juc.tags:
                ci["tags"] = juc.tags
    return ci


def _closed_conn_info(cc, subs, subs_det, auth):
    ci = _conn_info(cc.cid, cc.host, cc.port, cc.start, cc.last, cc.stop, cc.reason, cc.rtt, cc.stop,
                    cc.pending, cc.in_msgs, cc.out_msgs, cc.in_bytes, cc.out_bytes, cc.num_subs, cc.name,
                    cc.lang, cc.version, cc.type)
    if cc.tls_cs is not None:
        ci["tls_version"], ci["tls_cipher_suite"] = cc.tls_cs
    if auth and cc.user:
        ci["authorized_user"] = cc.user
    if auth and cc.acc:
        ci["account"] = cc.acc
    if cc.subs:
        if subs_det:
            # Go keeps a closed client's subscriptions as newSubDetail, account included.
            acc = cc.acc or GLOBAL_ACCOUNT
            ci["subscriptions_list_detail"] = [dict(_sub_detail(t, acc), cid=cc.cid) for t in cc.subs]
        elif subs:
            ci["subscriptions_list"] = [t[0] for t in cc.subs]
    if auth and cc.jwt:
        ci["jwt"] = cc.jwt
    return ci


PAUSE_EVERY = 128  # entries filled between two calls of a data function's `pause`


def connz(s, opts=None, pause=None):
    """Go: Connz.

    Which connections, and in what order, is decided without yielding. The page's ConnInfos
    are then filled `PAUSE_EVERY` at a time, calling `pause()` in between when given (the
    HTTP view passes a switch to the hub, so a long page does not hold up message delivery):
    as in Go, which locks one client at a time, each entry is consistent on its own.
    """
    sort_opt = BY_CID
    auth = subs = subs_det = False
    offset = 0
    limit = DEFAULT_CONN_LIST_SIZE
    cid = 0
    state = CONN_OPEN
    user = acc = ""
    if opts is not None:
        if opts.sort:
            sort_opt = opts.sort
            if not is_valid(sort_opt):
                raise MonitorError(f"invalid sorting option: {sort_opt}")
        auth = opts.username
        user = opts.user
        acc = opts.account
        subs = opts.subscriptions
        subs_det = opts.subscriptions_detail
        offset = max(opts.offset, 0)
        limit = opts.limit if opts.limit > 0 else DEFAULT_CONN_LIST_SIZE
        state = opts.state
        if sort_opt == BY_STOP and state != CONN_CLOSED:
            raise MonitorError("sort by stop only valid on closed connections")
        if sort_opt == BY_REASON and state != CONN_CLOSED:
            raise MonitorError("sort by reason only valid on closed connections")
        if opts.cid > 0:
            cid = opts.cid
            limit = 1
        if opts.filter_subject and opts.filter_subject != FWCS and not acc:
            raise MonitorError("filter by subject only valid with account filtering")

    now = _now_ns()
    c = {"server_id": s.server_id, "now": format_time(now), "num_connections": 0, "total": 0,
         "offset": offset, "limit": limit, "connections": []}
    if acc and acc not in s.accounts:
        # Go returns early for an unknown account, before it fills in the server id.
        c["server_id"] = ""
        c["connections"] = None
        return c

    clist = s.accounts[acc].clients if acc else s.clients
    closed = None
    total = 0
    if state in (CONN_OPEN, CONN_ALL):
        total += len(clist)
    if state in (CONN_CLOSED, CONN_ALL):
        closed = s.closed_clients.closed_clients()
        if acc:
            # Go keeps a closed client's account only when it is not the global one.
            kept = [cc for cc in closed if cc.acc == acc]
            total -= len(closed) - len(kept)
            closed = kept
        total += len(closed)
    c["total"] = total

    open_clients = []
    if cid > 0:
        # As newer Go: an open connection first, then (state=closed or any) a closed one.
        if state in (CONN_OPEN, CONN_ALL):
            client = clist.get(cid)
            if client is not None:
                open_clients.append(client)
                closed = None
        if not open_clients and closed:
            closed = [cc for cc in closed if cc.cid == cid][:1]
    elif state in (CONN_OPEN, CONN_ALL):
        if user:
            open_clients = [cl for cl in clist.values() if cl.copts.get("user", "") == user]
        else:
            open_clients = list(clist.values())
    if closed and user:
        closed = [cc for cc in closed if cc.user == user]

    if opts is not None and opts.filter_subject and opts.filter_subject != FWCS and open_clients:
        from ..sublist import subject_matches
        f = opts.filter_subject.encode()
        open_clients = [cl for cl in open_clients
                        if any(subject_matches(sub.subject, f) or subject_matches(f, sub.subject)
                               for sub in cl.subs.values())]

    if not open_clients and not closed:
        return c

    rows = sort_conns(sort_opt, open_clients, closed, now / 1e9)
    page = rows[offset:offset + limit]
    now_s = now / 1e9
    now_mono = time.monotonic()
    conns = []
    for i, (is_open, entry) in enumerate(page):
        if pause is not None and i and not i % PAUSE_EVERY:
            pause()  # `now` stays the page's; clients active meanwhile show an idle of 0s
        if is_open:
            conns.append(_open_conn_info(entry, now_s, now_mono, subs, subs_det, auth))
        else:
            conns.append(_closed_conn_info(entry, subs, subs_det, auth))
    c["connections"] = conns
    c["num_connections"] = len(conns)
    return c


# -- /routez, /gatewayz, /leafz: no server-to-server links yet ---------------------------------


@dataclass
class RoutezOptions:
    """Go: RoutezOptions."""

    subscriptions: bool = False
    subscriptions_detail: bool = False


def routez(s, opts=None):
    """Go: Routez. gnatsd has no routes yet."""
    return {"server_id": s.server_id, "now": format_time(_now_ns()), "num_routes": 0, "routes": []}


@dataclass
class GatewayzOptions:
    """Go: GatewayzOptions."""

    name: str = ""
    accounts: bool = False
    account_name: str = ""


def gatewayz(s, opts=None):
    """Go: Gatewayz, gateways not enabled."""
    return {"server_id": s.server_id, "now": format_time(_now_ns()),
            "outbound_gateways": GoMap(), "inbound_gateways": GoMap()}


@dataclass
class LeafzOptions:
    """Go: LeafzOptions."""

    subscriptions: bool = False
    account: str = ""


def leafz(s, opts=None):
    """Go: Leafz. No leafnode connections: Go leaves the list nil."""
    return {"server_id": s.server_id, "now": format_time(_now_ns()), "leafnodes": 0, "leafs": None}


# -- /subsz ------------------------------------------------------------------------------------


@dataclass
class SubszOptions:
    """Go: SubszOptions."""

    offset: int = 0
    limit: int = 0
    subscriptions: bool = False
    account: str = ""
    test: str = ""


def sublist_stats(*sublists):
    """Go: Sublist.Stats, as the SublistStats JSON fields; of several sublists, summed as
    Go's SublistStats.add sums them (the cache hit rates too)."""
    st = dict(_ZERO_STATS)
    tot = cached = 0
    for sl in sublists:
        matches = sl.matches
        cache = sl.cache
        for r in cache.values():
            n = len(r.psubs) + len(r.qsubs)
            tot += n
            if n > st["max_fanout"]:
                st["max_fanout"] = n
        cached += len(cache)
        st["num_subscriptions"] += sl.count
        st["num_cache"] += len(cache)
        st["num_inserts"] += sl.inserts
        st["num_removes"] += sl.removes
        st["num_matches"] += matches
        st["cache_hit_rate"] += sl.cache_hits / matches if matches else 0.0
    if tot:
        st["avg_fanout"] = tot / cached
    return st


_ZERO_STATS = {"num_subscriptions": 0, "num_cache": 0, "num_inserts": 0, "num_removes": 0, "num_matches": 0,
               "cache_hit_rate": 0.0, "max_fanout": 0, "avg_fanout": 0.0}


def subsz(s, opts=None, pause=None):
    """Go: Subsz. With subscriptions, the page of SubDetails under `subscriptions_list`; Go's
    `total` is the size of that page. `pause` as for connz."""
    from ..sublist import is_valid_literal_subject, subject_matches
    subdetail = False
    offset = 0
    limit = DEFAULT_SUB_LIST_SIZE
    test = None
    filter_acc = ""
    if opts is not None:
        subdetail = opts.subscriptions
        offset = max(opts.offset, 0)
        limit = opts.limit if opts.limit > 0 else DEFAULT_SUB_LIST_SIZE
        if opts.test:
            test = opts.test.encode()
            if not is_valid_literal_subject(test):
                raise MonitorError(f"invalid test subject, must be valid publish subject: {opts.test}")
        filter_acc = opts.account
    accounts = [a for a in s.accounts.values() if not filter_acc or a.name == filter_acc]
    stats = sublist_stats(*(a.sublist for a in accounts))
    sz = {"server_id": s.server_id, "now": format_time(_now_ns())}
    sz.update(stats)
    sz["total"] = 0
    sz["offset"] = offset
    sz["limit"] = limit
    if subdetail:
        found = [sub for a in accounts for sub in a.sublist.all_subs()
                 if getattr(sub, "client", None) is not None
                 and (test is None or subject_matches(sub.subject, test))]
        page = []
        for i, sub in enumerate(found[offset:offset + limit]):
            if pause is not None and i and not i % PAUSE_EVERY:
                pause()
            page.append(dict(_sub_detail(sub_tuple(sub), sub.client.acc.name), cid=sub.client.cid))
        if page:
            sz["subscriptions_list"] = page
        sz["total"] = len(page)
    return sz


# -- /accountz, /accstatz ----------------------------------------------------------------------


@dataclass
class AccountzOptions:
    """Go: AccountzOptions."""

    account: str = ""


def accountz(s, opts=None):
    """Go: Accountz. The names of the accounts, or one account's details."""
    a = {"server_id": s.server_id, "now": format_time(_now_ns())}
    if s.sys_account is not None:
        a["system_account"] = s.sys_account.name
    name = opts.account if opts is not None else ""
    if not name:
        a["accounts"] = list(s.accounts)
        return a
    a["account_detail"] = account_info(s, name)
    return a


def _ext_import(si, local_key):
    """Go: ExtImport (jwt.Import and its flags) of a service or stream import."""
    service = local_key == "to"
    d = {"subject": si.from_.decode(), "account": si.acc.name, local_key: si.to.decode(),
         "type": "service" if service else "stream", "invalid": si.invalid,
         "share": bool(getattr(si, "share", False)), "tracking": False}
    return d


def _ext_export(subject, ea, service):
    """Go: ExtExport (jwt.Export and its approvals)."""
    d = {"subject": subject.decode(), "type": "service" if service else "stream"}
    if ea is not None:
        if ea.token_req:
            d["token_req"] = True
        if service:
            d["response_type"] = RESP_TYPE_NAMES[ea.resp_type]
            if ea.latency is not None:
                subj, sampling = ea.latency
                d["service_latency"] = {"sampling": sampling or "headers", "results": subj}
        if ea.approved:
            d["approved_accounts"] = list(ea.approved)
    return d


def account_info(s, name):
    """Go: accountInfo."""
    a = s.accounts.get(name)
    if a is None:
        raise MonitorError(f"Account {name} does not exist")
    info = {"account_name": name, "update_time": format_time(time_ns(a.updated))}
    if a is s.sys_account:
        info["is_system"] = True
    info.update({
        "expired": a.expired,
        "complete": not a.incomplete,
        "jetstream_enabled": a.js is not None,
        "leafnode_connections": 0,
        "client_connections": a.num_local_connections(),
        "subscriptions": a.sublist.count,
    })
    if a.mappings:
        info["mappings"] = {m.src: [dict({"dest": d.tr.dest, "weight": d.weight}, **({"cluster": c} if c else {}))
                                    for c, dests in [("", m.dests)] + sorted(m.cdests.items()) for d in dests]
                            for m in a.mappings}
    exports = [_ext_export(k, v, True) for k, v in a.service_exports.items()]
    exports += [_ext_export(k, v, False) for k, v in a.stream_exports.items()]
    if exports:
        info["exports"] = exports
    imports = [_ext_import(si, "local_subject") for si in a.stream_imports]
    imports += [_ext_import(si, "to") for si in a.service_imports.values()]
    if imports:
        info["imports"] = imports
    if a.claim_jwt:  # operator mode (Go's decoded_jwt and validation_result_jwt are not reported yet)
        info["jwt"] = a.claim_jwt
        info["issuer_key"] = a.issuer
        if a.name_tag:
            info["name_tag"] = a.name_tag
        if a.tags:
            info["tags"] = a.tags
        if a.users_revoked:
            info["revoked_user"] = GoMap((k, format_time(v * 10**9)) for k, v in a.users_revoked.items())
    info["sublist_stats"] = sublist_stats(a.sublist)
    if a.responses:
        info["responses"] = {k.decode(): _ext_import(si, "to") for k, si in a.responses.items()}
    return info


@dataclass
class AccountStatzOptions:
    """Go: AccountStatzOptions."""

    accounts: tuple = ()
    include_unused: bool = False


def account_statz(s, opts=None):
    """Go: AccountStatz. Accounts with connections, or all of them with include_unused."""
    stz = {"server_id": s.server_id, "now": format_time(_now_ns()), "account_statz": []}
    wanted = opts.accounts if opts is not None else ()
    unused = opts.include_unused if opts is not None else False
    accounts = [s.accounts[n] for n in wanted if n in s.accounts] if wanted else s.accounts.values()
    for a in accounts:
        if unused or a.num_local_connections():
            stz["account_statz"].append(account_stat(a))
    return stz


def account_stat(a):
    """Go: Account.statz, an AccountStat."""
    conns = a.num_local_connections()
    return {
        "acc": a.name,
        "conns": conns,
        "leafnodes": 0,
        "total_conns": conns,
        "sent": {"msgs": a.out_msgs, "bytes": a.out_bytes},
        "received": {"msgs": a.in_msgs, "bytes": a.in_bytes},
        "slow_consumers": a.slow_consumers,
    }


# -- /jsz, /healthz ----------------------------------------------------------------------------


@dataclass
class JSzOptions:
    """Go: JSzOptions."""

    account: str = ""
    accounts: bool = False
    streams: bool = False
    consumer: bool = False
    config: bool = False
    leader_only: bool = False
    offset: int = 0
    limit: int = 0


ERR_SKIP_ZREQ = "filtered response"  # Go: errSkipZreq


def jsz(s, opts=None):
    """Go: Jsz, for one server: the JetStream config, usage and API counts; with `accounts`
    (or `account`), each JetStream account, with `streams` its streams, with `consumer`
    their consumers (ConsumerInfo, its config only with `config`)."""
    if opts is not None and opts.leader_only:
        raise MonitorError(f"{ERR_SKIP_ZREQ}: not leader")
    js = getattr(s, "js", None)
    if js is None:
        return {
            "server_id": s.server_id,
            "now": format_time(_now_ns()),
            "disabled": True,
            "config": {"max_memory": 0, "max_storage": 0},
            "memory": 0,
            "storage": 0,
            "reserved_memory": 0,
            "reserved_storage": 0,
            "accounts": 0,
            "ha_assets": 0,
            "api": {"total": 0, "errors": 0},
            "streams": 0,
            "consumers": 0,
            "messages": 0,
            "bytes": 0,
        }
    from ..fs.store import MEMORY_STORAGE, FILE_STORAGE
    nstreams, msgs, nbytes = js.usage_totals()
    d = {
        "server_id": s.server_id,
        "now": format_time(_now_ns()),
        "config": js.config_dict(),
        "memory": js.memory,
        "storage": js.storage,
        "reserved_memory": js.reserved(MEMORY_STORAGE),
        "reserved_storage": js.reserved(FILE_STORAGE),
        "accounts": len(js.accounts),
        "ha_assets": 0,
        "api": {"total": js.api_total, "errors": js.api_errors},
        "streams": nstreams,
        "consumers": sum(jsa.num_consumers() for jsa in js.accounts.values()),
        "messages": msgs,
        "bytes": nbytes,
    }
    if opts is not None and (opts.accounts or opts.account):
        details = []
        for name in sorted(js.accounts):
            if opts.account and name != opts.account:
                continue
            jsa = js.accounts[name]
            # Go: the account's reservations are its limits, as uint64 (-1: no limit).
            ad = {"name": name, "id": name, "memory": jsa.memory, "storage": jsa.storage,
                  "reserved_memory": jsa.limits["max_memory"] % (UINT64_MAX + 1),
                  "reserved_storage": jsa.limits["max_storage"] % (UINT64_MAX + 1), "accounts": 0, "ha_assets": 0,
                  "api": {"total": jsa.api_total, "errors": jsa.api_errors}}
            if opts.streams and jsa.streams:
                sd = []
                for mset in sorted(jsa.streams.values(), key=lambda m: m.cfg.name):
                    e = {"name": mset.cfg.name, "created": format_time(mset.created),
                         "cluster": {"leader": s.name}}
                    if opts.config:
                        e["config"] = mset.cfg.to_dict()
                    e["state"] = mset.state_dict()
                    if opts.consumer:
                        cd = []
                        for o in mset.public_consumers():
                            info = o.info()
                            if not opts.config:
                                del info["config"]
                            cd.append(info)
                        if cd:
                            e["consumer_detail"] = cd
                    mset.mirror_and_sources_info(e)
                    sd.append(e)
                ad["stream_detail"] = sd
            details.append(ad)
        if details:
            d["account_details"] = details
    return d


UINT64_MAX = 2**64 - 1


@dataclass
class HealthzOptions:
    """Go: HealthzOptions."""

    js_enabled_only: bool = False
    js_server_only: bool = False


JS_NOT_ENABLED = "JetStream not enabled (10076)"  # Go: NewJSNotEnabledError().Error()


def healthz(s, opts=None):
    """Go: healthz. {"status": "ok"}, or a status and an error (the handler answers 503)."""
    if not s.running or s.listener is None:
        # Go: readyForConnections(time.Millisecond) names the listeners that are not up.
        return {"status": "error", "error": "failed to be ready for connections after 1ms: server"}
    if s.opts.jetstream and getattr(s, "js", None) is None:
        # Asked for, but it did not start.
        return {"status": "unavailable", "error": JS_NOT_ENABLED}
    return {"status": "ok"}


# -- /stacksz, /ipqueuesz ----------------------------------------------------------------------


def stacksz():
    """Go: HandleStacksz's runtime.Stack(all): every thread's and every greenlet's stack, in
    Go's shape ("goroutine 7 [select]:" becomes "greenlet 0x7f.. [suspended] Server.accept_loop:").

    Greenlets are found among all objects the garbage collector tracks (gevent's
    format_run_info does the same, but trips over dead weak proxies on PyPy), so the cost
    grows with the heap: this is a debugging aid.
    """
    import gc
    import sys
    import threading

    from greenlet import getcurrent, greenlet

    out = []
    names = {t.ident: t.name for t in threading.enumerate()}
    current_frames = getattr(sys, "_current_frames", lambda: {})()
    for ident, frame in current_frames.items():
        out.append(f"thread {ident:#x} [{names.get(ident, '?')}]:")
        out.append(_format_stack(frame))
        out.append("")
    me = getcurrent()
    for obj in gc.get_objects():
        try:
            if not isinstance(obj, greenlet):
                continue
        except ReferenceError:  # a weak proxy whose referent is gone
            continue
        g = obj
        if g.dead:
            continue
        if g is me:
            state, frame = "running", sys._getframe()
        elif not g:
            state, frame = "not started", None
        else:
            state, frame = "suspended", g.gr_frame
        out.append(f"greenlet {id(g):#x} [{state}] {_greenlet_name(g)}:")
        if frame is not None:
            out.append(_format_stack(frame))
        out.append("")
    return "\n".join(out) + "\n"


def _format_stack(frame, limit=200):
    """traceback.format_stack, oldest call first, stopping where the f_back chain loops
    (PyPy's greenlets link their frames in a cycle) or after `limit` frames."""
    import traceback
    frames = []
    seen = set()
    while frame is not None and len(frames) < limit and id(frame) not in seen:
        seen.add(id(frame))
        frames.append((frame, frame.f_lineno))
        frame = frame.f_back
    frames.reverse()
    return "".join(traceback.StackSummary.extract(frames).format()).rstrip("\n")


def _greenlet_name(g):
    run = getattr(g, "_run", None) or getattr(g, "run", None)
    name = getattr(run, "__qualname__", None) or getattr(run, "__name__", None)
    return name or type(g).__name__


def ipqueuesz(s, all_queues=False, qfilter=""):
    """Go: HandleIPQueuesz. gnatsd has no internal queues: an empty map."""
    return GoMap()
