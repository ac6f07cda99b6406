"""JetStream consumers (gnatsd/js/consumer.py): the CONSUMER API with Go's JSON and error
codes, pull requests and their status messages, acks, redelivery, retention, push delivery.
The expected JSON and statuses were taken from nats-server 2.9.10 on the same requests."""
from __future__ import annotations

import asyncio
import json
import re
import time

import nats
import pytest
from nats.js.api import ConsumerConfig, StreamSource, SubjectTransform
from nats.js.errors import BadRequestError

from conftest import check_for
from test_jetstream import api, js_server, request  # noqa: F401 - js_server is a fixture


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


T = "io.nats.jetstream.api.v1."


def create(c, stream, config, subject=None):
    subject = subject or f"$JS.API.CONSUMER.CREATE.{stream}"
    return api(c, subject, json.dumps({"stream_name": stream, "config": config}).encode())


def durable(c, stream, config):
    return create(c, stream, config, f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{config['durable_name']}")


def err(resp):
    e = resp["error"]
    return e["code"], e["err_code"], e["description"]


def msg_frames(c, sid):
    """The next (H)MSG for `sid` on raw conn `c`: (subject, reply, header bytes, payload)."""
    m = c.expect(rb"(H?)MSG (\S+) " + sid + rb" ([^\r]*)\r\n")
    parts = m.group(3).split()
    hdr = bool(m.group(1))
    reply = parts[0] if len(parts) == (3 if hdr else 2) else None
    hlen, total = (int(parts[-2]), int(parts[-1])) if hdr else (0, int(parts[-1]))
    data = c.read_exact(total + 2)[:-2]
    return m.group(2), reply, data[:hlen], data[hlen:]


# -- the API -----------------------------------------------------------------------------------


def test_create_info_json_as_go(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["foo.>","bar"]}')
    cfg = {"durable_name": "d", "ack_policy": "explicit", "max_ack_pending": 5, "filter_subject": "foo.*",
           "description": "hi", "ack_wait": 2000000000, "max_deliver": 5, "backoff": [1000000000, 2000000000],
           "sample_freq": "50%", "headers_only": True, "max_batch": 10, "max_expires": 5000000000,
           "max_bytes": 1024, "inactive_threshold": 60000000000}
    r = create(c, "S", cfg, "$JS.API.CONSUMER.DURABLE.CREATE.S.d")
    assert r.pop("created")
    assert json.dumps(r, separators=(",", ":")) == (
        '{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"S","name":"d",'
        '"config":{"durable_name":"d","description":"hi","deliver_policy":"all","ack_policy":"explicit",'
        '"ack_wait":1000000000,"max_deliver":5,"backoff":[1000000000,2000000000],"filter_subject":"foo.*",'
        '"replay_policy":"instant","sample_freq":"50%","max_waiting":512,"max_ack_pending":5,"headers_only":true,'
        '"max_batch":10,"max_expires":5000000000,"max_bytes":1024,"inactive_threshold":60000000000,'
        '"num_replicas":0},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,'
        '"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0}')
    # a push durable: Go's defaults and field order
    r = create(c, "S", {"durable_name": "p", "deliver_subject": "dlv", "deliver_group": "g",
                        "idle_heartbeat": 5000000000, "flow_control": True, "rate_limit_bps": 100000,
                        "replay_policy": "original", "deliver_policy": "last_per_subject",
                        "filter_subject": "foo.>"}, "$JS.API.CONSUMER.DURABLE.CREATE.S.p")
    assert list(r["config"]) == ["durable_name", "deliver_policy", "ack_policy", "max_deliver", "filter_subject",
                                 "replay_policy", "rate_limit_bps", "idle_heartbeat", "flow_control",
                                 "deliver_subject", "deliver_group", "num_replicas"]
    assert "push_bound" not in r  # nobody listens on dlv
    info = api(c, "$JS.API.CONSUMER.INFO.S.d")
    assert info["type"] == T + "consumer_info_response" and info["config"]["durable_name"] == "d"
    # the same config again is fine; a change Go refuses is refused
    assert create(c, "S", cfg, "$JS.API.CONSUMER.DURABLE.CREATE.S.d")["name"] == "d"
    cfg2 = dict(cfg, ack_policy="all")
    assert err(create(c, "S", cfg2, "$JS.API.CONSUMER.DURABLE.CREATE.S.d")) == (
        500, 10012, "ack policy can not be updated")
    # an allowed change is applied
    r = create(c, "S", dict(cfg, description="new", max_ack_pending=7), "$JS.API.CONSUMER.DURABLE.CREATE.S.d")
    assert (r["config"]["description"], r["config"]["max_ack_pending"]) == ("new", 7)
    st = api(c, "$JS.API.STREAM.INFO.S")["state"]
    assert st["consumer_count"] == 2
    assert api(c, "$JS.API.INFO")["consumers"] == 2


# (config or subject+body, Go's error) from nats-server 2.9.10.
CREATE_ERRORS = [
    ("S", b"", (400, 10025, "invalid JSON")),
    ("S", b"{bad", (400, 10025, "invalid JSON")),
    ("S", {"stream_name": "X", "config": {}}, (400, 10056, "stream name in subject does not match request")),
    ("X", {"stream_name": "X", "config": {}}, (404, 10059, "stream not found")),
    ("S", {"durable_name": "d"},
     (400, 10020, "consumer expected to be ephemeral but a durable name was set in request")),
    ("DURABLE.CREATE.S.d", {"stream_name": "S", "config": {}},
     (400, 10018, "consumer expected to be durable but a durable name was not set")),
    ("DURABLE.CREATE.S.d", {"stream_name": "S", "config": {"durable_name": "e"}},
     (400, 10017, "consumer name in subject does not match durable name in request")),
    ("S.c1", {"stream_name": "S", "config": {"durable_name": "zz"}},
     (400, 10017, "consumer name in subject does not match durable name in request")),
    ("S.c1.foo.x", {"stream_name": "S", "config": {"filter_subject": "foo.y"}},
     (400, 10131, "Consumer create request did not match filtered subject from create subject")),
    ("S.a/b", {"stream_name": "S", "config": {}}, (400, 10127, "Consumer name can not contain path separators")),
    ("S", {"deliver_subject": "dl.*"}, (400, 10079, "consumer deliver subject has wildcards")),
    ("S", {"deliver_subject": "foo.x"}, (400, 10081, "consumer deliver subject forms a cycle")),
    ("S", {"deliver_subject": "dl", "max_waiting": 3}, (400, 10080, "consumer in push mode can not set max waiting")),
    ("S", {"deliver_subject": "dl", "idle_heartbeat": 1000}, (400, 10083, "consumer idle heartbeat needs to be >= 100ms")),
    ("S", {"deliver_subject": "dl", "flow_control": True}, (400, 10108, "consumer with flow control also needs heartbeats")),
    ("S", {"deliver_subject": "dl", "max_ack_pending": 3},
     (400, 10082, "consumer requires ack policy for max ack pending")),
    ("S", {"idle_heartbeat": 1000000000}, (400, 10088, "consumer idle heartbeat requires a push based consumer")),
    ("S", {"flow_control": True}, (400, 10089, "consumer flow control requires a push based consumer")),
    ("S", {"rate_limit_bps": 1000}, (400, 10086, "consumer in pull mode can not have rate limit set")),
    ("S", {"max_waiting": -1}, (400, 10087, "consumer max waiting needs to be positive")),
    ("S", {"max_batch": -1}, (400, 10114, "consumer max request batch needs to be > 0")),
    ("S", {"max_expires": 10}, (400, 10115, "consumer max request expires needs to be >= 1ms")),
    ("S", {"backoff": [1000000000, 2000000000], "max_deliver": 2, "ack_policy": "explicit"},
     (400, 10116, "max deliver is required to be > length of backoff values")),
    ("S", {"filter_subject": "baz"}, (400, 10093, "consumer filter subject is not a valid subset of the interest subjects")),
    ("S", {"deliver_policy": "all", "opt_start_seq": 3},
     (400, 10094, "consumer delivery policy is deliver all, but optional start sequence is also set")),
    ("S", {"deliver_policy": "by_start_sequence"},
     (400, 10094, "consumer delivery policy is deliver by start sequence, but optional start sequence is not set")),
    ("S", {"deliver_policy": "by_start_time"},
     (400, 10094, "consumer delivery policy is deliver by start time, but optional start time is not set")),
    ("S", {"deliver_policy": "last_per_subject"},
     (400, 10094, "consumer delivery policy is deliver last per subject, but optional filter subject is not set")),
    ("S", {"deliver_policy": "new", "opt_start_time": "2022-01-01T00:00:00Z"},
     (400, 10094, "consumer delivery policy is deliver new, but optional start time is also set")),
    ("S", {"deliver_policy": "bogus"}, (400, 10025, "invalid JSON")),
    ("S", {"ack_policy": "bogus"}, (400, 10025, "invalid JSON")),
    ("S", {"sample_freq": "x%"},
     (400, 10095, 'failed to parse consumer sampling configuration: strconv.Atoi: parsing "x": invalid syntax')),
    ("S", {"num_replicas": 3}, (500, 10074, "replicas > 1 not supported in non-clustered mode")),
    ("S", {"description": "x" * 5000}, (400, 10107, "consumer description is too long, maximum allowed is 4096")),
    ("S", {"durable_name": "x" * 300},
     (400, 10020, "consumer expected to be ephemeral but a durable name was set in request")),
    ("DURABLE.CREATE.S.d*x", {"stream_name": "S", "config": {"durable_name": "d*x"}},
     (400, 10103, "durable name can not contain '.', '*', '>'")),
    ("S", {"direct": True}, (400, 10090, "consumer direct requires a push based consumer")),
    ("S", {"deliver_subject": "dl", "direct": True, "durable_name": "q"},
     (400, 10020, "consumer expected to be ephemeral but a durable name was set in request")),
    # 2.10's filter_subjects
    ("S", {"filter_subjects": ["foo.a", "foo.*"]}, (400, 10138, "consumer subject filters cannot overlap")),
    ("S", {"filter_subject": "foo.a", "filter_subjects": ["bar"]},
     (400, 10136, "consumer cannot have both FilterSubject and FilterSubjects specified")),
    ("S.c2.foo.a", {"stream_name": "S", "config": {"filter_subjects": ["foo.a"]}},
     (400, 10137, "consumer with multiple subject filters cannot use subject based API")),
]


@pytest.mark.parametrize("subject,body,want", CREATE_ERRORS)
def test_create_errors_as_go(js_server, raw_conn, subject, body, want):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["foo.>","bar"]}')
    if isinstance(body, dict) and "config" not in body:
        body = {"stream_name": "S", "config": body}
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    subj = "$JS.API.CONSUMER." + (subject if subject.startswith("DURABLE") else "CREATE." + subject)
    r = api(c, subj, body)
    assert r["type"] == T + "consumer_create_response"
    assert err(r) == want
    # nothing changed
    assert api(c, "$JS.API.STREAM.INFO.S")["state"]["consumer_count"] == 0


