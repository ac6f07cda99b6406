"""The flat config format (gnatsd/conf), option processing (opts.process_config_file,
opts.configure_options), logging (gnatsd/log.py) and the signal helpers.

Go: conf/lex_test.go, conf/parse_test.go, server/opts_test.go, logger/log_test.go.
Nothing here starts a server or imports gnatsd.cli (which monkey-patches the process).
"""
from __future__ import annotations

import datetime
import io
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnatsd import conf
from gnatsd import log as glog
from gnatsd import signals
from gnatsd.conf import ItemType, ParseErrors, parse
from gnatsd.opts import (
    FlagError,
    Options,
    ProcessConfigErr,
    configure_options,
    format_go_duration,
    parse_go_bool,
    parse_go_duration,
    parse_go_int,
    parse_listen,
    process_config_file,
)

ROOT = Path(__file__).resolve().parent.parent


def values(text):
    return {k: t.value for k, t in parse(text, "t.conf").items()}


def parse_errors(text):
    with pytest.raises(ParseErrors) as ei:
        parse(text, "t.conf")
    return [str(e) for e in ei.value.errors]


# -- lexer and parser: what is accepted --------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("port: 4222", {"port": 4222}),
    ("port = 4222", {"port": 4222}),
    ("port 4222", {"port": 4222}),
    ("port:4222", {"port": 4222}),
    ("port=4222", {"port": 4222}),
    ("  port:\t4222  ", {"port": 4222}),
    ("port: -1", {"port": -1}),
    ("a: 1; b: 2", {"a": 1, "b": 2}),
    ("a: 1, b: 2", {"a": 1, "b": 2}),
    ("{ a: 1 }", {"a": 1}),
    ("name: foo", {"name": "foo"}),
    ("name: 'single \\ quoted # not a comment'", {"name": "single \\ quoted # not a comment"}),
    ('name: "double \\t\\n\\r\\"\\\\\\x41"', {"name": 'double \t\n\r"\\A'}),
    ('name: ""', {"name": ""}),
    ("name: foo#bar", {"name": "foo#bar"}),
    ("name: bare\\x41", {"name": "bareA"}),
    ('"quoted key": 1', {"quoted key": 1}),
    ("'quoted key': 1", {"quoted key": 1}),
    ("listen: 127.0.0.1:4222", {"listen": "127.0.0.1:4222"}),
    ("listen: localhost:4222", {"listen": "localhost:4222"}),
    ("f: 1.5", {"f": 1.5}),
    ("d: 10s", {"d": "10s"}),
    ("d: 500ms", {"d": "500ms"}),
    ("d: 1h30m", {"d": "1h30m"}),
    ("d: 1.5s", {"d": "1.5s"}),
    ("t: 2020-01-02T03:04:05Z", {"t": datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)}),
    ("b: (\nline one\nline two\n)", {"b": "\nline one\nline two"}),
    ("x: 1 # comment", {"x": 1}),
    ("x: 1 // comment", {"x": 1}),
    ("# only a comment\n// and another", {}),
    ("x: 1\r\ny: 2\r\n", {"x": 1, "y": 2}),
    ("x: 1\nx: 2", {"x": 2}),
    ("", {}),
])
def test_parse_values(text, expected):
    assert values(text) == expected


@pytest.mark.parametrize("word, value", [
    ("true", True), ("TRUE", True), ("yes", True), ("on", True), ("On", True),
    ("false", False), ("no", False), ("off", False), ("OFF", False),
])
def test_parse_booleans(word, value):
    assert values(f"b: {word}") == {"b": value}


def test_quoted_boolean_is_a_string():
    assert values('b: "true"') == {"b": "true"}


@pytest.mark.parametrize("text, value", [
    ("1k", 1000), ("1K", 1000), ("1kb", 1024), ("1KB", 1024), ("1Ki", 1024), ("1KiB", 1024),
    ("2m", 2_000_000), ("1MB", 1024 ** 2), ("1mib", 1024 ** 2),
    ("1g", 1000 ** 3), ("1GB", 1024 ** 3), ("1t", 1000 ** 4), ("1TB", 1024 ** 4),
    ("1p", 1000 ** 5), ("1PB", 1024 ** 5), ("1e", 1000 ** 6), ("1EB", 1024 ** 6),
    ("-1k", -1000), ("0", 0), ("64MB", 64 * 1024 ** 2),
])
def test_parse_sizes(text, value):
    tokens = parse(f"s: {text}")
    assert tokens["s"].value == value
    assert tokens["s"].typ == ItemType.INTEGER
    assert tokens["s"].item.val == text  # the raw text stays available (durations use it)


