"""fdatasync without blocking the hub, for the file store's group-commit rounds.

No Go counterpart: Go's filestore calls fsync in a goroutine and the Go runtime parks that
goroutine's thread. The hub must not block (DESIGN.md §2), and handing the call to a thread
of our own (hub.Worker) costs two thread wake-ups per round, plus up to 100 µs more each
time on PyPy, whose GIL waiters poll for it. Measured on this machine with one 200-byte
write and sync per round: an inline fdatasync took 105-115 µs, through hub.Worker 220 µs on
CPython and 270-390 µs on PyPy.

Linux (4.18 and later) runs an IOCB_CMD_FDSYNC request given to io_submit in a kernel worker
and counts its completion on an eventfd: the hub submits the request and, when the eventfd
is readable, reaps the result with io_getevents, and no Python thread takes part (CPython:
130-165 µs a round in the measurement above). One AIO context serves every store of the
hub. Where the kernel or the platform does not offer it (another OS or architecture, a
seccomp profile, an older kernel, aio-max-nr reached), each store syncs in a thread of its
own as before: `new_syncer` chooses.

A syncer has `sync(fds, cb)`, which returns at once and later calls `cb(None, error)` in
the hub (error None when every fd is synced, else the OSError of the first that failed),
and `close()`, after which a sync not yet done calls nothing. One sync at a time per
syncer.
"""
from __future__ import annotations

import errno
import logging
import os
import platform
import sys
import tempfile
from collections import deque

import gevent
from cffi import FFI

from gnatsd.hub import Worker

log = logging.getLogger("gnatsd")

_datasync = getattr(os, "fdatasync", os.fsync)  # the data and the file size, not the times

# io_setup, io_destroy, io_getevents, io_submit: their numbers differ by architecture.
_SYSCALLS = {"x86_64": (206, 207, 208, 209), "aarch64": (0, 1, 4, 2)}
_IOCB_CMD_FDSYNC = 3
_IOCB_FLAG_RESFD = 1  # signal the eventfd in aio_resfd on completion
_MAX_EVENTS = 256  # fds in flight in the context; more wait in a queue
_EFD_FLAGS = os.O_NONBLOCK | os.O_CLOEXEC  # EFD_NONBLOCK, EFD_CLOEXEC

# cffi, not ctypes: PyPy's JIT calls through cffi in well under a microsecond, where a ctypes
# call took 12 µs. The iocb layout is linux/aio_abi.h's for little-endian machines.
_ffi = FFI()
_ffi.cdef("""
    long syscall(long number, ...);
    int eventfd(unsigned int initval, int flags);
    struct iocb {
        uint64_t aio_data; uint32_t aio_key; int32_t aio_rw_flags;
        uint16_t aio_lio_opcode; int16_t aio_reqprio; uint32_t aio_fildes;
        uint64_t aio_buf; uint64_t aio_nbytes; int64_t aio_offset;
        uint64_t aio_reserved2; uint32_t aio_flags; uint32_t aio_resfd;
    };
    struct io_event { uint64_t data; uint64_t obj; int64_t res; int64_t res2; };
""")
_NO_WAIT = _ffi.cast("long", 0)  # io_getevents' min_nr: take what is there
_ALL_EVENTS = _ffi.cast("long", _MAX_EVENTS)

use_aio = True  # tests turn it off to run the stores on the thread syncer


def _sync_fds(fds):
    """Runs in a ThreadSyncer's thread."""
    for fd in fds:
        _datasync(fd)


class ThreadSyncer(Worker):
    """The fallback: a thread of the store's own runs its fdatasyncs."""

    def sync(self, fds, cb):
        self.submit(_sync_fds, (fds,), cb)


def new_syncer():
    """A syncer for one store: on the hub's AIO context when there is one, else a thread."""
    ctx = _hub_context() if use_aio else None
    return AioSyncer(ctx) if ctx is not None else ThreadSyncer()


