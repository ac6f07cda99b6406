"""The client protocol on the wire, byte for byte, against an in-process gnatsd.

Every expectation here was checked against the Go nats-server 2.9.10 binary with raw sockets
(see /work/shared/reference/client-protocol.md).

Conventions: `c.send(...)` then `upto_pong(c)` returns every byte the server sent before the
PONG that answers our trailing PING, so "nothing else was sent" is part of each assertion.
"""
from __future__ import annotations

import errno
import json
import re
import socket
import time

import pytest

from conftest import INFO_RE, PONG_RE, RawConn, check_for

pytestmark = pytest.mark.timeout(60)

OK = b"+OK\r\n"
PONG = b"PONG\r\n"
PING = b"PING\r\n"
_UPTO_PONG = re.compile(rb"\A(.*?)PONG\r\n", re.S)


def upto_pong(c, timeout=None):
    """Everything the server sent before the next PONG (the PONG is consumed)."""
    return c.expect(_UPTO_PONG, timeout=timeout).group(1)


def exchange(c, data):
    """Send `data` and a PING; return what came back before the PONG."""
    if isinstance(data, str):
        data = data.encode()
    c.send(data + PING)
    return upto_pong(c)


def connect_line(**fields):
    return b"CONNECT " + json.dumps(fields).encode() + b"\r\n"


def err(text):
    return b"-ERR '" + text.encode() + b"'\r\n"


def open_conn(server, timeout=5.0):
    """A raw connection that has read its INFO; returns (conn, info dict, raw INFO line)."""
    c = RawConn(server.port, timeout=timeout)
    m = c.expect(INFO_RE)
    return c, json.loads(m.group(1)), m.group(0)


def assert_closed(c, expect=b""):
    """The server sends exactly `expect` and then closes the connection."""
    assert c.read_all_until_closed() == expect


# ---------------------------------------------------------------------------------------------
# INFO
# ---------------------------------------------------------------------------------------------

GO_INFO_KEYS = ["server_id", "server_name", "version", "proto", "go", "host", "port", "headers",
                "max_payload", "client_id", "client_ip"]


def test_info_line_format(server):
    c, info, line = open_conn(server)
    try:
        # INFO, one space, compact JSON, one space, CRLF (Go joins the three parts with spaces).
        assert line.startswith(b"INFO {")
        assert line.endswith(b"} \r\n")
        assert line.count(b"\r\n") == 1
        body = line[len(b"INFO "):-len(b" \r\n")]
        assert b": " not in body and b", " not in body  # Go encoding/json: no whitespace
        assert list(info) == GO_INFO_KEYS  # Go's struct order, nothing extra on a bare server
    finally:
        c.close()


def test_info_fields(server):
    c, info, _ = open_conn(server)
    try:
        sid = info["server_id"]
        assert len(sid) == 56 and sid[0] == "N"
        assert re.fullmatch(r"[A-Z2-7]{56}", sid)  # a base32 nkey
        assert info["server_name"] == sid  # no server_name configured
        assert re.fullmatch(r"\d+\.\d+\.\d+", info["version"])
        assert info["proto"] == 1
        assert isinstance(info["go"], str) and info["go"]
        assert info["host"] == "127.0.0.1"
        assert info["port"] == server.port  # the real port although started with -1
        assert info["headers"] is True
        assert info["max_payload"] == 1048576
        assert isinstance(info["client_id"], int) and info["client_id"] > 0
        assert info["client_ip"] == "127.0.0.1"
        assert "auth_required" not in info and "tls_required" not in info and "nonce" not in info
    finally:
        c.close()


def test_info_client_ids_are_distinct(server):
    conns = [open_conn(server) for _ in range(3)]
    try:
        ids = [info["client_id"] for _, info, _ in conns]
        assert len(set(ids)) == 3 and all(i > 0 for i in ids)
        assert ids == sorted(ids)
        assert len({info["server_id"] for _, info, _ in conns}) == 1
    finally:
        for c, _, _ in conns:
            c.close()


def test_info_reflects_options(make_server):
    s = make_server(max_payload=4096, no_header_support=True, authorization="tok")
    c, info, _ = open_conn(s)
    try:
        assert info["max_payload"] == 4096
        assert info["headers"] is False
        assert info["auth_required"] is True
        keys = list(info)
        assert keys.index("headers") < keys.index("auth_required") < keys.index("max_payload")
    finally:
        c.close()


def test_no_info_after_first_pong_on_bare_server(server, raw_conn):
    # 2.9.10 sends an INFO after the first PONG only if connect_urls or max_payload changed.
    c = raw_conn(server, connect=False)
    assert exchange(c, connect_line(verbose=False, protocol=1)) == b""
    assert exchange(c, b"") == b""


# ---------------------------------------------------------------------------------------------
# CONNECT decoding
# ---------------------------------------------------------------------------------------------

def test_connect_defaults_verbose_pedantic_echo(server, raw_conn):
    c = raw_conn(server, connect=False)
    assert exchange(c, b"CONNECT {}\r\n") == OK  # verbose defaults to true
    # pedantic defaults to true (the message is still delivered), echo defaults to true.
    assert exchange(c, b"SUB foo.* 1\r\nPUB foo.* 2\r\nhi\r\n") == (
        OK + err("Invalid Publish Subject") + OK + b"MSG foo.* 1 2\r\nhi\r\n")