def test_token_positions_are_those_of_the_key():
    tokens = parse("# c\nport: 4222\n  debug: true\n\"q\": 1\na: 1; b: 2", "x.conf")
    assert tokens["port"].source() == "x.conf:2:1"
    assert tokens["debug"].source() == "x.conf:3:3"
    assert tokens["q"].source() == "x.conf:4:1"
    assert tokens["b"].source() == "x.conf:5:7"


def test_keys_keep_file_order():
    assert list(values("z: 1\na: 2\nm: 3")) == ["z", "a", "m"]


# -- lexer and parser: what is refused, and where ----------------------------------------------


@pytest.mark.parametrize("text, where, message", [
    ('name: "abc', "1:7", 'unterminated quoted string (missing closing ")'),
    ('name: "abc\nport: 1', "1:7", "unterminated quoted string"),
    ("name: 'abc", "1:7", "unterminated quoted string (missing closing ')"),
    ('"key: 1', "1:1", "unterminated quoted key"),
    ('name: "bad \\q"', "1:13", "invalid escape character 'q'"),
    ('name: "bad \\x4"', "1:13", "expected two hexadecimal digits after '\\x'"),
    ("name: my server", "1:10", "expected the value to end with a new line, a comment or ';', but got 's'"),
    ("port: 4222 5", "1:12", "expected the value to end"),
    ("auth: { user: a }", "1:1", "auth: maps ({ ... }) arrive with the full NATS config format"),
    ("routes: [a, b]", "1:1", "routes: arrays ([ ... ]) arrive with the full NATS config format"),
    ("listen: [::1]:4222", "1:9", 'quote an IPv6 address with its port, as in "[::1]:4222"'),
    ("include other.conf", "1:1", "include 'other.conf': include directives arrive with the full NATS config"),
    ("include 'other.conf'", "1:1", "include directives"),
    ("port: $PORT", "1:1", "port: variable references ($PORT) arrive with the full NATS config format"),
    ("port", "1:1", "key 'port' has no value"),
    ("port:\nhost: x", "1:6", "expected a value for 'port' but found new line"),
    ("port:", "1:6", "expected a value for 'port' but found end of file"),
    (": 4222", "1:1", "unexpected key separator ':': a key is missing"),
    ("f: .5", "1:4", "floats must start with a digit"),
    ("f: 1.", "1:6", "floats must have a digit after the '.'"),
    ("f: 1.x", "1:6", "floats must have a digit after the '.', but got 'x'"),
    ("n: -x", "1:5", "expected a digit after '-'"),
    ("d: 2020-01-02", "1:8", "dates must be in full ISO8601 Zulu form"),
    ("d: 20-01", "1:6", "dates must be in full ISO8601 Zulu form"),
    ("s: 1kbb", "1:1", "invalid size suffix in '1kbb'"),
    ("s: 99999999999999999999", "1:1", "integer '99999999999999999999' is out of the range"),
    ("s: 9000000EB", "1:1", "is out of the range"),
    ("m: {\n a: 1\n", "1:4", "unterminated map: '{' is never closed"),
    ("b: (\nnever closed", "1:4", "unterminated block"),
    ("/ x", "1:1", "unexpected '/'"),
])
def test_parse_errors(text, where, message):
    errors = parse_errors(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"t.conf:{where}: "), errors
    assert message in errors[0]


def test_parse_collects_every_error_and_keeps_going():
    text = "\n".join([
        'name: "unterminated',     # 1
        "port: 4222",              # 2
        "cluster {",               # 3
        "  listen: 0.0.0.0:6222",  # 4  (inside the skipped map: no error of its own)
        '  routes: ["a", "b"]',    # 5
        "}",                       # 6
        "debug: true extra",       # 7
        "size: 1kbb",              # 8
        "trace: true",             # 9
    ])
    p = conf.Parser(text, "m.conf")
    mapping = p.parse()
    assert [str(e).split(": ", 1)[0] for e in p.errors] == ["m.conf:1:7", "m.conf:3:1", "m.conf:7:13", "m.conf:8:1"]
    assert {k: t.value for k, t in mapping.items()} == {"port": 4222, "debug": True, "trace": True}


def test_parse_file_errors(tmp_path):
    with pytest.raises(OSError, match="cannot read config file .*missing.conf"):
        conf.parse_file(tmp_path / "missing.conf")
    bad = tmp_path / "bin.conf"
    bad.write_bytes(b"port: \xff\xfe")
    with pytest.raises(OSError, match="not UTF-8"):
        conf.parse_file(bad)


# -- hypothesis: generated flat configs round-trip ---------------------------------------------

_KEY = st.from_regex(r"[a-z_][a-z0-9_]{0,15}", fullmatch=True).filter(
    lambda k: k not in ("include", "true", "false", "yes", "no", "on", "off"))
