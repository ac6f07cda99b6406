"""Helpers for code running on a gevent hub (DESIGN.md §2): blocking calls go to the hub's
thread pool so that the other greenlets keep running."""
from __future__ import annotations

import gevent
from gevent._hub_local import get_hub_if_exists


def run_blocking(fn, *args):
    """Run `fn(*args)` in the thread pool of this thread's gevent hub, if there is one and
    we are in a greenlet other than the hub; else in the calling thread. May yield."""
    hub = get_hub_if_exists()
    if hub is not None and gevent.getcurrent() is not hub:
        return hub.threadpool.apply(fn, args)
    return fn(*args)
