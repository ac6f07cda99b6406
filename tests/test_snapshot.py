"""Stream snapshots and restores (gnatsd/js/snapshot.py) through nats-py, as the nats CLI
does them (`nats stream backup` / `restore`): chunks acknowledged for flow control, an empty
message at the end, chunks sent back as requests."""
from __future__ import annotations

import asyncio
import gzip
import io
import json
import tarfile

import nats
import pytest
from nats.js.api import StreamConfig

from test_cli import gnatsd  # noqa: F401 - the subprocess fixture


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture
def js_server(make_server, tmp_path):
    return make_server(jetstream=True, store_dir=str(tmp_path))


async def api(nc, subject, req):
    msg = await nc.request(subject, json.dumps(req).encode() if req is not None else b"", timeout=5)
    return json.loads(msg.data)


async def snapshot(nc, stream, **req):
    """The archive of `stream`, with the answer to the request."""
    inbox = nc.new_inbox()
    chunks = []
    done = asyncio.get_running_loop().create_future()

    async def on_chunk(msg):
        if not msg.data:
            done.set_result(True)
            return
        chunks.append(msg.data)
        await msg.respond(b"")

    sub = await nc.subscribe(inbox, cb=on_chunk)
    await nc.flush()
    resp = await api(nc, f"$JS.API.STREAM.SNAPSHOT.{stream}", dict(deliver_subject=inbox, **req))
    if "error" not in resp:
        await done
    await sub.unsubscribe()
    return resp, b"".join(chunks)


async def restore(nc, stream, config, archive, chunk=64 * 1024):
    resp = await api(nc, f"$JS.API.STREAM.RESTORE.{stream}", {"config": config})
    if "error" in resp:
        return resp
    assert resp["type"] == "io.nats.jetstream.api.v1.stream_restore_response"
    for i in range(0, len(archive), chunk):
        ack = await nc.request(resp["deliver_subject"], archive[i:i + chunk], timeout=5)
        assert ack.data == b""
    final = await nc.request(resp["deliver_subject"], b"", timeout=10)
    return json.loads(final.data)


def test_snapshot_and_restore_round_trip(js_server):
    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["s.>"]))
        for i in range(200):
            await js.publish(f"s.{i % 7}", b"x" * i, headers={"H": str(i)} if i % 2 else None)
        await js.delete_msg("S", 5)
        resp, archive = await snapshot(nc, "S", chunk_size=4096)
        assert resp["type"] == "io.nats.jetstream.api.v1.stream_snapshot_response"
        assert resp["config"]["name"] == "S"
        assert resp["state"]["messages"] == 199 and resp["state"]["last_seq"] == 200
        names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))).getnames()
        assert names[:2] == ["meta.inf", "meta.sum"] and any(n.startswith("msgs/") for n in names)

        # A stream of that name exists: refused, nothing changed.
        r = await api(nc, "$JS.API.STREAM.RESTORE.S", {"config": resp["config"]})
        assert r["error"] == {"code": 400, "err_code": 10130,
                              "description": "stream name already in use, cannot restore"}

        await js.delete_stream("S")
        info = await restore(nc, "S", resp["config"], archive)
        assert info["type"] == "io.nats.jetstream.api.v1.stream_create_response"
        assert info["state"]["messages"] == 199 and info["state"]["first_seq"] == 1
        assert info["state"]["num_deleted"] == 1
        m = await js.get_msg("S", 7)
        assert m.data == b"x" * 6 and m.subject == "s.6"
        m = await js.get_msg("S", 200)
        assert m.headers == {"H": "199"}
        # The restored stream takes publishes and keeps its sequence.
        ack = await js.publish("s.1", b"after")
        assert ack.seq == 201
        await nc.close()
    run(go())


def test_restored_stream_survives_restart(gnatsd, tmp_path):  # noqa: F811
    sd = tmp_path / "sd"

    async def make_snapshot(url):
        nc = await nats.connect(url)
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="S", subjects=["s"]))
        for i in range(10):
            await js.publish("s", str(i).encode())
        resp, archive = await snapshot(nc, "S")
        await js.delete_stream("S")
        info = await restore(nc, "S", resp["config"], archive, chunk=100)
        assert info["state"]["messages"] == 10
        await nc.close()

    g = gnatsd("-js", "-sd", str(sd))
    run(make_snapshot(f"nats://127.0.0.1:{g.port}"))
    g.stop()
    g = gnatsd("-js", "-sd", str(sd))

    async def check(url):
        nc = await nats.connect(url)
        js = nc.jetstream()
        info = await js.stream_info("S")
        assert info.state.messages == 10
        assert (await js.get_msg("S", 10)).data == b"9"
        await nc.close()
    run(check(f"nats://127.0.0.1:{g.port}"))


def test_snapshot_errors(js_server):
    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="M", subjects=["m"], storage="memory"))
        await js.add_stream(StreamConfig(name="F", subjects=["f"]))
        r = await api(nc, "$JS.API.STREAM.SNAPSHOT.F", None)
        assert r["error"] == {"code": 400, "err_code": 10003, "description": "bad request"}
        r = await api(nc, "$JS.API.STREAM.SNAPSHOT.NOPE", {"deliver_subject": "x"})
        assert r["error"]["err_code"] == 10059
        r = await api(nc, "$JS.API.STREAM.SNAPSHOT.F", {"deliver_subject": "a..b"})
        assert r["error"] == {"code": 400, "err_code": 10015, "description": "deliver subject not valid"}
        msg = await nc.request("$JS.API.STREAM.SNAPSHOT.F", b"{nope", timeout=5)
        assert json.loads(msg.data)["error"]["err_code"] == 10025
        r, _ = await snapshot(nc, "M")
        assert r["error"] == {"code": 500, "err_code": 10064, "description": "snapshot failed: no impl"}
        await nc.close()
    run(go())


