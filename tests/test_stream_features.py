"""Stream features beyond the basics (gnatsd/js/stream.py, gnatsd/js/sources.py): republish,
mirrors and sources within the server, 2.10's subject transforms, first_seq, metadata and
compression, 2.11's per-message TTL. Expected JSON for the 2.9 features was taken from
nats-server 2.9.10 on the same requests; the newer ones follow the newest Go source."""
from __future__ import annotations

import json
import re

import nats
import pytest
from nats.js.api import RePublish, StreamConfig, StreamSource

from conftest import check_for
from test_jetstream import api, request, run

CFG_DEFAULTS = ('"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,'
                '"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1')


@pytest.fixture
def js_server(make_server, tmp_path):
    return make_server(jetstream=True, store_dir=str(tmp_path))


def create_err(err_code, description, code=500, update=False):
    kind = "update" if update else "create"
    return {"type": f"io.nats.jetstream.api.v1.stream_{kind}_response",
            "error": {"code": code, "err_code": err_code, "description": description}}


def info(c, name):
    return api(c, f"$JS.API.STREAM.INFO.{name}")


def msg(c, name, seq):
    """(subject, headers bytes, data bytes) of message `seq`, or None."""
    m = api(c, f"$JS.API.STREAM.MSG.GET.{name}", b'{"seq":%d}' % seq).get("message")
    if m is None:
        return None
    import base64
    return m["subject"], base64.b64decode(m.get("hdrs", "")), base64.b64decode(m.get("data", ""))


# -- republish ----------------------------------------------------------------------------------


def test_republish_headers_as_go(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    r = api(c, "$JS.API.STREAM.CREATE.R", b'{"name":"R","subjects":["r.*"],"republish":{"src":"r.*","dest":"rp.$1"}}')
    assert r["config"]["republish"] == {"src": "r.*", "dest": "rp.$1"}
    sub = raw_conn(js_server, headers=True)
    sub.send(b"SUB rp.> 1\r\n")
    sub.ping_pong()
    assert request(c, "r.a", b"one")[1] == b'{"stream":"R", "seq":1}'
    m = sub.expect(rb"HMSG rp\.a 1 (\d+) (\d+)\r\n")
    data = sub.read_exact(int(m.group(2)) + 2)[:-2]
    hdr, body = data[:int(m.group(1))], data[int(m.group(1)):]
    assert body == b"one"
    assert re.fullmatch(rb"NATS/1.0\r\nNats-Stream: R\r\nNats-Subject: r.a\r\nNats-Sequence: 1\r\n"
                        rb"Nats-Time-Stamp: \d{4}-\d\d-\d\dT[\d:.]+Z\r\nNats-Last-Sequence: 0\r\n\r\n", hdr), hdr
    # Existing headers stay first; Nats-Last-Sequence is the subject's previous message.
    request(c, "r.b", b"two")
    sub.expect(rb"HMSG rp\.b 1 \d+ \d+\r\n")
    sub.expect(rb"Nats-Last-Sequence: 0\r\n\r\ntwo\r\n")
    request(c, "r.a", b"three", {"X-Mine": "yes"})
    sub.expect(rb"HMSG rp\.a 1 \d+ \d+\r\nNATS/1.0\r\nX-Mine: yes\r\nNats-Stream: R\r\n")
    sub.expect(rb"Nats-Sequence: 3\r\nNats-Time-Stamp: [^\r]+\r\nNats-Last-Sequence: 1\r\n\r\nthree\r\n")


def test_republish_headers_only_with_nats_py(js_server):
    async def main():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="H", subjects=["h.>"],
                                         republish=RePublish(dest="meta.>", headers_only=True)))
        sub = await nc.subscribe("meta.>")
        await js.publish("h.x", b"12345")
        m = await sub.next_msg(2)
        assert (m.subject, m.data, m.headers["Nats-Msg-Size"], m.headers["Nats-Sequence"]) == ("meta.h.x", b"", "5", "1")
        await nc.close()
    run(main())