def test_connect_keys_are_case_insensitive(server, raw_conn):
    c = raw_conn(server, connect=False)
    assert exchange(c, b'CONNECT {"VERBOSE":false,"Pedantic":false,"eCHO":false}\r\n') == b""
    assert exchange(c, b"SUB foo.* 1\r\nPUB foo.* 2\r\nhi\r\n") == b""  # no +OK, -ERR, echo
    other = raw_conn(server, verbose=False)
    other.send(b"SUB foo.* 1\r\n")
    other.ping_pong()
    assert exchange(c, b"PUB foo.* 2\r\nhi\r\n") == b""
    assert exchange(other, b"") == b"MSG foo.* 1 2\r\nhi\r\n"


def test_connect_without_separator_and_in_lower_case(server, raw_conn):
    c = raw_conn(server, connect=False)
    assert exchange(c, b"CONNECT{}\r\n") == OK
    assert exchange(c, b"connect\t{}\r\n") == OK
    assert exchange(c, b"CoNnEcT {\"verbose\":false}\r\n") == b""


def test_connect_unknown_keys_ignored_null_keeps_default(server, raw_conn):
    c = raw_conn(server, connect=False)
    assert exchange(c, b'CONNECT {"foo":[1,{"x":2}],"bar":"baz","verbose":null,"name":"n",'
                       b'"lang":"python","version":"1.0","tls_required":false}\r\n') == OK


def test_connect_duplicate_key_last_wins(server, raw_conn):
    c = raw_conn(server, connect=False)
    assert exchange(c, b'CONNECT {"verbose":true,"verbose":false}\r\n') == b""


def test_second_connect_decodes_over_the_first(server, raw_conn):
    c = raw_conn(server, connect=False)
    assert exchange(c, b'CONNECT {"verbose":false,"pedantic":false}\r\n') == b""
    assert exchange(c, b"SUB foo 1\r\n") == b""
    # The second CONNECT omits pedantic: it keeps false. verbose is turned back on.
    assert exchange(c, b'CONNECT {"verbose":true,"name":"again"}\r\n') == OK
    assert exchange(c, b"PUB foo.* 1\r\na\r\n") == OK
    # A third CONNECT that omits verbose keeps it on; the subscription survived throughout.
    assert exchange(c, b'CONNECT {"name":"third"}\r\n') == OK
    assert exchange(c, b"PUB foo 1\r\nb\r\n") == OK + b"MSG foo 1 1\r\nb\r\n"


def test_ops_work_without_connect_when_auth_is_off(server, raw_conn):
    c = raw_conn(server, connect=False)
    # Defaults apply: verbose and pedantic on, headers off.
    assert exchange(c, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n") == OK + OK + b"MSG foo 1 2\r\nhi\r\n"


def test_protocol_zero_and_one_accepted(server, raw_conn):
    for proto in (0, 1):
        c = raw_conn(server, connect=False)
        assert exchange(c, connect_line(protocol=proto)) == OK


# ---------------------------------------------------------------------------------------------
# Verbose +OK rules
# ---------------------------------------------------------------------------------------------

def test_verbose_ok_after_connect_sub_unsub_pub(server, raw_conn):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"SUB foo 1\r\n") == OK
    # +OK for the PUB comes before the MSG the publisher gets itself.
    assert exchange(c, b"PUB foo 2\r\nhi\r\n") == OK + b"MSG foo 1 2\r\nhi\r\n"
    assert exchange(c, b"UNSUB 1\r\n") == OK
    assert exchange(c, b"PUB foo 2\r\nhi\r\n") == OK


def test_verbose_ok_for_duplicate_sid_and_first_sub_stays(server, raw_conn):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"SUB foo 1\r\nSUB bar 1\r\n") == OK + OK
    assert exchange(c, b"PUB bar 1\r\na\r\nPUB foo 1\r\nb\r\n") == OK + OK + b"MSG foo 1 1\r\nb\r\n"


def test_verbose_ok_for_unknown_sid_unsub(server, raw_conn):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"UNSUB 99\r\nUNSUB 99 5\r\nUNSUB 98 x\r\n") == OK + OK + OK


def test_verbose_no_ok_for_ping(server, raw_conn):
    c = raw_conn(server, verbose=True)
    c.send(PING + PING)
    assert c.read_exact(12) == PONG + PONG
    assert exchange(c, b"") == b""


def test_verbose_ok_for_hpub(server, raw_conn):
    c = raw_conn(server, verbose=True, headers=True)
    assert exchange(c, b"SUB foo 1\r\nHPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n") == (
        OK + OK + b"HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n")


def test_verbose_invalid_subject_sends_no_ok(server, raw_conn):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"SUB foo..bar 1\r\n") == err("Invalid Subject")


def test_verbose_invalid_publish_subject_err_then_ok(server, raw_conn):
    c = raw_conn(server, verbose=True, pedantic=True)
    assert exchange(c, b"PUB foo.> 1\r\na\r\n") == err("Invalid Publish Subject") + OK


# ---------------------------------------------------------------------------------------------
# PUB / SUB / UNSUB / MSG formats
# ---------------------------------------------------------------------------------------------

def test_msg_format_plain_and_with_reply(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo 1\r\nPUB foo 5\r\nhello\r\nPUB foo bar.baz 5\r\nworld\r\n") == (
        b"MSG foo 1 5\r\nhello\r\nMSG foo 1 bar.baz 5\r\nworld\r\n")


def test_size_digits_echoed_verbatim(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo 1\r\nPUB foo 002\r\nhi\r\nPUB foo r 000000002\r\nhi\r\n") == (
        b"MSG foo 1 002\r\nhi\r\nMSG foo 1 r 000000002\r\nhi\r\n")


def test_zero_length_payload(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo 1\r\nPUB foo 0\r\n\r\nPUB foo 000000000\r\n\r\n") == (
        b"MSG foo 1 0\r\n\r\nMSG foo 1 000000000\r\n\r\n")


