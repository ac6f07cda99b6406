"""TLS for client connections: the server's SSL context, the handshake, and the certificate
subject helpers of `verify_and_map`.

Ports nats-server: `server/opts.go` (TLSConfigOpts, parseTLS, GenTLSConfig, overrideTLS; from
newer releases `min_version` and `handshake_first`), `server/ciphersuites.go` (the cipher
names), `server/server.go` (createClient's TLS part, tlsTimeout, tlsVersion, tlsCipher),
`server/client.go` (doTLSHandshake), `server/auth.go` (checkClientTLSCertSubject,
getTLSAuthDCs) and `internal/ldap/dn.go` (ParseDN, FromRawCertSubject, DN matching).

The context is built with Python's `ssl` module; `Server` builds it as a `gevent.ssl`
context so that the wrapped sockets are cooperative. This module imports no gevent at load
time, so `opts.py` can check a `tls {}` block while it reads the config file.
"""
from __future__ import annotations

import logging
import ssl

from . import const, gofmt

log = logging.getLogger("gnatsd")

# Go: cipherMap. Go's names (IANA's) and OpenSSL's for the same TLS 1.0-1.2 suites.
CIPHERS = {
    "TLS_RSA_WITH_RC4_128_SHA": "RC4-SHA",
    "TLS_RSA_WITH_3DES_EDE_CBC_SHA": "DES-CBC3-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_RC4_128_SHA": "ECDHE-ECDSA-RC4-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_RC4_128_SHA": "ECDHE-RSA-RC4-SHA",
    "TLS_ECDHE_RSA_WITH_3DES_EDE_CBC_SHA": "ECDHE-RSA-DES-CBC3-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# TLS 1.3 suites: Go accepts their names but cannot turn them off, nor can Python's ssl;
# all three stay on. OpenSSL names them as Go does.
TLS13_CIPHERS = ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256")
CIPHER_NAMES = dict({v: k for k, v in CIPHERS.items()}, **{n: n for n in TLS13_CIPHERS})
# Go: defaultCipherSuites.
DEFAULT_CIPHERS = (
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
)
_VERSIONS = {"1.2": ssl.TLSVersion.TLSv1_2, "1.3": ssl.TLSVersion.TLSv1_3}
_VERSION_NAMES = {"TLSv1": "1.0", "TLSv1.1": "1.1", "TLSv1.2": "1.2", "TLSv1.3": "1.3"}
# OpenSSL's SSL_OP_NO_RENEGOTIATION; PyPy 3.9's ssl does not name it. Go's server never
# renegotiates either.
_OP_NO_RENEGOTIATION = getattr(ssl, "OP_NO_RENEGOTIATION", 0x40000000)
_ENCODING_DER = 2  # CPython's _ssl.ENCODING_DER, for the certificates of get_unverified_chain


class TLSConfigError(ValueError):
    """A TLS option that cannot work; the message is Go's where Go has one."""


def tls_enabled(opts):
    """Go: opts.TLSConfig != nil. The `tls {}` block or any --tls* flag turns TLS on."""
    return bool(opts.tls or opts.tls_verify or opts.tls_cert or opts.tls_key or opts.tls_ca_cert)


def parse_cipher(name):
    """Go: parseCipher. The OpenSSL name of a Go cipher suite name ("" for a TLS 1.3 suite)."""
    if name in TLS13_CIPHERS:
        return ""
    openssl_name = CIPHERS.get(name)
    if openssl_name is None:
        raise TLSConfigError(f"unrecognized cipher {name}")
    return openssl_name


def parse_min_version(v):
    """Go (newer releases): parseTLSVersion. "1.2" or "1.3"."""
    if not isinstance(v, str):
        raise TLSConfigError(f"'min_version' wrong type: {v}")
    if v in ("1.0", "1.1"):
        raise TLSConfigError(f"unsupported TLS version: TLS {v}")
    if v not in _VERSIONS:
        raise TLSConfigError(f"unknown version: {v}")
    return v


def _check_pem(path, marker, what):
    """Go's tls.LoadX509KeyPair messages for a file that is missing or holds no PEM."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise TLSConfigError(f"error parsing X509 certificate/key pair: open {path}: "
                             f"{(e.strerror or str(e)).lower()}") from None
    if b"-----BEGIN " not in data:
        raise TLSConfigError(f"error parsing X509 certificate/key pair: tls: failed to find any PEM data in {what} input")
    if marker not in data:
        raise TLSConfigError(f"error parsing X509 certificate/key pair: tls: failed to find \"{marker.decode()}\" "
                             f"PEM block in {what} input")


def gen_tls_config(opts, context_class=None):
    """Go: GenTLSConfig (and overrideTLS's checks). A server-side SSL context from the tls_*
    options, or TLSConfigError.

    As Go: TLS 1.2 at least (`tls_min_version` may raise it to 1.3), the server's cipher
    preference, Go's six ECDHE AEAD suites unless `tls_ciphers` names others, client
    certificates required and checked against `tls_ca_cert` when `tls_verify` (the system's
    CAs without a ca file). Unlike Go, a server without a certificate is refused here: Go
    starts and fails every handshake.

    `context_class` defaults to `ssl.SSLContext` as it is when called: a class taken when this
    module was imported would be the one gevent's monkey-patching replaced, whose
    `minimum_version` setter then recurses (the `gnatsd` command patches after `gnatsd`, and
    so this module, is imported).
    """
    if context_class is None:
        context_class = ssl.SSLContext
    cert, key, ca = opts.tls_cert, opts.tls_key, opts.tls_ca_cert
    if cert and not key:
        raise TLSConfigError("missing 'key_file' in TLS configuration")
    if key and not cert:
        raise TLSConfigError("missing 'cert_file' in TLS configuration")
    if not cert:
        raise TLSConfigError("missing 'cert_file' and 'key_file' in TLS configuration "
                             "(gnatsd needs the server's certificate and key)")
    ctx = (context_class or ssl.SSLContext)(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = _VERSIONS[parse_min_version(opts.tls_min_version or "1.2")]
    ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE | _OP_NO_RENEGOTIATION
    names = [n for n in (parse_cipher(c) for c in (opts.tls_ciphers or DEFAULT_CIPHERS)) if n]
    if names:
        try:
            ctx.set_ciphers(":".join(names))
        except ssl.SSLError:
            names = []
        available = {c["name"] for c in ctx.get_ciphers()}
        missing = [CIPHER_NAMES[n] for n in names if n not in available] if names else list(opts.tls_ciphers)
        if missing:
            raise TLSConfigError(f"cipher suite {missing[0]} is not available in this OpenSSL build "
                                 f"({ssl.OPENSSL_VERSION})")
    elif opts.tls_min_version != "1.3":
        # Only TLS 1.3 suites were named: Go then offers no TLS 1.2 suite at all.
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    _check_pem(cert, b"CERTIFICATE", "certificate")
    _check_pem(key, b"PRIVATE KEY", "key")
    try:
        ctx.load_cert_chain(cert, key)
    except ssl.SSLError as e:
        if "KEY_VALUES_MISMATCH" in str(e) or "key values mismatch" in str(e):
            raise TLSConfigError("error parsing X509 certificate/key pair: tls: private key does not match "
                                 "public key") from None
        raise TLSConfigError(f"error parsing X509 certificate/key pair: {e.reason or e}") from None
    except OSError as e:
        raise TLSConfigError(f"error parsing X509 certificate/key pair: {e}") from None
    if opts.tls_verify:
        ctx.verify_mode = ssl.CERT_REQUIRED
    if ca:
        try:
            with open(ca, "rb") as f:
                pem = f.read()
        except OSError as e:
            raise TLSConfigError(f"open {ca}: {(e.strerror or str(e)).lower()}") from None
        try:
            ctx.load_verify_locations(cadata=pem.decode("ascii", "replace"))
        except (ssl.SSLError, ValueError):
            raise TLSConfigError("failed to parse root ca certificate") from None
    elif opts.tls_verify:
        ctx.load_default_certs(ssl.Purpose.CLIENT_AUTH)
    return ctx


def available_ciphers():
    """Go's names of the cipher suites this OpenSSL build offers (TLS 1.3's first)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.set_ciphers("ALL")
    have = {c["name"] for c in ctx.get_ciphers()}
    return list(TLS13_CIPHERS) + [go for go, name in CIPHERS.items() if name in have]


def version_name(sock):
    """Go: tlsVersion."""
    v = sock.version()
    return _VERSION_NAMES.get(v, f"Unknown [{v}]")


def cipher_name(sock):
    """Go: tlsCipher, with Go's names."""
    c = sock.cipher()
    name = c[0] if c else ""
    return CIPHER_NAMES.get(name, f"Unknown [{name}]")


# -- the handshake (Go: createClient's TLS part, doTLSHandshake, tlsTimeout) --------------------


def start_tls(client, tls_first):
    """Go: createClient, from after the registration to the readloop's start: decide between TLS
    and plain text, do the handshake, and send the INFO that `handshake_first` held back.
    Yields. Returns False when the connection was closed (the reason logged), else True: TLS is
    up, or the client goes on in plain text (`allow_non_tls`, or a handshake_first fallback).
    """
    from .errors import ClosedState
    srv = client.srv
    opts = srv.opts
    if tls_first and opts.tls_handshake_first_fallback > 0 and not _peek(client.sock, opts.tls_handshake_first_fallback):
        # Newer Go: the client said nothing, so it waits for INFO: send it, then go on as
        # without handshake_first.
        tls_first = False
        try:
            client.sock.sendall(srv.client_info_json(client, first=True))
        except OSError:
            client.close_connection(ClosedState.WriteError)
            return False
    if not tls_first and opts.allow_non_tls and _peek(client.sock, opts.tls_timeout) != b"\x16":
        # Go: with allow_non_tls a client that does not open with a TLS handshake record
        # (0x16), or says nothing within the TLS timeout, goes on in plain text.
        return not client.closed
    if not server_handshake(client, srv.tls_context, opts.tls_timeout):
        return False
    client._tls = client.sock._sslobj  # for flush_inline's non-blocking write
    # Go: tlsVersion and tlsCipher of ConnectionState, for /connz. Taken now: once the peer's
    # close_notify arrives, OpenSSL no longer reports the version.
    client.tls_cs = (version_name(client._tls), cipher_name(client._tls))
    if tls_first:
        try:
            client.sock.sendall(srv.client_info_json(client, first=True))
        except OSError:
            client.close_connection(ClosedState.WriteError)
            return False
    return True


def read(sslobj, sock, n):
    """The readloop's read: up to `n` decrypted bytes from the SSL object, without waiting;
    b"" at the end of the stream, as gevent's SSLSocket.recv gives it (a close_notify, or a
    ragged end: suppress_ragged_eofs). Raises ssl.SSLWantReadError when OpenSSL needs bytes
    the socket does not have yet. When OpenSSL must write before it can read (SSLWantWriteError)
    the read goes through gevent's SSLSocket, which waits for the socket: that may yield.

    OpenSSL hands out one TLS record per read, and a client writes a record per write (asyncio
    does, nats-py's PUBs and PINGs included): the records already received are read too,
    as a plain socket's read takes every byte that has arrived. Go reads the next record at
    once; the readloop would first process this one and let every other greenlet run, and a
    reply to the first could reach the client before the second was read (nats.py's
    test_tls_reconnect then saw a reply after its close_notify).
    """
    try:
        data = sslobj.read(n)
    except ssl.SSLWantWriteError:
        return sock.recv(n)
    except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
        return b""
    size = len(data)
    if size >= n or not data:
        return data
    chunks = [data]
    while size < n:
        try:
            more = sslobj.read(n - size)
        except (ssl.SSLError, ValueError):
            break  # nothing more yet, or the end: the next read reports it
        if not more:
            break
        chunks.append(more)
        size += len(more)
    return data if len(chunks) == 1 else b"".join(chunks)


def close_notify(sslobj):
    """Go: tls.Conn.Close. Send the close_notify alert before the socket closes, without
    waiting: clients then see a clean end of the TLS stream, not a truncated one."""
    try:
        sslobj.shutdown()
    except (OSError, ValueError):
        pass  # would block (the peer's alert is not awaited), or the connection is gone


def _peek(sock, timeout):
    """The first byte the client sent, left in the socket; b"" if nothing came within `timeout`
    seconds or the connection ended. Yields."""
    import gevent
    import socket as _socket
    with gevent.Timeout(timeout, False):
        try:
            return sock.recv(1, _socket.MSG_PEEK)
        except OSError:
            return b""
    return b""


def server_handshake(client, ctx, timeout):
    """Go: doTLSServerHandshake. Wrap the client's socket and do the server side of the
    handshake within `timeout` seconds. Yields. Returns True when done; otherwise the error
    is logged and the connection closed with "TLS Handshake Failure", as Go does.
    """
    import gevent
    from .errors import ClosedState
    log.debug("%s - Starting TLS client connection handshake", client)
    try:
        sock = ctx.wrap_socket(client.sock, server_side=True, do_handshake_on_connect=False)
    except OSError as e:
        log.error("%s - TLS handshake error: %s", client, e)
        client.close_connection(ClosedState.TLSHandshakeError)
        return False
    client.sock = sock
    timer = gevent.Timeout(timeout)
    timer.start()
    try:
        sock.do_handshake()
    except gevent.Timeout as t:
        if t is not timer:
            raise
        # Go: the read deadline fails the handshake ("i/o timeout"), or tlsTimeout closes it
        # with -ERR 'Secure Connection - TLS Required' that the client cannot read.
        log.error("%s - TLS handshake error: read tcp %s->%s: i/o timeout", client,
                  _addr(sock, "getsockname"), _addr(sock, "getpeername"))
        client.close_connection(ClosedState.TLSHandshakeError)
        return False
    except (OSError, ValueError) as e:
        log.error("%s - TLS handshake error: %s", client, handshake_error_text(e))
        client.close_connection(ClosedState.TLSHandshakeError)
        return False
    finally:
        timer.close()
    if client.closed:  # closed meanwhile (server shutdown)
        return False
    log.debug("%s - TLS handshake complete", client)
    log.debug("%s - TLS version %s, cipher suite %s", client, version_name(sock), cipher_name(sock))
    return True


def _addr(sock, how):
    try:
        a = getattr(sock, how)()
        return f"{a[0]}:{a[1]}"
    except OSError:
        return "?"


def handshake_error_text(e):
    """The reason of a failed handshake, worded as Go's where the cause is the same."""
    reason = getattr(e, "reason", None) or ""
    if reason in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "UNKNOWN_PROTOCOL",
                  "PACKET_LENGTH_TOO_LONG", "RECORD_LAYER_FAILURE"):
        return f"tls: first record does not look like a TLS handshake ({reason})"
    if reason == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "tls: client didn't provide a certificate"
    if reason in ("CERTIFICATE_VERIFY_FAILED",):
        return f"tls: failed to verify client certificate: {getattr(e, 'verify_message', '') or e}"
    if reason in ("UNSUPPORTED_PROTOCOL", "NO_PROTOCOLS_AVAILABLE", "TLSV1_ALERT_PROTOCOL_VERSION"):
        return "tls: client offered only unsupported versions"
    if reason in ("NO_SHARED_CIPHER",):
        return "tls: no cipher suite supported by both client and server"
    if isinstance(e, ssl.SSLEOFError) or "EOF" in str(e):
        return "EOF"
    return str(e)