def _hub_context():
    """The hub's AioContext, made when the hub has none; None where AIO does not work."""
    hub = gevent.get_hub()
    ctx = getattr(hub, "gnatsd_aio", False)
    if ctx is False:
        ctx = AioContext.open(hub)
        hub.gnatsd_aio = ctx
    return ctx


class AioSyncer:
    """A store's syncer on the hub's AioContext."""

    __slots__ = ("_ctx", "_req")

    def __init__(self, ctx):
        self._ctx = ctx
        self._req = None  # the last request
        ctx.users += 1

    def sync(self, fds, cb):
        self._req = self._ctx.submit(fds, cb)

    def close(self):
        if self._ctx is None:
            return
        if self._req is not None:
            self._req.cb = None  # the kernel finishes the request; nobody is told
            self._req = None
        self._ctx.release()
        self._ctx = None


class _Request:
    __slots__ = ("id", "fds", "left", "err", "cb")

    def __init__(self, req_id, fds, cb):
        self.id = req_id
        self.fds = fds  # not yet handed to the kernel
        self.left = len(fds)  # not yet done
        self.err = None
        self.cb = cb


class AioContext:
    """One io_setup context of a hub, its eventfd and the hub's watcher on it. It ends when
    its last syncer closed and its last request is done: each costs _MAX_EVENTS of the
    system's aio-max-nr (65,536) and a file descriptor, and a process may run a server per
    thread, each on a hub of its own, one after another (the tests do)."""

    def __init__(self, hub, libc, calls, ctx_id, efd):
        self._hub = hub
        self.users = 0  # syncers not closed
        self._libc = libc
        _, self._destroy, self._getevents, self._submit = calls  # io_setup ran in open()
        self._ctx_id = ctx_id  # cdata, as the syscalls take it
        self._efd = efd
        self._reqs = {}  # id -> _Request not answered yet
        self._queue = deque()  # requests with fds the kernel does not have yet, in order
        self._busy = 0  # iocbs in the kernel
        self._next_id = 0
        # The kernel copies the iocbs in io_submit: one set serves every call.
        self._iocbs = iocbs = _ffi.new("struct iocb[]", _MAX_EVENTS)
        self._ptrs = _ffi.new("struct iocb *[]", [iocbs + i for i in range(_MAX_EVENTS)])
        for cb in iocbs:
            cb.aio_lio_opcode = _IOCB_CMD_FDSYNC
            cb.aio_flags = _IOCB_FLAG_RESFD
            cb.aio_resfd = efd
        self._events = _ffi.new("struct io_event[]", _MAX_EVENTS)
        self._watcher = hub.loop.io(efd, 1)
        self._watcher.start(self._reap)
        self._watcher.ref = False  # an idle context does not keep the hub running

    @classmethod
    def open(cls, hub):
        """The context, or None (logged at debug level) if this system cannot run it."""
        calls = _SYSCALLS.get(platform.machine())
        if not sys.platform.startswith("linux") or calls is None:
            return None
        try:
            libc = _ffi.dlopen(None)
            ctx_p = _ffi.new("unsigned long *")
            if libc.syscall(_ffi.cast("long", calls[0]), _ffi.cast("long", _MAX_EVENTS), ctx_p) != 0:
                raise OSError(_ffi.errno, "io_setup")
            ctx_id = _ffi.cast("unsigned long", ctx_p[0])
            efd = libc.eventfd(0, _EFD_FLAGS)
            if efd < 0:
                err = _ffi.errno
                libc.syscall(_ffi.cast("long", calls[1]), ctx_id)
                raise OSError(err, "eventfd")
        except (OSError, AttributeError) as e:
            log.debug("AIO fdatasync not available (%s): a thread per store syncs", e)
            return None
        ctx = cls(hub, libc, [_ffi.cast("long", n) for n in calls], ctx_id, efd)
        if not ctx._probe():
            ctx._close()
            return None
        return ctx

    def _probe(self):
        """Kernels before 4.18 refuse IOCB_CMD_FDSYNC: sync a directory once, waiting."""
        try:
            fd = os.open(tempfile.gettempdir(), os.O_RDONLY)
        except OSError as e:
            log.debug("AIO fdatasync not tried (%s): a thread per store syncs", e)
            return False
        try:
            res = self._io_submit(0, [fd])
            if res == 1:
                res = -errno.EIO
                if self._libc.syscall(self._getevents, self._ctx_id, _ffi.cast("long", 1),
                                      _ffi.cast("long", 1), self._events, _ffi.NULL) == 1:
                    res = self._events[0].res
                    os.read(self._efd, 8)
            if res == 0:
                return True
            log.debug("AIO fdatasync not available (%s): a thread per store syncs", os.strerror(-res))
            return False
        finally:
            os.close(fd)

    def release(self):
        """A syncer closed: end the context once nothing uses it."""
        self.users -= 1
        self._end_if_unused()

    def _end_if_unused(self):
        if self.users == 0 and not self._reqs:
            self._close()
            if getattr(self._hub, "gnatsd_aio", None) is self:
                self._hub.gnatsd_aio = False  # the next store makes a new one

    def _close(self):
        self._watcher.stop()
        self._watcher.close()
        os.close(self._efd)
        self._libc.syscall(self._destroy, self._ctx_id)

    def _io_submit(self, req_id, fds):
        """Submit one FDSYNC per fd (at most _MAX_EVENTS); return how many the kernel took,
        or -errno."""
        iocbs = self._iocbs
        for i, fd in enumerate(fds):
            cb = iocbs[i]
            cb.aio_data = req_id
            cb.aio_fildes = fd
        r = self._libc.syscall(self._submit, self._ctx_id, _ffi.cast("long", len(fds)), self._ptrs)
        return r if r >= 0 else -_ffi.errno

    def submit(self, fds, cb):
        """Start syncing `fds`; `cb(None, err)` runs in the hub when all are done, never
        before this returns. Does not yield. Returns the request, whose cb may be cleared."""
        self._next_id += 1
        req = _Request(self._next_id, list(fds), cb)
        self._reqs[req.id] = req
        self._queue.append(req)
        self._pump()
        return req

    def _pump(self):
        """Hand queued fds to the kernel while the context has room; a failed submit fails
        the rest of its request."""
        queue = self._queue
        while queue:
            req = queue[0]
            room = _MAX_EVENTS - self._busy
            if req.fds:
                if not room:
                    break
                n = self._io_submit(req.id, req.fds[:room])
                if n == -errno.EAGAIN and self._busy:
                    break  # room comes back with the completions
                if n < 0:
                    req.err = OSError(-n, os.strerror(-n))
                    req.left -= len(req.fds)
                    req.fds = []
                else:
                    self._busy += n
                    req.fds = req.fds[n:]
                    continue
            queue.popleft()
            if not req.left:  # nothing, or nothing more, to wait for
                del self._reqs[req.id]
                self._hub.loop.run_callback(self._answer, req)
        self._watcher.ref = bool(self._reqs)

    def _reap(self):
        """The hub's callback when the eventfd counts completions."""
        try:
            os.read(self._efd, 8)
        except BlockingIOError:
            return
        events = self._events
        while True:
            n = self._libc.syscall(self._getevents, self._ctx_id, _NO_WAIT, _ALL_EVENTS, events, _ffi.NULL)
            if n <= 0:
                break
            self._busy -= n
            for i in range(n):
                ev = events[i]
                req_id = ev.data
                res = ev.res
                req = self._reqs[req_id]
                if res < 0 and req.err is None:
                    req.err = OSError(-res, os.strerror(-res))
                req.left -= 1
                if not req.left:
                    del self._reqs[req_id]
                    self._answer(req)
            if n < _MAX_EVENTS:
                break
        self._pump()
        self._end_if_unused()  # the last syncer closed while this ran

    @staticmethod
    def _answer(req):
        cb, req.cb = req.cb, None
        if cb is not None:
            cb(None, req.err)
