"""Authentication and authorization: tokens, users (plain and bcrypt), nkeys, no_auth_user,
auth_timeout; publish/subscribe permissions, queue permissions, default permissions,
allow_responses; their config; the nkeys encoding.

The expected bytes of the permission tests were recorded from nats-server 2.9.10 with the
same config and the same raw protocol (the differences from Go are in docs/DIFFERENCES.md:
a bcrypt no_auth_user connects with a CONNECT).

Servers with many users are module-scoped to keep the file fast; bcrypt hashes use cost 4.
"""
from __future__ import annotations

import asyncio
import base64
import json
import re
import subprocess
import sys
import threading
import time

import bcrypt
import nats
import nkeys as nkeys_pkg
import pytest

from conftest import INFO_RE, RawConn, check_for, flushed, load_conf
from gnatsd import Options, Server, nkeys
from gnatsd import auth as auth_mod
from gnatsd.auth import (
    NkeyUser,
    Permissions,
    ResponsePermission,
    SubjectPermission,
    User,
    compare_passwords,
    is_bcrypt,
    validate_response_permissions,
)
from gnatsd.errors import ClosedState
from gnatsd.opts import ConfigWarningErr, ProcessConfigErr, process_config_file
from gnatsd.permissions import (
    MAX_PERM_CACHE_SIZE,
    ClientPermissions,
    queue_matches,
    subject_is_literal,
    subject_is_subset_match,
)
from gnatsd.server import ConfigError

AUTH_VIOLATION = b"-ERR 'Authorization Violation'\r\n"


def hashpw(secret):
    return bcrypt.hashpw(secret.encode(), bcrypt.gensalt(4)).decode()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def start(opts):
    opts.host, opts.port = "127.0.0.1", -1
    return Server(opts).start_in_thread()


def conf_errors(tmp_path, text):
    path = tmp_path / "auth.conf"
    path.write_text(text)
    with pytest.raises(ProcessConfigErr) as ei:
        process_config_file(Options(), str(path))
    return ei.value


def open_conn(server):
    c = RawConn(server.port)
    c.info_json = json.loads(c.expect(INFO_RE).group(1))
    return c


def exchange(c, data=b""):
    """Send `data` then PING; everything the server sent before the PONG."""
    c.send(data + b"PING\r\n")
    return c.expect(re.compile(rb"(.*?)PONG\r\n", re.S)).group(1)


def connect(server, verbose=False, **fields):
    """A raw connection that sent CONNECT (verbose off unless given) and got its PONG."""
    c = open_conn(server)
    fields = {k.rstrip("_"): v for k, v in fields.items()}
    c.connect_reply = exchange(c, b"CONNECT " + json.dumps(dict(verbose=verbose, **fields)).encode() + b"\r\n")
    return c


def refused(server, data):
    """Open a connection, send `data`: everything until the server closes it."""
    c = open_conn(server)
    try:
        c.send(data)
        return c.read_all_until_closed()
    finally:
        c.close()


def connect_line(**fields):
    fields = {k.rstrip("_"): v for k, v in fields.items()}
    return b"CONNECT " + json.dumps(fields).encode() + b"\r\nPING\r\n"


# ---------------------------------------------------------------------------------------------
# Tokens and the single user
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["s3cr3t", "bcrypt"])
def test_token_plain_and_bcrypt(make_server, token):
    secret = "s3cr3t"
    s = make_server(authorization=secret if token != "bcrypt" else hashpw(secret))
    c = connect(s, verbose=True, auth_token=secret)
    try:
        assert c.info_json["auth_required"] is True and "nonce" not in c.info_json
        assert c.connect_reply == b"+OK\r\n"
    finally:
        c.close()
    for bad in ("S3CR3T", "", s.opts.authorization if token == "bcrypt" else "x"):
        assert refused(s, connect_line(auth_token=bad)) == AUTH_VIOLATION
    assert refused(s, connect_line(user="s3cr3t", pass_="s3cr3t")) == AUTH_VIOLATION

    async def main():
        nc = await nats.connect(s.client_url(), token=secret)
        sub = await nc.subscribe("t")
        await nc.publish("t", b"ok")
        assert (await sub.next_msg(timeout=2)).data == b"ok"
        await nc.close()
        with pytest.raises(Exception):
            await nats.connect(s.client_url(), token="wrong", allow_reconnect=False, max_reconnect_attempts=0)
    run(main())


def test_single_user_bcrypt_password(make_server):
    s = make_server(username="derek", password=hashpw("pw"))
    c = connect(s, verbose=True, user="derek", pass_="pw")
    assert c.connect_reply == b"+OK\r\n"
    c.close()
    for fields in (dict(user="derek", pass_=s.opts.password), dict(user="derek", pass_="PW"),
                   dict(user="Derek", pass_="pw"), dict(pass_="pw"), {}):
        assert refused(s, connect_line(**fields)) == AUTH_VIOLATION

    async def main():
        nc = await nats.connect(s.client_url(), user="derek", password="pw")
        await nc.flush()
        await nc.close()
        nc = await nats.connect(f"nats://derek:pw@127.0.0.1:{s.port}")
        await nc.close()
    run(main())


def test_bcrypt_runs_beside_other_connections(make_server, monkeypatch):
    """The bcrypt check runs in the hub's thread pool: other connections go on meanwhile, and a
    connection closed during the check parses nothing more (its SUB must not outlive it)."""
    started, release = threading.Event(), threading.Event()
    real = auth_mod._bcrypt_check

    def slow_check(hashed, password):
        started.set()
        release.wait(10)
        return real(hashed, password)

    monkeypatch.setattr(auth_mod, "_bcrypt_check", slow_check)
    s = make_server(users=[User("a", hashpw("pw")), User("b", "pw")])
    other = connect(s, user="b", pass_="pw")
    c = open_conn(s)
    try:
        c.send(b'CONNECT {"user":"a","pass":"pw","verbose":false}\r\nSUB x 1\r\nPING\r\n')
        assert started.wait(10)
        assert exchange(other, b"SUB y 1\r\nPUB y 1\r\nz\r\n") == b"MSG y 1 1\r\nz\r\n"  # not blocked
        victim = next(cl for cl in s.clients.values() if cl.copts.get("user") == "a")
        parsed = threading.Event()  # set when the victim's readloop is past its parse
        flush_clients = victim.flush_clients

        def after_parse():
            parsed.set()
            return flush_clients()

        victim.flush_clients = after_parse
        s.call_threadsafe(victim.close_connection, ClosedState.ServerShutdown)
        check_for(5, lambda: victim.closed)
        release.set()
        assert parsed.wait(5)
        assert c.read_all_until_closed() == b""
        assert [sub.subject for sub in s.sublist.all_subs() if sub.icb is None] == [b"y"]  # not the victim's x
    finally:
        release.set()
        other.close()
        c.close()