def test_workqueue_and_max_consumers_errors(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.W", b'{"name":"W","subjects":["wq.>"],"retention":"workqueue"}')
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","subjects":["m.>"],"max_consumers":1,"storage":"memory"}')
    assert err(durable(c, "W", {"durable_name": "w1", "ack_policy": "none"})) == (
        400, 10084, "consumer in pull mode requires ack policy")
    assert err(durable(c, "W", {"durable_name": "w1", "ack_policy": "all"})) == (
        400, 10098, "workqueue stream requires explicit ack")
    assert err(durable(c, "W", {"durable_name": "w1", "ack_policy": "explicit", "deliver_policy": "last"})) == (
        400, 10101, "consumer must be deliver all on workqueue stream")
    assert durable(c, "W", {"durable_name": "w1", "ack_policy": "explicit"})["name"] == "w1"
    assert err(durable(c, "W", {"durable_name": "w2", "ack_policy": "explicit"})) == (
        400, 10099, "multiple non-filtered consumers not allowed on workqueue stream")
    assert err(durable(c, "W", {"durable_name": "w2", "ack_policy": "explicit", "filter_subject": "wq.a"})) == (
        400, 10100, "filtered consumer not unique on workqueue stream")
    api(c, "$JS.API.CONSUMER.DELETE.W.w1")
    assert durable(c, "W", {"durable_name": "a", "ack_policy": "explicit", "filter_subject": "wq.a"})["name"] == "a"
    assert err(durable(c, "W", {"durable_name": "b", "ack_policy": "explicit", "filter_subject": "wq.*"})) == (
        400, 10100, "filtered consumer not unique on workqueue stream")
    assert durable(c, "W", {"durable_name": "b", "ack_policy": "explicit", "filter_subject": "wq.b"})["name"] == "b"
    assert durable(c, "M", {"durable_name": "m1", "ack_policy": "explicit"})["name"] == "m1"
    assert err(durable(c, "M", {"durable_name": "m2", "ack_policy": "explicit"})) == (
        400, 10026, "maximum consumers limit reached")


def test_actions_and_2_10_subjects(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["foo.>","bar"]}')
    body = {"stream_name": "S", "config": {"ack_policy": "explicit"}, "action": "update"}
    assert err(api(c, "$JS.API.CONSUMER.CREATE.S.n", json.dumps(body).encode())) == (
        400, 10149, "consumer does not exist")
    body["action"] = "create"
    r = api(c, "$JS.API.CONSUMER.CREATE.S.n.foo.x", json.dumps(
        dict(body, config={"ack_policy": "explicit", "filter_subject": "foo.x"})).encode())
    assert (r["name"], r["config"]["name"], r["config"]["filter_subject"]) == ("n", "n", "foo.x")
    body["config"] = {"ack_policy": "explicit", "filter_subject": "foo.y"}
    assert err(api(c, "$JS.API.CONSUMER.CREATE.S.n", json.dumps(body).encode())) == (
        400, 10148, "consumer already exists")
    r = create(c, "S", {"name": "m", "filter_subjects": ["foo.a", "bar"], "metadata": {"b": "2", "a": "1"}},
               "$JS.API.CONSUMER.CREATE.S.m")
    assert r["config"]["filter_subjects"] == ["foo.a", "bar"]
    assert list(r["config"]["metadata"]) == ["a", "b"]


def test_names_list_delete(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"]}')
    for name in ("c", "a", "b"):
        create(c, "S", {"durable_name": name, "ack_policy": "explicit"}, f"$JS.API.CONSUMER.DURABLE.CREATE.S.{name}")
    assert api(c, "$JS.API.CONSUMER.NAMES.S") == {
        "type": T + "consumer_names_response", "total": 3, "offset": 0, "limit": 1024, "consumers": ["a", "b", "c"]}
    assert api(c, "$JS.API.CONSUMER.NAMES.S", b'{"offset":1}')["consumers"] == ["b", "c"]
    r = api(c, "$JS.API.CONSUMER.LIST.S", b'{"offset":2}')
    assert (r["total"], r["offset"], r["limit"], [i["name"] for i in r["consumers"]]) == (3, 2, 256, ["c"])
    assert api(c, "$JS.API.CONSUMER.LIST.S", b'{"offset":5}')["consumers"] == []
    assert api(c, "$JS.API.CONSUMER.NAMES.S", b"{x") == {
        "type": T + "consumer_names_response", "error": {"code": 400, "err_code": 10025, "description": "invalid JSON"},
        "total": 0, "offset": 0, "limit": 0, "consumers": []}
    assert err(api(c, "$JS.API.CONSUMER.NAMES.X")) == (404, 10059, "stream not found")
    assert err(api(c, "$JS.API.CONSUMER.INFO.S.a", b"x")) == (400, 10038, "expected an empty request payload")
    assert err(api(c, "$JS.API.CONSUMER.INFO.S.nope")) == (404, 10014, "consumer not found")
    assert err(api(c, "$JS.API.CONSUMER.DELETE.S.a", b"x")) == (400, 10038, "expected an empty request payload")
    assert err(api(c, "$JS.API.CONSUMER.DELETE.X.a")) == (404, 10059, "stream not found")
    assert api(c, "$JS.API.CONSUMER.DELETE.S.a") == {"type": T + "consumer_delete_response", "success": True}
    assert err(api(c, "$JS.API.CONSUMER.DELETE.S.a")) == (404, 10014, "consumer not found")
    assert api(c, "$JS.API.CONSUMER.NAMES.S")["consumers"] == ["b", "c"]


def test_advisories(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    a = raw_conn(js_server, headers=True)
    a.send(b"SUB $JS.EVENT.ADVISORY.CONSUMER.> 7\r\n")
    a.ping_pong()
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"]}')
    create(c, "S", {"durable_name": "d"}, "$JS.API.CONSUMER.DURABLE.CREATE.S.d")
    subj, _, _, body = msg_frames(a, rb"7")
    adv = json.loads(body)
    assert subj == b"$JS.EVENT.ADVISORY.CONSUMER.CREATED.S.d"
    assert list(adv) == ["type", "id", "timestamp", "stream", "consumer", "action"]
    assert (adv["type"], adv["stream"], adv["consumer"], adv["action"]) == (
        "io.nats.jetstream.advisory.v1.consumer_action", "S", "d", "create")
    api(c, "$JS.API.CONSUMER.DELETE.S.d")
    subj, _, _, body = msg_frames(a, rb"7")
    assert subj == b"$JS.EVENT.ADVISORY.CONSUMER.DELETED.S.d" and json.loads(body)["action"] == "delete"


def test_durable_file_consumer_survives_restart(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path))
    c = raw_conn(s, headers=True)
    api(c, "$JS.API.STREAM.CREATE.F", b'{"name":"F","subjects":["f"]}')
    created = create(c, "F", {"durable_name": "d", "ack_policy": "explicit"}, "$JS.API.CONSUMER.DURABLE.CREATE.F.d")
    for i in range(4):
        request(c, "f", b"m%d" % i)
    pull(c, "F", "d", b'{"batch":3}')
    replies = [msg_frames(c, rb"9")[1] for _ in range(3)]
    c.send(b"PUB %s 0\r\n\r\n" % replies[0])  # ack the first; 2 and 3 stay pending
    c.ping_pong()
    check_for(5, lambda: api(c, "$JS.API.CONSUMER.INFO.F.d")["ack_floor"]["stream_seq"] == 1)
    c.close()
    s.stop_thread()
    assert (tmp_path / "jetstream" / "$G" / "streams" / "F" / "obs" / "d" / "meta.inf").exists()
    s2 = make_server(jetstream=True, store_dir=str(tmp_path))
    c2 = raw_conn(s2, headers=True)
    info = api(c2, "$JS.API.CONSUMER.INFO.F.d")
    assert info["config"] == created["config"] and info["created"] == created["created"]
    assert (info["delivered"], info["ack_floor"], info["num_ack_pending"], info["num_pending"]) == (
        {"consumer_seq": 3, "stream_seq": 3}, {"consumer_seq": 1, "stream_seq": 1}, 2, 1)
    pull(c2, "F", "d", b"1")
    _, reply, _, payload = msg_frames(c2, rb"9")
    assert payload == b"m3" and reply.startswith(b"$JS.ACK.F.d.1.4.4.")


# -- pull requests -----------------------------------------------------------------------------


def pull(c, stream, consumer, body, sid=b"9", inbox=b"inbox"):
    c.send(b"SUB %s %s\r\nPUB $JS.API.CONSUMER.MSG.NEXT.%s.%s %s %d\r\n%s\r\n" % (
        inbox, sid, stream.encode(), consumer.encode(), inbox, len(body), body))


def test_pull_statuses_as_go(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"]}')
    create(c, "S", {"durable_name": "d", "ack_policy": "explicit", "max_waiting": 1, "max_batch": 5,
                    "max_expires": 10**9, "max_bytes": 100}, "$JS.API.CONSUMER.DURABLE.CREATE.S.d")
    pull(c, "S", "d", b'{"batch":1,"no_wait":true}')
    assert msg_frames(c, rb"9")[2] == b"NATS/1.0 404 No Messages\r\n\r\n"
    pull(c, "S", "d", b'{"batch":6}')
    assert msg_frames(c, rb"9")[2] == b"NATS/1.0 409 Exceeded MaxRequestBatch of 5\r\n\r\n"
    pull(c, "S", "d", b'{"batch":1,"expires":2000000000}')
    assert msg_frames(c, rb"9")[2] == b"NATS/1.0 409 Exceeded MaxRequestExpires of 1s\r\n\r\n"
    pull(c, "S", "d", b'{"batch":1,"max_bytes":101}')
    assert msg_frames(c, rb"9")[2] == b"NATS/1.0 409 Exceeded MaxRequestMaxBytes of 100\r\n\r\n"
    pull(c, "S", "d", b'{"batch":1,"expires":1000000000,"idle_heartbeat":600000000}')
    assert msg_frames(c, rb"9")[2] == b"NATS/1.0 400 Bad Request - heartbeat value too large\r\n\r\n"
    pull(c, "S", "d", b'{"batch":2,"expires":200000000}')
    pull(c, "S", "d", b'{"batch":2,"expires":200000000}', b"8", b"inbox2")
    assert msg_frames(c, rb"8")[2] == b"NATS/1.0 409 Exceeded MaxWaiting\r\n\r\n"
    assert msg_frames(c, rb"9")[2] == (
        b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 2\r\nNats-Pending-Bytes: 0\r\n\r\n")
    request(c, "s", b"x" * 120)
    pull(c, "S", "d", b'{"batch":2,"max_bytes":50}')
    assert msg_frames(c, rb"9")[2] == (
        b"NATS/1.0 409 Message Size Exceeds MaxBytes\r\nNats-Pending-Messages: 2\r\nNats-Pending-Bytes: 50\r\n\r\n")
    # a consumer that goes away answers its waiting requests
    c2 = raw_conn(js_server, headers=True)  # the API answers must not hide the status
    pull(c2, "S", "d", b'{"batch":2,"expires":900000000}')
    _, reply, _, payload = msg_frames(c2, rb"9")
    assert payload == b"x" * 120 and reply.startswith(b"$JS.ACK.S.d.1.1.1.")
    api(c, "$JS.API.CONSUMER.DELETE.S.d")
    assert msg_frames(c2, rb"9")[2] == b"NATS/1.0 409 Consumer Deleted\r\n\r\n"


def test_pull_batch_no_wait_and_heartbeat(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    p = raw_conn(js_server, headers=True)  # pulls apart from the API, whose answers skip frames
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"]}')
    create(c, "S", {"durable_name": "d", "ack_policy": "none"}, "$JS.API.CONSUMER.DURABLE.CREATE.S.d")
    for i in range(3):
        request(c, "s", b"m%d" % i)
    pull(p, "S", "d", b'{"batch":5,"no_wait":true}')
    got = [msg_frames(p, rb"9") for _ in range(4)]
    assert [g[3] for g in got[:3]] == [b"m0", b"m1", b"m2"]
    assert [g[1].split(b".")[-1] for g in got[:3]] == [b"2", b"1", b"0"]  # pending count in the reply
    assert got[3][2] == b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 2\r\nNats-Pending-Bytes: 0\r\n\r\n"
    pull(p, "S", "d", b'{"batch":1,"expires":500000000,"idle_heartbeat":100000000}')
    assert msg_frames(p, rb"9")[2] == (
        b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 3\r\nNats-Last-Stream: 3\r\n\r\n")
    request(c, "s", b"m3")
    while True:  # heartbeats may come first
        _, reply, hdr, payload = msg_frames(p, rb"9")
        if not hdr:
            break
        assert hdr.startswith(b"NATS/1.0 100 Idle Heartbeat\r\n")
    assert payload == b"m3" and reply.startswith(b"$JS.ACK.S.d.1.4.4.")


def test_pull_with_nats_py(js_server):
    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="S", subjects=["foo.>"])
        for i in range(5):
            await js.publish(f"foo.{i}", b"hello %d" % i)
        psub = await js.pull_subscribe("foo.>", durable="dur")
        msgs = await psub.fetch(3, timeout=2)
        assert [m.data for m in msgs] == [b"hello 0", b"hello 1", b"hello 2"]
        assert msgs[1].metadata.sequence.stream == 2 and msgs[1].metadata.num_pending == 3
        for m in msgs:
            await m.ack()
        info = await js.consumer_info("S", "dur")
        assert (info.delivered.stream_seq, info.ack_floor.stream_seq, info.num_pending) == (3, 3, 2)
        assert [m.data for m in await psub.fetch(5, timeout=1)] == [b"hello 3", b"hello 4"]
        with pytest.raises(nats.errors.TimeoutError):
            await psub.fetch(1, timeout=0.3)
        await nc.close()
    run(main())


def test_pull_reads_through_the_read_cache(js_server):
    # A consumer reading in order is served from the file store's read-ahead chunks. Here
    # its chunk of the first block goes stale: a purge of another subject removes nine
    # messages in ten and the compactor rewrites the block with the rest at new offsets
    # (inside the chunk's range); then an erase and a full purge. Every message must still
    # come back, once, intact, and none be reported lost.
    from nats.js.errors import NotFoundError

    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        # max_bytes 120,000: 32,000-byte blocks (Go's dynBlkSize), so that several fill up.
        await js.add_stream(name="RC", subjects=["rc.*"], max_bytes=120_000)
        for i in range(1200):
            await nc.publish("rc.b" if i % 10 == 0 else "rc.a", b"payload-%04d-" % i + b"x" * 28)
        await nc.flush()
        store = js_server.js.accounts["$G"].streams["RC"].store
        check_for(5, lambda: store.state().msgs == 1200)
        first = store._blks[0]
        b = await js.pull_subscribe("rc.b", durable="B")
        got = await b.fetch(5, timeout=2)
        assert first.chunk is not None and first.chunk.start == 0  # read ahead
        await js.purge_stream("RC", subject="rc.a")
        check_for(5, lambda: first.size < 32000 // 4)  # compacted
        await js.delete_msg("RC", 601)  # an erase, in the next block
        while len(got) < 119:
            got += await b.fetch(119 - len(got), timeout=2)
        assert [m.data[:13] for m in got] == [b"payload-%04d-" % i for i in range(0, 1200, 10) if i != 600]
        with pytest.raises(NotFoundError):
            await js.get_msg("RC", 601)
        await js.purge_stream("RC")
        for i in range(20):
            await js.publish("rc.b", b"after-%d" % i)
        got = await b.fetch(20, timeout=2)
        assert [m.data for m in got] == [b"after-%d" % i for i in range(20)]
        assert store.state().lost is None
        await nc.close()
    run(main())


# -- acks, redelivery, deliver policies, retention -----------------------------------------------


async def _state(nc, stream, consumer):
    r = json.loads((await nc.request(f"$JS.API.CONSUMER.INFO.{stream}.{consumer}", b"")).data)
    for k in ("delivered", "ack_floor"):
        r[k].pop("last_active", None)
    return (r["delivered"]["consumer_seq"], r["delivered"]["stream_seq"], r["ack_floor"]["consumer_seq"],
            r["ack_floor"]["stream_seq"], r["num_ack_pending"], r["num_redelivered"], r["num_pending"])


async def _stream_state(nc, stream):
    st = json.loads((await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"")).data)["state"]
    return st["messages"], st["first_seq"], st["last_seq"], st["consumer_count"]


def test_ack_policies_as_go(js_server):
    from nats.js.api import AckPolicy, ConsumerConfig

    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="A", subjects=["a.*"])
        for i in range(6):
            await js.publish("a.%d" % (i % 3), b"%d" % i)
        ps = await js.pull_subscribe("a.*", durable="all", config=ConsumerConfig(ack_policy=AckPolicy.ALL))
        ms = await ps.fetch(4, timeout=1)
        await ms[2].ack_sync()  # acks 1..3
        assert await _state(nc, "A", "all") == (4, 4, 3, 3, 1, 0, 2)
        ps2 = await js.pull_subscribe("a.*", durable="exp",
                                      config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=0.3))
        ms = await ps2.fetch(5, timeout=1)
        await ms[1].ack()
        await ms[2].term()
        await ms[0].nak()
        await ms[3].in_progress()
        await nc.flush()
        assert await _state(nc, "A", "exp") == (5, 5, 0, 0, 3, 0, 1)
        ms2 = await ps2.fetch(1, timeout=1)  # the nak'ed one first
        assert (ms2[0].data, ms2[0].metadata.num_delivered) == (b"0", 2)
        assert ms2[0].reply.startswith("$JS.ACK.A.exp.2.1.6.") and ms2[0].reply.endswith(".1")
        await ms2[0].ack_sync()  # an ack with a reply is answered
        await asyncio.sleep(0.4)  # past ack_wait: 4 and 5 come again, the +WPI one later
        ms3 = await ps2.fetch(3, timeout=1)
        # (the +WPI moved the ack wait of "3": which of the two comes first depends on timing)
        assert sorted((m.data, m.metadata.num_delivered) for m in ms3) == [(b"3", 2), (b"4", 2), (b"5", 1)]
        assert [m.metadata.sequence.consumer for m in ms3] == [7, 8, 9]
        assert await _state(nc, "A", "exp") == (9, 6, 3, 3, 3, 2, 0)
        # ack none: the ack floor follows the deliveries
        ps3 = await js.pull_subscribe("a.*", durable="none", config=ConsumerConfig(ack_policy=AckPolicy.NONE))
        assert len(await ps3.fetch(2, timeout=1)) == 2
        assert await _state(nc, "A", "none") == (2, 2, 2, 2, 0, 0, 4)
        await nc.close()
    run(main())


def test_nak_delay_term_and_max_deliver_advisories(js_server):
    from nats.js.api import AckPolicy, ConsumerConfig

    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        adv = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.>")
        await js.add_stream(name="A", subjects=["a"])
        await js.publish("a", b"x")
        ps = await js.pull_subscribe("a", durable="d", config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, ack_wait=5, max_deliver=2))
        m = (await ps.fetch(1, timeout=1))[0]
        t0 = time.monotonic()
        await m.nak(delay=0.3)
        m = (await ps.fetch(1, timeout=2))[0]
        assert 0.25 < time.monotonic() - t0 < 1.5 and m.metadata.num_delivered == 2
        await m.nak()  # a third delivery would exceed max_deliver
        with pytest.raises(nats.errors.TimeoutError):
            await ps.fetch(1, timeout=0.3)
        subjects = []
        while True:
            try:
                a = await adv.next_msg(0.5)
            except nats.errors.TimeoutError:
                break
            subjects.append(a.subject)
            if a.subject.startswith("$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"):
                d = json.loads(a.data)
                assert (d["type"], d["stream_seq"], d["deliveries"]) == (
                    "io.nats.jetstream.advisory.v1.max_deliver", 1, 2)
        assert subjects == ["$JS.EVENT.ADVISORY.CONSUMER.CREATED.A.d", "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.A.d",
                            "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED.A.d",
                            "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.A.d"]
        await js.publish("a", b"y")
        m = (await ps.fetch(1, timeout=1))[0]
        await m.term()
        a = await adv.next_msg(1)
        assert a.subject == "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.A.d"
        d = json.loads(a.data)
        assert (d["type"], d["consumer_seq"], d["stream_seq"], d["deliveries"]) == (
            "io.nats.jetstream.advisory.v1.terminated", 3, 2, 1)
        await nc.close()
    run(main())


def test_backoff_timing(js_server):
    from nats.js.api import AckPolicy, ConsumerConfig

    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="B", subjects=["b"])
        await js.publish("b", b"x")
        ps = await js.pull_subscribe("b", durable="d", config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, backoff=[0.1, 0.4], max_deliver=4))
        info = await js.consumer_info("B", "d")
        assert info.config.ack_wait == 0.1  # Go: the first backoff step
        t0 = time.monotonic()
        times = []
        for _ in range(3):
            m = (await ps.fetch(1, timeout=2))[0]
            times.append(time.monotonic() - t0)
        assert times[0] < 0.1
        assert 0.08 < times[1] - times[0] < 0.35  # backoff[0]
        assert 0.35 < times[2] - times[1] < 0.8  # backoff[1]
        assert m.metadata.num_delivered == 3
        await nc.close()
    run(main())


