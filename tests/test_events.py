"""The system account: connect/disconnect/auth-error/account-connection events, STATSZ, and
the `$SYS.REQ` monitoring requests, driven by nats-py and raw sockets.

Shapes compared with nats-server 2.9.10 on the same config (keys, envelopes, error codes).
"""
from __future__ import annotations

import asyncio
import json
import re

import nats
import pytest

from conftest import RawConn, check_for, flushed, on_hub
from gnatsd import Options, Server, events
from gnatsd.opts import process_config_file

CONF = """
accounts {
  SYS: { users: [{user: sys, password: sys}] }
  A: { users: [{user: a, password: a}] }
}
system_account: SYS
"""

SERVER_INFO_KEYS = ["name", "host", "id", "ver", "seq", "jetstream", "time"]


@pytest.fixture
def srv(tmp_path):
    path = tmp_path / "sys.conf"
    path.write_text(CONF)
    o = Options()
    process_config_file(o, str(path))
    o.host, o.port = "127.0.0.1", -1
    s = Server(o).start_in_thread()
    yield s
    s.stop_thread()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def url(s, user):
    return f"nats://{user}:{user}@127.0.0.1:{s.port}"


async def request(nc, subject, body=b"", timeout=2):
    return json.loads((await nc.request(subject, body, timeout=timeout)).data)


def test_server_requests(srv):
    async def main():
        nc = await nats.connect(url(srv, "sys"))
        out = {
            "ping": await request(nc, "$SYS.REQ.SERVER.PING"),
            "statsz": await request(nc, "$SYS.REQ.SERVER.PING.STATSZ"),
            "varz": await request(nc, "$SYS.REQ.SERVER.PING.VARZ"),
            "connz": await request(nc, f"$SYS.REQ.SERVER.{srv.server_id}.CONNZ", b'{"auth": true}'),
            "healthz": await request(nc, "$SYS.REQ.SERVER.PING.HEALTHZ"),
            "accountz": await request(nc, "$SYS.REQ.SERVER.PING.ACCOUNTZ", b'{"account": "A"}'),
            "bad": await request(nc, "$SYS.REQ.SERVER.PING.CONNZ", b"{bad"),
            "bad_type": await request(nc, "$SYS.REQ.SERVER.PING.CONNZ", b'{"limit": "x"}'),
            "sort": await request(nc, "$SYS.REQ.SERVER.PING.CONNZ", b'{"sort": "nope"}'),
        }
        with pytest.raises(nats.errors.TimeoutError):  # filtered out: nobody answers
            await nc.request("$SYS.REQ.SERVER.PING.VARZ", b'{"server_name": "not-this-one"}', timeout=0.5)
        await nc.close()
        return out

    r = run(main())
    assert list(r["ping"]) == ["server", "statsz"] and list(r["ping"]["server"]) == SERVER_INFO_KEYS
    assert r["ping"]["server"]["id"] == srv.server_id and r["ping"]["statsz"]["connections"] == 1
    assert r["statsz"]["server"]["seq"] > r["ping"]["server"]["seq"]  # every message counts
    assert list(r["varz"]) == ["server", "data"] and r["varz"]["data"]["server_id"] == srv.server_id
    [conn] = r["connz"]["data"]["connections"]
    assert conn["authorized_user"] == "sys" and conn["account"] == "SYS"
    assert r["healthz"]["data"] == {"status": "ok"}
    assert r["accountz"]["data"]["account_detail"]["account_name"] == "A"
    assert r["bad"]["error"]["code"] == 400 and "data" not in r["bad"]
    assert r["bad_type"]["error"]["code"] == 400
    assert r["sort"]["error"] == {"code": 500, "description": "invalid sorting option: nope"}