def peer_certificates(client):
    """Go: ConnectionState().PeerCertificates: the DER of each certificate the client sent, its
    own first, for a client whose TLS handshake is done. Python reads the whole chain from
    3.10 on (a private method until 3.13); PyPy 3.9 and CPython 3.9 give the client's own
    certificate only."""
    ssl_obj = client._tls
    if ssl_obj is None:
        return []
    try:
        leaf = ssl_obj.getpeercert(True)
    except (OSError, ValueError):
        return []
    if not leaf:
        return []
    chain = getattr(ssl_obj, "get_unverified_chain", None)
    ders = [c.public_bytes(_ENCODING_DER) for c in chain() or ()] if chain is not None else []
    if not ders or ders[0] != leaf:
        ders.insert(0, leaf)  # OpenSSL leaves it out on the server side; CPython adds it back
    return ders


def peer_certificate(client):
    """The DER of the client's certificate, or None (no TLS, or no certificate)."""
    sock = client.sock
    if sock is None or not hasattr(sock, "getpeercert"):
        return None
    try:
        return sock.getpeercert(binary_form=True)
    except (OSError, ValueError):
        return None


# -- verify_and_map: the user a client certificate names (Go: checkClientTLSCertSubject) -------


def map_client_user(client, users, allowed=None):
    """Go: the `verify_and_map` branch of processClientOrLeafAuthentication. The user (a value
    of `users`, a dict by user name) that the client's certificate names, among those that
    `allowed(user)` accepts (Go: connectionTypeAllowed), or None: the client is then refused.
    A user name given in CONNECT is ignored, with Go's warning; the caller still checks the
    mapped user's password, which is normally empty."""
    eligible = {name: u for name, u in users.items() if allowed is None or allowed(u)}
    name = map_client_certificate(client, eligible)
    if name is None:
        return None
    given = client.copts.get("user") or ""
    if given:
        log.warning("User %s found in connect proto, but user required from cert", gofmt.go_quote(given))
    client.copts["user"] = name  # Go: c.opts.Username, for the logs and /connz
    return eligible[name]


