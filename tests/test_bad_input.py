"""Misbehaving clients: every bad input gets exactly the answer the Go server gives, and the
server keeps serving everyone else.

Each case was checked with raw sockets against the Go nats-server 2.9.10 binary. A case is
either "closes": the server sends exactly the bytes given (an -ERR, or nothing for Go's silent
closes) and then closes the connection; or "stays": the server sends exactly the bytes given
and the connection keeps working. After every case a fresh, well-behaved client must still
get its messages and the server's client count must return to its baseline.

Where gnatsd deliberately answers differently from Go, the case asserts gnatsd's answer and
a comment points to docs/DIFFERENCES.md.
"""
from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
import time

import pytest

from conftest import INFO_RE, RawConn, check_for, client_subs

pytestmark = pytest.mark.timeout(60)

PING = b"PING\r\n"
OK = b"+OK\r\n"
QUIET = b'CONNECT {"verbose":false,"pedantic":false}\r\n'
QUIET_HDR = b'CONNECT {"verbose":false,"pedantic":false,"headers":true}\r\n'
_UPTO_PONG = re.compile(rb"\A(.*?)PONG\r\n", re.S)


def err(text):
    return b"-ERR '" + text.encode() + b"'\r\n"


UNKNOWN = err("Unknown Protocol Operation")
MCL = err("maximum control line exceeded")
MAX_PAYLOAD = err("Maximum Payload Violation")
AUTH_VIOLATION = err("Authorization Violation")
SILENT = b""  # Go closes without sending anything
CLOSE_WAIT = 1.0  # Go closes at once in every case here: one that has not closed by then won't


def upto_pong(c, timeout=None):
    return c.expect(_UPTO_PONG, timeout=timeout).group(1)


def upto_pong_no_pings(c, timeout=None):
    """upto_pong for long tests: drops the server's own PINGs (the first comes ~2 s after
    CONNECT). Only for traffic whose payloads cannot contain "PING\\r\\n"."""
    return upto_pong(c, timeout).replace(PING, b"")


def open_conn(server, timeout=5.0):
    c = RawConn(server.port, timeout=timeout)
    c.expect(INFO_RE)
    return c


def assert_server_healthy(server, baseline=0):
    """The server still serves a well-behaved client, and its client count is back to baseline.

    The client uses the defaults (no CONNECT, so verbose and pedantic) and short lines, so that
    it also works with a tiny max_control_line; it authenticates when the server wants it.
    """
    check_for(5, lambda: server.num_clients() == baseline)
    c = open_conn(server)
    try:
        opts = server.opts
        creds = {}
        if opts.authorization:
            creds = {"auth_token": opts.authorization}
        elif opts.username:
            creds = {"user": opts.username, "pass": opts.password}
        head = b""
        if creds:
            head = b"CONNECT " + json.dumps(creds).encode() + b"\r\n"
        c.send(head + b"SUB h.* 1\r\nPUB h.c r 2\r\nok\r\n" + PING)
        assert upto_pong(c) == OK * (3 if creds else 2) + b"MSG h.c 1 r 2\r\nok\r\n"
    finally:
        c.close()
    check_for(5, lambda: server.num_clients() == baseline)


def expect_close(c, expect, timeout=None):
    """The server sends exactly `expect`, then closes. Fails as soon as the bytes differ."""
    deadline = time.monotonic() + (timeout or CLOSE_WAIT)
    data, c.buf = c.buf, b""
    while expect.startswith(data):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"server did not close; got {data!r}")
        c.sock.settimeout(remaining)
        try:
            chunk = c.sock.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    assert data == expect


def send_ping_after_close(c):
    """Go closes without a word and never reads this PING; a server that wrongly keeps the
    connection answers it, so expect_close fails at once instead of waiting."""
    try:
        c.send(PING)
    except OSError:  # already closed: fine
        pass



def case(id, send, expect, closes=True, connect=QUIET, opts=None, marks=()):
    """One table row. `send` is bytes, or a list of bytes and pauses (floats, seconds)."""
    return pytest.param(send, expect, closes, connect, opts or {}, id=id, marks=marks)


def run_case(make_server, send, expect, closes, connect, opts):
    server = make_server(**opts)
    c = open_conn(server)
    try:
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if connect:
            c.send(connect + PING)
            assert upto_pong(c) == b""
        for part in send if isinstance(send, list) else [send]:
            if isinstance(part, float):
                time.sleep(part)  # let the previous part arrive as its own read
            else:
                c.send(part)
        if closes:
            if expect == SILENT:
                send_ping_after_close(c)
            expect_close(c, expect)
        else:
            c.send(PING)
            assert c.read_exact(len(expect) + 6, timeout=CLOSE_WAIT * 2) == expect + b"PONG\r\n"
            c.send(PING)
            assert upto_pong(c) == b""  # nothing more, and still open
    finally:
        c.close()
    assert_server_healthy(server)