def test_compare_passwords():
    h = hashpw("secret")
    assert is_bcrypt(h) and not is_bcrypt("secret") and not is_bcrypt("$2q$10$abc")
    assert compare_passwords(h, "secret") and not compare_passwords(h, "Secret")
    assert not compare_passwords(h, h) and not compare_passwords(h, "")
    assert compare_passwords("plain", "plain") and not compare_passwords("plain", "plain ")
    # bcrypt reads 72 bytes of a password, in Go as here; a longer one is not an error
    long = "x" * 72
    h = hashpw(long)
    assert compare_passwords(h, long + "anything") and not compare_passwords(h, long[:-1])
    # a malformed hash never matches (bcrypt 4.2 panics on some: it is not asked)
    for broken in ("$2a$10$broken", "$2a$10$" + "x" * 52, "$2a$10$" + "x" * 54, "$2a$99$" + "x" * 53):
        assert not compare_passwords(broken, "x")
    assert compare_passwords("p\u00e9", "p\u00e9") and not compare_passwords(hashpw("p\u00e9"), "pe")


# ---------------------------------------------------------------------------------------------
# The users server: users, permissions, default permissions, no_auth_user (from a config file)
# ---------------------------------------------------------------------------------------------

BOB_HASH = hashpw("bobpw")

USERS_CONF = """
authorization {
  timeout: 2
  users: [
    {user: free, password: pw}
    {user: bob, password: "%s", permissions: {
        publish: {allow: ["foo.*", "_INBOX.>"], deny: "foo.secret"}
        subscribe: {allow: ["foo.*", "q.> workers", "bar.>", "v.> v1.*"], deny: ["bar.private", "bar.q q1"]}
    }}
    {user: d, password: pw, permissions: {subscribe: {deny: ["bar.private", "bar.q q1"]}}}
    {user: svc, password: pw, permissions: {subscribe: "req.>", allow_responses: {max: 2, expires: "5s"}}}
    {user: svc1, password: pw, permissions: {subscribe: "req.>", allow_responses: true}}
    {user: svcx, password: pw, permissions: {subscribe: "req.>", allow_responses: {expires: "150ms"}}}
    {user: ws, password: pw, allowed_connection_types: ["WEBSOCKET"]}
    {user: std, password: pw, allowed_connection_types: ["standard", "websocket"]}
    {user: anon, permissions: {publish: {deny: ["anon.no", "nopub.>"]}}}
    {user: dflt, password: pw}
  ]
  default_permissions: {publish: {deny: "nopub.>"}}
}
no_auth_user: anon
""" % BOB_HASH


@pytest.fixture(scope="module")
def users_server(tmp_path_factory):
    o = load_conf(tmp_path_factory.mktemp("users"), USERS_CONF)
    s = start(o)
    yield s
    s.stop_thread()


def test_users_config_is_read(users_server):
    o = users_server.opts
    by_name = {u.username: u for u in o.users}
    assert o.nkeys is None and o.no_auth_user == "anon" and o.auth_timeout == 2.0
    assert by_name["bob"].permissions == Permissions(
        publish=SubjectPermission(allow=["foo.*", "_INBOX.>"], deny=["foo.secret"]),
        subscribe=SubjectPermission(allow=["foo.*", "q.> workers", "bar.>", "v.> v1.*"],
                                    deny=["bar.private", "bar.q q1"]))
    assert by_name["svc"].permissions == Permissions(
        publish=SubjectPermission(allow=[]), subscribe=SubjectPermission(allow=["req.>"]),
        response=ResponsePermission(2, 5.0))
    assert by_name["svc1"].permissions.response == ResponsePermission(1, 120.0)
    assert by_name["svcx"].permissions.response == ResponsePermission(1, 0.15)
    default = Permissions(publish=SubjectPermission(deny=["nopub.>"]))
    assert by_name["free"].permissions == default and by_name["dflt"].permissions == default
    assert by_name["d"].permissions.publish is None  # its own permissions replace the default
    assert by_name["ws"].allowed_connection_types == frozenset({"WEBSOCKET"})
    assert by_name["std"].allowed_connection_types == frozenset({"STANDARD", "WEBSOCKET"})
    assert by_name["bob"].password == BOB_HASH


def test_users_good_and_bad(users_server):
    s = users_server
    for user, pw in (("free", "pw"), ("bob", "bobpw"), ("std", "pw")):
        c = connect(s, verbose=True, user=user, pass_=pw)
        assert c.connect_reply == b"+OK\r\n", user
        c.close()
    for fields in (dict(user="free", pass_="x"), dict(user="bob", pass_=BOB_HASH), dict(user="nobody", pass_="pw"),
                   dict(user="bob"), dict(user="ws", pass_="pw"), dict(auth_token="pw"), dict(user="anon", pass_="x"),
                   dict(user=None, pass_="pw"), dict(user="free", pass_="pw", account="A"),
                   dict(user="free", pass_="pw", new_account=True)):
        assert refused(s, connect_line(**fields)) == AUTH_VIOLATION, fields

    async def main():
        nc = await nats.connect(s.client_url(), user="bob", password="bobpw")
        sub = await nc.subscribe("foo.x")
        await nc.publish("foo.x", b"hi")
        assert (await sub.next_msg(timeout=2)).data == b"hi"
        await nc.close()
        with pytest.raises(Exception):
            await nats.connect(s.client_url(), user="bob", password="nope", allow_reconnect=False,
                               max_reconnect_attempts=0)
    run(main())


