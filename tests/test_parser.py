"""Tests for gnatsd/parser.py, ported from nats-server `server/parser_test.go` (v2.9.10).

The owner is `DummyClient` (Go: dummyClient), a recording fake: it subclasses Parser, records
every hook call, and parses PUB/HPUB/SUB/UNSUB/CONNECT arguments the way the real client
does, so that a malformed operation fails here as it fails on the wire. No socket, no hub.

Every valid case runs the three ways of h11's `tr()` (tests/test_io.py): the whole buffer;
split at every offset (each 2-way split, and one byte per call); and followed by the next
operation's bytes, which must be processed too. Go checks `c.state` between bytes; the
equivalent here is that the calls recorded so far are always a prefix of the final ones.
"""
from __future__ import annotations

import json
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gnatsd.const import MAX_CONTROL_LINE_SIZE
from gnatsd.errors import (
    ERR_AUTH_VIOLATION,
    ERR_MAX_CONTROL_LINE,
    ERR_UNKNOWN_OP,
    ClosedState,
    ProtocolError,
)
from gnatsd.conn import parse_size
from gnatsd.parser import Parser


class DummyClient(Parser):
    """Go: dummyClient. Records hook calls as tuples; raises where the real client would close."""

    def __init__(self, mcl=MAX_CONTROL_LINE_SIZE, auth_pending=False):
        self.mcl = mcl
        self.auth_pending = auth_pending
        self.calls = []

    @staticmethod
    def _json(arg):
        try:
            json.loads(arg)
        except ValueError as e:  # bad JSON closes the connection (client.go: processConnect)
            raise ProtocolError(str(e)) from None

    def process_connect(self, arg):
        self._json(arg)
        self.calls.append(("connect", bytes(arg)))
        self.auth_pending = False

    def process_info(self, arg):
        self._json(arg)
        self.calls.append(("info", bytes(arg)))

    def process_pub(self, args):
        if len(args) == 2:
            (subject, szb), reply = args, None
        elif len(args) == 3:
            subject, reply, szb = args
        else:
            raise ProtocolError(f"processPub Parse Error: {args!r}")
        size = parse_size(szb)
        if size < 0:
            raise ProtocolError(f"processPub Bad or Missing Size: {args!r}")
        self.calls.append(("pub", subject, reply, szb))
        return size

    def process_hpub(self, args):
        if len(args) == 3:
            (subject, hdb, szb), reply = args, None
        elif len(args) == 4:
            subject, reply, hdb, szb = args
        else:
            raise ProtocolError(f"processHeaderPub Parse Error: {args!r}")
        hdr, size = parse_size(hdb), parse_size(szb)
        if hdr < 0 or size < 0 or hdr > size:
            raise ProtocolError(f"processHeaderPub Bad Size: {args!r}")
        self.calls.append(("hpub", subject, reply, hdb, szb))
        return size

    def process_sub(self, args):
        if len(args) == 2:
            (subject, sid), queue = args, None
        elif len(args) == 3:
            subject, queue, sid = args
        else:
            raise ProtocolError(f"processSub Parse Error: {args!r}")
        self.calls.append(("sub", subject, queue, sid))

    def process_unsub(self, args):
        if len(args) == 1:
            self.calls.append(("unsub", args[0], None))
        elif len(args) == 2:
            self.calls.append(("unsub", args[0], args[1]))
        else:
            raise ProtocolError(f"processUnsub Parse Error: {args!r}")

    def process_ping(self):
        self.calls.append(("ping",))

    def process_pong(self):
        self.calls.append(("pong",))

    def process_err(self, arg):
        self.calls.append(("err", bytes(arg)))

    def process_inbound_msg(self, msg):
        self.calls.append(("msg", bytes(msg)))


PING = ("ping",)
TRAILER = b"PING\r\n"  # the next op, for the "followed by" runs


def feed(chunks, **kw):
    c = DummyClient(**kw)
    for chunk in chunks:
        c.parse(chunk)
    return c.calls


def assert_prefix(calls, expected, where):
    assert calls == expected[: len(calls)], f"{where}: {calls!r} is not a prefix of {expected!r}"


def tr(data, expected, **kw):
    """Parse `data` whole, split in two at every offset, one byte per call, and followed by
    another op, always recording `expected`."""
    assert feed([data], **kw) == expected, "whole"
    full = data + TRAILER
    full_expected = expected + [PING]
    assert feed([full], **kw) == full_expected, "followed by the next op"
    for i in range(len(full) + 1):
        c = DummyClient(**kw)
        c.parse(full[:i])
        assert_prefix(c.calls, full_expected, f"split at {i}, first half")
        c.parse(full[i:])
        assert c.calls == full_expected, f"split at {i}"
    c = DummyClient(**kw)
    for i in range(len(full)):
        c.parse(full[i : i + 1])
        assert_prefix(c.calls, full_expected, f"one byte per call, after byte {i}")
    assert c.calls == full_expected, "one byte per call"
    # and the op alone, byte by byte: complete after its last byte, not before.
    c = DummyClient(**kw)
    for i in range(len(data)):
        c.parse(data[i : i + 1])
    assert c.calls == expected, "op alone, one byte per call"


def fails(chunks, err=None, **kw):
    """Feed `chunks` until a parse call raises ProtocolError (one must). Returns (exc, calls)."""
    c = DummyClient(**kw)
    with pytest.raises(ProtocolError) as info:
        for chunk in chunks:
            c.parse(chunk)
    if err is not None:
        assert info.value.err == err
    return info.value, c.calls


# -- ports of parser_test.go -----------------------------------------------------------------


