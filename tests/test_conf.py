"""The NATS config format (gnatsd/conf), option processing (opts.process_config_file,
opts.configure_options), logging (gnatsd/log.py) and the signal helpers.

Go: conf/lex_test.go, conf/parse_test.go, server/opts_test.go, logger/log_test.go.
Nothing here starts a server process or imports gnatsd.cli (which monkey-patches the
process); one test runs a server in-process to check that a config's authorization works.
"""
from __future__ import annotations

import datetime
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnatsd import conf
from gnatsd.accounts import AccountConfig
from gnatsd.auth import NkeyUser, User
from gnatsd import log as glog
from gnatsd import signals
from gnatsd.conf import ItemType, ParseErrors, parse, to_plain
from gnatsd.opts import (
    FlagError,
    Options,
    ProcessConfigErr,
    WebsocketOpts,
    configure_options,
    format_go_duration,
    parse_go_bool,
    parse_go_duration,
    parse_go_int,
    parse_listen,
    process_config_file,
    set_baseline_options,
)

ROOT = Path(__file__).resolve().parent.parent
CONFIGS = Path(__file__).resolve().parent / "configs"
UTC = datetime.timezone.utc


def values(text, env=None):
    return to_plain(parse(text, "t.conf", env=env if env is not None else {}))


def parse_errors(text, env=None):
    with pytest.raises(ParseErrors) as ei:
        parse(text, "t.conf", env=env if env is not None else {})
    return [str(e) for e in ei.value.errors]


# -- lexer and parser: scalars -----------------------------------------------------------------


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
    ("name: ''", {"name": ""}),
    ("name: foo#bar", {"name": "foo#bar"}),
    ("name: bare\\x41", {"name": "bareA"}),
    ("name: \\xe9", {"name": "\xe9"}),
    ('"quoted key": 1', {"quoted key": 1}),
    ("'quoted key': 1", {"quoted key": 1}),
    ("listen: 127.0.0.1:4222", {"listen": "127.0.0.1:4222"}),
    ("listen: localhost:4222", {"listen": "localhost:4222"}),
    ("listen: nats.io:-1", {"listen": "nats.io:-1"}),
    ("listen = :80", {"listen": ":80"}),
    ("f: 1.5", {"f": 1.5}),
    ("d: 10s", {"d": "10s"}),
    ("d: 500ms", {"d": "500ms"}),
    ("d: 1h30m", {"d": "1h30m"}),
    ("d: 1.5s", {"d": "1.5s"}),
    ("s: 3xyz", {"s": "3xyz"}),
    ("s: 3Gyz", {"s": "3Gyz"}),
    ("t: 2020-01-02T03:04:05Z", {"t": datetime.datetime(2020, 1, 2, 3, 4, 5, tzinfo=UTC)}),
    # Go: lexBlock keeps the new lines after '(' and before ')'
    ("b: (\nline one\nline two\n)", {"b": "\nline one\nline two\n"}),
    ("numbers (\n  12(34)56\n  (\n    7890\n  )\n)\n", {"numbers": "\n  12(34)56\n  (\n    7890\n  )\n"}),
    # quoted strings may span lines, as in Go
    ("text = 'This is a multi-line\ntext block.'", {"text": "This is a multi-line\ntext block."}),
    ('text = "two\nlines"', {"text": "two\nlines"}),
    ("x: 1 # comment", {"x": 1}),
    ("x: 1 // comment", {"x": 1}),
    ("# only a comment\n// and another", {}),
    ("x: 1\r\ny: 2\r\n", {"x": 1, "y": 2}),
    ("x: 1\nx: 2", {"x": 2}),
    ("foo='1'; bar=2.2; baz=true; boo=22", {"foo": "1", "bar": 2.2, "baz": True, "boo": 22}),  # Go: TestSimpleTopLevel
    ("now = 2016-05-04T18:53:41Z\ngmt = false\n",
     {"now": datetime.datetime(2016, 5, 4, 18, 53, 41, tzinfo=UTC), "gmt": False}),  # Go: TestSample5
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
    assert values(f"b: [{word}]") == {"b": [value]}


def test_quoted_boolean_is_a_string():
    assert values('b: "true"') == {"b": "true"}
    assert values("b: truely") == {"b": "truely"}


@pytest.mark.parametrize("text, value", [
    ("1k", 1000), ("1K", 1000), ("1kb", 1024), ("1KB", 1024), ("1Ki", 1024), ("1KiB", 1024),
    ("2m", 2_000_000), ("1MB", 1024 ** 2), ("1mib", 1024 ** 2), ("2Mi", 2 * 1024 ** 2),
    ("1g", 1000 ** 3), ("1GB", 1024 ** 3), ("22Gi", 22 * 1024 ** 3), ("1t", 1000 ** 4), ("1TB", 1024 ** 4),
    ("1p", 1000 ** 5), ("1PB", 1024 ** 5), ("1e", 1000 ** 6), ("1EB", 1024 ** 6),
    ("-1k", -1000), ("0", 0), ("64MB", 64 * 1024 ** 2),
])
def test_parse_sizes(text, value):
    tokens = parse(f"s: {text}")
    assert tokens["s"].value == value
    assert tokens["s"].typ == ItemType.INTEGER
    assert tokens["s"].item.val == text  # the raw text stays available (durations use it)
    assert values(f"s: [{text}]") == {"s": [value]}
    assert values(f"m {{ s: {text} }}") == {"m": {"s": value}}


def test_keys_keep_file_order():
    assert list(values("z: 1\na: 2\nm: 3")) == ["z", "a", "m"]
    assert list(values("m { z: 1, a: 2, m: 3 }")["m"]) == ["z", "a", "m"]


# -- lexer and parser: maps and arrays ---------------------------------------------------------

SAMPLE1 = """
foo  {
  host {
    ip   = '127.0.0.1'
    port = 4242
  }
  servers = [ "a.com", "b.com", "c.com"]
}
"""

CLUSTER = """
cluster {
  port: 4244

  authorization {
    user: route_user
    password: top_secret
    timeout: 1
  }

  # Routes are actively solicited and connected to from this server.

  // Test both styles of comments

  routes = [
    nats-route://foo:bar@apcera.me:4245
    nats-route://foo:bar@apcera.me:4246
  ]
}
"""

ARRAY_OF_MAPS = """
authorization {
    users = [
      {user: alice, password: foo}
      {user: bob,   password: bar}
    ]
    timeout: 0.5
}
"""

ML_ARRAY = """
# top level comment
foo = [
 1, # One
 2, // Two
 3 # Three
 'bar'     ,
 "bar"
]
"""

ML_ARRAY_NO_SEP = """
foo = [
 1 // foo
 2
 3
 'bar'
 "bar"
]
"""

NO_QUOTES = """
foo = 123
bar = baz
baz=boo
map {
 id:one
 id2 : onetwo
}
t true
f false
tstr "true"
tkey = two
fkey = five # This should be a string
"""

JSON_PRETTY = """
{
  "http_port": 8227,
  "port": 4227,
  "write_deadline": "1h",
  "cluster": {
    "port": 6222,
    "routes": [
      "nats://127.0.0.1:4222",
      "nats://127.0.0.1:4223"
    ]
  }
}
"""

ALLMAN = """
websocket
{
    port: 8080
    no_tls: true
}
accounts
{
  a:
  {
    users:
    [
      {user: x}
    ]
  }
}
"""


