"""Config reload (reload.py): what changes live, what refuses to, and what happens to the
connections whose users, passwords, permissions or accounts changed. The CLI's SIGHUP path
is in test_cli.py; expected texts are nats-server 2.9.10's.
"""
from __future__ import annotations

import re

import pytest

from conftest import ERR_RE, RawConn, check_for, load_conf, on_hub
from gnatsd import Server
from gnatsd.reload import ReloadError, reload_options

PONG = re.compile(rb"PONG\r\n")


def options(path, text):
    o = load_conf(path.parent, text, path.name)
    o.host, o.port = "127.0.0.1", -1
    return o


@pytest.fixture
def conf(tmp_path):
    """conf(text) -> a running server from that config; conf.reload(text) applies a new one."""
    path = tmp_path / "reload.conf"
    servers = []

    def start(text):
        s = Server(options(path, text)).start_in_thread()
        servers.append(s)
        return s

    def reload(text):
        s = servers[-1]
        return on_hub(s, reload_options, s, options(path, text), spawn=True)

    start.reload = reload
    yield start
    for s in servers:
        s.stop_thread()


def login(s, user=None, password=None, **extra):
    c = RawConn(s.port)
    c.info()
    fields = {"verbose": False, "pedantic": False}
    if user:
        fields.update(user=user, **{"pass": password or user})
    fields.update(extra)
    import json
    c.send(b"CONNECT " + json.dumps(fields).encode() + b"\r\nPING\r\n")
    c.expect(PONG)
    return c


def test_unsupported_changes_fail_and_change_nothing(conf):
    s = conf("max_payload: 1000\n")
    with pytest.raises(ReloadError, match=r"config reload not supported for MaxPending: old=67108864, new=1024"):
        conf.reload("max_payload: 500\nmax_pending: 1KB\n")
    assert s.opts.max_payload == 1000
    with pytest.raises(ReloadError, match='no_auth_user: "b" not present as user'):
        conf.reload("max_payload: 1000\nno_auth_user: b\nauthorization { users: [{user: a}] }\n")


def test_max_payload_and_debug_change_live(conf):
    s = conf("max_payload: 1000\n")
    c = login(s)
    conf.reload("max_payload: 10\ndebug: true\n")
    assert s.opts.debug is True
    c.send(b"PUB x 11\r\n01234567890\r\n")
    assert ERR_RE.search(c.read_all_until_closed()).group(1) == b"Maximum Payload Violation"
    assert RawConn(s.port).info()["max_payload"] == 10
    c.close()


def test_users_passwords_and_permissions(conf):
    s = conf("""authorization { users: [
        {user: a, password: a}
        {user: b, password: b}
        {user: c, password: c, permissions: {subscribe: ">"}}
    ] }""")
    a, b, c = login(s, "a"), login(s, "b"), login(s, "c")
    c.send(b"SUB foo 1\r\nSUB bar 2\r\nPING\r\n")
    c.expect(PONG)
    conf.reload("""authorization { users: [
        {user: a, password: a}
        {user: b, password: changed}
        {user: c, password: c, permissions: {subscribe: "bar"}}
    ] }""")
    a.send(b"PING\r\n")
    a.expect(PONG)  # unchanged: stays
    assert ERR_RE.search(b.read_all_until_closed()).group(1) == b"Authorization Violation"
    c.expect(re.compile(rb"-ERR 'Permissions Violation for Subscription to \"foo\" \(sid \"1\"\)'\r\n"))
    c.send(b"PUB foo 1\r\nx\r\nPUB bar 1\r\ny\r\nPING\r\n")
    m = c.expect(PONG)
    assert m.string[:m.end()] == b"MSG bar 2 1\r\ny\r\nPONG\r\n"
    for x in (a, b, c):
        x.close()


def test_token_change_disconnects_old_token_clients(conf):
    s = conf("authorization { token: old }\n")
    c = login(s, auth_token="old")
    conf.reload("authorization { token: new }\n")
    assert ERR_RE.search(c.read_all_until_closed()).group(1) == b"Authorization Violation"
    login(s, auth_token="new").close()


