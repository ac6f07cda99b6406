"""The monitoring endpoints over HTTP or HTTPS: a Flask app served by gevent's WSGI server on
the NATS server's own hub. Ports nats-server `server/monitor.go` (the Handle* functions, the
decode* helpers, ResponseHandler, HandleRoot) and `server/server.go` (startMonitoring,
getMonitoringTLSConfig, basePath).

Views only read query parameters, call the data functions of `monitor.py` and write what they
return (STYLE.md, "For gnatsd" 12). Parameters are decoded as Go decodes them (strconv), and a
bad one gets Go's 400 text; so does an option the data function refuses (MonitorError).

Concurrency: the WSGI server is created in Server.start, on the hub of the thread that runs
the server, so requests are greenlets beside the connections' readloops. A view takes its
data without yielding (no I/O but reading /proc), so it sees the server between two
switches; only /connz and /subsz, whose pages can hold thousands of entries, choose their
entries at once and then fill, encode and write them in pieces with a switch to the hub
between them (`pause=_hub_switch`, respond_json), so that message delivery is not held up
for a whole page.
"""
from __future__ import annotations

import logging
import posixpath
import ssl

import gevent
from flask import Blueprint, Flask, Response, current_app, request
from flask.logging import default_handler
from gevent import socket
from gevent import ssl as gevent_ssl
from gevent.pool import Pool
from gevent.pywsgi import WSGIHandler, WSGIServer

from .. import const, tls
from ..server import listen_tcp
from . import MonitorStartError
from ..gofmt import NumError, atoi, go_quote, iter_marshal_indent, marshal, marshal_indent, parse_bool, parse_uint
from .metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from .metrics import render as render_metrics
from .monitor import (
    ACCOUNT_STATZ_PATH, ACCOUNTZ_PATH, CONN_ALL, CONN_CLOSED, CONN_OPEN, CONNZ_PATH, GATEWAYZ_PATH,
    HEALTHZ_PATH, IPQUEUES_PATH, JSZ_PATH, LEAFZ_PATH, METRICS_PATH, ROOT_PATH, ROUTEZ_PATH,
    STACKSZ_PATH, SUBSZ_PATH, VARZ_PATH, AccountStatzOptions, AccountzOptions, ConnzOptions,
    GatewayzOptions, HealthzOptions, JSzOptions, LeafzOptions, MonitorError, RoutezOptions, SubszOptions,
    account_statz, accountz, connz, gatewayz, healthz, http_base_path, http_host, ipqueuesz, jsz, leafz,
    routez, stacksz, subsz, varz,
)

log = logging.getLogger("gnatsd")

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
# Go's ServeMux answers any method; so do these views.
METHODS = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]

#: Most HTTP connections served at once; more wait in the listen backlog.
MAX_HTTP_CONNECTIONS = 256
#: An HTTP connection that sends nothing for this long is closed (keep-alive included).
HTTP_IDLE_TIMEOUT = 60.0

bp = Blueprint("monitor", __name__)


class BadRequest(Exception):
    """A query parameter Go's decode* helpers refuse. str() is Go's 400 text."""


def _server():
    return current_app.config["GNATSD_SERVER"]


def _count(path):
    """Go: s.httpReqStats[path]++."""
    stats = _server().http_req_stats
    stats[path] = stats.get(path, 0) + 1


# -- decoding (Go: decodeBool, decodeUint64, decodeInt, decodeState, decodeSubs) ---------------


def _arg(param):
    return request.args.get(param, "")


def _decode(param, parse, kind, empty):
    """Go: decodeBool / decodeUint64 / decodeInt. A missing parameter gives `empty`."""
    s = _arg(param)
    if not s:
        return empty
    try:
        return parse(s)
    except NumError as e:
        raise BadRequest(f"Error decoding {kind} for '{param}': {e}") from None


def decode_bool(param):
    return _decode(param, parse_bool, "boolean", False)


def decode_uint64(param):
    return _decode(param, parse_uint, "uint64", 0)


def decode_int(param):
    return _decode(param, atoi, "int", 0)