def test_restore_errors(js_server):
    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        r = await api(nc, "$JS.API.STREAM.RESTORE.R", None)
        assert r["error"]["err_code"] == 10003
        r = await api(nc, "$JS.API.STREAM.RESTORE.R", {"config": {"name": "OTHER"}})
        assert r["error"]["err_code"] == 10056
        r = await api(nc, "$JS.API.STREAM.RESTORE.R", {"config": {"name": "R", "storage": "memory"}})
        assert r["error"]["err_code"] == 10062
        # Not a snapshot: the restore fails with a clear error and leaves no stream behind.
        info = await restore(nc, "R", {"name": "R", "subjects": ["r"]}, b"this is not a snapshot")
        assert info["error"]["err_code"] == 10062
        assert info["error"]["description"].startswith("restore failed: ")
        names = await js.streams_info()
        assert names == []
        # A tar that tries to leave its directory is refused.
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            ti = tarfile.TarInfo("../escape")
            ti.size = 1
            tar.addfile(ti, io.BytesIO(b"x"))
        info = await restore(nc, "R", {"name": "R", "subjects": ["r"]}, buf.getvalue())
        assert info["error"]["description"] == "restore failed: unexpected content"
        # A snapshot of another stream name is refused.
        await js.add_stream(StreamConfig(name="A", subjects=["a"]))
        resp, archive = await snapshot(nc, "A")
        info = await restore(nc, "R", {"name": "R", "subjects": ["r"]}, archive)
        assert info["error"]["description"] == "restore failed: stream names do not match"
        await nc.close()
    run(go())


def test_large_snapshot_goes_past_the_flow_control_window(js_server):
    """12 MB of incompressible messages: more than the 8 MB the server sends before it
    waits for acks."""
    import os

    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="BIG", subjects=["big"]))
        payloads = [os.urandom(8192) for _ in range(1500)]
        for p in payloads:
            await nc.publish("big", p)
        await nc.flush()
        for _ in range(100):
            if (await js.stream_info("BIG")).state.messages == 1500:
                break
            await asyncio.sleep(0.05)
        resp, archive = await snapshot(nc, "BIG")
        assert len(archive) > 12_000_000
        await js.delete_stream("BIG")
        info = await restore(nc, "BIG", resp["config"], archive, chunk=256 * 1024)
        assert info["state"]["messages"] == 1500
        assert (await js.get_msg("BIG", 1500)).data == payloads[-1]
        await nc.close()
    run(go())


def test_restore_chunks_sent_without_waiting_are_cut_off(js_server, monkeypatch):
    """The restore's subscription must not wait for the disk, so a sender that does not wait
    for the acks gets an error once 64 MiB wait to be staged (here: a smaller bound, so that
    the test does not race the disk), and the restore ends; the server goes on."""
    import gnatsd.js.snapshot
    monkeypatch.setattr(gnatsd.js.snapshot, "RESTORE_MAX_BACKLOG", 100_000)

    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        resp = await api(nc, "$JS.API.STREAM.RESTORE.R", {"config": {"name": "R", "subjects": ["r"]}})
        inbox = nc.new_inbox()
        errs = []

        async def on_reply(msg):
            if msg.data:
                errs.append(msg.data)
        await nc.subscribe(inbox, cb=on_reply)
        await nc.publish(resp["deliver_subject"], b"\0" * 200_000, reply=inbox)
        await nc.flush()
        for _ in range(100):
            if errs:
                break
            await asyncio.sleep(0.05)
        assert errs == [b"-ERR 'chunks sent faster than they are stored'"]
        assert await js.streams_info() == []
        await nc.close()
    run(go())


def test_restore_brings_back_consumers_and_their_acks(js_server):
    """Go: RestoreStream restores the consumers of the snapshot with their state."""
    async def go():
        nc = await nats.connect(js_server.client_url())
        js = nc.jetstream()
        await js.add_stream(StreamConfig(name="C", subjects=["c"]))
        for i in range(5):
            await js.publish("c", str(i).encode())
        psub = await js.pull_subscribe("c", durable="worker")
        for m in await psub.fetch(2):
            await m.ack_sync()
        resp, archive = await snapshot(nc, "C")
        names = tarfile.open(fileobj=io.BytesIO(gzip.decompress(archive))).getnames()
        assert any(n.startswith("obs/worker/") for n in names)
        await js.delete_stream("C")
        await restore(nc, "C", resp["config"], archive)
        info = await js.consumer_info("C", "worker")
        assert (info.num_pending, info.ack_floor.stream_seq) == (3, 2)
        msgs = await (await js.pull_subscribe_bind("worker", "C")).fetch(1)
        assert msgs[0].data == b"2"
        # Without consumers: none come back.
        resp, archive = await snapshot(nc, "C", no_consumers=True)
        await js.delete_stream("C")
        await restore(nc, "C", resp["config"], archive)
        assert await js.consumers_info("C") == []
        await nc.close()
    run(go())
