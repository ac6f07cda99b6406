"""HTTP monitoring: every endpoint and parameter of nats-server 2.9.10's monitor, /metrics, and
the Go formats behind them.

Go: server/monitor_test.go. Servers run in-process with `http_port=-1` (a random port, found
in `server.http_addr`); real clients (raw sockets and nats-py) make the connections,
subscriptions and traffic the endpoints report. Expected error texts are the Go server's,
checked against nats-server 2.9.10 (`nats-server -m PORT`). Data functions are also called
directly, on the server's hub (`on_hub`), as STYLE.md's split between data and HTTP allows.
"""
from __future__ import annotations

import asyncio
import datetime
import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import nats
import pytest

from conftest import RawConn, check_for, client_subs, internal_subs, on_hub
from gnatsd import Options, Server
from gnatsd.monitor import MonitorStartError
from gnatsd import gofmt
from gnatsd.monitor.app import base_path, normalize_base_path
from gnatsd.monitor.metrics import METRICS
from gnatsd.monitor.monitor import ConnzOptions, SubszOptions, connz, subsz, varz

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path("/work/shared/reference/monitor-keys-nats-server-2.9.10.json")


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

def get(server, path, method="GET"):
    """(status, content type, body str) of one HTTP request to the server's monitor."""
    host, port = server.http_addr
    conn = http.client.HTTPConnection("127.0.0.1" if host in ("0.0.0.0", "") else host, port, timeout=10)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    finally:
        conn.close()


def getj(server, path):
    status, ctype, body = get(server, path)
    assert status == 200, (path, status, body)
    assert ctype == "application/json", ctype
    return json.loads(body)


def conn(server, **connect):
    """A raw client after CONNECT (verbose off) and PING/PONG."""
    c = RawConn(server.port)
    c.info()
    fields = {"verbose": False, "pedantic": False}
    fields.update(connect)
    c.send(b"CONNECT " + json.dumps(fields).encode() + b"\r\n")
    c.ping_pong()
    return c


def parse_time(s):
    """An RFC 3339 time with up to nanoseconds -> nanoseconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z", s)
    assert m, s
    base = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S").replace(tzinfo=datetime.timezone.utc)
    return int(base.timestamp()) * 10**9 + int((m.group(2) or "0").ljust(9, "0"))


def flatten(v, prefix=""):
    """Field names in the reference file's notation: a.b, list[].field."""
    keys = set()
    if isinstance(v, dict):
        for k, x in v.items():
            keys.add(prefix + k)
            if isinstance(x, dict):
                keys |= flatten(x, prefix + k + ".")
            elif isinstance(x, list):
                for item in x:
                    keys |= flatten(item, prefix + k + "[].")
    return keys


@pytest.fixture
def mon(make_server):
    """A server with monitoring on a random port."""
    return make_server(http_port=-1)


@pytest.fixture
def bare(make_server):
    """A monitored server without the system account: its counts are the clients' alone."""
    return make_server(http_port=-1, no_system_account=True)


@pytest.fixture
def conns():
    opened = []

    def make(server, **connect):
        c = conn(server, **connect)
        opened.append(c)
        return c

    yield make
    for c in opened:
        c.close()


# ---------------------------------------------------------------------------------------------
# Wiring: start, stop, ports, base path
# ---------------------------------------------------------------------------------------------

def test_random_port_and_index(mon):
    assert mon.http_addr[1] > 0 and mon.http_addr[1] != mon.port
    status, ctype, body = get(mon, "/")
    assert status == 200 and ctype == "text/html; charset=utf-8"
    for path in ("varz", "connz", "routez", "gatewayz", "leafz", "subsz", "accountz", "accstatz", "jsz",
                 "healthz", "metrics"):
        assert f'href="./{path}"' in body
    assert getj(mon, "/varz")["http_req_stats"] == {"/": 1, "/varz": 1}


def test_no_monitor_unless_asked(server):
    assert server.http_addr is None and server.monitor is None


def test_monitor_runs_beside_clients_and_stops_with_the_server(make_server, conns):
    s = make_server(http_port=-1)
    c = conns(s)
    c.send(b"SUB x 1\r\nPUB x 2\r\nhi\r\n")
    c.expect(rb"MSG x 1 2\r\nhi\r\n")
    assert getj(s, "/varz")["in_msgs"] == 1
    # a keep-alive HTTP connection, open when the server stops
    keep = http.client.HTTPConnection("127.0.0.1", s.http_addr[1], timeout=5)
    keep.request("GET", "/healthz")
    assert keep.getresponse().read() == b'{"status":"ok"}'
    s.stop_thread()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", s.http_addr[1]), timeout=2).close()
    with pytest.raises((OSError, http.client.HTTPException)):
        keep.request("GET", "/healthz")
        keep.getresponse().read()
    keep.close()


def test_busy_monitor_port_fails_start_with_go_text():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        s = Server(Options(host="127.0.0.1", port=-1, http_port=port))
        with pytest.raises(MonitorStartError) as e:
            s.start_in_thread()
    assert str(e.value.strerror) == (f"can't listen to the monitor port: listen tcp 127.0.0.1:{port}: "
                                     "bind: address already in use")
    assert s.listener is None and not s.running  # the client port is not left open


def test_http_host_defaults_to_host(make_server):
    s = make_server(http_port=-1)
    v = getj(s, "/varz")
    assert (v["http_host"], v["http_port"], v["https_port"], v["http_base_path"]) == ("127.0.0.1", -1, 0, "")


@pytest.mark.parametrize("given, base", [("", "/"), ("/", "/"), ("mon", "/mon"), ("/mon/", "/mon"),
                                         ("//a/./b/../c", "/a/c")])
def test_normalize_base_path(given, base):
    assert normalize_base_path(given) == base


def test_http_base_path(make_server):
    s = make_server(http_port=-1, http_base_path="/mon/")
    assert getj(s, "/mon/varz")["http_base_path"] == "/mon/"
    assert getj(s, "/mon/connz")["total"] == 0
    status, _, body = get(s, "/mon")
    assert status == 200 and 'href="./mon/varz"' in body
    assert get(s, "/varz")[0] == 404
    assert base_path("/mon", "/varz") == "/mon/varz" and base_path("/", "/varz") == "/varz"


