"""Integration with the nats-py client: what an application sees through a real client.

The server runs in-process on its own thread (the `gnatsd_server` fixture of gnatsd's pytest
plugin, and `make_server` from conftest); nats-py runs on asyncio in the test's thread.
"""
from __future__ import annotations

import asyncio

import nats
import pytest
from nats.errors import NoRespondersError, TimeoutError as NatsTimeoutError

from conftest import check_for, client_subs, flushed, until
from gnatsd import Options, Server


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


async def collect(nc, subject, queue="", n=None):
    """Subscribe; return (subscription, list that fills with messages)."""
    got = []
    done = asyncio.Event()

    async def cb(msg):
        got.append(msg)
        if n is not None and len(got) >= n:
            done.set()

    sub = await nc.subscribe(subject, queue=queue, cb=cb)
    sub.done = done
    return sub, got


def test_plugin_fixture_pub_sub(gnatsd_server):
    async def main():
        nc = await nats.connect(gnatsd_server.client_url())
        sub = await nc.subscribe("greet")
        await nc.publish("greet", b"hello")
        msg = await sub.next_msg(timeout=2)
        assert (msg.subject, msg.data) == ("greet", b"hello")
        await nc.close()
    run(main())


def test_wildcards(server):
    async def main():
        nc = await nats.connect(server.client_url())
        _, star = await collect(nc, "a.*.c")
        _, gt = await collect(nc, "a.>")
        _, lit = await collect(nc, "a.b.c")
        for subject in ("a.b.c", "a.x.c", "a.b", "a.b.c.d", "b.b.c"):
            await nc.publish(subject, subject.encode())
        await nc.flush()
        await asyncio.sleep(0.05)
        assert [m.subject for m in star] == ["a.b.c", "a.x.c"]
        assert [m.subject for m in gt] == ["a.b.c", "a.x.c", "a.b", "a.b.c.d"]
        assert [m.subject for m in lit] == ["a.b.c"]
        await nc.close()
    run(main())


def test_queue_group_each_message_once(server):
    async def main():
        nc = await nats.connect(server.client_url())
        members = [await collect(nc, "work", queue="q") for _ in range(3)]
        _, plain = await collect(nc, "work")
        for i in range(300):
            await nc.publish("work", b"%d" % i)
        await nc.flush()
        for _ in range(100):
            if sum(len(got) for _, got in members) == 300 and len(plain) == 300:
                break
            await asyncio.sleep(0.02)
        seen = sorted(int(m.data) for _, got in members for m in got)
        assert seen == list(range(300))
        assert all(len(got) > 30 for _, got in members)  # random choice spreads the load
        assert len(plain) == 300
        await nc.close()
    run(main())


def test_request_reply_and_no_responders(server):
    async def main():
        nc = await nats.connect(server.client_url())

        async def echo(msg):
            await msg.respond(b"re:" + msg.data)

        await nc.subscribe("svc", cb=echo)
        resp = await nc.request("svc", b"ping", timeout=2)
        assert resp.data == b"re:ping"
        with pytest.raises(NoRespondersError):
            await nc.request("nobody.home", b"x", timeout=2)
        await nc.close()
    run(main())


def test_request_timeout_when_responder_is_silent_and_no_responders_off(server):
    async def main():
        nc = await nats.connect(server.client_url(), no_echo=False)
        await nc.subscribe("silent")  # a subscriber that never answers
        with pytest.raises(NatsTimeoutError):
            await nc.request("silent", b"x", timeout=0.3)
        await nc.close()
    run(main())


def test_headers_round_trip(server):
    async def main():
        nc = await nats.connect(server.client_url())
        sub = await nc.subscribe("h")
        await nc.publish("h", b"body", headers={"X-Trace": "abc", "Multi": "1"})
        msg = await sub.next_msg(timeout=2)
        assert msg.data == b"body"
        assert msg.headers["X-Trace"] == "abc"
        assert msg.headers["Multi"] == "1"
        await nc.close()
    run(main())


