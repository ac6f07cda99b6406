"""JetStream streams (gnatsd/js/): nats-py's JetStream API, Go's error JSON for bad requests
and bad publishes, limits, and file streams surviving a restart. The expected JSON was
taken from nats-server 2.9.10 on the same requests."""
from __future__ import annotations

import asyncio
import json

import nats
import pytest
from nats.js.errors import APIError, NotFoundError, ServerError

from gnatsd.js.stream import StreamConfig, check_stream_cfg

from conftest import MSG_RE
from test_cli import gnatsd  # noqa: F401 - the subprocess fixture


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def js_server(make_server, tmp_path):
    return make_server(jetstream=True, store_dir=str(tmp_path))


def request(raw, subject, body=b"", headers=None):
    """A raw request; returns (header bytes, body bytes) of the answer."""
    raw.send(b"SUB _INBOX.r 99\r\n")
    if headers:
        hdr = b"NATS/1.0\r\n" + b"".join(k.encode() + b": " + v.encode() + b"\r\n" for k, v in headers.items()) + b"\r\n"
        raw.send(b"HPUB %s _INBOX.r %d %d\r\n%s%s\r\n" % (subject.encode(), len(hdr), len(hdr) + len(body), hdr, body))
    else:
        raw.send(b"PUB %s _INBOX.r %d\r\n%s\r\n" % (subject.encode(), len(body), body))
    m = raw.expect(rb"(H?)MSG _INBOX\.r 99 (?:(\d+) )?(\d+)\r\n")
    hlen = int(m.group(2) or 0)
    data = raw.read_exact(int(m.group(3)) + 2)[:-2]
    raw.send(b"UNSUB 99\r\n")
    return data[:hlen], data[hlen:]


def api(raw, subject, body=b""):
    return json.loads(request(raw, subject, body)[1])


# -- enabling ----------------------------------------------------------------------------------