def test_no_auth_user(users_server):
    s = users_server
    c = open_conn(s)
    try:
        # Go: the first INFO says no auth is needed; ops work before any CONNECT
        assert "auth_required" not in c.info_json
        # (verbose is on until a CONNECT turns it off)
        assert exchange(c, b"SUB x 1\r\nPUB nopub.a 1\r\nx\r\nPUB x 1\r\ny\r\n") == (
            b"+OK\r\n-ERR 'Permissions Violation for Publish to \"nopub.a\"'\r\n+OK\r\nMSG x 1 1\r\ny\r\n")
        # a later CONNECT authenticates again: still anon without credentials
        assert exchange(c, b'CONNECT {"verbose":false}\r\nPUB anon.no 1\r\nx\r\n') == (
            b"-ERR 'Permissions Violation for Publish to \"anon.no\"'\r\n")
        assert s.clients[max(s.clients)].copts["user"] == "anon"
    finally:
        c.close()
    # credentials, when given, must be right
    assert refused(s, connect_line(user="free", pass_="bad")) == AUTH_VIOLATION
    assert refused(s, connect_line(auth_token="x")) == AUTH_VIOLATION

    async def main():
        errors = []

        async def on_error(e):
            errors.append(e)

        nc = await nats.connect(s.client_url(), error_cb=on_error)
        sub = await nc.subscribe("anon.ok")
        await nc.publish("anon.no", b"x")
        await nc.publish("anon.ok", b"y")
        assert (await sub.next_msg(timeout=2)).data == b"y"
        await nc.flush()
        check = [str(e) for e in errors]
        assert check == ["nats: permissions violation for publish to \"anon.no\""], check
        assert nc.is_connected
        await nc.close()
    run(main())


BOB_SUB_EXPECTED = (
    b"+OK\r\n+OK\r\n-ERR 'Permissions Violation for Subscription to \"q.x\"'\r\n+OK\r\n"
    b"-ERR 'Permissions Violation for Subscription to \"q.x\" using queue \"other\"'\r\n+OK\r\n"
    b"-ERR 'Permissions Violation for Subscription to \"v.x\" using queue \"v2\"'\r\n+OK\r\n"
    b"-ERR 'Permissions Violation for Publish to \"foo.secret\"'\r\n+OK\r\nMSG foo.x 1 1\r\nx\r\nMSG foo.x 2 1\r\nx\r\n"
    b"-ERR 'Permissions Violation for Publish to \"foo.x.y\"'\r\n-ERR 'Permissions Violation for Publish to \"bar\"'\r\n"
    b"-ERR 'Permissions Violation for Subscription to \"bar.private\"'\r\n"
    b"-ERR 'Permissions Violation for Subscription to \"bar.q\" using queue \"q1\"'\r\n+OK\r\n")


def test_publish_and_subscribe_permissions(users_server):
    """Allow and deny lists with wildcards, deny over allow, queue-group permissions
    ("q.> workers": only that group; "v.> v1.*": groups matching v1.*), the connection kept.
    Go 2.9.10 sent these bytes for the same ops."""
    c = connect(users_server, verbose=True, user="bob", pass_="bobpw")
    try:
        assert c.connect_reply == b"+OK\r\n"
        assert exchange(c, b"SUB foo.> 1\r\nSUB foo.* 2\r\nSUB q.x 3\r\nSUB q.x workers 4\r\nSUB q.x other 5\r\n"
                           b"SUB v.x v1.a 6\r\nSUB v.x v2 7\r\nSUB v.x v1.* 8\r\nPUB foo.secret 1\r\nx\r\n"
                           b"PUB foo.x 1\r\nx\r\nPUB foo.x.y 1\r\nx\r\nPUB bar 1\r\nx\r\nSUB bar.private 9\r\n"
                           b"SUB bar.q q1 10\r\nSUB bar.q q2 11\r\n") == BOB_SUB_EXPECTED
        # the cached answers give the same results
        assert exchange(c, b"PUB foo.secret 1\r\nx\r\nPUB bar 1\r\nx\r\n") == (
            b"-ERR 'Permissions Violation for Publish to \"foo.secret\"'\r\n"
            b"-ERR 'Permissions Violation for Publish to \"bar\"'\r\n")
        # Go quotes the subject with %q
        assert exchange(c, 'PUB a"b\\\u00e9 1\r\nx\r\nSUB a"b\\\u00e9 12\r\n'.encode()) == (
            b"-ERR 'Permissions Violation for Publish to \"a\\\"b\\\\\xc3\xa9\"'\r\n"
            b"-ERR 'Permissions Violation for Subscription to \"a\\\"b\\\\\xc3\xa9\"'\r\n")
        # the _sys_ queue group is refused whatever the permissions
        assert exchange(c, b"SUB foo.x _sys_ 13\r\n") == (
            b"-ERR 'Permissions Violation for Subscription to \"foo.x\" using queue \"_sys_\"'\r\n")
    finally:
        c.close()


def test_default_permissions(users_server):
    for user in ("free", "dflt"):
        c = connect(users_server, user=user, pass_="pw")
        assert exchange(c, b"PUB nopub.x 1\r\nx\r\nPUB ok 1\r\nx\r\nSUB nopub.x 1\r\n") == (
            b"-ERR 'Permissions Violation for Publish to \"nopub.x\"'\r\n")
        c.close()


def test_subscribe_deny_filters_wider_wildcard_subscriptions(users_server):
    """A deny entry does not stop `SUB bar.>`; its subjects are then never delivered to it.
    A deny entry with a queue ("bar.q q1") stops that queue subscription only."""
    sub = connect(users_server, user="d", pass_="pw")
    pub = connect(users_server, user="free", pass_="pw")
    try:
        assert exchange(sub, b"SUB bar.> 1\r\nSUB bar.* q1 2\r\nSUB bar.private 3\r\n") == (
            b"-ERR 'Permissions Violation for Subscription to \"bar.private\"'\r\n")
        assert exchange(pub, b"PUB bar.private 1\r\nx\r\nPUB bar.ok 1\r\ny\r\nPUB bar.q 1\r\nz\r\n") == b""
        assert exchange(sub) == b"MSG bar.ok 1 1\r\ny\r\nMSG bar.ok 2 1\r\ny\r\nMSG bar.q 1 1\r\nz\r\nMSG bar.q 2 1\r\nz\r\n"
    finally:
        sub.close()
        pub.close()