_STATES = {"open": CONN_OPEN, "closed": CONN_CLOSED, "any": CONN_ALL, "all": CONN_ALL}


def decode_state():
    s = _arg("state")
    if not s:
        return CONN_OPEN
    state = _STATES.get(s.lower())
    if state is None:
        raise BadRequest(f"Error decoding state for {s}")
    return state


def decode_subs():
    """(subs, subs_detail): `subs=detail` or a boolean."""
    if _arg("subs").lower() == "detail":
        return False, True
    return decode_bool("subs"), False


# -- responses -------------------------------------------------------------------------------


def response_handler(data, status=200):
    """Go: ResponseHandler. JSON, or JSONP when the query names a `callback`. `data` is the
    text, or an iterator of text pieces (written as they come, chunked)."""
    callback = _arg("callback")
    ctype = JSON
    if callback:
        ctype = "application/javascript"
        if isinstance(data, str):
            data = f"{callback}({data})"
        else:
            data = _wrapped(callback, data)
    return Response(data, status=status, content_type=ctype)


def _wrapped(callback, pieces):
    yield callback + "("
    yield from pieces
    yield ")"


STREAM_OVER = 256  # list elements past which an answer is streamed


def respond_json(data):
    """Go's MarshalIndent of `data`, through response_handler.

    A long list (a /connz or /subsz page) is written in pieces, with a switch to the hub
    between them: the data is a snapshot taken without yielding, and only its encoding is
    spread out, so message delivery does not wait for the whole answer to be formatted.
    """
    if any(isinstance(v, list) and len(v) > STREAM_OVER for v in data.values()):
        return response_handler(_cooperative(iter_marshal_indent(data)))
    return response_handler(marshal_indent(data))


def _cooperative(pieces):
    for i, piece in enumerate(pieces):
        if i:
            _hub_switch()
        yield piece


def _hub_switch():
    """Let every other ready greenlet (readloops, writeloops) run, then carry on."""
    gevent.sleep(0)


def _bad_request(e):
    return Response(str(e), status=400, content_type=TEXT)


def _not_found(e):
    """Go: http.NotFound."""
    resp = Response("404 page not found\n", status=404, content_type=TEXT)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp


# -- views (Go: Handle*) -----------------------------------------------------------------------