def test_parse_ping():
    c = DummyClient()
    ping = b"PING\r\n"
    for i in range(len(ping) - 1):
        c.parse(ping[i : i + 1])
        assert c.calls == []
    c.parse(ping[-1:])
    assert c.calls == [PING]
    c.parse(ping)
    assert c.calls == [PING, PING]
    # Should tolerate spaces
    c.parse(b"PING  \r")
    assert c.calls == [PING, PING]
    c.parse(b"  \n")
    assert c.calls == [PING, PING, PING]
    c.parse(b"PING  \r  \n")
    assert c.calls == [PING] * 4


def test_parse_pong():
    c = DummyClient()
    pong = b"PONG\r\n"
    for i in range(len(pong) - 1):
        c.parse(pong[i : i + 1])
        assert c.calls == []
    c.parse(pong[-1:])
    assert c.calls == [("pong",)]
    c.parse(b"PONG  \r")
    c.parse(b"  \n")
    c.parse(b"PONG  \r  \n")
    assert c.calls == [("pong",)] * 3


def test_parse_ok():
    c = DummyClient()
    ok = b"+OK\r\n"
    for i in range(len(ok)):
        c.parse(ok[i : i + 1])
    assert c.calls == []
    tr(b"+OK\r\n", [])
    tr(b"+ok junk\r\n", [])


def test_parse_connect():
    arg = b'{"verbose":false,"pedantic":true,"tls_required":false}'
    tr(b"CONNECT " + arg + b"\r\n", [("connect", arg)])


@pytest.mark.parametrize(
    "line,arg",
    [
        (b"CONNECT {}\r\n", b"{}"),
        (b"CONNECT{}\r\n", b"{}"),  # no separator needed
        (b"CONNECT \t {}\r\n", b"{}"),
        (b"connect {}\n", b"{}"),
        (b'CoNnEcT {"name":"a b"}\r\n', b'{"name":"a b"}'),
    ],
)
def test_parse_connect_forms(line, arg):
    tr(line, [("connect", arg)])


def test_parse_sub():
    c = DummyClient()
    c.parse(b"SUB foo 1\r")
    assert c.calls == []
    c.parse(b"\n")
    assert c.calls == [("sub", b"foo", None, b"1")]


@pytest.mark.parametrize(
    "line,call",
    [
        (b"SUB foo 1\r\n", ("sub", b"foo", None, b"1")),
        (b"SUB foo.bar.* bar 22\r\n", ("sub", b"foo.bar.*", b"bar", b"22")),
        (b"sub foo 1\r\n", ("sub", b"foo", None, b"1")),
        (b"SuB foo 1\r\n", ("sub", b"foo", None, b"1")),
        (b"SUB\tfoo\t1\r\n", ("sub", b"foo", None, b"1")),
        (b"SUB \t foo \t q \t 1 \t\r\n", ("sub", b"foo", b"q", b"1")),
        (b"SUB foo 1\n", ("sub", b"foo", None, b"1")),
        (b"SUB > 1\r\n", ("sub", b">", None, b"1")),
    ],
)
def test_parse_sub_forms(line, call):
    tr(line, [call])


@pytest.mark.parametrize(
    "line,call",
    [
        (b"UNSUB 1\r\n", ("unsub", b"1", None)),
        (b"UNSUB 1 5\r\n", ("unsub", b"1", b"5")),
        (b"unsub\t1\t5\r\n", ("unsub", b"1", b"5")),
        (b"UnSuB   22  \r\n", ("unsub", b"22", None)),
        (b"UNSUB 1\n", ("unsub", b"1", None)),
    ],
)
def test_parse_unsub(line, call):
    tr(line, [call])


def test_parse_pub():
    c = DummyClient()
    c.parse(b"PUB foo 5\r\nhello\r")
    assert c.calls == [("pub", b"foo", None, b"5")]
    c.parse(b"\n")
    assert c.calls == [("pub", b"foo", None, b"5"), ("msg", b"hello\r\n")]

    tr(b"PUB foo 5\r\nhello\r\n", [("pub", b"foo", None, b"5"), ("msg", b"hello\r\n")])
    tr(
        b"PUB foo.bar INBOX.22 11\r\nhello world\r\n",
        [("pub", b"foo.bar", b"INBOX.22", b"11"), ("msg", b"hello world\r\n")],
    )
    # This is the case when data has more bytes than expected by size.
    _, calls = fails([b"PUB foo.bar 11\r\nhello world hello world\r"], ERR_UNKNOWN_OP)
    assert calls == [("pub", b"foo.bar", None, b"11")]  # the payload is never delivered


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"PUB foo 0\r\n\r\n", [("pub", b"foo", None, b"0"), ("msg", b"\r\n")]),
        (b"PUB foo 002\r\nok\r\n", [("pub", b"foo", None, b"002"), ("msg", b"ok\r\n")]),
        # Payloads may contain CRLF, and look like ops.
        (b"PUB foo 6\r\nhe\r\nlo\r\n", [("pub", b"foo", None, b"6"), ("msg", b"he\r\nlo\r\n")]),
        (b"PUB foo 4\r\n\r\n\r\n\r\n", [("pub", b"foo", None, b"4"), ("msg", b"\r\n\r\n\r\n")]),
        (b"PUB foo 6\r\nPING\r\n\r\n", [("pub", b"foo", None, b"6"), ("msg", b"PING\r\n\r\n")]),
        (b"PUB foo 3\r\n\n\r\r\r\n", [("pub", b"foo", None, b"3"), ("msg", b"\n\r\r\r\n")]),
        # Case, tabs and CR-less control lines.
        (b"pub foo 2\r\nok\r\n", [("pub", b"foo", None, b"2"), ("msg", b"ok\r\n")]),
        (b"pUb foo 2\r\nok\r\n", [("pub", b"foo", None, b"2"), ("msg", b"ok\r\n")]),
        (b"PUB\tfoo\t2\r\nok\r\n", [("pub", b"foo", None, b"2"), ("msg", b"ok\r\n")]),
        (b"PUB foo 2\nok\r\n", [("pub", b"foo", None, b"2"), ("msg", b"ok\r\n")]),
        (b"PUB  foo  bar  2  \r\nok\r\n", [("pub", b"foo", b"bar", b"2"), ("msg", b"ok\r\n")]),
        (b"PUB foo.* 2\r\nok\r\n", [("pub", b"foo.*", None, b"2"), ("msg", b"ok\r\n")]),
    ],
)
def test_parse_pub_forms(data, expected):
    tr(data, expected)