@pytest.mark.parametrize("user, expected_pub, delivered", [
    # max 2: two responses to _INBOX.1, then none; never to a subject it was not asked on
    ("svc", b"-ERR 'Permissions Violation for Publish to \"_INBOX.1\"'\r\n"
            b"-ERR 'Permissions Violation for Publish to \"_INBOX.3\"'\r\n"
            b"-ERR 'Permissions Violation for Publish to \"req.1\"'\r\n",
     b"MSG _INBOX.1 9 1\r\na\r\nMSG _INBOX.1 9 1\r\nb\r\n"),
    # true: one response (max 1)
    ("svc1", b"-ERR 'Permissions Violation for Publish to \"_INBOX.1\"'\r\n" * 2
             + b"-ERR 'Permissions Violation for Publish to \"_INBOX.3\"'\r\n"
               b"-ERR 'Permissions Violation for Publish to \"req.1\"'\r\n",
     b"MSG _INBOX.1 9 1\r\na\r\n"),
    # expired (150ms): nothing
    ("svcx", b"-ERR 'Permissions Violation for Publish to \"_INBOX.1\"'\r\n" * 3
             + b"-ERR 'Permissions Violation for Publish to \"_INBOX.3\"'\r\n"
               b"-ERR 'Permissions Violation for Publish to \"req.1\"'\r\n",
     b""),
])
def test_allow_responses(users_server, user, expected_pub, delivered):
    svc = connect(users_server, user=user, pass_="pw")
    req = connect(users_server, user="free", pass_="pw")
    try:
        exchange(svc, b"SUB req.> 1\r\n")
        exchange(req, b"SUB _INBOX.> 9\r\nPUB req.1 _INBOX.1 1\r\nx\r\nPUB req.2 _INBOX.2 1\r\nx\r\n")
        assert exchange(svc) == b"MSG req.1 1 _INBOX.1 1\r\nx\r\nMSG req.2 1 _INBOX.2 1\r\nx\r\n"
        if user == "svcx":
            time.sleep(0.2)  # past `expires`: a negative check needs the wait
        assert exchange(svc, b"PUB _INBOX.1 1\r\na\r\nPUB _INBOX.1 1\r\nb\r\nPUB _INBOX.1 1\r\nc\r\n"
                             b"PUB _INBOX.3 1\r\nd\r\nPUB req.1 1\r\nx\r\n") == expected_pub
        assert exchange(req) == delivered
    finally:
        svc.close()
        req.close()


def test_allow_responses_with_nats_py(users_server):
    async def main():
        svc = await nats.connect(users_server.client_url(), user="svc", password="pw")
        requester = await nats.connect(users_server.client_url(), user="free", password="pw")

        async def respond(msg):
            await msg.respond(b"re: " + msg.data)

        await svc.subscribe("req.echo", cb=respond)
        await flushed(svc)
        for i in range(3):
            reply = await requester.request("req.echo", f"m{i}".encode(), timeout=2)
            assert reply.data == f"re: m{i}".encode()
        await svc.close()
        await requester.close()
    run(main())


@pytest.mark.parametrize("connect_json", [
    b'{"user":1}', b'{"pass":true}', b'{"auth_token":[]}', b'{"nkey":5}', b'{"sig":{}}',
    b'{"user":"free","pass":"pw","name":3}', b'{"user":"free","pass":{"a":1}}', b'{"user":["free"]}',
    b'{"user":"free","pass":"pw"', b'{"user":"free" "pass":"pw"}', b'{"jwt":1}',
])
def test_malformed_connect_auth_fields_close_silently(users_server, connect_json):
    """Go: a CONNECT that does not decode (a number where a string belongs, ...) closes the
    connection without an -ERR."""
    assert refused(users_server, b"CONNECT " + connect_json + b"\r\nPING\r\n") == b""


def test_allowed_connection_types_from_options(make_server):
    s = make_server(users=[User("a", "pw", allowed_connection_types=frozenset({"mqtt"})),
                           User("b", "pw", allowed_connection_types=frozenset({"Standard"}))])
    assert refused(s, connect_line(user="a", pass_="pw")) == AUTH_VIOLATION
    c = connect(s, verbose=True, user="b", pass_="pw")
    assert c.connect_reply == b"+OK\r\n"
    c.close()
    with pytest.raises(ConfigError, match='unknown connection type "TELNET"'):
        Server(Options(users=[User("a", allowed_connection_types=frozenset({"TELNET"}))]))


# ---------------------------------------------------------------------------------------------
# no_auth_user with a bcrypt password, and the auth timeout
# ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def timeout_server():
    s = start(Options(users=[User("hashed", hashpw("x")), User("other", "pw")], no_auth_user="hashed",
                      auth_timeout=0.5))
    yield s
    s.stop_thread()


def test_auth_timeout(timeout_server):
    c = open_conn(timeout_server)
    try:
        assert "auth_required" not in c.info_json  # no_auth_user, yet the timer runs (Go)
        assert c.read_all_until_closed() == b"-ERR 'Authentication Timeout'\r\n"
    finally:
        c.close()
    # a partial CONNECT does not stop the timer
    assert refused(timeout_server, b'CONNECT {"user":') == b"-ERR 'Authentication Timeout'\r\n"


def test_no_auth_user_with_bcrypt_password(timeout_server):
    """Not in Go: 2.9.10 compares the bcrypt hash with itself on CONNECT and refuses."""
    c = connect(timeout_server, verbose=True)
    try:
        assert c.connect_reply == b"+OK\r\n"
        time.sleep(0.6)  # past auth_timeout: nothing must arrive
        assert exchange(c) == b""
    finally:
        c.close()
    c = connect(timeout_server, verbose=True, user="hashed", pass_="x")
    assert c.connect_reply == b"+OK\r\n"
    c.close()
    assert refused(timeout_server, connect_line(user="hashed", pass_="y")) == AUTH_VIOLATION


# ---------------------------------------------------------------------------------------------
# Nkeys
# ---------------------------------------------------------------------------------------------

NK1 = nkeys.KeyPair.create(nkeys.PREFIX_BYTE_USER)
NK2 = nkeys.KeyPair.create(nkeys.PREFIX_BYTE_USER)
NK_UNKNOWN = nkeys.KeyPair.create(nkeys.PREFIX_BYTE_USER)
NK_ACCOUNT = nkeys.KeyPair.create(nkeys.PREFIX_BYTE_ACCOUNT)