def test_config_file_monitoring_keys(tmp_path, make_server):
    from gnatsd.opts import process_config_file
    conf = tmp_path / "m.conf"
    conf.write_text('http: "127.0.0.1:-1"\nhttp_base_path: "/nats"\n')
    o = Options()
    process_config_file(o, str(conf))
    assert (o.http_host, o.http_port, o.http_base_path) == ("127.0.0.1", -1, "/nats")
    s = make_server(http_host=o.http_host, http_port=o.http_port, http_base_path=o.http_base_path)
    assert getj(s, "/nats/varz")["http_base_path"] == "/nats"
    conf.write_text("monitor_port: 8222\n")
    o = Options()
    process_config_file(o, str(conf))
    assert o.http_port == 8222


def test_gnatsd_command_serves_monitoring(tmp_path):
    """The `gnatsd` command (monkey-patched process): -m -1, found through the ports file."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))  # this work tree, not an installed copy
    proc = subprocess.Popen([sys.executable, "-m", "gnatsd", "-a", "127.0.0.1", "-p", "-1", "-m", "-1",
                             "--ports_file_dir", str(tmp_path)], stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                            env=env)
    try:
        path = check_for(20, lambda: next(iter(tmp_path.glob("*.ports")), None) if proc.poll() is None else
                         pytest.fail(proc.stderr.read()))
        ports = json.loads(path.read_text())
        host, port = ports["monitoring"][0].rsplit("//", 1)[1].rsplit(":", 1)
        c = http.client.HTTPConnection(host, int(port), timeout=10)
        c.request("GET", "/varz")
        v = json.loads(c.getresponse().read())
        assert v["port"] == int(ports["nats"][0].rsplit(":", 1)[1])
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=20)
    assert re.search(r"\[INF\] Starting http monitor on 127\.0\.0\.1:\d+\n.*\[INF\] Listening for client", err)
    assert "Monitoring is not yet supported" not in err


# ---------------------------------------------------------------------------------------------
# /varz
# ---------------------------------------------------------------------------------------------

def test_varz_counts_traffic(make_server, conns):
    s = make_server(http_port=-1, max_subs=7, ping_interval=90.5, write_deadline=2.5)
    a = conns(s)
    b = conns(s)
    a.send(b"SUB foo 1\r\nSUB bar 2\r\n")
    a.ping_pong()
    b.send(b"PUB foo 5\r\nhello\r\nPUB foo 3\r\nabc\r\nPUB none 1\r\nx\r\n")
    b.ping_pong()
    a.expect(rb"MSG foo 1 3\r\nabc\r\n")
    b.close()
    check_for(5, lambda: s.num_clients() == 1)
    v = getj(s, "/varz")
    assert (v["in_msgs"], v["in_bytes"], v["out_msgs"], v["out_bytes"]) == (3, 9, 2, 8)
    assert (v["connections"], v["total_connections"], v["subscriptions"]) == (1, 2, 2 + internal_subs(s))
    assert v["server_id"] == s.server_id and v["port"] == s.port
    assert v["max_subscriptions"] == 7
    assert v["ping_interval"] == 90_500_000_000 and v["write_deadline"] == 2_500_000_000
    assert v["version"] == "2.9.10" and v["proto"] == 1
    assert v["mem"] > 1_000_000 and v["cores"] >= 1 and 0 <= v["cpu"]
    for key in ("start", "now", "config_load_time"):
        parse_time(v[key])
    assert parse_time(v["start"]) <= parse_time(v["now"])
    assert re.fullmatch(r"\d+s", v["uptime"])
    for key in ("cluster", "gateway", "leaf", "mqtt", "websocket", "jetstream"):
        assert v[key] == {}
    assert "auth_required" not in v


def test_varz_json_is_gos(mon):
    """Go's MarshalIndent: two-space indent, floats without a trailing .0, durations as ns."""
    _, _, body = get(mon, "/varz")
    assert body.startswith('{\n  "server_id": "')
    assert '\n  "auth_timeout": 2,\n' in body
    assert '\n  "tls_timeout": 2,\n' in body
    assert '\n  "ping_interval": 120000000000,\n' in body
    assert '\n  "http_req_stats": {\n    "/varz": 1\n  },\n' in body
    assert body.endswith("\n}")


def test_varz_auth_required(make_server):
    assert getj(make_server(http_port=-1, authorization="tok"), "/varz")["auth_required"] is True


def test_varz_data_function_directly(mon):
    v = on_hub(mon, varz, mon)
    assert v["server_id"] == mon.server_id and v["http_req_stats"] == {}


# ---------------------------------------------------------------------------------------------
# /connz
# ---------------------------------------------------------------------------------------------

def test_connz_with_nats_py(mon):
    async def main():
        nc = await nats.connect(mon.client_url(), name="app-1")
        sub = await nc.subscribe("greet", queue="workers")
        await nc.subscribe("other")
        await nc.publish("greet", b"hello")
        await sub.next_msg(timeout=2)
        await nc.flush()
        cz = await asyncio.get_running_loop().run_in_executor(None, getj, mon, "/connz?subs=detail")
        await nc.close()
        return cz

    cz = asyncio.run(asyncio.wait_for(main(), 30))
    assert (cz["num_connections"], cz["total"], cz["offset"], cz["limit"]) == (1, 1, 0, 1024)
    ci = cz["connections"][0]
    assert (ci["kind"], ci["type"], ci["ip"], ci["name"], ci["lang"]) == ("Client", "nats", "127.0.0.1", "app-1",
                                                                         "python3")
    assert ci["version"] and ci["port"] > 0
    assert (ci["in_msgs"], ci["in_bytes"], ci["out_msgs"], ci["out_bytes"], ci["subscriptions"]) == (1, 5, 1, 5, 2)
    assert ci["pending_bytes"] == 0
    assert re.fullmatch(r"[\d.]+(ns|µs|ms|s)", ci["rtt"]) and ci["rtt"] != "0s"
    assert ci["uptime"] == "0s" and ci["idle"] == "0s"
    detail = sorted(ci["subscriptions_list_detail"], key=lambda d: d["subject"])
    assert detail[0] == {"subject": "greet", "qgroup": "workers", "sid": "1", "msgs": 1, "cid": ci["cid"]}
    assert detail[1] == {"subject": "other", "sid": "2", "msgs": 0, "cid": ci["cid"]}
    assert "authorized_user" not in ci and "stop" not in ci and "reason" not in ci