def test_parse_pub_payload_bytes():
    # Every byte value passes through the payload untouched.
    payload = bytes(range(256))
    data = b"PUB foo 256\r\n" + payload + b"\r\n"
    tr(data, [("pub", b"foo", None, b"256"), ("msg", payload + b"\r\n")])


def test_parse_pub_size_overflow():
    # https://www.twistlock.com/labs-blog/finding-dos-vulnerability-nats-go-fuzz-cve-2019-13126/
    fails([b"PUB foo 3333333333333333333333333333333333333333333333333333333333333333\r\n"])


PUB_ARGS = [
    ("a 2", b"a", None, 2),
    ("a 222", b"a", None, 222),
    ("foo 22", b"foo", None, 22),
    (" foo 22", b"foo", None, 22),
    ("foo 22 ", b"foo", None, 22),
    ("foo   22", b"foo", None, 22),
    (" foo 22 ", b"foo", None, 22),
    (" foo   22 ", b"foo", None, 22),
    ("foo bar 22", b"foo", b"bar", 22),
    (" foo bar 22", b"foo", b"bar", 22),
    ("foo bar 22 ", b"foo", b"bar", 22),
    ("foo  bar  22", b"foo", b"bar", 22),
    (" foo bar 22 ", b"foo", b"bar", 22),
    ("  foo   bar  22  ", b"foo", b"bar", 22),
    ("  foo   bar  2222  ", b"foo", b"bar", 2222),
    ("  foo     2222  ", b"foo", None, 2222),
    ("a\t2", b"a", None, 2),
    ("a\t222", b"a", None, 222),
    ("foo\t22", b"foo", None, 22),
    ("\tfoo\t22", b"foo", None, 22),
    ("foo\t22\t", b"foo", None, 22),
    ("foo\t\t\t22", b"foo", None, 22),
    ("\tfoo\t22\t", b"foo", None, 22),
    ("\tfoo\t\t\t22\t", b"foo", None, 22),
    ("foo\tbar\t22", b"foo", b"bar", 22),
    ("\tfoo\tbar\t22", b"foo", b"bar", 22),
    ("foo\tbar\t22\t", b"foo", b"bar", 22),
    ("foo\t\tbar\t\t22", b"foo", b"bar", 22),
    ("\tfoo\tbar\t22\t", b"foo", b"bar", 22),
    ("\t \tfoo\t \t \tbar\t \t22\t \t", b"foo", b"bar", 22),
    ("\t\tfoo\t\t\tbar\t\t2222\t\t", b"foo", b"bar", 2222),
    ("\t \tfoo\t \t \t\t\t2222\t \t", b"foo", None, 2222),
]


@pytest.mark.parametrize("arg,subject,reply,size", PUB_ARGS, ids=[repr(a[0]) for a in PUB_ARGS])
def test_parse_pub_arg(arg, subject, reply, size):
    line = b"PUB " + arg.encode() + b"\r\n"
    payload = bytes(i % 251 for i in range(size))
    data = line + payload + b"\r\n"
    expected = [("pub", subject, reply, str(size).encode()), ("msg", payload + b"\r\n")]
    tr(data, expected)


def test_parse_pub_bad_size():
    # Go: with mpay set, a 16-digit size is a parse error (parseSize takes at most 9 digits).
    fails([b"PUB foo 2222222222222222\r\n"])
    fails([b"PUB foo -1\r\n"])
    fails([b"PUB foo +1\r\n"])
    fails([b"PUB foo 1x\r\n"])
    fails([b"PUB foo 1234567890\r\n"])
    tr(b"PUB foo 000000001\r\nx\r\n", [("pub", b"foo", None, b"000000001"), ("msg", b"x\r\n")])


def test_parse_header_pub():
    tr(
        b"HPUB foo 12 17\r\nname:derek\r\nHELLO\r\n",
        [("hpub", b"foo", None, b"12", b"17"), ("msg", b"name:derek\r\nHELLO\r\n")],
    )
    tr(
        b"HPUB foo INBOX.22 12 17\r\nname:derek\r\nHELLO\r\n",
        [("hpub", b"foo", b"INBOX.22", b"12", b"17"), ("msg", b"name:derek\r\nHELLO\r\n")],
    )
    tr(
        b"HPUB foo INBOX.22 0 5\r\nHELLO\r\n",
        [("hpub", b"foo", b"INBOX.22", b"0", b"5"), ("msg", b"HELLO\r\n")],
    )
    tr(
        b"hpub\tfoo\t24\t24\r\nNATS/1.0\r\nA: B\r\nC: D\r\n\r\n\r\n",
        [("hpub", b"foo", None, b"24", b"24"), ("msg", b"NATS/1.0\r\nA: B\r\nC: D\r\n\r\n\r\n")],
    )
    c = DummyClient()
    c.parse(b"HPUB foo 12 17\r\nname:derek\r\nHELLO\r")
    assert c.calls == [("hpub", b"foo", None, b"12", b"17")]