def test_sid_and_subject_bytes_are_copied(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB f\xc3\xa9.\x00x my-sid.X\r\nPUB f\xc3\xa9.\x00x 1\r\na\r\n") == (
        b"MSG f\xc3\xa9.\x00x my-sid.X 1\r\na\r\n")


def test_separators_tabs_spaces_and_bare_lf(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB \t foo \t q \t 1 \t\r\nPUB\tfoo\t \tr\t2 \t\r\nhi\r\n") == (
        b"MSG foo 1 r 2\r\nhi\r\n")
    # LF alone ends a control line (not a payload).
    c.send(b"sub bar 2\npub bar 1\na\r\nping\n")
    assert upto_pong(c) == b"MSG bar 2 1\r\na\r\n"


def test_lower_and_mixed_case_ops(server, raw_conn):
    c = raw_conn(server, connect=False)
    c.send(b"connect {}\r\nsub foo 1\r\npUb foo 2\r\nhi\r\nunsub 1\r\npInG\r\n")
    assert upto_pong(c) == OK + OK + OK + b"MSG foo 1 2\r\nhi\r\n" + OK


def test_ping_pong_and_ok_ignore_trailing_junk(server, raw_conn):
    c = raw_conn(server)
    c.send(b"PINGxyz junk\r\nPONG whatever\r\n+OK junk\r\nPING" + b"x" * 5000 + b"\r\n")
    assert c.read_exact(12) == PONG + PONG  # no control-line limit on PING's junk
    assert exchange(c, b"") == b""


def test_client_info_is_ignored(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b'INFO {"server_id":"x","foo":1}\r\nINFO{}\r\n') == b""


def test_payload_containing_crlf(server, raw_conn):
    c = raw_conn(server)
    payload = b"\r\nPUB foo 1\r\nx\r\n\r\n"
    assert exchange(c, b"SUB foo 1\r\nPUB foo %d\r\n%s\r\n" % (len(payload), payload)) == (
        b"MSG foo 1 %d\r\n%s\r\n" % (len(payload), payload))


def test_payload_containing_binary(server, raw_conn):
    c = raw_conn(server)
    payload = bytes(range(256))
    c.send(b"SUB bin 1\r\nPUB bin 256\r\n" + payload + b"\r\nPING\r\n")
    c.expect(rb"MSG bin 1 256\r\n")
    assert c.read_exact(258) == payload + b"\r\n"
    c.expect(PONG_RE)


# ---------------------------------------------------------------------------------------------
# Headers
# ---------------------------------------------------------------------------------------------

HDR = b"NATS/1.0\r\nA: B\r\n\r\n"  # 18 bytes


def test_hpub_hmsg_format(server, raw_conn):
    c = raw_conn(server, headers=True)
    assert exchange(c, b"SUB foo 1\r\nHPUB foo 18 20\r\n" + HDR + b"hi\r\n"
                    + b"HPUB foo rep 18 20\r\n" + HDR + b"hi\r\n") == (
        b"HMSG foo 1 18 20\r\n" + HDR + b"hi\r\n" + b"HMSG foo 1 rep 18 20\r\n" + HDR + b"hi\r\n")


def test_hpub_size_digits_echoed_verbatim(server, raw_conn):
    c = raw_conn(server, headers=True)
    assert exchange(c, b"SUB foo 1\r\nHPUB foo 018 0020\r\n" + HDR + b"hi\r\n") == (
        b"HMSG foo 1 018 0020\r\n" + HDR + b"hi\r\n")


def test_headers_stripped_for_non_header_subscriber(server, raw_conn):
    plain = raw_conn(server)  # headers not negotiated
    plain.send(b"SUB foo 7\r\n")
    plain.ping_pong()
    pub = raw_conn(server, headers=True)
    assert exchange(pub, b"HPUB foo bar 18 20\r\n" + HDR + b"hi\r\nHPUB foo 018 00020\r\n" + HDR
                    + b"hi\r\n") == b""
    # The size becomes total - hdr in plain decimal; the header block is gone.
    assert exchange(plain, b"") == b"MSG foo 7 bar 2\r\nhi\r\nMSG foo 7 2\r\nhi\r\n"