@pytest.fixture(scope="module")
def nkey_server():
    s = start(Options(nkeys=[NkeyUser(NK1.public_key, Permissions(publish=SubjectPermission(allow=["nk.>"]))),
                             NkeyUser(NK2.public_key), NkeyUser("UBAD")],
                      users=[User("u", hashpw("p"))]))
    yield s
    s.stop_thread()


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def nkey_attempt(server, make):
    c = open_conn(server)
    try:
        nonce = c.info_json["nonce"].encode()
        fields = {k.rstrip("_"): v for k, v in make(nonce).items()}
        c.send(b"CONNECT " + json.dumps(dict(verbose=False, **fields)).encode() + b"\r\n"
               b"PUB nk.x 1\r\nx\r\nPUB other 1\r\nx\r\nPING\r\n")
        try:
            return c.expect(re.compile(rb"(.*?)PONG\r\n", re.S)).group(1)
        except (EOFError, ConnectionResetError):
            return c.buf
        except AssertionError:
            return c.buf
    finally:
        c.close()


def test_nonce_in_first_info(nkey_server):
    c1, c2 = open_conn(nkey_server), open_conn(nkey_server)
    try:
        n1, n2 = c1.info_json["nonce"], c2.info_json["nonce"]
        assert len(n1) == 15 and re.fullmatch(r"[A-Za-z0-9_-]{15}", n1) and n1 != n2
        assert c1.info_json["auth_required"] is True
        keys = list(c1.info_json)
        assert keys.index("client_ip") + 1 == keys.index("nonce")  # Go's struct order
        # later INFOs (async, lame duck) have none
        client = nkey_server.clients[max(nkey_server.clients)]
        later = json.loads(nkey_server.client_info_json(client)[5:-3])
        assert "nonce" not in later and later["auth_required"] is True
    finally:
        c1.close()
        c2.close()


def test_nkey_signatures(nkey_server):
    ok = b"-ERR 'Permissions Violation for Publish to \"other\"'\r\n"
    assert nkey_attempt(nkey_server, lambda n: dict(nkey=NK1.public_key, sig=b64url(NK1.sign(n)))) == ok
    # standard base64 with padding is accepted too
    assert nkey_attempt(nkey_server, lambda n: dict(
        nkey=NK1.public_key, sig=base64.b64encode(NK1.sign(n)).decode())) == ok
    # a user without permissions
    assert nkey_attempt(nkey_server, lambda n: dict(nkey=NK2.public_key, sig=b64url(NK2.sign(n)))) == b""
    # the users list works beside the nkeys
    assert nkey_attempt(nkey_server, lambda n: dict(user="u", pass_="p")) == b""


@pytest.mark.parametrize("make", [
    lambda n: dict(nkey=NK1.public_key, sig=b64url(NK2.sign(n))),  # another key's signature
    lambda n: dict(nkey=NK1.public_key, sig=b64url(NK1.sign(b"x" + n))),  # not over the nonce
    lambda n: dict(nkey=NK1.public_key, sig=b64url(NK1.sign(n)[:32])),  # too short
    lambda n: dict(nkey=NK1.public_key, sig=b64url(NK1.sign(n) + b"\0")),  # too long
    lambda n: dict(nkey=NK1.public_key, sig=b64url(NK1.sign(n)) + "="),  # neither form: 87 characters
    lambda n: dict(nkey=NK1.public_key, sig="!!!!"),  # not base64
    lambda n: dict(nkey=NK1.public_key, sig=""),
    lambda n: dict(nkey=NK1.public_key),  # no signature
    lambda n: dict(nkey=NK_UNKNOWN.public_key, sig=b64url(NK_UNKNOWN.sign(n))),  # not a configured key
    lambda n: dict(nkey=NK_ACCOUNT.public_key, sig=b64url(NK_ACCOUNT.sign(n))),  # an account key, not a user's
    lambda n: dict(nkey="UBAD", sig=b64url(NK1.sign(n))),  # configured, but not a key
    lambda n: dict(nkey=NK1.public_key.lower(), sig=b64url(NK1.sign(n))),
    lambda n: dict(nkey=NK1.public_key, user="u", pass_="p"),  # an nkey is checked as one
    lambda n: dict(user="u", pass_="$2a$04$" + "x" * 53),
    lambda n: {},
], ids=["other-key", "other-data", "short", "long", "bad-padding", "not-base64", "empty", "missing",
        "unknown-key", "account-key", "bad-key", "lower-case", "nkey-with-user", "wrong-password", "nothing"])
def test_nkey_bad_signatures(nkey_server, make):
    assert nkey_attempt(nkey_server, make) == AUTH_VIOLATION


def test_nkey_with_nats_py(nkey_server):
    async def main():
        errors = []

        async def on_error(e):
            errors.append(str(e))

        nc = await nats.connect(nkey_server.client_url(), nkeys_seed_str=NK1.seed, error_cb=on_error)
        sub = await nc.subscribe("nk.a")
        await nc.publish("nk.a", b"signed")
        assert (await sub.next_msg(timeout=2)).data == b"signed"
        await nc.publish("other", b"x")
        await nc.flush()
        for _ in range(100):  # nats-py runs error_cb as a task: it may trail the PONG
            if errors:
                break
            await asyncio.sleep(0.02)
        assert errors == ['nats: permissions violation for publish to "other"']
        await nc.close()
        with pytest.raises(Exception):
            await nats.connect(nkey_server.client_url(), nkeys_seed_str=NK_UNKNOWN.seed, allow_reconnect=False,
                               max_reconnect_attempts=0)
    run(main())


def test_nkeys_encoding_matches_the_nkeys_package():
    kp = nkeys.KeyPair.create(nkeys.PREFIX_BYTE_USER)
    theirs = nkeys_pkg.from_seed(kp.seed.encode())
    assert theirs.public_key.decode() == kp.public_key and kp.public_key.startswith("U") and len(kp.public_key) == 56
    assert kp.seed.startswith("SU") and len(kp.seed) == 58
    assert theirs.verify(b"data", kp.sign(b"data"))
    assert nkeys.verify(kp.public_key, b"data", theirs.sign(b"data"))
    assert nkeys.KeyPair.from_seed(kp.seed).public_key == kp.public_key
    for prefix, letter in ((nkeys.PREFIX_BYTE_ACCOUNT, "A"), (nkeys.PREFIX_BYTE_SERVER, "N"),
                           (nkeys.PREFIX_BYTE_OPERATOR, "O"), (nkeys.PREFIX_BYTE_CLUSTER, "C")):
        k = nkeys.KeyPair.create(prefix)
        assert k.public_key[0] == letter and k.seed[:2] == "S" + letter
        assert nkeys_pkg.from_seed(k.seed.encode()).public_key.decode() == k.public_key