def test_max_ack_pending(js_server):
    from nats.js.api import AckPolicy, ConsumerConfig

    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="A", subjects=["a"])
        for i in range(6):
            await js.publish("a", b"%d" % i)
        ps = await js.pull_subscribe("a", durable="d", config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, max_ack_pending=2))
        ms = await ps.fetch(5, timeout=0.5)
        assert len(ms) == 2
        assert await _state(nc, "A", "d") == (2, 2, 0, 0, 2, 0, 4)
        await ms[0].ack()
        ms = await ps.fetch(5, timeout=0.5)
        assert [m.data for m in ms] == [b"2"]
        await nc.close()
    run(main())


def test_deliver_policies_as_go(js_server):
    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="A", subjects=["a.*"])
        for i in range(6):
            await js.publish("a.%d" % (i % 3), b"%d" % i)
        cases = [("all", {}, 0, 6, [b"0", b"1", b"2", b"3", b"4", b"5", "408"]),
                 ("last", {}, 5, 1, [b"5", "408"]),
                 ("last", {"filter_subject": "a.1"}, 4, 1, [b"4", "408"]),
                 ("new", {}, 6, 0, ["404"]),
                 ("by_start_sequence", {"opt_start_seq": 4}, 3, 3, [b"3", b"4", b"5", "408"]),
                 ("last_per_subject", {"filter_subject": "a.*"}, 3, 3, [b"3", b"4", b"5", "408"])]
        for dp, extra, sseq, pending, want in cases:
            r = json.loads((await nc.request("$JS.API.CONSUMER.CREATE.A", json.dumps(
                {"stream_name": "A", "config": dict(deliver_policy=dp, ack_policy="none", **extra)}).encode())).data)
            assert (r["delivered"]["stream_seq"], r["num_pending"]) == (sseq, pending), dp
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            await nc.publish(f"$JS.API.CONSUMER.MSG.NEXT.A.{r['name']}", b'{"batch":10,"no_wait":true}', reply=inbox)
            got = []
            while True:
                m = await sub.next_msg(1)
                if m.headers and m.headers.get("Status"):
                    got.append(m.headers["Status"])
                    break
                got.append(m.data)
            assert got == want, dp
        # by_start_time
        since = "2000-01-01T00:00:00Z"
        r = json.loads((await nc.request("$JS.API.CONSUMER.CREATE.A", json.dumps(
            {"stream_name": "A", "config": {"deliver_policy": "by_start_time", "opt_start_time": since}}).encode())).data)
        assert (r["config"]["opt_start_time"], r["delivered"]["stream_seq"], r["num_pending"]) == (since, 0, 6)
        await nc.close()
    run(main())


