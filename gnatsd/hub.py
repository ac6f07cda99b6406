"""Helpers for code running on a gevent hub (DESIGN.md §2): blocking calls go to another
thread so that the other greenlets keep running."""
from __future__ import annotations

import gevent
from gevent import monkey
from gevent._hub_local import get_hub_if_exists

# The real thread and lock: under monkey-patching `threading` makes greenlets.
_start_new_thread = monkey.get_original("_thread", "start_new_thread")
_allocate_lock = monkey.get_original("_thread", "allocate_lock")


def run_blocking(fn, *args):
    """Run `fn(*args)` in the thread pool of this thread's gevent hub, if there is one and
    we are in a greenlet other than the hub; else in the calling thread. May yield."""
    hub = get_hub_if_exists()
    if hub is not None and gevent.getcurrent() is not hub:
        return hub.threadpool.apply(fn, args)
    return fn(*args)


class Worker:
    """An OS thread of its own that runs one blocking call at a time for a hub, made for a
    call that comes very often (a file store's fsync). Cheaper than the hub's thread pool:
    the lock that starts the thread and the async watcher that wakes the hub are made
    once, where the pool makes a watcher and a result object per call, and nothing needs
    a greenlet: submit() returns at once and the result comes to a callback in the hub.

    PyPy: a thread waiting for the GIL looks again every 100 µs or so, and releasing the
    GIL does not wake it. The thread is told to start from the hub's callback phase, right
    before the hub polls (and so releases the GIL), not from the middle of a greenlet's run.
    A no-op call costs about 110 µs there (the thread pool: 270 µs), 60 µs on CPython (80).
    """

    def __init__(self):
        self._hub = gevent.get_hub()
        self._done = None  # the async watcher the thread signals, made with the thread
        self._go = _allocate_lock()  # released to start the thread on `_job`
        self._go.acquire()
        self._job = None  # (fn, args); None tells the thread to end
        self._result = None  # (value, exception) of the call that ended
        self._cb = None
        self._busy = False
        self._closed = False

    def submit(self, fn, args, cb):
        """Run `fn(*args)` in the thread, then `cb(value, exception)` in the hub (one of
        them None). One call at a time: submit again only after cb ran. Does not yield."""
        if self._done is None:
            self._done = self._hub.loop.async_()
            self._done.start(self._finished)
            _start_new_thread(self._run, ())
        else:
            self._done.ref = True  # a call in flight keeps the hub running
        self._cb = cb
        self._job = (fn, args)
        self._busy = True
        self._hub.loop.run_callback(self._go.release)

    def _run(self):
        """The thread."""
        while True:
            self._go.acquire()
            job = self._job
            if job is None:
                return
            fn, args = job
            try:
                self._result = (fn(*args), None)
            except BaseException as e:  # noqa: B036 - handed to the caller
                self._result = (None, e)
            self._done.send()

    def _finished(self):
        """The hub's callback when the thread has run a call."""
        self._busy = False
        self._done.ref = False  # an idle worker does not
        cb, self._cb = self._cb, None
        value, exc = self._result
        self._result = None
        if self._closed:
            self._end()
        elif cb is not None:
            cb(value, exc)

    def close(self):
        """End the thread once its call, if any, is done (its callback does not run). Does
        not yield."""
        if self._closed:
            return
        self._closed = True
        self._cb = None
        if self._done is not None and not self._busy:
            self._end()

    def _end(self):
        self._done.stop()
        self._done.close()
        self._job = None
        self._go.release()