@pytest.mark.parametrize("text, expected", [
    # Go: TestSample1, TestSample2 (cluster), TestSample4, TestArrayOfMaps
    (SAMPLE1, {"foo": {"host": {"ip": "127.0.0.1", "port": 4242}, "servers": ["a.com", "b.com", "c.com"]}}),
    (CLUSTER, {"cluster": {"port": 4244, "authorization": {"user": "route_user", "password": "top_secret",
                                                           "timeout": 1},
                           "routes": ["nats-route://foo:bar@apcera.me:4245", "nats-route://foo:bar@apcera.me:4246"]}}),
    ("array [\n { abc: 123 }\n { xyz: \"word\" }\n]", {"array": [{"abc": 123}, {"xyz": "word"}]}),
    (ARRAY_OF_MAPS, {"authorization": {"users": [{"user": "alice", "password": "foo"},
                                                 {"user": "bob", "password": "bar"}], "timeout": 0.5}}),
    # Go: TestMultilineArrays, TestMultilineArraysNoSep, TestNonQuotedStrings
    (ML_ARRAY, {"foo": [1, 2, 3, "bar", "bar"]}),
    (ML_ARRAY_NO_SEP, {"foo": [1, 2, 3, "bar", "bar"]}),
    (NO_QUOTES, {"foo": 123, "bar": "baz", "baz": "boo", "map": {"id": "one", "id2": "onetwo"}, "t": True,
                 "f": False, "tstr": "true", "tkey": "two", "fkey": "five"}),
    # Go: TestJSONCompat
    (JSON_PRETTY, {"http_port": 8227, "port": 4227, "write_deadline": "1h",
                   "cluster": {"port": 6222, "routes": ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223"]}}),
    ('{"http_port": 8224,"port": 4224}\n', {"http_port": 8224, "port": 4224}),
    ('{"a": {"b": [1,2,{"c": "d"}]}, "e": []}', {"a": {"b": [1, 2, {"c": "d"}]}, "e": []}),
    # commas, semicolons, new lines
    ("m { a: 1, b: 2; c: 3\n d: 4 }", {"m": {"a": 1, "b": 2, "c": 3, "d": 4}}),
    ("m { a: 1, }", {"m": {"a": 1}}),
    ("m {}", {"m": {}}),
    ("m = {}", {"m": {}}),
    ("m: {\n}", {"m": {}}),
    ("a []", {"a": []}),
    ("a: [\n]", {"a": []}),
    ("a: [1, 2, 3]", {"a": [1, 2, 3]}),  # Go 2.9.10 fails here: it reads "3]" as a string
    ("a: [1,2,3]", {"a": [1, 2, 3]}),
    ("a: [-1, 1.5, 2k, 1MB, 10s, true, $2a$11$x]", {"a": [-1, 1.5, 2000, 1024 ** 2, "10s", True, "$2a$11$x"]}),
    ("a: [[1, 2], [3, [4, []]]]", {"a": [[1, 2], [3, [4, []]]]}),
    ("a: [{b: [{c: {d: 1}}]}]", {"a": [{"b": [{"c": {"d": 1}}]}]}),
    ("a: [ 'x y', \"z,w\", (\nblock\n)\n]", {"a": ["x y", "z,w", "\nblock\n"]}),
    ("a: [127.0.0.1:4222, localhost:4333]", {"a": ["127.0.0.1:4222", "localhost:4333"]}),
    ("foo = {'bar' = 4242}", {"foo": {"bar": 4242}}),
    ('foo = {"bar-1.2.3" = { port:4242 }}', {"foo": {"bar-1.2.3": {"port": 4242}}}),
    ("m { k v }", {"m": {"k": "v"}}),
    ("m {\n  # comment\n  a: 1 # after\n  // slash\n  b: 2 // after\n}", {"m": {"a": 1, "b": 2}}),
    ("m { a: 1 }  # trailing comment", {"m": {"a": 1}}),
    ("m { a: 1 }; n: 2", {"m": {"a": 1}, "n": 2}),
    ("m { a: 1, a: 2 }", {"m": {"a": 2}}),
    ("m { a: 'x\ny' }", {"m": {"a": "x\ny"}}),
    ("m { b: (\nblock\n)\n}", {"m": {"b": "\nblock\n"}}),
    ("m { b: 'a' }\nm { c: 'b' }", {"m": {"c": "b"}}),  # a later definition replaces the map
    # a map or array may open on the line after its key (real configs do this)
    (ALLMAN, {"websocket": {"port": 8080, "no_tls": True}, "accounts": {"a": {"users": [{"user": "x"}]}}}),
])
def test_parse_maps_and_arrays(text, expected):
    assert values(text) == expected


def test_token_positions():
    text = "\n".join([
        "# c",                       # 1
        "port: 4222",                # 2
        "  debug: true",             # 3
        '"q": 1',                    # 4
        "a: 1; b: 2",                # 5
        "m {",                       # 6
        "  inner: x",                # 7
        "  list: [1,",               # 8
        "    'two', {k: v}]",        # 9
        "}",                         # 10
    ])
    tokens = parse(text, "x.conf")
    assert tokens["port"].source() == "x.conf:2:1"
    assert tokens["debug"].source() == "x.conf:3:3"
    assert tokens["q"].source() == "x.conf:4:1"
    assert tokens["b"].source() == "x.conf:5:7"
    assert tokens["m"].source() == "x.conf:6:1"
    m = tokens["m"].value
    assert m["inner"].source() == "x.conf:7:3"
    assert m["list"].source() == "x.conf:8:3"
    # array elements keep their own positions (Go only moves a map value's to its key)
    assert [t.source() for t in m["list"].value] == ["x.conf:8:10", "x.conf:9:6", "x.conf:9:12"]
    assert m["list"].value[2].value["k"].source() == "x.conf:9:13"
    assert tokens["m"].typ == ItemType.MAP_START and m["list"].typ == ItemType.ARRAY_START


# -- variables ---------------------------------------------------------------------------------


def test_variables_from_the_file():
    # Go: TestSimpleVariable, TestNestedVariable
    assert values("index = 22\nfoo = $index") == {"index": 22, "foo": 22}
    assert values("index = 22\nnest {\n  index = 11\n  foo = $index\n}\nbar = $index") == {
        "index": 22, "nest": {"index": 11, "foo": 11}, "bar": 22}
    # a reference in a map, in an array, to a map, to an array
    text = ("PASS: 's3cret'\nDEF { a: 1 }\nLIST [1, 2]\n"
            "authorization { user: bob, password: $PASS }\nusers [ {password: $PASS} ]\nm: $DEF\nl: $LIST")
    v = values(text)
    assert v["authorization"] == {"user": "bob", "password": "s3cret"}
    assert v["users"] == [{"password": "s3cret"}]
    assert (v["m"], v["l"]) == ({"a": 1}, [1, 2])
    # only what was defined before the reference, in this map or an enclosing one
    assert "can not be found" in parse_errors("foo = $later\nlater = 1")[0]
    assert "can not be found" in parse_errors("m { inner = 1 }\nfoo = $inner")[0]
    # variables in arrays are not visible (Go looks in maps only)
    assert "can not be found" in parse_errors("a [ {x: 1} ]\nb = $x")[0]


def test_variable_tokens():
    tokens = parse("size = 2m\nmax_payload = $size\nunused = 1", "v.conf", env={})
    assert tokens["size"].used_variable and not tokens["unused"].used_variable
    ref = tokens["max_payload"]
    assert (ref.value, ref.source(), ref.typ, ref.item.val) == (2_000_000, "v.conf:2:1", ItemType.INTEGER, "2m")
    assert not ref.used_variable


@pytest.mark.parametrize("raw, value", [
    ("22", 22), ("xyz", "xyz"), ("3Gyz", "3Gyz"), ("'3xyz'", "3xyz"), ("1MB", 1024 ** 2), ("true", True),
    ("[1, 2]", [1, 2]), ("{a: b}", {"a": "b"}), ('"quoted # not a comment"', "quoted # not a comment"),
    ("$OTHER", "from other"),  # an environment variable may refer to another one
])
def test_variables_from_the_environment(raw, value):
    # Go: TestEnvVariable*, parsed as a config value would be
    env = {"GNATSD_X": raw, "OTHER": "'from other'"}
    assert values("foo = $GNATSD_X", env=env) == {"foo": value}
    assert values("m { foo = $GNATSD_X }", env=env) == {"m": {"foo": value}}


def test_file_variables_come_before_the_environment():
    assert values("X = 1\nfoo = $X", env={"X": "2"}) == {"X": 1, "foo": 1}


def test_os_environ_is_the_default(monkeypatch):
    monkeypatch.setenv("GNATSD_TEST_PORT", "4333")
    assert to_plain(parse("port: $GNATSD_TEST_PORT")) == {"port": 4333}


def test_environment_tokens_point_at_the_reference():
    tokens = parse("a {\n  b: $E\n}", "e.conf", env={"E": "{c: [1]}"})
    b = tokens["a"].value["b"]
    assert b.source() == "e.conf:2:3"
    assert b.value["c"].source() == "e.conf:2:6"  # the reference: their own positions are in E's text
    assert b.value["c"].value[0].source() == "e.conf:2:6"


def test_bcrypt_hashes_are_not_variables():
    # Go: TestBcryptVariable
    assert values("password: $2a$11$ooo") == {"password": "$2a$11$ooo"}
    assert values("password: $2y$10$abc/def.") == {"password": "$2y$10$abc/def."}


@pytest.mark.parametrize("text, env, where, message", [
    ("foo = $index", {}, "1:7", "variable reference for '$index' can not be found: define index earlier in this "
                                "file (or in an enclosing map), or set the environment variable index"),
    ("m {\n  a: [1, $nope]\n}", {}, "2:10", "variable reference for '$nope' can not be found"),
    ("foo = $E", {"E": "a b"}, "1:7", "variable reference for '$E' could not be parsed: the environment variable "
                                      "E='a b': expected the value to end"),
    ("foo = $E", {"E": ""}, "1:7", "could not be parsed"),
    ("foo = $E", {"E": "$E"}, "1:7", "the environment variable E refers to itself"),
    ("foo = $A", {"A": "$B", "B": "$A"}, "1:7", "could not be parsed: the environment variable A='$B': "
                                                "variable reference for '$B' could not be parsed"),
])
def test_variable_errors(text, env, where, message):
    errors = parse_errors(text, env=env)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"t.conf:{where}: "), errors
    assert message in errors[0], errors


# -- include -----------------------------------------------------------------------------------


def write(path, text):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_include(tmp_path):
    # Go: TestIncludes, TestIncludeVariablesWithChecks
    write(tmp_path / "includes" / "users.conf", "ALICE_PASS: a1\nBOB_PASS: b2\n")
    main = write(tmp_path / "main.conf", "\n".join([
        "listen: 127.0.0.1:4222",
        "authorization {",
        '  include "./includes/users.conf"',
        "  CAROL_PASS: c3",
        "  users = [",
        "    {user: alice, password: $ALICE_PASS}",
        "    {user: bob,   password: $BOB_PASS}",
        "    {user: carol, password: $CAROL_PASS}",
        "  ]",
        "}",
    ]))
    tokens = conf.parse_file(main)
    auth = tokens["authorization"].value
    assert [u["password"] for u in to_plain(auth["users"])] == ["a1", "b2", "c3"]
    # included keys keep the position in their own file
    assert auth["ALICE_PASS"].source() == f"{tmp_path / 'includes' / 'users.conf'}:1:1"
    assert auth["BOB_PASS"].source() == f"{tmp_path / 'includes' / 'users.conf'}:2:1"
    assert auth["CAROL_PASS"].source() == f"{main}:4:3"
    assert auth["ALICE_PASS"].used_variable


@pytest.mark.parametrize("directive", ["include sub/a.conf", "include 'sub/a.conf'", 'include "sub/a.conf"',
                                       "INCLUDE sub/a.conf", "include   sub/a.conf ; port: 2", "include sub/a.conf # c"])
def test_include_forms(tmp_path, directive):
    write(tmp_path / "sub" / "a.conf", "port: 1\nname: a")
    main = write(tmp_path / "main.conf", f"{directive}\ndebug: true")
    v = to_plain(conf.parse_file(main))
    assert v["name"] == "a" and v["debug"] is True
    assert v["port"] == (2 if "port: 2" in directive else 1)


def test_includes_nest_relative_to_the_including_file(tmp_path):
    write(tmp_path / "etc" / "main.conf", "a: 1\ninclude conf.d/b.conf\nz: $FROM_C")
    write(tmp_path / "etc" / "conf.d" / "b.conf", "b: 2\nm {\n  include ../shared/c.conf\n}")
    write(tmp_path / "etc" / "shared" / "c.conf", "FROM_C: 3\nc: 3")
    p = conf.Parser((tmp_path / "etc" / "main.conf").read_text(), str(tmp_path / "etc" / "main.conf"), env={})
    assert to_plain(p.parse()) == {"a": 1, "b": 2, "m": {"FROM_C": 3, "c": 3}, "z": 3} or p.errors
    # FROM_C went into the map m, so the top level cannot see it: one error, in main.conf
    assert [str(e) for e in p.errors] == [f"{tmp_path / 'etc' / 'main.conf'}:3:4: variable reference for '$FROM_C' "
                                          "can not be found: define FROM_C earlier in this file (or in an enclosing "
                                          "map), or set the environment variable FROM_C"]
    assert p.files == [str(tmp_path / "etc" / n) for n in ("main.conf", "conf.d/b.conf", "shared/c.conf")]


def test_included_files_see_only_their_own_variables(tmp_path):
    # Go parses an included file on its own: the including file's variables are not visible there,
    # but the included file's keys (variables too) are visible after the directive.
    write(tmp_path / "inc.conf", "x: $TOP\nINC: 5")
    main = write(tmp_path / "main.conf", "TOP: 1\ninclude inc.conf\ny: $INC")
    with pytest.raises(ParseErrors) as ei:
        conf.parse_file(main, env={})
    assert [str(e) for e in ei.value.errors] == [
        f"{tmp_path / 'inc.conf'}:1:4: variable reference for '$TOP' can not be found: define TOP earlier in this "
        "file (or in an enclosing map), or set the environment variable TOP"]
    assert to_plain(conf.parse_file(main, env={"TOP": "2"})) == {"TOP": 1, "x": 2, "INC": 5, "y": 5}


def test_include_absolute_path(tmp_path):
    inc = write(tmp_path / "abs" / "inc.conf", "a: 1")
    main = write(tmp_path / "other" / "main.conf", f"include '{inc}'")
    assert to_plain(conf.parse_file(main)) == {"a": 1}


def test_include_errors(tmp_path):
    write(tmp_path / "loop_a.conf", "a: 1\ninclude loop_b.conf")
    write(tmp_path / "loop_b.conf", "b: 1\n  include loop_a.conf")
    write(tmp_path / "self.conf", "include self.conf")
    write(tmp_path / "bad.conf", "ok: 1\nbad: 1kbb\n")
    main = write(tmp_path / "main.conf", "\n".join([
        "include missing.conf",     # 1
        "include loop_a.conf",      # 2
        "m {",                      # 3
        "  include bad.conf",       # 4
        "}",                        # 5
        "include self.conf",        # 6
        "include",                  # 7
        "include {a: 1}",           # 8
    ]))
    with pytest.raises(ParseErrors) as ei:
        conf.parse_file(main)
    d = str(tmp_path)
    assert [str(e) for e in ei.value.errors] == [
        f"{d}/main.conf:1:1: include 'missing.conf': cannot read config file {d}/missing.conf: "
        "No such file or directory",
        f"{d}/loop_b.conf:2:3: include 'loop_a.conf': include loop ({d}/loop_a.conf includes {d}/loop_b.conf "
        f"includes {d}/loop_a.conf)",
        f"{d}/bad.conf:2:1: bad: invalid size suffix in '1kbb': use K, M, G, T, P, E (powers of 1000) or KB, MB, "
        "GB, ... / KiB, MiB, GiB, ... (powers of 1024)",
        f"{d}/self.conf:1:1: include 'self.conf': include loop ({d}/self.conf includes {d}/self.conf)",
        f"{d}/main.conf:7:1: expected a file name after 'include'",
        f"{d}/main.conf:8:9: expected a file name after 'include', but found '{{'",
    ]


def test_include_in_text_is_relative_to_the_working_directory(tmp_path, monkeypatch):
    write(tmp_path / "x.conf", "a: 1")
    monkeypatch.chdir(tmp_path)
    assert values("include x.conf") == {"a": 1}


# -- lexer and parser: what is refused, and where ----------------------------------------------


@pytest.mark.parametrize("text, where, message", [
    ('name: "abc', "1:7", 'unterminated quoted string (missing closing ")'),
    ('name: "abc\nport: 1', "1:7", "unterminated quoted string"),
    ("name: 'abc", "1:7", "unterminated quoted string (missing closing ')"),
    ("m { a: 'abc }\nb: 1\n", "1:8", "unterminated quoted string (missing closing ')"),
    ('"key: 1', "1:1", "unterminated quoted key"),
    ("m { 'key: 1 }", "1:5", "unterminated quoted key"),
    ('name: "bad \\q"', "1:13", "invalid escape character 'q'"),
    ('name: "bad \\x4"', "1:13", "expected two hexadecimal digits after '\\x'"),
    ("name: my server", "1:10", "expected the value to end with a new line, a comment or ';', but got 's'"),
    ("port: 4222 5", "1:12", "expected the value to end"),
    ("listen: [::1]:4222", "1:9", 'quote an IPv6 address with its port, as in "[::1]:4222"'),
    ("m { listen: [::1]:4222 }", "1:13", 'quote an IPv6 address with its port'),
    ("port", "1:1", "key 'port' has no value"),
    ("port\n# no value\n", "1:1", "key 'port' has no value"),
    ("port:\nhost: x", "1:6", "expected a value for 'port' but found new line"),
    ("port:", "1:6", "expected a value for 'port' but found end of file"),
    ("port: ;", "1:7", "expected a value for 'port' but found ';'"),
    ("m { a: }", "1:8", "expected a value for 'a' but found '}'"),
    ("m { a }", "1:7", "expected a value for 'a' but found '}'"),
    ("m {\n  a\n}", "2:3", "key 'a' has no value"),
    ("m {\n  a:\n}", "2:5", "expected a value for 'a' but found new line"),
    (": 4222", "1:1", "unexpected key separator ':': a key is missing"),
    ("m { : 1 }", "1:5", "unexpected key separator ':'"),
    ("m { , }", "1:5", "unexpected ',' in a map: a key is missing"),
    ("m { a: 1 b: 2 }", "1:10", "expected ',' or '}' after a map value, but got 'b'"),
    ("m { a: 1 ] }", "1:10", "expected ',' or '}' after a map value, but got ']'"),
    ("a: [1,,2]", "1:7", "unexpected ',' in an array: a value is missing"),
    ("a: [,]", "1:5", "unexpected ',' in an array"),
    ("a: [1 2]", "1:7", "expected ',' or ']' after an array value, but got '2'"),
    ("a: [1; 2]", "1:6", "expected ',' or ']' after an array value, but got ';'"),
    ("m { a: [1, 2 }", "1:14", "expected ',' or ']' after an array value, but got '}'"),
    ("m { ] }", "1:5", "unexpected ']' in a map"),
    ("a: 1}", "1:5", "unexpected '}': no map is open here"),
    ("}", "1:1", "unexpected '}': no map is open here"),
    ("]", "1:1", "unexpected ']': no array is open here"),
    ("f: .5", "1:4", "floats must start with a digit"),
    ("dir: ./jwt", "1:6", "floats must start with a digit (quote a value that starts with '.', such as a path)"),
    ("f: 1.", "1:6", "floats must have a digit after the '.'"),
    ("f: 1.x", "1:6", "floats must have a digit after the '.', but got 'x'"),
    ("n: -x", "1:5", "expected a digit after '-'"),
    ("d: 2020-01-02", "1:8", "dates must be in full ISO8601 Zulu form"),
    ("d: 20-01", "1:6", "dates must be in full ISO8601 Zulu form"),
    ("s: 1kbb", "1:1", "s: invalid size suffix in '1kbb'"),
    ("m { s: 1kbb }", "1:5", "s: invalid size suffix in '1kbb'"),
    ("a: [1kbb]", "1:5", "invalid size suffix in '1kbb'"),
    ("s: 99999999999999999999", "1:1", "integer '99999999999999999999' is out of the range"),
    ("s: 9000000EB", "1:1", "is out of the range"),
    ("f: 1" + "0" * 400 + ".5", "1:1", "is out of the range"),
    ("m: {\n a: 1\n", "1:4", "unterminated map: '{' is never closed (missing '}')"),
    ("m: {", "1:4", "unterminated map"),
    ("a: [1,\n 2\n", "1:4", "unterminated array: '[' is never closed (missing ']')"),
    ("a: [", "1:4", "unterminated array"),
    ("b: (\nnever closed", "1:4", "unterminated block"),
    ("b: (\nnever closed )\n", "1:4", "unterminated block"),
    ("/ x", "1:1", "unexpected '/'"),
    ("include 'x.conf", "1:9", "unterminated quoted include path"),
])
def test_parse_errors(text, where, message):
    errors = parse_errors(text)
    assert len(errors) == 1, errors
    assert errors[0].startswith(f"t.conf:{where}: "), errors
    assert message in errors[0]


def test_a_value_on_the_line_after_its_key_is_an_error():
    # Go reads `port` then `4222` on the next line as `port: 4222` (and, inside maps, a value
    # on the line after `key:`); gnatsd says where the value is missing.
    assert parse_errors("port\n4222\ndebug: true") == ["t.conf:1:1: key 'port' has no value",
                                                         "t.conf:2:1: key '4222' has no value"]
    assert parse_errors("m {\n  debug\n  trace: true\n}") == ["t.conf:2:3: key 'debug' has no value"]
    assert parse_errors("m {\n  a:\n    1\n}") == ["t.conf:2:5: expected a value for 'a' but found new line",
                                                   "t.conf:3:5: key '1' has no value"]


def test_nested_unterminated_containers_each_report_where_they_open():
    assert parse_errors("a {\n  b [\n    1\n") == [
        "t.conf:1:3: unterminated map: '{' is never closed (missing '}')",
        "t.conf:2:5: unterminated array: '[' is never closed (missing ']')",
    ]
    assert parse_errors("a {\n  b { c: 1 }\n") == ["t.conf:1:3: unterminated map: '{' is never closed (missing '}')"]


def test_an_unclosed_quote_that_runs_on_to_the_next_one_is_reported_where_it_opens():
    # Go reads a string up to the next quote, lines included. When what follows that quote is
    # not valid, the opening quote was most likely never closed: it is reported, and the lines
    # after it are read again.
    p = conf.Parser('name: "forgot to close\nport: 4222\nhost: "localhost"\n', "t.conf")
    assert to_plain(p.parse()) == {"port": 4222, "host": "localhost"}
    assert [str(e) for e in p.errors] == ['t.conf:1:7: unterminated quoted string (missing closing "): the next " '
                                          'is at 3:7, and what follows it there is not valid']
    p = conf.Parser('m {\n  a: "x\n  b: [1, 2]\n  c: "y"\n}\nz: 1', "t.conf")
    assert to_plain(p.parse()) == {"m": {"b": [1, 2], "c": "y"}, "z": 1}
    assert [e.source() for e in p.errors] == ["t.conf:2:6"]
    # a string that really spans lines is fine
    assert values('a: "x\ny"\nb: 1') == {"a": "x\ny", "b": 1}
    # the guess can be wrong (a string that spans lines, followed by garbage): still an error there
    assert parse_errors('text: "one\ntwo" extra\n') == [
        't.conf:1:7: unterminated quoted string (missing closing "): the next " is at 2:4, and what follows it there '
        'is not valid']


def test_parse_collects_every_error_and_keeps_going():
    text = "\n".join([
        'name: "unterminated',           # 1
        "port: 4222",                    # 2
        'quote: "closed"',               # 3
        "cluster {",                     # 4
        "  listen: 0.0.0.0:6222 extra",  # 5
        '  routes: ["a", "b",, "c"]',    # 6
        "  name: ok",                    # 7
        "}",                             # 8
        "debug: true extra",             # 9
        "size: 1kbb",                    # 10
        "m { a: 1 b: 2 }",               # 11
        "trace: true",                   # 12
        "n { a: [1 2] }  x: 1",          # 13
        "z: 1",                          # 14
    ])
    p = conf.Parser(text, "m.conf")
    mapping = p.parse()
    assert [e.source() for e in p.errors] == ["m.conf:1:7", "m.conf:5:24", "m.conf:6:21", "m.conf:9:13",
                                              "m.conf:10:1", "m.conf:11:10", "m.conf:13:11"]
    assert to_plain(mapping) == {"port": 4222, "quote": "closed", "cluster": {
                                 "listen": "0.0.0.0:6222", "routes": ["a", "b"], "name": "ok"}, "debug": True, "m": {"a": 1}, "trace": True, "n": {"a": [1]},
                                 "z": 1}


def test_parse_file_errors(tmp_path):
    with pytest.raises(OSError, match="cannot read config file .*missing.conf"):
        conf.parse_file(tmp_path / "missing.conf")
    bad = tmp_path / "bin.conf"
    bad.write_bytes(b"port: \xff\xfe")
    with pytest.raises(OSError, match="not UTF-8"):
        conf.parse_file(bad)


def test_lexer_items():
    # Go: lex_test.go, with 1-based columns everywhere
    items = [(i.typ.name, i.val, i.line, i.pos) for i in conf.lex("foo = {ip='127.0.0.1', port = [4242]}")]
    assert items == [("KEY", "foo", 1, 1), ("MAP_START", "", 1, 7), ("KEY", "ip", 1, 8), ("STRING", "127.0.0.1", 1, 12),
                     ("KEY", "port", 1, 24), ("ARRAY_START", "", 1, 31), ("INTEGER", "4242", 1, 32),
                     ("ARRAY_END", "", 1, 36), ("MAP_END", "", 1, 37), ("EOF", "", 1, 38)]
    items = [(i.typ.name, i.val) for i in conf.lex("a { include 'x.conf' }\nb: $VAR\nc: yes")]
    assert items == [("KEY", "a"), ("MAP_START", ""), ("INCLUDE", "x.conf"), ("MAP_END", ""), ("KEY", "b"),
                     ("VARIABLE", "VAR"), ("KEY", "c"), ("BOOL", "yes"), ("EOF", "")]


# -- hypothesis: generated nested configs round-trip -------------------------------------------

_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"
_KEY = st.builds(lambda a, b: a + b, st.sampled_from(_LETTERS), st.text(_LETTERS + "0123456789-", max_size=12)).filter(
    lambda k: k.lower() not in ("include", "true", "false", "yes", "no", "on", "off"))
_BARE = st.builds(lambda a, b: a + b, st.sampled_from(_LETTERS + "/"), st.text(_LETTERS + "0123456789./:@-", max_size=20)
                  ).filter(lambda s: s.lower() not in ("true", "false", "yes", "no", "on", "off") and "//" not in s)
# Text for quoted strings: anything printable, tabs and new lines (quoted strings may span lines).
_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\t\n"), max_size=20)
_SIZES = {"": 1, "k": 1000, "K": 1000, "kb": 1024, "KB": 1024, "KiB": 1024, "m": 1000 ** 2, "MB": 1024 ** 2,
          "g": 1000 ** 3, "GB": 1024 ** 3, "GiB": 1024 ** 3}


class Scalar:
    """A generated scalar: how it is written and what it parses to."""

    def __init__(self, written, value):
        self.written = written
        self.value = value

    def __repr__(self):
        return self.written


def _dq(s):
    out = []
    for c in s:
        out.append({'"': '\\"', "\\": "\\\\", "\t": "\\t", "\n": "\\n"}.get(c, c))
    return '"' + "".join(out) + '"'


@st.composite
def _scalar(draw, json_only=False):
    kinds = ["int", "bool", "dq", "float"]
    if not json_only:
        kinds += ["size", "bare", "dq_raw_nl", "sq", "duration"]
    kind = draw(st.sampled_from(kinds))
    if kind == "int":
        n = draw(st.integers(-(2 ** 40), 2 ** 40))
        return Scalar(str(n), n)
    if kind == "size":
        n = draw(st.integers(0, 4096))
        suffix = draw(st.sampled_from(sorted(_SIZES)))
        return Scalar(f"{n}{suffix}", n * _SIZES[suffix])
    if kind == "bool":
        word = draw(st.sampled_from(["true", "false"] if json_only else
                                    ["true", "false", "yes", "no", "on", "off", "TRUE", "Off"]))
        return Scalar(word, word.lower() in ("true", "yes", "on"))
    if kind == "float":
        a, b = draw(st.integers(0, 999)), draw(st.integers(0, 999))
        return Scalar(f"{a}.{b}", float(f"{a}.{b}"))
    if kind == "bare":
        s = draw(_BARE)
        return Scalar(s, s)
    if kind == "dq":
        s = draw(_TEXT)
        return Scalar(_dq(s), s)
    if kind == "dq_raw_nl":  # a double-quoted string with a raw new line in it
        a, b = draw(_TEXT), draw(_TEXT)
        return Scalar(_dq(a)[:-1] + "\n" + _dq(b)[1:], a + "\n" + b)
    if kind == "sq":
        s = draw(_TEXT.filter(lambda x: "'" not in x))
        return Scalar(f"'{s}'", s)
    s = f"{draw(st.integers(1, 999))}{draw(st.sampled_from(['s', 'ms', 'h', 'us', 'ns', 'm30s']))}"
    return Scalar(s, s)


def _tree(scalars):
    return st.recursive(scalars, lambda children: st.lists(children, max_size=4)
                        | st.dictionaries(_KEY, children, max_size=4), max_leaves=12)


_TOP = st.dictionaries(_KEY, _tree(_scalar()), max_size=6)
_JSON_TOP = st.dictionaries(_KEY, _tree(_scalar(json_only=True)), max_size=6)


def _expected(node):
    if isinstance(node, dict):
        return {k: _expected(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_expected(v) for v in node]
    return node.value


class Style:
    """How to write a config: key separator, entry and element separators, key quoting,
    comments, braces on their own line."""

    def __init__(self, key_sep, map_sep, array_sep, quote_keys, comments, allman, indent):
        self.key_sep = key_sep
        self.map_sep = map_sep  # "\n", ", ", "; "
        self.array_sep = array_sep  # "\n", ", ", ","
        self.quote_keys = quote_keys  # "", '"', "'"
        self.comments = comments
        self.allman = allman
        self.indent = indent


_STYLE = st.builds(Style, st.sampled_from([": ", " = ", " ", ":", "=", " : "]), st.sampled_from(["\n", ", ", "; "]),
                   st.sampled_from(["\n", ", ", ","]), st.sampled_from(["", '"', "'"]), st.booleans(), st.booleans(),
                   st.sampled_from(["  ", "\t", ""]))


def _dump(node, style, depth):
    pad = style.indent * (depth + 1)
    end_pad = style.indent * depth
    if isinstance(node, dict):
        entries = [_dump_entry(k, v, style, depth + 1) for k, v in node.items()]
        if style.map_sep == "\n":
            note = " # note" if style.comments else ""
            return "{\n" + "".join(f"{pad}{e}{note}\n" for e in entries) + end_pad + "}"
        return "{" + style.map_sep.join(entries) + "}"
    if isinstance(node, list):
        items = [_dump(v, style, depth + 1) for v in node]
        if style.array_sep == "\n":
            note = " // note" if style.comments else ""
            return "[\n" + "".join(f"{pad}{i}{note}\n" for i in items) + end_pad + "]"
        return "[" + style.array_sep.join(items) + "]"
    return node.written


def _dump_entry(k, v, style, depth):
    key = f"{style.quote_keys}{k}{style.quote_keys}"
    value = _dump(v, style, depth)
    if style.allman and isinstance(v, (dict, list)) and style.key_sep.strip() in ("", ":", "="):
        return f"{key}{style.key_sep.rstrip()}\n{style.indent * depth}{value}"
    return f"{key}{style.key_sep}{value}"


def _dump_config(top, style):
    entries = [_dump_entry(k, v, style, 0) for k, v in top.items()]
    if style.map_sep == "\n":
        note = " # note" if style.comments else ""
        return "# generated\n" + "".join(f"{e}{note}\n" for e in entries)
    return style.map_sep.join(entries)


def _check_key_positions(tokens, text_lines):
    """Every map key's token points at the key (or its opening quote) in the text."""
    for k, tk in tokens.items():
        line = text_lines[tk.line - 1]
        assert line[tk.pos - 1:].lstrip("\"'").startswith(k), (k, tk.source(), line)
        _check_nested_positions(tk.value, text_lines)


def _check_nested_positions(value, text_lines):
    if isinstance(value, dict):
        _check_key_positions(value, text_lines)
    elif isinstance(value, list):
        for tk in value:
            _check_nested_positions(tk.value, text_lines)


@settings(max_examples=100, deadline=None)
@given(_TOP, _STYLE)
def test_generated_configs_round_trip(top, style):
    text = _dump_config(top, style)
    tokens = parse(text, "g.conf", env={})
    assert to_plain(tokens) == _expected(top)
    _check_key_positions(tokens, text.split("\n"))


@settings(max_examples=100, deadline=None)
@given(_JSON_TOP, st.sampled_from([None, 2]))
def test_generated_json_configs_round_trip(top, indent):
    # Go: TestJSONCompat. A JSON object is a config file.
    expected = _expected(top)
    assert values(json.dumps(expected, indent=indent, ensure_ascii=False)) == expected


@settings(max_examples=100, deadline=None)
@given(_TOP, _STYLE, st.data())
def test_generated_configs_through_variables_and_includes(tmp_path_factory, top, style, data):
    # Each top-level value goes through a variable defined in an included file.
    d = tmp_path_factory.mktemp("gen")
    names = {k: f"v.{i}" for i, k in enumerate(top)}  # not a generated key
    (d / "vars.conf").write_text(_dump_config({names[k]: v for k, v in top.items()}, style))
    refs = "\n".join(f"{k}: ${names[k]}" for k in top)
    inline = data.draw(st.booleans())
    main = d / "main.conf"
    main.write_text(f"include vars.conf\n{refs}\n" if not inline else f"m {{\n include 'vars.conf'\n {refs}\n}}\n")
    got = to_plain(conf.parse_file(main, env={}))
    if inline:
        got = got["m"]
    assert {k: got[k] for k in top} == _expected(top)


def test_closing_bracket_at_a_map_line_start_is_one_error():
    """Found by the fuzz test below: the lexer reported it forever, eating memory."""
    with pytest.raises(ParseErrors) as e:
        parse("- {\n]", "f.conf", env={})
    assert [str(x) for x in e.value.errors] == [
        "f.conf:2:1: unexpected ']' in a map", "f.conf:1:3: unterminated map: '{' is never closed (missing '}')"]


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80) | st.text(alphabet="{}[]()\"'\n :=,;#/$\\ab1.-", max_size=60))
def test_arbitrary_text_never_crashes_the_parser(text):
    try:
        parse(text, "f.conf", env={})
    except ParseErrors as e:
        assert e.errors
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
        jetstream: disabled
        store_dir: /tmp/js
        http: 127.0.0.1:8333
        authorization {
          user: alice
          password: "s3cret"
          timeout: 2.5
        }
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
    assert (o.http_host, o.http_port) == ("127.0.0.1", 8333)
    assert o.jetstream is False and o.store_dir == "/tmp/js"
    assert (o.username, o.password, o.authorization, o.auth_timeout) == ("alice", "s3cret", "", 2.5)
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
    ("jetstream { enabled: false, store_dir: /x }", "jetstream", False),
    ("jetstream: disable", "jetstream", False),
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
    ("jetstream: maybe", "Expected 'enabled' or 'disabled' for string value, got 'maybe'"),
    ("port { a: 1 }", "port: expected an integer, got a map"),
    ("server_name: [a]", "server_name: expected a string, got an array"),
    ("listen: [1]", "listen: expected port or host:port, got an array"),
    ("ping_interval: {}", 'ping_interval: expected a duration such as "10s", got a map'),
])
def test_process_config_file_errors(tmp_path, text, message):
    err = config_errors(tmp_path, text)
    assert len(err.errors) == 1, str(err)
    assert str(err.errors[0]) == f"{tmp_path / 'test.conf'}:1:1: {message}" or message in str(err.errors[0])
    assert str(err.errors[0]).startswith(f"{tmp_path / 'test.conf'}:1:1: ")


