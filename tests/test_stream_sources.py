"""Mirrors and sources beyond copying (gnatsd/js/sources.py, gnatsd/js/stream.py): a mirror or
source as interest on an interest or work-queue origin, mirrors answering DIRECT.GET for their
origin (mirror_direct), and sources from another account's stream through an API prefix
(external); also the answers of a server without clustering or stream templates. Expected
states were taken from nats-server 2.9.10 on the same requests, except where a comment says
gnatsd differs (docs/DIFFERENCES.md)."""
from __future__ import annotations

import asyncio
import base64
import json
import re

import nats
import pytest
from nats.js.api import ExternalStream, StreamConfig, StreamSource

from gnatsd import Server
from conftest import check_for, load_conf, on_hub
from test_jetstream import api, request


@pytest.fixture
def js_server(make_server, tmp_path):
    return make_server(jetstream=True, store_dir=str(tmp_path))


def state(c, name):
    """(messages, first_seq, last_seq, consumer_count) of stream `name`."""
    st = api(c, f"$JS.API.STREAM.INFO.{name}")["state"]
    return st["messages"], st["first_seq"], st["last_seq"], st["consumer_count"]


def create(c, name, **cfg):
    r = api(c, f"$JS.API.STREAM.CREATE.{name}", json.dumps({"name": name, "storage": "memory", **cfg}).encode())
    assert "error" not in r, r
    return r


def fetch(c, stream, consumer, n):
    """Pull `n` messages; returns their ack subjects."""
    c.send(b"SUB pull.in 77\r\nPUB $JS.API.CONSUMER.MSG.NEXT.%s.%s pull.in %d\r\n{\"batch\":%d}\r\n" % (
        stream.encode(), consumer.encode(), len(b'{"batch":%d}' % n), n))
    acks = []
    for _ in range(n):
        m = c.expect(rb"MSG \S+ 77 (\S+) (\d+)\r\n")
        c.read_exact(int(m.group(2)) + 2)
        acks.append(m.group(1))
    c.send(b"UNSUB 77\r\n")
    return acks


# -- interest and work-queue origins -------------------------------------------------------------