def test_account_requests(srv):
    async def main():
        sys_nc = await nats.connect(url(srv, "sys"))
        a = await nats.connect(url(srv, "a"), name="app")
        await a.subscribe("x")
        await flushed(a)
        out = {
            "connz": await request(sys_nc, "$SYS.REQ.ACCOUNT.A.CONNZ"),
            "subsz": await request(sys_nc, "$SYS.REQ.ACCOUNT.A.SUBSZ"),
            "info": await request(sys_nc, "$SYS.REQ.ACCOUNT.A.INFO"),
            "statz": await request(sys_nc, "$SYS.REQ.ACCOUNT.A.STATZ"),
            "conns": await request(sys_nc, "$SYS.REQ.ACCOUNT.A.CONNS"),
            # From inside account A, through the imports every account gets:
            "own_connz": await request(a, "$SYS.REQ.SERVER.PING.CONNZ"),
            "own_statz": await request(a, "$SYS.REQ.ACCOUNT.PING.STATZ"),
        }
        await a.close()
        await sys_nc.close()
        return out

    r = run(main())
    assert [c["name"] for c in r["connz"]["data"]["connections"]] == ["app"]
    assert [d["subject"] for d in r["subsz"]["data"]["subscriptions_list"] if not d["subject"].startswith("$SYS")] \
        == ["x"]
    assert r["info"]["data"]["account_name"] == "A"
    [stat] = r["statz"]["data"]["account_statz"]
    assert (stat["acc"], stat["conns"]) == ("A", 1)
    assert r["conns"]["acc"] == "A" and r["conns"]["conns"] == 1
    assert r["conns"]["type"] == "io.nats.server.advisory.v1.account_connections"
    assert [c["name"] for c in r["own_connz"]["data"]["connections"]] == ["app"]
    assert [s["acc"] for s in r["own_statz"]["data"]["account_statz"]] == ["A"]


def test_connect_disconnect_and_auth_error_events(srv):
    async def main():
        sys_nc = await nats.connect(url(srv, "sys"))
        events = []

        async def cb(m):
            events.append((m.subject, json.loads(m.data)))

        await sys_nc.subscribe("$SYS.ACCOUNT.>", cb=cb)
        await sys_nc.subscribe("$SYS.SERVER.*.CLIENT.AUTH.ERR", cb=cb)
        await sys_nc.subscribe("$SYS.SERVER.ACCOUNT.>", cb=cb)
        await flushed(sys_nc)
        a = await nats.connect(url(srv, "a"), name="app")
        await a.publish("x", b"12345")
        await a.flush()
        await a.close()
        bad = RawConn(srv.port)
        bad.info()
        bad.send(b'CONNECT {"user":"a","pass":"wrong"}\r\n')
        bad.read_all_until_closed()
        bad.close()
        for _ in range(100):
            if any(s.endswith("AUTH.ERR") for s, _ in events) and any(s.endswith("DISCONNECT") for s, _ in events):
                break
            await asyncio.sleep(0.05)
        await sys_nc.close()
        return events

    events = run(main())
    by_subject = {}
    for subject, m in events:
        by_subject.setdefault(subject, []).append(m)
    [connect] = by_subject["$SYS.ACCOUNT.A.CONNECT"]
    assert connect["type"] == "io.nats.server.advisory.v1.client_connect"
    assert list(connect) == ["type", "id", "timestamp", "server", "client"]
    assert connect["client"]["acc"] == "A" and connect["client"]["user"] == "a"
    assert connect["client"]["name"] == "app" and connect["client"]["kind"] == "Client"
    [disconnect] = by_subject["$SYS.ACCOUNT.A.DISCONNECT"]
    assert disconnect["reason"] == "Client Closed" and disconnect["sent"] == {"msgs": 1, "bytes": 5}
    assert "stop" in disconnect["client"]
    [auth_err] = by_subject[f"$SYS.SERVER.{srv.server_id}.CLIENT.AUTH.ERR"]
    assert auth_err["reason"] == "Authentication Failure" and auth_err["client"]["acc"] == "$G"
    conns = [m["conns"] for m in by_subject["$SYS.ACCOUNT.A.SERVER.CONNS"]]
    assert conns[:2] == [1, 0]
    assert len(by_subject["$SYS.SERVER.ACCOUNT.A.CONNS"]) == len(conns)  # Go's old subject too