_BARE = st.from_regex(r"[a-zA-Z_/][a-zA-Z0-9_./:@-]{0,20}", fullmatch=True).filter(
    lambda s: s.lower() not in ("true", "false", "yes", "no", "on", "off") and "//" not in s)
_ANY_TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"), max_size=30)
_SIZES = {"": 1, "k": 1000, "K": 1000, "kb": 1024, "KB": 1024, "KiB": 1024, "m": 1000 ** 2, "MB": 1024 ** 2,
          "g": 1000 ** 3, "GB": 1024 ** 3, "GiB": 1024 ** 3}


def _dq(s):
    out = []
    for c in s:
        if c == '"':
            out.append('\\"')
        elif c == "\\":
            out.append("\\\\")
        elif c == "\t":
            out.append("\\t")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


@st.composite
def _value(draw):
    """(text as written, value expected)."""
    kind = draw(st.sampled_from(["int", "size", "bool", "bare", "dq", "sq", "duration"]))
    if kind == "int":
        n = draw(st.integers(-(2 ** 40), 2 ** 40))
        return str(n), n
    if kind == "size":
        n = draw(st.integers(0, 4096))
        suffix = draw(st.sampled_from(sorted(_SIZES)))
        return f"{n}{suffix}", n * _SIZES[suffix]
    if kind == "bool":
        word = draw(st.sampled_from(["true", "false", "yes", "no", "on", "off", "TRUE", "Off"]))
        return word, word.lower() in ("true", "yes", "on")
    if kind == "bare":
        s = draw(_BARE)
        return s, s
    if kind == "dq":
        s = draw(_ANY_TEXT)
        return _dq(s), s
    if kind == "sq":
        s = draw(_ANY_TEXT.filter(lambda x: "'" not in x))
        return f"'{s}'", s
    s = f"{draw(st.integers(1, 999))}{draw(st.sampled_from(['s', 'ms', 'h', 'us', 'ns']))}"
    return s, s


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(_KEY, _value(), st.sampled_from([": ", " = ", " ", ":", "="]),
                          st.sampled_from(["", " # note", " // note", ";", " ;"]),
                          st.sampled_from(["\n", "\r\n", "\n\n", "\n# comment\n"])),
                max_size=12))
def test_generated_flat_configs_round_trip(lines):
    text = "".join(f"{k}{sep}{written}{trailer}{nl}" for k, (written, _), sep, trailer, nl in lines)
    expected = {}
    for k, (_, value), *_ in lines:
        expected.pop(k, None)
        expected[k] = value
    assert values(text) == expected
    # and the positions point at the keys
    tokens = parse(text, "g.conf")
    text_lines = text.split("\n")
    for k, tk in tokens.items():
        line = text_lines[tk.line - 1]
        assert line[tk.pos - 1:].startswith(k)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_arbitrary_text_never_crashes_the_parser(text):
    try:
        parse(text, "f.conf")
    except ParseErrors as e:
        for err in e.errors:
            assert re.match(r"f\.conf:\d+:\d+: \S", str(err)), str(err)


# -- options from a config file ----------------------------------------------------------------


def load(tmp_path, text, opts=None):
    path = tmp_path / "test.conf"
    path.write_text(text)
    opts = opts or Options()
    process_config_file(opts, str(path))
    return opts


def config_errors(tmp_path, text):
    path = tmp_path / "test.conf"
    path.write_text(text)
    with pytest.raises(ProcessConfigErr) as ei:
        process_config_file(Options(), str(path))
    return ei.value


def test_process_config_file_every_field(tmp_path):
    o = load(tmp_path, """
        listen: 127.0.0.2:4333
        server_name: "srv one"
        client_advertise: "nats.example.com:4222"
        debug: true
        trace: on
        logtime: false
        log_file: "/tmp/g.log"
        log_size_limit: 10MB
        pid_file: /tmp/g.pid
        ports_file_dir: /tmp
        max_payload: 2MB
        max_pending: 128MB
        max_control_line: 2KB
        max_connections: 100
        max_subscriptions: 10
        max_traced_msg_len: 64
        ping_interval: "30s"
        ping_max: 5
        write_deadline: 500ms
        lame_duck_duration: "45s"
        lame_duck_grace_period: 5s
        no_header_support: true
        http_port: 8222
        syslog: false
        jetstream: enabled
        store_dir: /tmp/js
    """)
    assert (o.host, o.port) == ("127.0.0.2", 4333)
    assert o.server_name == "srv one"
    assert o.client_advertise == "nats.example.com:4222"
    assert (o.debug, o.trace, o.logtime) == (True, True, False)
    assert (o.log_file, o.log_size_limit) == ("/tmp/g.log", 10 * 1024 * 1024)
    assert (o.pid_file, o.ports_file_dir) == ("/tmp/g.pid", "/tmp")
    assert (o.max_payload, o.max_pending, o.max_control_line) == (2 * 1024 ** 2, 128 * 1024 ** 2, 2048)
    assert (o.max_connections, o.max_subs, o.max_traced_msg_len) == (100, 10, 64)
    assert (o.ping_interval, o.ping_max, o.write_deadline) == (30.0, 5, 0.5)
    assert (o.lame_duck_duration, o.lame_duck_grace_period) == (45.0, 5.0)
    assert o.no_header_support is True
    assert o.http_port == 8222
    assert o.jetstream is True and o.store_dir == "/tmp/js"
    assert o.config_file.endswith("test.conf")