HPUB_ARGS = [
    ("a 2 4", b"a", None, 2, 4),
    ("a 22 222", b"a", None, 22, 222),
    ("foo 3 22", b"foo", None, 3, 22),
    (" foo   1 22", b"foo", None, 1, 22),
    ("foo 0   22 ", b"foo", None, 0, 22),
    ("foo  0     22", b"foo", None, 0, 22),
    (" foo 1 22 ", b"foo", None, 1, 22),
    (" foo   3 22 ", b"foo", None, 3, 22),
    ("foo bar 1 22", b"foo", b"bar", 1, 22),
    (" foo bar 11 22", b"foo", b"bar", 11, 22),
    ("foo bar 11 22 ", b"foo", b"bar", 11, 22),
    ("foo  bar  11  22", b"foo", b"bar", 11, 22),
    (" foo bar  11 22 ", b"foo", b"bar", 11, 22),
    ("  foo   bar  11   22  ", b"foo", b"bar", 11, 22),
    ("  foo   bar  22   2222  ", b"foo", b"bar", 22, 2222),
    ("  foo 1    2222  ", b"foo", None, 1, 2222),
    ("a\t2\t22", b"a", None, 2, 22),
    ("a\t2\t\t222", b"a", None, 2, 222),
    ("foo\t2 22", b"foo", None, 2, 22),
    ("\tfoo\t11\t  22", b"foo", None, 11, 22),
    ("foo\t11\t22\t", b"foo", None, 11, 22),
    ("foo\t\t\t11 22", b"foo", None, 11, 22),
    ("\tfoo\t11\t \t 22\t", b"foo", None, 11, 22),
    ("\tfoo\t\t\t11 22\t", b"foo", None, 11, 22),
    ("foo\tbar\t2 22", b"foo", b"bar", 2, 22),
    ("\tfoo\tbar\t11\t22", b"foo", b"bar", 11, 22),
    ("foo\tbar\t11\t\t22\t ", b"foo", b"bar", 11, 22),
    ("foo\t\tbar\t\t11\t\t\t22", b"foo", b"bar", 11, 22),
    ("\tfoo\tbar\t11\t22\t", b"foo", b"bar", 11, 22),
    ("\t \tfoo\t \t \tbar\t \t11\t 22\t \t", b"foo", b"bar", 11, 22),
    ("\t\tfoo\t\t\tbar\t\t22\t\t\t2222\t\t", b"foo", b"bar", 22, 2222),
    ("\t \tfoo\t \t \t\t\t11\t\t 2222\t \t", b"foo", None, 11, 2222),
]


@pytest.mark.parametrize("arg,subject,reply,hdr,size", HPUB_ARGS, ids=[repr(a[0]) for a in HPUB_ARGS])
def test_parse_header_pub_arg(arg, subject, reply, hdr, size):
    line = b"HPUB " + arg.encode() + b"\r\n"
    payload = bytes(i % 251 for i in range(size))
    data = line + payload + b"\r\n"
    expected = [("hpub", subject, reply, str(hdr).encode(), str(size).encode()), ("msg", payload + b"\r\n")]
    tr(data, expected)


@pytest.mark.parametrize(
    "line,call",
    [
        (b'INFO {"server_id":"x"}\r\n', ("info", b'{"server_id":"x"}')),
        (b"info{}\r\n", ("info", b"{}")),
        (b"-ERR 'Unknown Protocol Operation'\r\n", ("err", b"'Unknown Protocol Operation'")),
        (b"-err\t'x'\n", ("err", b"'x'")),
    ],
)
def test_parse_info_and_err(line, call):
    tr(line, [call])


def test_parse_msg_space():
    # Go: "MSG <SPC>" is an error for a client (routes only), and so is anything with an M.
    fails([b"MSG \r\n"], ERR_UNKNOWN_OP)
    fails([b"M"], ERR_UNKNOWN_OP)