_INDEX = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gnatsd {name}</title>
<style>
  body {{ font-family: system-ui, sans-serif; margin: 2em; color: #223; }}
  a {{ display: block; padding: 0.2em 0; color: #3740c8; text-decoration: none; }}
  a:hover {{ text-decoration: underline; }}
  .version {{ color: #667; font-size: 0.9em; margin-bottom: 1em; }}
</style>
</head>
<body>
<h1>gnatsd</h1>
<div class="version">nats-server {version} compatible &middot; gnatsd {gnatsd_version}</div>
{links}
<a href="https://docs.nats.io/running-a-nats-service/nats_admin/monitoring">Help</a>
</body>
</html>
"""

_LINKS = (
    ("General", VARZ_PATH), ("JetStream", JSZ_PATH), ("Connections", CONNZ_PATH), ("Accounts", ACCOUNTZ_PATH),
    ("Account Stats", ACCOUNT_STATZ_PATH), ("Subscriptions", SUBSZ_PATH), ("Routes", ROUTEZ_PATH),
    ("LeafNodes", LEAFZ_PATH), ("Gateways", GATEWAYZ_PATH), ("Health Probe", HEALTHZ_PATH),
    ("Prometheus Metrics", METRICS_PATH), ("Stacks", STACKSZ_PATH),
)


def handle_root():
    """Go: HandleRoot. An index of the endpoints (links relative to the base path, as Go's)."""
    srv = _server()
    _count(ROOT_PATH)
    base = current_app.config["GNATSD_BASE_PATH"]
    links = "\n".join(f'<a href=".{base_path(base, p)}">{text}</a>' for text, p in _LINKS)
    html = _INDEX.format(name=_html(srv.name), version=const.VERSION, gnatsd_version=const.GNATSD_VERSION,
                         links=links)
    return Response(html, content_type="text/html; charset=utf-8")


def _html(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def handle_varz():
    """Go: HandleVarz."""
    _count(VARZ_PATH)
    return response_handler(marshal_indent(varz(_server())))


def handle_connz():
    """Go: HandleConnz."""
    sort_opt = _arg("sort")
    auth = decode_bool("auth")
    subs, subs_det = decode_subs()
    offset = decode_int("offset")
    limit = decode_int("limit")
    cid = decode_uint64("cid")
    state = decode_state()
    opts = ConnzOptions(sort=sort_opt, username=auth, subscriptions=subs, subscriptions_detail=subs_det,
                        offset=offset, limit=limit, cid=cid, mqtt_client=_arg("mqtt_client"), state=state,
                        user=_arg("user"), account=_arg("acc"))
    _count(CONNZ_PATH)
    return respond_json(connz(_server(), opts, pause=_hub_switch))


def handle_routez():
    """Go: HandleRoutez."""
    subs, subs_det = decode_subs()
    _count(ROUTEZ_PATH)
    return response_handler(marshal_indent(routez(_server(), RoutezOptions(subs, subs_det))))


def handle_gatewayz():
    """Go: HandleGatewayz."""
    _count(GATEWAYZ_PATH)
    accs = decode_bool("accs")
    acc_name = _arg("acc_name")
    opts = GatewayzOptions(name=_arg("gw_name"), accounts=accs or bool(acc_name), account_name=acc_name)
    return response_handler(marshal_indent(gatewayz(_server(), opts)))


def handle_leafz():
    """Go: HandleLeafz."""
    _count(LEAFZ_PATH)
    subs = decode_bool("subs")
    return response_handler(marshal_indent(leafz(_server(), LeafzOptions(subs, _arg("acc")))))


_SUBLIST_STATS_KEYS = ("num_subscriptions", "num_cache", "num_inserts", "num_removes", "num_matches",
                       "cache_hit_rate", "max_fanout", "avg_fanout")


def handle_subsz():
    """Go: HandleSubsz. Without a list of subscriptions, only the sublist statistics."""
    _count(SUBSZ_PATH)
    subs = decode_bool("subs")
    offset = decode_int("offset")
    limit = decode_int("limit")
    opts = SubszOptions(offset=offset, limit=limit, subscriptions=subs, account=_arg("acc"), test=_arg("test"))
    st = subsz(_server(), opts, pause=_hub_switch)
    if not st.get("subscriptions_list"):
        st = {k: st[k] for k in _SUBLIST_STATS_KEYS}
    return respond_json(st)


def handle_stacksz():
    """Go: HandleStacksz. Not counted in http_req_stats, as in Go."""
    return response_handler(stacksz())


def handle_accountz():
    """Go: HandleAccountz."""
    _count(ACCOUNTZ_PATH)
    return response_handler(marshal_indent(accountz(_server(), AccountzOptions(_arg("acc")))))


def handle_account_statz():
    """Go: HandleAccountStatz."""
    _count(ACCOUNT_STATZ_PATH)
    unused = decode_bool("unused")
    return response_handler(marshal_indent(account_statz(_server(), AccountStatzOptions(include_unused=unused))))


def handle_jsz():
    """Go: HandleJsz."""
    _count(JSZ_PATH)
    opts = JSzOptions(accounts=decode_bool("accounts"), streams=decode_bool("streams"),
                      consumer=decode_bool("consumers"), config=decode_bool("config"))
    opts.offset = decode_int("offset")
    opts.limit = decode_int("limit")
    opts.leader_only = decode_bool("leader-only")
    opts.account = _arg("acc")
    return response_handler(marshal_indent(jsz(_server(), opts)))


def handle_healthz():
    """Go: HandleHealthz. Compact JSON; 503 when not healthy."""
    _count(HEALTHZ_PATH)
    js_enabled = decode_bool("js-enabled")
    if js_enabled:
        log.warning("Healthcheck: js-enabled deprecated, use js-enabled-only instead")
    opts = HealthzOptions(js_enabled_only=decode_bool("js-enabled-only") or js_enabled,
                          js_server_only=decode_bool("js-server-only"))
    hs = healthz(_server(), opts)
    status = 200
    if hs.get("error"):
        log.warning("Healthcheck failed: %s", go_quote(hs["error"]))
        status = 503
    return response_handler(marshal(hs), status)


def handle_ipqueuesz():
    """Go: HandleIPQueuesz."""
    decode_bool("all")
    return response_handler(marshal_indent(ipqueuesz(_server(), qfilter=_arg("queues"))))


def handle_metrics():
    """Not in Go: the Prometheus text format (metrics.py, docs/MONITORING.md)."""
    _count(METRICS_PATH)
    return Response(render_metrics(_server()), content_type=METRICS_CONTENT_TYPE)


# Go: startMonitoring's mux, in its order.
ENDPOINTS = (
    (ROOT_PATH, handle_root),
    (VARZ_PATH, handle_varz),
    (CONNZ_PATH, handle_connz),
    (ROUTEZ_PATH, handle_routez),
    (GATEWAYZ_PATH, handle_gatewayz),
    (LEAFZ_PATH, handle_leafz),
    (SUBSZ_PATH, handle_subsz),
    ("/subscriptionsz", handle_subsz),  # Go: the old name, kept as an alias
    (STACKSZ_PATH, handle_stacksz),
    (ACCOUNTZ_PATH, handle_accountz),
    (ACCOUNT_STATZ_PATH, handle_account_statz),
    (JSZ_PATH, handle_jsz),
    (HEALTHZ_PATH, handle_healthz),
    (IPQUEUES_PATH, handle_ipqueuesz),
    (METRICS_PATH, handle_metrics),
)

for _path, _view in ENDPOINTS:
    bp.add_url_rule(_path, endpoint=_view.__name__ + ("_alias" if _path == "/subscriptionsz" else ""),
                    view_func=_view, methods=METHODS, strict_slashes=_path != ROOT_PATH)
bp.register_error_handler(BadRequest, _bad_request)
bp.register_error_handler(MonitorError, _bad_request)


# -- the app and its server ------------------------------------------------------------------


def normalize_base_path(p):
    """Go: normalizeBasePath. "" -> "/", a leading slash added, the path cleaned."""
    if not p:
        return "/"
    if not p.startswith("/"):
        p = "/" + p
    p = posixpath.normpath(p)
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return p


def base_path(base, p):
    """Go: Server.basePath, path.Join(httpBasePath, p)."""
    joined = posixpath.normpath(posixpath.join(base, p.lstrip("/"))) if base != "/" else p
    if joined.startswith("//"):
        joined = "/" + joined.lstrip("/")
    return joined


def create_app(server, base="/"):
    """The Flask app for one server's monitoring endpoints, under the base path `base`.

    Tests can drive it with `app.test_client()`; `MonitorServer` serves it over HTTP.
    """
    if "<" in base or ">" in base:
        raise ValueError(f"http_base_path {base!r}: '<' and '>' are not allowed")
    app = Flask("gnatsd.monitor")
    # Flask's own handler writes to wsgi.errors, which pywsgi logs to "gnatsd.monitor" again:
    # drop it, so errors reach the "gnatsd" log once.
    app.logger.removeHandler(default_handler)
    app.config["GNATSD_SERVER"] = server
    app.config["GNATSD_BASE_PATH"] = base
    app.register_blueprint(bp, url_prefix=None if base == "/" else base)
    app.register_error_handler(404, _not_found)
    return app


class _Handler(WSGIHandler):
    """pywsgi's handler with an idle timeout, so silent connections do not hold a pool slot,
    and TCP_NODELAY (as Go sets on every connection): pywsgi writes the status line and
    headers apart from the body, and with Nagle's algorithm a keep-alive client then waits
    for its delayed ACK, 40 ms per response. Requests are not logged (as in Go)."""

    def log_request(self):
        # pywsgi formats the access-log line (with datetime.now()) even for log=None: about
        # 6 % of a /varz or /connz request on PyPy.
        pass

    def handle(self):
        self.socket.settimeout(HTTP_IDLE_TIMEOUT)
        try:
            self.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError:
            pass
        return super().handle()


# Go's net/http: the first five bytes of a plain HTTP request to its TLS port, and its answer.
_HTTP_STARTS = (b"GET /", b"HEAD ", b"POST ", b"PUT /", b"OPTIO")
_HTTP_TO_HTTPS = b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n"


class _HTTPSServer(WSGIServer):
    """pywsgi's server with the TLS handshake done as Go's net/http does it: a plain HTTP
    request gets Go's 400, a failed handshake is logged as Go logs it (nothing goes to the
    hub's error handler), and a client silent for HTTP_IDLE_TIMEOUT is dropped."""

    def wrap_socket_and_handle(self, client_socket, address):
        """Runs in the connection's greenlet; the caller closes `client_socket`."""
        client_socket.settimeout(HTTP_IDLE_TIMEOUT)
        try:
            if client_socket.recv(5, socket.MSG_PEEK) in _HTTP_STARTS:
                # Go read the request with the record header: closing with it unread would
                # reset the connection, and the client could lose the answer.
                client_socket.recv(4096)
                client_socket.sendall(_HTTP_TO_HTTPS)
                return None
            ssl_socket = self.wrap_socket(client_socket, **self.ssl_args)
        except (OSError, ValueError) as e:
            log.error("monitoring: TLS handshake error from %s: %s", _remote(address), tls.handshake_error_text(e))
            return None
        try:
            return self.handle(ssl_socket, address)
        finally:
            ssl_socket.close()


def _remote(address):
    """Go: RemoteAddr().String(); an IPv4 client of the dual-stack listener shown as IPv4."""
    host = address[0]
    if host.startswith("::ffff:") and "." in host:
        host = host[7:]
    return f"{_join_host(host)}:{address[1]}"


def monitoring_tls_config(opts):
    """Go: startMonitoring's and getMonitoringTLSConfig's TLS config: the one of client
    connections (certificate, versions, cipher suites), without asking for a client
    certificate."""
    ctx = tls.gen_tls_config(opts, gevent_ssl.SSLContext)
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MonitorServer:
    """Go: startMonitoring. Binds the monitor port and serves the app on the current hub, over
    TLS when `secure` (the `https_port`)."""

    def __init__(self, server, secure=False):
        opts = server.opts
        self.server = server
        self.scheme = "https" if secure else "http"
        self.base = normalize_base_path(http_base_path(opts))
        self.app = create_app(server, self.base)
        server_class, ssl_args = WSGIServer, {}
        if secure:
            server_class, ssl_args = _HTTPSServer, {"ssl_context": monitoring_tls_config(opts)}
        host = http_host(opts)
        port = opts.https_port if secure else opts.http_port
        self.listener = _listen(host, 0 if port == const.RANDOM_PORT else port)
        self.addr = self.listener.getsockname()[:2]
        self.host = host
        self.pool = Pool(MAX_HTTP_CONNECTIONS)
        self.wsgi = server_class(
            self.listener, self.app, spawn=self.pool, log=None,
            error_log=logging.getLogger("gnatsd.monitor"), handler_class=_Handler,
            # Given here, pywsgi does not look the host name up (a DNS query) at start.
            environ={"SERVER_NAME": host or "localhost", "SERVER_PORT": str(self.addr[1])},
            **ssl_args,
        )

    def start(self):
        """Start serving. Does not yield."""
        self.wsgi.start()
        log.info("Starting %s monitor on %s:%d", self.scheme, _join_host(self.host), self.addr[1])

    def close(self):
        """Stop accepting and end every open HTTP connection. Does not yield."""
        self.wsgi.close()
        self.pool.kill(block=False)


def _join_host(host):
    return f"[{host}]" if ":" in host else host


def _listen(host, port):
    try:
        return listen_tcp(host, port, backlog=128)
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise MonitorStartError(e.errno, f"can't listen to the monitor port: listen tcp "
                                         f"{_join_host(host)}:{port}: bind: {reason}") from None