def map_client_certificate(client, usernames):
    """Go: checkClientTLSCertSubject with processClientOrLeafAuthentication's lookup. The name
    in `usernames` (any container of user names) that the client's certificate identifies,
    or None. Tried in Go's order: email SANs, DNS SANs and URI SANs by exact name; then the
    subject as an LDAP DN against every user name that parses as a DN (same RDN order, then
    any order); then Go's string form of the subject with the domain components appended;
    then without them.
    """
    sock = client.sock
    der = peer_certificate(client)
    if not der:
        log.debug("%s - User required in cert, no peer certificates found", client)
        return None
    try:
        info = sock.getpeercert() or {}
    except (OSError, ValueError):
        info = {}
    sans = info.get("subjectAltName", ())
    try:
        rdns = parse_rdn_sequence(raw_subject(der))
    except ValueError:
        rdns = []
    subject = go_subject_string(rdns)
    emails = [v for k, v in sans if k == "email"]
    dns_names = [v for k, v in sans if k == "DNS"]
    uris = [v for k, v in sans if k == "URI"]
    if not emails and not subject and not uris:
        log.debug("%s - User required in cert, none found", client)
        return None
    for what, names in (("email", emails), ("SAN", dns_names), ("URI", uris)):
        for name in names:
            if name in usernames:
                log.debug("%s - Using %s found in cert for auth [%s]", client, what, gofmt.go_quote(name))
                return name
    dn = dn_from_rdns(rdns)
    if dn is not None:
        match = match_dn(dn, usernames)
        if match is not None:
            log.debug("%s - Using DistinguishedNameMatch for auth [%s]", client, gofmt.go_quote(match))
            return match
        log.debug("%s - DistinguishedNameMatch could not be used for auth [%s]", client, gofmt.go_quote(subject))
    dcs = ",".join("DC=" + v for oid, v in _attributes(rdns) if oid == _OID_DC and isinstance(v, str))
    if dcs:
        name = subject + "," + dcs
        if name in usernames:
            log.debug("%s - Using RDNSequence for auth [%s]", client, gofmt.go_quote(name))
            return name
        log.debug("%s - RDNSequence could not be used for auth [%s]", client, gofmt.go_quote(name))
    if subject in usernames:
        log.debug("%s - Using certificate subject for auth [%s]", client, gofmt.go_quote(subject))
        return subject
    log.debug("%s - User in cert [%s], not found", client, gofmt.go_quote(subject))
    return None


