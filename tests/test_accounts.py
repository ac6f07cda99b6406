"""Accounts: isolated subject spaces, stream and service exports and imports, response
types, account limits, subject mappings, the system account, and their config.

Expected bytes (Nats-Request-Info headers, `_R_.` replies, -ERR texts) are those nats-server
2.9.10 sends for the same config and protocol.
"""
from __future__ import annotations

import asyncio
import json
import re

import nats
import pytest

from conftest import ERR_RE, RawConn, check_for, flushed, load_conf
from gnatsd import Options, Server
from gnatsd.opts import ProcessConfigErr, process_config_file

HMSG_RE = re.compile(rb"HMSG (\S+) (\S+) (?:(\S+) )?(\d+) (\d+)\r\n")
PLAIN_MSG_RE = re.compile(rb"MSG (\S+) (\S+) (?:(\S+) )?(\d+)\r\n")

CONF = """
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [
      {stream: "public.>"}
      {stream: "private.>", accounts: [B]}
      {stream: "wild.*"}
      {service: "svc.single"}
      {service: "svc.stream", response: stream}
      {service: "svc.chunked", response: chunked}
      {service: "svc.wild.*"}
      {service: "svc.private", accounts: [C]}
    ]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [
      {stream: {account: A, subject: "public.>"}, prefix: "from_a"}
      {stream: {account: A, subject: "private.>"}}
      {stream: {account: A, subject: "wild.*"}, to: "mapped.*"}
      {service: {account: A, subject: "svc.single"}, to: "single"}
      {service: {account: A, subject: "svc.stream"}}
      {service: {account: A, subject: "svc.chunked"}}
      {service: {account: A, subject: "svc.wild.*"}}
    ]
  }
  C: {
    users: [{user: c, password: c}]
    imports: [{service: {account: A, subject: "svc.private"}}]
    limits: {max_connections: 1}
  }
}
"""


def conf_errors(tmp_path, text):
    path = tmp_path / "accounts.conf"
    path.write_text(text)
    with pytest.raises(ProcessConfigErr) as ei:
        process_config_file(Options(), str(path))
    return [e.reason for e in ei.value.errors]


def start(opts):
    opts.host, opts.port = "127.0.0.1", -1
    return Server(opts).start_in_thread()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = start(load_conf(tmp_path_factory.mktemp("acc"), CONF))
    yield s
    s.stop_thread()


_open = []


@pytest.fixture(autouse=True)
def close_conns():
    """Close each test's connections when it ends (PyPy does not on garbage collection)."""
    yield
    while _open:
        _open.pop().close()


def login(s, user, headers=True):
    c = RawConn(s.port)
    _open.append(c)
    c.info()
    c.send(b"CONNECT " + json.dumps({"verbose": False, "pedantic": False, "user": user, "pass": user,
                                     "headers": headers, "protocol": 1}).encode() + b"\r\n")
    c.ping_pong()
    return c


def upto(c, regex):
    """Everything read up to the end of `regex`'s match."""
    m = c.expect(regex)
    return m.string[:m.end()]


def no_msg(c):
    """Nothing but the PONG arrives: the message did not come."""
    c.send(b"PING\r\n")
    assert b"MSG" not in upto(c, re.compile(rb"PONG\r\n"))