def test_headers_stripped_when_server_has_no_header_support(make_server, raw_conn):
    s = make_server(no_header_support=True)
    c = raw_conn(s, headers=True)  # asks for headers; the server says no
    assert exchange(c, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n") == b"MSG foo 1 2\r\nhi\r\n"


def test_hpub_with_zero_header_length_is_delivered_as_msg(server, raw_conn):
    c = raw_conn(server, headers=True)
    assert exchange(c, b"SUB foo 1\r\nHPUB foo 0 2\r\nhi\r\nHPUB foo r 0 2\r\nhi\r\n") == (
        b"MSG foo 1 2\r\nhi\r\nMSG foo 1 r 2\r\nhi\r\n")


def test_hpub_headers_are_not_validated(server, raw_conn):
    c = raw_conn(server, headers=True)
    assert exchange(c, b"SUB foo 1\r\nHPUB foo 4 6\r\nabcdhi\r\n") == b"HMSG foo 1 4 6\r\nabcdhi\r\n"


def test_hpub_headers_only(server, raw_conn):
    c = raw_conn(server, headers=True)
    assert exchange(c, b"SUB foo 1\r\nHPUB foo 12 12\r\nNATS/1.0\r\n\r\n\r\n") == (
        b"HMSG foo 1 12 12\r\nNATS/1.0\r\n\r\n\r\n")


def test_msg_to_header_subscriber_from_plain_pub(server, raw_conn):
    c = raw_conn(server, headers=True)
    assert exchange(c, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n") == b"MSG foo 1 2\r\nhi\r\n"


# ---------------------------------------------------------------------------------------------
# Wildcards and queue groups
# ---------------------------------------------------------------------------------------------

def test_wildcards(server, raw_conn):
    c = raw_conn(server)
    c.send(b"SUB foo.* 1\r\nSUB foo.> 2\r\nSUB > 3\r\nSUB *.bar 4\r\nSUB foo* 5\r\n")
    c.ping_pong()
    cases = {
        b"foo": {b"3"},
        b"foo.bar": {b"1", b"2", b"3", b"4"},
        b"foo.baz": {b"1", b"2", b"3"},
        b"foo.bar.baz": {b"2", b"3"},
        b"x.bar": {b"3", b"4"},
        b"foo*": {b"3", b"5"},  # `foo*` is a literal token
        b"foox": {b"3"},
    }
    for subject, sids in cases.items():
        got = exchange(c, b"PUB %s 1\r\na\r\n" % subject)
        msgs = re.findall(rb"MSG (\S+) (\S+) 1\r\na\r\n", got)
        assert b"".join(b"MSG %s %s 1\r\na\r\n" % m for m in msgs) == got
        assert all(m[0] == subject for m in msgs)
        assert sorted(m[1] for m in msgs) == sorted(sids), subject


def test_non_pedantic_wildcard_publish_is_matched_literally(server, raw_conn):
    c = raw_conn(server)
    c.send(b"SUB foo.* 1\r\n")
    c.ping_pong()
    assert exchange(c, b"PUB foo.> 1\r\na\r\nPUB foo..x 1\r\nb\r\n") == b"MSG foo.> 1 1\r\na\r\n"


def test_queue_group_each_message_to_exactly_one_member(server, raw_conn):
    members = [raw_conn(server) for _ in range(3)]
    for i, m in enumerate(members):
        m.send(b"SUB work grp q%d\r\n" % i)
        m.ping_pong()
    plain = raw_conn(server)
    plain.send(b"SUB work p\r\n")
    plain.ping_pong()
    pub = raw_conn(server)
    n = 3000
    pub.send(b"".join(b"PUB work r.%d %d\r\n%d\r\n" % (i, len(b"%d" % i), i) for i in range(n)))
    pub.ping_pong()
    # The plain subscriber gets every message; each message goes to exactly one member.
    got_plain = re.findall(rb"MSG work p r\.(\d+) \d+\r\n(\d+)\r\n", exchange(plain, b""))
    assert [int(a) for a, _ in got_plain] == list(range(n))
    seen = []
    counts = []
    for i, m in enumerate(members):
        data = exchange(m, b"")
        got = re.findall(rb"MSG work q%d r\.(\d+) \d+\r\n(\d+)\r\n" % i, data)
        assert len(got) == data.count(b"MSG ")
        assert all(a == b for a, b in got)
        counts.append(len(got))
        seen.extend(int(a) for a, _ in got)
    assert sorted(seen) == list(range(n))
    # Roughly even: each member of 3 gets about 1000 (binomial sd ~26).
    assert all(800 <= k <= 1200 for k in counts), counts


def test_queue_group_members_on_one_connection(server, raw_conn):
    c = raw_conn(server)
    c.send(b"SUB foo g 1\r\nSUB foo g 2\r\nSUB foo h 3\r\n")
    c.ping_pong()
    got = exchange(c, b"".join(b"PUB foo 1\r\nx\r\n" for _ in range(100)))
    sids = re.findall(rb"MSG foo (\d) 1\r\nx\r\n", got)
    assert len(sids) == 200
    assert sids.count(b"3") == 100
    assert sids.count(b"1") + sids.count(b"2") == 100
    assert sids.count(b"1") > 0 and sids.count(b"2") > 0


def test_queue_name_is_not_validated(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo > 1\r\nSUB foo q.1* 2\r\nPUB foo 1\r\na\r\n").count(b"MSG foo") == 2


# ---------------------------------------------------------------------------------------------
# UNSUB with max, echo
# ---------------------------------------------------------------------------------------------

def test_unsub_max_counts_messages_delivered_before(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo 1\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\n") == (
        b"MSG foo 1 1\r\na\r\nMSG foo 1 1\r\nb\r\n")
    # Two delivered already: a max of 3 allows exactly one more.
    assert exchange(c, b"UNSUB 1 3\r\nPUB foo 1\r\nc\r\nPUB foo 1\r\nd\r\n") == b"MSG foo 1 1\r\nc\r\n"
    assert exchange(c, b"PUB foo 1\r\ne\r\n") == b""


def test_unsub_max_not_above_delivered_removes_at_once(server, raw_conn):
    c = raw_conn(server)
    for sid, maxarg in ((b"1", b"2"), (b"2", b"1"), (b"3", b"0"), (b"4", b"-5"), (b"5", b"x")):
        exchange(c, b"SUB s%s %s\r\nPUB s%s 1\r\na\r\nPUB s%s 1\r\na\r\n" % (sid, sid, sid, sid))
        assert exchange(c, b"UNSUB %s %s\r\nPUB s%s 1\r\nb\r\n" % (sid, maxarg, sid)) == b""


def test_unsub_max_one(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo 1\r\nUNSUB 1 1\r\nPUB foo 1\r\na\r\nPUB foo 1\r\nb\r\n") == (
        b"MSG foo 1 1\r\na\r\n")


def test_unsub_max_on_queue_subscription(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo q 1\r\nUNSUB 1 2\r\n" + b"PUB foo 1\r\na\r\n" * 3) == (
        b"MSG foo 1 1\r\na\r\n" * 2)


def test_unsub_stops_delivery(server, raw_conn):
    c = raw_conn(server)
    assert exchange(c, b"SUB foo 1\r\nUNSUB 1\r\nPUB foo 1\r\na\r\n") == b""


def test_echo_false(server, raw_conn):
    me = raw_conn(server, echo=False)
    other = raw_conn(server)
    other.send(b"SUB foo 9\r\n")
    other.ping_pong()
    assert exchange(me, b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n") == b""
    assert exchange(other, b"") == b"MSG foo 9 2\r\nhi\r\n"
    # Messages from others still reach the no-echo client.
    assert exchange(other, b"PUB foo 2\r\nyo\r\n") == b"MSG foo 9 2\r\nyo\r\n"
    assert exchange(me, b"") == b"MSG foo 1 2\r\nyo\r\n"


# ---------------------------------------------------------------------------------------------
# No responders
# ---------------------------------------------------------------------------------------------

NR = dict(headers=True, no_responders=True)
NR_MSG = b"HMSG %s %s 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"


def test_no_responders_status_message(server, raw_conn):
    c = raw_conn(server, **NR)
    assert exchange(c, b"SUB reply 7\r\nPUB foo reply 2\r\nhi\r\n") == NR_MSG % (b"reply", b"7")
    # HPUB too, and a wildcard sub on the reply: the subject is the reply, the sid that sub's.
    assert exchange(c, b"SUB _INBOX.* 8\r\nHPUB foo _INBOX.x 12 14\r\nNATS/1.0\r\n\r\nhi\r\n") == (
        NR_MSG % (b"_INBOX.x", b"8"))


def test_no_responders_with_verbose(server, raw_conn):
    c = raw_conn(server, verbose=True, **NR)
    assert exchange(c, b"SUB reply 7\r\nPUB foo reply 2\r\nhi\r\n") == (
        OK + OK + NR_MSG % (b"reply", b"7"))


def test_no_responders_not_sent_when(server, raw_conn):
    c = raw_conn(server, **NR)
    assert exchange(c, b"SUB reply 7\r\nPUB foo 2\r\nhi\r\n") == b""  # no reply subject
    assert exchange(c, b"PUB foo other 2\r\nhi\r\n") == b""  # no own sub on the reply
    assert exchange(c, b"SUB qreply q 8\r\nPUB foo qreply 2\r\nhi\r\n") == b""  # queue sub only
    # Someone received it.
    assert exchange(c, b"SUB foo 9\r\nPUB foo reply 2\r\nhi\r\n") == b"MSG foo 9 reply 2\r\nhi\r\n"
    # Without the no_responders flag.
    plain = raw_conn(server, headers=True)
    assert exchange(plain, b"SUB reply2 1\r\nPUB nobody reply2 2\r\nhi\r\n") == b""


def test_no_responders_only_for_the_publishers_own_sub(server, raw_conn):
    other = raw_conn(server)
    other.send(b"SUB reply 1\r\n")
    other.ping_pong()
    c = raw_conn(server, **NR)
    assert exchange(c, b"PUB nobody reply 2\r\nhi\r\n") == b""
    assert exchange(other, b"") == b""


def test_no_responders_with_echo_off_own_responder(server, raw_conn):
    # The publisher's own sub on the subject does not receive (echo off): nobody received it.
    c = raw_conn(server, echo=False, **NR)
    assert exchange(c, b"SUB reply 7\r\nSUB foo 8\r\nPUB foo reply 2\r\nhi\r\n") == (
        NR_MSG % (b"reply", b"7"))


# ---------------------------------------------------------------------------------------------
# Subjects: pedantic, Invalid Subject, reserved prefixes, _sys_ queue
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("subject", [b"foo.*", b"foo.>", b"*", b">"])
def test_pedantic_wildcard_publish_still_delivered(server, raw_conn, subject):
    sub = raw_conn(server)
    sub.send(b"SUB > 1\r\nSUB %s 2\r\n" % subject)
    sub.ping_pong()
    c = raw_conn(server, pedantic=True)
    assert exchange(c, b"PUB %s 1\r\na\r\n" % subject) == err("Invalid Publish Subject")
    got = exchange(sub, b"")
    assert sorted(re.findall(rb"MSG (\S+) (\d) 1\r\na\r\n", got)) == [(subject, b"1"), (subject, b"2")]
    assert exchange(c, b"") == b""  # the connection stays


@pytest.mark.parametrize("subject", [b".foo", b"foo.", b"foo..bar", b"."])
def test_pedantic_empty_token_publish_matches_nothing(server, raw_conn, subject):
    sub = raw_conn(server)
    sub.send(b"SUB > 1\r\nSUB *.* 2\r\nSUB foo.* 3\r\n")
    sub.ping_pong()
    c = raw_conn(server, pedantic=True, verbose=True)
    assert exchange(c, b"PUB %s 1\r\na\r\n" % subject) == err("Invalid Publish Subject") + OK
    assert exchange(sub, b"") == b""


@pytest.mark.parametrize("subject", [b"foo..bar", b".foo", b"foo.", b".", b"foo.>.bar", b">.foo",
                                     b"foo.>.>"])
def test_invalid_subject_on_sub_keeps_connection(server, raw_conn, subject):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"SUB %s 1\r\n" % subject) == err("Invalid Subject")
    assert exchange(c, b"SUB %s q 2\r\n" % subject) == err("Invalid Subject")
    assert exchange(c, b"SUB ok 1\r\nPUB ok 1\r\na\r\n") == OK + OK + b"MSG ok 1 1\r\na\r\n"


@pytest.mark.parametrize("reply", [b"_R_.", b"_R_.x", b"$JS.ACK.x", b"$JS.ACK.a.b", b"_GR_.x"])
def test_reserved_reply_prefixes_rejected(server, raw_conn, reply):
    sub = raw_conn(server)
    sub.send(b"SUB foo 1\r\n")
    sub.ping_pong()
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"PUB foo %s 1\r\na\r\n" % reply) == (
        err('Permissions Violation for Publish with Reply of "%s"' % reply.decode()))
    assert exchange(sub, b"") == b""  # dropped
    assert exchange(c, b"PUB foo r 1\r\na\r\n") == OK


@pytest.mark.parametrize("reply", [b"$JS.ACK.", b"_GR_.", b"_R_", b"x._R_.y", b"$JS.ACK"])
def test_reserved_reply_prefix_alone_or_elsewhere_allowed(server, raw_conn, reply):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"SUB foo 1\r\nPUB foo %s 1\r\na\r\n" % reply) == (
        OK + OK + b"MSG foo 1 %s 1\r\na\r\n" % reply)


def test_reserved_reply_quoting(server, raw_conn):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b'PUB foo _R_."\\\x01\xc3\xa9 1\r\na\r\n') == (
        b'-ERR \'Permissions Violation for Publish with Reply of "_R_.\\"\\\\\\x01\xc3\xa9"\'\r\n')