def test_process_config_file_reports_all_errors_in_file_order(tmp_path):
    (tmp_path / "inc.conf").write_text("\n\ndebug: maybe\n")
    err = config_errors(tmp_path, 'port: abc\nname: "x"\nfoo: 1\nping_interval: 5\nmax_payload: {a: 1}\n'
                                  'include inc.conf\ncluster {}\nsize: 1kbb\n')
    path = str(tmp_path / "test.conf")
    inc = str(tmp_path / "inc.conf")
    assert str(err).splitlines() == [
        f'{path}:4:1: invalid use of field "ping_interval": ping_interval should be converted to a duration',
        f'{path}:1:1: port: expected an integer, got string "abc"',
        f'{path}:2:1: unknown field "name"',
        f'{path}:3:1: unknown field "foo"',
        f"{path}:5:1: max_payload: expected an integer, got a map",
        f"{path}:7:1: cluster is not yet supported by gnatsd",
        f"{path}:8:1: size: invalid size suffix in '1kbb': use K, M, G, T, P, E (powers of 1000) or KB, MB, GB, ... "
        "/ KiB, MiB, GiB, ... (powers of 1024)",
        f'{inc}:3:1: debug: expected a boolean (true/false), got string "maybe"',
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




# -- authorization, variables and includes in option processing --------------------------------


@pytest.mark.parametrize("text, user, password, token, timeout", [
    ("authorization { user: alice, password: pw }", "alice", "pw", "", 2.0),
    ("authorization {\n  username: alice\n  pass: 'p w'\n  timeout: 3\n}", "alice", "p w", "", 3.0),
    ("authorization { user: alice }", "alice", "", "", 2.0),
    ("authorization { token: t0k3n, timeout: 0.5 }", "", "", "t0k3n", 0.5),
    ('authorization { token: "$x" }', "", "", "$x", 2.0),
    ("authorization { timeout: 0 }", "", "", "", 2.0),  # Go: 0 is the default
    ("authorization {}", "", "", "", 2.0),
    ("PASS: secret\nauthorization { user: a, password: $PASS }", "a", "secret", "", 2.0),
    ("authorization { USER: a, Password: b }", "a", "b", "", 2.0),
])
def test_authorization(tmp_path, text, user, password, token, timeout):
    o = load(tmp_path, text)
    set_baseline_options(o)  # the default auth timeout (0 in the options) is set when the server starts
    assert (o.username, o.password, o.authorization, o.auth_timeout) == (user, password, token, timeout)


@pytest.mark.parametrize("text, where, message", [
    ("authorization: secret", "1:1", 'authorization: expected a map such as { user: alice, password: secret } or '
                                     '{ token: secret }, got string "secret"'),
    ("authorization { user: a, token: t }", "1:1", "Cannot have a user/pass and token"),
    ("authorization { password: a, token: t }", "1:1", "Cannot have a user/pass and token"),
    ("authorization {\n  users = [ {user: a, password: b} ]\n  token: t\n}", "1:1",
     "Can not have a token and a users array"),
    ("authorization {\n  usr: a\n}", "2:3", 'unknown field "usr" in authorization'),
    ("authorization { user: 1 }", "1:17", "authorization user: expected a string, got integer 1"),
    ("authorization { token: [a] }", "1:17", "authorization token: expected a string, got an array"),
    ("authorization { timeout: 2s }", "1:17", 'authorization timeout: expected a number of seconds such as 2 or 0.5, '
                                          'got string "2s"'),
    ("authorization { timeout: -1 }", "1:17", "authorization timeout: must be zero or more seconds, got -1"),
    ("no_auth_user: 1", "1:1", "no_auth_user: expected a string, got integer 1"),
])
def test_authorization_errors(tmp_path, text, where, message):
    err = config_errors(tmp_path, text)
    assert [str(e) for e in err.errors] == [f"{tmp_path / 'test.conf'}:{where}: {message}"]


def test_authorization_from_variables_and_includes(tmp_path):
    (tmp_path / "auth.conf").write_text("user: bob\npassword: $BOB_PASS\n")
    path = tmp_path / "main.conf"
    path.write_text("BOB_PASS = 'from file'\nauthorization {\n  include auth.conf\n}\n")
    o = Options()
    # the included file does not see the including file's variables, only the environment
    with pytest.raises(ProcessConfigErr, match=r"auth\.conf:2:11: variable reference for '\$BOB_PASS' can not be"):
        process_config_file(o, str(path))
    path.write_text("authorization {\n  include auth.conf\n}\n")
    os.environ["BOB_PASS"] = "from-env"
    try:
        process_config_file(o, str(path))
    finally:
        del os.environ["BOB_PASS"]
    assert (o.username, o.password) == ("bob", "from-env")


def test_used_variables_are_not_unknown_fields(tmp_path):
    # Go: processConfigFileLine skips tokens with IsUsedVariable
    o = load(tmp_path, "MY_PORT = 4333\nport: $MY_PORT\nLIMIT: 2MB\nmax_payload: $LIMIT\n")
    assert (o.port, o.max_payload) == (4333, 2 * 1024 * 1024)
    err = config_errors(tmp_path, "UNUSED = 1\nport: 4222")
    assert [str(e).split(": ", 1)[1] for e in err.errors] == ['unknown field "UNUSED"']
    # a variable named like a field is that field too (Go matches keys in lower case)
    assert load(tmp_path, "PORT = 4333").port == 4333


def test_variables_keep_their_type_for_durations(tmp_path):
    o = load(tmp_path, "PING = 2m\nping_interval: $PING\nWD = \"500ms\"\nwrite_deadline: $WD")
    assert (o.ping_interval, o.write_deadline) == (120.0, 0.5)


def test_core_options_from_includes_and_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("GNATSD_TEST_NAME", "from-env")
    monkeypatch.setenv("GNATSD_TEST_PAYLOAD", "4MB")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "limits.conf").write_text("max_payload: $GNATSD_TEST_PAYLOAD\nmax_pending: 64MB\n"
                                                     "include ../logging.conf\n")
    (tmp_path / "logging.conf").write_text("debug: true\nlog_file: /tmp/x.log\n")
    o = load(tmp_path, "server_name: $GNATSD_TEST_NAME\ninclude conf.d/limits.conf\nport: 4333\n")
    assert (o.server_name, o.max_payload, o.max_pending, o.debug, o.log_file, o.port) == (
        "from-env", 4 * 1024 ** 2, 64 * 1024 ** 2, True, "/tmp/x.log", 4333)