def test_accounts_are_isolated(srv):
    a, b = login(srv, "a"), login(srv, "b")
    a.send(b"SUB foo 1\r\n")
    a.ping_pong()
    b.send(b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n")
    b.expect(re.compile(rb"MSG foo 1 2\r\nhi\r\n"))
    no_msg(a)
    assert srv.accounts["A"].sublist.count >= 1
    assert srv.clients[max(srv.clients)].acc.name == "B"


def test_stream_import_with_prefix(srv):
    a, b = login(srv, "a"), login(srv, "b")
    b.send(b"SUB from_a.public.> 7\r\n")
    b.ping_pong()
    a.send(b"PUB public.news 5\r\nhello\r\nPING\r\n")
    a.expect(re.compile(rb"PONG\r\n"))
    b.expect(re.compile(rb"MSG from_a\.public\.news 7 5\r\nhello\r\n"))


def test_stream_import_wide_subscription_sees_every_import(srv):
    a, b = login(srv, "a"), login(srv, "b")
    b.send(b"SUB > 1\r\n")
    b.ping_pong()
    a.send(b"PUB public.x 1\r\n1\r\nPUB private.y 1\r\n2\r\nPUB wild.z 1\r\n3\r\nPUB secret 1\r\n4\r\nPING\r\n")
    a.expect(re.compile(rb"PONG\r\n"))
    data = upto(b, re.compile(rb"mapped\.z 1 1\r\n3\r\n"))
    assert b"MSG from_a.public.x 1 1\r\n1\r\n" in data
    assert b"MSG private.y 1 1\r\n2\r\n" in data
    no_msg(b)  # `secret` is not exported


def test_stream_import_mapped_with_a_transform(srv):
    a, b = login(srv, "a"), login(srv, "b")
    b.send(b"SUB mapped.q 3\r\n")
    b.ping_pong()
    a.send(b"PUB wild.q 2\r\nok\r\nPUB wild.r 2\r\nno\r\nPING\r\n")
    a.expect(re.compile(rb"PONG\r\n"))
    b.expect(re.compile(rb"MSG mapped\.q 3 2\r\nok\r\n"))
    no_msg(b)


def test_unsubscribe_removes_shadow_subscriptions(srv):
    b = login(srv, "b")
    before = srv.accounts["A"].sublist.count
    b.send(b"SUB from_a.public.x 1\r\nSUB from_a.public.y 2\r\n")
    b.ping_pong()
    assert srv.accounts["A"].sublist.count == before + 2
    b.send(b"UNSUB 1\r\n")
    b.ping_pong()
    assert srv.accounts["A"].sublist.count == before + 1
    b.close()
    check_for(5, lambda: srv.accounts["A"].sublist.count == before)


def _responder(s, subject, replies):
    """A raw responder in account A: answers each request with `replies` (bytes payloads)."""
    a = login(s, "a")
    a.send(b"SUB " + subject + b" 1\r\n")
    a.ping_pong()
    return a


def test_service_import_singleton(srv):
    a = _responder(srv, b"svc.single", None)
    b = login(srv, "b")
    b.send(b"SUB inbox 9\r\nPUB single inbox 3\r\nreq\r\nPING\r\n")
    b.expect(re.compile(rb"PONG\r\n"))
    m = a.expect(HMSG_RE)
    subject, sid, reply, hdr_len, total = m.groups()
    assert subject == b"svc.single" and sid == b"1"
    assert re.fullmatch(rb"_R_\.[0-9A-Za-z]{6}\.[0-9A-Za-z]{6}", reply)
    body = a.read_exact(int(total) + 2)
    header = body[:int(hdr_len)]
    assert header.startswith(b"NATS/1.0\r\nNats-Request-Info: ")
    info = json.loads(header.split(b": ", 1)[1].split(b"\r\n")[0])
    assert info["acc"] == "B"
    assert body[int(hdr_len):] == b"req\r\n"
    # Two answers: a singleton response import delivers only the first.
    a.send(b"PUB " + reply + b" 3\r\none\r\nPUB " + reply + b" 3\r\ntwo\r\nPING\r\n")
    a.expect(re.compile(rb"PONG\r\n"))
    b.expect(re.compile(rb"MSG inbox 9 3\r\none\r\n"))
    no_msg(b)
    assert not srv.accounts["A"].responses
    assert not srv.accounts["B"].rr_map


def test_service_import_streamed_delivers_every_response(srv):
    a = _responder(srv, b"svc.stream", None)
    b = login(srv, "b")
    b.send(b"SUB inbox 9\r\nPUB svc.stream inbox 1\r\nx\r\nPING\r\n")
    b.expect(re.compile(rb"PONG\r\n"))
    reply = a.expect(HMSG_RE).group(3)
    a.send(b"PUB " + reply + b" 1\r\n1\r\nPUB " + reply + b" 1\r\n2\r\nPING\r\n")
    a.expect(re.compile(rb"PONG\r\n"))
    b.expect(re.compile(rb"MSG inbox 9 1\r\n1\r\nMSG inbox 9 1\r\n2\r\n"))
    # The requester leaving its inbox drops the response import.
    b.send(b"UNSUB 9\r\n")
    b.ping_pong()
    assert not srv.accounts["A"].responses


def test_service_import_chunked_ends_with_an_empty_message(srv):
    a = _responder(srv, b"svc.chunked", None)
    b = login(srv, "b")
    b.send(b"SUB inbox2 9\r\nPUB svc.chunked inbox2 1\r\nx\r\nPING\r\n")
    b.expect(re.compile(rb"PONG\r\n"))
    reply = a.expect(HMSG_RE).group(3)
    # Chunks flow until an empty message ends the response; nothing gets through after it.
    a.send(b"PUB " + reply + b" 1\r\n1\r\nPUB " + reply + b" 0\r\n\r\nPUB " + reply + b" 1\r\n3\r\nPING\r\n")
    a.expect(re.compile(rb"PONG\r\n"))
    b.expect(re.compile(rb"MSG inbox2 9 1\r\n1\r\nMSG inbox2 9 0\r\n\r\n"))
    no_msg(b)
    assert reply not in srv.accounts["A"].responses


def test_service_import_wildcard_keeps_the_published_subject(srv):
    a = _responder(srv, b"svc.wild.*", None)
    b = login(srv, "b")
    b.send(b"PUB svc.wild.foo 1\r\nx\r\nPING\r\n")
    b.expect(re.compile(rb"PONG\r\n"))
    assert a.expect(HMSG_RE).group(1) == b"svc.wild.foo"


def test_service_request_header_is_stripped_for_clients_without_headers(srv):
    a = login(srv, "a", headers=False)
    a.send(b"SUB svc.single 1\r\n")
    a.ping_pong()
    b = login(srv, "b")
    b.send(b"PUB single r 3\r\nreq\r\nPING\r\n")
    b.expect(re.compile(rb"PONG\r\n"))
    a.expect(re.compile(rb"MSG svc\.single 1 _R_\.\S+ 3\r\nreq\r\n"))


def test_private_service_export(srv):
    a = _responder(srv, b"svc.private", None)
    c = login(srv, "c")
    c.send(b"PUB svc.private 1\r\nx\r\nPING\r\n")
    c.expect(re.compile(rb"PONG\r\n"))
    assert a.expect(HMSG_RE).group(1) == b"svc.private"


def test_service_import_with_nats_py(srv):
    async def main():
        responder = await nats.connect(f"nats://a:a@127.0.0.1:{srv.port}")
        requester = await nats.connect(f"nats://b:b@127.0.0.1:{srv.port}")

        async def answer(msg):
            await msg.respond(b"pong:" + msg.data + b":" + msg.headers["Nats-Request-Info"].encode())

        await responder.subscribe("svc.single", cb=answer)
        await flushed(responder)
        replies = [await requester.request("single", b"ping", timeout=5) for _ in range(3)]
        await responder.close()
        await requester.close()
        return replies

    replies = asyncio.run(asyncio.wait_for(main(), 30))
    assert all(r.data.startswith(b'pong:ping:{"acc":"B"') for r in replies)
    # Each singleton response import went with its response (another test leaves one waiting).
    check_for(5, lambda: not any(si.to.startswith(b"_INBOX.") for si in srv.accounts["A"].responses.values()))


def test_account_max_connections(srv):
    c1 = login(srv, "c")
    c2 = RawConn(srv.port)
    c2.info()
    c2.send(b'CONNECT {"verbose":false,"user":"c","pass":"c"}\r\nPING\r\n')
    data = c2.read_all_until_closed()
    assert ERR_RE.search(data).group(1) == b"maximum account active connections exceeded"
    c1.ping_pong()  # the first one stays
    closed = srv.closed_clients.closed_conns()[-1] if hasattr(srv.closed_clients, "closed_conns") else None
    if closed is not None:
        assert str(closed.reason) == "Maximum Account Connections Exceeded"


def test_account_limits_max_payload_and_subs(tmp_path):
    s = start(load_conf(tmp_path, """
        accounts { L: { users: [{user: l, password: l}], limits: {max_payload: 8, max_subscriptions: 1} } }
    """))
    try:
        c = RawConn(s.port)
        c.info()
        c.send(b'CONNECT {"verbose":false,"user":"l","pass":"l","protocol":1}\r\nPING\r\n')
        c.expect(re.compile(rb"PONG\r\n"))
        # Go: an INFO with the client's own max_payload follows the first PONG.
        assert json.loads(c.expect(re.compile(rb"INFO (\{.*?\}) \r\n")).group(1))["max_payload"] == 8
        c.send(b"SUB a 1\r\nSUB b 2\r\nPING\r\n")
        data = upto(c, re.compile(rb"PONG\r\n"))
        assert ERR_RE.search(data).group(1) == b"maximum subscriptions exceeded"
        c.send(b"PUB a 9\r\n123456789\r\n")
        assert ERR_RE.search(c.read_all_until_closed()).group(1) == b"Maximum Payload Violation"
    finally:
        s.stop_thread()


def test_mappings_at_top_level_and_in_accounts(tmp_path):
    s = start(load_conf(tmp_path, """
        mappings { "orders.*": "orders.new.$1" }
        authorization { users: [{user: g, password: g}] }
        accounts { M: { users: [{user: m, password: m}], mappings: { "in": [{destination: "out", weight: 100%}] } } }
    """))
    try:
        g = login(s, "g")
        g.send(b"SUB orders.> 1\r\nPUB orders.7 2\r\nhi\r\nPING\r\n")
        assert b"MSG orders.new.7 1 2\r\nhi\r\n" in upto(g, re.compile(rb"PONG\r\n"))
        m = login(s, "m")
        m.send(b"SUB out 1\r\nSUB in 2\r\nPUB in 2\r\nok\r\nPING\r\n")
        data = upto(m, re.compile(rb"PONG\r\n"))
        assert b"MSG out 1 2\r\nok\r\n" in data and b"MSG in" not in data
    finally:
        s.stop_thread()


def test_system_account_only_keeps_anonymous_clients_in_global(tmp_path):
    s = start(load_conf(tmp_path, """
        accounts { SYS: { users: [{user: admin, password: admin}] } }
        system_account: SYS
    """))
    try:
        assert s.sys_account.name == "SYS"
        anon = RawConn(s.port)
        info = anon.info()
        assert "auth_required" not in info
        anon.send(b'CONNECT {"verbose":false}\r\nPING\r\n')
        anon.expect(re.compile(rb"PONG\r\n"))
        admin = login(s, "admin")
        admin.ping_pong()
        accs = sorted(c.acc.name for c in s.clients.values())
        assert accs == ["$G", "SYS"]
    finally:
        s.stop_thread()


def test_default_system_account_exists(make_server):
    s = make_server()
    assert s.sys_account.name == "$SYS"
    assert sorted(s.accounts) == ["$G", "$SYS"]
    assert make_server(no_system_account=True).sys_account is None


@pytest.mark.parametrize("text, error", [
    ("accounts { $G: {} }", '"$G" is a Reserved Account'),
    ("accounts [ A, A ]", "Duplicate Account Entry: A"),
    ("accounts { A: 1 }", "Expected map entries for accounts"),
    ("accounts { A: { color: red } }", 'unknown field "color"'),
    ("accounts { A: { imports: [{stream: {account: Z, subject: x}}] } }",
     '"Z" account not defined for stream import'),
    ("accounts { A: { exports: [{stream: x, accounts: [Q]}] } }", '"Q" account not defined for stream export'),
    ("accounts { A: {}, B: { imports: [{stream: {account: A, subject: x}}] } }",
     'Error adding stream import "x": stream import not authorized'),
    ("accounts { A: {exports: [{service: s, accounts: [C]}]}, B: { imports: [{service: {account: A, subject: s}}] }, C: {} }",
     'Error adding service import "s": service import not authorized'),
    ("accounts { A: { exports: [{service: s, response: sometimes}] } }", 'Unknown response type: "sometimes"'),
    ("accounts { A: { exports: [{stream: s, response: stream}] } }", "Detected response directive on non-service"),
    ("accounts { A: { imports: [{stream: {account: A}}] } }", "Expect an account name and a subject"),
    ("accounts { A: { users: [{user: x}] }, B: { users: [{user: x}] } }", 'Duplicate user "x" detected'),
    ("authorization { token: t }\naccounts { A: { users: [{user: x}] } }", "Can not have a token and accounts"),
    ("accounts { A: { limits: { max_things: 1 } } }", 'Unknown field "max_things" parsing account limits'),
    ("accounts { A: { nkey: nope } }", 'Not a valid public nkey for an account: "nope"'),
    ("system_account: 5", "system account name must be a string"),
])
def test_config_errors(tmp_path, text, error):
    assert error in "\n".join(conf_errors(tmp_path, text))


def test_unknown_system_account_stops_the_start(tmp_path):
    from gnatsd.server import ConfigError
    with pytest.raises(ConfigError, match="error resolving system account: account missing"):
        Server(load_conf(tmp_path, "system_account: NOPE"))


def test_monitoring_per_account(srv):
    from gnatsd.monitor.monitor import (
        AccountStatzOptions, AccountzOptions, ConnzOptions, SubszOptions, account_statz, accountz, connz, subsz,
    )
    b = login(srv, "b")
    b.send(b"SUB only.in.b 1\r\nPUB x 2\r\nhi\r\n")
    b.ping_pong()
    conns = connz(srv, ConnzOptions(account="B", username=True))["connections"]
    assert conns and all(c["account"] == "B" and c["authorized_user"] == "b" for c in conns)
    assert "account" not in connz(srv, ConnzOptions(account="B"))["connections"][0]
    assert connz(srv, ConnzOptions(account="NOPE"))["connections"] is None

    az = accountz(srv)
    assert az["system_account"] == "$SYS" and set(az["accounts"]) == {"$G", "$SYS", "A", "B", "C"}
    detail = accountz(srv, AccountzOptions(account="B"))["account_detail"]
    assert detail["client_connections"] >= 1
    imports = {(i["type"], i["subject"]) for i in detail["imports"]}
    assert ("stream", "public.>") in imports and ("service", "single") in imports
    single = next(i for i in detail["imports"] if i["subject"] == "single")
    assert single == {"subject": "single", "account": "A", "to": "svc.single", "type": "service",
                      "invalid": False, "share": False, "tracking": False}
    exports = accountz(srv, AccountzOptions(account="A"))["account_detail"]["exports"]
    assert {"subject": "svc.stream", "type": "service", "response_type": "Streamed"} in exports
    assert {"subject": "private.>", "type": "stream", "approved_accounts": ["B"]} in exports
    assert accountz(srv, AccountzOptions(account="$SYS"))["account_detail"]["is_system"] is True

    stats = {a["acc"]: a for a in account_statz(srv)["account_statz"]}
    assert stats["B"]["received"]["msgs"] >= 1 and "$SYS" not in stats
    assert [a["acc"] for a in account_statz(srv, AccountStatzOptions(accounts=("C",), include_unused=True))
            ["account_statz"]] == ["C"]

    found = subsz(srv, SubszOptions(subscriptions=True, account="B", test="only.in.b"))["subscriptions_list"]
    assert [(d["subject"], d["account"]) for d in found] == [("only.in.b", "B")]
    assert subsz(srv, SubszOptions(account="B"))["num_subscriptions"] == srv.accounts["B"].sublist.count
