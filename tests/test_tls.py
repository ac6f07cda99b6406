"""TLS for client connections (gnatsd/tls.py): INFO flags, the handshake after INFO or first,
its timeout, client certificates, verify_and_map, min_version, cipher_suites, allow_non_tls,
bad configs, the flags and the config block. Go: server/tls_test.go, test/tls_test.go.

Certificates are made once per session with `cryptography` in a temporary directory.
"""
from __future__ import annotations

import asyncio
import datetime
import ipaddress
import json
import socket
import ssl
import time

import pytest

cryptography = pytest.importorskip("cryptography")
from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes, serialization  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

import nats  # noqa: E402

from gnatsd import Options, Server, tls  # noqa: E402
from gnatsd.errors import ClosedState  # noqa: E402

TLS_FAILURE = str(ClosedState.TLSHandshakeError)  # "TLS Handshake Failure"
from gnatsd.opts import FlagError, ProcessConfigErr, configure_options, process_config_file  # noqa: E402
from gnatsd.server import ConfigError  # noqa: E402

from conftest import INFO_RE, check_for, flushed  # noqa: E402


# -- certificates ---------------------------------------------------------------------------------


def _name(*pairs):
    return x509.Name([x509.NameAttribute(oid, value) for oid, value in pairs])


def _cert(subject, key, issuer, issuer_key, ca=False, sans=None):
    now = datetime.datetime.now(datetime.timezone.utc)
    b = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer).public_key(key.public_key())
         .serial_number(x509.random_serial_number())
         .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
         .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if sans:
        b = b.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return b.sign(issuer_key, hashes.SHA256())