def test_connz_subs_list_and_max(mon, conns):
    c = conns(mon)
    c.send(b"SUB foo 1\r\nSUB bar q 2\r\nUNSUB 2 5\r\n")
    c.ping_pong()
    ci = getj(mon, "/connz?subs=1")["connections"][0]
    assert ci["subscriptions_list"] == ["foo", "bar"] and "subscriptions_list_detail" not in ci
    for flag in ("true", "t", "TRUE", "1"):
        assert getj(mon, f"/connz?subs={flag}")["connections"][0]["subscriptions_list"] == ["foo", "bar"]
    for flag in ("0", "false", ""):
        assert "subscriptions_list" not in getj(mon, f"/connz?subs={flag}")["connections"][0]
    ci = getj(mon, "/connz?subs=DETAIL")["connections"][0]
    assert ci["subscriptions_list_detail"][1] == {"subject": "bar", "qgroup": "q", "sid": "2", "msgs": 0,
                                                  "max": 5, "cid": ci["cid"]}


def test_connz_auth_shows_user_never_a_token(make_server, conns):
    s = make_server(http_port=-1, username="derek", password="pw")
    conns(s, user="derek", **{"pass": "pw"})
    ci = getj(s, "/connz?auth=1")["connections"][0]
    assert ci["authorized_user"] == "derek"
    assert "authorized_user" not in getj(s, "/connz")["connections"][0]
    t = make_server(http_port=-1, authorization="S3CR3T")
    conns(t, auth_token="S3CR3T")
    _, _, body = get(t, "/connz?auth=true")
    assert "S3CR3T" not in body
    assert json.loads(body)["connections"][0]["authorized_user"] == "[REDACTED]"


@pytest.fixture
def three(mon, conns):
    """Three clients with different subscriptions and traffic (see the expected orders below).

    A (cid 1): 3 subs, receives 4 x 1 byte, sends 2 x 100 bytes.
    B (cid 2): 1 sub, receives 5 x 10 bytes, sends 4 x 1 byte.
    C (cid 3): 2 subs, receives 2 x 100 bytes, sends 5 x 10 bytes.
    Last activity: B, then C, then A.
    """
    a, b, c = conns(mon), conns(mon), conns(mon)
    a.send(b"SUB a 1\r\nSUB a2 2\r\nSUB a3 3\r\n")
    b.send(b"SUB b 1\r\n")
    c.send(b"SUB c 1\r\nSUB c2 2\r\n")
    for x in (a, b, c):
        x.ping_pong()
    b.send(b"PUB a 1\r\nx\r\n" * 4)
    c.send(b"PUB b 10\r\n0123456789\r\n" * 5)
    a.send(b"PUB c 100\r\n" + b"y" * 100 + b"\r\n" + b"PUB c 100\r\n" + b"y" * 100 + b"\r\n")
    a.expect(rb"(MSG a 1 1\r\nx\r\n){4}")
    b.expect(rb"(MSG b 1 10\r\n0123456789\r\n){5}")
    c.expect(rb"(MSG c 1 100\r\ny{100}\r\n){2}")
    for x in (b, c, a):
        x.ping_pong()
        time.sleep(0.002)
    return mon


@pytest.mark.parametrize("sort, cids, field, desc", [
    ("", [1, 2, 3], "cid", False),
    ("cid", [1, 2, 3], "cid", False),
    ("start", [1, 2, 3], "start", False),
    ("subs", [1, 3, 2], "subscriptions", True),
    ("msgs_to", [2, 1, 3], "out_msgs", True),
    ("bytes_to", [3, 2, 1], "out_bytes", True),
    ("msgs_from", [3, 2, 1], "in_msgs", True),
    ("bytes_from", [1, 3, 2], "in_bytes", True),
    ("last", [1, 3, 2], "last_activity", True),
    ("uptime", [3, 2, 1], None, False),
    ("idle", None, None, None),
    ("pending", None, "pending_bytes", True),
])
def test_connz_sort(three, sort, cids, field, desc):
    cz = getj(three, f"/connz?sort={sort}")
    got = cz["connections"]
    assert sorted(ci["cid"] for ci in got) == [1, 2, 3]
    if cids is not None:
        assert [ci["cid"] for ci in got] == cids
    if field is not None:
        values = [parse_time(ci[field]) if field in ("start", "last_activity") else ci[field] for ci in got]
        assert values == sorted(values, reverse=desc)
    if sort == "idle":
        # Go 2.9.10 sorts idle by last activity minus start, largest first.
        spans = [parse_time(ci["last_activity"]) - parse_time(ci["start"]) for ci in got]
        assert spans == sorted(spans, reverse=True)


def test_connz_counts(three):
    by_cid = {ci["cid"]: ci for ci in getj(three, "/connz")["connections"]}
    assert [(by_cid[i]["out_msgs"], by_cid[i]["out_bytes"], by_cid[i]["in_msgs"], by_cid[i]["in_bytes"],
             by_cid[i]["subscriptions"]) for i in (1, 2, 3)] == [(4, 4, 2, 200, 3), (5, 50, 4, 4, 1),
                                                                  (2, 200, 5, 50, 2)]


@pytest.mark.parametrize("query, cids, offset, limit", [
    ("limit=2", [1, 2], 0, 2),
    ("limit=2&offset=2", [3], 2, 2),
    ("offset=1", [2, 3], 1, 1024),
    ("offset=3", [], 3, 1024),
    ("offset=5000", [], 5000, 1024),
    ("offset=9223372036854775807", [], 9223372036854775807, 1024),
    ("limit=9223372036854775807&offset=1", [2, 3], 1, 9223372036854775807),
    ("offset=-4", [1, 2, 3], 0, 1024),
    ("limit=-4", [1, 2, 3], 0, 1024),
    ("limit=0", [1, 2, 3], 0, 1024),
    ("limit=%2B2", [1, 2], 0, 2),
    ("cid=2", [2], 0, 1),
    ("cid=2&limit=10", [2], 0, 1),
    ("cid=99", [], 0, 1),
    ("cid=0", [1, 2, 3], 0, 1024),
    ("sort=subs&limit=1&offset=1", [3], 1, 1),
])
def test_connz_paging(three, query, cids, offset, limit):
    cz = getj(three, "/connz?" + query)
    assert [ci["cid"] for ci in cz["connections"]] == cids
    assert (cz["offset"], cz["limit"], cz["num_connections"], cz["total"]) == (offset, limit, len(cids), 3)


def test_connz_user_and_account_filters(mon, conns):
    conns(mon, user="bob")
    conns(mon, user="alice")
    cz = getj(mon, "/connz?user=bob")
    assert [ci["cid"] for ci in cz["connections"]] == [1] and cz["total"] == 2  # Go: total before filtering
    assert [ci["cid"] for ci in getj(mon, "/connz?acc=$G")["connections"]] == [1, 2]
    # An unknown account: Go returns before it fills in the server id, with a null list.
    cz = getj(mon, "/connz?acc=nope")
    assert (cz["server_id"], cz["connections"], cz["total"], cz["num_connections"]) == ("", None, 0, 0)