def match_dn(dn, usernames):
    """The user name that, read as a DN, equals `dn` (Go: DN.Equal), else one with the same
    RDNs in another order (Go: DN.RDNsMatch), else None. Names that are not DNs are skipped."""
    parsed = []
    for name in usernames:
        try:
            user_dn = parse_dn(name)
        except ValueError:
            continue
        if dn_equal(user_dn, dn):
            return name
        parsed.append((name, user_dn))
    for name, user_dn in parsed:
        if dn_rdns_match(user_dn, dn):
            return name
    return None


# -- DER: just enough to read a certificate's subject ------------------------------------------


def _tlv(buf, pos):
    """(tag, start of contents, end of contents) of the DER element at `pos`."""
    if pos + 2 > len(buf):
        raise ValueError("truncated DER")
    tag = buf[pos]
    n = buf[pos + 1]
    pos += 2
    if n & 0x80:
        k = n & 0x7F
        if k == 0 or k > 4 or pos + k > len(buf):
            raise ValueError("bad DER length")
        n = int.from_bytes(buf[pos:pos + k], "big")
        pos += k
    if pos + n > len(buf):
        raise ValueError("truncated DER")
    return tag, pos, pos + n


def _tbs_field(cert_der, index):
    """The DER of a field of a certificate's TBSCertificate, counted after the version: 0
    serialNumber, 1 signature, 2 issuer, 3 validity, 4 subject, 5 subjectPublicKeyInfo."""
    _, pos, _ = _tlv(cert_der, 0)  # Certificate
    _, pos, _ = _tlv(cert_der, pos)  # TBSCertificate
    tag, _, end = _tlv(cert_der, pos)
    if tag == 0xA0:  # [0] version
        pos = end
    for _ in range(index):
        _, _, pos = _tlv(cert_der, pos)
    _, _, end = _tlv(cert_der, pos)
    return cert_der[pos:end]