# -- blocks for features that come later -------------------------------------------------------


@pytest.mark.parametrize("text, message", [
    ("cluster {\n  name: c1\n  listen: 0.0.0.0:6222\n  routes: [nats://a:6222, nats://b:6222]\n}",
     "cluster is not yet supported by gnatsd"),
    ("gateway { name: A, port: 7222, gateways: [ {name: B, urls: [nats://b:7222]} ] }",
     "gateway is not yet supported by gnatsd"),
    ("leafnodes { remotes = [ { url: nats://hub:7422 } ] }", "leafnodes is not yet supported by gnatsd"),
    ("leaf { port: 7422 }", "leaf is not yet supported by gnatsd"),
    ("mqtt { port: 1883 }", "mqtt is not yet supported by gnatsd"),
    ("resolver { type: full, dir: './jwt' }",
     "resolver {dir, type} (the FULL and CACHE resolvers) is not yet supported by gnatsd"),
    ('resolver: URL("http://localhost:9090/jwt/v1/accounts/")', "resolver URL(...) is not yet supported by gnatsd"),
    ("server_tags: [a, b]", "server_tags is not yet supported by gnatsd"),
    ("ocsp: true", "ocsp is not yet supported by gnatsd"),
    ("disable_sublist_cache: true", "disable_sublist_cache is not yet supported by gnatsd"),
    # wrong shapes are reported as such
    ("cluster: nats://0.0.0.0:6222", 'cluster: expected a map, got string "nats://0.0.0.0:6222"'),
    ("tls: true", "tls: expected a map such as { cert_file: server.pem, key_file: server-key.pem }, got boolean true"),
    ("accounts: 1", "accounts: expected a map of accounts or an array of account names, got integer 1"),
    ("ocsp: maybe", 'ocsp: expected a boolean (true/false) or a map, got string "maybe"'),
    ("no_system_account: 1", "no_system_account: expected a boolean (true/false), got integer 1"),
])
def test_blocks_not_yet_supported(tmp_path, text, message):
    err = config_errors(tmp_path, "port: 4222\n" + text)
    assert [str(e) for e in err.errors] == [f"{tmp_path / 'test.conf'}:2:1: {message}"]