@pytest.mark.parametrize("text, attr, value", [
    ("host: 10.0.0.1", "host", "10.0.0.1"),
    ("net: 10.0.0.1", "host", "10.0.0.1"),
    ("port: 4333", "port", 4333),
    ("listen: 4333", "port", 4333),
    ("max_conn: 7", "max_connections", 7),
    ("max_subs: 7", "max_subs", 7),
    ("monitor_port: 8333", "http_port", 8333),
    ("logfile: x.log", "log_file", "x.log"),
    ("pidfile: x.pid", "pid_file", "x.pid"),
    ("logfile_size_limit: 1KB", "log_size_limit", 1024),
    ("PORT: 4333", "port", 4333),  # keys are matched in lower case, as Go does
    ("trace_verbose: true", "trace", True),
    ("jetstream: false", "jetstream", False),
    ("http: 127.0.0.1:8333", "http_port", 8333),
    ("https: 127.0.0.1:8334", "https_port", 8334),
    ("ping_interval: 2m", "ping_interval", 120.0),  # Go would read 2000000 s ("m" is mega): see parse_duration
    ("ping_interval: 1h30m", "ping_interval", 5400.0),
    ("lame_duck_duration: 2m", "lame_duck_duration", 120.0),
    ("lame_duck_grace_period: 0s", "lame_duck_grace_period", 0.0),
])
def test_process_config_file_aliases(tmp_path, text, attr, value):
    assert getattr(load(tmp_path, text), attr) == value


def test_integer_seconds_is_a_warning(tmp_path):
    err = config_errors(tmp_path, "ping_interval: 30\nwrite_deadline: 5")
    assert not err.errors
    assert [str(w).split(": ", 1)[1] for w in err.warnings] == [
        'invalid use of field "ping_interval": ping_interval should be converted to a duration',
        'invalid use of field "write_deadline": write_deadline should be converted to a duration',
    ]
    # the values still apply (Go: backward compatible, seconds)
    o = Options()
    with pytest.raises(ProcessConfigErr):
        process_config_file(o, str(tmp_path / "test.conf"))
    assert (o.ping_interval, o.write_deadline) == (30.0, 5.0)


@pytest.mark.parametrize("text, message", [
    ("foo: bar", 'unknown field "foo"'),
    ("prot: 4222", 'unknown field "prot" (did you mean "port"?)'),
    ("port: abc", 'port: expected an integer, got string "abc"'),
    ('port: "4222"', "(write numbers without quotes)"),
    ("port: true", "port: expected an integer, got boolean true"),
    ("max_payload: 1XB", "sizes take K, M, G, T"),
    ("max_payload: 3GB", "max_payload value is too big"),
    ("max_control_line: 3GB", "max_control_line value is too big"),
    ("debug: 1", "debug: expected a boolean (true/false), got integer 1"),
    ('debug: "true"', "(write booleans without quotes)"),
    ("server_name: 12", "server_name: expected a string, got integer 12"),
    ("listen: localhost", "listen: could not parse address string 'localhost'"),
    ("listen: localhost:abc", "listen: could not parse port 'abc'"),
    ("listen: true", "listen: expected port or host:port, got boolean true"),
    ("ping_interval: 10x", 'error parsing ping_interval: time: unknown unit "x" in duration "10x"'),
    ("ping_interval: abc", 'error parsing ping_interval: time: invalid duration "abc"'),
    ('write_deadline: "10"', 'error parsing write_deadline: time: missing unit in duration "10"'),
    ("ping_interval: true", 'ping_interval: expected a duration such as "10s", got boolean true'),
    ("lame_duck_duration: 10s", "invalid lame_duck_duration of 10s, minimum is 30 seconds"),
    ("lame_duck_duration: 60", 'lame_duck_duration: expected a duration such as "30s" or "2m", got integer 60'),
    ("lame_duck_grace_period: -1s", "invalid lame_duck_grace_period, needs to be positive"),
    ("lame_duck_grace_period: 5", 'lame_duck_grace_period: expected a duration such as "10s", got integer 5'),
    ("jetstream: maybe", 'jetstream: expected true/false, "enabled" or "disabled", got string "maybe"'),
    ("authorization: token", 'field "authorization" is not yet supported by gnatsd'),
    ("authorization { token: x }", "authorization: maps ({ ... }) arrive with the full NATS config format"),
    ("cluster { listen: 0.0.0.0:6222 }", "cluster: maps"),
    ("tls { cert_file: x }", "tls: maps"),
])
def test_process_config_file_errors(tmp_path, text, message):
    err = config_errors(tmp_path, text)
    assert len(err.errors) == 1, str(err)
    assert str(err.errors[0]) == f"{tmp_path / 'test.conf'}:1:1: {message}" or message in str(err.errors[0])
    assert str(err.errors[0]).startswith(f"{tmp_path / 'test.conf'}:1:1: ")