def test_long_connz_is_streamed_and_the_same(mon):
    many = [conn(mon) for _ in range(300)]
    try:
        host, port = mon.http_addr
        c = http.client.HTTPConnection(host, port, timeout=10)
        c.request("GET", "/connz?limit=280&subs=1")
        resp = c.getresponse()
        assert resp.getheader("Transfer-Encoding") == "chunked"
        body = resp.read().decode()
        cz = json.loads(body)
        assert [ci["cid"] for ci in cz["connections"]] == list(range(1, 281)) and cz["total"] == 300
        assert body == gofmt.marshal_indent(cz)  # Go's layout, whether streamed or not
        status, ctype, body = get(mon, "/connz?callback=f&offset=10")
        assert (status, ctype) == (200, "application/javascript") and body.startswith("f({\n") and body.endswith("})")
        assert len(json.loads(body[2:-1])["connections"]) == 290
        assert len(getj(mon, "/connz?limit=5")["connections"]) == 5  # short answers are not
        # The page is filled 128 entries at a time, with a pause (a hub switch) in between.
        pauses = []
        cz = on_hub(mon, lambda: connz(mon, ConnzOptions(limit=300), pause=lambda: pauses.append(1)))
        assert len(cz["connections"]) == 300 and len(pauses) == 2
        pauses.clear()
        sz = on_hub(mon, lambda: subsz(mon, SubszOptions(subscriptions=True), pause=lambda: pauses.append(1)))
        assert sz["total"] == internal_subs(mon) and pauses == []  # the system account's ~30
    finally:
        for x in many:
            x.close()


def test_connz_data_function_directly(three):
    cz = on_hub(three, connz, three, ConnzOptions(sort="bytes_to", limit=2))
    assert [ci["cid"] for ci in cz["connections"]] == [3, 2]


# ---------------------------------------------------------------------------------------------
# /connz?state=closed: the ring of closed connections and their reasons
# ---------------------------------------------------------------------------------------------

def closed(server, query=""):
    return getj(server, "/connz?state=closed" + query)["connections"]