def test_workqueue_and_interest_retention_as_go(js_server):
    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="W", subjects=["w.*"], retention="workqueue")
        for i in range(4):
            await js.publish("w.%d" % (i % 2), b"w%d" % i)
        pw = await js.pull_subscribe("w.0", durable="w0", stream="W")
        ms = await pw.fetch(2, timeout=1)
        await ms[0].ack_sync()
        assert await _stream_state(nc, "W") == (3, 2, 4, 1)
        assert await _state(nc, "W", "w0") == (2, 3, 1, 2, 1, 0, 0)
        await js.add_stream(name="I", subjects=["i.*"], retention="interest")
        await js.publish("i.x", b"nobody listens")  # no consumer: not kept
        p1 = await js.pull_subscribe("i.*", durable="i1", stream="I")
        p2 = await js.pull_subscribe("i.y", durable="i2", stream="I")
        for s in ("i.x", "i.y", "i.x", "i.y"):
            await js.publish(s, s.encode())
        assert await _stream_state(nc, "I") == (4, 2, 5, 2)
        for m in await p1.fetch(4, timeout=1):
            await m.ack_sync()
        assert await _stream_state(nc, "I") == (2, 3, 5, 2)  # i.y still wanted by i2
        for m in await p2.fetch(1, timeout=1):
            await m.ack_sync()
        assert await _stream_state(nc, "I") == (1, 5, 5, 2)
        await js.delete_consumer("I", "i2")  # its interest goes with it
        assert await _stream_state(nc, "I") == (0, 6, 5, 1)
        await nc.close()
    run(main())