def test_max_sub_tokens(tmp_path):
    assert load(tmp_path, "max_sub_tokens: 3").max_sub_tokens == 3
    assert load(tmp_path, "max_subscription_tokens: 255").max_sub_tokens == 255
    for text, message in (("max_sub_tokens: 256", "max_sub_tokens value is too big"),
                          ("max_sub_tokens: 0", "max_sub_tokens value can not be negative")):
        err = config_errors(tmp_path, text)
        assert [e.reason for e in err.errors] == [message]


@pytest.mark.parametrize("text", ["ocsp: false", "disable_sublist_cache: false", "no_sublist_cache: false",
                                  "no_system_account: true", "no_sys_acc: false", "allow_non_tls: true",
                                  "connect_error_reports: 10", "reconnect_error_reports: 5", "jetstream: disabled",
                                  "jetstream { enabled: false }", "jetstream { disabled: true }"])
def test_settings_that_ask_for_nothing_are_accepted(tmp_path, text):
    load(tmp_path, text)


def test_every_unsupported_block_is_reported(tmp_path):
    err = config_errors(tmp_path, "tls {\n}\naccounts { A: {} }\njetstream: true\nport: 1\ncluster {}\n")
    assert [(e.line, e.pos) for e in err.errors] == [(1, 1), (6, 1)]