# ---------------------------------------------------------------------------------------------
# The table
# ---------------------------------------------------------------------------------------------

GARBAGE = [
    case("nul-and-text", b"\x00\x01\x02garbage\r\n", UNKNOWN),
    case("high-bytes-no-eol", b"\xff" * 10, UNKNOWN),
    case("letters-no-eol", b"xyz", UNKNOWN),
    case("random-1k", b"\xfe" + random.Random(7).randbytes(1023), UNKNOWN),
    case("http-request", b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", UNKNOWN, connect=None),
    case("tls-client-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", UNKNOWN, connect=None),
    case("leading-space", b" PING\r\n", UNKNOWN),
    case("leading-tab", b"\tPING\r\n", UNKNOWN),
    case("leading-space-connect", b' CONNECT {}\r\n', UNKNOWN, connect=None),
    case("empty-line-crlf", b"\r\n", UNKNOWN),
    case("empty-line-lf", b"\n", UNKNOWN),
    case("unknown-op", b"FOO bar\r\n", UNKNOWN),
    case("pubx", b"PUBX foo 1\r\n", UNKNOWN),
    case("subscribe", b"SUBSCRIBE foo 1\r\n", UNKNOWN),
    case("pin", b"PIN\r\n", UNKNOWN),
    case("ponx", b"PONX\r\n", UNKNOWN),
    case("sub-no-args", b"SUB\r\n", UNKNOWN),
    case("unsub-no-args", b"UNSUB\r\n", UNKNOWN),
    case("pub-no-args", b"PUB\r\n", UNKNOWN),
    case("hpub-no-args", b"HPUB\r\n", UNKNOWN, connect=QUIET_HDR),
    case("err-no-sep", b"-ERR\r\n", UNKNOWN),
    case("plus-x", b"+X\r\n", UNKNOWN),
    case("minus-x", b"-X\r\n", UNKNOWN),
    case("hx", b"HX\r\n", UNKNOWN),
    # Server-only ops.
    case("msg", b"MSG foo 1 2\r\nhi\r\n", UNKNOWN),
    case("msg-partial", b"MS", UNKNOWN),
    case("m-partial", b"M", UNKNOWN),
    case("hmsg", b"HMSG foo 1 2 2\r\nhi\r\n", UNKNOWN),
    case("rs+", b"RS+ $G foo\r\n", UNKNOWN),
    case("rs-", b"RS- $G foo\r\n", UNKNOWN),
    case("rmsg", b"RMSG $G foo 2\r\nhi\r\n", UNKNOWN),
    case("ls+", b"LS+ foo\r\n", UNKNOWN),
    case("ls-", b"LS- foo\r\n", UNKNOWN),
    case("lmsg", b"LMSG foo 2\r\nhi\r\n", UNKNOWN),
    case("a+", b"A+ foo\r\n", UNKNOWN),
    case("a-", b"A- foo\r\n", UNKNOWN),
    # Ops the server accepts with trailing junk: no error.
    case("ping-junk", b"PINGxyz junk\r\n", b"PONG\r\n", closes=False),
    case("pong-junk", b"PONGxyz\r\n+OKjunk\r\n+OK\r\n", b"", closes=False),
    case("pingpong", b"PINGPONG\r\n", b"PONG\r\n", closes=False),
    case("partial-op-kept", [b"PU", 0.05, b"B foo 1\r\na\r\n"], b"", closes=False),
    # A client that sends -ERR is closed without an answer.
    case("client-err", b"-ERR 'foo'\r\n", SILENT),
]

CONTROL_LINE = [
    # The argument (after the op and its separators, up to CR/LF) may be 4096 bytes.
    case("sub-4096", b"SUB " + b"a" * 4094 + b" 1\r\n", b"", closes=False),
    case("sub-4096-leading-spaces", b"SUB      " + b"a" * 4094 + b" 1\r\n", b"", closes=False),
    case("sub-4097", b"SUB " + b"a" * 4095 + b" 1\r\n", MCL),
    case("pub-4097", b"PUB " + b"a" * 4095 + b" 1\r\na\r\n", MCL),
    case("hpub-4097", b"HPUB " + b"a" * 4093 + b" 0 1\r\na\r\n", MCL, connect=QUIET_HDR),
    case("unsub-4097", b"UNSUB " + b"a" * 4097 + b"\r\n", MCL),
    case("connect-4096", b'CONNECT {"name":"' + b"a" * 4085 + b'"}\r\n', OK, closes=False,
         connect=None),
    case("connect-4097", b'CONNECT {"name":"' + b"a" * 4086 + b'"}\r\n', MCL, connect=None),
    case("info-4097", b"INFO " + b"a" * 4097 + b"\r\n", MCL),
    case("err-4097", b"-ERR " + b"a" * 4097 + b"\r\n", MCL),
    case("ping-5000-junk", b"PING" + b"x" * 5000 + b"\r\n", b"PONG\r\n", closes=False),
    case("pong-5000-junk-split", [b"PONG" + b"x" * 5000, 0.05, b"\r\n"], b"", closes=False),
    # Still incomplete: rejected as soon as the partial argument is over the limit.
    case("partial-sub-5000", b"SUB " + b"a" * 5000, MCL),
    case("partial-sub-4097", b"SUB " + b"a" * 4097, MCL),
    case("partial-sub-4096-then-more", [b"SUB " + b"a" * 4096, 0.05, b"b"], MCL),
    case("partial-sub-4094-then-completed", [b"SUB " + b"a" * 4094, 0.05, b" 1\r\n"], b"",
         closes=False),
    case("partial-connect-5000", b"CONNECT " + b"a" * 5000, MCL, connect=None),
    case("partial-info-5000", b"INFO " + b"a" * 5000, MCL),
    case("partial-err-5000", b"-ERR " + b"a" * 5000, MCL),
    case("partial-pub-5000-spaces", [b"SUB foo 1\r\nPUB " + b" " * 5000, 0.05, b"foo 1\r\na\r\n"],
         b"MSG foo 1 1\r\na\r\n", closes=False),
    case("partial-garbage-5000", b"x" * 5000, UNKNOWN),
    # A small limit.
    case("mcl10-sub-10", b"SUB abcdefgh 1\r\n", OK, closes=False, connect=None,
         opts=dict(max_control_line=10)),
    case("mcl10-sub-11", b"SUB abcdefghi 1\r\n", MCL, connect=None, opts=dict(max_control_line=10)),
    case("mcl10-connect", b'CONNECT {"verbose":false}\r\n', MCL, connect=None,
         opts=dict(max_control_line=10)),
    case("mcl10-ping-junk", b"PING" + b"x" * 100 + b"\r\n", b"PONG\r\n", closes=False,
         connect=None, opts=dict(max_control_line=10)),
    # Trailing spaces and tabs are part of the argument and count toward the limit.
    case("sub-4097-trailing-space", b"SUB " + b"a" * 4094 + b" 1 \r\n", MCL),
    case("pub-4097-trailing-tab", b"PUB " + b"a" * 4093 + b" 1\t\t\r\na\r\n", MCL),
    case("partial-sub-4097-trailing-space", b"SUB " + b"a" * 4094 + b" 1 ", MCL),
    case("sub-4096-with-trailing-space", b"SUB " + b"a" * 4093 + b" 1 \r\n", b"", closes=False),
]

PAYLOAD = [
    case("pub-over-max", b"PUB foo 1048577\r\n", MAX_PAYLOAD),
    case("pub-9-digits-over-max", b"PUB foo 999999999\r\n", MAX_PAYLOAD),
    case("hpub-over-max", b"HPUB foo 12 1048577\r\n", MAX_PAYLOAD, connect=QUIET_HDR),
    case("hpub-hdr-and-total-over-max", b"HPUB foo 1048577 1048577\r\n", MAX_PAYLOAD,
         connect=QUIET_HDR),
    case("small-max-at-limit", b"SUB f 1\r\nPUB f 100\r\n" + b"x" * 100 + b"\r\n",
         b"MSG f 1 100\r\n" + b"x" * 100 + b"\r\n", closes=False, opts=dict(max_payload=100)),
    case("small-max-over", b"PUB f 101\r\n", MAX_PAYLOAD, opts=dict(max_payload=100)),
    case("payload-longer-than-declared", b"SUB foo 1\r\nPUB foo 2\r\nhiX\r\n", UNKNOWN),
    case("payload-shorter-than-declared", b"PUB foo 3\r\nhi\r\nPING\r\n", UNKNOWN),
    case("payload-bare-lf", b"PUB foo 2\r\nhi\nPING\r\n", UNKNOWN),
    case("zero-payload-then-junk", b"PUB foo 0\r\nxx\r\n", UNKNOWN),
    case("hpub-payload-longer", b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhiX\r\n", UNKNOWN,
         connect=QUIET_HDR),
    case("payload-split-wrong-end", [b"PUB foo 2\r\nh", 0.05, b"i", 0.05, b"\rX"], UNKNOWN),
]

SIZES_AND_ARGS = [
    case("pub-size-negative", b"PUB foo -1\r\n", SILENT),
    case("pub-size-nonnumeric", b"PUB foo bar\r\n", SILENT),
    case("pub-size-10-digits", b"PUB foo 0000000002\r\nhi\r\n", SILENT),
    case("pub-size-plus", b"PUB foo +2\r\nhi\r\n", SILENT),
    case("pub-size-hex", b"PUB foo 0x2\r\nhi\r\n", SILENT),
    case("pub-size-exp", b"PUB foo 1e3\r\n", SILENT),
    case("pub-size-arabic-digit", b"PUB foo \xd9\xa1\r\na\r\n", SILENT),
    case("pub-1-arg", b"PUB foo\r\n", SILENT),
    case("pub-4-args", b"PUB foo bar baz 2\r\nhi\r\n", SILENT),
    case("pub-only-spaces", b"PUB  \r\n", SILENT),
    case("hpub-1-arg", b"HPUB foo\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-2-args", b"HPUB foo 12\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-5-args", b"HPUB foo a b 12 14\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-only-spaces", b"HPUB \r\n", SILENT, connect=QUIET_HDR),
    case("hpub-hdr-size-bad", b"HPUB foo x 12\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-hdr-size-negative", b"HPUB foo -1 12\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-total-size-bad", b"HPUB foo 12 x\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-total-10-digits", b"HPUB foo 12 0000000014\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-hdr-larger-than-total", b"HPUB foo 14 12\r\n", SILENT, connect=QUIET_HDR),
    case("hpub-without-headers-negotiated", b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", SILENT),
    case("hpub-before-connect", b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", SILENT, connect=None),
    case("hpub-no-header-support", b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n", SILENT,
         connect=QUIET_HDR, opts=dict(no_header_support=True)),
    case("sub-1-arg", b"SUB foo\r\n", SILENT),
    case("sub-4-args", b"SUB foo q 1 x\r\n", SILENT),
    case("sub-only-spaces", b"SUB \r\n", SILENT),
    case("unsub-3-args", b"UNSUB 1 2 3\r\n", SILENT),
    case("unsub-only-spaces", b"UNSUB \r\n", SILENT),
    # UNSUB's max is not validated: a bad one means "remove now".
    case("unsub-bad-max", b"SUB foo 1\r\nUNSUB 1 x\r\nPUB foo 1\r\na\r\n", b"", closes=False),
    case("unsub-negative-max", b"SUB foo 1\r\nUNSUB 1 -5\r\nPUB foo 1\r\na\r\n", b"", closes=False),
    # SUB and UNSUB also split on CR; PUB and HPUB split on spaces and tabs only.
    case("sub-cr-separator", b"SUB foo\r1\r\nPUB foo 1\r\na\r\n", b"MSG foo 1 1\r\na\r\n",
         closes=False),
    case("unsub-cr-separator", b"SUB foo 1\r\nUNSUB 1\r5\r\n", b"", closes=False),
    case("pub-cr-inside-line", b"SUB foo 1\r\nPUB foo\r1\r\na\r\n", SILENT),
    case("hpub-cr-inside-line", b"HPUB foo\r0 2\r\nhi\r\n", SILENT, connect=QUIET_HDR),
    case("pub-vertical-tab", b"SUB foo 1\r\nPUB foo\x0b1\r\na\r\n", SILENT),
    case("pub-form-feed", b"SUB foo 1\r\nPUB foo\x0c1\r\na\r\n", SILENT),
    case("hpub-vertical-tab", b"HPUB foo 0\x0b2\r\nhi\r\n", SILENT, connect=QUIET_HDR),
    case("sub-vertical-tab", b"SUB foo\x0b1\r\n", SILENT),
    case("sub-form-feed", b"SUB foo\x0c1\r\n", SILENT),
    case("unsub-vertical-tab", b"SUB foo 1\r\nUNSUB 1\x0b5\r\n", b"", closes=False),
    case("pub-0x1c", b"PUB foo\x1c1\r\na\r\n", SILENT),
    case("sub-nbsp", b"SUB foo\xa01\r\n", SILENT),
]

CONNECT = [
    case("empty", b"CONNECT\r\n", SILENT, connect=None),
    case("space-only", b"CONNECT \r\n", SILENT, connect=None),
    case("bad-json", b"CONNECT {bad}\r\n", SILENT, connect=None),
    case("single-quotes", b"CONNECT {'verbose':false}\r\n", SILENT, connect=None),
    case("trailing-comma", b'CONNECT {"a":1,}\r\n', SILENT, connect=None),
    case("trailing-data", b'CONNECT {"verbose":true} x\r\n', SILENT, connect=None),
    case("two-objects", b"CONNECT {}{}\r\n", SILENT, connect=None),
    case("array", b"CONNECT []\r\n", SILENT, connect=None),
    case("number", b"CONNECT 5\r\n", SILENT, connect=None),
    case("string", b'CONNECT "x"\r\n', SILENT, connect=None),
    case("connectx", b"CONNECTX\r\n", SILENT, connect=None),
    case("python-true", b'CONNECT {"verbose":True}\r\n', SILENT, connect=None),
    case("verbose-string", b'CONNECT {"verbose":"yes"}\r\n', SILENT, connect=None),
    case("verbose-string-true", b'CONNECT {"verbose":"true"}\r\n', SILENT, connect=None),
    case("verbose-number", b'CONNECT {"verbose":1}\r\n', SILENT, connect=None),
    case("echo-number", b'CONNECT {"echo":0}\r\n', SILENT, connect=None),
    case("headers-string", b'CONNECT {"headers":"true"}\r\n', SILENT, connect=None),
    case("tls-required-string", b'CONNECT {"tls_required":"x"}\r\n', SILENT, connect=None),
    case("protocol-string", b'CONNECT {"protocol":"1"}\r\n', SILENT, connect=None),
    case("protocol-float", b'CONNECT {"protocol":1.5}\r\n', SILENT, connect=None),
    case("protocol-1.0", b'CONNECT {"protocol":1.0}\r\n', SILENT, connect=None),
    case("protocol-1e0", b'CONNECT {"protocol":1e0}\r\n', SILENT, connect=None),
    case("protocol-bool", b'CONNECT {"protocol":true}\r\n', SILENT, connect=None),
    case("name-number", b'CONNECT {"name":5}\r\n', SILENT, connect=None),
    case("user-number", b'CONNECT {"user":1}\r\n', SILENT, connect=None),
    case("auth-token-bool", b'CONNECT {"auth_token":true}\r\n', SILENT, connect=None),
    case("sig-number", b'CONNECT {"sig":5}\r\n', SILENT, connect=None),
    case("jwt-array", b'CONNECT {"jwt":[]}\r\n', SILENT, connect=None),
    # Accepted.
    case("null-field", b'CONNECT {"verbose":null}\r\n', OK, closes=False, connect=None),
    case("unknown-keys", b'CONNECT {"foo":[1,2],"bar":{"x":1},"a":1e999}\r\n', OK, closes=False,
         connect=None),
    case("escaped-key", b'CONNECT {"verb\\u006fse":false}\r\n', b"", closes=False, connect=None),
    case("lone-surrogate", b'CONNECT {"name":"\\ud800"}\r\n', OK, closes=False, connect=None),
    case("nested-100", b'CONNECT {"a":' + b"[" * 100 + b"]" * 100 + b"}\r\n", OK, closes=False,
         connect=None),
    case("surrounding-spaces", b'CONNECT   {"verbose":false}   \r\n', b"", closes=False,
         connect=None),
    case("partial-connect-then-spaces", [b"CONNECT " + b" " * 5000, 0.05, b"{}\r\n"], OK,
         closes=False, connect=None),
    case("account-empty", b'CONNECT {"account":"","new_account":false}\r\n', OK, closes=False,
         connect=None),
    case("export-permissions", b'CONNECT {"export":{"allow":["a"]}}\r\n', OK, closes=False,
         connect=None),
    case("import-null", b'CONNECT {"import":null}\r\n', OK, closes=False, connect=None),
    # Go decodes CONNECT with encoding/json into its struct: gnatsd does the same (gojson).
    case("null", b"CONNECT null\r\n", OK, closes=False, connect=None),
    case("import-number", b'CONNECT {"import":5}\r\n', SILENT, connect=None),
    case("import-allow-string", b'CONNECT {"import":{"allow":"a"}}\r\n', SILENT, connect=None),
    case("nan", b'CONNECT {"a":NaN}\r\n', SILENT, connect=None),
    case("infinity", b'CONNECT {"a":Infinity}\r\n', SILENT, connect=None),
    case("utf8-bom", b"CONNECT \xef\xbb\xbf{}\r\n", SILENT, connect=None),
    case("utf16", b"CONNECT " + "{}".encode("utf-16-le") + b"\r\n", SILENT, connect=None),
    case("invalid-utf8-string", b'CONNECT {"name":"\xff"}\r\n', OK, closes=False, connect=None),
    case("protocol-2^63", b'CONNECT {"protocol":9223372036854775808}\r\n', SILENT, connect=None),
    case("nested-1000", b'CONNECT {"a":' + b"[" * 1000 + b"]" * 1000 + b"}\r\n", OK,
         closes=False, connect=None),
    # Bad protocol numbers and other CONNECT-level refusals.
    case("protocol-2", b'CONNECT {"protocol":2}\r\n', err("invalid client protocol"), connect=None),
    case("protocol-negative", b'CONNECT {"protocol":-1}\r\n', err("invalid client protocol"),
         connect=None),
    case("protocol-2^40", b'CONNECT {"protocol":1099511627776}\r\n', err("invalid client protocol"),
         connect=None),
    case("protocol-last-wins", b'CONNECT {"protocol":1,"protocol":3}\r\n',
         err("invalid client protocol"), connect=None),
    case("no-responders-without-headers", b'CONNECT {"no_responders":true}\r\n',
         err("no responders requires headers support"), connect=None),
    case("no-responders-headers-false", b'CONNECT {"no_responders":true,"headers":false}\r\n',
         err("no responders requires headers support"), connect=None),
    case("no-responders-server-without-headers", b'CONNECT {"no_responders":true,"headers":true}\r\n',
         err("no responders requires headers support"), connect=None,
         opts=dict(no_header_support=True)),
    case("no-responders-on-second-connect", b'CONNECT {"no_responders":true}\r\n',
         err("no responders requires headers support")),
    case("account", b'CONNECT {"account":"A"}\r\n', AUTH_VIOLATION, connect=None),
    case("new-account", b'CONNECT {"new_account":true}\r\n', AUTH_VIOLATION, connect=None),
]

INFO = [
    case("valid", b'INFO {"server_id":"x","zzz":[1]}\r\n', b"", closes=False),
    case("no-separator", b"INFO{}\r\n", b"", closes=False),
    case("null", b"INFO null\r\n", b"", closes=False),
    case("empty", b"INFO\r\n", SILENT),
    case("infox", b"INFOX\r\n", SILENT),
    case("bad-json", b"INFO {a\r\n", SILENT),
    case("array", b"INFO []\r\n", SILENT),
    case("port-string", b'INFO {"port":"x"}\r\n', SILENT),
    case("nested-1000", b"INFO " + b"[" * 1000 + b"]" * 1000 + b"\r\n", SILENT),
]

AUTH = dict(authorization="s3cr3t", auth_timeout=2.0)
AUTH_CASES = [
    case("not-connect", b"PING\r\n", AUTH_VIOLATION, connect=None, opts=AUTH),
    case("partial-sub", b"SUB foo", AUTH_VIOLATION, connect=None, opts=AUTH),
    case("c-garbage", b"Cxyz\r\n", UNKNOWN, connect=None, opts=AUTH),
    # With auth on, any first byte other than C/c is an Authorization Violation at once.
    case("bad-json", b"CONNECT {bad}\r\n", SILENT, connect=None, opts=AUTH),
    case("garbage", b"xyz\r\n", AUTH_VIOLATION, connect=None, opts=AUTH),
    case("nul", b"\x00", AUTH_VIOLATION, connect=None, opts=AUTH),
    case("leading-space", b" CONNECT {}\r\n", AUTH_VIOLATION, connect=None, opts=AUTH),
    case("empty-line", b"\r\n", AUTH_VIOLATION, connect=None, opts=AUTH),
    case("partial-p", b"P", AUTH_VIOLATION, connect=None, opts=AUTH),
]

def _prefixed(prefix, cases):
    return [pytest.param(*p.values, id=prefix + p.id, marks=p.marks) for p in cases]


ALL_CASES = GARBAGE + CONTROL_LINE + PAYLOAD + SIZES_AND_ARGS
CONNECT_INFO_CASES = (_prefixed("connect-", CONNECT) + _prefixed("info-", INFO)
                      + _prefixed("auth-", AUTH_CASES))


@pytest.mark.parametrize("send, expect, closes, connect, opts", ALL_CASES)
def test_bad_input(make_server, send, expect, closes, connect, opts):
    run_case(make_server, send, expect, closes, connect, opts)


@pytest.mark.parametrize("send, expect, closes, connect, opts", CONNECT_INFO_CASES)
def test_bad_connect_info_auth(make_server, send, expect, closes, connect, opts):
    run_case(make_server, send, expect, closes, connect, opts)


# ---------------------------------------------------------------------------------------------
# One server, many bad clients in a row
# ---------------------------------------------------------------------------------------------

def test_one_server_survives_every_closing_case(server):
    """All closing cases above (that gnatsd already gets right) against one server in a row."""
    baseline = server.num_clients()
    for param in ALL_CASES + CONNECT_INFO_CASES:
        send, expect, closes, connect, opts = param.values
        if opts or not closes or param.marks:
            continue
        c = open_conn(server)
        try:
            if connect:
                c.send(connect)
            for part in send if isinstance(send, list) else [send]:
                if not isinstance(part, float):
                    c.send(part)
            if expect == SILENT:
                send_ping_after_close(c)
            expect_close(c, expect)
        finally:
            c.close()
    assert_server_healthy(server, baseline)


# ---------------------------------------------------------------------------------------------
# Disconnects at awkward moments
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("data", [
    b"SUB fo",
    b"CONNECT {\"verbose\":",
    QUIET + b"PUB foo 10",
    QUIET + b"PUB foo 10\r",
    QUIET + b"PUB foo 10\r\n",
    QUIET + b"PUB foo 10\r\nabc",
    QUIET + b"PUB foo 3\r\nabc",
    QUIET + b"PUB foo 3\r\nabc\r",
    QUIET_HDR + b"HPUB foo 12 14\r\nNATS/1",
    QUIET + b"SUB foo 1\r\nSUB bar q 2\r\nPUB foo 1000\r\n" + b"x" * 500,
], ids=["mid-sub", "mid-connect", "mid-pub-line", "pub-line-cr", "pub-line-done",
        "mid-payload", "payload-no-crlf", "payload-cr", "mid-hpub-headers", "with-subs"])
@pytest.mark.parametrize("how", ["close", "reset"])
def test_disconnect_mid_operation(server, data, how):
    baseline = server.num_clients()
    watcher = open_conn(server)  # a subscriber that must see nothing from the broken publisher
    watcher.send(QUIET + b"SUB foo 1\r\nSUB bar 2\r\n" + PING)
    assert upto_pong(watcher) == b""
    c = open_conn(server)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.send(data)
    check_for(5, lambda: server.num_clients() == baseline + 2)
    if how == "reset":
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    check_for(5, lambda: server.num_clients() == baseline + 1)
    watcher.send(PING)
    assert upto_pong(watcher) == b""
    watcher.close()
    assert_server_healthy(server, baseline)
    assert client_subs(server) == 0


def test_half_closed_client_gets_its_answers(server):
    """A client that shuts down its sending side still gets what it asked for, then is closed."""
    c = open_conn(server)
    c.send(QUIET + b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")
    c.sock.shutdown(socket.SHUT_WR)
    assert c.read_all_until_closed() == b"MSG foo 1 2\r\nhi\r\nPONG\r\n"
    c.close()
    assert_server_healthy(server)


# ---------------------------------------------------------------------------------------------
# 1,000 misbehaving connections beside a good client
# ---------------------------------------------------------------------------------------------

def _read_until_closed(s):
    data = b""
    while True:
        try:
            chunk = s.recv(4096)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def _misbehave(port, kind, keep, errors):
    """Open one misbehaving connection. Kinds 0 and 5 are closed by the server; the others are
    left open in `keep` as (kind, socket) for the test to dribble into and drop later."""
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=20)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if kind == 0:  # garbage: Unknown Protocol Operation and a close
            s.sendall(b"\xffgarbage\x00\r\n")
            data = _read_until_closed(s)
            if not data.endswith(UNKNOWN):
                errors.append(("garbage", data[-80:]))
            s.close()
            return
        if kind == 5:  # an oversized line, still incomplete
            s.sendall(b"SUB " + b"a" * 5000)
            data = _read_until_closed(s)
            if not data.endswith(MCL):
                errors.append(("mcl", data[-80:]))
            s.close()
            return
        if kind == 1:  # half a payload; dropped later
            s.sendall(QUIET + b"PUB good.x 100\r\nabc")
        elif kind == 2:  # half a control line; reset later
            s.sendall(b"SUB foo")
        elif kind == 3:  # slowloris: a control line that never ends
            s.sendall(QUIET + b"SUB slow")
        else:  # slowloris: a payload that never ends
            s.sendall(QUIET + b"PUB good.slow 1000\r\n0123456789")
        keep.append((kind, s))
    except OSError as e:
        errors.append((kind, repr(e)))


def test_thousand_misbehaving_connections(make_server):
    server = make_server(max_connections=5000)
    good = open_conn(server)
    good.send(QUIET + b"SUB good.* 1\r\n" + PING)
    assert upto_pong(good) == b""
    keep, errors = [], []
    n = 1000
    kinds = [i % 6 for i in range(n)]
    random.Random(1).shuffle(kinds)
    held = sum(1 for k in kinds if k in (1, 2, 3, 4))
    counter = [0]

    def check_good():
        # The good client publishes and receives, in order, exactly its own messages.
        i = counter[0]
        counter[0] += 1
        payload = b"%d" % i
        good.send(b"PUB good.%d %d\r\n%s\r\n" % (i, len(payload), payload) + PING)
        assert upto_pong_no_pings(good, timeout=10) == (
            b"MSG good.%d 1 %d\r\n%s\r\n" % (i, len(payload), payload))

    def opener(part):
        for kind in part:
            _misbehave(server.port, kind, keep, errors)

    threads = [threading.Thread(target=opener, args=(kinds[i::10],), daemon=True)
               for i in range(10)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        check_good()
    for t in threads:
        t.join(30)
    assert errors == []
    assert len(keep) == held
    # All the held connections are open at once, and harmless.
    check_for(10, lambda: server.num_clients() == held + 1)
    check_good()
    for kind, s in keep:
        if kind in (3, 4):
            s.sendall(b"x")  # one more slow byte
    check_good()
    # Now they all go: some with FIN, some with RST, while the good client keeps working.

    def dropper(part):
        for kind, s in part:
            if kind == 2:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()

    threads = [threading.Thread(target=dropper, args=(keep[i::4],), daemon=True) for i in range(4)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        check_good()
    for t in threads:
        t.join(30)
    check_for(10, lambda: server.num_clients() == 1)
    for _ in range(20):
        check_good()
    assert counter[0] >= 23
    good.close()
    assert_server_healthy(server)
    assert client_subs(server) == 0


# ---------------------------------------------------------------------------------------------
# Slow consumers
# ---------------------------------------------------------------------------------------------

def _stalled_subscriber(port, subject, sid=b"1"):
    """A subscriber with a tiny receive buffer that will stop reading after its SUB is in."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    c = RawConn.__new__(RawConn)
    c.sock, c.buf, c.timeout = s, b"", 5.0
    c.expect(INFO_RE)
    c.send(QUIET + b"SUB " + subject + b" " + sid + b"\r\n" + PING)
    assert upto_pong(c) == b""
    return c


def _find_client(server, sid):
    for client in list(server.clients.values()):
        if sid in client.subs:
            return client
    return None


@pytest.mark.parametrize("msg_size, write_deadline", [(4096, 0.5), (60000, 30.0)],
                         ids=["write-deadline", "max-pending"])
def test_slow_consumer_is_cut_off(make_server, msg_size, write_deadline):
    max_pending = 256 * 1024
    server = make_server(max_pending=max_pending, max_payload=64 * 1024,
                         write_deadline=write_deadline)
    slow = _stalled_subscriber(server.port, b"flood", b"slowsid")
    client = _find_client(server, b"slowsid")
    assert client is not None
    pub = open_conn(server)
    pub.send(QUIET + b"SUB after 1\r\n" + PING)
    assert upto_pong(pub) == b""
    # Sample the slow client's pending bytes while the publisher floods.
    peak = [0]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], client.pb)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    payload = b"x" * msg_size
    msg = b"PUB flood %d\r\n%s\r\n" % (msg_size, payload)
    total = 0
    try:
        deadline = time.monotonic() + 30
        while server.slow_consumers == 0:
            assert time.monotonic() < deadline, "no slow consumer detected"
            pub.send(msg * max(1, 65536 // len(msg)))
            total += 65536
            assert total < 64 * 1024 * 1024
    finally:
        stop.set()
        sampler.join(5)
    assert server.slow_consumers == 1
    # The publisher keeps working.
    pub.send(b"PUB after 2\r\nok\r\n" + PING)
    assert upto_pong_no_pings(pub, timeout=10) == b"MSG after 1 2\r\nok\r\n"
    # The slow consumer is gone: no -ERR, just a close after whatever the kernel had buffered.
    data = slow.read_all_until_closed(timeout=10)
    assert b"-ERR" not in data
    slow.close()
    check_for(5, lambda: server.num_clients() == 1)
    # Memory stayed bounded: never far over max_pending (one message at most).
    assert peak[0] <= max_pending + msg_size + 64, peak[0]
    pub.close()
    assert_server_healthy(server)