# -- push consumers ----------------------------------------------------------------------------


def test_push_interest_headers_only_and_heartbeats_as_go(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.P", b'{"name":"P","subjects":["p.*"]}')
    request(c, "p.0", b"m0")
    request(c, "p.1", b"m1", {"X": "1"})
    r = durable(c, "P", {"durable_name": "pd", "deliver_subject": "dl", "ack_policy": "explicit",
                         "idle_heartbeat": 200_000_000, "headers_only": True})
    assert "push_bound" not in r  # nobody listens yet: nothing is sent
    s = raw_conn(js_server, headers=True)
    s.send(b"SUB dl 5\r\n")
    subj, reply, hdr, payload = msg_frames(s, rb"5")  # the stream subject, not the deliver subject
    assert (subj, hdr, payload) == (b"p.0", b"NATS/1.0\r\nNats-Msg-Size: 2\r\n\r\n", b"")
    assert reply.startswith(b"$JS.ACK.P.pd.1.1.1.") and reply.endswith(b".1")
    subj, reply, hdr, payload = msg_frames(s, rb"5")
    assert (subj, hdr) == (b"p.1", b"NATS/1.0\r\nX: 1\r\nNats-Msg-Size: 2\r\n\r\n")
    subj, reply, hdr, payload = msg_frames(s, rb"5")
    assert (subj, reply, hdr) == (
        b"dl", None, b"NATS/1.0 100 Idle Heartbeat\r\nNats-Last-Consumer: 2\r\nNats-Last-Stream: 2\r\n\r\n")
    assert api(c, "$JS.API.CONSUMER.INFO.P.pd")["push_bound"] is True
    s.send(b"UNSUB 5\r\n")
    s.ping_pong()
    assert "push_bound" not in api(c, "$JS.API.CONSUMER.INFO.P.pd")


def test_push_flow_control(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.P", b'{"name":"P","subjects":["p"]}')
    chunk = b"x" * 65536
    for _ in range(40):  # 2.6 MB: past the first window (2 MB), half of which asks for a reply
        request(c, "p", chunk)
    s = raw_conn(js_server, headers=True)
    s.send(b"SUB fc 5\r\n")
    s.ping_pong()
    durable(c, "P", {"durable_name": "f", "deliver_subject": "fc", "flow_control": True, "idle_heartbeat": 10**9})
    n = 0
    while True:
        subj, reply, hdr, payload = msg_frames(s, rb"5")
        if hdr:
            break
        n += 1
    assert hdr == b"NATS/1.0 100 FlowControl Request\r\n\r\n" and re.match(rb"\$JS\.FC\.P\.f\.\w{4}$", reply)
    assert 16 <= n < 40
    # stalled past the window until the reply comes
    check_for(5, lambda: api(c, "$JS.API.CONSUMER.INFO.P.f")["delivered"]["consumer_seq"] < 40)
    s.send(b"PUB %s 0\r\n\r\n" % reply)
    while n < 40:
        subj, _, hdr, payload = msg_frames(s, rb"5")
        if not hdr:
            n += 1
    assert n == 40


def test_ephemeral_inactive_threshold(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.P", b'{"name":"P","subjects":["p"]}')
    push = create(c, "P", {"deliver_subject": "nobody", "inactive_threshold": 200_000_000})
    assert push["config"]["inactive_threshold"] == 200_000_000
    pull_ = create(c, "P", {"ack_policy": "explicit", "inactive_threshold": 100_000_000})
    eph = create(c, "P", {"deliver_subject": "nobody2"})
    assert eph["config"]["inactive_threshold"] == 5 * 10**9  # Go's default for ephemerals
    check_for(3, lambda: api(c, "$JS.API.STREAM.INFO.P")["state"]["consumer_count"] == 1)
    names = api(c, "$JS.API.CONSUMER.NAMES.P")["consumers"]
    assert names == [eph["name"]] and push["name"] not in names and pull_["name"] not in names


def test_deliver_group_and_ordered_consumer(js_server):
    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="P", subjects=["p.*"])
        for i in range(3):
            await js.publish("p.%d" % i, b"m%d" % i)
        q1 = await nc.subscribe("dg", queue="g")
        q2 = await nc.subscribe("dg", queue="g")
        await nc.flush()
        r = json.loads((await nc.request("$JS.API.CONSUMER.DURABLE.CREATE.P.g", json.dumps(
            {"stream_name": "P", "config": {"durable_name": "g", "deliver_subject": "dg",
                                            "deliver_group": "g"}}).encode())).data)
        assert (r["push_bound"], r["config"]["deliver_group"]) == (True, "g")
        for _ in range(50):
            if q1.pending_msgs + q2.pending_msgs == 3:
                break
            await asyncio.sleep(0.02)
        assert q1.pending_msgs + q2.pending_msgs == 3
        osub = await js.subscribe("p.*", ordered_consumer=True)
        assert [(await osub.next_msg(1)).data for _ in range(3)] == [b"m0", b"m1", b"m2"]
        await js.publish("p.9", b"later")
        m = await osub.next_msg(1)
        assert (m.data, m.subject, m.metadata.sequence.stream) == (b"later", "p.9", 4)
        # a durable push subscription with nats-py, acked
        got = []

        async def cb(msg):
            got.append(msg.data)
            await msg.ack()
        await js.subscribe("p.*", durable="pd", cb=cb, manual_ack=True)
        for _ in range(50):
            if len(got) == 4:
                break
            await asyncio.sleep(0.02)
        assert got == [b"m0", b"m1", b"m2", b"later"]
        await nc.close()
    run(main())


def test_pause_and_resume(js_server, raw_conn):
    from gnatsd import gofmt
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.P", b'{"name":"P","subjects":["p"]}')
    durable(c, "P", {"durable_name": "d", "ack_policy": "explicit"})
    until = gofmt.format_time(time.time_ns() + 60 * 10**9)
    r = api(c, "$JS.API.CONSUMER.PAUSE.P.d", json.dumps({"pause_until": until}).encode())
    assert (r["type"], r["paused"], r["pause_until"]) == (T + "consumer_pause_response", True, until)
    assert 0 < r["pause_remaining"] <= 60 * 10**9
    info = api(c, "$JS.API.CONSUMER.INFO.P.d")
    assert info["paused"] is True and info["config"]["pause_until"] == until
    request(c, "p", b"x")
    p = raw_conn(js_server, headers=True)
    pull(p, "P", "d", b'{"batch":1,"expires":300000000}')
    assert msg_frames(p, rb"9")[2].startswith(b"NATS/1.0 408 Request Timeout\r\n")  # nothing while paused
    r = api(c, "$JS.API.CONSUMER.PAUSE.P.d")
    assert (r["paused"], r["pause_until"]) == (False, "0001-01-01T00:00:00Z")
    pull(p, "P", "d", b'{"batch":1,"expires":1000000000}')
    assert msg_frames(p, rb"9")[3] == b"x"
    assert err(api(c, "$JS.API.CONSUMER.PAUSE.P.nope")) == (404, 10014, "consumer not found")


def test_replay_original_and_rate_limit(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.P", b'{"name":"P","subjects":["p"]}')
    request(c, "p", b"a")
    time.sleep(0.3)
    request(c, "p", b"b")
    s = raw_conn(js_server, headers=True)
    s.send(b"SUB r 5\r\n")
    s.ping_pong()
    durable(c, "P", {"durable_name": "r", "deliver_subject": "r", "replay_policy": "original"})
    t0 = time.monotonic()
    assert msg_frames(s, rb"5")[3] == b"a"
    assert msg_frames(s, rb"5")[3] == b"b"
    assert time.monotonic() - t0 > 0.25  # the gap the messages were stored with
    # rate limit: 8000 bps is 1000 bytes a second, the burst the stream's max message size
    api(c, "$JS.API.STREAM.CREATE.L", b'{"name":"L","subjects":["l"],"max_msg_size":200}')
    for _ in range(3):
        request(c, "l", b"z" * 150)
    s.send(b"SUB rl 6\r\n")
    s.ping_pong()
    t0 = time.monotonic()
    durable(c, "L", {"durable_name": "rl", "deliver_subject": "rl", "rate_limit_bps": 8000})
    assert [msg_frames(s, rb"6")[3] for _ in range(3)] == [b"z" * 150] * 3
    assert time.monotonic() - t0 > 0.3  # about 600 bytes over the burst at 1000 bytes/s


def test_jsz_consumer_detail(js_server, raw_conn):
    from gnatsd.monitor.monitor import JSzOptions, jsz
    from conftest import on_hub
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.J", b'{"name":"J","subjects":["j"]}')
    durable(c, "J", {"durable_name": "jd", "ack_policy": "explicit"})
    z = on_hub(js_server, jsz, js_server, JSzOptions(accounts=True, streams=True, consumer=True))
    assert z["consumers"] == 1
    (sd,) = z["account_details"][0]["stream_detail"]
    assert list(sd) == ["name", "created", "cluster", "state", "consumer_detail"]
    (cd,) = sd["consumer_detail"]
    assert cd["name"] == "jd" and "config" not in cd
    z = on_hub(js_server, jsz, js_server, JSzOptions(accounts=True, streams=True, consumer=True, config=True))
    assert z["account_details"][0]["stream_detail"][0]["consumer_detail"][0]["config"]["durable_name"] == "jd"


def test_next_nak_duration_limits_purge_and_stream_delete_as_go(js_server, raw_conn):
    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        adv = await nc.subscribe("$JS.EVENT.ADVISORY.CONSUMER.>")
        await js.add_stream(name="N", subjects=["n"], max_msgs=3)
        for i in range(3):
            await js.publish("n", b"%d" % i)
        await nc.request("$JS.API.CONSUMER.DURABLE.CREATE.N.d", json.dumps({"stream_name": "N", "config": {
            "durable_name": "d", "ack_policy": "explicit", "ack_wait": 5 * 10**9}}).encode())
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.N.d", b"1", reply=inbox)
        m = await sub.next_msg(1)
        await nc.publish(m.reply, b'+NXT {"batch":2}', reply=inbox)  # ack, and the next two
        ms = [await sub.next_msg(1) for _ in range(2)]
        assert [x.data for x in ms] == [b"1", b"2"]
        assert await _state(nc, "N", "d") == (3, 3, 1, 1, 2, 0, 0)
        t0 = time.monotonic()
        await nc.publish(ms[0].reply, b"-NAK 300ms")  # a Go duration
        await nc.publish("$JS.API.CONSUMER.MSG.NEXT.N.d", b'{"batch":1,"expires":2000000000}', reply=inbox)
        x = await sub.next_msg(2)
        assert x.data == b"1" and time.monotonic() - t0 >= 0.29
        # max_msgs pushes out the pending "1": it is terminated
        await js.publish("n", b"3")
        await js.publish("n", b"4")
        for _ in range(50):
            if (await _state(nc, "N", "d"))[3] == 2:
                break
            await asyncio.sleep(0.02)
        assert await _state(nc, "N", "d") == (4, 3, 2, 2, 1, 0, 2)
        assert (await js.purge_stream("N")) is True
        assert await _state(nc, "N", "d") == (4, 5, 4, 5, 0, 0, 0)
        await js.delete_stream("N")  # its consumers go, with an advisory each
        got = []
        while True:
            try:
                a = await adv.next_msg(0.3)
            except nats.errors.TimeoutError:
                break
            d = json.loads(a.data)
            got.append((a.subject.rsplit(".", 2)[0], d.get("stream_seq"), d.get("deliveries")))
        assert got == [("$JS.EVENT.ADVISORY.CONSUMER.CREATED", None, None),
                       ("$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED", 2, 1),
                       ("$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED", 2, 1),
                       ("$JS.EVENT.ADVISORY.CONSUMER.DELETED", None, None)]
        await nc.close()
    run(main())


def test_interest_ack_none_push_and_rebind(js_server):
    async def main():
        nc = await nats.connect(f"nats://127.0.0.1:{js_server.port}")
        js = nc.jetstream()
        await js.add_stream(name="I", subjects=["i"], retention="interest")
        s = await nc.subscribe("ipush")
        cfg = {"durable_name": "p", "deliver_subject": "ipush", "ack_policy": "none"}
        await nc.request("$JS.API.CONSUMER.DURABLE.CREATE.I.p",
                         json.dumps({"stream_name": "I", "config": cfg}).encode())
        for i in range(3):
            await js.publish("i", b"%d" % i)
        assert [(await s.next_msg(1)).data for _ in range(3)] == [b"0", b"1", b"2"]
        await nc.flush()
        st = await _stream_state(nc, "I")
        assert st[:2] == (0, 4)  # delivered with ack none: gone from an interest stream
        await s.unsubscribe()
        s2 = await nc.subscribe("ipush2")
        await nc.flush()
        r = json.loads((await nc.request("$JS.API.CONSUMER.DURABLE.CREATE.I.p", json.dumps(
            {"stream_name": "I", "config": dict(cfg, deliver_subject="ipush2")}).encode())).data)
        assert r["config"]["deliver_subject"] == "ipush2" and r["push_bound"] is True
        await js.publish("i", b"3")
        assert (await s2.next_msg(1)).data == b"3"
        await nc.close()
    run(main())


def test_filters_within_transformed_and_sourced_subjects(js_server):
    """Go: gatherSourceMirrorSubjects, with 2.10's transforms: a filter may name a subject the
    stream's transform makes or one its mirror's origin has; others are refused (10093)."""
    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(name="T", subjects=["test", "foo"],
                            subject_transform=SubjectTransform(src=">", dest="transformed.>"))
        for i in range(3):
            await js.publish("test", str(i).encode())
        psub = await js.pull_subscribe("transformed.test", stream="T")
        msgs = await psub.fetch(3, timeout=2)
        assert [(m.subject, m.data) for m in msgs] == [("transformed.test", b"0"), ("transformed.test", b"1"),
                                                       ("transformed.test", b"2")]
        await js.add_stream(name="M", mirror=StreamSource(name="T"))
        await js.add_consumer("M", ConsumerConfig(durable_name="m", filter_subject="transformed.test"))
        with pytest.raises(BadRequestError) as e:
            await js.add_consumer("M", ConsumerConfig(durable_name="x", filter_subject="other"))
        assert e.value.err_code == 10093
        await nc.close()
    run(go())