# -- real-world configs (tests/configs) --------------------------------------------------------

LOADS = {
    "server_ping.conf": {"ping_interval": 0.1, "ping_max": 3},
    "server_max_payload.conf": {"max_payload": 1024},
    "server_auth_token.conf": {"authorization": "test_token_123"},
    "server_auth_user_pass.conf": {"username": "testuser", "password": "testpass", "auth_timeout": 1.5},
    "port.conf": {"port": 4567},
    "core.conf": {"host": "0.0.0.0", "port": 4222, "server_name": "n1", "http_port": 8222, "max_payload": 2 * 1024 ** 2,
                  "max_pending": 64 * 1024 ** 2, "max_connections": 1000, "max_subs": 100, "ping_interval": 20.0,
                  "write_deadline": 5.0, "lame_duck_duration": 60.0, "lame_duck_grace_period": 5.0,
                  "debug": False, "trace": False, "logtime": True, "log_file": "/var/log/nats/nats.log",
                  "log_size_limit": 100 * 1024 ** 2, "pid_file": "/var/run/nats/nats.pid",
                  "username": "app", "password": "s3cr3t", "auth_timeout": 2.0},
    "json.conf": {"http_port": 8227, "port": 4227, "write_deadline": 3600.0, "debug": True,
                  "max_control_line": 1024},
    "jetstream.conf": {"jetstream": True},
    "js_limits.conf": {"jetstream": True, "jetstream_domain": "test-domain"},
    "server_auth_users.conf": {"users": [User("testuser", "testpass"), User("other", "pass2")], "nkeys": None},
    "nkeys_server.conf": {"accounts": [AccountConfig("acme")], "users": None},
    "server_websocket.conf": {"websocket": WebsocketOpts(host="", port=-1, no_tls=True)},
    "ws_allman.conf": {"websocket": WebsocketOpts(port=8080, no_tls=True)},
    "server_auth_nkey.conf": {"users": None,
                              "nkeys": [NkeyUser("UBABIZX6SZFAKHK2KGUFD6QH53FDAH5QVCH2R5MJLFPEVYAW22QWQQCX")]},
}