# Go: TestShouldFail, plus the client-only cases from TestParseMsgSpace and the Special case
# for MSG (only routes may send it). `err` is the -ERR the parser itself sends; None where the
# op's handler (the owner) refuses the arguments, which Go closes without an -ERR.
SHOULD_FAIL = [
    ("xxx", ERR_UNKNOWN_OP),
    ("Px", ERR_UNKNOWN_OP),
    ("PIx", ERR_UNKNOWN_OP),
    ("PINx", ERR_UNKNOWN_OP),
    (" PING", ERR_UNKNOWN_OP),
    ("POx", ERR_UNKNOWN_OP),
    ("PONx", ERR_UNKNOWN_OP),
    ("+x", ERR_UNKNOWN_OP),
    ("+Ox", ERR_UNKNOWN_OP),
    ("-x", ERR_UNKNOWN_OP),
    ("-Ex", ERR_UNKNOWN_OP),
    ("-ERx", ERR_UNKNOWN_OP),
    ("-ERRx", ERR_UNKNOWN_OP),
    ("Cx", ERR_UNKNOWN_OP),
    ("COx", ERR_UNKNOWN_OP),
    ("CONx", ERR_UNKNOWN_OP),
    ("CONNx", ERR_UNKNOWN_OP),
    ("CONNEx", ERR_UNKNOWN_OP),
    ("CONNECx", ERR_UNKNOWN_OP),
    ("CONNECT \r\n", None),
    ("PUx", ERR_UNKNOWN_OP),
    ("PUB foo\r\n", None),
    ("PUB  \r\n", None),
    ("PUB foo bar       \r\n", None),
    ("PUB foo 2\r\nok \r\n", ERR_UNKNOWN_OP),
    ("PUB foo 2\r\nok\r \n", ERR_UNKNOWN_OP),
    ("Sx", ERR_UNKNOWN_OP),
    ("SUx", ERR_UNKNOWN_OP),
    ("SUB\r\n", ERR_UNKNOWN_OP),
    ("SUB  \r\n", None),
    ("SUB foo\r\n", None),
    ("SUB foo bar baz 22\r\n", None),
    ("Ux", ERR_UNKNOWN_OP),
    ("UNx", ERR_UNKNOWN_OP),
    ("UNSx", ERR_UNKNOWN_OP),
    ("UNSUx", ERR_UNKNOWN_OP),
    ("UNSUBx", ERR_UNKNOWN_OP),
    ("UNSUBUNSUB 1\r\n", ERR_UNKNOWN_OP),
    ("UNSUB_2\r\n", ERR_UNKNOWN_OP),
    ("UNSUB_UNSUB_UNSUB 2\r\n", ERR_UNKNOWN_OP),
    ("UNSUB_\t2\r\n", ERR_UNKNOWN_OP),
    ("UNSUB\r\n", ERR_UNKNOWN_OP),
    ("UNSUB \r\n", None),
    ("UNSUB          \t       \r\n", None),
    ("Ix", ERR_UNKNOWN_OP),
    ("INx", ERR_UNKNOWN_OP),
    ("INFx", ERR_UNKNOWN_OP),
    ("INFO  \r\n", None),
    # Ops for routes and leafnodes only.
    ("M", ERR_UNKNOWN_OP),
    ("Mx", ERR_UNKNOWN_OP),
    ("MSx", ERR_UNKNOWN_OP),
    ("MSGx", ERR_UNKNOWN_OP),
    ("MSG  \r\n", ERR_UNKNOWN_OP),
    ("MSG foo 1 2\r\nok\r\n", ERR_UNKNOWN_OP),
    ("HMSG foo 1 2 2\r\nok\r\n", ERR_UNKNOWN_OP),
    ("RMSG $G foo 2\r\nok\r\n", ERR_UNKNOWN_OP),
    ("RS+ $G foo\r\n", ERR_UNKNOWN_OP),
    ("RS- $G foo\r\n", ERR_UNKNOWN_OP),
    ("LS+ $G foo\r\n", ERR_UNKNOWN_OP),
    ("LMSG $G foo 2\r\nok\r\n", ERR_UNKNOWN_OP),
    ("A+ foo\r\n", ERR_UNKNOWN_OP),
    ("A- foo\r\n", ERR_UNKNOWN_OP),
    # Whitespace before the op, empty lines, ops glued to their arguments.
    ("\r\n", ERR_UNKNOWN_OP),
    ("\n", ERR_UNKNOWN_OP),
    ("  PING\r\n", ERR_UNKNOWN_OP),
    ("\tSUB foo 1\r\n", ERR_UNKNOWN_OP),
    ("PUBLISH foo 2\r\nok\r\n", ERR_UNKNOWN_OP),
    ("PUB\r\n", ERR_UNKNOWN_OP),
    ("HPUB\r\n", ERR_UNKNOWN_OP),
    ("HPUBfoo 1 2\r\n", ERR_UNKNOWN_OP),
    ("-ERR\r\n", ERR_UNKNOWN_OP),
    # The payload must be followed by exactly CRLF.
    ("PUB foo 2\r\nok\nPING\r\n", ERR_UNKNOWN_OP),
    ("PUB foo 2\r\nokk\r\n", ERR_UNKNOWN_OP),
    ("PUB foo 2\r\nok\n\r", ERR_UNKNOWN_OP),
    ("PUB foo 2\nok\n\n", ERR_UNKNOWN_OP),
    ("PUB foo 0\r\nx\r\n", ERR_UNKNOWN_OP),
    ("HPUB foo 2 4\r\nokok\n\n", ERR_UNKNOWN_OP),
    # Bad sizes and argument counts, refused by the handler.
    ("PUB foo -1\r\n", None),
    ("PUB foo bar baz 2\r\n", None),
    ("HPUB foo 2\r\n", None),
    ("HPUB foo 10 8\r\n", None),
    ("HPUB foo bar baz 1 2\r\n", None),
    ("UNSUB 1 2 3\r\n", None),
    ("CONNECT {\r\n", None),
    ("CONNECT\r\n", None),
]


@pytest.mark.parametrize("proto,err", SHOULD_FAIL, ids=[repr(p) for p, _ in SHOULD_FAIL])
def test_should_fail(proto, err):
    data = proto.encode()
    fails([data], err)
    # However it arrives: some read raises, and the same error.
    for i in range(1, len(data)):
        fails([data[:i], data[i:]], err)
    fails([data[i : i + 1] for i in range(len(data))], err)


def test_should_fail_does_not_process_later_ops():
    # Nothing after the bad op runs, even when it arrived in the same read.
    _, calls = fails([b"SUB foo 1\r\nxxx\r\nPING\r\n"], ERR_UNKNOWN_OP)
    assert calls == [("sub", b"foo", None, b"1")]
    _, calls = fails([b"PUB foo 2\r\nokk\r\nPING\r\n"], ERR_UNKNOWN_OP)
    assert calls == [("pub", b"foo", None, b"2")]


def test_unknown_op_error_details():
    e, _ = fails([b"FOO bar\r\n"], ERR_UNKNOWN_OP)
    assert e.reason == ClosedState.ProtocolViolation
    assert "FOO bar" in str(e)


# -- max control line -----------------------------------------------------------------------