@pytest.mark.parametrize("body, description", [
    (b'{"name":"B","subjects":["r.>"],"republish":{"src":"q.>","dest":"x.>"}}',
     "stream configuration for republish source is not valid subset of subjects"),
    (b'{"name":"B","subjects":["r.>"],"republish":{"dest":"r.x"}}',
     "stream configuration for republish destination forms a cycle"),
    (b'{"name":"B","subjects":["r.*"],"republish":{"src":"r.*","dest":"x.$2"}}',
     "stream configuration for republish not valid"),
])
def test_republish_bad_configs(js_server, raw_conn, body, description):
    c = raw_conn(js_server)
    assert api(c, "$JS.API.STREAM.CREATE.B", body) == create_err(10052, description)
    assert api(c, "$JS.API.STREAM.NAMES")["streams"] is None


def test_republish_can_not_change(js_server, raw_conn):
    c = raw_conn(js_server)
    api(c, "$JS.API.STREAM.CREATE.R", b'{"name":"R","subjects":["t.*"],"republish":{"src":"t.*","dest":"y.$1"}}')
    assert api(c, "$JS.API.STREAM.UPDATE.R", b'{"name":"R","subjects":["t.*"],"republish":{"src":"t.*","dest":"z.$1"}}') \
        == create_err(10052, "stream configuration update can not change RePublish", update=True)


# -- mirrors ------------------------------------------------------------------------------------