def test_nkeys_decoding_errors():
    assert nkeys.crc16(b"123456789") == 0x31C3  # CRC-16/XMODEM check value
    pub = NK1.public_key
    assert nkeys.is_valid_public_user_key(pub)
    assert nkeys.from_public_key(pub) == (nkeys.PREFIX_BYTE_USER, bytes(NK1.signing_key.verify_key))
    bad_crc = pub[:-1] + ("A" if pub[-1] != "A" else "B")
    with pytest.raises(nkeys.NkeyError, match="invalid checksum"):
        nkeys.decode_raw(bad_crc)
    assert not nkeys.is_valid_public_user_key(bad_crc)
    assert not nkeys.is_valid_public_user_key(NK_ACCOUNT.public_key)  # wrong type prefix
    with pytest.raises(nkeys.NkeyError, match="invalid prefix byte"):
        nkeys.decode(nkeys.PREFIX_BYTE_USER, NK_ACCOUNT.public_key)
    with pytest.raises(nkeys.NkeyError, match="not a valid public nkey"):
        nkeys.from_public_key(NK1.seed)  # a seed is not a public key
    short = nkeys.encode(nkeys.PREFIX_BYTE_USER, b"\1" * 31)  # right prefix and CRC, 31 bytes
    assert not nkeys.is_valid_public_user_key(short)
    assert not nkeys.verify(short, b"x", b"\0" * 64)
    for text in ("", "U", pub.lower(), pub + "=", pub[:-2], "U" * 55 + "1", "UA"):
        assert not nkeys.is_valid_public_user_key(text), text
    # Go's base32 skips line breaks
    assert nkeys.is_valid_public_user_key(pub[:20] + "\r\n" + pub[20:])
    assert not nkeys.verify(pub, b"data", NK1.sign(b"data")[:63])
    assert not nkeys.verify(NK_UNKNOWN.public_key, b"data", NK1.sign(b"data"))
    with pytest.raises(nkeys.NkeyError):
        nkeys.decode_seed(pub)
    with pytest.raises(nkeys.NkeyError):
        nkeys.encode_seed(nkeys.PREFIX_BYTE_SEED, b"\0" * 32)


@pytest.mark.parametrize("text, n", [
    ("QUI", 2), ("QUJD", 3), ("QUI=", 2), ("QU\nJD", 3), ("QUJ", 2), ("-_8", 2),
    ("QUJD=", None), ("QUJD==", None), ("QUI==", None), ("Q", None), ("QU I", None), ("+/8", None), ("+/8=", 2), ("+_8", None),
])
def test_signature_base64_forms(text, n):
    """Go: RawURLEncoding, else StdEncoding (checked against Go's encoding/base64)."""
    got = nkeys.decode_sig(text)
    assert (None if got is None else len(got)) == n


def test_generate_nonce():
    nonces = {nkeys.generate_nonce() for _ in range(100)}
    assert len(nonces) == 100
    assert all(len(n) == nkeys.NONCE_LEN and len(base64.urlsafe_b64decode(n + "=")) == 11 for n in nonces)


# ---------------------------------------------------------------------------------------------
# Config: the authorization block, and the checks at server start
# ---------------------------------------------------------------------------------------------

def test_config_permission_forms(tmp_path):
    o = load_conf(tmp_path, f"""
authorization {{
  users = [
    {{user: a, permissions: {{publish: "x.>", subscribe: ["y", "z.*"]}}}}
    {{user: b, permissions: {{pub: {{allow: "p", deny: ["q", "r"]}}, sub: {{deny: "s"}}}}}}
    {{user: c, permissions: {{publish: {{}}, allow_responses: false}}}}
    {{user: e, permissions: {{import: "i", export: "e", publish_allow_responses: {{max_msgs: -1, ttl: "1m"}}}}}}
    {{user: f, permissions: {{allow_responses: {{max: 0, expires: 2m}}}}}}
    {{nkey: {NK1.public_key}, permissions: {{subscribe: "k.>"}}}}
    {{nkey: {NK2.public_key}}}
  ]
  permissions: {{subscribe: "default"}}
}}
""")
    u = {x.username: x.permissions for x in o.users}
    assert u["a"] == Permissions(SubjectPermission(allow=["x.>"]), SubjectPermission(allow=["y", "z.*"]))
    assert u["b"] == Permissions(SubjectPermission(allow=["p"], deny=["q", "r"]), SubjectPermission(deny=["s"]))
    assert u["c"] == Permissions()
    assert u["e"] == Permissions(SubjectPermission(allow=["i"]), SubjectPermission(allow=["e"]),
                                 ResponsePermission(-1, 60.0))
    assert u["f"] == Permissions(SubjectPermission(allow=[]), None, ResponsePermission(1, 120.0))
    assert [(k.nkey, k.permissions) for k in o.nkeys] == [
        (NK1.public_key, Permissions(subscribe=SubjectPermission(allow=["k.>"]))),
        (NK2.public_key, Permissions(subscribe=SubjectPermission(allow=["default"])))]