def test_info_and_account_info(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    assert c.info_json["jetstream"] is True
    assert api(c, "$JS.API.INFO") == {
        "type": "io.nats.jetstream.api.v1.account_info_response", "memory": 0, "storage": 0, "streams": 0,
        "consumers": 0, "limits": {"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1,
                                   "max_ack_pending": -1, "memory_max_stream_bytes": -1,
                                   "storage_max_stream_bytes": -1, "max_bytes_required": False},
        "api": {"total": 0, "errors": 0}}


def test_jetstream_off_info_has_no_flag(server, raw_conn):
    assert "jetstream" not in raw_conn(server).info_json


def test_config_block(tmp_path):
    from gnatsd.opts import Options, ProcessConfigErr, process_config_file
    conf = tmp_path / "js.conf"
    conf.write_text(f'jetstream {{ store_dir: "{tmp_path}", max_mem: 1G, max_file_store: "2K", domain: hub }}\n'
                    'accounts { A { jetstream: enabled }, B { jetstream { max_mem: 1M, max_bytes: true } }, '
                    'C { jetstream: false } }\n')
    o = Options()
    process_config_file(o, str(conf))
    assert (o.jetstream, o.store_dir, o.jetstream_max_memory, o.jetstream_max_store, o.jetstream_domain) == (
        True, str(tmp_path), 1_000_000_000, 2048, "hub")
    assert [a.jetstream for a in o.accounts] == [True, True, False]
    assert (o.accounts[1].jetstream_limits["max_memory"], o.accounts[1].jetstream_limits["max_bytes_required"],
            o.accounts[1].jetstream_limits["max_streams"]) == (1_000_000, True, -1)
    conf.write_text('accounts { A { jetstream { max_mem: "lots" } } }\n')
    with pytest.raises(ProcessConfigErr) as e:
        process_config_file(Options(), str(conf))
    assert 'Expected a parseable size for "max_mem", got lots' in str(e.value)
    conf.write_text('jetstream: maybe\n')
    with pytest.raises(ProcessConfigErr) as e:
        process_config_file(Options(), str(conf))
    assert "Expected 'enabled' or 'disabled' for string value, got 'maybe'" in str(e.value)
    conf.write_text('store_dir: /a\njetstream { store_dir: /b }\n')
    with pytest.raises(ProcessConfigErr) as e:
        process_config_file(Options(), str(conf))
    assert "Duplicate 'store_dir' configuration" in str(e.value)


# -- streams through nats-py -------------------------------------------------------------------


def test_nats_py_stream_lifecycle(js_server):
    async def main():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        si = await js.add_stream(name="ORDERS", subjects=["orders.*"])
        assert si.config.name == "ORDERS" and si.config.duplicate_window == 120.0
        ack = await js.publish("orders.new", b"one")
        assert (ack.stream, ack.seq, ack.duplicate) == ("ORDERS", 1, None)
        ack = await js.publish("orders.new", b"two", headers={"Nats-Msg-Id": "x"})
        assert ack.seq == 2
        ack = await js.publish("orders.new", b"two", headers={"Nats-Msg-Id": "x"})
        assert (ack.seq, ack.duplicate) == (2, True)
        msg = await js.get_msg("ORDERS", 1)
        assert (msg.subject, msg.data, msg.seq) == ("orders.new", b"one", 1)
        last = await js.get_last_msg("ORDERS", "orders.new")
        assert last.seq == 2
        si = await js.update_stream(name="ORDERS", subjects=["orders.*", "refunds"], max_msgs=100)
        assert si.config.subjects == ["orders.*", "refunds"] and si.config.max_msgs == 100
        await js.publish("refunds", b"r")
        assert await js.delete_msg("ORDERS", 1)
        info = await js.stream_info("ORDERS")
        assert (info.state.messages, info.state.first_seq, info.state.last_seq) == (2, 2, 3)
        assert [s.config.name for s in await js.streams_info()] == ["ORDERS"]
        assert await js.purge_stream("ORDERS", subject="refunds")
        assert (await js.stream_info("ORDERS")).state.messages == 1
        ai = await js.account_info()
        assert ai.streams == 1 and ai.api.total > 0
        assert await js.delete_stream("ORDERS")
        with pytest.raises(NotFoundError):
            await js.stream_info("ORDERS")
        with pytest.raises(ServerError) as e:
            await js.add_stream(name="A", subjects=["x"], storage="memory", discard="new", max_msgs=1,
                                max_age=0.5, duplicate_window=1.0)
        assert (e.value.err_code, e.value.description) == (10052, "duplicates window can not be larger then max age")
        await nc.close()
    run(main())


def test_nats_py_expected_headers(js_server):
    async def main():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(name="K", subjects=["k.>"], storage="memory")
        await js.publish("k.a", b"1", headers={"Nats-Msg-Id": "m1"})
        with pytest.raises(APIError) as e:
            await js.publish("k.a", b"2", stream="OTHER")
        assert (e.value.err_code, e.value.description) == (10060, "expected stream does not match")
        with pytest.raises(APIError) as e:
            await js.publish("k.a", b"2", headers={"Nats-Expected-Last-Sequence": "7"})
        assert (e.value.err_code, e.value.description) == (10071, "wrong last sequence: 1")
        with pytest.raises(APIError) as e:
            await js.publish("k.b", b"2", headers={"Nats-Expected-Last-Subject-Sequence": "1"})
        assert (e.value.err_code, e.value.description) == (10071, "wrong last sequence: 0")
        with pytest.raises(APIError) as e:
            await js.publish("k.a", b"2", headers={"Nats-Expected-Last-Msg-Id": "zz"})
        assert (e.value.err_code, e.value.description) == (10070, "wrong last msg ID: m1")
        ack = await js.publish("k.a", b"2", headers={"Nats-Expected-Last-Msg-Id": "m1",
                                                     "Nats-Expected-Last-Sequence": "1"})
        assert ack.seq == 2
        with pytest.raises(APIError) as e:
            await js.publish("k.a", b"3", headers={"Nats-Rollup": "all"})
        assert (e.value.err_code, e.value.description) == (10111, "rollup not permitted")
        await nc.close()
    run(main())


# -- raw requests: Go's JSON -------------------------------------------------------------------

CREATE = "io.nats.jetstream.api.v1.stream_create_response"
S1_CONFIG = {"name": "S1", "subjects": ["foo", "bar.*"], "retention": "limits", "max_consumers": -1, "max_msgs": -1,
             "max_bytes": -1, "max_age": 0, "max_msgs_per_subject": -1, "max_msg_size": -1, "discard": "old",
             "storage": "file", "num_replicas": 1, "duplicate_window": 120000000000, "allow_direct": False,
             "mirror_direct": False, "sealed": False, "deny_delete": False, "deny_purge": False,
             "allow_rollup_hdrs": False}
EMPTY_STATE = {"messages": 0, "bytes": 0, "first_seq": 0, "first_ts": "0001-01-01T00:00:00Z", "last_seq": 0,
               "last_ts": "0001-01-01T00:00:00Z", "consumer_count": 0}


def err(rtype, code, err_code, description, **extra):
    d = {"type": rtype, "error": {"code": code, "err_code": err_code, "description": description}}
    d.update(extra)
    return d


def test_create_response_bytes_and_order(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    _, body = request(c, "$JS.API.STREAM.CREATE.S1", b'{"name":"S1","subjects":["foo","bar.*"]}')
    resp = json.loads(body)
    assert list(resp) == ["type", "config", "created", "state", "did_create"]
    assert resp["config"] == S1_CONFIG and list(resp["config"]) == list(S1_CONFIG)
    assert resp["state"] == EMPTY_STATE
    # the same config again is fine; a different one is not
    assert api(c, "$JS.API.STREAM.CREATE.S1", b'{"name":"S1","subjects":["foo","bar.*"]}')["did_create"]
    info = api(c, "$JS.API.STREAM.INFO.S1")
    assert list(info)[:4] == ["type", "total", "offset", "limit"]


@pytest.mark.parametrize("subject, body, expected", [
    ("$JS.API.STREAM.CREATE.S1", b'{"name":"S1","subjects":["foo"]}',
     err(CREATE, 400, 10058, "stream name already in use with a different configuration")),
    ("$JS.API.STREAM.CREATE.S2", b'{"name":"S2","subjects":["foo"]}',
     err(CREATE, 400, 10065, "subjects overlap with an existing stream")),
    ("$JS.API.STREAM.CREATE.S3", b'{"name":"S4"}', err(CREATE, 400, 10056, "stream name in subject does not match request")),
    ("$JS.API.STREAM.CREATE.S3", b"{bad json", err(CREATE, 400, 10025, "invalid JSON")),
    ("$JS.API.STREAM.CREATE.S3", b"", err(CREATE, 400, 10025, "invalid JSON")),
    ("$JS.API.STREAM.CREATE.S5", b'{"name":"S5","storage":"disk"}', err(CREATE, 400, 10025, "invalid JSON")),
    ("$JS.API.STREAM.CREATE.S5", b'{"name":"S5","retention":"foo"}', err(CREATE, 400, 10025, "invalid JSON")),
    ("$JS.API.STREAM.CREATE.S5", b'{"name":"S5","max_msgs":"x"}', err(CREATE, 400, 10025, "invalid JSON")),
    ("$JS.API.STREAM.CREATE.S6", b'{"name":"S6","max_age":500000000,"duplicate_window":1000000000}',
     err(CREATE, 500, 10052, "duplicates window can not be larger then max age")),
    ("$JS.API.STREAM.CREATE.S7", b'{"name":"S7","subjects":["$JS.API.>"]}',
     err(CREATE, 500, 10052, "subjects overlap with jetstream api")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","subjects":["n.*","n.>"]}',
     err(CREATE, 500, 10052, 'subject "n.*" overlaps with "n.>"')),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","subjects":["n","n"]}', err(CREATE, 500, 10052, "duplicate subjects detected")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","subjects":["n.."]}', err(CREATE, 500, 10052, "invalid subject")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","max_age":1000}', err(CREATE, 500, 10052, "max age needs to be >= 100ms")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","num_replicas":3}',
     err(CREATE, 500, 10074, "replicas > 1 not supported in non-clustered mode")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","num_replicas":-1}', err(CREATE, 400, 10133, "replicas count cannot be negative")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","sealed":true}',
     err(CREATE, 500, 10052, "stream configuration for create can not be sealed")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","deny_purge":true,"allow_rollup_hdrs":true}',
     err(CREATE, 500, 10052, "roll-ups require the purge permission")),
    ("$JS.API.STREAM.CREATE.N", b'{"name":"N","discard_new_per_subject":true}',
     err(CREATE, 500, 10052, "discard new per subject requires discard new policy to be set")),
    ("$JS.API.STREAM.INFO.NOPE", b"", err("io.nats.jetstream.api.v1.stream_info_response", 404, 10059,
                                          "stream not found", total=0, offset=0, limit=0)),
    ("$JS.API.STREAM.UPDATE.S1", b'{"name":"S1","storage":"memory"}',
     err("io.nats.jetstream.api.v1.stream_update_response", 500, 10052,
         "stream configuration update can not change storage type")),
    ("$JS.API.STREAM.UPDATE.NOPE", b'{"name":"NOPE"}',
     err("io.nats.jetstream.api.v1.stream_update_response", 404, 10059, "stream not found")),
    ("$JS.API.STREAM.DELETE.S1", b'{"x":1}', err("io.nats.jetstream.api.v1.stream_delete_response", 400, 10038,
                                                 "expected an empty request payload")),
    ("$JS.API.STREAM.MSG.GET.S1", b"", err("io.nats.jetstream.api.v1.stream_msg_get_response", 400, 10003, "bad request")),
    ("$JS.API.STREAM.MSG.GET.S1", b'{"seq":99}',
     err("io.nats.jetstream.api.v1.stream_msg_get_response", 404, 10037, "no message found")),
    ("$JS.API.STREAM.MSG.DELETE.S1", b'{"seq":1}',
     err("io.nats.jetstream.api.v1.stream_msg_delete_response", 500, 10057, "no message found")),
    ("$JS.API.STREAM.PURGE.S1", b'{"seq":2,"keep":1}',
     err("io.nats.jetstream.api.v1.stream_purge_response", 400, 10003, "bad request", purged=0)),
    ("$JS.API.STREAM.NAMES", b'{"offset":"x"}', err("io.nats.jetstream.api.v1.stream_names_response", 400, 10025,
                                                   "invalid JSON", total=0, offset=0, limit=0, streams=None)),
])
def test_bad_requests_get_gos_errors(js_server, raw_conn, subject, body, expected):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S1", b'{"name":"S1","subjects":["foo","bar.*"]}')
    request(c, "foo", b"x")
    api(c, "$JS.API.STREAM.MSG.DELETE.S1", b'{"seq":1}')
    assert api(c, subject, body) == expected
    assert api(c, "$JS.API.STREAM.NAMES")["streams"] == ["S1"]  # still serving