def test_publish_to_gateway_reply_prefix_rejected(server, raw_conn):
    sub = raw_conn(server)
    sub.send(b"SUB > 1\r\n")
    sub.ping_pong()
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"PUB _GR_.x 1\r\na\r\n") == err('Permissions Violation for Publish to "_GR_.x"')
    # The prefix alone is not reserved (pedantic only complains about its empty token).
    assert exchange(c, b"PUB _GR_. 1\r\nb\r\n") == OK
    assert exchange(sub, b"") == b""


def test_sys_queue_group_rejected(server, raw_conn):
    c = raw_conn(server, verbose=True)
    assert exchange(c, b"SUB foo _sys_ 1\r\n") == (
        err('Permissions Violation for Subscription to "foo" using queue "_sys_"'))
    assert exchange(c, b"PUB foo 1\r\na\r\n") == OK


def test_max_subs(make_server, raw_conn):
    s = make_server(max_subs=2)
    c = raw_conn(s, verbose=True)
    assert exchange(c, b"SUB a 1\r\nSUB b 2\r\n") == OK + OK
    # At the limit: refused even for a duplicate sid; no +OK; the connection stays.
    assert exchange(c, b"SUB c 3\r\nSUB a 1\r\n") == err("maximum subscriptions exceeded") * 2
    assert exchange(c, b"UNSUB 1\r\nSUB d 4\r\nPUB d 1\r\nx\r\nPUB c 1\r\ny\r\n") == (
        OK + OK + OK + b"MSG d 4 1\r\nx\r\n" + OK)