def test_max_control_line():
    # Go: TestMaxControlLine, client kind: mcl 8 is enforced on a partial line and a full one.
    pub = b"PUB foo.bar.baz 2\r\nok\r\n"
    e, calls = fails([pub[:14]], ERR_MAX_CONTROL_LINE, mcl=8)
    assert e.reason == ClosedState.MaxControlLineExceeded
    assert calls == []
    e, calls = fails([pub], ERR_MAX_CONTROL_LINE, mcl=8)
    assert e.reason == ClosedState.MaxControlLineExceeded
    assert calls == []


@pytest.mark.parametrize(
    "line,call",
    [
        (b"SUB fooo 123\r\n", ("sub", b"fooo", None, b"123")),  # arg "fooo 123": 8 bytes
        (b"SUB  \t fooo 123\r\n", ("sub", b"fooo", None, b"123")),  # leading whitespace is not arg
        (b"UNSUB 12345678\r\n", ("unsub", b"12345678", None)),
        (b"CONNECT {\"a\":1}\r\n", ("connect", b'{"a":1}')),
        (b"-ERR 12345678\r\n", ("err", b"12345678")),
    ],
)
def test_max_control_line_exactly_at_limit(line, call):
    tr(line, [call], mcl=8)


def test_max_control_line_exactly_at_limit_pub():
    tr(b"PUB fooooo 2\r\nok\r\n", [("pub", b"fooooo", None, b"2"), ("msg", b"ok\r\n")], mcl=8)
    tr(b"PUB  fooooo 2\r\nok\r\n", [("pub", b"fooooo", None, b"2"), ("msg", b"ok\r\n")], mcl=8)
    tr(b"HPUB foo 1 2\r\nok\r\n", [("hpub", b"foo", None, b"1", b"2"), ("msg", b"ok\r\n")], mcl=8)


@pytest.mark.parametrize(
    "line",
    [
        b"SUB foooo 123\r\n",
        b"UNSUB 123456789\r\n",
        b"PUB foooooo 2\r\nok\r\n",
        b"HPUB foooo 1 2\r\nok\r\n",
        b"CONNECT {\"abc\":1}\r\n",
        b"INFO {\"abc\":1}\r\n",
        b"-ERR 123456789\r\n",
    ],
)
def test_max_control_line_one_over(line):
    data = line
    fails([data], ERR_MAX_CONTROL_LINE, mcl=8)
    for i in range(1, len(data)):
        fails([data[:i], data[i:]], ERR_MAX_CONTROL_LINE, mcl=8)


def test_max_control_line_default_limit():
    # The default 4096: `SUB ` plus 4096 argument bytes is accepted, 4097 refused
    # (client-protocol.md §4.5, checked against the 2.9.10 binary).
    ok_subject = b"x" * (MAX_CONTROL_LINE_SIZE - 2)
    c = DummyClient()
    c.parse(b"SUB " + ok_subject + b" 1\r\n")
    assert c.calls == [("sub", ok_subject, None, b"1")]
    fails([b"SUB " + ok_subject + b" 12\r\n"], ERR_MAX_CONTROL_LINE)
    pub_subject = b"x" * (MAX_CONTROL_LINE_SIZE - 2)
    c = DummyClient()
    c.parse(b"PUB " + pub_subject + b" 2\r\nok\r\n")
    assert c.calls == [("pub", pub_subject, None, b"2"), ("msg", b"ok\r\n")]
    fails([b"PUB " + pub_subject + b"x 2\r\nok\r\n"], ERR_MAX_CONTROL_LINE)


def test_max_control_line_partial_rejected_before_lf():
    # An over-long line is refused as soon as a read leaves it over the limit, without
    # waiting for its LF (Go: the check after the loop in parse; memory exhaustion).
    c = DummyClient(mcl=8)
    c.parse(b"SUB ")
    for i in range(8):
        c.parse(b"a")  # 8 argument bytes so far: at the limit, still fine
    with pytest.raises(ProtocolError) as info:
        c.parse(b"a")
    assert info.value.err == ERR_MAX_CONTROL_LINE
    # Default limit, a big read with no LF at all.
    fails([b"SUB " + b"x" * 5000], ERR_MAX_CONTROL_LINE)
    fails([b"PUB ", b"x" * 5000], ERR_MAX_CONTROL_LINE)
    fails([b"CONNECT {" + b"x" * 5000], ERR_MAX_CONTROL_LINE)


def test_max_control_line_does_not_apply_to_ping_pong_ok():
    junk = b"x" * 100
    tr(b"PING" + junk + b"\r\n", [PING], mcl=8)
    tr(b"PONG " + junk + b"\r\n", [("pong",)], mcl=8)
    tr(b"+OK " + junk + b"\r\n", [], mcl=8)


def test_max_control_line_counts_trailing_whitespace():
    # Go: SUB_ARG's arg is buf[as:i-drop], trailing blanks included: "foo 1    " is 9 > 8.
    fails([b"SUB foo 1    \r\n"], ERR_MAX_CONTROL_LINE, mcl=8)


def test_max_control_line_partial_blank_padding_rejected():
    # Go checks len(argBuf) > mcl after every read (parse, after the loop); argBuf holds the
    # blanks. gnatsd: `SUB foo 1` plus 2,000 reads of 4,096 spaces buffered 8 MiB with no
    # error and took 43 s of CPU (each read re-joins the buffer).
    fails([b"SUB foo 1", b" " * 5000], ERR_MAX_CONTROL_LINE)
    fails([b"CONNECT {"] + [b"\t" * 1000] * 5, ERR_MAX_CONTROL_LINE)