def test_process_config_file_reports_all_errors_in_file_order(tmp_path):
    err = config_errors(tmp_path, 'port: abc\nname: "x\nfoo: 1\nping_interval: 5\nmax_payload: {a: 1}\n')
    path = str(tmp_path / "test.conf")
    assert str(err).splitlines() == [
        f'{path}:4:1: invalid use of field "ping_interval": ping_interval should be converted to a duration',
        f'{path}:1:1: port: expected an integer, got string "abc"',
        f'{path}:2:7: unterminated quoted string (missing closing ")',
        f'{path}:3:1: unknown field "foo"',
        f"{path}:5:1: max_payload: maps ({{ ... }}) arrive with the full NATS config format; "
        "gnatsd's flat config parser does not read them yet",
    ]


def test_sample_config_loads():
    o = Options()
    process_config_file(o, str(ROOT / "etc" / "gnatsd.conf"))
    assert (o.host, o.port, o.server_name) == ("127.0.0.1", 4222, "gnatsd-sample")
    assert (o.lame_duck_duration, o.lame_duck_grace_period, o.ping_interval) == (120.0, 10.0, 120.0)


@pytest.mark.parametrize("text, seconds", [
    ("0", 0.0), ("10s", 10.0), ("1.5s", 1.5), ("500ms", 0.5), ("2m", 120.0), ("1h30m", 5400.0),
    ("1h2m3s4ms", 3723.004), ("-1s", -1.0), ("+2s", 2.0), ("100us", 1e-4), ("100\u00b5s", 1e-4), ("5ns", 5e-9),
])
def test_parse_go_duration(text, seconds):
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "1x", "1.s.", "-", "1 s", "1hh"])
def test_parse_go_duration_errors(text):
    with pytest.raises(ValueError, match="^time: "):
        parse_go_duration(text)


def test_format_go_duration():
    assert [format_go_duration(x) for x in (10, 90, 3600, 0.5, 0)] == ["10s", "1m30s", "1h0m0s", "500ms", "0s"]


def test_parse_listen():
    assert parse_listen(4222) == ("", 4222)
    assert parse_listen("0.0.0.0:4222") == ("0.0.0.0", 4222)
    assert parse_listen("[::1]:4222") == ("::1", 4222)
    assert parse_listen(":4222") == ("", 4222)
    for bad in ("::1:4222", "host", "host:x"):
        with pytest.raises(ValueError):
            parse_listen(bad)


# -- the command line --------------------------------------------------------------------------


class Calls:
    def __init__(self):
        self.calls = []

    def version(self):
        self.calls.append("version")

    def help(self):
        self.calls.append("help")

    def tls_help(self):
        self.calls.append("tls_help")

    def signal(self, signal_str, flag_opts):
        self.calls.append(("signal", signal_str, flag_opts.pid_file))


def configure(args, calls=None):
    calls = calls or Calls()
    return configure_options(args, calls.version, calls.help, calls.tls_help, process_signal=calls.signal)


@pytest.mark.parametrize("args", [
    ["-p", "4333"], ["-p=4333"], ["--p", "4333"], ["--port", "4333"], ["--port=4333"], ["-port", "4333"],
    ["-p", "0x10ED"], ["-p", "4000", "-p", "4333"],
])
def test_flag_forms(args):
    assert configure(args).port == 4333