def test_closed_client_closed(mon, conns):
    c = conns(mon, name="leaving", lang="go", version="1.2")
    c.send(b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n")
    c.expect(rb"MSG foo 1 2\r\nhi\r\n")
    c.ping_pong()
    c.close()
    check_for(5, lambda: mon.num_clients() == 0)
    [ci] = closed(mon)
    assert ci["reason"] == "Client Closed"
    assert (ci["cid"], ci["name"], ci["lang"], ci["version"], ci["in_msgs"], ci["out_msgs"]) == (
        1, "leaving", "go", "1.2", 1, 1)
    assert parse_time(ci["start"]) <= parse_time(ci["last_activity"]) <= parse_time(ci["stop"])
    assert list(ci)[:10] == ["cid", "kind", "type", "ip", "port", "start", "last_activity", "stop", "reason", "rtt"]
    assert getj(mon, "/connz")["connections"] == []
    assert getj(mon, "/connz?state=any")["total"] == 1


def test_closed_client_keeps_its_subscriptions(mon, conns):
    c = conns(mon)
    c.send(b"SUB foo 1\r\nSUB bar q 2\r\n")
    c.ping_pong()
    c.close()
    check_for(5, lambda: mon.num_clients() == 0)
    [ci] = closed(mon, "&subs=detail")
    assert ci["subscriptions"] == 2
    assert ci["subscriptions_list_detail"][0] == {"account": "$G", "subject": "foo", "sid": "1", "msgs": 0, "cid": 1}


def test_closed_stale_connection(make_server):
    s = make_server(http_port=-1, ping_interval=0.1, ping_max=1)
    c = conn(s)
    try:
        check_for(5, lambda: s.num_clients() == 0)
        assert [ci["reason"] for ci in closed(s)] == ["Stale Connection"]
    finally:
        c.close()


def test_closed_authentication_failure(make_server):
    s = make_server(http_port=-1, authorization="S3CR3T")
    c = RawConn(s.port)
    try:
        c.info()
        c.send(b'CONNECT {"verbose":false,"auth_token":"wrong"}\r\n')
        c.read_all_until_closed()
        check_for(5, lambda: len(s.closed_clients) == 1)
        assert [ci["reason"] for ci in closed(s)] == ["Authentication Failure"]
        assert getj(s, "/varz")["connections"] == 0
    finally:
        c.close()


def test_closed_slow_consumer(make_server, conns):
    s = make_server(http_port=-1, max_pending=32 * 1024, max_payload=8192, write_deadline=30.0)
    slow = socket.socket()
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    slow.connect(("127.0.0.1", s.port))
    try:
        slow.settimeout(5)
        slow.recv(4096)  # INFO
        slow.sendall(b'CONNECT {"verbose":false}\r\nSUB flood 1\r\nPING\r\n')
        check_for(5, lambda: client_subs(s) == 1)
        pub = conns(s)
        msg = b"PUB flood 4096\r\n" + b"x" * 4096 + b"\r\n"
        deadline = time.monotonic() + 30
        while s.slow_consumers == 0:
            assert time.monotonic() < deadline, "no slow consumer"
            pub.send(msg * 16)
        check_for(5, lambda: len(s.closed_clients) == 1)
        [ci] = closed(s)
        assert ci["reason"] == "Slow Consumer (Pending Bytes)" and ci["cid"] == 1
        assert getj(s, "/varz")["slow_consumers"] == 1
        assert getj(s, "/accstatz")["account_statz"][0]["slow_consumers"] == 1
    finally:
        slow.close()


def test_closed_max_connections_exceeded(make_server, conns):
    s = make_server(http_port=-1, max_connections=1)
    conns(s)
    extra = RawConn(s.port)
    extra.info()
    extra.read_all_until_closed()
    extra.close()
    check_for(5, lambda: len(s.closed_clients) == 1)
    first = closed(s)[0]
    assert (first["cid"], first["reason"]) == (2, "Maximum Connections Exceeded")


def test_closed_ring_is_bounded_and_sorted(make_server):
    s = make_server(http_port=-1, max_closed_clients=3)
    for i in range(5):
        c = conn(s, name=f"c{i}")
        if i == 2:
            c.send(b"PUB x 1\r\nx\r\n")
            c.ping_pong()
        c.close()
        check_for(5, lambda: s.num_clients() == 0)
    assert s.closed_clients.total == 5
    cz = getj(s, "/connz?state=closed")
    assert [ci["cid"] for ci in cz["connections"]] == [3, 4, 5] and cz["total"] == 3
    assert [ci["cid"] for ci in closed(s, "&sort=stop")] == [5, 4, 3]
    assert [ci["cid"] for ci in closed(s, "&sort=msgs_from")] == [3, 4, 5]
    assert [ci["cid"] for ci in closed(s, "&sort=reason")] == [3, 4, 5]
    assert [ci["cid"] for ci in closed(s, "&cid=4")] == [4]
    assert closed(s, "&cid=1") == []  # pushed out of the ring
    assert [ci["cid"] for ci in closed(s, "&limit=1&offset=1")] == [4]


def test_state_any_mixes_open_and_closed(mon, conns):
    gone = conn(mon)
    gone.close()
    check_for(5, lambda: mon.num_clients() == 0)
    conns(mon)
    cz = getj(mon, "/connz?state=any")
    assert [(ci["cid"], ci.get("reason")) for ci in cz["connections"]] == [(1, "Client Closed"), (2, None)]
    assert cz["total"] == 2
    # As newer Go (2.9.10 only looks at closed ones): cid with state=any finds an open connection.
    assert [ci["cid"] for ci in getj(mon, "/connz?state=any&cid=2")["connections"]] == [2]
    assert [ci["cid"] for ci in getj(mon, "/connz?state=all&cid=1")["connections"]] == [1]
    assert [ci["cid"] for ci in getj(mon, "/connz?state=OPEN")["connections"]] == [2]
    assert [ci["cid"] for ci in getj(mon, "/connz?state=any&sort=uptime")["connections"]] in ([1, 2], [2, 1])


# ---------------------------------------------------------------------------------------------
# /subsz
# ---------------------------------------------------------------------------------------------

def test_subsz(bare, conns):
    mon = bare
    c = conns(mon)
    c.send(b"SUB foo.* 1\r\nSUB foo.bar q 2\r\nSUB baz 3\r\nUNSUB 3 9\r\nPUB foo.bar 1\r\nx\r\nPUB foo.bar 1\r\nx\r\n")
    c.ping_pong()
    st = getj(mon, "/subsz")
    assert st == {"num_subscriptions": 3, "num_cache": 1, "num_inserts": 3, "num_removes": 0, "num_matches": 2,
                  "cache_hit_rate": 0.5, "max_fanout": 2, "avg_fanout": 2}
    _, _, body = get(mon, "/subsz")
    assert '"avg_fanout": 2\n' in body
    sz = getj(mon, "/subsz?subs=1")
    assert (sz["server_id"], sz["total"], sz["offset"], sz["limit"]) == (mon.server_id, 3, 0, 1024)
    assert sorted(d["subject"] for d in sz["subscriptions_list"]) == ["baz", "foo.*", "foo.bar"]
    baz = next(d for d in sz["subscriptions_list"] if d["subject"] == "baz")
    assert baz == {"account": "$G", "subject": "baz", "sid": "3", "msgs": 0, "max": 9, "cid": 1}
    got = getj(mon, "/subsz?subs=1&test=foo.bar")["subscriptions_list"]
    assert sorted(d["subject"] for d in got) == ["foo.*", "foo.bar"]
    assert getj(mon, "/subsz?subs=1&test=foo.baz")["subscriptions_list"][0]["subject"] == "foo.*"
    # nothing matches: Go leaves out the list and answers with the statistics alone
    assert getj(mon, "/subsz?subs=1&test=nope") == getj(mon, "/subsz")
    page = getj(mon, "/subsz?subs=1&limit=2&offset=1")
    assert (page["total"], page["limit"], page["offset"], len(page["subscriptions_list"])) == (2, 2, 1, 2)
    assert getj(mon, "/subsz?subs=1&offset=10") == getj(mon, "/subsz")
    assert getj(mon, "/subscriptionsz") == getj(mon, "/subsz")  # Go's old name
    assert on_hub(mon, subsz, mon, SubszOptions(subscriptions=True, account="other"))["num_subscriptions"] == 0


# ---------------------------------------------------------------------------------------------
# The endpoints of subsystems gnatsd does not have yet: Go's shape when they are off
# ---------------------------------------------------------------------------------------------

def test_routez_gatewayz_leafz(mon):
    rz = getj(mon, "/routez?subs=detail")
    assert (rz["server_id"], rz["num_routes"], rz["routes"]) == (mon.server_id, 0, [])
    gz = getj(mon, "/gatewayz?accs=1&gw_name=x&acc_name=y")
    assert (gz["outbound_gateways"], gz["inbound_gateways"]) == ({}, {})
    lz = getj(mon, "/leafz?subs=true&acc=$G")
    assert (lz["leafnodes"], lz["leafs"]) == (0, None)


def test_accountz_and_accstatz(mon, bare, conns):
    az = getj(mon, "/accountz")
    assert az["accounts"] == ["$G", "$SYS"] and az["system_account"] == "$SYS" and "account_detail" not in az
    assert getj(bare, "/accountz")["accounts"] == ["$G"]
    mon = bare
    c = conns(mon)
    c.send(b"SUB x 1\r\nPUB x 3\r\nabc\r\n")
    c.expect(rb"MSG x 1 3\r\nabc\r\n")
    detail = getj(mon, "/accountz?acc=$G")["account_detail"]
    assert (detail["account_name"], detail["client_connections"], detail["subscriptions"], detail["complete"],
            detail["jetstream_enabled"]) == ("$G", 1, 1, True, False)
    assert detail["sublist_stats"]["num_subscriptions"] == 1
    [stat] = getj(mon, "/accstatz")["account_statz"]
    assert stat == {"acc": "$G", "conns": 1, "leafnodes": 0, "total_conns": 1, "sent": {"msgs": 1, "bytes": 3},
                    "received": {"msgs": 1, "bytes": 3}, "slow_consumers": 0}


def test_accstatz_unused(mon):
    assert getj(mon, "/accstatz")["account_statz"] == []
    assert [a["acc"] for a in getj(mon, "/accstatz?unused=1")["account_statz"]] == ["$G", "$SYS"]


def test_jsz_disabled(mon):
    for query in ("", "?accounts=1&streams=1&consumers=1&config=1&offset=3&limit=2&acc=x"):
        js = getj(mon, "/jsz" + query)
        assert js["disabled"] is True and js["config"] == {"max_memory": 0, "max_storage": 0}
        assert (js["streams"], js["consumers"], js["messages"], js["bytes"], js["api"]) == (0, 0, 0, 0,
                                                                                            {"total": 0, "errors": 0})


def test_healthz(make_server, tmp_path):
    s = make_server(http_port=-1)
    status, ctype, body = get(s, "/healthz")
    assert (status, ctype, body) == (200, "application/json", '{"status":"ok"}')
    for query in ("js-enabled-only=1", "js-server-only=true", "js-enabled=1"):
        assert get(s, "/healthz?" + query)[2] == '{"status":"ok"}'
    js = make_server(http_port=-1, jetstream=True, store_dir=str(tmp_path))
    assert get(js, "/healthz")[:2] == (200, "application/json")
    # JetStream asked for but not running (its store directory cannot be made): Go's 503.
    js = make_server(http_port=-1, jetstream=True, store_dir="/proc/gnatsd-no-such-dir")
    assert get(js, "/healthz") == (503, "application/json",
                                   '{"status":"unavailable","error":"JetStream not enabled (10076)"}')


def test_healthz_during_lame_duck(make_server, conns):
    s = make_server(http_port=-1, lame_duck_duration=30.0, lame_duck_grace_period=10.0)
    conns(s)
    s.call_threadsafe(lambda: __import__("gevent").spawn(s.lame_duck_mode))
    check_for(5, lambda: s.listener is None)
    assert get(s, "/healthz") == (503, "application/json", '{"status":"error","error":'
                                  '"failed to be ready for connections after 1ms: server"}')


def test_stacksz_lists_greenlets(mon, conns):
    conns(mon)
    status, ctype, body = get(mon, "/stacksz")
    assert status == 200 and ctype == "application/json"  # Go's content type, though it is text
    assert re.search(r"^greenlet 0x[0-9a-f]+ \[suspended\] Server\.accept_loop:\n.*in accept", body, re.M | re.S)
    assert "readloop" not in body  # the idle connection is parked: it has no greenlet
    assert re.search(r"^greenlet 0x[0-9a-f]+ \[running\] ", body, re.M)
    assert re.search(r"^thread 0x[0-9a-f]+ \[gnatsd\]:", body, re.M)
    assert "/stacksz" not in getj(mon, "/varz")["http_req_stats"]  # Go does not count it


def test_ipqueuesz(mon):
    assert get(mon, "/ipqueuesz?all=1") == (200, "application/json", "{}")


# ---------------------------------------------------------------------------------------------
# HTTP behaviour: JSONP, 404, methods, bad input
# ---------------------------------------------------------------------------------------------

def test_jsonp_callback(mon):
    status, ctype, body = get(mon, "/varz?callback=cb")
    assert (status, ctype) == (200, "application/javascript")
    assert body.startswith("cb({\n") and body.endswith("\n})")
    assert get(mon, "/healthz?callback=x") == (200, "application/javascript", 'x({"status":"ok"})')


@pytest.mark.parametrize("path", ["/nope", "/varz/", "/connz/x", "/favicon.ico"])
def test_unknown_path_is_gos_404(mon, path):
    assert get(mon, path) == (404, "text/plain; charset=utf-8", "404 page not found\n")


def test_any_method(mon):
    assert get(mon, "/healthz", method="POST") == (200, "application/json", '{"status":"ok"}')
    assert get(mon, "/varz", method="HEAD")[0:2] == (200, "application/json")


BAD = [
    ("/connz?sort=foo", "invalid sorting option: foo"),
    ("/connz?sort=%C3%A9", "invalid sorting option: é"),
    ("/connz?sort=CID", "invalid sorting option: CID"),
    ("/connz?sort=stop", "sort by stop only valid on closed connections"),
    ("/connz?sort=stop&state=any", "sort by stop only valid on closed connections"),
    ("/connz?sort=reason&state=any", "sort by reason only valid on closed connections"),
    ("/connz?cid=abc", "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"abc\": invalid syntax"),
    ("/connz?cid=-1", "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"-1\": invalid syntax"),
    ("/connz?cid=%2B1", "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"+1\": invalid syntax"),
    ("/connz?cid=18446744073709551616",
     "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"18446744073709551616\": value out of range"),
    ("/connz?cid=a%22b%0A",
     "Error decoding uint64 for 'cid': strconv.ParseUint: parsing \"a\\\"b\\n\": invalid syntax"),
    ("/connz?limit=1.5", "Error decoding int for 'limit': strconv.Atoi: parsing \"1.5\": invalid syntax"),
    ("/connz?limit=-", "Error decoding int for 'limit': strconv.Atoi: parsing \"-\": invalid syntax"),
    ("/connz?limit=1_000", "Error decoding int for 'limit': strconv.Atoi: parsing \"1_000\": invalid syntax"),
    ("/connz?offset=99999999999999999999",
     "Error decoding int for 'offset': strconv.Atoi: parsing \"99999999999999999999\": value out of range"),
    ("/connz?offset=9223372036854775808",
     "Error decoding int for 'offset': strconv.Atoi: parsing \"9223372036854775808\": value out of range"),
    ("/connz?offset=%20", "Error decoding int for 'offset': strconv.Atoi: parsing \" \": invalid syntax"),
    ("/connz?state=bogus", "Error decoding state for bogus"),
    ("/connz?auth=maybe", "Error decoding boolean for 'auth': strconv.ParseBool: parsing \"maybe\": invalid syntax"),
    ("/connz?subs=2", "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"2\": invalid syntax"),
    ("/connz?auth=x&limit=y", "Error decoding boolean for 'auth': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/routez?subs=x", "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/gatewayz?accs=x", "Error decoding boolean for 'accs': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/leafz?subs=yes", "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"yes\": invalid syntax"),
    ("/subsz?subs=x", "Error decoding boolean for 'subs': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/subsz?limit=x", "Error decoding int for 'limit': strconv.Atoi: parsing \"x\": invalid syntax"),
    ("/subsz?test=foo.*", "invalid test subject, must be valid publish subject: foo.*"),
    ("/subsz?test=foo..bar", "invalid test subject, must be valid publish subject: foo..bar"),
    ("/subsz?test=%3E", "invalid test subject, must be valid publish subject: >"),
    ("/accountz?acc=nope", "Account nope does not exist"),
    ("/accountz?acc=NOPE", "Account NOPE does not exist"),
    ("/accstatz?unused=x", "Error decoding boolean for 'unused': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/jsz?accounts=x", "Error decoding boolean for 'accounts': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/jsz?offset=x", "Error decoding int for 'offset': strconv.Atoi: parsing \"x\": invalid syntax"),
    ("/jsz?leader-only=1", "filtered response: not leader"),
    ("/healthz?js-enabled-only=x",
     "Error decoding boolean for 'js-enabled-only': strconv.ParseBool: parsing \"x\": invalid syntax"),
    ("/healthz?js-server-only=2",
     "Error decoding boolean for 'js-server-only': strconv.ParseBool: parsing \"2\": invalid syntax"),
    ("/ipqueuesz?all=x", "Error decoding boolean for 'all': strconv.ParseBool: parsing \"x\": invalid syntax"),
]


@pytest.mark.parametrize("path, text", BAD, ids=[p for p, _ in BAD])
def test_bad_input_is_gos_400(mon, path, text):
    assert get(mon, path) == (400, "text/plain; charset=utf-8", text)


def test_bad_input_never_500(mon, conns):
    """Every endpoint and parameter with odd values: a 200 or Go's 400, never a 500."""
    c = conns(mon)
    c.send(b"SUB a 1\r\n")
    c.ping_pong()
    gone = conn(mon)
    gone.close()
    values = ["", "0", "1", "-1", "true", "detail", "any", "closed", "9223372036854775807", "-9223372036854775808",
              "%00", "%FF", "%C3%A9", "a%20b", "%3E", "*", "$G", "%22%3C%3E%26", "x" * 300]
    params = {
        "/connz": ["sort", "auth", "subs", "offset", "limit", "cid", "state", "user", "acc", "mqtt_client"],
        "/subsz": ["subs", "offset", "limit", "test", "acc"],
        "/routez": ["subs"], "/gatewayz": ["accs", "gw_name", "acc_name"], "/leafz": ["subs", "acc"],
        "/accountz": ["acc"], "/accstatz": ["unused"], "/varz": ["x"], "/healthz": ["js-enabled-only"],
        "/jsz": ["acc", "accounts", "streams", "consumers", "config", "offset", "limit", "leader-only"],
    }
    for path, names in params.items():
        for name in names:
            for value in values:
                status, _, body = get(mon, f"{path}?{name}={value}")
                assert status in (200, 400), (path, name, value, status, body)
                assert body
    for sort in ("cid", "start", "subs", "pending", "msgs_to", "msgs_from", "bytes_to", "bytes_from", "last",
                 "idle", "uptime", "stop", "reason"):
        for state in ("open", "closed", "any"):
            status, _, body = get(mon, f"/connz?sort={sort}&state={state}&subs=detail&auth=1&limit=1&offset=1")
            assert status == (400 if sort in ("stop", "reason") and state != "closed" else 200), (sort, state, body)
    assert mon.running and getj(mon, "/varz")["connections"] == 1


# ---------------------------------------------------------------------------------------------
# Field names against nats-server 2.9.10 (the shared reference file)
# ---------------------------------------------------------------------------------------------

# The reference was taken from a Go server with JetStream and its system account on. Where
# gnatsd differs, on purpose, until those subsystems exist (docs/MONITORING.md):
JETSTREAM_ON = {"jetstream.config", "jetstream.config.max_memory", "jetstream.config.max_storage",
                "jetstream.config.store_dir", "jetstream.stats", "jetstream.stats.accounts", "jetstream.stats.api",
                "jetstream.stats.api.errors", "jetstream.stats.api.total", "jetstream.stats.ha_assets",
                "jetstream.stats.memory", "jetstream.stats.reserved_memory", "jetstream.stats.reserved_storage",
                "jetstream.stats.storage"}
EXPECTED_DIFFERENCES = {
    # endpoint: (in the reference only, in gnatsd only)
    "varz": (JETSTREAM_ON, {"gnatsd_version"}),
    "jsz": ({"config.store_dir"}, {"disabled"}),
}


def test_field_names_match_the_reference(mon):
    reference = json.loads(REFERENCE.read_text())

    async def client():
        nc = await nats.connect(mon.client_url(), name="reference")
        await nc.subscribe("foo")
        await nc.publish("foo", b"x")
        await nc.flush()
        return nc

    loop = asyncio.new_event_loop()
    try:
        nc = loop.run_until_complete(client())
        queries = {"connz": "/connz?subs=1"}
        for endpoint, ref_keys in reference.items():
            got = flatten(getj(mon, queries.get(endpoint, "/" + endpoint)))
            only_ref, only_ours = EXPECTED_DIFFERENCES.get(endpoint, (set(), set()))
            assert set(ref_keys) - got == only_ref, endpoint
            assert got - set(ref_keys) == only_ours, endpoint
        loop.run_until_complete(nc.close())
    finally:
        loop.close()


# ---------------------------------------------------------------------------------------------
# /metrics
# ---------------------------------------------------------------------------------------------

def parse_metrics(text):
    samples, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, typ = line.split(" ")
            types[name] = typ
        elif line and not line.startswith("#"):
            m = re.fullmatch(r'([a-z_]+)\{([^}]*)\} (\S+)', line)
            assert m, line
            labels = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2)))
            samples.setdefault(m.group(1), []).append((labels, float(m.group(3))))
    return samples, types


