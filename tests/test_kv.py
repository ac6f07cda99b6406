"""Key-value and object stores as nats-py builds them on streams (issue 6 item 6): KV_<bucket>
streams with history, delete and purge markers, watch, keys and TTL; OBJ_<bucket> streams of
chunks and meta, links. Nothing here is server code of its own: these check that the
streams, consumers and direct gets the clients rely on behave as they expect."""
from __future__ import annotations

import asyncio
import os

import nats
import pytest
from nats.js.api import KeyValueConfig, ObjectMeta, ObjectStoreConfig, StorageType
from nats.js.errors import (
    BucketNotFoundError, KeyNotFoundError, KeyWrongLastSequenceError, NoKeysError,
    ObjectDeletedError, ObjectNotFoundError,
)
from nats.js.kv import KV_DEL

from test_cli import gnatsd  # noqa: F401 - the subprocess fixture


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


@pytest.fixture(params=["file", "memory"])
def storage(request):
    return StorageType.FILE if request.param == "file" else StorageType.MEMORY


@pytest.fixture
def js_server(make_server, tmp_path):
    return make_server(jetstream=True, store_dir=str(tmp_path))


async def connect(srv):
    nc = await nats.connect(srv.client_url())
    return nc, nc.jetstream()


# -- key-value ---------------------------------------------------------------------------------


def test_kv_put_get_create_update_delete_purge(js_server, storage):
    async def go():
        nc, js = await connect(js_server)
        kv = await js.create_key_value(KeyValueConfig(bucket="B", history=5, storage=storage))
        assert await kv.put("k", b"v1") == 1
        e = await kv.get("k")
        assert (e.key, e.value, e.revision) == ("k", b"v1", 1)
        assert await kv.create("new", b"n") == 2
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.create("new", b"again")
        assert await kv.update("new", b"n2", last=2) == 3
        with pytest.raises(KeyWrongLastSequenceError):
            await kv.update("new", b"n3", last=2)
        assert (await kv.get("k", revision=1)).value == b"v1"
        await kv.delete("new")
        with pytest.raises(KeyNotFoundError):
            await kv.get("new")
        # A deleted key can be created again.
        assert await kv.create("new", b"back") == 5
        await kv.purge("k")
        with pytest.raises(KeyNotFoundError):
            await kv.get("k")
        status = await kv.status()
        assert status.bucket == "B" and status.history == 5
        # After the purge only the PURGE marker of "k" is left, with "new"'s four entries.
        assert status.values == 5
        await nc.close()
    run(go())


def test_kv_history_keys_and_purge_deletes(js_server, storage):
    async def go():
        nc, js = await connect(js_server)
        kv = await js.create_key_value(KeyValueConfig(bucket="H", history=3, storage=storage))
        for i in range(5):
            await kv.put("a", str(i).encode())
        await kv.put("b", b"x")
        await kv.put("c", b"y")
        await kv.delete("c")
        hist = await kv.history("a")
        assert [e.value for e in hist] == [b"2", b"3", b"4"]  # history 3 keeps the last three
        assert sorted(await kv.keys()) == ["a", "b"]
        assert sorted(await kv.keys(filters=["a"])) == ["a"]
        hist = await kv.history("c")
        assert [e.operation for e in hist] == [None, KV_DEL]
        await kv.purge_deletes(olderthan=-1)
        with pytest.raises(NoKeysError):
            await kv.history("c")
        await nc.close()
    run(go())


def test_kv_watch(js_server, storage):
    async def go():
        nc, js = await connect(js_server)
        kv = await js.create_key_value(KeyValueConfig(bucket="W", history=2, storage=storage))
        await kv.put("x.1", b"old")
        await kv.put("x.1", b"one")
        await kv.put("y", b"not watched")
        w = await kv.watch("x.*")
        e = await w.updates(timeout=2)
        assert (e.key, e.value, e.revision) == ("x.1", b"one", 2)
        assert await w.updates(timeout=2) is None  # the end of what was there
        await kv.put("x.2", b"two")
        await kv.delete("x.1")
        e = await w.updates(timeout=2)
        assert (e.key, e.value) == ("x.2", b"two")
        e = await w.updates(timeout=2)
        assert (e.key, e.operation) == ("x.1", KV_DEL)
        await w.stop()
        w = await kv.watch("x.1", include_history=True)
        got = []
        while (e := await w.updates(timeout=2)) is not None:
            got.append((e.value, e.operation))
        assert got == [(b"one", None), (b"", KV_DEL)]
        await w.stop()
        # A key put while nothing was there: the watcher says so (None), then the new one.
        w = await kv.watch("z")
        assert await w.updates(timeout=2) is None
        await kv.put("z", b"later")
        e = await w.updates(timeout=2)
        assert (e.key, e.value) == ("z", b"later")
        await w.stop()
        await nc.close()
    run(go())