class Certs:
    """Paths of a CA, the server's certificate and a few clients', all as PEM files."""

    def __init__(self, d):
        self.dir = d
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca_name = _name((NameOID.COMMON_NAME, "gnatsd test CA"), (NameOID.ORGANIZATION_NAME, "gnatsd"))
        self.ca = self._write("ca", _cert(ca_name, ca_key, ca_name, ca_key, ca=True))
        other_key = ec.generate_private_key(ec.SECP256R1())
        other_name = _name((NameOID.COMMON_NAME, "another CA"))
        self.other_ca = self._write("other-ca", _cert(other_name, other_key, other_name, other_key, ca=True))

        def issue(name, subject, sans=None, signer=(ca_name, ca_key)):
            key = ec.generate_private_key(ec.SECP256R1())
            self._write(name, _cert(subject, key, signer[0], signer[1], sans=sans), key)
            return str(d / f"{name}.pem"), str(d / f"{name}-key.pem")

        self.server = issue("server", _name((NameOID.COMMON_NAME, "localhost")),
                            [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        # a subject with an email attribute (no LDAP DN for Go) and a domain component, and SANs
        self.client = issue("client", _name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Synadia"),
                                            (NameOID.ORGANIZATIONAL_UNIT_NAME, "nats.io"),
                                            (NameOID.COMMON_NAME, "client, one"),
                                            (NameOID.EMAIL_ADDRESS, "c@x.io"),
                                            (NameOID.DOMAIN_COMPONENT, "example")),
                            [x509.RFC822Name("alice@example.com"), x509.DNSName("app.example.com"),
                             x509.UniformResourceIdentifier("nats://u.example.com")])
        self.dn_client = issue("dn-client", _name((NameOID.COUNTRY_NAME, "US"), (NameOID.ORGANIZATION_NAME, "Synadia"),
                                                  (NameOID.COMMON_NAME, "dnuser")))
        self.stranger = issue("stranger", _name((NameOID.COMMON_NAME, "stranger")),
                              signer=(other_name, other_key))

    def _write(self, name, cert, key=None):
        (self.dir / f"{name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        if key is not None:
            (self.dir / f"{name}-key.pem").write_bytes(key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
        return str(self.dir / f"{name}.pem")

    def server_opts(self, **extra):
        return dict(tls_cert=self.server[0], tls_key=self.server[1], **extra)

    def client_ctx(self, cert=None, max_version=None):
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert is not None:
            ctx.load_cert_chain(*cert)
        if max_version is not None:
            ctx.maximum_version = max_version
        return ctx


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    return Certs(tmp_path_factory.mktemp("certs"))


# -- helpers ---------------------------------------------------------------------------------------


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def plain_info(port):
    """A TCP connection that has read the plain-text INFO: (socket, info dict)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    buf = b""
    while not INFO_RE.search(buf):
        chunk = sock.recv(4096)
        assert chunk, f"closed before INFO: {buf!r}"
        buf += chunk
    return sock, json.loads(INFO_RE.search(buf).group(1))


def tls_conn(port, ctx, first=False):
    """A TLS connection after the INFO (plain-text INFO first unless `first`): (ssl socket, info)."""
    if first:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        info = None
    else:
        sock, info = plain_info(port)
    tsock = ctx.wrap_socket(sock, server_hostname="localhost")
    if first:
        buf = b""
        while not INFO_RE.search(buf):
            buf += tsock.recv(4096)
        info = json.loads(INFO_RE.search(buf).group(1))
    return tsock, info


def expect(sock, want, timeout=5):
    sock.settimeout(timeout)
    buf = b""
    while want not in buf:
        chunk = sock.recv(65536)
        assert chunk, f"closed; got {buf!r}"
        buf += chunk
    return buf


def closed_reason(server, n=1):
    """The close reason of the n-th connection the server closed (1: the first)."""
    check_for(5, lambda: len(server.closed_clients) >= n)
    return server.closed_clients.closed_clients()[n - 1].reason


def read_until_closed(sock, timeout=5):
    sock.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = sock.recv(4096)
            if not chunk:
                return data
            data += chunk
    except (ConnectionResetError, ssl.SSLError, OSError):
        return data


# -- INFO and the handshake ------------------------------------------------------------------------


def test_info_is_plain_text_with_tls_required_then_the_client_starts_tls(make_server, certs):
    s = make_server(**certs.server_opts())
    sock, info = plain_info(s.port)
    assert info["tls_required"] is True
    assert "tls_verify" not in info and "tls_available" not in info
    assert s.opts.auth_timeout == 3.0  # Go: the TLS timeout (2 s) + 1 s
    tsock = certs.client_ctx().wrap_socket(sock, server_hostname="localhost")
    tsock.sendall(b'CONNECT {"verbose":true}\r\nPING\r\n')
    assert expect(tsock, b"PONG\r\n") == b"+OK\r\nPONG\r\n"
    assert tsock.version() in ("TLSv1.2", "TLSv1.3")
    tsock.close()


def test_info_flags(make_server, certs):
    s = make_server(**certs.server_opts(tls_ca_cert=certs.ca, tls_verify=True))
    _, info = plain_info(s.port)
    assert (info["tls_required"], info["tls_verify"]) == (True, True)
    s = make_server(**certs.server_opts(allow_non_tls=True))
    sock, info = plain_info(s.port)
    assert info["tls_available"] is True and "tls_required" not in info
    server = make_server()
    _, info = plain_info(server.port)
    assert not {"tls_required", "tls_verify", "tls_available"} & set(info)


def test_records_that_arrived_together_are_read_together(make_server, certs):
    """A client writes a TLS record per write. The readloop reads every record that has arrived,
    as Go's readLoop reads the next one at once: the replies to two PUBs sent together leave
    in one write (one record), not the first before the second PUB is even read."""
    s = make_server(**certs.server_opts())
    tsock, _ = tls_conn(s.port, certs.client_ctx())
    tsock.sendall(b'CONNECT {"verbose":false}\r\nSUB a 1\r\nPING\r\n')
    expect(tsock, b"PONG\r\n")
    tsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)  # both records in one segment
    tsock.sendall(b"PUB a 1\r\nx\r\n")
    tsock.sendall(b"PUB a 1\r\ny\r\n")
    tsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    assert tsock.recv(65536) == b"MSG a 1 1\r\nx\r\nMSG a 1 1\r\ny\r\n"  # one record
    tsock.close()


def test_a_full_read_takes_the_rest_before_the_parse(make_server, certs):
    """After short reads the read size shrinks to 64 bytes; two 52-byte PUBs sent together
    fill a read, and the rest of the second is read before either is processed: their
    replies leave together, not the first while the second is still unread."""
    s = make_server(**certs.server_opts())
    tsock, _ = tls_conn(s.port, certs.client_ctx())
    tsock.sendall(b'CONNECT {"verbose":false}\r\nSUB a 1\r\nPING\r\n')
    expect(tsock, b"PONG\r\n")
    for _ in range(6):  # short reads: 512 -> 64 bytes
        tsock.sendall(b"PING\r\n")
        expect(tsock, b"PONG\r\n")
    pub = b"PUB a 40\r\n" + b"x" * 40 + b"\r\n"
    tsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    tsock.sendall(pub)
    tsock.sendall(pub)
    tsock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0)
    msg = b"MSG a 1 40\r\n" + b"x" * 40 + b"\r\n"
    assert tsock.recv(65536) == msg + msg  # one record
    tsock.close()


def test_nats_py_pub_sub_over_tls_large_payload_and_order(make_server, certs):
    s = make_server(**certs.server_opts())
    big = bytes(range(256)) * 4096  # 1 MiB

    async def main():
        ctx = certs.client_ctx()
        sub_nc = await nats.connect(f"tls://localhost:{s.port}", tls=ctx)
        pub_nc = await nats.connect(f"tls://localhost:{s.port}", tls=ctx)
        sub = await sub_nc.subscribe("foo")
        await flushed(sub_nc)
        await pub_nc.publish("foo", big)
        for i in range(10000):
            await pub_nc.publish("foo", b"%d" % i)
        await pub_nc.flush()
        assert (await sub.next_msg(timeout=10)).data == big
        for i in range(10000):
            assert (await sub.next_msg(timeout=10)).data == b"%d" % i
        # request/reply across two TLS connections
        async def respond(m):
            await m.respond(m.data.upper())

        await sub_nc.subscribe("svc", cb=respond)
        await flushed(sub_nc)
        assert (await pub_nc.request("svc", b"hi", timeout=5)).data == b"HI"
        await sub_nc.close()
        await pub_nc.close()

    run(main())


def test_backlog_to_a_slow_tls_reader_arrives_whole(make_server, certs):
    # the subscriber reads nothing for a while: the inline write finds the socket full (the
    # SSL write would block) and the writeloop must resume with the same bytes
    s = make_server(**certs.server_opts())
    sub, _ = tls_conn(s.port, certs.client_ctx())
    sub.sendall(b'CONNECT {"verbose":false}\r\nSUB foo 1\r\nPING\r\n')
    expect(sub, b"PONG\r\n")
    pub, _ = tls_conn(s.port, certs.client_ctx())
    payload = b"x" * 60000
    n = 200  # 12 MB, more than the socket buffers hold
    pub.sendall(b'CONNECT {"verbose":false}\r\n' + b"".join(b"PUB foo %d\r\n%s%06d\r\n" % (len(payload) + 6, payload, i)
                                                             for i in range(n)) + b"PING\r\n")
    time.sleep(0.3)
    sub.settimeout(10)
    got = b""
    want = n * len(b"MSG foo 1 60006\r\n" + payload + b"000000\r\n")
    while len(got) < want:
        chunk = sub.recv(1 << 20)
        assert chunk
        got += chunk
    head = b"MSG foo 1 60006\r\n"
    step = len(head) + len(payload) + 8
    for i in range(n):
        m = got[i * step:(i + 1) * step]
        assert m == head + payload + b"%06d\r\n" % i, i
    expect(pub, b"PONG\r\n")


def _parked_client(server, **state):
    """The server's one client, once it is parked (conn.py, Client.park) with parser `state`."""
    check_for(5, lambda: len(server.clients) == 1)
    cl = next(iter(server.clients.values()))
    check_for(5, lambda: cl._parked and cl._read_watcher is not None and cl._read_watcher.active
              and all(getattr(cl, k) == v for k, v in state.items()))
    return cl


def test_a_tls_client_parks_and_what_openssl_decrypted_is_read_before_parking(make_server, certs):
    # One TLS record longer than a read (512 bytes): OpenSSL takes the whole record from the
    # socket, so the rest waits decrypted in OpenSSL and the socket never becomes readable.
    s = make_server(**certs.server_opts())
    tsock, _ = tls_conn(s.port, certs.client_ctx())
    tsock.sendall(b'CONNECT {"verbose":false}\r\nPING\r\n')
    expect(tsock, b"PONG\r\n")
    _parked_client(s)
    payload = b"y" * 3000
    tsock.sendall(b"SUB x 1\r\nPUB x 3000\r\n" + payload + b"\r\nPING\r\n")
    assert expect(tsock, b"PONG\r\n") == b"MSG x 1 3000\r\n" + payload + b"\r\nPONG\r\n"


@pytest.mark.parametrize("close_notify", [True, False])
def test_a_tls_client_parked_inside_a_payload_goes_on_then_closes(make_server, certs, close_notify):
    s = make_server(**certs.server_opts())
    tsock, _ = tls_conn(s.port, certs.client_ctx())
    tsock.sendall(b'CONNECT {"verbose":false}\r\nSUB x 1\r\nPUB x 11\r\nhello')
    _parked_client(s, _have=5)
    tsock.sendall(b" world\r\nPING\r\n")
    assert expect(tsock, b"PONG\r\n") == b"MSG x 1 11\r\nhello world\r\nPONG\r\n"
    tsock.sendall(b"PUB x 5\r\nhe")
    cl = _parked_client(s, _have=2)
    if close_notify:
        tsock.unwrap().close()  # the TLS stream ends cleanly
    else:
        tsock.close()  # a ragged end: the TCP connection closes without close_notify
    assert closed_reason(s) == str(ClosedState.ClientClosed)
    assert cl._read_watcher is None


def test_handshake_timeout_closes_the_silent_client_and_others_go_on(make_server, certs):
    s = make_server(**certs.server_opts(tls_timeout=0.3))
    start = time.monotonic()
    silent, _ = plain_info(s.port)
    ok, _ = tls_conn(s.port, certs.client_ctx())
    ok.sendall(b"PING\r\n")
    expect(ok, b"PONG\r\n")
    assert read_until_closed(silent) == b""  # Go's -ERR is written mid-handshake: never seen
    assert 0.25 <= time.monotonic() - start < 3
    assert closed_reason(s) == TLS_FAILURE
    ok.sendall(b"PING\r\n")
    expect(ok, b"PONG\r\n")


def test_plain_connect_to_a_tls_server_is_refused(make_server, certs):
    s = make_server(**certs.server_opts())
    sock, _ = plain_info(s.port)
    sock.sendall(b'CONNECT {"verbose":true}\r\nPING\r\n')
    assert b"PONG" not in read_until_closed(sock)  # Go: "first record does not look like a TLS handshake"
    assert closed_reason(s) == TLS_FAILURE


def test_auth_timer_starts_after_the_handshake(make_server, certs):
    s = make_server(**certs.server_opts(authorization="s3cr3t", auth_timeout=0.3))
    tsock, info = tls_conn(s.port, certs.client_ctx())
    assert info["auth_required"] is True
    assert b"Authentication Timeout" in read_until_closed(tsock)


def test_user_password_over_tls(make_server, certs):
    s = make_server(**certs.server_opts(username="derek", password="pw"))

    async def main():
        nc = await nats.connect(f"tls://derek:pw@localhost:{s.port}", tls=certs.client_ctx())
        await nc.flush()
        await nc.close()
        with pytest.raises(Exception):
            await nats.connect(f"tls://derek:bad@localhost:{s.port}", tls=certs.client_ctx(),
                               allow_reconnect=False, max_reconnect_attempts=0)

    run(main())


# -- handshake_first and allow_non_tls -------------------------------------------------------------


def test_handshake_first(make_server, certs):
    s = make_server(**certs.server_opts(tls_handshake_first=True))
    raw = socket.create_connection(("127.0.0.1", s.port), timeout=0.3)
    with pytest.raises(socket.timeout):
        raw.recv(100)  # no INFO before the handshake
    raw.close()
    tsock, info = tls_conn(s.port, certs.client_ctx(), first=True)
    assert info["tls_required"] is True
    tsock.sendall(b"PING\r\n")
    expect(tsock, b"PONG\r\n")

    async def main():
        nc = await nats.connect(f"tls://localhost:{s.port}", tls=certs.client_ctx(), tls_handshake_first=True)
        sub = await nc.subscribe("a")
        await nc.publish("a", b"1")
        assert (await sub.next_msg(timeout=5)).data == b"1"
        await nc.close()

    run(main())


def test_handshake_first_with_a_fallback_sends_info_to_a_client_that_waits(make_server, certs):
    s = make_server(**certs.server_opts(tls_handshake_first=True, tls_handshake_first_fallback=0.1))
    tsock, info = tls_conn(s.port, certs.client_ctx())  # INFO in plain text after 0.1 s, then TLS
    assert info["tls_required"] is True
    tsock.sendall(b"PING\r\n")
    expect(tsock, b"PONG\r\n")
    tsock, info = tls_conn(s.port, certs.client_ctx(), first=True)
    tsock.sendall(b"PING\r\n")
    expect(tsock, b"PONG\r\n")


def test_allow_non_tls_serves_plain_and_tls_clients(make_server, certs):
    s = make_server(**certs.server_opts(allow_non_tls=True))
    plain, info = plain_info(s.port)
    assert info["tls_available"] is True
    plain.sendall(b'CONNECT {"verbose":false}\r\nSUB foo 1\r\nPING\r\n')
    expect(plain, b"PONG\r\n")
    secure, _ = tls_conn(s.port, certs.client_ctx())
    secure.sendall(b"PUB foo 2\r\nhi\r\nPING\r\n")
    expect(secure, b"PONG\r\n")
    assert expect(plain, b"hi\r\n").endswith(b"MSG foo 1 2\r\nhi\r\n")


# -- client certificates ---------------------------------------------------------------------------


def test_verify_accepts_good_client_certs_and_refuses_others(make_server, certs):
    s = make_server(**certs.server_opts(tls_ca_cert=certs.ca, tls_verify=True, tls_timeout=1.0))
    good, _ = tls_conn(s.port, certs.client_ctx(cert=certs.client))
    good.sendall(b"PING\r\n")
    expect(good, b"PONG\r\n")
    for cert in (None, certs.stranger):  # no certificate; one from another CA
        sock, _ = plain_info(s.port)
        try:
            t = certs.client_ctx(cert=cert).wrap_socket(sock, server_hostname="localhost")
            t.sendall(b"PING\r\n")  # TLS 1.3: the server's verdict comes after the client's Finished
            assert b"PONG" not in read_until_closed(t)
        except (ssl.SSLError, OSError):
            pass
    check_for(5, lambda: len(s.closed_clients) >= 2)
    assert [c.reason for c in s.closed_clients.closed_clients()] == [TLS_FAILURE] * 2

    async def main():
        nc = await nats.connect(f"tls://localhost:{s.port}", tls=certs.client_ctx(cert=certs.dn_client))
        await nc.flush()
        await nc.close()

    run(main())


def test_min_version_1_3_refuses_a_tls_1_2_client(make_server, certs):
    s = make_server(**certs.server_opts(tls_min_version="1.3"))
    sock, _ = plain_info(s.port)
    with pytest.raises((ssl.SSLError, OSError)):
        certs.client_ctx(max_version=ssl.TLSVersion.TLSv1_2).wrap_socket(sock, server_hostname="localhost")
    assert closed_reason(s) == TLS_FAILURE
    t, _ = tls_conn(s.port, certs.client_ctx())
    assert t.version() == "TLSv1.3"
    # the default minimum is 1.2, as Go's
    s2 = make_server(**certs.server_opts())
    t, _ = tls_conn(s2.port, certs.client_ctx(max_version=ssl.TLSVersion.TLSv1_2))
    assert t.version() == "TLSv1.2"
    assert t.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"  # Go's first default suite for this key


def test_cipher_suites(make_server, certs):
    s = make_server(**certs.server_opts(tls_ciphers=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"]))
    t, _ = tls_conn(s.port, certs.client_ctx(max_version=ssl.TLSVersion.TLSv1_2))
    assert (tls.cipher_name(t), t.version()) == ("TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384", "TLSv1.2")
    t, _ = tls_conn(s.port, certs.client_ctx())  # TLS 1.3 suites stay on, as in Go
    assert t.version() == "TLSv1.3"


# -- verify_and_map --------------------------------------------------------------------------------


def _map_server(make_server, certs, users, **extra):
    from gnatsd.auth import User
    return make_server(**certs.server_opts(tls_ca_cert=certs.ca, tls_verify=True, tls_map=True,
                                           users=[User(*u) if isinstance(u, tuple) else User(u) for u in users],
                                           **extra))


_OPEN = []  # connections kept open until the end of the test module


def _connect_status(port, ctx, connect=b'CONNECT {"verbose":false}\r\nPING\r\n'):
    t, _ = tls_conn(port, ctx)
    _OPEN.append(t)
    t.sendall(connect)
    t.settimeout(5)
    buf = b""
    while b"PONG" not in buf and b"-ERR" not in buf:
        chunk = t.recv(4096)
        if not chunk:
            break
        buf += chunk
    return buf


def test_verify_and_map_end_to_end(make_server, certs):
    s = _map_server(make_server, certs, ["nobody", "CN=dnuser,O=Synadia,C=US", "alice@example.com"])
    _, info = plain_info(s.port)
    assert (info["auth_required"], info["tls_verify"]) == (True, True)
    # the DN of the certificate names a user; the email SAN names another
    assert _connect_status(s.port, certs.client_ctx(cert=certs.dn_client)) == b"PONG\r\n"
    assert _connect_status(s.port, certs.client_ctx(cert=certs.client)) == b"PONG\r\n"
    assert sorted(c.copts["user"] for c in s.clients.values() if "user" in c.copts) == [
        "CN=dnuser,O=Synadia,C=US", "alice@example.com"]
    # a user name in CONNECT does not choose the user (Go warns and takes the certificate's)
    assert _connect_status(s.port, certs.client_ctx(cert=certs.dn_client),
                           b'CONNECT {"verbose":false,"user":"nobody"}\r\nPING\r\n') == b"PONG\r\n"
    # no user for this certificate: Go's -ERR
    s2 = _map_server(make_server, certs, ["nobody"])
    assert _connect_status(s2.port, certs.client_ctx(cert=certs.dn_client)) == b"-ERR 'Authorization Violation'\r\n"
    # a mapped user with a password still needs it
    s3 = _map_server(make_server, certs, [("CN=dnuser,O=Synadia,C=US", "pw")])
    assert _connect_status(s3.port, certs.client_ctx(cert=certs.dn_client)) == b"-ERR 'Authorization Violation'\r\n"
    assert _connect_status(s3.port, certs.client_ctx(cert=certs.dn_client),
                           b'CONNECT {"verbose":false,"pass":"pw"}\r\nPING\r\n') == b"PONG\r\n"


def test_verify_and_map_from_the_config_file(certs, tmp_path):
    o = _conf(tmp_path, f"""
tls {{ cert_file: "{certs.server[0]}", key_file: "{certs.server[1]}", ca_file: "{certs.ca}", verify_and_map: true }}
authorization {{ users = [ {{ user: "CN=dnuser,O=Synadia,C=US" }} ] }}
""")
    assert (o.tls_map, o.tls_verify, [u.username for u in o.users]) == (True, True, ["CN=dnuser,O=Synadia,C=US"])
    s = Server(o.copy(host="127.0.0.1", port=-1)).start_in_thread()
    try:
        assert _connect_status(s.port, certs.client_ctx(cert=certs.dn_client)) == b"PONG\r\n"
    finally:
        s.stop_thread()


class FakeClient:
    def __init__(self, sock):
        self.sock = sock
        self.copts = {}

    def __repr__(self):
        return "fake"


class PeerSock:
    def __init__(self, cert_path):
        pem = open(cert_path).read()
        self.der = ssl.PEM_cert_to_DER_cert(pem)
        c = x509.load_pem_x509_certificate(pem.encode())
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            alt = ([("email", v) for v in san.get_values_for_type(x509.RFC822Name)]
                   + [("DNS", v) for v in san.get_values_for_type(x509.DNSName)]
                   + [("URI", v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)])
        except x509.ExtensionNotFound:
            alt = []
        self.info = {"subjectAltName": tuple(alt)}

    def getpeercert(self, binary_form=False):
        return self.der if binary_form else self.info


@pytest.mark.parametrize("names, want", [
    (["alice@example.com", "app.example.com"], "alice@example.com"),  # email SAN first
    (["app.example.com", "nats://u.example.com"], "app.example.com"),  # then DNS SANs
    (["nats://u.example.com"], "nats://u.example.com"),  # then URIs
    # then Go's string of the subject with the domain components, then without them
    (["CN=client\\, one,OU=nats.io,O=Synadia,C=US,DC=example"], "CN=client\\, one,OU=nats.io,O=Synadia,C=US,DC=example"),
    (["CN=client\\, one,OU=nats.io,O=Synadia,C=US"], "CN=client\\, one,OU=nats.io,O=Synadia,C=US"),
    (["nobody", "CN=client,OU=nats.io,O=Synadia,C=US"], None),
])
def test_map_certificate_with_sans_and_subject(certs, names, want):
    client = FakeClient(PeerSock(certs.client[0]))
    assert tls.map_client_certificate(client, set(names)) == want


@pytest.mark.parametrize("names, want", [
    (["CN=dnuser,O=Synadia,C=US"], "CN=dnuser,O=Synadia,C=US"),
    (["cn=dnuser, o=Synadia, c=US"], "cn=dnuser, o=Synadia, c=US"),  # a DN: types in any case, spaces
    (["C=US,O=Synadia,CN=dnuser", "x"], "C=US,O=Synadia,CN=dnuser"),  # the same RDNs in another order
    (["CN=dnuser,O=synadia,C=US"], None),  # values are compared exactly
    (["CN=dnuser,O=Synadia"], None),
])
def test_map_certificate_by_distinguished_name(certs, names, want):
    client = FakeClient(PeerSock(certs.dn_client[0]))
    assert tls.map_client_certificate(client, names) == want


def test_map_client_user_warns_about_a_connect_user_and_takes_the_cert_one(certs, caplog):
    client = FakeClient(PeerSock(certs.dn_client[0]))
    client.copts["user"] = "mallory"
    users = {"CN=dnuser,O=Synadia,C=US": "the user", "mallory": "other"}
    assert tls.map_client_user(client, users) == "the user"
    assert client.copts["user"] == "CN=dnuser,O=Synadia,C=US"
    assert 'User "mallory" found in connect proto, but user required from cert' in caplog.text
    assert tls.map_client_user(client, users, allowed=lambda u: u != "the user") is None


def test_go_subject_strings_and_dn_parsing():
    rdns = [[("2.5.4.6", "US")], [("2.5.4.11", "a"), ("2.5.4.11", "b")], [("2.5.4.3", " #x+y ")],
            [("1.2.840.113549.1.9.1", "e@x")]]
    assert tls.go_subject_string(rdns) == "CN=\\ #x\\+y\\ ,OU=a+OU=b,C=US"  # '#' only first
    assert tls.dn_from_rdns(rdns) is None  # Go's LDAP DN has no name for the email attribute
    assert tls.parse_dn("CN=a\\, b+OU=x ,O=\\41bc ") == [[("CN", "a, b"), ("OU", "x")], [("O", "Abc")]]
    for bad in ("nobody", "CN=a,=b,", "CN=#0403"):
        with pytest.raises(ValueError):
            tls.parse_dn(bad)


# -- configuration ---------------------------------------------------------------------------------


def test_bad_tls_options_are_refused_at_start(certs, tmp_path):
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    cases = [
        (dict(tls_cert=str(tmp_path / "missing.pem"), tls_key=certs.server[1]),
         f"error parsing X509 certificate/key pair: open {tmp_path / 'missing.pem'}: no such file or directory"),
        (dict(tls_cert=certs.server[0], tls_key=certs.client[1]),
         "error parsing X509 certificate/key pair: tls: private key does not match public key"),
        (dict(tls_cert=str(garbage), tls_key=certs.server[1]),
         "error parsing X509 certificate/key pair: tls: failed to find any PEM data in certificate input"),
        (dict(tls_cert=certs.server[0]), "missing 'key_file' in TLS configuration"),
        (dict(tls_verify=True), "missing 'cert_file' and 'key_file' in TLS configuration"),
        (dict(tls_cert=certs.server[0], tls_key=certs.server[1], tls_ca_cert=str(garbage)),
         "failed to parse root ca certificate"),
        (dict(tls_cert=certs.server[0], tls_key=certs.server[1], tls_ciphers=["TLS_RSA_WITH_RC4_128_SHA"]),
         "cipher suite TLS_RSA_WITH_RC4_128_SHA is not available in this OpenSSL build"),
        (dict(tls_cert=certs.server[0], tls_key=certs.server[1], tls_ciphers=["nope"]), "unrecognized cipher nope"),
        (dict(tls_cert=certs.server[0], tls_key=certs.server[1], tls_min_version="1.1"),
         "unsupported TLS version: TLS 1.1"),
    ]
    for overrides, message in cases:
        with pytest.raises(ConfigError) as ei:
            Server(Options(port=-1, **overrides))
        assert str(ei.value).startswith(message), (overrides, str(ei.value))


def _conf(tmp_path, text):
    path = tmp_path / "tls.conf"
    path.write_text(text)
    o = Options()
    process_config_file(o, str(path))
    return o


def test_tls_block(certs, tmp_path):
    o = _conf(tmp_path, f"""
tls {{
  cert_file: "{certs.server[0]}"
  key_file: "{certs.server[1]}"
  ca_file: "{certs.ca}"
  verify_and_map: true
  timeout: "500ms"
  handshake_first: "300ms"
  min_version: "1.3"
  cipher_suites: ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"]
}}
allow_non_tls: true
""")
    assert (o.tls, o.tls_cert, o.tls_key, o.tls_ca_cert) == (True, certs.server[0], certs.server[1], certs.ca)
    assert (o.tls_verify, o.tls_map, o.tls_timeout, o.allow_non_tls) == (True, True, 0.5, True)
    assert (o.tls_handshake_first, o.tls_handshake_first_fallback, o.tls_min_version) == (True, 0.3, "1.3")
    assert o.tls_ciphers == ["TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"]
    o = _conf(tmp_path, f'tls {{ cert_file: "{certs.server[0]}", key_file: "{certs.server[1]}", timeout: 3 }}\n'
                        "authorization { token: t }\n")
    server = Server(o)
    assert (o.tls_verify, o.tls_map, o.tls_timeout, o.auth_timeout) == (False, False, 3.0, 4.0)
    assert server.tls_context is not None


@pytest.mark.parametrize("body, where, message", [
    ('cert_file: "{cert}", key_file: "{other_key}"', "2:1",
     "error parsing X509 certificate/key pair: tls: private key does not match public key"),
    ('cert_file: "{cert}", key_file: "{key}", cipher_suites: ["FOO"]', "3:", "unrecognized cipher FOO"),
    ('cert_file: "{cert}", key_file: "{key}", cipher_suites: []', "3:", "'cipher_suites' cannot be empty"),
    ('cert_file: "{cert}", key_file: "{key}", foo: 1', "3:", 'error parsing tls config, unknown field ["foo"]'),
    ('cert_file: "{cert}", key_file: "{key}", verify: "yes"', "3:",
     "error parsing tls config, expected 'verify' to be a boolean"),
    ('cert_file: "{cert}", key_file: "{key}", min_version: "1.0"', "3:",
     "error parsing tls config: unsupported TLS version: TLS 1.0"),
    ('cert_file: "{cert}", key_file: "{key}", timeout: "soon"', "3:", "error parsing tls config, 'timeout'"),
    ('cert_file: "{cert}", key_file: "{key}", handshake_first: "maybe"', "3:",
     "field \"handshake_first\"'s value \"maybe\" is invalid"),
    ('cert_file: "{cert}", key_file: "{key}", pinned_certs: []', "3:", "tls pinned_certs is not yet supported"),
    ('cert_file: 1, key_file: "{key}"', "3:", "error parsing tls config, expected 'cert_file' to be filename"),
])
def test_tls_block_errors(certs, tmp_path, body, where, message):
    body = body.format(cert=certs.server[0], key=certs.server[1], other_key=certs.client[1])
    path = tmp_path / "bad.conf"
    path.write_text(f"port: 4222\ntls {{\n  {body}\n}}\n")
    with pytest.raises(ProcessConfigErr) as ei:
        process_config_file(Options(), str(path))
    [err] = [str(e) for e in ei.value.errors]
    assert err.startswith(f"{path}:{where}") and message in err, err


def _configure(args):
    return configure_options(args, lambda: None, lambda: None, lambda: None)


def test_flags(certs, tmp_path):
    o = _configure(["--tlscert", certs.server[0], "--tlskey", certs.server[1], "--tlscacert", certs.ca,
                    "--tlsverify"])
    assert (o.tls, o.tls_cert, o.tls_key, o.tls_ca_cert, o.tls_verify) == (True, *certs.server, certs.ca, True)
    Server(o)
    with pytest.raises(FlagError, match="TLS Server certificate must be present and valid"):
        _configure(["--tlsverify"])
    with pytest.raises(FlagError, match="TLS Server private key must be present and valid"):
        _configure(["--tls", "--tlscert", certs.server[0]])
    path = tmp_path / "f.conf"
    path.write_text(f'tls {{ cert_file: "{certs.server[0]}", key_file: "{certs.server[1]}", verify: true, '
                    'timeout: 5 }\n')
    o = _configure(["-c", str(path), "--tls=false"])
    assert not tls.tls_enabled(o)
    # other --tls* flags replace the file's settings (the timeout stays), as Go's overrideTLS
    o = _configure(["-c", str(path), "--tlscert", certs.server[0], "--tlskey", certs.server[1]])
    assert (o.tls, o.tls_verify, o.tls_timeout) == (True, False, 5.0)


def test_gnatsd_command_with_tls_flags(certs, tmp_path):
    import subprocess
    import sys
    proc = subprocess.Popen([sys.executable, "-m", "gnatsd", "-a", "127.0.0.1", "-p", "-1", "--ports_file_dir",
                             str(tmp_path), "--tlscert", certs.server[0], "--tlskey", certs.server[1]],
                            stderr=subprocess.PIPE, text=True)
    try:
        ports = check_for(20, lambda: [p for p in tmp_path.iterdir() if p.suffix == ".ports"])
        port = int(json.loads(ports[0].read_text())["nats"][0].rsplit(":", 1)[1])
        t, info = tls_conn(port, certs.client_ctx())
        assert info["tls_required"] is True
        t.sendall(b"PING\r\n")
        expect(t, b"PONG\r\n")
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=10)
    assert "TLS required for client connections" in err
    assert "not yet supported" not in err


# -- HTTPS monitoring, and TLS in /varz and /connz (Go: monitor.go, server.go startMonitoring) ----

import hashlib  # noqa: E402
import http.client  # noqa: E402
import sys  # noqa: E402

from gnatsd.monitor import MonitorStartError  # noqa: E402

# Python reads the chain a client sent from 3.10 on; PyPy 3.9 gives its own certificate only.
WHOLE_CHAIN = sys.implementation.name == "cpython" and sys.version_info >= (3, 10)
# Go's pkix.Name.String() of certs.client's subject, as nats-server 2.9.10 shows it in /connz
# (the email and DC attributes re-encoded as UTF8String and PrintableString).
CLIENT_SUBJECT = ("CN=client\\, one,OU=nats.io,O=Synadia,C=US,0.9.2342.19200300.100.1.25=#13076578616d706c65,"
                  "1.2.840.113549.1.9.1=#0c066340782e696f")


def https_get(server, path, ctx):
    h = http.client.HTTPSConnection("127.0.0.1", server.http_addr[1], context=ctx, timeout=10)
    try:
        h.request("GET", path)
        r = h.getresponse()
        return r.status, r.read().decode()
    finally:
        h.close()


def https_json(server, path, ctx):
    status, body = https_get(server, path, ctx)
    assert status == 200, body
    return json.loads(body)


def peer_cert_entry(pem_path):
    cert = x509.load_pem_x509_certificate(open(pem_path, "rb").read())
    spki = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return {"spki_sha256": hashlib.sha256(spki).hexdigest(),
            "cert_sha256": hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()}


def tls_client(server, ctx, name):
    t, _ = tls_conn(server.port, ctx)
    t.sendall(b'CONNECT {"verbose":false,"name":"%s","user":"u","pass":"p"}\r\nSUB foo 1\r\nPING\r\n' % name.encode())
    expect(t, b"PONG\r\n")
    return t


def test_https_monitor_with_the_client_tls_settings(make_server, certs, caplog):
    caplog.set_level("INFO", logger="gnatsd")
    # verify asks clients for a certificate; the monitor, as Go's, does not
    s = make_server(https_port=-1, **certs.server_opts(tls_ca_cert=certs.ca, tls_verify=True))
    assert s.monitor.scheme == "https" and s.http_addr[1] > 0
    assert f"Starting https monitor on 127.0.0.1:{s.http_addr[1]}" in caplog.text
    v = https_json(s, "/varz", certs.client_ctx())
    assert (v["tls_required"], v["tls_verify"], v["tls_timeout"]) == (True, True, 2.0)
    assert (v["http_port"], v["https_port"], v["auth_timeout"]) == (0, -1, 3.0)
    keys = list(v)
    assert keys.index("port") < keys.index("tls_required") < keys.index("tls_verify") < keys.index("max_connections")
    # TLS 1.2 only, as the server's min_version allows
    assert https_json(s, "/healthz", certs.client_ctx(max_version=ssl.TLSVersion.TLSv1_2)) == {"status": "ok"}
    # a server certificate the client does not trust fails the handshake
    with pytest.raises(ssl.SSLCertVerificationError):
        https_get(s, "/varz", ssl.create_default_context(cafile=certs.other_ca))


def test_https_monitor_answers_plain_http_and_bad_handshakes_as_go(make_server, certs, caplog):
    s = make_server(https_port=-1, **certs.server_opts())
    port = s.http_addr[1]
    plain = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    plain.request("GET", "/varz")
    r = plain.getresponse()
    assert (r.status, r.read()) == (400, b"Client sent an HTTP request to an HTTPS server.\n")
    plain.close()
    socket.create_connection(("127.0.0.1", port), timeout=5).close()
    junk = socket.create_connection(("127.0.0.1", port), timeout=5)
    junk.sendall(b"\x00\x01 not a TLS record\r\n\r\n")
    assert read_until_closed(junk) == b""
    junk.close()
    check_for(5, lambda: caplog.text.count("monitoring: TLS handshake error from 127.0.0.1:") == 2)
    assert "monitoring: TLS handshake error from 127.0.0.1:" in caplog.text and ": EOF" in caplog.text
    assert "tls: first record does not look like a TLS handshake" in caplog.text
    assert "Traceback" not in caplog.text
    assert https_json(s, "/healthz", certs.client_ctx()) == {"status": "ok"}  # still serving


def test_https_and_http_together_or_without_tls_fail_start_with_go_text(certs):
    cases = [(dict(http_port=8222, https_port=8443, **certs.server_opts()),
              "can't specify both HTTP (8222) and HTTPs (8443) ports"),
             (dict(https_port=-1), "TLS cert and key required for HTTPS")]
    for overrides, text in cases:
        s = Server(Options(host="127.0.0.1", port=-1, **overrides))
        with pytest.raises(MonitorStartError) as e:
            s.start_in_thread()
        assert e.value.strerror == text
        assert s.listener is None and not s.running and s.monitor is None


def test_connz_tls_fields_open_and_closed(make_server, certs):
    s = make_server(https_port=-1, username="u", password="p", **certs.server_opts(tls_ca_cert=certs.ca,
                                                                                   tls_verify=True))
    mon = certs.client_ctx()
    t13 = tls_client(s, certs.client_ctx(certs.client), "t13")
    t12 = tls_client(s, certs.client_ctx(certs.dn_client, max_version=ssl.TLSVersion.TLSv1_2), "t12")
    conns = {c["name"]: c for c in https_json(s, "/connz", mon)["connections"]}
    assert conns["t13"]["tls_version"] == "1.3" and conns["t12"]["tls_version"] == "1.2"
    assert conns["t13"]["tls_cipher_suite"] in tls.TLS13_CIPHERS
    assert conns["t12"]["tls_cipher_suite"] in tls.DEFAULT_CIPHERS
    assert "tls_peer_certs" not in conns["t13"]  # only with auth, as Go
    conns = {c["name"]: c for c in https_json(s, "/connz?auth=1&subs=1", mon)["connections"]}
    keys = list(conns["t13"])
    assert keys[keys.index("name"):] == ["name", "tls_version", "tls_cipher_suite", "tls_peer_certs",
                                         "authorized_user", "subscriptions_list"]
    ca = dict(subject="CN=gnatsd test CA,O=gnatsd", **peer_cert_entry(certs.ca))
    want = [dict(subject=CLIENT_SUBJECT, **peer_cert_entry(certs.client[0]))] + ([ca] if WHOLE_CHAIN else [])
    got = conns["t13"]["tls_peer_certs"]
    assert got == want
    assert [list(pc) for pc in got] == [["subject", "spki_sha256", "cert_sha256"]] * len(want)
    assert conns["t12"]["tls_peer_certs"][0] == dict(subject="CN=dnuser,O=Synadia,C=US",
                                                     **peer_cert_entry(certs.dn_client[0]))
    t13.close()
    check_for(5, lambda: len(s.closed_clients) == 1)
    [closed] = https_json(s, "/connz?state=closed&auth=1", mon)["connections"]
    # Go keeps version and cipher suite of a closed connection, not its certificates
    assert (closed["name"], closed["tls_version"]) == ("t13", "1.3")
    assert closed["tls_cipher_suite"] == conns["t13"]["tls_cipher_suite"]
    assert "tls_peer_certs" not in closed
    t12.close()


def test_connz_has_no_tls_fields_for_a_plain_text_client(make_server, certs):
    s = make_server(http_port=-1, **certs.server_opts(allow_non_tls=True))
    sock, _ = plain_info(s.port)
    sock.sendall(b'CONNECT {"verbose":false,"name":"plain"}\r\nPING\r\n')
    expect(sock, b"PONG\r\n")
    h = http.client.HTTPConnection("127.0.0.1", s.http_addr[1], timeout=5)
    h.request("GET", "/connz?auth=1")
    [c] = json.loads(h.getresponse().read())["connections"]
    assert c["name"] == "plain" and not [k for k in c if k.startswith("tls")]
    h.close()
    sock.close()


def test_go_name_strings():
    rdns = [[("2.5.4.6", "US")], [("2.5.4.3", "x")], [("1.2.3.4", "a@b")], [("1.2.3.5", "y" * 200)],
            [("1.2.3.6", b"\x02\x01\x05")]]
    assert tls.go_name_string(rdns) == ("CN=x,C=US,1.2.3.6=#020105,1.2.3.5=#1381c8" + "79" * 200
                                        + ",1.2.3.4=#0c03614062")
    assert tls.go_name_string([[("1.2.3.4", "")]]) == "1.2.3.4=#1300"
    assert tls.go_name_string([]) == ""


def test_gnatsd_command_with_a_tls_block_and_https(certs, tmp_path):
    # A config file's tls block is checked while the process is already patched by gevent.
    from test_cli import Gnatsd
    conf = tmp_path / "https.conf"
    conf.write_text(f'https: "127.0.0.1:-1"\ntls {{ cert_file: "{certs.server[0]}", key_file: "{certs.server[1]}" }}\n')
    g = Gnatsd(["-p", "-1", "-c", str(conf)], tmp_path)
    try:
        g.wait_ready()
        [url] = g.ports["monitoring"]
        assert url.startswith("https://127.0.0.1:")
        h = http.client.HTTPSConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), context=certs.client_ctx(),
                                        timeout=10)
        h.request("GET", "/varz")
        v = json.loads(h.getresponse().read())
        assert v["tls_required"] is True and v["https_port"] == -1
        h.close()
        g.wait_log(r"\[INF\] Starting https monitor on 127\.0\.0\.1:\d+$")
        assert "not yet supported" not in g.log_text()
    finally:
        g.stop()