def test_statsz_is_sent_periodically(srv):
    c = RawConn(srv.port)
    c.info()
    c.send(b'CONNECT {"verbose":false,"user":"sys","pass":"sys"}\r\nSUB $SYS.SERVER.*.STATSZ 1\r\nPING\r\n')
    c.expect(re.compile(rb"PONG\r\n"))
    m = c.expect(re.compile(rb"MSG \$SYS\.SERVER\.(\S+)\.STATSZ 1 (\d+)\r\n"), timeout=5)
    assert m.group(1).decode() == srv.server_id
    body = json.loads(c.read_exact(int(m.group(2)) + 2))
    assert body["statsz"]["subscriptions"] >= 30  # the system account's own
    c.close()


def test_shutdown_event(srv):
    c = RawConn(srv.port)
    c.info()
    c.send(b'CONNECT {"verbose":false,"user":"sys","pass":"sys"}\r\nSUB $SYS.SERVER.*.SHUTDOWN 1\r\nPING\r\n')
    c.expect(re.compile(rb"PONG\r\n"))
    srv.stop_thread()
    data = c.read_all_until_closed()
    assert f"MSG $SYS.SERVER.{srv.server_id}.SHUTDOWN 1".encode() in data
    c.close()


def test_shutdown_right_after_an_event_is_queued(srv):
    """The send loop, woken for an event, runs after shutdown_eventing sent the queue and
    dropped srv.sys: it must end quietly (it raised AttributeError)."""
    loop = srv.sys.loop

    def queue_then_shut_down():
        events.send_internal_msg(srv, "x", None, b"")
        srv.shutdown()

    on_hub(srv, queue_then_shut_down)
    check_for(5, lambda: loop.dead)
    assert loop.exception is None


def test_no_system_account_means_no_events(make_server):
    s = make_server(no_system_account=True)
    assert s.sys is None and s.sys_account is None
    c = RawConn(s.port)
    c.info()
    c.send(b'CONNECT {"verbose":false}\r\nSUB _INBOX.1 1\r\nPUB $SYS.REQ.SERVER.PING _INBOX.1 0\r\n\r\nPING\r\n')
    data = c.expect(re.compile(rb"PONG\r\n"))
    assert b"MSG" not in data.string[:data.end()]
    c.close()


def test_global_account_requests_reach_the_default_system_account(make_server):
    s = make_server()

    async def main():
        nc = await nats.connect(s.client_url(), name="g")
        r = await request(nc, "$SYS.REQ.SERVER.PING.CONNZ")
        await nc.close()
        return r

    r = run(main())
    assert [c["name"] for c in r["data"]["connections"]] == ["g"]
    check_for(5, lambda: s.num_clients() == 0)


def test_answers_compressed_as_asked(srv):
    import gzip

    async def main():
        nc = await nats.connect(url(srv, "sys"))
        gz = await nc.request("$SYS.REQ.SERVER.PING.VARZ", b"", headers={"Accept-Encoding": "gzip"}, timeout=2)
        other = await nc.request("$SYS.REQ.SERVER.PING.VARZ", b"", headers={"Accept-Encoding": "br"}, timeout=2)
        plain = await nc.request("$SYS.REQ.SERVER.PING.VARZ", b"", timeout=2)
        await nc.close()
        return gz, other, plain

    gz, other, plain = run(main())
    assert gz.headers["Content-Encoding"] == "gzip"
    assert json.loads(gzip.decompress(gz.data))["data"]["server_id"] == srv.server_id
    assert other.headers["Content-Encoding"] == "identity" and json.loads(other.data)["data"]
    assert not plain.headers and json.loads(plain.data)["data"]