def test_mirror_is_interest_on_an_interest_origin(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    create(c, "O", subjects=["o.>"], retention="interest")
    create(c, "M", mirror={"name": "O"})
    for _ in range(3):
        request(c, "o.a", b"x")
    # kept until the mirror has them, then gone (Go: the mirror's AckNone consumer acks)
    check_for(5, lambda: state(c, "M") == (3, 1, 3, 0))
    assert state(c, "O") == (0, 4, 3, 0)
    # with a consumer too, a message stays until both have it
    api(c, "$JS.API.CONSUMER.DURABLE.CREATE.O.C", b'{"stream_name":"O","config":{"durable_name":"C",'
                                                   b'"ack_policy":"explicit"}}')
    for _ in range(2):
        request(c, "o.b", b"y")
    check_for(5, lambda: state(c, "M") == (5, 1, 5, 0))
    assert state(c, "O") == (2, 4, 5, 1)
    ack = fetch(c, "O", "C", 1)[0]
    c.send(b"PUB " + ack + b" 4\r\n+ACK\r\n")
    c.ping_pong()
    assert state(c, "O") == (1, 5, 5, 1)
    api(c, "$JS.API.STREAM.DELETE.M")
    assert state(c, "O") == (1, 5, 5, 1)


def test_filtered_mirror_on_an_interest_origin(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    create(c, "I", subjects=["i.>"], retention="interest")
    create(c, "M", mirror={"name": "I", "filter_subject": "i.a"})
    for subj in ("i.a", "i.b", "i.a"):
        request(c, subj, b"x")
    # i.b had no interest: its sequence is used, the message not kept
    check_for(5, lambda: state(c, "M") == (2, 1, 3, 0))
    assert state(c, "I") == (0, 4, 3, 0)


def test_refused_messages_stay_until_the_mirror_goes(js_server, raw_conn):
    """gnatsd acknowledges a copy only once the mirror stored it (Go's AckNone consumer acks on
    delivery, so a refused message is lost); deleting the mirror frees what only it needed."""
    c = raw_conn(js_server, headers=True)
    create(c, "O", subjects=["o"], retention="interest")
    create(c, "M", mirror={"name": "O"}, max_msgs=1, discard="new")
    for _ in range(3):
        request(c, "o", b"x")
    check_for(5, lambda: state(c, "M")[0] == 1)
    assert state(c, "O") == (2, 2, 3, 0)
    api(c, "$JS.API.STREAM.DELETE.M")
    assert state(c, "O") == (0, 4, 3, 0)


def test_source_is_interest_on_a_work_queue_origin(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    create(c, "W", subjects=["w.>"], retention="workqueue")
    create(c, "S", sources=[{"name": "W"}])
    for _ in range(3):
        request(c, "w.a", b"x")
    check_for(5, lambda: state(c, "S") == (3, 1, 3, 0))
    assert state(c, "W") == (0, 4, 3, 0)
    # Newer Go (2.9.10 refused it with 10099): a source's consumer does not count against
    # the work queue's one unfiltered consumer.
    r = api(c, "$JS.API.CONSUMER.DURABLE.CREATE.W.D", b'{"stream_name":"W","config":{"durable_name":"D",'
                                                       b'"ack_policy":"explicit"}}')
    assert "error" not in r
    for _ in range(2):
        request(c, "w.b", b"y")
    check_for(5, lambda: state(c, "S") == (5, 1, 5, 0))
    assert state(c, "W") == (2, 4, 5, 1)  # D still has them to do
    for ack in fetch(c, "W", "D", 2):
        c.send(b"PUB " + ack + b" 4\r\n+ACK\r\n")
    c.ping_pong()
    assert state(c, "W") == (0, 6, 5, 1)


def test_acked_before_copied_waits_for_the_source(js_server, raw_conn):
    """As for mirrors above, a message the source refused stays on the work queue (Go's
    AckNone consumer would already have let it go)."""
    c = raw_conn(js_server, headers=True)
    create(c, "W", subjects=["w"], retention="workqueue")
    api(c, "$JS.API.CONSUMER.DURABLE.CREATE.W.D", b'{"stream_name":"W","config":{"durable_name":"D",'
                                                   b'"ack_policy":"explicit"}}')
    # the source refuses everything until its limit is raised
    create(c, "S", sources=[{"name": "W"}], max_msg_size=1)
    request(c, "w", b"xy")
    check_for(5, lambda: api(c, "$JS.API.STREAM.INFO.S")["sources"][0]["lag"] == 1)
    for ack in fetch(c, "W", "D", 1):
        c.send(b"PUB " + ack + b" 4\r\n+ACK\r\n")
    c.ping_pong()
    assert state(c, "W") == (1, 1, 1, 1)
    api(c, "$JS.API.STREAM.UPDATE.S", b'{"name":"S","storage":"memory","sources":[{"name":"W"}]}')
    check_for(5, lambda: state(c, "S")[0] == 1)
    check_for(5, lambda: state(c, "W") == (0, 2, 1, 1))


# -- mirror_direct -------------------------------------------------------------------------------


def direct_stream(c, subject, body=b""):
    """The Nats-Stream header of a DIRECT.GET answer (None for a status reply)."""
    hdr, _ = request(c, subject, body)
    m = re.search(rb"Nats-Stream: (\S+)\r\n", hdr)
    return m.group(1).decode() if m else hdr.split(b"\r\n")[0].decode()


def test_mirror_answers_direct_gets_for_its_origin(js_server, raw_conn):
    c = raw_conn(js_server, headers=True, no_responders=True)
    create(c, "O", subjects=["o.>"], allow_direct=True)
    for i in range(3):
        request(c, "o.a", b"x%d" % i)
    assert create(c, "M", mirror={"name": "O"})["config"]["mirror_direct"] is True
    create(c, "N", mirror={"name": "O"}, mirror_direct=False)  # Go: inherited from the origin anyway
    check_for(5, lambda: state(c, "M")[2] == 3 and state(c, "N")[2] == 3)
    # the origin and its mirrors share a queue group: each request gets one answer
    answers = {direct_stream(c, "$JS.API.DIRECT.GET.O", b'{"seq":2}') for _ in range(60)}
    assert answers == {"O", "M", "N"}
    assert {direct_stream(c, "$JS.API.DIRECT.GET.O.o.a") for _ in range(60)} == {"O", "M", "N"}
    # a mirror without allow_direct does not answer for itself: the next answer is the origin's
    c.send(b"SUB nr 5\r\nPUB $JS.API.DIRECT.GET.M nr 9\r\n{\"seq\":2}\r\n")
    c.send(b"PUB $JS.API.DIRECT.GET.O nr 9\r\n{\"seq\":3}\r\n")
    c.expect(rb"HMSG nr 5 \d+ \d+\r\nNATS/1.0\r\nNats-Stream: \w\r\nNats-Subject: o.a\r\nNats-Sequence: 3\r\n")
    c.send(b"UNSUB 5\r\n")
    # with the origin gone, its mirrors still answer
    api(c, "$JS.API.STREAM.DELETE.O")
    hdr, body = request(c, "$JS.API.DIRECT.GET.O", b'{"seq":2}')
    assert re.match(rb"NATS/1.0\r\nNats-Stream: [MN]\r\nNats-Subject: o.a\r\nNats-Sequence: 2\r\n", hdr)
    assert body == b"x1"
    assert request(c, "$JS.API.DIRECT.GET.O", b'{"seq":9}')[0] == b"NATS/1.0 404 Message Not Found\r\n\r\n"
    # deleted mirrors answer no more
    assert direct_getters(js_server) == [2, 2]
    api(c, "$JS.API.STREAM.DELETE.M")
    api(c, "$JS.API.STREAM.DELETE.N")
    assert direct_getters(js_server) == [0, 0]


def direct_getters(server):
    """How many subscriptions answer DIRECT.GET.O and DIRECT.GET.O.o.a, all in Go's group."""
    def count():
        sl = server.accounts["$G"].sublist
        rs = [sl.match(b"$JS.API.DIRECT.GET.O"), sl.match(b"$JS.API.DIRECT.GET.O.o.a")]
        assert all(g[0].queue == b"_sys_" for r in rs for g in r.qsubs)
        return [sum(len(g) for g in r.qsubs) for r in rs]
    return on_hub(server, count)


def test_mirror_of_origin_without_direct_does_not_answer(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    create(c, "O", subjects=["o"])
    request(c, "o", b"x")
    assert create(c, "M", mirror={"name": "O"})["config"]["mirror_direct"] is False
    check_for(5, lambda: state(c, "M")[2] == 1)
    assert direct_getters(js_server) == [0, 0]


# -- external: another account's stream through an imported API ---------------------------------

EXT_CONF = """
jetstream { store_dir: "%s" }
accounts {
  A: { jetstream: enabled, users: [{user: a, password: a}],
       exports: [ {service: "$JS.API.>"}, {stream: "deliver.>"}, {service: "$JS.FC.>"} ] }
  B: { jetstream: enabled, users: [{user: b, password: b}],
       imports: [ {service: {account: A, subject: "$JS.API.>"}, to: "$JS.A.API.>"},
                  {stream: {account: A, subject: "deliver.>"}},
                  {service: {account: A, subject: "$JS.FC.>"}} ] }
}
"""
EXT = {"api": "$JS.A.API", "deliver": "deliver.B"}


@pytest.fixture
def ext_server(tmp_path):
    opts = load_conf(tmp_path, EXT_CONF % (tmp_path / "js"))
    opts.host, opts.port = "127.0.0.1", -1
    s = Server(opts).start_in_thread()
    yield s
    s.stop_thread()


def test_external_source_and_mirror_from_another_account(ext_server, raw_conn):
    a = raw_conn(ext_server, headers=True, user="a", **{"pass": "a"})
    b = raw_conn(ext_server, headers=True, user="b", **{"pass": "b"})
    create(a, "ORDERS", subjects=["orders.>"])
    for i in range(3):
        request(a, "orders.new", b"o%d" % i)
    r = create(b, "S", sources=[{"name": "ORDERS", "external": EXT}])
    assert r["config"]["sources"] == [{"name": "ORDERS", "external": EXT}]
    create(b, "M", mirror={"name": "ORDERS", "external": EXT})
    check_for(5, lambda: state(b, "S")[0] == 3 and state(b, "M")[0] == 3)
    si = api(b, "$JS.API.STREAM.INFO.S")["sources"][0]
    assert list(si)[:4] == ["name", "external", "lag", "active"] and si["external"] == EXT and si["lag"] == 0
    mi = api(b, "$JS.API.STREAM.INFO.M")["mirror"]
    assert mi["external"] == EXT and "error" not in mi
    # Go: the header names the source by its index name, the API prefix hashed
    hdr, body = request(b, "$JS.API.STREAM.MSG.GET.S", b'{"seq":1}')
    m = json.loads(body)["message"]
    assert base64.b64decode(m["hdrs"]) == b"NATS/1.0\r\nNats-Stream-Source: ORDERS:z0zeNTHp 1\r\n\r\n"
    assert state(a, "ORDERS") == (3, 1, 3, 0)
    # B's own $JS.API does not see A's stream
    assert api(b, "$JS.API.STREAM.INFO.ORDERS")["error"]["err_code"] == 10059


def test_external_source_on_an_interest_origin(ext_server, raw_conn):
    a = raw_conn(ext_server, headers=True, user="a", **{"pass": "a"})
    b = raw_conn(ext_server, headers=True, user="b", **{"pass": "b"})
    create(a, "ORDERS", subjects=["orders.>"], retention="interest")
    create(b, "S", sources=[{"name": "ORDERS", "external": EXT}])
    for i in range(3):
        request(a, "orders.new", b"o%d" % i)
    check_for(5, lambda: state(b, "S")[0] == 3)
    assert state(a, "ORDERS") == (0, 4, 3, 0)


def test_external_that_leads_nowhere(ext_server, raw_conn):
    b = raw_conn(ext_server, headers=True, user="b", **{"pass": "b"})
    create(b, "X", sources=[{"name": "ORDERS", "external": {"api": "$JS.nope.API", "deliver": "deliver.B"}}])
    create(b, "Y", sources=[{"name": "NOPE", "external": EXT}])
    check_for(5, lambda: "error" in api(b, "$JS.API.STREAM.INFO.Y")["sources"][0])
    assert api(b, "$JS.API.STREAM.INFO.Y")["sources"][0] == {
        "name": "NOPE", "external": EXT, "lag": 0, "active": -1,
        "error": {"code": 404, "err_code": 10059, "description": "stream not found"}}
    assert api(b, "$JS.API.STREAM.INFO.X")["sources"][0] == {
        "name": "ORDERS", "external": {"api": "$JS.nope.API", "deliver": "deliver.B"}, "lag": 0, "active": -1}
    # the origin comes: the source finds it
    a = raw_conn(ext_server, headers=True, user="a", **{"pass": "a"})
    create(a, "NOPE", subjects=["n"])
    request(a, "n", b"x")
    check_for(5, lambda: state(b, "Y")[0] == 1)


@pytest.mark.parametrize("ext, expected", [
    ({"api": "$JS.API", "deliver": "x"},
     (400, 10021, "stream external api prefix $JS.API must not overlap with $JS.API")),
    ({"api": "foo.*", "deliver": "x"},
     (500, 10052, 'stream external api prefix "foo.*" must be a valid subject without wildcards')),
    ({"api": "$JS.A.API", "deliver": "d.*"},
     (400, 10024, "stream external delivery prefix d.* must not contain wildcards")),
])
def test_external_bad_prefixes(js_server, raw_conn, ext, expected):
    c = raw_conn(js_server, headers=True)
    body = json.dumps({"name": "X", "sources": [{"name": "O", "external": ext}]}).encode()
    r = api(c, "$JS.API.STREAM.CREATE.X", body)
    code, err_code, description = expected
    assert r["error"] == {"code": code, "err_code": err_code, "description": description}


def test_external_source_goes_on_after_a_restart(tmp_path, raw_conn):

    def start():
        opts = load_conf(tmp_path, EXT_CONF % (tmp_path / "js"))
        opts.host, opts.port = "127.0.0.1", -1
        return Server(opts).start_in_thread()

    s = start()
    try:
        a = raw_conn(s, headers=True, user="a", **{"pass": "a"})
        b = raw_conn(s, headers=True, user="b", **{"pass": "b"})
        api(a, "$JS.API.STREAM.CREATE.ORDERS", b'{"name":"ORDERS","subjects":["orders.>"]}')
        create(b, "S", storage="file", sources=[{"name": "ORDERS", "external": EXT}])
        for i in range(3):
            request(a, "orders.new", b"o%d" % i)
        check_for(5, lambda: state(b, "S")[0] == 3)
    finally:
        s.stop_thread()
    s = start()
    try:
        a = raw_conn(s, headers=True, user="a", **{"pass": "a"})
        b = raw_conn(s, headers=True, user="b", **{"pass": "b"})
        request(a, "orders.new", b"o3")
        check_for(5, lambda: state(b, "S")[2] == 4)
        assert state(b, "S")[0] == 4  # nothing copied twice
    finally:
        s.stop_thread()


def test_external_under_this_servers_domain(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path), jetstream_domain="hub")
    c = raw_conn(s, headers=True)
    create(c, "O", subjects=["o"])
    request(c, "o", b"x")
    create(c, "S", sources=[{"name": "O", "external": {"api": "$JS.hub.API", "deliver": ""}}])
    check_for(5, lambda: state(c, "S")[0] == 1)
    assert api(c, "$JS.API.STREAM.INFO.S")["sources"][0]["external"] == {"api": "$JS.hub.API", "deliver": ""}


@pytest.mark.parametrize("subject, rtype", [
    ("$JS.API.STREAM.LEADER.STEPDOWN.O", "stream_leader_stepdown_response"),
    ("$JS.API.STREAM.LEADER.STEPDOWN.NOPE", "stream_leader_stepdown_response"),
    ("$JS.API.STREAM.PEER.REMOVE.O", "stream_remove_peer_response"),
    ("$JS.API.CONSUMER.LEADER.STEPDOWN.O.C", "consumer_leader_stepdown_response"),
])
def test_cluster_only_requests(js_server, raw_conn, subject, rtype):
    """As nats-server 2.9.10 without a cluster."""
    c = raw_conn(js_server, headers=True)
    create(c, "O", subjects=["o"])
    assert api(c, subject, b'{"peer":"x"}') == {
        "type": "io.nats.jetstream.api.v1." + rtype,
        "error": {"code": 503, "err_code": 10010, "description": "JetStream clustering support required"}}
    assert api(c, "$JS.API.INFO")["api"] == {"total": 2, "errors": 1}


def test_stream_with_a_template_owner_is_refused(js_server, raw_conn):
    """As nats-server 2.9.10 when no template owns the stream (gnatsd has no templates)."""
    c = raw_conn(js_server, headers=True)
    r = api(c, "$JS.API.STREAM.CREATE.Q", b'{"name":"Q","subjects":["q"],"template_owner":"T"}')
    assert r == {"type": "io.nats.jetstream.api.v1.stream_create_response",
                 "error": {"code": 500, "err_code": 10049, "description": "stream not owned by template"}}


def test_external_source_of_itself_leads_nowhere(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path), jetstream_domain="hub")
    c = raw_conn(s, headers=True)
    create(c, "S", subjects=["s"], sources=[{"name": "S", "external": {"api": "$JS.hub.API", "deliver": ""}}])
    request(c, "s", b"x")
    check_for(5, lambda: api(c, "$JS.API.STREAM.INFO.S")["sources"][0]["active"] == -1)
    assert state(c, "S")[0] == 1


def test_external_source_with_nats_py(ext_server):
    async def main():
        url = ext_server.client_url().replace("nats://", "")
        a = await nats.connect(f"nats://a:a@{url}")
        b = await nats.connect(f"nats://b:b@{url}")
        ja, jb = a.jetstream(), b.jetstream()
        await ja.add_stream(name="ORDERS", subjects=["orders.>"], retention="interest")
        await jb.add_stream(StreamConfig(name="S", sources=[
            StreamSource(name="ORDERS", external=ExternalStream(api="$JS.A.API"))]))
        for i in range(3):
            await ja.publish("orders.new", b"o%d" % i)
        for _ in range(200):
            si = await jb.stream_info("S")
            if si.state.messages == 3:
                break
            await asyncio.sleep(0.01)
        assert si.state.messages == 3 and si.config.sources[0].external.api == "$JS.A.API"
        assert (await ja.stream_info("ORDERS")).state.messages == 0
        m = await jb.get_msg("S", 3)
        assert m.data == b"o2" and m.headers["Nats-Stream-Source"] == "ORDERS:z0zeNTHp 3"
        await a.close()
        await b.close()
    asyncio.run(asyncio.wait_for(main(), 30))