@pytest.mark.parametrize("text, where, message", [
    ("authorization { users: [ {user: a} ], token: t }", "1:1", "Can not have a token and a users array"),
    ("authorization { users: [ {user: a} ], user: b }", "1:1", "Can not have a single user/pass and a users array"),
    (f"authorization {{ users: [ {{nkey: {NK1.public_key}}} ], token: t }}", "1:1",
     "Can not have a token and a users array"),
    ("authorization { users: [ {user: a}, {user: a} ] }", "1:1", 'Duplicate user "a" detected'),
    (f"authorization {{ users: [ {{nkey: {NK1.public_key}}}, {{nkey: {NK1.public_key}}} ] }}", "1:1",
     f'Duplicate nkey "{NK1.public_key}" detected'),
    ("authorization { users: [ {password: a} ] }", "1:26", "User entry requires a user"),
    ("authorization { users: [ {nkey: UABC} ] }", "1:26", "Not a valid public nkey for a user"),
    (f"authorization {{ users: [ {{nkey: {NK_ACCOUNT.public_key}}} ] }}", "1:26",
     "Not a valid public nkey for a user"),
    (f"authorization {{ users: [ {{nkey: {NK1.public_key}, user: a}} ] }}", "1:26",
     "Nkey users do not take usernames or passwords"),
    ("authorization { users: {user: a} }", "1:17", "Expected users field to be an array, got a map"),
    ("authorization { users: [ a ] }", "1:26", 'Expected user entry to be a map/struct, got string "a"'),
    ("authorization { users: [ {user: a, pwd: b} ] }", "1:36", 'unknown field "pwd" in users'),
    ("authorization { users: [ {user: 1} ] }", "1:27", "users user: expected a string, got integer 1"),
    ("authorization { users: [ {user: a, permissions: foo} ] }", "1:36",
     'Expected permissions to be a map/struct, got string "foo"'),
    ("authorization { users: [ {user: a, permissions: {pubs: foo}} ] }", "1:50",
     'Unknown field "pubs" parsing permissions'),
    ("authorization { users: [ {user: a, permissions: {publish: {allow: a, denied: b}}} ] }", "1:70",
     "Unknown field name \"denied\" parsing subject permissions, only 'allow' or 'deny' are permitted"),
    ("authorization { users: [ {user: a, permissions: {publish: 1}} ] }", "1:50",
     "Expected subject permissions to be a subject, or array of subjects, got integer 1"),
    ("authorization { users: [ {user: a, permissions: {publish: [a, 1]}} ] }", "1:63",
     "Subject in permissions array cannot be cast to string"),
    ('authorization { users: [ {user: a, permissions: {publish: "a..b"}} ] }', "1:50",
     'subject "a..b" is not a valid subject'),
    ('authorization { users: [ {user: a, permissions: {subscribe: "a.> b c"}} ] }', "1:50",
     'subject "a.> b c" is not a valid subject'),
    ('authorization { users: [ {user: a, permissions: {subscribe: "a.>.b q"}} ] }', "1:50",
     'subject "a.>.b" is not a valid subject'),
    ("authorization { users: [ {user: a, permissions: {allow_responses: 1}} ] }", "1:50",
     "error parsing response permissions, expected a boolean or a map"),
    ("authorization { users: [ {user: a, permissions: {allow_responses: {expires: 5}}} ] }", "1:68",
     "error parsing expires, not a duration string"),
    ('authorization { users: [ {user: a, permissions: {allow_responses: {expires: "5x"}}} ] }', "1:68",
     'error parsing expires: time: unknown unit "x" in duration "5x"'),
    ("authorization { users: [ {user: a, permissions: {allow_responses: {max: a}}} ] }", "1:68",
     'allow_responses max: expected an integer, got string "a"'),
    ("authorization { users: [ {user: a, permissions: {allow_responses: {maxi: 1}}} ] }", "1:68",
     'Unknown field "maxi" parsing permissions'),
    ("authorization { users: [ {user: a, allowed_connection_types: [STANDARD, TELNET]} ] }", "1:36",
     'invalid connection types ["TELNET"]'),
    ("authorization { users: [ {user: a, allowed_connection_types: 1} ] }", "1:36",
     "error parsing allowed connection types: unsupported type (integer 1)"),
    ("authorization { default_permissions: [a] }", "1:17", "Expected permissions to be a map/struct, got an array"),
])
def test_config_errors(tmp_path, text, where, message):
    err = conf_errors(tmp_path, text)
    assert [str(e) for e in err.errors] == [f"{tmp_path / 'auth.conf'}:{where}: {message}"]


def test_config_default_permissions_without_users_warn(tmp_path):
    err = conf_errors(tmp_path, "authorization { user: a, password: b, permissions: {publish: x} }")
    assert not err.errors and len(err.warnings) == 1 and isinstance(err.warnings[0], ConfigWarningErr)
    assert str(err.warnings[0]).endswith('invalid use of field "permissions": default permissions apply to the users '
                                         'of a users list, and this authorization block has none: they are ignored')


def test_config_bcrypt_secrets_are_kept(tmp_path):
    h = hashpw("pw")
    o = load_conf(tmp_path, f'authorization {{ user: a, password: "{h}" }}')
    assert (o.username, o.password) == ("a", h)
    o = load_conf(tmp_path, f'authorization {{ token: "{h}" }}')
    assert o.authorization == h


def test_empty_users_list_requires_no_auth(tmp_path, make_server):
    """Go: `users: []` in a config leaves Options.Users unset, so no auth is required; an empty
    list given through the Options API does require it."""
    o = load_conf(tmp_path, "authorization { users: [] }")
    assert o.users is None
    s = make_server(users=[])
    c = open_conn(s)
    assert c.info_json["auth_required"] is True
    c.close()


@pytest.mark.parametrize("opts, message", [
    (dict(no_auth_user="x"), 'no_auth_user: "x" present, but users are not defined'),
    (dict(no_auth_user="x", users=[User("a")]),
     'no_auth_user: "x" not present as user in authorization block or account configuration'),
    (dict(no_auth_user="x", nkeys=[NkeyUser(NK1.public_key)]), 'no_auth_user: "x" present, but users are not defined'),
])
def test_no_auth_user_must_name_a_user(opts, message):
    with pytest.raises(ConfigError) as ei:
        Server(Options(**opts))
    assert str(ei.value) == message


def test_no_auth_user_from_config_is_checked_at_start(tmp_path):
    o = load_conf(tmp_path, 'no_auth_user: "foo"\nauthorization { users: [ {user: bar} ] }')
    with pytest.raises(ConfigError, match='no_auth_user: "foo" not present as user'):
        Server(o)