def test_auto_unsubscribe(server):
    async def main():
        nc = await nats.connect(server.client_url())
        sub, got = await collect(nc, "auto")
        await sub.unsubscribe(limit=5)
        for i in range(20):
            await nc.publish("auto", b"%d" % i)
        await nc.flush()
        await asyncio.sleep(0.1)
        assert [m.data for m in got] == [b"0", b"1", b"2", b"3", b"4"]
        assert client_subs(server) == 0  # removed once the 5th was delivered
        await nc.close()
    run(main())


def test_drain_delivers_pending_then_closes(server):
    async def main():
        nc = await nats.connect(server.client_url())
        pub = await nats.connect(server.client_url())
        got = []

        async def slow(msg):
            await asyncio.sleep(0.001)
            got.append(msg.data)

        await nc.subscribe("d", cb=slow)
        await flushed(nc)
        for i in range(100):
            await pub.publish("d", b"%d" % i)
        await flushed(pub)  # the server sent all 100 to nc...
        await flushed(nc)  # ...and nc read them: most still wait for the slow callback
        await nc.drain()
        assert got == [b"%d" % i for i in range(100)]
        assert nc.is_closed
        await pub.close()
    run(main())


def test_flush_round_trip(server):
    async def main():
        nc = await nats.connect(server.client_url())
        for _ in range(10):
            await nc.flush(timeout=2)
        assert nc.is_connected
        await nc.close()
    run(main())


def test_large_payloads(make_server):
    server = make_server()

    async def main():
        nc = await nats.connect(server.client_url())
        assert nc.max_payload == 1024 * 1024
        sub = await nc.subscribe("big")
        payload = bytes(range(256)) * 4096  # exactly 1 MiB
        await nc.publish("big", payload)
        msg = await sub.next_msg(timeout=5)
        assert msg.data == payload
        await nc.close()
    run(main())


def test_order_of_10k_messages(server):
    async def main():
        nc = await nats.connect(server.client_url())
        pub = await nats.connect(server.client_url())
        sub, got = await collect(nc, "seq", n=10000)
        await flushed(nc)
        for i in range(10000):
            await pub.publish("seq", b"%d" % i)
        await pub.flush()
        await asyncio.wait_for(sub.done.wait(), 20)
        assert [int(m.data) for m in got] == list(range(10000))
        await nc.close()
        await pub.close()
    run(main())


def test_no_echo(server):
    async def main():
        nc = await nats.connect(server.client_url(), no_echo=True)
        other = await nats.connect(server.client_url())
        _, mine = await collect(nc, "e")
        _, theirs = await collect(other, "e")
        await flushed(nc)
        await flushed(other)
        await nc.publish("e", b"from-nc")
        await other.publish("e", b"from-other")
        await until(lambda: len(theirs) == 2 and mine)
        await flushed(nc)  # an echo of from-nc would be in by now
        assert [m.data for m in mine] == [b"from-other"]
        assert sorted(m.data for m in theirs) == [b"from-nc", b"from-other"]
        await nc.close()
        await other.close()
    run(main())


def test_reconnect_after_server_restart():
    """The client reconnects to a new server on the same port and resubscribes."""
    first = Server(Options(host="127.0.0.1", port=-1)).start_in_thread()
    port = first.port
    second = None

    async def main():
        nonlocal second
        reconnected = asyncio.Event()

        async def on_reconnect():
            reconnected.set()

        nc = await nats.connect(f"nats://127.0.0.1:{port}", reconnect_time_wait=0.1,
                                max_reconnect_attempts=100, reconnected_cb=on_reconnect)
        sub = await nc.subscribe("again")
        await nc.flush()
        first.stop_thread()
        second = Server(Options(host="127.0.0.1", port=port)).start_in_thread()
        await asyncio.wait_for(reconnected.wait(), 10)
        await nc.flush()
        await nc.publish("again", b"after restart")
        msg = await sub.next_msg(timeout=5)
        assert msg.data == b"after restart"
        await nc.close()

    try:
        run(main())
    finally:
        first.stop_thread()
        if second is not None:
            second.stop_thread()


def test_closed_client_frees_subscriptions(server):
    async def main():
        nc = await nats.connect(server.client_url())
        for i in range(50):
            await nc.subscribe(f"s.{i}")
        await flushed(nc)
        assert client_subs(server) == 50
        await nc.close()
    run(main())
    check_for(5, lambda: client_subs(server) == 0 and server.num_clients() == 0)