def test_metrics(make_server, conns):
    s = make_server(http_port=-1, no_system_account=True)
    a = conns(s)
    a.send(b"SUB x 1\r\nPUB x 4\r\nabcd\r\n")
    a.expect(rb"MSG x 1 4\r\nabcd\r\n")
    gone = conn(s)
    gone.close()
    check_for(5, lambda: s.num_clients() == 1)
    getj(s, "/varz")
    status, ctype, body = get(s, "/metrics")
    assert status == 200 and ctype == "text/plain; version=0.0.4; charset=utf-8"
    samples, types = parse_metrics(body)
    for name, typ, _ in METRICS:
        assert types[name] == typ
    assert set(samples) <= set(types)

    def value(name, **labels):
        for got, v in samples[name]:
            if all(got.get(k) == x for k, x in labels.items()):
                assert got["server_id"] == s.server_id
                return v
        raise AssertionError((name, labels, samples.get(name)))

    assert value("gnatsd_varz_in_msgs") == 1 and value("gnatsd_varz_in_bytes") == 4
    assert value("gnatsd_varz_out_msgs") == 1 and value("gnatsd_varz_out_bytes") == 4
    assert value("gnatsd_varz_connections") == 1 and value("gnatsd_varz_total_connections") == 2
    assert value("gnatsd_varz_subscriptions") == 1 and value("gnatsd_connz_subscriptions") == 1
    assert value("gnatsd_varz_slow_consumers") == 0
    assert value("gnatsd_server_closed_connections_total", reason="Client Closed") == 1
    assert value("gnatsd_connz_closed_connections") == 1
    assert value("gnatsd_server_http_requests_total", path="/varz") == 1
    assert value("gnatsd_server_info", version="2.9.10") == 1
    assert value("gnatsd_subsz_num_inserts") == 1 and value("gnatsd_varz_mem") > 0