def test_removed_user_and_moved_account_are_closed(conf):
    s = conf("""accounts {
        A: { users: [{user: a, password: a}, {user: gone, password: gone}] }
        B: { users: [{user: b, password: b}] }
    }""")
    a, gone, b = login(s, "a"), login(s, "gone"), login(s, "b")
    conf.reload("""accounts {
        A: { users: [{user: a, password: a}] }
        B: { users: [{user: b, password: b}] }
        C: { users: [{user: gone, password: gone}] }
    }""")
    # Go: a client whose user is gone or in another account is closed (it reconnects).
    assert b"-ERR" not in gone.read_all_until_closed()
    for c in (a, b):
        c.send(b"PING\r\n")
        c.expect(PONG)
    assert sorted(c.acc.name for c in s.clients.values()) == ["A", "B"]
    assert s.accounts["A"].clients and "C" in s.accounts
    for c in (a, gone, b):
        c.close()


def test_new_stream_import_reaches_existing_subscriptions(conf):
    base = """accounts {
        A: { users: [{user: a, password: a}], exports: [{stream: "news.>"}] }
        B: { users: [{user: b, password: b}] %s }
    }"""
    s = conf(base % "")
    a, b = login(s, "a"), login(s, "b")
    b.send(b"SUB news.> 1\r\nPING\r\n")
    b.expect(PONG)
    conf.reload(base % ', imports: [{stream: {account: A, subject: "news.>"}}]')
    a.send(b"PUB news.today 2\r\nhi\r\nPING\r\n")
    a.expect(PONG)
    b.expect(re.compile(rb"MSG news\.today 1 2\r\nhi\r\n"))
    a.close()
    b.close()


def test_service_import_survives_a_reload(conf):
    text = """accounts {
        A: { users: [{user: a, password: a}], exports: [{service: "svc"}] }
        B: { users: [{user: b, password: b}], imports: [{service: {account: A, subject: "svc"}}] }
    }
    debug: %s"""
    s = conf(text % "false")
    a, b = login(s, "a"), login(s, "b")
    a.send(b"SUB svc 1\r\nPING\r\n")
    a.expect(PONG)
    conf.reload(text % "true")
    b.send(b"SUB r 1\r\nPUB svc r 1\r\nq\r\nPING\r\n")
    b.expect(PONG)
    reply = a.expect(re.compile(rb"MSG svc 1 (\S+) ")).group(1)
    a.send(b"PUB " + reply + b" 1\r\nA\r\n")
    b.expect(re.compile(rb"MSG r 1 1\r\nA\r\n"))
    assert sum(1 for sub in s.accounts["B"].sublist.all_subs() if sub.subject == b"svc") == 1  # not doubled
    a.close()
    b.close()


def test_max_connections_lowered_closes_the_excess(conf):
    s = conf("max_connections: 10\n")
    conns = [login(s) for _ in range(3)]
    conf.reload("max_connections: 2\n")
    check_for(5, lambda: s.num_clients() == 2)
    closed = [c for c in conns if b"maximum connections exceeded" in _drain(c)]
    assert len(closed) == 1
    for c in conns:
        c.close()


def _drain(c):
    try:
        c._fill(__import__("time").monotonic() + 0.2)
    except Exception:
        pass
    return c.buf


def test_trace_turned_on_and_off(conf):
    s = conf("trace: false\n")
    c = login(s)
    conf.reload("trace: true\n")
    [client] = s.clients.values()
    from gnatsd.trace import is_traced
    assert is_traced(client)
    conf.reload("trace: false\n")
    assert not is_traced(client)
    c.send(b"PING\r\n")
    c.expect(PONG)
    c.close()


def test_reload_without_a_config_file(make_server):
    s = make_server()
    with pytest.raises(ReloadError, match="can only reload config when a file is provided using -c or --config"):
        on_hub(s, s.reload, spawn=True)