REFUSED = {
    "server_tls.conf": ["2:1: error parsing X509 certificate/key pair: open ./tests/certs/server-cert.pem: "
                        "no such file or directory"],
    # the JWTs in this copy are cut short, as nats-server 2.9.10 reports too
    "resolver_preload.conf": ["1:1: error parsing operator JWT: claim failed V1 signature verification",
                              "8:4: invalid account JWT"],
    "cluster.conf": ["7:1: cluster is not yet supported by gnatsd"],
    "invalid.conf": ['2:3: port: expected an integer, got string ":"',
                     "2:13: expected the value to end with a new line, a comment or ';', but got '\"'"],
}


@pytest.mark.parametrize("name", sorted(LOADS))
def test_real_world_configs_that_load(name):
    o = Options()
    process_config_file(o, str(CONFIGS / name))
    assert {attr: getattr(o, attr) for attr in LOADS[name]} == LOADS[name]


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_real_world_configs_that_are_refused(name):
    with pytest.raises(ProcessConfigErr) as ei:
        process_config_file(Options(), str(CONFIGS / name))
    got = [str(e) for e in ei.value.errors]
    assert len(got) == len(REFUSED[name]), got
    for line, want in zip(got, REFUSED[name]):
        assert line.startswith(f"{CONFIGS / name}:{want}"), (line, want)


@pytest.mark.skipif(shutil.which("nats-server") is None, reason="needs the nats-server binary")
@pytest.mark.parametrize("name", sorted(set(LOADS) | {"server_auth_users.conf", "server_websocket.conf",
                                                        "ws_allman.conf", "jetstream.conf", "cluster.conf"}))
def test_real_world_configs_are_valid_for_nats_server(name, tmp_path):
    # the same files pass `nats-server -t` (2.9.10): gnatsd reads what Go reads
    r = subprocess.run(["nats-server", "-t", "-c", str(CONFIGS / name)], capture_output=True, text=True, timeout=30,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr


def test_authorization_from_a_config_is_enforced(make_server, raw_conn):
    o = Options(host="127.0.0.1", port=-1)
    process_config_file(o, str(CONFIGS / "server_auth_token.conf"))
    server = make_server(authorization=o.authorization)
    ok = raw_conn(server, auth_token="test_token_123")
    assert ok.info_json["auth_required"] is True
    bad = raw_conn(server, connect=False)
    bad.send(b'CONNECT {"verbose":false,"auth_token":"wrong"}\r\nPING\r\n')
    assert b"-ERR 'Authorization Violation'" in bad.read_all_until_closed()

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