def test_every_metric_is_documented():
    doc = (ROOT / "docs" / "MONITORING.md").read_text()
    for name, _, _ in METRICS:
        assert f"`{name}`" in doc, name


# ---------------------------------------------------------------------------------------------
# Go's formats (gofmt.py)
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (1, "1ns"), (999, "999ns"), (1000, "1µs"), (1500, "1.5µs"), (371_000, "371µs"),
    (1_000_000, "1ms"), (1_234_567, "1.234567ms"), (1_000_000_000, "1s"), (1_500_000_000, "1.5s"),
    (62_000_000_000, "1m2s"), (60_000_000_000, "1m0s"), (3_600_000_000_000, "1h0m0s"),
    (3_723_000_000_001, "1h2m3.000000001s"), (-1_500_000, "-1.5ms"), (100 * 3_600_000_000_000, "100h0m0s"),
])
def test_duration_string(ns, text):
    assert gofmt.duration_string(ns) == text


@pytest.mark.parametrize("rtt, text", [(0.0, "0s"), (0.000371234, "371µs"), (0.0000005, "500ns"),
                                       (0.001234567, "1.234567ms"), (1.5, "1.5s")])
def test_rtt_string(rtt, text):
    assert gofmt.rtt_string(rtt) == text


@pytest.mark.parametrize("secs, text", [(0, "0s"), (59.9, "59s"), (62, "1m2s"), (3600, "1h0m0s"),
                                        (90061, "1d1h1m1s"), (365 * 86400 + 61, "1y0d0h1m1s")])