def raw_subject(cert_der):
    """The DER of a certificate's subject Name (Go: Certificate.RawSubject)."""
    return _tbs_field(cert_der, 4)


def raw_subject_public_key_info(cert_der):
    """Go: Certificate.RawSubjectPublicKeyInfo."""
    return _tbs_field(cert_der, 5)


def _oid(b):
    first = b[0]
    arcs = [min(first // 40, 2), first - 40 * min(first // 40, 2)]
    v = 0
    for byte in b[1:]:
        v = (v << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(v)
            v = 0
    return ".".join(map(str, arcs))


def _string_value(tag, b):
    # Go's asn1 decodes these into a Go string; anything else stays raw (not a string).
    if tag in (0x0C, 0x13, 0x16, 0x12, 0x1A):  # UTF8, Printable, IA5, Numeric, Visible
        return b.decode("utf-8", "replace")
    if tag == 0x14:  # T61String: Go takes the bytes as they are
        return b.decode("latin-1")
    if tag == 0x1E:  # BMPString
        return b.decode("utf-16-be", "replace")
    return None


def parse_rdn_sequence(name_der):
    """A Name's RDNs in DER order: [[(oid, value)]], value a str, or the value's DER (bytes) when
    Go would not read it as a string."""
    tag, pos, end = _tlv(name_der, 0)
    if tag != 0x30:
        raise ValueError("subject is not a SEQUENCE")
    rdns = []
    while pos < end:
        _, spos, send = _tlv(name_der, pos)  # SET
        pos = send
        rdn = []
        while spos < send:
            _, apos, aend = _tlv(name_der, spos)  # AttributeTypeAndValue
            spos = aend
            otag, ostart, oend = _tlv(name_der, apos)
            if otag != 0x06:
                raise ValueError("attribute type is not an OID")
            vtag, vstart, vend = _tlv(name_der, oend)
            value = _string_value(vtag, name_der[vstart:vend])
            rdn.append((_oid(name_der[ostart:oend]), name_der[oend:vend] if value is None else value))
        rdns.append(rdn)
    return rdns


def _attributes(rdns):
    for rdn in rdns:
        yield from rdn


# -- Go's string form of a subject (pkix.Name.ToRDNSequence().String()) ------------------------

_OID_DC = "0.9.2342.19200300.100.1.25"
# Go: FillFromRDNSequence keeps these fields; ToRDNSequence writes them back in this order.
_NAME_FIELDS = (("2.5.4.6", "C"), ("2.5.4.8", "ST"), ("2.5.4.7", "L"), ("2.5.4.9", "STREET"),
                ("2.5.4.17", "POSTALCODE"), ("2.5.4.10", "O"), ("2.5.4.11", "OU"))
_SINGLE_FIELDS = (("2.5.4.3", "CN"), ("2.5.4.5", "SERIALNUMBER"))  # the last one given wins


def go_subject_string(rdns):
    """Go: cert.Subject.ToRDNSequence().String(). Only the attributes Go's pkix.Name keeps (C,
    ST, L, STREET, POSTALCODE, O, OU, CN, SERIALNUMBER), grouped by type in that order,
    written last group first; the values of one type form one RDN joined with '+'."""
    values = {}
    for oid, value in _attributes(rdns):
        if isinstance(value, str):
            values.setdefault(oid, []).append(value)
    groups = []
    for oid, short in _NAME_FIELDS:
        if oid in values:
            groups.append([short + "=" + _escape_go(v) for v in values[oid]])
    for oid, short in _SINGLE_FIELDS:
        if values.get(oid) and values[oid][-1]:
            groups.append([short + "=" + _escape_go(values[oid][-1])])
    return ",".join("+".join(g) for g in reversed(groups))


def go_name_string(rdns):
    """Go: pkix.Name.String() of a parsed certificate: go_subject_string, followed by every
    attribute outside Go's list, last first, each as `OID=#` and the hex of the DER Go encodes
    its value to (a string becomes a PrintableString, or a UTF8String if it has characters
    PrintableString lacks, such as '@')."""
    extra = [f"{oid}=#{_go_der(value).hex()}" for oid, value in _attributes(rdns) if oid not in _NAMED_OIDS]
    return ",".join(p for p in [go_subject_string(rdns)] + extra[::-1] if p)


_NAMED_OIDS = {oid for oid, _ in _NAME_FIELDS + _SINGLE_FIELDS}
_PRINTABLE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 '()+,-./:=?")


def _go_der(value):
    """Go: asn1.Marshal of an attribute value as Go parsed it; raw DER stays as it came."""
    if isinstance(value, bytes):
        return value
    b = value.encode()
    tag = 0x13 if all(c in _PRINTABLE for c in value) else 0x0C
    n = len(b)
    if n < 0x80:
        head = bytes((tag, n))
    else:
        size = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes((tag, 0x80 | len(size))) + size
    return head + b


def _escape_go(value):
    # Go: RDNSequence.String's escaping (RFC 2253 specials; leading '#' or space, trailing space).
    out = []
    last = len(value.encode()) - 1
    k = 0
    for c in value:
        if c in ',+"\\<>;' or (c == " " and (k == 0 or k == last)) or (c == "#" and k == 0):
            out.append("\\")
        out.append(c)
        k += len(c.encode())
    return "".join(out)


# -- LDAP distinguished names (Go: internal/ldap/dn.go) -----------------------------------------

_LDAP_TYPES = {"2.5.4.3": "CN", "2.5.4.5": "SERIALNUMBER", "2.5.4.6": "C", "2.5.4.7": "L", "2.5.4.8": "ST",
               "2.5.4.9": "STREET", "2.5.4.10": "O", "2.5.4.11": "OU", "2.5.4.17": "POSTALCODE", _OID_DC: "DC"}


def dn_from_rdns(rdns):
    """Go: ldap.FromRawCertSubject. The subject as a DN, RDNs and their attributes in reverse
    DER order; None if an attribute has a type outside Go's short list (such as an email
    address) or a value that is not a string."""
    dn = []
    for rdn in reversed(rdns):
        if not rdn:
            continue
        attrs = []
        for oid, value in reversed(rdn):
            short = _LDAP_TYPES.get(oid)
            if short is None or not isinstance(value, str):
                return None
            attrs.append((short, value))
        dn.append(attrs)
    return dn


def parse_dn(text):
    """Go: ldap.ParseDN (RFC 4514). [[(type, value)]]; ValueError when `text` is no DN."""
    dn = []
    rdn = []
    buf = bytearray()
    attr_type = None
    trailing = 0
    escaping = False
    raw = text.encode()
    i = 0

    def take():
        nonlocal trailing
        s = bytes(buf[:len(buf) - trailing]).decode("utf-8", "replace")
        buf.clear()
        trailing = 0
        return s

    while i < len(raw):
        ch = raw[i]
        if escaping:
            trailing = 0
            escaping = False
            if chr(ch) in ' "#+,;<=>\\':
                buf.append(ch)
                i += 1
                continue
            if i + 1 >= len(raw):
                raise ValueError("got corrupted escaped character")
            try:
                buf.append(int(raw[i:i + 2].decode("ascii"), 16))
            except ValueError:
                raise ValueError("failed to decode escaped character") from None
            i += 2
            continue
        if ch == 0x5C:  # backslash
            trailing = 0
            escaping = True
        elif ch == 0x3D:  # '='
            attr_type = take()
            if i + 1 < len(raw) and raw[i + 1] == 0x23:
                raise ValueError("unsupported BER encoding")
        elif ch in (0x2C, 0x2B):  # ',' '+'
            if not attr_type:
                raise ValueError("incomplete type, value pair")
            rdn.append((attr_type, take()))
            attr_type = None
            if ch == 0x2C:
                dn.append(rdn)
                rdn = []
        elif ch == 0x20 and not buf:
            pass  # leading spaces
        else:
            trailing = trailing + 1 if ch == 0x20 else 0
            buf.append(ch)
        i += 1
    if buf:
        if not attr_type:
            raise ValueError("DN ended with incomplete type, value pair")
        rdn.append((attr_type, take()))
        dn.append(rdn)
    return dn


def _rdn_equal(a, b):
    # Go: RelativeDN.Equal: same attributes in any order; types match case-insensitively.
    def has_all(x, y):
        return all(any(t1.lower() == t2.lower() and v1 == v2 for t1, v1 in x) for t2, v2 in y)
    return len(a) == len(b) and has_all(a, b) and has_all(b, a)


def dn_equal(a, b):
    """Go: DN.Equal, RDN by RDN in order."""
    return len(a) == len(b) and all(_rdn_equal(x, y) for x, y in zip(a, b))


def dn_rdns_match(a, b):
    """Go: DN.RDNsMatch, the same RDNs in any order."""
    return len(a) == len(b) and all(any(_rdn_equal(x, y) for y in b) for x in a)


def default_auth_timeout(opts):
    """Go: getDefaultAuthTimeout. One second more than the TLS timeout when TLS is on."""
    if tls_enabled(opts):
        return (opts.tls_timeout or const.TLS_TIMEOUT) + 1.0
    return const.AUTH_TIMEOUT