def test_flags_set_options():
    o = configure(["-a", "127.0.0.2", "-n", "srv", "--client_advertise", "x:1", "-P", "p.pid", "--ports_file_dir",
                   "d", "-l", "g.log", "--log_size_limit", "1000", "--user", "u", "--pass", "pw",
                   "--max_traced_msg_len", "10", "-m", "8222", "--http_host", "127.0.0.1", "-ms", "8443",
                   "-js", "-sd", "/tmp/js", "--tls", "--tlscert", "c", "--tlskey", "k", "--tlscacert", "ca",
                   "--tlsverify", "--routes", "nats://a:1, nats://b:2", "--cluster", "nats://0.0.0.0:6222",
                   "--cluster_name", "C", "--cluster_advertise", "x:2", "--no_advertise", "--connect_retries", "3",
                   "--profile", "6060", "-s", "-r", "udp://localhost:514"])
    assert (o.host, o.server_name, o.client_advertise) == ("127.0.0.2", "srv", "x:1")
    assert (o.pid_file, o.ports_file_dir, o.log_file, o.log_size_limit) == ("p.pid", "d", "g.log", 1000)
    assert (o.username, o.password, o.max_traced_msg_len) == ("u", "pw", 10)
    assert (o.http_port, o.http_host, o.https_port) == (8222, "127.0.0.1", 8443)
    assert (o.jetstream, o.store_dir) == (True, "/tmp/js")
    assert (o.tls, o.tls_cert, o.tls_key, o.tls_ca_cert, o.tls_verify) == (True, "c", "k", "ca", True)
    assert o.routes == ["nats://a:1", "nats://b:2"]
    assert (o.cluster_listen, o.cluster_name, o.cluster_advertise) == ("nats://0.0.0.0:6222", "C", "x:2")
    assert (o.cluster_no_advertise, o.cluster_connect_retries, o.prof_port) == (True, 3, 6060)
    assert (o.syslog, o.remote_syslog) == (True, "udp://localhost:514")
    assert configure(["--auth", "tok"]).authorization == "tok"
    assert configure(["--server_name", "a"]).server_name == "a"
    assert configure(["--name=b"]).server_name == "b"
    assert configure(["--net", "h"]).host == "h"
    assert configure(["--addr=h"]).host == "h"


@pytest.mark.parametrize("args, debug, trace, logtime", [
    ([], False, False, True),
    (["-D"], True, False, True),
    (["--debug"], True, False, True),
    (["-V"], False, True, True),
    (["--trace"], False, True, True),
    (["-DV"], True, True, True),
    (["-VV"], False, True, True),
    (["-DVV"], True, True, True),
    (["-DV=false"], False, False, True),
    (["-T=false"], False, False, False),
    (["-T=0"], False, False, False),
    (["--logtime=f"], False, False, False),
    (["-T=true", "-D=1"], True, False, True),
])
def test_boolean_flags(args, debug, trace, logtime):
    o = configure(args)
    assert (o.debug, o.trace, o.logtime) == (debug, trace, logtime)


def test_bool_flag_does_not_take_the_next_argument():
    # Go: a boolean flag takes a value only as -flag=value; "false" is then a stray argument.
    with pytest.raises(FlagError, match='unrecognized command: "false"'):
        configure(["-T", "false"])


@pytest.mark.parametrize("args, message", [
    (["--bogus"], "flag provided but not defined: -bogus"),
    (["-bogus=1"], "flag provided but not defined: -bogus"),
    (["-p"], "flag needs an argument: -p"),
    (["-p", "abc"], 'invalid value "abc" for flag -p: parse error'),
    (["-p", "99999999999999999999"], 'invalid value "99999999999999999999" for flag -p: value out of range'),
    (["-T=maybe"], 'invalid boolean value "maybe" for -T: parse error'),
    (["---p", "1"], "bad flag syntax: ---p"),
    (["-=1"], "bad flag syntax: -=1"),
    (["extra"], 'unrecognized command: "extra"'),
    (["-p", "1", "extra"], 'unrecognized command: "extra"'),
    (["--routes", "nats://a:1"], "solicited routes require cluster capabilities, e.g. --cluster"),
    (["-t"], "must specify [-c, --config] option to check configuration file syntax"),
])
def test_flag_errors(args, message):
    with pytest.raises(FlagError) as ei:
        configure(args)
    assert str(ei.value) == message


def test_double_dash_ends_flags():
    with pytest.raises(FlagError, match='unrecognized command: "-p"'):
        configure(["--", "-p", "1"])
    assert configure(["-D", "--"]).debug is True


@pytest.mark.parametrize("args, call", [
    (["-v"], "version"), (["--version"], "version"), (["version"], "version"), (["-h"], "help"),
    (["--help"], "help"), (["-help"], "help"), (["help"], "help"), (["--help_tls"], "tls_help"),
    (["-p", "1", "-v"], "version"),
])
def test_version_and_help(args, call):
    calls = Calls()
    assert configure(args, calls) is None
    assert calls.calls == [call]


def test_signal_flag_is_handed_over_with_the_flag_options():
    calls = Calls()
    assert configure(["-P", "/tmp/x.pid", "--signal", "ldm"], calls) is None
    assert calls.calls == [("signal", "ldm", "/tmp/x.pid")]
    calls = Calls()
    assert configure(["-sl=stop=123"], calls) is None
    assert calls.calls == [("signal", "stop=123", "")]