def test_blank_padding_after_op_is_not_buffered():
    # Go skips blanks between an op and its argument without buffering them (OP_SUB_SPC), and
    # without an error; gnatsd must not grow its partial-line buffer either.
    c = DummyClient(mcl=8)
    c.parse(b"SUB ")
    for _ in range(1000):
        c.parse(b" " * 100)
    assert len(c._pbuf) < 16
    c.parse(b"foo 1\r\n")
    assert c.calls == [("sub", b"foo", None, b"1")]


def test_payload_bad_terminator_refused_once_complete():
    # gnatsd checks the two bytes after the payload once both have arrived.
    fails([b"PUB foo 2\r\nok\n", b"P"], ERR_UNKNOWN_OP)
    fails([b"PUB foo 2\r\nokk", b"\r\n"], ERR_UNKNOWN_OP)


def test_payload_bad_terminator_refused_at_once():
    fails([b"PUB foo 2\r\nok\n"], ERR_UNKNOWN_OP)


# -- PING junk, pipelining, big payloads ----------------------------------------------------


@pytest.mark.parametrize(
    "line",
    [
        b"PINGxyz junk\r\n",
        b"PING\n",
        b"ping\r\n",
        b"PiNg\r\n",
        b"PING \t \r\n",
        b"PING\rjunk\r\n",
        b"PINGPONG\r\n",
    ],
)
def test_parse_ping_junk_ignored(line):
    tr(line, [PING])


def test_parse_ping_long_junk_split():
    # Go accepts any amount of junk after PING (a 5000-byte one was checked on the binary).
    junk = b"j" * 100_000
    c = DummyClient()
    data = b"PING " + junk + b"\r\nPONG\r\n"
    for i in range(0, len(data), 1000):
        c.parse(data[i : i + 1000])
    assert c.calls == [PING, ("pong",)]


def test_parse_pipelined():
    ops = []
    expected = []
    for i in range(500):
        sid = str(i).encode()
        ops.append(b"SUB foo." + sid + b" " + sid + b"\r\n")
        expected.append(("sub", b"foo." + sid, None, sid))
        payload = b"m" * (i % 7) + b"\r\n" * (i % 2)
        ops.append(b"PUB foo." + sid + b" " + str(len(payload)).encode() + b"\r\n" + payload + b"\r\n")
        expected += [("pub", b"foo." + sid, None, str(len(payload)).encode()), ("msg", payload + b"\r\n")]
        ops.append(b"ping\r\n" if i % 3 == 0 else b"UNSUB " + sid + b"\r\n")
        expected.append(PING if i % 3 == 0 else ("unsub", sid, None))
    data = b"".join(ops)
    assert feed([data]) == expected
    # The same stream in reads of a few odd sizes.
    for size in (1, 2, 3, 7, 64, 1000, 4096):
        assert feed([data[i : i + size] for i in range(0, len(data), size)]) == expected, size


def test_parse_1mib_payload_in_1kib_chunks():
    size = 1024 * 1024
    payload = bytes(i % 253 for i in range(size))
    data = b"PUB foo " + str(size).encode() + b"\r\n" + payload + b"\r\nPING\r\n"
    c = DummyClient()
    for i in range(0, len(data), 1024):
        c.parse(data[i : i + 1024])
    assert c.calls == [("pub", b"foo", None, str(size).encode()), ("msg", payload + b"\r\n"), PING]


def test_parse_big_payload_not_quadratic():
    # 8 MiB in 4 KiB reads is ~2,000 parse calls. Keeping every read and joining once is a
    # few milliseconds; re-joining the growing buffer on each read copies ~8 GiB (seconds).
    size = 8 * 1024 * 1024
    payload = b"x" * size
    data = b"PUB foo " + str(size).encode() + b"\r\n" + payload + b"\r\nPING\r\n"
    chunks = [data[i : i + 4096] for i in range(0, len(data), 4096)]
    c = DummyClient()
    start = time.perf_counter()
    for chunk in chunks:
        c.parse(chunk)
    elapsed = time.perf_counter() - start
    assert [call[0] for call in c.calls] == ["pub", "msg", "ping"]
    assert len(c.calls[1][1]) == size + 2
    assert elapsed < 1.0, f"8 MiB in 4 KiB reads took {elapsed:.2f}s"


# -- authentication pending -----------------------------------------------------------------


def test_auth_pending_first_op_must_be_connect():
    for data in (b"PING\r\n", b"PUB foo 2\r\nok\r\n", b"SUB foo 1\r\n", b"pub foo 2\r\nok\r\n"):
        e, calls = fails([data], ERR_AUTH_VIOLATION, auth_pending=True)
        assert e.reason == ClosedState.AuthenticationViolation
        assert calls == []
    # A partial non-CONNECT op is refused before its line ends.
    fails([b"SUB foo"], ERR_AUTH_VIOLATION, auth_pending=True)


def test_auth_pending_connect_then_ops_in_same_read():
    # Go re-reads awaitingAuth after CONNECT: later ops in the same read are allowed.
    data = b"CONNECT {}\r\nPUB foo 2\r\nok\r\nPING\r\n"
    expected = [("connect", b"{}"), ("pub", b"foo", None, b"2"), ("msg", b"ok\r\n"), PING]
    tr(data, expected, auth_pending=True)
    tr(b"connect{}\r\n", [("connect", b"{}")], auth_pending=True)


def test_auth_pending_garbage_is_auth_violation():
    # Go parse(), OP_START: `if b != 'C' && b != 'c' { if authSet { ... goto authErr } }`.
    fails([b"xxx\r\n"], ERR_AUTH_VIOLATION, auth_pending=True)