def test_my_uptime(secs, text):
    assert gofmt.my_uptime(secs) == text


def test_format_time():
    assert gofmt.format_time(0) == "1970-01-01T00:00:00Z"
    assert gofmt.format_time(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456789Z"
    assert gofmt.format_time(1_700_000_000_120_000_000) == "2023-11-14T22:13:20.12Z"
    assert gofmt.format_time(gofmt.time_ns(1_700_000_000.25)) == "2023-11-14T22:13:20.25Z"
    # the text of a second is reused, and only for that second
    assert gofmt.format_time(1_700_000_001_000_000_001) == "2023-11-14T22:13:21.000000001Z"
    assert gofmt.format_time(1_700_000_000_5) == "1970-01-01T00:00:17.000000005Z"


@pytest.mark.parametrize("f, text", [(0.0, "0"), (2.0, "2"), (0.5, "0.5"), (29.3, "29.3"),
                                     (0.7142857142857143, "0.7142857142857143"), (1e20, "100000000000000000000"),
                                     (1e21, "1e+21"), (1e-7, "1e-7"), (1.5e-7, "1.5e-7"), (0.000001, "0.000001"),
                                     (123456789.0, "123456789")])
def test_go_float(f, text):
    assert gofmt.go_float(f) == text


def test_marshal():
    v = {"a": "<&>\u2028\x01\n\"\\", "b": [], "c": {}, "d": [1, {"e": None}], "f": True, "g": 1.0,
         "m": gofmt.GoMap({"z": 1, "a": 2}), "µ": "µs"}
    assert gofmt.marshal(v) == ('{"a":"\\u003c\\u0026\\u003e\\u2028\\u0001\\n\\"\\\\","b":[],"c":{},'
                                '"d":[1,{"e":null}],"f":true,"g":1,"m":{"a":2,"z":1},"µ":"µs"}')
    assert gofmt.marshal_indent({"a": [1, 2], "b": {"c": 1}}) == ('{\n  "a": [\n    1,\n    2\n  ],\n'
                                                                  '  "b": {\n    "c": 1\n  }\n}')
    assert json.loads(gofmt.marshal_indent(v)) == json.loads(gofmt.marshal(v))
    big = {"a": 1, "list": [{"i": i, "s": [i]} for i in range(300)], "m": gofmt.GoMap({"b": 1}), "e": []}
    pieces = list(gofmt.iter_marshal_indent(big, every=128))
    assert len(pieces) == 3 and "".join(pieces) == gofmt.marshal_indent(big)
    assert list(gofmt.iter_marshal_indent({})) == ["{}"]


@pytest.mark.parametrize("s, value", [("0", 0), ("+5", 5), ("-5", -5), ("9223372036854775807", 2**63 - 1),
                                      ("-9223372036854775808", -2**63), ("007", 7)])
def test_atoi(s, value):
    assert gofmt.atoi(s) == value


@pytest.mark.parametrize("func, s, err", [
    (gofmt.atoi, "", 'strconv.Atoi: parsing "": invalid syntax'),
    (gofmt.atoi, "+", 'strconv.Atoi: parsing "+": invalid syntax'),
    (gofmt.atoi, "-9223372036854775809", 'strconv.Atoi: parsing "-9223372036854775809": value out of range'),
    (gofmt.atoi, "99999999999999999999x", 'strconv.Atoi: parsing "99999999999999999999x": value out of range'),
    (gofmt.atoi, "1x99999999999999999999", 'strconv.Atoi: parsing "1x99999999999999999999": invalid syntax'),
    (gofmt.atoi, "١", 'strconv.Atoi: parsing "١": invalid syntax'),
    (gofmt.parse_uint, "-0", 'strconv.ParseUint: parsing "-0": invalid syntax'),
    (gofmt.parse_uint, "\x00\x7f\u00e9\U0001F600\u200b",
     'strconv.ParseUint: parsing "\\x00\\x7fé😀\\u200b": invalid syntax'),
    (gofmt.parse_bool, "yes", 'strconv.ParseBool: parsing "yes": invalid syntax'),
    (gofmt.parse_bool, "tRUE", 'strconv.ParseBool: parsing "tRUE": invalid syntax'),
])
def test_strconv_errors(func, s, err):
    with pytest.raises(gofmt.NumError) as e:
        func(s)
    assert str(e.value) == err


def test_parse_uint_and_bool():
    assert gofmt.parse_uint("18446744073709551615") == 2**64 - 1
    assert [gofmt.parse_bool(x) for x in ("1", "t", "T", "TRUE", "true", "True")] == [True] * 6
    assert [gofmt.parse_bool(x) for x in ("0", "f", "F", "FALSE", "false", "False")] == [False] * 6