# ---------------------------------------------------------------------------------------------
# Split reads, pipelining, large payloads
# ---------------------------------------------------------------------------------------------

SPLIT_OPS = (b'CONNECT {"verbose":true,"pedantic":true,"headers":true}\r\n'
             b"SUB foo 1\r\nSUB bar q 2\r\n"
             b"PUB foo 5\r\nhello\r\n"
             b"PUB bar reply 3\r\n\r\na\r\n"
             b"HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
             b"UNSUB 1\r\nPING\r\n")
SPLIT_EXPECT = (OK + OK + OK + OK + b"MSG foo 1 5\r\nhello\r\n"
                + OK + b"MSG bar 2 reply 3\r\n\r\na\r\n"
                + OK + b"HMSG foo 1 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"
                + OK)


def _nodelay_conn(server):
    c, _, _ = open_conn(server)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return c


def test_ops_split_at_every_offset(server):
    for i in range(1, len(SPLIT_OPS)):
        c = _nodelay_conn(server)
        try:
            c.send(SPLIT_OPS[:i])
            time.sleep(0.002)  # let the first part arrive as its own read
            c.send(SPLIT_OPS[i:])
            assert upto_pong(c) == SPLIT_EXPECT, f"split at {i}: {SPLIT_OPS[:i][-20:]!r}"
        finally:
            c.close()


def test_ops_sent_byte_by_byte(server):
    c = _nodelay_conn(server)
    try:
        for b in SPLIT_OPS:
            c.send(bytes([b]))
            time.sleep(0.0005)
        assert upto_pong(c) == SPLIT_EXPECT
    finally:
        c.close()


def test_payload_split_across_many_writes(server, raw_conn):
    c = raw_conn(server)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    payload = bytes(i % 251 for i in range(100000))
    c.send(b"SUB big 1\r\nPUB big 100000\r\n")
    for k in range(0, len(payload), 7919):
        c.send(payload[k:k + 7919])
        time.sleep(0.001)
    c.send(b"\r\nPING\r\n")
    c.expect(rb"MSG big 1 100000\r\n")
    assert c.read_exact(100002) == payload + b"\r\n"
    c.expect(PONG_RE)