def test_gnatsd_command_refuses_an_unknown_no_auth_user(tmp_path):
    """As nats-server: `-t` passes (the check runs when the server is made), the start fails."""
    path = tmp_path / "nau.conf"
    path.write_text("no_auth_user: foo\nauthorization { users: [ {user: bar} ] }\n")
    p = subprocess.run([sys.executable, "-m", "gnatsd", "-c", str(path)], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1
    assert p.stderr == 'gnatsd: no_auth_user: "foo" not present as user in authorization block or account ' \
                       'configuration\n'


def test_server_keeps_its_own_copy_of_users(make_server):
    perms = Permissions(response=ResponsePermission(0, 0))
    users = [User("a", "pw", perms)]
    s = make_server(users=users)
    # Go: buildNkeysAndUsersFromOptions clones, then validateResponsePermissions fills defaults
    assert perms == Permissions(response=ResponsePermission(0, 0))
    assert s.users["a"].permissions == Permissions(publish=SubjectPermission(allow=[]),
                                                   response=ResponsePermission(1, 120.0))
    assert s.users["a"] is not users[0]


def test_plaintext_password_warning(make_server, caplog):
    with caplog.at_level("WARNING", logger="gnatsd"):
        make_server(users=[User("a", hashpw("x"))])
    assert "Plaintext passwords detected" not in caplog.text
    with caplog.at_level("WARNING", logger="gnatsd"):
        make_server(users=[User("a", hashpw("x")), User("b", "plain")])
    assert "Plaintext passwords detected, use nkeys or bcrypt" in caplog.text


# ---------------------------------------------------------------------------------------------
# ClientPermissions directly
# ---------------------------------------------------------------------------------------------

def client_perms(**kw):
    p = Permissions(**kw)
    validate_response_permissions(p)
    return ClientPermissions(p)


def test_publish_cache_is_bounded():
    p = client_perms(publish=SubjectPermission(allow=["ok.>"], deny=["ok.no"]))
    for i in range(1000):
        subject = f"ok.{i}".encode()
        assert p.pub_allowed(subject) and p.pub_allowed(subject)
        assert len(p.pcache) <= MAX_PERM_CACHE_SIZE
        assert not p.pub_allowed(f"no.{i}".encode())
    assert not p.pub_allowed(b"ok.no") and not p.pub_allowed(b"ok.no")
    assert p.pub_allowed(b"ok.0")


def test_publish_allow_none_and_empty():
    assert client_perms(publish=SubjectPermission(allow=[])).pub_allowed(b"x") is False
    assert client_perms(publish=SubjectPermission(deny=["y"])).pub_allowed(b"x") is True
    p = client_perms(subscribe=SubjectPermission(allow=["a"]))
    assert not p.has_pub and not p.has_delivery
    # an empty subscribe allow list allows everything (Go)
    assert client_perms(subscribe=SubjectPermission(allow=[])).can_subscribe(b"anything")


@pytest.mark.parametrize("allow, deny, subject, queue, ok", [
    (["foo.*"], None, b"foo.>", None, True),  # Go: ">" matches the "*" entry as a token
    (["foo.*"], None, b"foo.*", None, True),
    (["foo.bar"], None, b"foo.*", None, False),
    (["foo.>"], None, b"foo.*", None, True),
    (["foo.> q"], None, b"foo.x", None, False),
    (["foo.> q"], None, b"foo.x", b"q", True),
    (["foo.> q"], None, b"foo.x", b"r", False),
    (["foo.>", "foo.> q"], None, b"foo.x", None, True),
    (["foo.>", "foo.> q"], None, b"foo.x", b"r", False),
    (["foo.> v1.*"], None, b"foo.x", b"v1.a", True),
    (["foo.> v1.*"], None, b"foo.x", b"v1.*", True),
    (["foo.> v1.*"], None, b"foo.x", b"v1", False),
    (["foo.> *"], None, b"foo.x", b"*", True),
    (None, ["foo.x"], b"foo.x", None, False),
    (None, ["foo.x"], b"foo.x", b"q", False),
    (None, ["foo.x q"], b"foo.x", b"q", False),
    (None, ["foo.x q"], b"foo.x", b"r", True),
    (None, ["foo.x q"], b"foo.x", None, True),
    (["foo.>"], ["foo.bar"], b"foo.bar", None, False),
    (["foo.>"], ["foo.bar"], b"foo.*", None, True),
])
def test_can_subscribe(allow, deny, subject, queue, ok):
    assert client_perms(subscribe=SubjectPermission(allow=allow, deny=deny)).can_subscribe(subject, queue) is ok


def test_delivery_deny_filter_loads_for_wider_wildcards_only():
    p = client_perms(subscribe=SubjectPermission(deny=["foo.bar", "baz q"]))
    assert p.can_subscribe(b"foo.baz") and p.mdeny is None
    assert p.can_subscribe(b"other.*") and p.mdeny is None
    assert p.can_subscribe(b"foo.*") and p.mdeny is not None and p.has_delivery
    assert p.deliver_denied(b"foo.bar") and not p.deliver_denied(b"foo.baz") and not p.deliver_denied(b"baz")
    for i in range(1000):
        p.deliver_denied(f"x.{i}".encode())
    assert len(p.dcache) <= 257


def test_reply_tracking_is_pruned():
    p = client_perms(response=ResponsePermission(1, 60))
    for i in range(5000):
        p.add_reply(f"r.{i}".encode())
    assert len(p.replies) == 5000  # nothing used up or expired yet
    for i in range(4000):
        assert p.pub_allowed(f"r.{i}".encode())
    p.add_reply(b"r.new")
    assert len(p.replies) == 1001  # the used-up ones went
    assert not p.pub_allowed(b"r.0") and p.pub_allowed(b"r.4999") and not p.pub_allowed(b"r.4999")


@pytest.mark.parametrize("subject, test, ok", [
    (b"foo.bar", b"foo.*", True), (b"foo.bar", b"foo.>", True), (b"foo.bar", b"foo.bar", True),
    (b"foo.*", b"foo.bar", False), (b"foo.*", b"foo.*", True), (b"foo.*", b"foo.>", True),
    (b"foo.>", b"foo.*", False), (b"foo", b"foo.>", False), (b"foo.bar.baz", b"foo.*", False),
    (b"foo.bar", b"*.*", True), (b"foo.bar", b">", True), (b"a", b"b", False),
])
def test_subject_is_subset_match(subject, test, ok):
    assert subject_is_subset_match(subject, test) is ok


def test_subject_helpers():
    assert subject_is_literal(b"foo.bar") and subject_is_literal(b"foo*.bar>") and not subject_is_literal(b"foo.*")
    assert not subject_is_literal(b">")

    class Q:
        def __init__(self, q):
            self.queue = q
    assert queue_matches(b"v1", [[Q(b"v1")]]) and not queue_matches(b"v2", [[Q(b"v1")]])
    assert queue_matches(b"v1.x", [[Q(b"v1.*")]]) and queue_matches(b"anything", [])


def test_permissions_survive_many_clients(users_server):
    """Each connection has its own caches: one's answers never leak into another's."""
    bob = connect(users_server, user="bob", pass_="bobpw")
    free = connect(users_server, user="free", pass_="pw")
    try:
        for _ in range(3):
            assert exchange(bob, b"PUB bar 1\r\nx\r\n") == b"-ERR 'Permissions Violation for Publish to \"bar\"'\r\n"
            assert exchange(free, b"PUB bar 1\r\nx\r\n") == b""
        check_for(2, lambda: len(users_server.clients) >= 2)
    finally:
        bob.close()
        free.close()