def test_mirror_keeps_sequences_and_follows(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o.>"]}')
    r = api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","mirror":{"name":"O","filter_subject":"o.a"}}')
    assert "mirror" not in r and r["config"]["mirror"] == {"name": "O", "filter_subject": "o.a"}
    assert "subjects" not in r["config"] and "duplicate_window" not in r["config"]
    for subj, data in ((b"o.a", b"1"), (b"o.b", b"2"), (b"o.a", b"3")):
        request(c, subj.decode(), data, {"Nats-Msg-Id": data.decode()})
    check_for(5, lambda: info(c, "M")["state"]["last_seq"] == 3)
    i = info(c, "M")
    assert (i["state"]["messages"], i["state"]["first_seq"], i["state"]["num_deleted"]) == (2, 1, 1)
    assert i["mirror"]["name"] == "O" and i["mirror"]["lag"] == 0 and 0 <= i["mirror"]["active"] < 2e9
    assert "error" not in i["mirror"]
    assert msg(c, "M", 3) == ("o.a", b"NATS/1.0\r\nNats-Msg-Id: 3\r\n\r\n", b"3")
    # the origin's timestamps are kept
    assert api(c, "$JS.API.STREAM.MSG.GET.M", b'{"seq":3}')["message"]["time"] == \
        api(c, "$JS.API.STREAM.MSG.GET.O", b'{"seq":3}')["message"]["time"]
    # the origin goes away: the mirror says so, and picks up after its last sequence when
    # a stream of that name comes back (Go's new consumer starts at the new stream's first)
    api(c, "$JS.API.STREAM.DELETE.O")
    check_for(5, lambda: info(c, "M")["mirror"].get("error") ==
              {"code": 404, "err_code": 10059, "description": "stream not found"})
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o.>"]}')
    for i in range(5):
        request(c, "o.a", b"n%d" % i)
    check_for(5, lambda: info(c, "M")["state"]["last_seq"] == 5)
    assert "error" not in info(c, "M")["mirror"]
    assert msg(c, "M", 4)[2] == b"n3"


def test_mirror_of_a_stream_made_later_with_start_seq(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","storage":"memory","mirror":{"name":"O","opt_start_seq":3}}')
    i = info(c, "M")
    assert i["mirror"] == {"name": "O", "lag": 0, "active": -1,
                           "error": {"code": 404, "err_code": 10059, "description": "stream not found"}}
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o"]}')
    for i in range(4):
        request(c, "o", b"%d" % i)
    # Go: a consumer made on an empty stream starts at its first message, whatever was asked
    check_for(5, lambda: info(c, "M")["state"]["messages"] == 4)


def test_mirror_refuses_publishes_and_bad_configs(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o.>"],"max_msg_size":100}')
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","mirror":{"name":"O"}}')
    for subject, body, expected in [
        ("CREATE.M2", b'{"name":"M2","mirror":{"name":"X"},"subjects":["a"]}',
         create_err(10034, "stream mirrors can not contain subjects", 400)),
        ("CREATE.M3", b'{"name":"M3","mirror":{"name":"X"},"sources":[{"name":"Y"}]}',
         create_err(10031, "stream mirrors can not also contain other sources", 400)),
        ("CREATE.M5", b'{"name":"M5","mirror":{"name":"O"},"max_msg_size":10}',
         create_err(10030, "stream mirror must have max message size >= source", 400)),
        ("CREATE.M6", b'{"name":"M6","mirror":{"name":"O","filter_subject":"p.>"}}',
         create_err(10052, "mirror 'O' filter subject 'p.>' does not overlap with any origin stream subject")),
        ("UPDATE.M", b'{"name":"M","mirror":{"name":"O","filter_subject":"o.a"}}',
         create_err(10055, "stream mirror configuration can not be updated", 400, update=True)),
        ("UPDATE.M", b'{"name":"M","mirror":{"name":"O"},"subjects":["q"]}',
         create_err(10034, "stream mirrors can not contain subjects", 400, update=True)),
        ("CREATE.M8", b'{"name":"M8","mirror":{"name":"O","external":{"api":"$JS.API"}}}',
         create_err(10021, "stream external api prefix $JS.API must not overlap with $JS.API", 400)),
        ("CREATE.M9", b'{"name":"M9","mirror":{"name":"O"},"first_seq":5}',
         create_err(10143, "stream mirrors can not have first sequence configured", 400)),
        ("CREATE.M10", b'{"name":"M10","mirror":{"name":"O","filter_subject":"o.a",'
                       b'"subject_transforms":[{"src":"o.b","dest":"x"}]}}',
         create_err(10150, "mirror with multiple subject transforms cannot also have a single subject filter", 400)),
    ]:
        assert api(c, "$JS.API.STREAM." + subject, body) == expected, subject
    # The mirror has no subjects: a publish reaches the origin only.
    assert request(c, "o.x", b"hi")[1] == b'{"stream":"O", "seq":1}'
    check_for(5, lambda: info(c, "M")["state"]["messages"] == 1)
    assert api(c, "$JS.API.STREAM.NAMES")["streams"] == ["M", "O"]


# -- sources ------------------------------------------------------------------------------------


def test_sources_with_nats_py(js_server):
    async def main():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(name="A", subjects=["a.*"])
        await js.add_stream(name="B", subjects=["b.*"])
        await js.add_stream(StreamConfig(name="S", subjects=["s"], sources=[
            StreamSource(name="A"), StreamSource(name="B", filter_subject="b.x")]))
        await js.publish("a.1", b"a1", headers={"K": "v"})
        await js.publish("b.y", b"by")
        await js.publish("b.x", b"bx")
        await js.publish("s", b"own")
        for _ in range(100):
            si = await js.stream_info("S")
            if si.state.messages == 3:
                break
            await nc.flush()
        assert si.state.messages == 3
        assert sorted(s.name for s in si.sources) == ["A", "B"] and all(s.lag == 0 for s in si.sources)
        got = {}
        for seq in (1, 2, 3):
            m = await js.get_msg("S", seq)
            got[m.subject] = (m.data, m.headers)
        assert got["a.1"] == (b"a1", {"K": "v", "Nats-Stream-Source": "A 1"})
        assert got["b.x"] == (b"bx", {"Nats-Stream-Source": "B 2"})
        assert got["s"] == (b"own", None)
        await nc.close()
    run(main())


def test_source_chain_and_bad_configs(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o.>"]}')
    api(c, "$JS.API.STREAM.CREATE.S1", b'{"name":"S1","sources":[{"name":"O"}]}')
    api(c, "$JS.API.STREAM.CREATE.S2", b'{"name":"S2","storage":"memory","sources":[{"name":"S1"}]}')
    request(c, "o.a", b"x")
    request(c, "o.b", b"y", {"Nats-Expected-Last-Subject-Sequence": "0", "K": "v"})
    check_for(5, lambda: info(c, "S2")["state"]["messages"] == 2)
    # a chain of sources keeps one Nats-Stream-Source header: the last hop's; the origin's
    # Nats-Expected-* headers are not checked again (they would fail here)
    assert msg(c, "S2", 1) == ("o.a", b"NATS/1.0\r\nNats-Stream-Source: S1 1\r\n\r\n", b"x")
    assert msg(c, "S2", 2) == ("o.b", b"NATS/1.0\r\nK: v\r\nNats-Stream-Source: S1 2\r\n\r\n", b"y")
    for subject, body, expected in [
        ("CREATE.C", b'{"name":"C","sources":[{"name":"C"}]}', create_err(10052, "detected cycle")),
        ("UPDATE.S1", b'{"name":"S1","sources":[{"name":"O"},{"name":"S2"}]}',
         create_err(10052, "detected cycle", update=True)),
        ("CREATE.D", b'{"name":"D","sources":[{"name":"O","filter_subject":"o.a"},{"name":"O","filter_subject":"o.b"}]}',
         create_err(10140, "duplicate source configuration detected", 400)),
        ("CREATE.D", b'{"name":"D","sources":[{"name":"O","filter_subject":"p.>"}]}',
         create_err(10052, "source 'O' filter subject 'p.>' does not overlap with any origin stream subject")),
        ("CREATE.D", b'{"name":"D","sources":[{"name":"a.b"}]}', create_err(10141, "sourced stream name is invalid", 400)),
        ("CREATE.D", b'{"name":"D","sources":[{"name":"O","subject_transforms":[{"src":"o.*","dest":"x.$2"}]}]}',
         create_err(10146, "source transform: invalid mapping destination: wildcard index out of range in $2: [2]",
                    400)),
    ]:
        assert api(c, "$JS.API.STREAM." + subject, body) == expected, subject


def test_source_subject_transforms_and_update(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o.*"]}')
    api(c, "$JS.API.STREAM.CREATE.P", b'{"name":"P","subjects":["p"]}')
    request(c, "p", b"old")
    r = api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","sources":[{"name":"O","subject_transforms":'
                                          b'[{"src":"o.a","dest":"from.a"},{"src":"o.b","dest":""}]}]}')
    assert r["config"]["sources"] == [{"name": "O", "subject_transforms": [{"src": "o.a", "dest": "from.a"},
                                                                           {"src": "o.b", "dest": ""}]}]
    for subj in (b"o.a", b"o.b", b"o.c"):
        request(c, subj.decode(), subj)
    check_for(5, lambda: info(c, "S")["state"]["messages"] == 2)
    assert [msg(c, "S", s)[0] for s in (1, 2)] == ["from.a", "o.b"]
    assert info(c, "S")["sources"][0]["subject_transforms"][0] == {"src": "o.a", "dest": "from.a"}
    # a source added by an update takes everything (Go 2.9.10: no start time for it); one
    # whose filter changes goes on after the last origin sequence it looked at
    api(c, "$JS.API.STREAM.UPDATE.S", b'{"name":"S","sources":[{"name":"O","filter_subject":"o.c"},{"name":"P"}]}')
    request(c, "p", b"new")
    request(c, "o.a", b"not any more")
    request(c, "o.c", b"now")
    check_for(5, lambda: info(c, "S")["state"]["messages"] == 5)
    got = sorted(msg(c, "S", s)[1:] for s in (3, 4, 5))
    assert got == [(b"NATS/1.0\r\nNats-Stream-Source: O 5\r\n\r\n", b"now"),
                   (b"NATS/1.0\r\nNats-Stream-Source: P 1\r\n\r\n", b"old"),
                   (b"NATS/1.0\r\nNats-Stream-Source: P 2\r\n\r\n", b"new")]


def test_file_mirror_and_source_recover_after_restart(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path))
    c = raw_conn(s, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o"]}')
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","mirror":{"name":"O"}}')
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","subjects":["s"],"sources":[{"name":"O"}]}')
    for i in range(3):
        request(c, "o", b"%d" % i)
    request(c, "s", b"own")
    check_for(5, lambda: info(c, "M")["state"]["messages"] == 3 and info(c, "S")["state"]["messages"] == 4)
    c.close()
    s.stop_thread()
    s2 = make_server(jetstream=True, store_dir=str(tmp_path))
    c2 = raw_conn(s2, headers=True)
    for i in range(3, 5):
        request(c2, "o", b"%d" % i)
    check_for(5, lambda: info(c2, "M")["state"]["messages"] == 5 and info(c2, "S")["state"]["messages"] == 6)
    # nothing was copied twice
    assert [msg(c2, "S", q)[2] for q in range(1, 7)] == [b"0", b"1", b"2", b"own", b"3", b"4"]
    i = info(c2, "S")
    assert i["sources"][0]["lag"] == 0 and json.dumps(i).count("error") == 0


# -- 2.10: subject transform, first_seq, metadata, compression ----------------------------------


def test_subject_transform_first_seq_metadata(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    r = api(c, "$JS.API.STREAM.CREATE.T", b'{"name":"T","subjects":["in.*"],"storage":"memory","first_seq":100,'
                                          b'"subject_transform":{"src":"in.*","dest":"out.$1"},'
                                          b'"metadata":{"b":"2","a":"1"}}')
    cfg = json.dumps(r["config"], separators=(",", ":"))
    assert cfg.endswith('"first_seq":100,"subject_transform":{"src":"in.*","dest":"out.$1"},"allow_direct":false,'
                        '"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,'
                        '"allow_rollup_hdrs":false,"metadata":{"a":"1","b":"2"}}')
    assert (r["state"]["first_seq"], r["state"]["last_seq"]) == (100, 99)
    assert request(c, "in.x", b"hello")[1] == b'{"stream":"T", "seq":100}'
    assert msg(c, "T", 100) == ("out.x", b"", b"hello")
    # the same config again is no change; another transform is an update
    assert api(c, "$JS.API.STREAM.CREATE.T", b'{"name":"T","subjects":["in.*"],"storage":"memory","first_seq":100,'
                                             b'"subject_transform":{"src":"in.*","dest":"out.$1"},'
                                             b'"metadata":{"a":"1","b":"2"}}')["did_create"]
    api(c, "$JS.API.STREAM.UPDATE.T", b'{"name":"T","subjects":["in.*"],"storage":"memory",'
                                      b'"subject_transform":{"src":"in.*","dest":"new.$1"}}')
    request(c, "in.y", b"again")
    assert msg(c, "T", 101)[0] == "new.y"


@pytest.mark.parametrize("body, expected", [
    (b'{"name":"B","subjects":["b"],"compression":"zip"}', (400, 10025, "invalid JSON")),
    (b'{"name":"B","subjects":["b"],"metadata":{"a":1}}', (400, 10025, "invalid JSON")),
    (b'{"name":"B","subjects":["t3"],"subject_transform":{"src":"t3.*.","dest":"x"}}',
     (400, 10155, "stream transform source: invalid subject t3.*.")),
    (b'{"name":"B","subjects":["t4.*"],"subject_transform":{"src":"t4.*","dest":"x.$2"}}',
     (400, 10156, "stream transform: invalid mapping destination: wildcard index out of range in $2: [2]")),
    (b'{"name":"B","subjects":["b"],"discard_new_per_subject":true}',
     (500, 10052, "discard new per subject requires discard new policy to be set")),
    (b'{"name":"B","subjects":["b"],"discard_new_per_subject":true,"discard":"new"}',
     (500, 10052, "discard new per subject requires max msgs per subject > 0")),
    (b'{"name":"B","subjects":["b"],"mirror_direct":true}',
     (500, 10052, "stream has no mirror but does have mirror direct")),
    (b'{"name":"B","subjects":["b"],"subject_delete_marker_ttl":500000000}',
     (500, 10052, "subject delete marker TTL must be at least 1 second")),
    (b'{"name":"B","subjects":["b"],"subject_delete_marker_ttl":-1}',
     (500, 10052, "subject delete marker TTL must not be negative")),
    (b'{"name":"B","subjects":["b"],"metadata":{"k":"' + b"v" * 131072 + b'"}}',
     (500, 10052, "stream metadata exceeds maximum size of 131072 bytes")),
])
def test_newer_config_checks(js_server, raw_conn, body, expected):
    c = raw_conn(js_server)
    assert api(c, "$JS.API.STREAM.CREATE.B", body)["error"] == dict(zip(("code", "err_code", "description"), expected))


def test_mirror_direct_follows_the_origin(js_server, raw_conn):
    c = raw_conn(js_server)
    api(c, "$JS.API.STREAM.CREATE.K", b'{"name":"K","subjects":["k"],"allow_direct":true}')
    assert api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","mirror":{"name":"K"}}')["config"]["mirror_direct"] is True
    assert api(c, "$JS.API.STREAM.CREATE.N", b'{"name":"N","mirror":{"name":"Z"}}')["config"]["mirror_direct"] is False


def test_s2_compression_on_disk_and_after_restart(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path))
    c = raw_conn(s, headers=True)
    r = api(c, "$JS.API.STREAM.CREATE.Z", b'{"name":"Z","subjects":["z"],"compression":"s2"}')
    assert r["config"]["compression"] == "s2"
    big = b"compress me please " * 100
    request(c, "z", big, {"H": "x" * 80})
    request(c, "z", b"tiny")
    assert msg(c, "Z", 1) == ("z", b"NATS/1.0\r\nH: " + b"x" * 80 + b"\r\n\r\n", big)
    blocks = list((tmp_path / "jetstream" / "$G" / "streams" / "Z" / "msgs").glob("*.blk"))
    data = b"".join(p.read_bytes().rstrip(b"\0") for p in blocks)  # the last block is preallocated
    assert big not in data and b"tiny" in data and len(data) < len(big) // 4
    hdr = b"NATS/1.0\r\nH: " + b"x" * 80 + b"\r\n\r\n"
    # Stream bytes count the messages as Go does (fileStoreMsgSize), not what is on disk.
    go_bytes = (22 + 1 + 4 + len(hdr) + len(big) + 8) + (22 + 1 + len(b"tiny") + 8)
    assert info(c, "Z")["state"]["bytes"] == go_bytes
    c.close()
    s.stop_thread()
    (tmp_path / "jetstream" / "$G" / "streams" / "Z" / "index.snap").unlink()  # recover by scanning
    s2 = make_server(jetstream=True, store_dir=str(tmp_path))
    c2 = raw_conn(s2, headers=True)
    assert msg(c2, "Z", 1)[2] == big and msg(c2, "Z", 2)[2] == b"tiny"
    assert info(c2, "Z")["state"]["bytes"] == go_bytes  # the same from a scan of compressed records
    # compression can be turned off: what is stored stays readable
    api(c2, "$JS.API.STREAM.UPDATE.Z", b'{"name":"Z","subjects":["z"]}')
    request(c2, "z", big)
    assert msg(c2, "Z", 3)[2] == big and msg(c2, "Z", 1)[2] == big


# -- 2.11: per-message TTL ----------------------------------------------------------------------


def test_msg_ttl_publish_errors(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.N", b'{"name":"N","subjects":["n"]}')
    assert json.loads(request(c, "n", b"x", {"Nats-TTL": "5s"})[1]) == {
        "error": {"code": 400, "err_code": 10166, "description": "per-message TTL is disabled"}, "stream": "N", "seq": 0}
    api(c, "$JS.API.STREAM.CREATE.T", b'{"name":"T","subjects":["t"],"allow_msg_ttl":true}')
    for value in ("500ms", "bogus", "-1", "1.5"):
        assert json.loads(request(c, "t", b"x", {"Nats-TTL": value})[1])["error"] == {
            "code": 400, "err_code": 10165, "description": "invalid per-message TTL"}, value
    for value in ("never", "NEVER", "1h", "90", "0"):
        assert b'"seq"' in request(c, "t", b"x", {"Nats-TTL": value})[1]
    assert api(c, "$JS.API.STREAM.UPDATE.T", b'{"name":"T","subjects":["t"]}')["error"]["description"] == \
        "message TTL status can not be disabled"


def test_msg_ttl_expires_and_never_outlives_max_age(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.T", b'{"name":"T","subjects":["t.*"],"allow_msg_ttl":true,"max_age":300000000}')
    request(c, "t.a", b"short", {"Nats-TTL": "1"})
    request(c, "t.b", b"forever", {"Nats-TTL": "never"})
    request(c, "t.c", b"aged")
    request(c, "t.d", b"long", {"Nats-TTL": "1h"})
    # max_age takes what has no TTL, and a TTL does not outlive max_age, but "never" does
    check_for(5, lambda: info(c, "T")["state"]["messages"] == 1)
    assert msg(c, "T", 2)[2] == b"forever"
    api(c, "$JS.API.STREAM.CREATE.U", b'{"name":"U","subjects":["u"],"allow_msg_ttl":true,"storage":"memory"}')
    request(c, "u", b"short", {"Nats-TTL": "1s"})
    request(c, "u", b"stays")
    check_for(5, lambda: info(c, "U")["state"]["messages"] == 1)
    assert msg(c, "U", 2)[2] == b"stays"


def test_msg_ttl_survives_restart(make_server, tmp_path, raw_conn):
    s = make_server(jetstream=True, store_dir=str(tmp_path))
    c = raw_conn(s, headers=True)
    api(c, "$JS.API.STREAM.CREATE.T", b'{"name":"T","subjects":["t"],"allow_msg_ttl":true}')
    request(c, "t", b"short", {"Nats-TTL": "1"})
    request(c, "t", b"stays")
    c.close()
    s.stop_thread()
    s2 = make_server(jetstream=True, store_dir=str(tmp_path))
    c2 = raw_conn(s2, headers=True)
    check_for(5, lambda: info(c2, "T")["state"]["messages"] == 1)
    assert msg(c2, "T", 2)[2] == b"stays"


def test_subject_delete_markers(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    r = api(c, "$JS.API.STREAM.CREATE.K", b'{"name":"K","subjects":["k.*"],"subject_delete_marker_ttl":1000000000}')
    cfg = r["config"]
    assert (cfg["allow_msg_ttl"], cfg["allow_rollup_hdrs"], cfg["subject_delete_marker_ttl"]) == (True, True, 1000000000)
    request(c, "k.a", b"v", {"Nats-TTL": "1"})
    # the subject's last message makes room for a marker, which goes in its turn
    check_for(5, lambda: info(c, "K")["state"]["last_seq"] == 2)
    assert msg(c, "K", 1) is None
    assert msg(c, "K", 2) == ("k.a", b"NATS/1.0\r\nNats-Marker-Reason: MaxAge\r\nNats-TTL: 1s\r\nNats-Rollup: sub\r\n\r\n",
                              b"")
    check_for(5, lambda: info(c, "K")["state"]["messages"] == 0)
    assert info(c, "K")["state"]["last_seq"] == 2
    assert api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","mirror":{"name":"K"},"subject_delete_marker_ttl":'
                                             b'1000000000}')["error"]["description"] == \
        "subject delete markers forbidden on mirrors"


def test_mirror_skips_a_corrupt_origin_record(js_server, raw_conn, tmp_path, caplog):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o"]}')
    for data in (b"first", b"middle", b"last"):
        request(c, "o", data)
    (blk,) = (tmp_path / "jetstream" / "$G" / "streams" / "O" / "msgs").glob("*.blk")
    raw = bytearray(blk.read_bytes())
    raw[raw.index(b"middle")] ^= 0xFF
    blk.write_bytes(bytes(raw))
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","storage":"memory","mirror":{"name":"O"}}')
    check_for(5, lambda: info(c, "M")["state"]["last_seq"] == 3)
    assert [msg(c, "M", s) and msg(c, "M", s)[2] for s in (1, 2, 3)] == [b"first", None, b"last"]
    assert info(c, "O")["state"]["lost"] == {"msgs": [2], "bytes": 38}


def test_source_filter_changed_to_another_goes_on_from_now(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o.*"],"storage":"memory"}')
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","storage":"memory","sources":[{"name":"O","filter_subject":"o.a"}]}')
    request(c, "o.a", b"a")
    check_for(5, lambda: info(c, "S")["state"]["messages"] == 1)
    request(c, "o.b", b"before")
    api(c, "$JS.API.STREAM.UPDATE.S", b'{"name":"S","storage":"memory","sources":[{"name":"O","filter_subject":"o.b"}]}')
    request(c, "o.b", b"after")
    check_for(5, lambda: info(c, "S")["state"]["messages"] == 2)
    assert msg(c, "S", 2)[2] == b"after"


def test_ttl_messages_copied_to_streams_without_ttl(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.T", b'{"name":"T","subjects":["t"],"allow_msg_ttl":true,"storage":"memory"}')
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","storage":"memory","sources":[{"name":"T"}]}')
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","storage":"memory","mirror":{"name":"T"}}')
    request(c, "t", b"short", {"Nats-TTL": "1"})
    # copied with their header, kept: the copies' streams do not allow TTLs
    check_for(5, lambda: info(c, "S")["state"]["messages"] == 1 and info(c, "M")["state"]["messages"] == 1)
    check_for(5, lambda: info(c, "T")["state"]["messages"] == 0)
    assert info(c, "S")["state"]["messages"] == 1 and info(c, "M")["state"]["messages"] == 1
    assert b"Nats-TTL: 1\r\n" in msg(c, "S", 1)[1]


def test_source_retries_what_the_stream_refused(js_server, raw_conn, caplog):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o"],"storage":"memory"}')
    for i in range(3):
        request(c, "o", b"%d" % i)
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","storage":"memory","discard":"new","max_msgs":1,'
                                      b'"sources":[{"name":"O"}]}')
    check_for(5, lambda: info(c, "S")["sources"][0]["lag"] == 2)
    assert info(c, "S")["state"]["messages"] == 1
    api(c, "$JS.API.STREAM.UPDATE.S", b'{"name":"S","storage":"memory","discard":"new","max_msgs":5,'
                                      b'"sources":[{"name":"O"}]}')
    check_for(5, lambda: info(c, "S")["state"]["messages"] == 3)
    assert info(c, "S")["sources"][0]["lag"] == 0
    refusals = [r.getMessage() for r in caplog.records if "Error processing inbound source" in r.getMessage()]
    assert refusals == ["Error processing inbound source \"O\" for '$G' > 'S': maximum messages exceeded"]


def test_jsz_shows_mirror_and_sources(js_server, raw_conn):
    c = raw_conn(js_server, headers=True)
    api(c, "$JS.API.STREAM.CREATE.O", b'{"name":"O","subjects":["o"],"storage":"memory"}')
    api(c, "$JS.API.STREAM.CREATE.M", b'{"name":"M","storage":"memory","mirror":{"name":"O"}}')
    api(c, "$JS.API.STREAM.CREATE.S", b'{"name":"S","storage":"memory","sources":[{"name":"O"}]}')
    from conftest import on_hub
    from gnatsd.monitor.monitor import JSzOptions, jsz
    z = on_hub(js_server, jsz, js_server, JSzOptions(accounts=True, streams=True))
    m, o, s = z["account_details"][0]["stream_detail"]
    assert list(m)[-2:] == ["state", "mirror"] and m["mirror"]["name"] == "O" and "mirror" not in o
    assert [x["name"] for x in s["sources"]] == ["O"]