def test_flags_override_the_config_file(tmp_path):
    path = tmp_path / "o.conf"
    path.write_text("port: 4333\nserver_name: fromconf\ndebug: true\nlogtime: false\nmax_payload: 2MB\n")
    o = configure(["-c", str(path), "-p", "4444", "--name", "fromflag", "-D=false"])
    assert (o.port, o.server_name, o.debug) == (4444, "fromflag", False)
    # what the flags leave alone comes from the file
    assert (o.logtime, o.max_payload, o.config_file) == (False, 2 * 1024 * 1024, str(path))
    # and flags given before -c still win
    o = configure(["-p", "4444", "--config", str(path)])
    assert o.port == 4444


def test_config_errors_and_warnings_through_configure(tmp_path):
    path = tmp_path / "w.conf"
    path.write_text("ping_interval: 30\n")
    warned = []
    o = configure_options(["-c", str(path)], None, None, None, warn=warned.append)
    assert o.ping_interval == 30.0
    assert warned == [f'{path}:1:1: invalid use of field "ping_interval": ping_interval should be converted to a '
                      'duration']
    with pytest.raises(ProcessConfigErr):  # -t is strict about warnings, as in Go
        configure_options(["-c", str(path), "-t"], None, None, None)
    path.write_text("nope: 1\n")
    with pytest.raises(ProcessConfigErr, match='unknown field "nope"'):
        configure(["-c", str(path)])
    with pytest.raises(OSError, match="cannot read config file"):
        configure(["-c", str(tmp_path / "missing.conf")])


def test_go_number_and_bool_parsing():
    assert [parse_go_int(s) for s in ("0", "-1", "+7", "010", "0x1f", "0o17", "0b101", "1_000")] == [
        0, -1, 7, 8, 31, 15, 5, 1000]
    for bad in ("", "1.5", "abc", "1_", "_1", "08"):
        with pytest.raises(ValueError):
            parse_go_int(bad)
    assert [parse_go_bool(s) for s in ("1", "t", "T", "TRUE", "true", "True")] == [True] * 6
    assert [parse_go_bool(s) for s in ("0", "f", "F", "FALSE", "false", "False")] == [False] * 6
    with pytest.raises(ValueError):
        parse_go_bool("yes")


# -- logging -----------------------------------------------------------------------------------

TS = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}"


@pytest.fixture
def gnatsd_logger():
    """The "gnatsd" logger, restored after the test (other tests run servers in-process)."""
    logger = logging.getLogger("gnatsd")
    saved = (logger.level, logger.propagate, list(logger.handlers))
    yield logger
    glog.close_logging()
    logger.setLevel(saved[0])
    logger.propagate = saved[1]
    logger.handlers[:] = saved[2]


def log_lines(stream):
    return stream.getvalue().splitlines()


def test_log_format(gnatsd_logger):
    out = io.StringIO()
    glog.configure_logging(Options(), stream=out)
    gnatsd_logger.info("Server is %s", "ready")
    gnatsd_logger.warning("careful")
    gnatsd_logger.error("bad")
    gnatsd_logger.critical("fatal")
    pid = os.getpid()
    lines = log_lines(out)
    assert len(lines) == 4
    for line, label, msg in zip(lines, ("INF", "WRN", "ERR", "FTL"), ("Server is ready", "careful", "bad", "fatal")):
        assert re.fullmatch(rf"\[{pid}\] {TS} \[{label}\] {msg}", line), line


def test_log_format_without_time(gnatsd_logger):
    out = io.StringIO()
    glog.configure_logging(Options(logtime=False), stream=out)
    gnatsd_logger.info("hello")
    assert log_lines(out) == [f"[{os.getpid()}] [INF] hello"]


def test_log_exception_traceback(gnatsd_logger):
    out = io.StringIO()
    glog.configure_logging(Options(logtime=False), stream=out)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        gnatsd_logger.exception("failed")
    text = out.getvalue()
    assert text.startswith(f"[{os.getpid()}] [ERR] failed\nTraceback")
    assert "RuntimeError: boom" in text


@pytest.mark.parametrize("debug, trace, shown", [
    (False, False, ["INF"]),
    (True, False, ["DBG", "INF"]),
    (False, True, ["TRC", "INF"]),  # Go: trace does not imply debug
    (True, True, ["TRC", "DBG", "INF"]),
])
def test_debug_and_trace_levels(gnatsd_logger, debug, trace, shown):
    out = io.StringIO()
    glog.configure_logging(Options(debug=debug, trace=trace, logtime=False), stream=out)
    glog.tracef(gnatsd_logger, "<<- [PING]")
    gnatsd_logger.debug("debug")
    gnatsd_logger.info("info")
    labels = [re.match(r"\[\d+\] \[(\w+)\]", line).group(1) for line in log_lines(out)]
    assert labels == shown