def test_many_ops_pipelined_in_one_write(server, raw_conn):
    c = raw_conn(server)
    n = 5000
    data = [b"SUB pipe.* 1\r\n"]
    for i in range(n):
        p = b"%d" % i
        data.append(b"PUB pipe.%d %d\r\n%s\r\n" % (i % 7, len(p), p))
        if i % 1000 == 0:
            data.append(b"PING\r\n")
    data.append(b"UNSUB 1\r\nPUB pipe.0 1\r\nz\r\n")
    c.send(b"".join(data) + PING)
    got = b""
    for _ in range(n // 1000 + 1):
        got += upto_pong(c)
    msgs = re.findall(rb"MSG pipe\.(\d) 1 (\d+)\r\n(\d+)\r\n", got)
    assert len(msgs) == n
    assert b"".join(b"MSG pipe.%s 1 %s\r\n%s\r\n" % m for m in msgs) == got
    assert [int(m[2]) for m in msgs] == list(range(n))
    assert all(int(m[0]) == int(m[2]) % 7 for m in msgs)


def test_one_mib_payload_accepted(server, raw_conn):
    c = raw_conn(server)
    payload = bytes(i % 253 for i in range(1048576))
    c.send(b"SUB big 1\r\nPUB big 1048576\r\n" + payload + b"\r\nPING\r\n")
    c.expect(rb"\AMSG big 1 1048576\r\n")
    assert c.read_exact(1048578, timeout=20) == payload + b"\r\n"
    c.expect(rb"\APONG\r\n")


def test_one_mib_plus_one_rejected_on_the_control_line(server, raw_conn):
    c = raw_conn(server)
    c.send(b"PUB big 1048577\r\n")  # no payload sent: the check runs on the line
    assert_closed(c, err("Maximum Payload Violation"))
    check_for(5, lambda: server.num_clients() == 0)


def test_hpub_total_size_checked_against_max_payload(make_server, raw_conn):
    s = make_server(max_payload=100)
    c = raw_conn(s, headers=True)
    body = b"NATS/1.0\r\n\r\n" + b"x" * 88
    assert exchange(c, b"SUB f 1\r\nHPUB f 12 100\r\n" + body + b"\r\n") == (
        b"HMSG f 1 12 100\r\n" + body + b"\r\n")
    c.send(b"HPUB f 12 101\r\n")
    assert_closed(c, err("Maximum Payload Violation"))


# ---------------------------------------------------------------------------------------------
# Pings and stale connections
# ---------------------------------------------------------------------------------------------

def test_stale_connection_after_unanswered_pings(make_server):
    s = make_server(ping_interval=0.2, ping_max=2)
    c, _, _ = open_conn(s)
    try:
        c.send(connect_line(verbose=False))
        t0 = time.monotonic()
        # PING at ticks 1 and 2, then -ERR and close at tick 3.
        assert_closed(c, PING + PING + err("Stale Connection"))
        assert 0.4 <= time.monotonic() - t0 < 3.0
        check_for(5, lambda: s.num_clients() == 0)
    finally:
        c.close()


def test_stale_connection_without_connect(make_server):
    s = make_server(ping_interval=0.2, ping_max=1)
    c, _, _ = open_conn(s)
    try:
        assert_closed(c, PING + err("Stale Connection"))
    finally:
        c.close()


def test_answering_pings_keeps_connection(make_server):
    s = make_server(ping_interval=0.2, ping_max=2)
    c, _, _ = open_conn(s)
    try:
        c.send(connect_line(verbose=False))
        for _ in range(5):  # five server PINGs answered: ~5 intervals, beyond the stale point
            c.expect(rb"\APING\r\n", timeout=2)
            c.send(b"PONG\r\n")
        assert exchange(c, b"") == b""
        assert s.num_clients() == 1
    finally:
        c.close()


def test_deliveries_count_as_activity_for_the_ping_timer(make_server):
    s = make_server(ping_interval=0.2, ping_max=2)
    sub, _, _ = open_conn(s)
    pub, _, _ = open_conn(s)
    try:
        sub.send(connect_line(verbose=False) + b"SUB foo 1\r\n")
        pub.send(connect_line(verbose=False))
        pub.ping_pong()
        got = b""
        t0 = time.monotonic()
        sub.sock.settimeout(0.01)
        while time.monotonic() - t0 < 1.2:  # six ticks; the subscriber never writes again
            pub.send(b"PUB foo 1\r\na\r\n")
            pub.ping_pong()
            try:
                chunk = sub.sock.recv(65536)
            except socket.timeout:
                continue
            if not chunk:
                break
            got += chunk
        assert b"-ERR" not in got
        assert got.count(PING) == 1  # only the first, RTT-measuring PING
        assert got.replace(PING, b"").replace(b"MSG foo 1 1\r\na\r\n", b"") == b""
        assert s.num_clients() == 2
    finally:
        sub.close()
        pub.close()


def test_client_ping_always_answered(server, raw_conn):
    c = raw_conn(server, connect=False)
    c.send(PING * 3)
    assert c.read_exact(18) == PONG * 3
    assert exchange(c, b"") == b""


# ---------------------------------------------------------------------------------------------
# Authentication
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def token_server(make_server):
    return make_server(authorization="s3cr3t", auth_timeout=0.5)


@pytest.fixture
def user_server(make_server):
    return make_server(username="derek", password="pw", auth_timeout=0.5)


def test_token_auth_good(token_server):
    c, info, _ = open_conn(token_server)
    try:
        assert info["auth_required"] is True
        assert exchange(c, connect_line(verbose=True, auth_token="s3cr3t")) == OK
        assert exchange(c, b"SUB a 1\r\nPUB a 1\r\nx\r\n") == OK + OK + b"MSG a 1 1\r\nx\r\n"
    finally:
        c.close()


@pytest.mark.parametrize("fields", [
    dict(auth_token="nope"), dict(auth_token=""), dict(), dict(user="derek", pass_="pw"),
    dict(auth_token="S3CR3T"),
])
def test_token_auth_bad(token_server, fields):
    fields = {k.rstrip("_"): v for k, v in fields.items()}
    c, _, _ = open_conn(token_server)
    try:
        c.send(connect_line(verbose=True, **fields))
        assert_closed(c, err("Authorization Violation"))
        check_for(5, lambda: token_server.num_clients() == 0)
    finally:
        c.close()


def test_user_pass_auth_good(user_server):
    c, info, _ = open_conn(user_server)
    try:
        assert info["auth_required"] is True
        assert exchange(c, b'CONNECT {"verbose":true,"user":"derek","pass":"pw"}\r\n') == OK
    finally:
        c.close()


@pytest.mark.parametrize("fields", [
    dict(user="derek", pass_="x"), dict(user="x", pass_="pw"), dict(user="derek"), dict(),
    dict(auth_token="pw"),
])
def test_user_pass_auth_bad(user_server, fields):
    fields = {k.rstrip("_"): v for k, v in fields.items()}
    c, _, _ = open_conn(user_server)
    try:
        c.send(connect_line(verbose=True, **fields))
        assert_closed(c, err("Authorization Violation"))
    finally:
        c.close()


@pytest.mark.parametrize("first", [b"PING\r\n", b"SUB foo 1\r\n", b"PUB foo 1\r\na\r\n",
                                   b"UNSUB 1\r\n", b'INFO {}\r\n', b"PONG\r\n", b"SUB foo"])
def test_first_op_must_be_connect_when_auth_is_on(token_server, first):
    c, _, _ = open_conn(token_server)
    try:
        c.send(first)
        assert_closed(c, err("Authorization Violation"))
    finally:
        c.close()


def test_second_connect_with_bad_credentials_closes(token_server):
    c, _, _ = open_conn(token_server)
    try:
        assert exchange(c, connect_line(verbose=False, auth_token="s3cr3t")) == b""
        c.send(connect_line(auth_token="wrong"))
        assert_closed(c, err("Authorization Violation"))
    finally:
        c.close()


def test_authentication_timeout(token_server):
    c, _, _ = open_conn(token_server)
    try:
        t0 = time.monotonic()
        assert_closed(c, err("Authentication Timeout"))
        assert 0.4 <= time.monotonic() - t0 < 3.0
        check_for(5, lambda: token_server.num_clients() == 0)
    finally:
        c.close()


def test_authentication_timeout_with_partial_connect(token_server):
    c, _, _ = open_conn(token_server)
    try:
        c.send(b'CONNECT {"auth_token":')
        assert_closed(c, err("Authentication Timeout"))
    finally:
        c.close()


def test_no_authentication_timeout_after_connect(token_server):
    c, _, _ = open_conn(token_server)
    try:
        assert exchange(c, connect_line(verbose=False, auth_token="s3cr3t")) == b""
        time.sleep(0.7)  # past auth_timeout: nothing must arrive (a negative check needs a wait)
        assert exchange(c, b"") == b""
    finally:
        c.close()


# ---------------------------------------------------------------------------------------------
# max_connections
# ---------------------------------------------------------------------------------------------

def test_max_connections(make_server):
    s = make_server(max_connections=2)
    a, _, _ = open_conn(s)
    b, _, _ = open_conn(s)
    try:
        a.ping_pong()
        b.ping_pong()
        c = RawConn(s.port)
        try:
            data = c.read_all_until_closed()
            m = INFO_RE.match(data)
            assert m, data  # the INFO is sent first
            assert json.loads(m.group(1))["client_id"] > 0
            assert data[m.end():] == err("maximum connections exceeded")
        finally:
            c.close()
        assert s.num_clients() == 2
        a.close()
        check_for(5, lambda: s.num_clients() == 1)
        d, _, _ = open_conn(s)  # a slot is free again
        try:
            assert exchange(d, b"") == b""
        finally:
            d.close()
    finally:
        a.close()
        b.close()


def test_default_host_listens_on_ipv4_and_ipv6(make_server):
    """Go's listener on 0.0.0.0 takes IPv6 clients too (nats.py's IPv6 localhost test)."""
    import socket as _socket

    s = make_server(host="0.0.0.0")
    with _socket.create_connection(("127.0.0.1", s.port), timeout=5) as c4:
        info = c4.recv(4096)
        assert info.startswith(b"INFO ")
        # An IPv4 client of the dual-stack socket is 127.0.0.1, not ::ffff:127.0.0.1, as in Go.
        assert json.loads(info[5:].strip())["client_ip"] == "127.0.0.1"
    if not _socket.has_ipv6:
        return
    try:
        c6 = _socket.create_connection(("::1", s.port), timeout=5)
    except OSError as e:
        if e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT, errno.ENETUNREACH):
            return  # no IPv6 loopback on this machine
        raise
    with c6:
        assert c6.recv(5) == b"INFO "
    assert s.addr[0] == "0.0.0.0"  # INFO and logs keep the configured host, as Go


def test_max_sub_tokens(make_server, raw_conn):
    """Go: a subscription with more tokens than max_sub_tokens is a permissions violation."""
    c = raw_conn(make_server(max_sub_tokens=3))
    c.send(b"SUB a.b.c 1\r\nSUB a.b.c.d 2\r\nSUB a.* 3\r\nPING\r\n")
    m = c.expect(re.compile(rb"PONG\r\n"))
    assert m.string[:m.end()] == b"-ERR 'Permissions Violation for Subscription to \"a.b.c.d\", too many tokens'\r\nPONG\r\n"