# -- argument splitting ---------------------------------------------------------------------


def test_pub_args_split_on_space_and_tab_only():
    # Go: PUB foo\x0bbar 2 publishes to the subject "foo\x0bbar" with no reply.
    assert feed([b"PUB foo\x0bbar 2\r\nok\r\n"]) == [("pub", b"foo\x0bbar", None, b"2"), ("msg", b"ok\r\n")]


def test_sub_args_split_on_space_tab_cr_lf_only():
    # Go: SUB foo\x0cbar 1 subscribes to "foo\x0cbar" (no queue group) with sid 1.
    assert feed([b"SUB foo\x0cbar 1\r\n"]) == [("sub", b"foo\x0cbar", None, b"1")]


# -- property test: random op sequences, random splits --------------------------------------

token = st.text(alphabet="abcxyz09_-*>$", min_size=1, max_size=5).map(str.encode)
subject = st.lists(token, min_size=1, max_size=3).map(b".".join)
sep = st.sampled_from([b" ", b"\t", b"  ", b" \t "])
eol = st.sampled_from([b"\r\n", b"\n"])
payload = st.one_of(st.binary(max_size=24), st.sampled_from([b"", b"\r\n", b"PING\r\n", b"\r", b"\n\r\n"]))
junk = st.binary(max_size=8).map(lambda b: b.replace(b"\n", b""))


def cased(draw, name):
    """The op name in random upper/lower case, letter by letter."""
    flips = draw(st.lists(st.booleans(), min_size=len(name), max_size=len(name)))
    return bytes((ch | 0x20) if f and 65 <= ch <= 90 else ch for ch, f in zip(name, flips))


@st.composite
def an_op(draw):
    """(wire bytes, expected calls) for one valid client op."""
    kinds = ["pub", "hpub", "sub", "unsub", "ping", "pong", "ok", "connect", "info", "err"]
    kind = draw(st.sampled_from(kinds))
    if kind == "pub":
        subj = draw(subject)
        reply = draw(st.one_of(st.none(), subject))
        body = draw(payload)
        szb = str(len(body)).encode()
        parts = [subj] + ([reply] if reply else []) + [szb]
        line = cased(draw, b"PUB") + draw(sep) + draw(sep).join(parts)
        return line + draw(eol) + body + b"\r\n", [("pub", subj, reply, szb), ("msg", body + b"\r\n")]
    if kind == "hpub":
        subj = draw(subject)
        reply = draw(st.one_of(st.none(), subject))
        hdrs = b"NATS/1.0\r\n" + draw(st.sampled_from([b"", b"A: b\r\n"])) + b"\r\n"
        body = hdrs + draw(payload)
        hdb, szb = str(len(hdrs)).encode(), str(len(body)).encode()
        parts = [subj] + ([reply] if reply else []) + [hdb, szb]
        line = cased(draw, b"HPUB") + draw(sep) + draw(sep).join(parts)
        return line + draw(eol) + body + b"\r\n", [("hpub", subj, reply, hdb, szb), ("msg", body + b"\r\n")]
    if kind == "sub":
        subj = draw(subject)
        queue = draw(st.one_of(st.none(), token))
        sid = draw(token)
        parts = [subj] + ([queue] if queue else []) + [sid]
        trailing = draw(st.sampled_from([b"", b" ", b"\t"]))
        line = cased(draw, b"SUB") + draw(sep) + draw(sep).join(parts) + trailing
        return line + draw(eol), [("sub", subj, queue, sid)]
    if kind == "unsub":
        sid = draw(token)
        mx = draw(st.one_of(st.none(), st.integers(1, 999).map(lambda n: str(n).encode())))
        line = cased(draw, b"UNSUB") + draw(sep) + sid + ((draw(sep) + mx) if mx else b"")
        return line + draw(eol), [("unsub", sid, mx)]
    if kind in ("ping", "pong"):
        return cased(draw, kind.upper().encode()) + draw(junk) + draw(eol), [(kind,)]
    if kind == "ok":
        return cased(draw, b"+OK") + draw(junk) + draw(eol), []
    if kind in ("connect", "info"):
        keys = st.sampled_from(["verbose", "name", "a b"])
        obj = draw(st.dictionaries(keys, st.one_of(st.booleans(), st.text(max_size=5)), max_size=3))
        arg = json.dumps(obj).encode()
        lead = draw(st.sampled_from([b"", b" ", b"\t "]))
        return cased(draw, kind.upper().encode()) + lead + arg + draw(eol), [(kind, arg)]
    text = b"'" + draw(st.text(alphabet="abc XYZ", max_size=10)).encode().strip() + b"'"
    return cased(draw, b"-ERR") + draw(sep) + text + draw(eol), [("err", text)]


@st.composite
def op_stream(draw):
    ops = draw(st.lists(an_op(), min_size=1, max_size=12))
    data = b"".join(wire for wire, _ in ops)
    expected = [call for _, calls in ops for call in calls]
    cuts = sorted(draw(st.lists(st.integers(0, len(data)), max_size=10)))
    return data, expected, cuts


@settings(max_examples=200, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(op_stream())
def test_parse_random_ops_split_anywhere(stream):
    data, expected, cuts = stream
    assert feed([data]) == expected
    bounds = [0] + cuts + [len(data)]
    chunks = [data[a:b] for a, b in zip(bounds, bounds[1:])]
    c = DummyClient()
    for chunk in chunks:
        c.parse(chunk)
        assert_prefix(c.calls, expected, "random split")
    assert c.calls == expected
    # and one byte per call.
    c = DummyClient()
    for i in range(len(data)):
        c.parse(data[i : i + 1])
    assert c.calls == expected
