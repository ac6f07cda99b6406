"""Tests for gnatsd/hub.py: run_blocking and the Worker thread; and Server.call_threadsafe,
how another thread reaches a server's hub."""
from __future__ import annotations

import os
import threading
import time

import gevent
import gevent.event
import pytest

from conftest import check_for
from gnatsd.hub import Worker, run_blocking


def call(w, fn, *args):
    """Submit to `w` and wait for the callback (which must run in the hub)."""
    done = gevent.event.AsyncResult()

    def cb(value, exc):
        assert gevent.getcurrent() is gevent.get_hub()
        done.set((value, exc))

    w.submit(fn, args, cb)
    return done.get(timeout=5)


def test_worker_runs_calls_in_its_thread():
    w = Worker()
    main = threading.get_ident()
    value, exc = call(w, threading.get_ident)
    assert exc is None and value != main
    assert call(w, threading.get_ident) == (value, None)  # the same thread every time
    w.close()


def test_worker_hands_back_exceptions():
    w = Worker()
    value, exc = call(w, int, "x")
    assert value is None and isinstance(exc, ValueError)
    assert call(w, int, "7") == (7, None)
    w.close()


def test_hub_keeps_running_while_the_worker_blocks():
    w = Worker()
    ticks = []
    g = gevent.spawn(lambda: [ticks.append(gevent.sleep(0.005)) for _ in range(10)])
    value, exc = call(w, time.sleep, 0.1)
    assert exc is None and len(ticks) >= 5
    g.join()
    w.close()


def thread_alive(tid):
    return os.path.exists(f"/proc/self/task/{tid}")


def wait_gone(tid):
    deadline = time.monotonic() + 5
    while thread_alive(tid) and time.monotonic() < deadline:
        gevent.sleep(0.01)
    return not thread_alive(tid)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="looks for the thread in /proc")
def test_worker_close_ends_the_thread():
    w = Worker()
    tid, _ = call(w, threading.get_native_id)
    assert thread_alive(tid)
    w.close()
    assert wait_gone(tid)


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="looks for the thread in /proc")
def test_close_while_a_call_runs():
    # The call ends in the thread, its callback does not run, then the thread ends.
    w = Worker()
    tid, _ = call(w, threading.get_native_id)
    got = []
    w.submit(time.sleep, (0.05,), lambda v, e: got.append(e))
    gevent.sleep(0.01)
    w.close()
    assert wait_gone(tid)
    gevent.sleep(0.05)
    assert got == []


def test_run_blocking_from_a_greenlet_and_from_the_hub():
    assert gevent.spawn(run_blocking, threading.get_ident).get() != threading.get_ident()
    with pytest.raises(ValueError):
        gevent.spawn(run_blocking, int, "x").get()


def test_call_threadsafe_runs_on_the_hub_and_leaves_its_count_alone(server):
    """Calls from another thread run on the hub, in order, and the calling thread never
    touches libev's count of active watchers (gevent's run_callback_threadsafe adds to it
    there: on PyPy a lost update ended a hub with LoopExit at shutdown)."""
    entered, release = threading.Event(), threading.Event()
    ran = []

    def block():
        entered.set()
        release.wait(5)  # the hub's thread waits here: the calls below queue up

    server.call_threadsafe(block)
    assert entered.wait(5)
    count = server.loop.activecnt
    for i in range(3):
        server.call_threadsafe(lambda i=i: ran.append((i, threading.current_thread())))
    assert server.loop.activecnt == count
    release.set()
    check_for(5, lambda: len(ran) == 3)
    assert ran == [(i, server._thread) for i in range(3)]
