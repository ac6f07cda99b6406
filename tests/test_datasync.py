"""Tests for gnatsd/fs/datasync.py: fdatasyncs through the kernel's AIO, answered in the hub."""
from __future__ import annotations

import errno
import os

import gevent
import gevent.event
import pytest

from gnatsd.fs import datasync

pytestmark = pytest.mark.skipif(datasync._hub_context() is None, reason="no Linux AIO fdatasync here")


def sync(syncer, fds):
    """Sync `fds` and wait for the answer, which must come from the hub after sync returned."""
    done = gevent.event.AsyncResult()
    returned = []

    def cb(value, err):
        assert gevent.getcurrent() is gevent.get_hub() and returned
        done.set((value, err))

    syncer.sync(fds, cb)
    returned.append(True)
    return done.get(timeout=5)


@pytest.fixture
def fd(tmp_path):
    fd = os.open(str(tmp_path / "f"), os.O_RDWR | os.O_CREAT, 0o644)
    os.write(fd, b"x" * 100)
    yield fd
    os.close(fd)


def test_new_syncer_uses_aio_unless_turned_off(monkeypatch):
    assert isinstance(datasync.new_syncer(), datasync.AioSyncer)
    monkeypatch.setattr(datasync, "use_aio", False)
    s = datasync.new_syncer()
    assert isinstance(s, datasync.ThreadSyncer)
    s.close()


def test_sync_fds(fd):
    s = datasync.new_syncer()
    assert sync(s, [fd, fd]) == (None, None)
    assert sync(s, []) == (None, None)  # nothing to sync still answers, later
    assert not s._ctx._watcher.ref  # an idle context does not keep the hub running
    s.close()


def test_a_bad_fd_fails_the_request(fd):
    s = datasync.new_syncer()
    r = os.open(os.devnull, os.O_RDONLY)
    os.close(r)  # a number nothing has open
    value, err = sync(s, [fd, r])
    assert value is None and isinstance(err, OSError) and err.errno == errno.EBADF
    assert sync(s, [fd]) == (None, None)  # the context goes on
    s.close()


def test_more_fds_than_the_context_holds(fd):
    # They go to the kernel in parts as room comes back; the next request waits its turn.
    s1, s2 = datasync.new_syncer(), datasync.new_syncer()
    ctx = s1._ctx
    got = []
    s1.sync([fd] * (datasync._MAX_EVENTS * 2 + 3), lambda v, e: got.append(("big", e)))
    s2.sync([fd], lambda v, e: got.append(("small", e)))
    deadline = gevent.Timeout(5)
    with deadline:
        while len(got) < 2:
            gevent.sleep(0.001)
    assert sorted(got) == [("big", None), ("small", None)]
    assert ctx._busy == 0 and not ctx._reqs
    s1.close()
    s2.close()


def test_close_drops_the_answer(fd):
    s = datasync.new_syncer()
    ctx = s._ctx
    got = []
    s.sync([fd], lambda v, e: got.append(e))
    s.close()
    gevent.sleep(0.05)
    assert got == [] and not ctx._reqs


def test_the_context_ends_with_its_last_syncer(fd):
    # Each context holds part of the system's aio-max-nr and a descriptor; a process that
    # runs servers one after another (a thread and a hub each) must not pile them up.
    hub = gevent.get_hub()
    hub.gnatsd_aio = False
    s1, s2 = datasync.new_syncer(), datasync.new_syncer()
    ctx = s1._ctx
    assert s2._ctx is ctx
    s1.sync([fd], lambda v, e: None)
    s1.close()
    s2.close()  # the request still runs: the context waits for it
    assert hub.gnatsd_aio is ctx
    deadline = gevent.Timeout(5)
    with deadline:
        while hub.gnatsd_aio is ctx:
            gevent.sleep(0.001)
    assert hub.gnatsd_aio is False
    with pytest.raises(OSError):
        os.fstat(ctx._efd)  # its eventfd is closed (and io_destroy ran)
    s3 = datasync.new_syncer()
    assert s3._ctx is not ctx and sync(s3, [fd]) == (None, None)  # a new one
    s3.close()