def test_kv_ttl_and_bucket_errors(js_server):
    async def go():
        nc, js = await connect(js_server)
        kv = await js.create_key_value(KeyValueConfig(bucket="T", ttl=0.3))
        await kv.put("k", b"v")
        assert (await kv.get("k")).value == b"v"
        for _ in range(50):
            await asyncio.sleep(0.05)
            try:
                await kv.get("k")
            except KeyNotFoundError:
                break
        else:
            pytest.fail("the key did not expire")
        with pytest.raises(BucketNotFoundError):
            await js.key_value("NOPE")
        await js.delete_key_value("T")
        with pytest.raises(BucketNotFoundError):
            await js.key_value("T")
        await nc.close()
    run(go())


def test_kv_survives_restart(gnatsd, tmp_path):  # noqa: F811
    sd = str(tmp_path / "sd")

    async def write(port):
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket="R", history=4))
        for i in range(3):
            await kv.put("k", str(i).encode())
        await nc.close()

    async def read(port):
        nc = await nats.connect(f"nats://127.0.0.1:{port}")
        kv = await nc.jetstream().key_value("R")
        e = await kv.get("k")
        assert (e.value, e.revision) == (b"2", 3)
        assert [h.value for h in await kv.history("k")] == [b"0", b"1", b"2"]
        await nc.close()

    g = gnatsd("-js", "-sd", sd)
    run(write(g.port))
    g.proc.kill()
    g.proc.wait(10)
    g = gnatsd("-js", "-sd", sd)
    run(read(g.port))


# -- object store ------------------------------------------------------------------------------


def test_object_store_put_get_delete(js_server, storage):
    async def go():
        nc, js = await connect(js_server)
        obs = await js.create_object_store("O", config=ObjectStoreConfig(storage=storage))
        data = os.urandom(300_000)  # three chunks of 128 KiB
        info = await obs.put("blob", data, meta=ObjectMeta(description="random"))
        assert (info.size, info.chunks) == (300_000, 3)
        got = await obs.get("blob")
        assert got.data == data and got.info.description == "random"
        await obs.put("empty", b"")
        assert (await obs.get("empty")).data == b""
        # Putting again replaces the object; the old chunks go.
        await obs.put("blob", b"small")
        assert (await obs.get("blob")).data == b"small"
        st = await obs.status()
        assert st.stream_info.state.messages == 3  # blob's one chunk and meta, empty's meta
        names = sorted(o.name for o in await obs.list())
        assert names == ["blob", "empty"]
        await obs.delete("blob")
        with pytest.raises((ObjectNotFoundError, ObjectDeletedError)):
            await obs.get("blob")
        assert (await obs.get_info("blob", show_deleted=True)).deleted
        await nc.close()
    run(go())


def test_object_store_watch_rename_seal(js_server):
    async def go():
        nc, js = await connect(js_server)
        obs = await js.create_object_store("L")
        await obs.put("target", b"payload")
        w = await obs.watch()
        assert (await w.updates(timeout=2)).name == "target"
        assert await w.updates(timeout=2) is None  # the end of what was there
        await obs.put("second", b"2")
        assert (await w.updates(timeout=2)).name == "second"
        await w.stop()
        # New meta is a new meta message that rolls up the old one.
        await obs.update_meta("target", ObjectMeta(name="target", description="described"))
        got = await obs.get("target")
        assert (got.data, got.info.description) == (b"payload", "described")
        # A sealed store refuses puts.
        await obs.seal()
        assert (await obs.status()).sealed
        with pytest.raises(Exception):
            await obs.put("more", b"x")
        await js.delete_object_store("L")
        await nc.close()
    run(go())


def test_object_store_big_object(js_server):
    async def go():
        nc, js = await connect(js_server)
        obs = await js.create_object_store("BIG")
        data = os.urandom(5 * 1024 * 1024)
        await obs.put("five", data)
        assert (await obs.get("five")).data == data
        await nc.close()
    run(go())