def test_unknown_api_subject_gets_no_answer(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    c.send(b"SUB r 1\r\nPUB $JS.API.STREAM.FOO r 0\r\n\r\nPUB $JS.API.CONSUMER.INFO.A.B r 0\r\n\r\n")
    c.ping_pong()
    assert api(c, "$JS.API.INFO")["streams"] == 0
    assert MSG_RE.search(c.buf) is None


def test_pub_ack_bytes_and_limits(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.L", b'{"name":"L","subjects":["l"],"max_msgs":1,"discard":"new",'
                                      b'"max_msg_size":10,"storage":"memory"}')
    assert request(c, "l", b"1")[1] == b'{"stream":"L", "seq":1}'
    assert json.loads(request(c, "l", b"2")[1]) == {
        "error": {"code": 503, "err_code": 10077, "description": "maximum messages exceeded"}, "stream": "L", "seq": 0}
    assert json.loads(request(c, "l", b"01234567890")[1])["error"] == {
        "code": 400, "err_code": 10054, "description": "message size exceeds maximum allowed"}


def test_dedupe_and_sealed(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.D", b'{"name":"D","subjects":["d"],"storage":"memory"}')
    assert request(c, "d", b"1", {"Nats-Msg-Id": "a1"})[1] == b'{"stream":"D", "seq":1}'
    assert request(c, "d", b"1", {"Nats-Msg-Id": "a1"})[1] == b'{"stream":"D", "seq":1,"duplicate": true}'
    resp = api(c, "$JS.API.STREAM.UPDATE.D", b'{"name":"D","subjects":["d"],"storage":"memory","sealed":true}')
    assert resp["config"]["sealed"] and resp["config"]["deny_delete"] and resp["config"]["discard"] == "new"
    assert json.loads(request(c, "d", b"2")[1])["error"]["err_code"] == 10109
    assert api(c, "$JS.API.STREAM.PURGE.D")["error"]["err_code"] == 10109


def test_direct_get(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.K", b'{"name":"K","subjects":["k.>"],"allow_direct":true,"storage":"memory"}')
    request(c, "k.a", b"v1")
    hdr, body = request(c, "$JS.API.DIRECT.GET.K", b'{"seq":1}')
    assert body == b"v1"
    assert hdr.startswith(b"NATS/1.0\r\nNats-Stream: K\r\nNats-Subject: k.a\r\nNats-Sequence: 1\r\nNats-Time-Stamp: ")
    assert request(c, "$JS.API.DIRECT.GET.K.k.a")[1] == b"v1"
    assert request(c, "$JS.API.DIRECT.GET.K", b'{"seq":9}')[0] == b"NATS/1.0 404 Message Not Found\r\n\r\n"
    assert request(c, "$JS.API.DIRECT.GET.K", b"")[0] == b"NATS/1.0 408 Empty Request\r\n\r\n"
    assert request(c, "$JS.API.DIRECT.GET.K", b"{bad")[0] == b"NATS/1.0 408 Malformed Request\r\n\r\n"


def test_file_streams_survive_restart(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path))
    c = raw_conn(s, headers=True)
    created = api(c, "$JS.API.STREAM.CREATE.F", b'{"name":"F","subjects":["f.>"],"max_msgs_per_subject":5}')
    for i in range(3):
        request(c, "f.x", b"m%d" % i, {"Nats-Msg-Id": "id%d" % i})
    c.close()
    s.stop_thread()
    assert (tmp_path / "jetstream" / "$G" / "streams" / "F" / "meta.inf").exists()
    s2 = make_server(jetstream=True, store_dir=str(tmp_path))
    c2 = raw_conn(s2, headers=True)
    info = api(c2, "$JS.API.STREAM.INFO.F")
    assert info["config"] == created["config"] and info["created"] == created["created"]
    assert (info["state"]["messages"], info["state"]["last_seq"]) == (3, 3)
    # the dedupe window came back with the messages
    assert request(c2, "f.x", b"m1", {"Nats-Msg-Id": "id1"})[1] == b'{"stream":"F", "seq":2,"duplicate": true}'
    assert request(c2, "f.y", b"new")[1] == b'{"stream":"F", "seq":4}'


def test_monitoring(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"]}')
    request(c, "s", b"hello")
    from gnatsd.monitor.monitor import JSzOptions, healthz, jsz, varz
    z = jsz(js_server, JSzOptions(accounts=True, streams=True))
    assert (z["streams"], z["messages"], z["accounts"]) == (1, 1, 1)
    assert z["config"]["store_dir"].endswith("jetstream")
    assert z["account_details"][0]["stream_detail"][0]["name"] == "S"
    assert varz(js_server)["jetstream"]["config"] == z["config"]
    assert healthz(js_server) == {"status": "ok"}


def test_check_stream_cfg_defaults():
    cfg = check_stream_cfg(None, StreamConfig.from_dict({"name": "X", "max_age": 60 * 10**9}))
    assert (cfg.subjects, cfg.duplicate_window, cfg.max_msgs, cfg.num_replicas) == (["X"], 60 * 10**9, -1, 1)


def test_account_jetstream_enabled(make_server, tmp_path, raw_conn):
    from gnatsd.accounts import AccountConfig
    from gnatsd.auth import User
    s = make_server(jetstream=True, store_dir=str(tmp_path),
                    accounts=[AccountConfig("A", jetstream=True), AccountConfig("B")],
                    users=[User("a", "a", account="A"), User("b", "b", account="B")])
    a = raw_conn(s, headers=True, user="a", **{"pass": "a"})
    assert api(a, "$JS.API.STREAM.CREATE.X", b'{"name":"X"}')["did_create"]
    assert "A" in s.js.accounts and "B" not in s.js.accounts


def test_streams_go_on_after_an_accounts_reload(tmp_path):
    from conftest import on_hub
    from test_reload import options
    from gnatsd import Server
    from gnatsd.reload import reload_options
    path = tmp_path / "js.conf"
    text = (f'jetstream {{ store_dir: "{tmp_path}" }}\n'
            'accounts { A { jetstream: enabled, users: [{user: a, password: %s}] } }\n')
    s = Server(options(path, text % "a")).start_in_thread()
    try:
        from conftest import RawConn
        c = RawConn(s.port)
        c.info()
        c.send(b'CONNECT {"user":"a","pass":"a","headers":true,"verbose":false}\r\n')
        c.ping_pong()
        api(c, "$JS.API.STREAM.CREATE.R", b'{"name":"R","subjects":["r"]}')
        on_hub(s, reload_options, s, options(path, text % "a2"), spawn=True)  # a new Account object for A
        c2 = RawConn(s.port)
        c2.info()
        c2.send(b'CONNECT {"user":"a","pass":"a2","headers":true,"verbose":false}\r\n')
        c2.ping_pong()
        assert request(c2, "r", b"x")[1] == b'{"stream":"R", "seq":1}'
        assert api(c2, "$JS.API.STREAM.INFO.R")["state"]["messages"] == 1
    finally:
        s.stop_thread()


def test_interest_stream_without_consumers_keeps_nothing(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.I", b'{"name":"I","subjects":["i"],"retention":"interest"}')
    assert request(c, "i", b"1")[1] == b'{"stream":"I", "seq":1}'
    state = api(c, "$JS.API.STREAM.INFO.I")["state"]
    assert (state["messages"], state["first_seq"], state["last_seq"]) == (0, 2, 1)


def test_rollups(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.R", b'{"name":"R","subjects":["r.*"],"allow_rollup_hdrs":true}')
    for subj in ("r.a", "r.a", "r.b"):
        request(c, subj, b"x")
    assert request(c, "r.a", b"sum", {"Nats-Rollup": "sub"})[1] == b'{"stream":"R", "seq":4}'
    assert api(c, "$JS.API.STREAM.INFO.R")["state"]["messages"] == 2  # r.b and the rollup
    request(c, "r.c", b"all", {"Nats-Rollup": "all"})
    state = api(c, "$JS.API.STREAM.INFO.R")["state"]
    assert (state["messages"], state["first_seq"]) == (1, 5)


def test_delete_and_list_edges_and_api_counts(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","subjects":["m"],"storage":"memory"}')
    assert api(c, "$JS.API.STREAM.MSG.DELETE.M", b'{"seq":40}')["error"] == {
        "code": 400, "err_code": 10043, "description": "sequence 40 not found"}
    assert api(c, "$JS.API.STREAM.LIST", b"{bad") == err("io.nats.jetstream.api.v1.stream_list_response", 400, 10025,
                                                          "invalid JSON", total=0, offset=0, limit=0, streams=[])
    # Go counts a failed message delete as an answer, not an API error
    assert api(c, "$JS.API.INFO")["api"] == {"total": 3, "errors": 1}


def test_acknowledged_messages_survive_kill_9(gnatsd, tmp_path):
    """DESIGN.md §4: a PubAck means the message is on disk. SIGKILL right after the acks, and
    the restarted server has every one of them."""
    sd = str(tmp_path / "store")
    g = gnatsd("-js", "-sd", sd)

    async def publish():
        nc = await nats.connect(f"nats://127.0.0.1:{g.port}")
        js = nc.jetstream()
        await js.add_stream(name="DUR", subjects=["dur"])
        acks = await asyncio.gather(*[js.publish("dur", b"m%d" % i) for i in range(200)])
        await nc.close()
        return max(a.seq for a in acks)

    assert run(publish()) == 200
    g.proc.kill()
    g.proc.wait(10)
    g2 = gnatsd("-js", "-sd", sd)

    async def check():
        nc = await nats.connect(f"nats://127.0.0.1:{g2.port}")
        info = await nc.jetstream().stream_info("DUR")
        await nc.close()
        return info.state.messages, info.state.last_seq

    assert run(check()) == (200, 200)


def test_account_limits(make_server, tmp_path, raw_conn):
    """Compared with nats-server 2.9.10 on the same config and requests."""
    from gnatsd.accounts import AccountConfig
    from gnatsd.auth import User
    lim = {"max_memory": 1000, "max_storage": 5000, "max_streams": 2, "max_consumers": 3, "max_ack_pending": -1,
           "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1, "max_bytes_required": False}
    req = dict(lim, max_memory=-1, max_storage=-1, max_streams=-1, max_consumers=-1, memory_max_stream_bytes=500,
               max_bytes_required=True)
    s = make_server(jetstream=True, store_dir=str(tmp_path),
                    accounts=[AccountConfig("A", jetstream=True, jetstream_limits=lim),
                              AccountConfig("B", jetstream=True, jetstream_limits=req)],
                    users=[User("a", "a", account="A"), User("b", "b", account="B")])
    a = raw_conn(s, headers=True, user="a", **{"pass": "a"})
    assert api(a, "$JS.API.INFO")["limits"] == lim
    api(a, "$JS.API.STREAM.CREATE.M1", b'{"name":"M1","subjects":["m1"],"storage":"memory"}')
    api(a, "$JS.API.STREAM.CREATE.M2", b'{"name":"M2","subjects":["m2"],"storage":"memory","max_bytes":600}')
    assert api(a, "$JS.API.STREAM.CREATE.M3", b'{"name":"M3","storage":"memory"}')["error"]["err_code"] == 10027
    assert api(a, "$JS.API.STREAM.UPDATE.M1", b'{"name":"M1","subjects":["m1"],"storage":"memory","max_bytes":2000}'
               )["error"] == {"code": 500, "err_code": 10028, "description": "insufficient memory resources available"}
    acks = [request(a, "m1", b"x" * 100)[1] for _ in range(9)]
    assert acks[7] == b'{"stream":"M1", "seq":8}'
    assert json.loads(acks[8]) == {"error": {"code": 400, "err_code": 10002,
                                             "description": "resource limits exceeded for account"},
                                   "stream": "M1", "seq": 0}
    assert api(a, "$JS.API.INFO")["memory"] == 944  # Go's figure for these messages
    b = raw_conn(s, headers=True, user="b", **{"pass": "b"})
    assert api(b, "$JS.API.STREAM.CREATE.M1", b'{"name":"M1","storage":"memory"}')["error"]["err_code"] == 10113
    assert api(b, "$JS.API.STREAM.CREATE.M2", b'{"name":"M2","storage":"memory","max_bytes":600}'
               )["error"]["err_code"] == 10122


def test_reload_turns_account_jetstream_on_and_off(tmp_path):
    from conftest import on_hub
    from test_reload import options
    from gnatsd import Server
    from gnatsd.reload import reload_options
    from conftest import RawConn
    path = tmp_path / "js.conf"
    text = (f'jetstream {{ store_dir: "{tmp_path}" }}\n'
            'accounts { A { jetstream: %s, users: [{user: a, password: a}] } }\n')
    s = Server(options(path, text % "enabled")).start_in_thread()
    try:
        c = RawConn(s.port)
        c.info()
        c.send(b'CONNECT {"user":"a","pass":"a","headers":true,"no_responders":true,"verbose":false}\r\n')
        c.ping_pong()
        api(c, "$JS.API.STREAM.CREATE.R", b'{"name":"R","subjects":["r"]}')
        request(c, "r", b"x")
        on_hub(s, reload_options, s, options(path, text % "disabled"), spawn=True)
        c.send(b"SUB _INBOX.r 99\r\nPUB $JS.API.INFO _INBOX.r 0\r\n\r\n")
        c.expect(rb"HMSG _INBOX\.r 99 \d+ \d+\r\nNATS/1.0 503")  # no responders: JetStream is off
        c.send(b"UNSUB 99\r\n")
        on_hub(s, reload_options, s, options(path, text % "{ max_streams: 1 }"), spawn=True)
        info = api(c, "$JS.API.INFO")
        assert (info["streams"], info["limits"]["max_streams"]) == (1, 1)  # R came back from disk
        assert api(c, "$JS.API.STREAM.INFO.R")["state"]["messages"] == 1
    finally:
        s.stop_thread()


def test_stream_action_advisories(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    sub = raw_conn(js_server)
    sub.send(b"SUB $JS.EVENT.ADVISORY.STREAM.> 7\r\n")
    sub.ping_pong()
    api(c, "$JS.API.STREAM.CREATE.V", b'{"name":"V","subjects":["v"]}')
    api(c, "$JS.API.STREAM.UPDATE.V", b'{"name":"V","subjects":["v","w"]}')
    api(c, "$JS.API.STREAM.DELETE.V")
    got = []
    for _ in range(3):
        m = sub.expect(rb"MSG (\S+) 7 (\d+)\r\n")
        got.append((m.group(1), json.loads(sub.read_exact(int(m.group(2)) + 2))))
    assert [(s, a["stream"], a["action"], list(a)) for s, a in got] == [
        (b"$JS.EVENT.ADVISORY.STREAM.%s.V" % kind, "V", action,
         ["type", "id", "timestamp", "stream", "action"])
        for kind, action in ((b"CREATED", "create"), (b"UPDATED", "modify"), (b"DELETED", "delete"))]
    assert got[0][1]["type"] == "io.nats.jetstream.advisory.v1.stream_action"


BAD_BODIES = [b"[]", b'"x"', b"1", b"null", b"{}", b'{"name":1}', b'{"name":"Z","subjects":[1]}',
              b'{"seq":-1}', b'{"seq":1e30}', b'{"seq":18446744073709551616}', b'{"seq":"1"}',
              b'{"name":"Z","max_msgs":9223372036854775808}', b'{"name":"Z","max_msg_size":2147483648}',
              b"[" * 5000 + b"]" * 5000, b'{"name":"Z","subjects":["\xff\xfe"]}', b"\xff\xfe\x00",
              b'{"name":"Z","placement":"x"}', b'{"name":"Z","sources":[1]}', b'{"filter":5}', b'{"keep":-1}',
              b'{"last_by_subj":">"}', b'{"next_by_subj":"*","seq":1}', b'{"deleted_details":"yes"}',
              b'{"subjects_filter":"\\u0000"}', b'{"offset":-5}', b'{"name":"a\\u0000b"}', b'{"name":"\xc3\xa9"}']
API_SUBJECTS = ["$JS.API.STREAM.CREATE.Z", "$JS.API.STREAM.UPDATE.Z", "$JS.API.STREAM.INFO.Z",
                "$JS.API.STREAM.DELETE.Z", "$JS.API.STREAM.PURGE.Z", "$JS.API.STREAM.MSG.GET.Z",
                "$JS.API.STREAM.MSG.DELETE.Z", "$JS.API.STREAM.NAMES", "$JS.API.STREAM.LIST", "$JS.API.INFO",
                "$JS.API.DIRECT.GET.Z", "$JS.API.STREAM.CREATE.a\x00b", "$JS.API.STREAM.CREATE.\xc3\xa9"]


def test_bad_input_never_breaks_the_api(js_server, raw_conn, caplog):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.Z", b'{"name":"Z","subjects":["z.>"],"allow_direct":true}')
    request(c, "z.a", b"x")
    c.send(b"SUB _INBOX.bad 5\r\n")
    for subject in API_SUBJECTS:
        for body in BAD_BODIES:
            c.send(b"PUB %s _INBOX.bad %d\r\n%s\r\n" % (subject.encode("utf-8", "surrogateescape"), len(body), body))
    c.ping_pong()
    # the API still works, and no handler raised
    assert api(c, "$JS.API.INFO")["type"] == "io.nats.jetstream.api.v1.account_info_response"
    assert not [r for r in caplog.records if r.exc_info], [r.getMessage() for r in caplog.records if r.exc_info]


def test_lazy_sync_interval(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path), jetstream_sync_interval="0.05")
    c = raw_conn(s, headers=True)
    api(c, "$JS.API.STREAM.CREATE.L", b'{"name":"L","subjects":["l"]}')
    assert request(c, "l", b"x")[1] == b'{"stream":"L", "seq":1}'
    assert s.js.config_dict()["sync_interval"] == 50_000_000
    assert s.js.accounts["$G"].streams["L"].store._sync_always is False


def test_jetstream_without_a_system_account_makes_one(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path), no_system_account=True)
    c = raw_conn(s, headers=True)
    assert api(c, "$JS.API.INFO")["streams"] == 0
    assert s.sys_account is not None and s.sys_account.name == "$SYS"


def test_api_audit_advisories(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    sub = raw_conn(js_server)
    sub.send(b"SUB $JS.EVENT.ADVISORY.API 7\r\n")
    sub.ping_pong()
    api(c, "$JS.API.STREAM.CREATE.AU", b'{"name":"AU","storage":"memory"}')
    request(c, "AU", b"x")
    api(c, "$JS.API.STREAM.MSG.GET.AU", b'{"seq":1}')  # Go: neither counted nor audited
    api(c, "$JS.API.STREAM.INFO.NOPE")
    audits = []
    for _ in range(2):
        m = sub.expect(rb"MSG \S+ 7 (\d+)\r\n")
        audits.append(json.loads(sub.read_exact(int(m.group(1)) + 2)))
    assert [list(a) for a in audits] == [
        ["type", "id", "timestamp", "server", "client", "subject", "request", "response"],
        ["type", "id", "timestamp", "server", "client", "subject", "response"]]
    assert [a["subject"] for a in audits] == ["$JS.API.STREAM.CREATE.AU", "$JS.API.STREAM.INFO.NOPE"]
    assert audits[0]["client"]["acc"] == "$G" and audits[0]["client"]["server"] == js_server.name
    assert json.loads(audits[1]["response"])["error"]["err_code"] == 10059
    assert api(c, "$JS.API.INFO")["api"] == {"total": 2, "errors": 1}


def test_domain_api_prefix(make_server, tmp_path):
    """Go: with a domain, `$JS.<domain>.API` reaches the API too (nats-py's `domain=`)."""
    srv = make_server(jetstream=True, store_dir=str(tmp_path), jetstream_domain="hub")

    async def go():
        nc = await nats.connect(srv.client_url())
        js = nc.jetstream(domain="hub")
        await js.add_stream(name="D", subjects=["d"])
        ack = await js.publish("d", b"1")
        assert (ack.stream, ack.seq, ack.domain) == ("D", 1, "hub")
        info = await js.account_info()
        assert info.domain == "hub" and info.streams == 1
        # The plain prefix still works; another domain does not exist here.
        assert (await nc.jetstream().stream_info("D")).state.messages == 1
        with pytest.raises(Exception):
            await nc.jetstream(domain="other", timeout=0.3).stream_info("D")
        await nc.close()
    run(go())


@pytest.mark.parametrize("storage,plain,with_hdr", [("file", 47, 69), ("memory", 33, 51)])
def test_stream_bytes_count_as_go(js_server, storage, plain, with_hdr):
    """Stream bytes as nats-server 2.9.10 reports them (fileStoreMsgSize, memStoreMsgSize),
    whatever gnatsd's records take: nats.py's own tests compare them."""
    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(name="B", subjects=["world"], storage=storage)
        await js.publish("world", b"Hello world!")
        assert (await js.stream_info("B")).state.bytes == plain
        await js.publish("world", b"Hello world!", headers={"A": "b"})
        assert (await js.stream_info("B")).state.bytes == plain + with_hdr
        await nc.close()
    run(go())