def test_colors_only_on_a_terminal(gnatsd_logger):
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    glog.configure_logging(Options(logtime=False), stream=out)
    gnatsd_logger.info("x")
    assert out.getvalue() == f"[{os.getpid()}] [\x1b[32mINF\x1b[0m] x\n"


def test_log_file_reopen(gnatsd_logger, tmp_path):
    path = tmp_path / "g.log"
    glog.configure_logging(Options(log_file=str(path), logtime=False))
    gnatsd_logger.info("one")
    os.rename(path, tmp_path / "g.log.1")
    gnatsd_logger.info("two")  # still goes to the moved file
    glog.reopen_log_file()
    gnatsd_logger.info("three")
    assert (tmp_path / "g.log.1").read_text().splitlines() == [f"[{os.getpid()}] [INF] {m}" for m in ("one", "two")]
    assert path.read_text().splitlines() == [f"[{os.getpid()}] [INF] {m}" for m in ("File log re-opened", "three")]
    assert oct(path.stat().st_mode & 0o777) == oct(0o660 & ~_umask())


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_reopen_without_a_file_logger(gnatsd_logger):
    out = io.StringIO()
    glog.configure_logging(Options(logtime=False), stream=out)
    glog.reopen_log_file()
    assert log_lines(out) == [f"[{os.getpid()}] [INF] File log re-open ignored, not a file logger"]


def test_log_file_size_limit_rotates(gnatsd_logger, tmp_path):
    path = tmp_path / "r.log"
    glog.configure_logging(Options(log_file=str(path), logtime=False, log_size_limit=200))
    for i in range(10):
        gnatsd_logger.info("message number %d with some padding", i)
    backups = sorted(p for p in tmp_path.iterdir() if p.name.startswith("r.log."))
    assert backups, list(tmp_path.iterdir())
    assert re.fullmatch(r"r\.log\.\d{4}\.\d\d\.\d\d\.\d\d\.\d\d\.\d\d\.\d{9}", backups[0].name)
    assert path.read_text().startswith(f"[{os.getpid()}] [INF] Rotated log, backup saved as ")
    everything = "".join(p.read_text() for p in backups + [path])
    assert all(f"message number {i} " in everything for i in range(10))


def test_importing_gnatsd_configures_no_logging():
    code = ("import logging, gnatsd, gnatsd.log, gnatsd.opts, gnatsd.conf, gnatsd.signals;"
            "assert not logging.getLogger('gnatsd').handlers, 'gnatsd handlers';"
            "assert not logging.getLogger().handlers, 'root handlers';"
            "assert logging.getLogger('gnatsd').level == logging.NOTSET;"
            "import gevent.monkey, socket; assert not gevent.monkey.is_module_patched('socket')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=30)


# -- signal helpers ----------------------------------------------------------------------------


@pytest.mark.parametrize("argv, expected", [
    (["gnatsd", "-p", "4222"], True),
    (["/usr/local/bin/gnatsd"], True),
    (["/usr/bin/python3", "/usr/local/bin/gnatsd", "-D"], True),
    (["python3", "-m", "gnatsd", "-p", "-1"], True),
    (["/opt/pypy3", "-u", "-m", "gnatsd.cli"], True),
    (["python3", "-m", "gnatsd.other"], False),
    (["python3", "-m", "pytest", "gnatsd"], False),
    (["nats-server", "-p", "4222"], False),
    (["gnatsd", "--signal", "stop"], False),  # another sender, not a server
    (["gnatsd", "-sl=ldm"], False),
    (["python3", "-m", "gnatsd", "--signal=reload"], False),
    ([], False),
])
def test_is_gnatsd_command_line(argv, expected):
    assert signals.is_gnatsd_command_line(argv) is expected


def test_process_signal_errors(tmp_path):
    with pytest.raises(signals.SignalError, match="unknown signal 'bogus'"):
        signals.process_signal("bogus=1")
    with pytest.raises(signals.SignalError, match=r"invalid signal parameters: \['3'\]"):
        signals.process_signal("stop=1=3")
    with pytest.raises(signals.SignalError, match="invalid pid: abc"):
        signals.process_signal("stop=abc")
    empty = tmp_path / "empty.pid"
    empty.write_text("")
    with pytest.raises(signals.SignalError, match="pid file .*missing.pid does not exist"):
        signals.process_signal("reopen", Options(pid_file=str(tmp_path / "missing.pid")))
    garbage = tmp_path / "garbage.pid"
    garbage.write_text("not a pid\n")
    with pytest.raises(signals.SignalError, match="invalid pid: not a pid"):
        signals.process_signal(f"reopen={garbage}")


def test_maybe_read_pid_file(tmp_path):
    p = tmp_path / "x.pid"
    p.write_text("1234")
    assert signals.maybe_read_pid_file(str(p)) == "1234"
    assert signals.maybe_read_pid_file("5678") == "5678"
