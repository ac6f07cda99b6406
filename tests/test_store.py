"""Tests for gnatsd/fs: the memory and file stores (Go: server/store_test.go,
memstore_test.go, filestore_test.go), both stores through one set of tests where the
behaviour is shared, then the file store's durability, recovery and compaction."""
from __future__ import annotations

import errno
import logging
import os
import shutil
import tempfile
import time

import gevent
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gnatsd.fs import datasync, filestore
from gnatsd.fs.filestore import (
    CRC_RESIDUE, HDR, FileStore, FileStoreConfig, decode_consumer_state,
)
from gnatsd.fs.memstore import MemStore
from gnatsd.fs.store import (
    ACK_ALL, ACK_EXPLICIT, ACK_NONE, DISCARD_NEW, FILE_STORAGE, MEMORY_STORAGE, ConsumerConfig,
    ConsumerState, ErrInvalidSequence, ErrMaxBytes, ErrMaxMsgs, ErrMaxMsgsPerSubject,
    ErrMsgTooLarge, ErrNoAckPolicy, ErrPurgeArgMismatch, ErrSequenceMismatch, ErrStoreClosed,
    ErrStoreEOF, ErrStoreMsgNotFound, ErrStoreWrongType, LostStreamData, SequencePair,
    SimpleState, StoreError, StreamConfig,
)

LAZY = 3600.0  # a sync_interval that never fires during a test


@pytest.fixture
def gnatsd_log(caplog):
    """Capture the "gnatsd" logger even when an earlier test stopped its propagation."""
    logger = logging.getLogger("gnatsd")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.DEBUG, logger="gnatsd")
    yield caplog
    logger.removeHandler(caplog.handler)


class Stores:
    """Makes stores of one kind; file stores live in a temporary directory and can be
    reopened, as after a restart."""

    def __init__(self, kind, tmp_path):
        self.kind = kind
        self.tmp_path = tmp_path
        self.made = []

    def cfg(self, **kw):
        kw.setdefault("name", "T")
        kw.setdefault("storage", FILE_STORAGE if self.kind == "file" else MEMORY_STORAGE)
        return StreamConfig(**kw)

    def make(self, block_size=4096, sync_interval="always", **kw):
        cfg = self.cfg(**kw)
        if self.kind == "mem":
            s = MemStore(cfg)
        else:
            s = FileStore(FileStoreConfig(str(self.tmp_path / "stream"), block_size, sync_interval), cfg)
        self.made.append(s)
        return s

    def reopen(self, s, **kw):
        """Stop a file store and open its directory again (a memory store is returned as is)."""
        if self.kind == "mem":
            return s
        s.stop()
        n = FileStore(s.fcfg, kw.get("cfg", s.cfg))
        self.made.append(n)
        return n

    def close_all(self):
        for s in self.made:
            if not s.is_closed():
                s.stop()


@pytest.fixture(params=["mem", "file"])
def stores(request, tmp_path):
    st_ = Stores(request.param, tmp_path)
    yield st_
    st_.close_all()


@pytest.fixture(params=["aio", "thread"])
def fstores(request, tmp_path, monkeypatch):
    """File stores, syncing through the kernel's AIO and through the thread fallback."""
    if request.param == "thread":
        monkeypatch.setattr(datasync, "use_aio", False)
    st_ = Stores("file", tmp_path)
    yield st_
    st_.close_all()


def read_file(path):
    with open(path, "rb") as f:
        return f.read()


def write_file(path, data):
    with open(path, "wb") as f:
        f.write(data)


def msg_size(s, subj, hdr, msg):
    """The bytes one message counts for in this store (Go: memStoreMsgSize, fileStoreMsgSize)."""
    if isinstance(s, MemStore):
        return len(subj) + len(hdr) + len(msg) + 16
    return 22 + len(subj) + (4 + len(hdr) if hdr else 0) + len(msg) + 8


def all_msgs(s):
    st_ = s.fast_state()
    out = []
    for seq in range(st_.first_seq, st_.last_seq + 1):
        try:
            sm = s.load_msg(seq)
        except ErrStoreMsgNotFound:
            continue
        out.append((sm.seq, sm.subj, sm.hdr, sm.msg, sm.ts))
    return out


def state_tuple(s, leave_out=()):
    st_ = s.state()
    return tuple(v for k, v in zip(st_.__slots__, st_.as_tuple()) if k not in leave_out)


# -- storing and loading ---------------------------------------------------------------------


def test_store_and_load(stores):
    s = stores.make()
    before = time.time_ns()
    seq, ts = s.store_msg(b"foo", b"", b"hello")
    assert seq == 1 and before <= ts <= time.time_ns()
    seq, ts2 = s.store_msg(b"bar", b"NATS/1.0\r\nA: b\r\n\r\n", b"world")
    assert seq == 2 and ts2 >= ts
    sm = s.load_msg(1)
    assert (sm.subj, sm.hdr, sm.msg, sm.seq, sm.ts) == (b"foo", b"", b"hello", 1, ts)
    sm = s.load_msg(2)
    assert (sm.subj, sm.hdr, sm.msg) == (b"bar", b"NATS/1.0\r\nA: b\r\n\r\n", b"world")
    with pytest.raises(ErrStoreEOF, match="^stream store EOF$"):
        s.load_msg(3)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq, st_.first_ts, st_.last_ts) == (2, 1, 2, ts, ts2)
    assert st_.bytes == msg_size(s, b"foo", b"", b"hello") + msg_size(s, b"bar", sm.hdr, b"world")
    assert st_.num_subjects == 2 and st_.num_deleted == 0 and st_.deleted is None
    assert s.type() == (FILE_STORAGE if stores.kind == "file" else MEMORY_STORAGE)


def test_store_raw_msg(stores):
    s = stores.make()
    s.store_raw_msg(b"a", b"", b"1", 1, 100)
    s.store_raw_msg(b"a", b"", b"2", 0, 200)  # 0: the next sequence
    with pytest.raises(ErrSequenceMismatch, match="^expected sequence does not match store$"):
        s.store_raw_msg(b"a", b"", b"3", 5, 300)
    assert s.load_msg(2).ts == 200
    assert s.fast_state().last_seq == 2


def test_wrong_storage_type(tmp_path):
    with pytest.raises(ErrStoreWrongType):
        MemStore(StreamConfig(storage=FILE_STORAGE))
    with pytest.raises(ErrStoreWrongType):
        FileStore(FileStoreConfig(str(tmp_path)), StreamConfig(storage=MEMORY_STORAGE))


def test_load_next_msg(stores):
    s = stores.make()
    for subj in [b"a.1", b"b.1", b"a.2", b"b.2", b"a.1", b"c"]:
        s.store_msg(subj, b"", subj)
    assert s.load_next_msg(b"", False, 1).seq == 1
    assert s.load_next_msg(b">", True, 2).seq == 2
    assert s.load_next_msg(b"a.1", False, 2).seq == 5
    assert s.load_next_msg(b"a.*", True, 2).seq == 3
    assert s.load_next_msg(b"b.>", True, 0).seq == 2
    assert s.load_next_msg(b"*.2", True, 4).seq == 4
    assert s.load_next_msg(b"c", False, 7) is None
    assert s.load_next_msg(b"d", False, 1) is None
    assert s.load_next_msg(b"a.*", True, 6) is None
    s.remove_msg(3)
    assert s.load_next_msg(b"a.*", True, 2).seq == 5
    assert s.load_next_msg(b"", False, 3).seq == 4


def test_load_next_msg_many_subjects(stores):
    # More than 256 subjects: the wildcard search scans sequences instead of subjects.
    s = stores.make(block_size=1 << 20)
    for i in range(300):
        s.store_msg(b"k.%d" % i, b"", b"")
    assert s.load_next_msg(b"k.*", True, 100).seq == 100
    assert s.load_next_msg(b"k.299", False, 1).seq == 300
    assert s.load_next_msg(b"x.*", True, 1) is None


def test_load_last_msg(stores):
    s = stores.make()
    for subj in [b"a.1", b"b.1", b"a.2", b"b.1"]:
        s.store_msg(subj, b"", b"")
    assert s.load_last_msg(b"b.1").seq == 4
    assert s.load_last_msg(b"a.*").seq == 3
    assert s.load_last_msg(b"").seq == 4
    assert s.load_last_msg(b">").seq == 4
    with pytest.raises(ErrStoreMsgNotFound, match="^no message found$"):
        s.load_last_msg(b"zzz")
    with pytest.raises(ErrStoreMsgNotFound):
        s.load_last_msg(b"z.*")


# -- removing --------------------------------------------------------------------------------


def test_remove_and_erase(stores):
    s = stores.make()
    for i in range(5):
        s.store_msg(b"s.%d" % (i % 2), b"", b"m%d" % i)
    assert s.remove_msg(3) is True
    assert s.remove_msg(3) is False
    assert s.erase_msg(4) is True
    with pytest.raises(ErrStoreEOF):
        s.remove_msg(9)
    with pytest.raises(ErrStoreMsgNotFound):
        s.load_msg(3)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq, st_.num_deleted, st_.deleted) == (3, 1, 5, 2, [3, 4])
    assert s.remove_msg(1) and s.remove_msg(2)
    st_ = s.state()
    assert (st_.first_seq, st_.first_ts, st_.num_deleted, st_.deleted) == (5, s.load_msg(5).ts, 0, None)
    assert s.subjects_state(b"") == {b"s.0": SimpleState(1, 5, 5)}
    assert s.remove_msg(5)
    st_ = s.state()
    assert (st_.msgs, st_.bytes, st_.first_seq, st_.last_seq, st_.first_ts) == (0, 0, 6, 5, 0)


def test_skip_msgs(stores):
    s = stores.make()
    assert s.skip_msg() == 1
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (0, 2, 1)
    s.store_msg(b"a", b"", b"")
    assert s.skip_msg() == 3
    s.skip_msgs(4, 3)
    with pytest.raises(ErrSequenceMismatch):
        s.skip_msgs(5, 1)
    seq, _ = s.store_msg(b"a", b"", b"")
    assert seq == 7
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq, st_.deleted) == (2, 2, 7, [3, 4, 5, 6])
    s = stores.reopen(s)
    assert s.state().deleted == [3, 4, 5, 6]


def test_closed_store(stores):
    s = stores.make()
    s.store_msg(b"a", b"", b"")
    s.stop()
    for call in (lambda: s.store_msg(b"a", b"", b""), lambda: s.remove_msg(1), s.purge, lambda: s.load_msg(1),
                 lambda: s.compact(1), lambda: s.truncate(1), s.skip_msg,
                 lambda: s.load_next_msg(b"", False, 1), lambda: s.consumer_store("c", ConsumerConfig())):
        with pytest.raises(ErrStoreClosed, match="^store is closed$"):
            call()


# -- limits ----------------------------------------------------------------------------------


def test_max_msgs_discard_old(stores):
    s = stores.make(max_msgs=10)
    for i in range(25):
        s.store_msg(b"foo", b"", b"x")
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (10, 16, 25)


def test_max_msgs_discard_new(stores):
    s = stores.make(max_msgs=3, discard=DISCARD_NEW)
    for _ in range(3):
        s.store_msg(b"foo", b"", b"x")
    with pytest.raises(ErrMaxMsgs, match="^maximum messages exceeded$"):
        s.store_msg(b"foo", b"", b"x")
    assert s.state().msgs == 3 and s.state().last_seq == 3


def test_max_bytes(stores):
    s = stores.make()
    one = msg_size(s, b"foo", b"", b"x" * 100)
    s = stores.make(max_bytes=one * 5)
    for _ in range(12):
        s.store_msg(b"foo", b"", b"x" * 100)
    st_ = s.state()
    assert (st_.msgs, st_.bytes, st_.first_seq) == (5, one * 5, 8)


def test_max_bytes_discard_new(stores):
    s = stores.make(max_bytes=1000, discard=DISCARD_NEW)
    n = 0
    with pytest.raises(ErrMaxBytes, match="^maximum bytes exceeded$"):
        while True:
            s.store_msg(b"foo", b"", b"x" * 100)
            n += 1
    assert s.state().msgs == n and 0 < n < 10


def test_max_msgs_per_subject(stores):
    s = stores.make(max_msgs_per_subject=2)
    for i in range(10):
        s.store_msg(b"k.%d" % (i % 3), b"", b"%d" % i)
    assert s.subjects_totals(b"") == {b"k.0": 2, b"k.1": 2, b"k.2": 2}
    assert s.subjects_state(b"k.0") == {b"k.0": SimpleState(2, 7, 10)}
    assert s.state().msgs == 6


def test_discard_new_per_subject(stores):
    s = stores.make(max_msgs_per_subject=1, discard=DISCARD_NEW, discard_new_per_subject=True)
    s.store_msg(b"a", b"", b"")
    with pytest.raises(ErrMaxMsgsPerSubject, match="^maximum messages per subject exceeded$"):
        s.store_msg(b"a", b"", b"")
    s.store_msg(b"b", b"", b"")
    # Without discard_new_per_subject a subject at its limit replaces its oldest message,
    # even when the stream is at max_msgs.
    s = stores.make(max_msgs=2, max_msgs_per_subject=1, discard=DISCARD_NEW)
    s.store_msg(b"a", b"", b"")
    s.store_msg(b"b", b"", b"")
    s.store_msg(b"a", b"", b"")
    with pytest.raises(ErrMaxMsgs):
        s.store_msg(b"c", b"", b"")
    assert s.subjects_totals(b"") == {b"a": 1, b"b": 1}


def test_max_msg_size(stores):
    s = stores.make(max_msg_size=10)
    s.store_msg(b"a", b"12345", b"12345")
    with pytest.raises(ErrMsgTooLarge, match="^message to large$"):
        s.store_msg(b"a", b"123456", b"12345")
    assert s.state().msgs == 1


def test_max_age(stores):
    s = stores.make(max_age=int(0.05e9))
    for _ in range(3):
        s.store_msg(b"a", b"", b"")
    assert s.state().msgs == 3
    deadline = time.monotonic() + 2
    while s.state().msgs and time.monotonic() < deadline:
        gevent.sleep(0.01)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (0, 4, 3)
    # Old timestamps go as soon as the check runs; young ones stay.
    now = time.time_ns()
    s.store_raw_msg(b"a", b"", b"", 4, now - int(1e9))
    s.store_raw_msg(b"a", b"", b"", 5, now + int(10e9))
    s.expire_msgs()
    assert [m[0] for m in all_msgs(s)] == [5]


def test_update_config_applies_limits(stores):
    s = stores.make()
    for i in range(20):
        s.store_msg(b"k.%d" % (i % 4), b"", b"")
    s.update_config(stores.cfg(max_msgs=12))
    assert s.state().msgs == 12 and s.state().first_seq == 9
    s.update_config(stores.cfg(max_msgs=12, max_msgs_per_subject=2))
    assert s.subjects_totals(b"") == {b"k.0": 2, b"k.1": 2, b"k.2": 2, b"k.3": 2}
    s.store_raw_msg(b"k.0", b"", b"", 21, time.time_ns() - int(5e9))
    s.update_config(stores.cfg(max_age=int(1e9)))
    assert s.state().msgs == 8  # the old one expired at once
    with pytest.raises(ErrStoreWrongType):
        s.update_config(StreamConfig(storage=33 if stores.kind == "file" else 22))


def test_storage_updates_callback(stores):
    s = stores.make(max_msgs=2)
    calls = []
    s.register_storage_updates(lambda m, b, seq, subj: calls.append((m, b, seq, subj)))
    size = msg_size(s, b"a", b"", b"x")
    s.store_msg(b"a", b"", b"x")
    s.store_msg(b"a", b"", b"x")
    s.store_msg(b"a", b"", b"x")  # pushes 1 out, reported first (as Go)
    assert calls == [(1, size, 1, b"a"), (1, size, 2, b"a"), (-1, -size, 1, b"a"), (1, size, 3, b"a")]
    del calls[:]
    s.remove_msg(2)
    assert calls == [(-1, -size, 2, b"a")]
    del calls[:]
    s.store_msg(b"b", b"", b"x")
    del calls[:]
    assert s.purge() == 2
    assert calls == [(-2, -2 * size, 0, b"")]


# -- purge, compact, truncate ----------------------------------------------------------------


def fill(s, subjects, n):
    for i in range(n):
        s.store_msg(subjects[i % len(subjects)], b"", b"%d" % i)


def test_purge(stores):
    s = stores.make()
    fill(s, [b"a", b"b"], 10)
    assert s.purge() == 10
    st_ = s.state()
    assert (st_.msgs, st_.bytes, st_.first_seq, st_.last_seq, st_.num_subjects) == (0, 0, 11, 10, 0)
    assert s.store_msg(b"a", b"", b"")[0] == 11
    s = stores.reopen(s)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (1, 11, 11)


def test_purge_ex_subject(stores):
    s = stores.make()
    fill(s, [b"a.1", b"a.2", b"b"], 12)
    assert s.purge_ex(b"a.1", 0, 0) == 4
    assert s.subjects_totals(b"") == {b"a.2": 4, b"b": 4}
    assert s.purge_ex(b"a.*", 0, 0) == 4
    assert s.subjects_totals(b"") == {b"b": 4}
    assert s.purge_ex(b"zzz", 0, 0) == 0


def test_purge_ex_keep_and_seq(stores):
    s = stores.make()
    fill(s, [b"a", b"b"], 12)  # a: 1,3,..,11  b: 2,4,..,12
    assert s.purge_ex(b"a", 0, 2) == 4
    assert s.subjects_state(b"a") == {b"a": SimpleState(2, 9, 11)}
    assert s.purge_ex(b"a", 0, 5) == 0
    assert s.purge_ex(b"b", 7, 0) == 3  # below 7: 2, 4, 6
    assert s.subjects_state(b"b") == {b"b": SimpleState(3, 8, 12)}
    with pytest.raises(ErrPurgeArgMismatch, match=r"^sequence > 1 && keep > 0 not allowed$"):
        s.purge_ex(b"b", 5, 1)


def test_purge_ex_all_subjects(stores):
    s = stores.make()
    fill(s, [b"a", b"b"], 10)
    assert s.purge_ex(b"", 0, 3) == 7
    assert s.state().first_seq == 8
    assert s.purge_ex(b">", 9, 0) == 1
    assert s.state().first_seq == 9
    assert s.purge_ex(b"", 0, 0) == 2
    assert s.state().first_seq == 11


def test_compact(stores):
    s = stores.make(block_size=200)
    fill(s, [b"a", b"b"], 20)
    s.remove_msg(12)
    assert s.compact(11) == 10
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq, st_.deleted) == (9, 11, 20, [12])
    assert s.compact(13) == 1
    assert s.state().first_seq == 13
    s = stores.reopen(s)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (8, 13, 20)
    # Past the end: like a purge, and the next message gets that sequence.
    assert s.compact(100) == 8
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (0, 100, 99)
    assert s.store_msg(b"a", b"", b"")[0] == 100
    s = stores.reopen(s)
    assert (s.state().first_seq, s.state().last_seq) == (100, 100)


def test_truncate(stores):
    s = stores.make(block_size=200)
    fill(s, [b"a", b"b"], 20)
    s.remove_msg(5)
    ts10 = s.load_msg(10).ts
    s.truncate(10)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq, st_.last_ts, st_.deleted) == (9, 1, 10, ts10, [5])
    assert s.subjects_state(b"") == {b"a": SimpleState(4, 1, 9), b"b": SimpleState(5, 2, 10)}
    with pytest.raises(ErrInvalidSequence, match="^invalid sequence$"):
        s.truncate(5)
    assert s.store_msg(b"c", b"", b"")[0] == 11
    s = stores.reopen(s)
    st_ = s.state()
    assert (st_.msgs, st_.last_seq, st_.deleted) == (10, 11, [5])


# -- state queries ---------------------------------------------------------------------------


def test_get_seq_from_time(stores):
    s = stores.make()
    for i in range(1, 11):
        s.store_raw_msg(b"a", b"", b"", i, i * 100)
    s.remove_msg(5)
    s.remove_msg(6)
    assert s.get_seq_from_time(0) == 1
    assert s.get_seq_from_time(100) == 1
    assert s.get_seq_from_time(101) == 2
    assert s.get_seq_from_time(450) == 7
    assert s.get_seq_from_time(700) == 7
    assert s.get_seq_from_time(1000) == 10
    assert s.get_seq_from_time(1001) == 11


def test_filtered_state_and_num_pending(stores):
    s = stores.make()
    fill(s, [b"a.1", b"a.2", b"b.1"], 9)  # a.1: 1,4,7  a.2: 2,5,8  b.1: 3,6,9
    assert s.filtered_state(1, b"a.1") == SimpleState(3, 1, 7)
    assert s.filtered_state(2, b"a.1") == SimpleState(2, 4, 7)
    assert s.filtered_state(1, b"a.*") == SimpleState(6, 1, 8)
    assert s.filtered_state(6, b"*.1") == SimpleState(3, 6, 9)
    assert s.filtered_state(1, b"") == SimpleState(9, 1, 9)
    assert s.filtered_state(10, b"") == SimpleState()
    assert s.filtered_state(1, b"c") == SimpleState()
    assert s.num_pending(1, b"a.>", False) == (6, 9)
    assert s.num_pending(5, b"a.>", False) == (3, 9)
    assert s.num_pending(5, b"a.>", True) == (2, 9)
    assert s.num_pending(8, b"", True) == (2, 9)
    assert s.num_pending(1, b"b.1", False) == (3, 9)
    assert s.subjects_state(b"a.*") == {b"a.1": SimpleState(3, 1, 7), b"a.2": SimpleState(3, 2, 8)}
    assert s.subjects_totals(b"*.1") == {b"a.1": 3, b"b.1": 3}
    assert s.subjects_totals(b"x") == {}
    st_ = s.fast_state()
    assert (st_.msgs, st_.num_subjects, st_.deleted) == (9, 3, None)


# -- consumer stores -------------------------------------------------------------------------


def test_consumer_store_explicit(stores):
    s = stores.make()
    o = s.consumer_store("dur", ConsumerConfig(ack_policy=ACK_EXPLICIT))
    assert s.state().consumer_count == 1
    o.update_delivered(1, 10, 1, 1000)
    o.update_delivered(2, 11, 1, 1001)
    o.update_delivered(3, 12, 1, 1002)
    o.update_delivered(4, 10, 2, 1003)  # redelivery of 10
    st_ = o.state()
    assert st_.delivered == SequencePair(4, 12) and st_.ack_floor == SequencePair(0, 0)
    assert st_.pending == {10: (4, 1003), 11: (2, 1001), 12: (3, 1002)}
    assert st_.redelivered == {10: 1}
    o.update_acks(2, 11)
    assert o.state().ack_floor == SequencePair(0, 0)
    with pytest.raises(ErrStoreMsgNotFound):
        o.update_acks(2, 11)
    o.update_acks(4, 10)
    o.update_acks(3, 12)
    st_ = o.state()
    assert st_.ack_floor == SequencePair(4, 12) and st_.pending == {} and st_.redelivered == {}
    o.stop()
    assert s.state().consumer_count == 0


def test_consumer_store_ack_all_and_none(stores):
    s = stores.make()
    o = s.consumer_store("all", ConsumerConfig(ack_policy=ACK_ALL))
    for i in range(1, 6):
        o.update_delivered(i, i, 1, i)
    o.update_acks(3, 3)
    st_ = o.state()
    assert st_.ack_floor == SequencePair(3, 3) and sorted(st_.pending) == [4, 5]
    n = s.consumer_store("none", ConsumerConfig(ack_policy=ACK_NONE))
    n.update_delivered(1, 7, 1, 0)
    assert n.state().ack_floor == SequencePair(1, 7)
    with pytest.raises(ErrNoAckPolicy, match="^ack policy is none$"):
        n.update_acks(1, 7)
    with pytest.raises(ErrNoAckPolicy):
        n.update_delivered(2, 8, 2, 0)


def test_consumer_store_update(stores):
    s = stores.make()
    o = s.consumer_store("c", ConsumerConfig())
    good = ConsumerState(SequencePair(5, 10), SequencePair(2, 4), {8: (4, 99)}, {8: 2})
    o.update(good)
    assert o.state() == good
    bad = ConsumerState(SequencePair(5, 10), SequencePair(2, 4), {3: (1, 1)})
    with pytest.raises(Exception, match=r"bad pending entry, sequence \[3\] out of range"):
        o.update(bad)
    with pytest.raises(Exception, match="old update ignored"):
        o.update(ConsumerState(SequencePair(1, 1)))


def test_consumer_store_persistence(fstores, gnatsd_log):
    s = fstores.make()
    o = s.consumer_store("dur", ConsumerConfig())
    assert not o.has_state()
    o.update_delivered(1, 10, 1, 1000)
    o.update_delivered(2, 11, 3, 1001)
    o.update_acks(1, 10)
    want = o.state()
    s = fstores.reopen(s)
    o = s.consumer_store("dur", ConsumerConfig())
    assert o.has_state() and o.state() == want
    assert want.pending == {11: (2, 1001)} and want.redelivered == {11: 2}
    # A damaged state file is reported and replaced by an empty state, not a crash.
    o.stop()
    with open(o.path, "r+b") as f:
        f.seek(10)
        f.write(b"\xff\xff")
    o = s.consumer_store("dur", ConsumerConfig())
    assert not o.has_state() and o.state() == ConsumerState()
    assert "state is corrupt" in gnatsd_log.text
    o.delete()
    assert not os.path.exists(o.odir)


def test_consumer_state_flushed_in_background(fstores):
    s = fstores.make()
    o = s.consumer_store("dur", ConsumerConfig())
    o.update_delivered(1, 1, 1, 5)
    o.flush()
    with open(o.path, "rb") as f:
        assert decode_consumer_state(f.read()).delivered == SequencePair(1, 1)


# -- file store: durability ------------------------------------------------------------------


def test_group_commit(fstores):
    s = fstores.make(block_size=1 << 20)
    acked = []

    def publisher(i):
        for j in range(10):
            seq, _ = s.store_msg(b"p.%d" % i, b"", b"%d-%d" % (i, j))
            acked.append(seq)

    gevent.joinall([gevent.spawn(publisher, i) for i in range(64)], raise_error=True)
    assert len(acked) == 640 == s.state().msgs
    # Every store waited for a sync, but the greenlets shared them.
    assert 0 < s.fsyncs < 640 // 4
    s = fstores.reopen(s)
    assert s.state().msgs == 640


def test_sync_always_syncs_before_returning(fstores):
    s = fstores.make()
    n = s.fsyncs
    s.store_msg(b"a", b"", b"x")
    assert s.fsyncs == n + 1 and s._synced_gen == s._wgen


def test_sync_interval_lazy(fstores):
    s = fstores.make(sync_interval=0.05)
    for _ in range(20):
        s.store_msg(b"a", b"", b"x")
    assert s.fsyncs == 0
    deadline = time.monotonic() + 2
    while s.fsyncs == 0 and time.monotonic() < deadline:
        gevent.sleep(0.01)
    assert s.fsyncs >= 1 and s._synced_gen == s._wgen


def test_erase_overwrites_bytes_on_disk(fstores):
    s = fstores.make()
    s.store_msg(b"a", b"", b"keep-me-1")
    s.store_msg(b"secret.subject", b"NATS/1.0\r\nX: HDRSECRET\r\n\r\n", b"TOP-SECRET-PAYLOAD")
    s.store_msg(b"a", b"", b"keep-me-2")
    disk = b"".join(read_file(os.path.join(s._mdir, n)) for n in os.listdir(s._mdir))
    assert b"TOP-SECRET-PAYLOAD" in disk
    assert s.erase_msg(2)
    disk = b"".join(read_file(os.path.join(s._mdir, n)) for n in os.listdir(s._mdir))
    assert b"TOP-SECRET-PAYLOAD" not in disk and b"HDRSECRET" not in disk and b"secret.subject" not in disk
    assert b"keep-me-1" in disk and b"keep-me-2" in disk
    s = fstores.reopen(s)
    assert [m[3] for m in all_msgs(s)] == [b"keep-me-1", b"keep-me-2"]
    assert s.state().deleted == [2]


# -- file store: restart and crash recovery --------------------------------------------------


def busy_store(fstores, **kw):
    """A file store with several blocks, removals, an erase and a skip."""
    s = fstores.make(block_size=600, **kw)
    for i in range(60):
        s.store_msg(b"s.%d" % (i % 5), b"H" if i % 7 == 0 else b"", b"payload-%03d" % i)
    for seq in (3, 17, 18, 40):
        s.remove_msg(seq)
    s.erase_msg(22)
    s.skip_msg()
    s.store_msg(b"s.9", b"", b"last")
    return s


def reopen_raw(s):
    """Open the directory of `s` again without stopping it first: a crash (no snapshot)."""
    return FileStore(s.fcfg, s.cfg)


def test_restart_same_state(fstores):
    s = busy_store(fstores)
    want_state, want_msgs, want_subjects = state_tuple(s), all_msgs(s), s.subjects_state(b"")
    s = fstores.reopen(s)  # from the index snapshot
    assert not os.path.exists(os.path.join(s.fcfg.store_dir, "index.snap"))
    assert (state_tuple(s), all_msgs(s), s.subjects_state(b"")) == (want_state, want_msgs, want_subjects)
    s.stop()
    os.unlink(os.path.join(s.fcfg.store_dir, "index.snap"))
    s = FileStore(s.fcfg, s.cfg)  # by scanning
    fstores.made.append(s)
    assert (state_tuple(s), all_msgs(s), s.subjects_state(b"")) == (want_state, want_msgs, want_subjects)


def test_crash_without_stop(fstores):
    s = busy_store(fstores)
    want_state, want_msgs = state_tuple(s), all_msgs(s)
    n = reopen_raw(s)
    fstores.made.append(n)
    assert (state_tuple(n), all_msgs(n)) == (want_state, want_msgs)


@pytest.mark.parametrize("damage", ["garbage", "bad_crc", "block_grew", "block_missing"])
def test_bad_index_snapshot(fstores, gnatsd_log, damage):
    s = busy_store(fstores)
    want_state, want_msgs = state_tuple(s), all_msgs(s)
    s.stop()
    snap = os.path.join(s.fcfg.store_dir, "index.snap")
    data = read_file(snap)
    if damage == "garbage":
        data = os.urandom(300)
    elif damage == "bad_crc":
        data = bytearray(data)
        data[len(data) // 2] ^= 0x40
        data = bytes(data)
    else:
        if damage == "block_missing":
            os.unlink(block_files(s)[0])
        # A run that crashed after the snapshot was taken: its writes are in the blocks only.
        n = reopen_raw(s)
        if damage == "block_grew":
            n.store_msg(b"late", b"", b"x")
        want_state, want_msgs = state_tuple(n), all_msgs(n)
    write_file(snap, data)
    gnatsd_log.clear()
    s2 = FileStore(s.fcfg, s.cfg)
    fstores.made.append(s2)
    assert (state_tuple(s2), all_msgs(s2)) == (want_state, want_msgs)
    assert "index snapshot is damaged or does not match the blocks" in gnatsd_log.text


def block_files(s):
    names = [n for n in os.listdir(s._mdir) if n.endswith(".blk")]
    return [os.path.join(s._mdir, n) for n in sorted(names, key=lambda n: int(n.split(".")[0]))]


def test_torn_tail_is_truncated(fstores, gnatsd_log):
    s = fstores.make()
    for i in range(5):
        s.store_msg(b"a", b"", b"msg-%d" % i)
    path = block_files(s)[-1]
    # A crash in the middle of the last write (the file itself is longer: preallocated).
    os.truncate(path, s._lmb.size - 10)
    r = reopen_raw(s)
    fstores.made.append(r)
    st_ = r.state()
    assert (st_.msgs, st_.last_seq, st_.lost) == (4, 4, None)
    assert "truncating" in gnatsd_log.text
    assert r.store_msg(b"a", b"", b"again")[0] == 5
    assert [m[3] for m in all_msgs(r)][-1] == b"again"


def test_zero_filled_tail_is_truncated(fstores, gnatsd_log):
    s = fstores.make()
    for i in range(3):
        s.store_msg(b"a", b"", b"msg-%d" % i)
    path = block_files(s)[-1]
    with open(path, "ab") as f:
        f.write(b"\0" * 4096)
    r = reopen_raw(s)
    fstores.made.append(r)
    assert (r.state().msgs, r.state().lost) == (3, None)
    # Zeros after the last record are what a crash leaves of the preallocated space: no warning.
    assert "zero bytes after the last record, truncating" in gnatsd_log.text
    assert "torn" not in gnatsd_log.text and os.path.getsize(path) == r._lmb.size
    r.store_msg(b"a", b"", b"x")
    r2 = reopen_raw(r)
    fstores.made.append(r2)
    assert len(all_msgs(r2)) == 4


def test_bit_flip_in_the_middle_is_lost(fstores, gnatsd_log):
    s = fstores.make(block_size=1 << 20)
    for i in range(10):
        s.store_msg(b"a", b"", b"message-number-%d" % i)
    loc = s._msgs[5]
    path = loc.blk.path
    with open(path, "r+b") as f:
        f.seek(loc.off + loc.rl - 8)
        b = f.read(1)
        f.seek(loc.off + loc.rl - 8)
        f.write(bytes([b[0] ^ 0x01]))
    r = reopen_raw(s)
    fstores.made.append(r)
    st_ = r.state()
    assert st_.msgs == 9 and st_.last_seq == 10
    assert st_.lost == LostStreamData([5], loc.rl)
    assert st_.deleted == [5]
    with pytest.raises(ErrStoreMsgNotFound):
        r.load_msg(5)
    assert [m[3] for m in all_msgs(r)] == [b"message-number-%d" % i for i in range(10) if i != 4]
    assert "corrupt data" in gnatsd_log.text
    # It stays reported across a clean restart.
    r = fstores.reopen(r)
    assert r.state().lost == LostStreamData([5], loc.rl)


def test_corrupt_middle_block(fstores, gnatsd_log):
    s = fstores.make(block_size=300)
    for i in range(30):
        s.store_msg(b"a", b"", b"m%02d" % i)
    files = block_files(s)
    assert len(files) >= 3
    victim = files[1]
    data = bytearray(read_file(victim))
    first_seq = HDR.unpack_from(data)[2]
    data[HDR.size + 1] ^= 0xFF  # the subject of the block's first record
    r_size = HDR.unpack_from(data)[0]
    write_file(victim, bytes(data))
    r = reopen_raw(s)
    fstores.made.append(r)
    st_ = r.state()
    assert st_.msgs == 29 and st_.lost == LostStreamData([first_seq], r_size)
    assert r.load_msg(first_seq + 1).msg == b"m%02d" % first_seq


def test_corruption_found_when_reading(fstores, gnatsd_log):
    s = fstores.make()
    for i in range(3):
        s.store_msg(b"a", b"", b"payload-%d" % i)
    loc = s._msgs[2]
    with open(loc.blk.path, "r+b") as f:
        f.seek(loc.off + loc.rl - 6)
        f.write(b"!")
    with pytest.raises(ErrStoreMsgNotFound):
        s.load_msg(2)
    st_ = s.state()
    assert st_.msgs == 2 and st_.lost == LostStreamData([2], loc.rl)
    assert "is corrupt" in gnatsd_log.text


def test_record_checksum_residue():
    import zlib
    from gnatsd.fs.filestore import CRC
    for data in (b"", b"abc", os.urandom(100)):
        assert zlib.crc32(data + CRC.pack(zlib.crc32(data))) == CRC_RESIDUE


# -- file store: blocks and compaction -------------------------------------------------------


def test_emptied_blocks_are_removed(fstores):
    s = fstores.make(block_size=400, max_msgs=10)
    for i in range(300):
        s.store_msg(b"a", b"", b"x" * 20)
    if s._compactor is not None:
        s._compactor.join()
    s.sync()
    assert len(block_files(s)) <= 6
    s = fstores.reopen(s)
    st_ = s.state()
    assert (st_.msgs, st_.first_seq, st_.last_seq) == (10, 291, 300)


COMPACT_BLOCK = 70 * 1024


def test_sparse_blocks_are_compacted(fstores, gnatsd_log):
    # One long-lived message pins its block; a KV-like subject is rewritten over and over.
    # Without compaction the tombstones would pin every block after it.
    s = fstores.make(block_size=COMPACT_BLOCK, max_msgs_per_subject=1)
    s.store_msg(b"kv.keep", b"", b"forever")
    for i in range(3000):
        s.store_msg(b"kv.hot", b"", b"v" * 40)
    if s._compactor is not None:
        s._compactor.join()
    files = block_files(s)
    assert len(files) <= 6, [os.path.getsize(f) for f in files]
    want = all_msgs(s)
    s = fstores.reopen(s)
    assert all_msgs(s) == want and s.state().msgs == 2
    assert "index snapshot" not in gnatsd_log.text  # the compacted blocks match it
    s.stop()
    os.unlink(os.path.join(s.fcfg.store_dir, "index.snap"))
    s = reopen_raw(s)
    fstores.made.append(s)
    assert all_msgs(s) == want and s.state().msgs == 2


def test_delete(stores):
    s = stores.make()
    s.store_msg(b"a", b"", b"")
    calls = []
    s.register_storage_updates(lambda *a: calls.append(a))
    s.delete()
    assert calls == [(-1, -msg_size(s, b"a", b"", b""), 0, b"")]
    assert s.is_closed()
    with pytest.raises(ErrStoreClosed):
        s.load_msg(1)
    if stores.kind == "file":
        assert not os.path.exists(s.fcfg.store_dir)


# -- memory store and file store agree -------------------------------------------------------

SUBJECTS = [b"a", b"b.1", b"b.2", b"c.x.y"]
op = st.one_of(
    st.tuples(st.just("store"), st.sampled_from(SUBJECTS), st.binary(max_size=40), st.booleans()),
    st.tuples(st.just("remove"), st.integers(0, 60)),
    st.tuples(st.just("erase"), st.integers(0, 60)),
    st.tuples(st.just("skip")),
    st.tuples(st.just("purge_ex"), st.sampled_from(SUBJECTS + [b"b.*", b""]), st.integers(0, 40), st.integers(0, 3)),
    st.tuples(st.just("compact"), st.integers(0, 70)),
    st.tuples(st.just("truncate"), st.integers(0, 60)),
    st.tuples(st.just("restart")),
    st.tuples(st.just("query"), st.sampled_from(SUBJECTS + [b"b.*", b"*", b">", b"c.>", b""]), st.integers(0, 60)),
)


def brute_query(s, filt, start):
    """filtered_state, num_pending (both ways) and load_next_msg, and the same computed from
    every message held: they must agree."""
    from gnatsd.sublist import subject_matches
    hits = [m for m in all_msgs(s) if m[0] >= start and (not filt or filt == b">" or subject_matches(filt, m[1]))]
    want = SimpleState(len(hits), hits[0][0] if hits else 0, hits[-1][0] if hits else 0)
    lasts = {}
    for m in hits:
        lasts[m[1]] = m[0]
    wc = b"*" in filt or b">" in filt
    got_next = s.load_next_msg(filt, wc, start)
    got = (s.filtered_state(start, filt), s.num_pending(start, filt, False)[0],
           s.num_pending(start, filt, True)[0], got_next.seq if got_next else 0)
    assert got == (want, len(hits), len(lasts), want.first), (filt, start)
    return got


LEAVE_OUT = ("bytes", "last_ts")


def run_op(s, o, ts):
    kind = o[0]
    try:
        if kind == "store":
            s.store_raw_msg(o[1], b"H:1" if o[3] else b"", o[2], s.fast_state().last_seq + 1, ts)
        elif kind == "remove":
            return s.remove_msg(o[1])
        elif kind == "erase":
            return s.erase_msg(o[1])
        elif kind == "skip":
            return s.skip_msg()
        elif kind == "purge_ex":
            return s.purge_ex(o[1], o[2], 0) if o[3] == 0 else s.purge_ex(o[1], 0, o[3])
        elif kind == "compact":
            return s.compact(o[1])
        elif kind == "truncate":
            return s.truncate(o[1])
        elif kind == "query":
            return brute_query(s, o[1], o[2])
    except StoreError as e:  # the error must be the same in both stores
        return type(e).__name__


@settings(max_examples=100, deadline=None, derandomize=True)
@given(ops=st.lists(op, max_size=40), max_msgs=st.sampled_from([-1, 5, 12]),
       maxp=st.sampled_from([-1, 1, 3]))
def test_memstore_and_filestore_agree(ops, max_msgs, maxp):
    d = tempfile.mkdtemp()
    try:
        mem = MemStore(StreamConfig(storage=MEMORY_STORAGE, max_msgs=max_msgs, max_msgs_per_subject=maxp))
        fcfg = FileStoreConfig(d, block_size=256, sync_interval=LAZY)
        cfg = StreamConfig(storage=FILE_STORAGE, max_msgs=max_msgs, max_msgs_per_subject=maxp)
        fs = FileStore(fcfg, cfg)
        for i, o in enumerate(ops):
            if o[0] == "restart":
                fs.stop()
                fs = FileStore(fcfg, cfg)
                continue
            assert run_op(mem, o, i) == run_op(fs, o, i), o
            # Bytes are counted differently; skip_msg reads the clock.
            assert state_tuple(mem, LEAVE_OUT) == state_tuple(fs, LEAVE_OUT), (i, o)
        assert all_msgs(mem) == all_msgs(fs)
        assert mem.subjects_state(b"") == fs.subjects_state(b"")
        want = state_tuple(fs)
        # A crash after the hub's pass (records stored in a pass are written when it ends,
        # before any of them can be acknowledged): no snapshot, blocks scanned.
        gevent.sleep(0)
        fs = FileStore(fcfg, cfg)
        assert state_tuple(fs) == want and all_msgs(fs) == all_msgs(mem)
        fs.stop()
    finally:
        shutil.rmtree(d)


def test_compaction_races_with_removals(fstores, gnatsd_log):
    # The compactor yields while its new file is synced; removals and erasures that land
    # meanwhile must survive the swap (and a restart), and erased bytes must not come back.
    s = fstores.make(block_size=8192)
    for i in range(400):
        s.store_msg(b"r.%d" % (i % 4), b"", b"SECRET-%04d" % i)
    first_block = list(s._blks[0:2])
    seqs = sorted(seq for seq, loc in s._msgs.items() if loc.blk in first_block)

    def remover(part):
        for seq in part:
            if seq % 7 == 0:
                s.erase_msg(seq)
            else:
                s.remove_msg(seq)

    keep = set(seqs[::9])
    todo = [q for q in seqs if q not in keep]
    gevent.joinall([gevent.spawn(remover, todo[i::4]) for i in range(4)], raise_error=True)
    if s._compactor is not None:
        s._compactor.join()
    want = all_msgs(s)
    assert [m[0] for m in want if m[0] <= seqs[-1]] == sorted(keep)
    disk = b"".join(read_file(p) for p in block_files(s))
    for seq in todo:
        if seq % 7 == 0:
            assert b"SECRET-%04d" % (seq - 1) not in disk
    s = fstores.reopen(s)
    assert all_msgs(s) == want
    assert "index snapshot" not in gnatsd_log.text
    n = reopen_raw(s)
    fstores.made.append(n)
    assert all_msgs(n) == want


def test_dyn_blk_size(fstores):
    from gnatsd.fs.filestore import dyn_blk_size
    from gnatsd.fs.store import INTEREST_POLICY, LIMITS_POLICY
    assert dyn_blk_size(LIMITS_POLICY, -1) == 8 * 1024 * 1024
    assert dyn_blk_size(INTEREST_POLICY, 0) == 4 * 1024 * 1024
    assert dyn_blk_size(LIMITS_POLICY, 1000) == 32000
    assert dyn_blk_size(LIMITS_POLICY, 1 << 20) == 4 * 1024 * 1024
    assert dyn_blk_size(LIMITS_POLICY, 1 << 40) == 8 * 1024 * 1024
    assert fstores.make(block_size=0, max_bytes=1000).block_size == 32000


KILL_SCRIPT = r"""
import sys, gevent
from gnatsd.fs.filestore import FileStore, FileStoreConfig
from gnatsd.fs.store import StreamConfig
s = FileStore(FileStoreConfig(sys.argv[1], block_size=4096), StreamConfig(name="K"))
def pub(i):
    n = 0
    while True:
        seq, _ = s.store_msg(b"k.%d" % i, b"", b"%d-%d" % (i, n))
        sys.stdout.write("%d %d-%d\n" % (seq, i, n))
        sys.stdout.flush()
        n += 1
gevent.joinall([gevent.spawn(pub, i) for i in range(8)])
"""


def test_kill_9_keeps_every_acknowledged_message(tmp_path):
    # A process crash: what store_msg acknowledged is on disk (fdatasync'ed) and comes back.
    import signal
    import subprocess
    import sys
    d = str(tmp_path / "k")
    env = dict(os.environ, PYTHONPATH=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    p = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, d], stdout=subprocess.PIPE, env=env)
    acked = {}
    for line in p.stdout:
        seq, payload = line.split()
        acked[int(seq)] = payload
        if len(acked) == 1500:
            break
    p.send_signal(signal.SIGKILL)
    p.wait()
    p.stdout.close()
    s = FileStore(FileStoreConfig(d, block_size=4096), StreamConfig(name="K"))
    try:
        held = {m[0]: m[3] for m in all_msgs(s)}
        assert s.state().lost is None
        assert all(held.get(seq) == payload for seq, payload in acked.items())
        assert s.state().msgs >= 1500
    finally:
        s.stop()


def test_consumer_names_stay_in_the_stream_directory(fstores):
    s = fstores.make()
    for bad in ("", "../x", "a/b", ".hidden", "a\0b"):
        with pytest.raises(ValueError):
            s.consumer_store(bad, ConsumerConfig())


def test_delete_releases_waiting_writers(fstores):
    s = fstores.make()
    done = []

    def writer():
        s.store_msg(b"a", b"", b"x")
        done.append(1)

    gs = [gevent.spawn(writer) for _ in range(5)]
    gevent.sleep(0)
    s.delete()
    gevent.joinall(gs, timeout=5)
    assert all(g.ready() for g in gs)
    # A writer that got in before the delete was acknowledged; a later one sees the store closed.
    assert all(g.successful() or isinstance(g.exception, ErrStoreClosed) for g in gs)


def test_on_synced_acks_after_fsync(fstores):
    # One publisher that does not wait (a connection's readloop): acks come from on_synced,
    # after the fsync that covers them, many messages per fsync.
    s = fstores.make(block_size=1 << 16)
    acks = []

    def ack(err, seq):
        assert err is None and s._synced_gen >= gens[seq]
        acks.append(seq)

    gens = {}
    for i in range(500):
        seq, _ = s.store_msg(b"a.%d" % (i % 3), b"", b"%d" % i, wait=False)
        gens[seq] = s._wgen
        s.on_synced(ack, seq)
        if i % 50 == 0:
            gevent.sleep(0)  # the readloop yields now and then, e.g. to read its socket
    deadline = time.monotonic() + 5
    while len(acks) < 500 and time.monotonic() < deadline:
        gevent.sleep(0.001)
    assert acks == list(range(1, 501))
    assert s.fsyncs < 50
    s = fstores.reopen(s)
    assert s.state().msgs == 500


def test_records_buffered_until_the_pass_ends(fstores):
    # Records stored in one pass of the hub reach the file with one write when the pass
    # ends; until then a load is served from the buffer.
    s = fstores.make(block_size=1 << 16)
    s.store_msg(b"a", b"", b"first")  # waits for its sync: written
    path = block_files(s)[-1]
    on_disk = s._lmb.flushed
    writes = []
    real = filestore._write_all
    filestore._write_all = lambda fd, data, off=None: (writes.append(len(data)), real(fd, data, off))
    try:
        for i in range(50):
            s.store_msg(b"a", b"", b"m%d" % i, wait=False)
        assert s._lmb.flushed == on_disk and read_file(path)[on_disk:].strip(b"\0") == b""
        assert [s.load_msg(q).msg for q in range(2, 52)] == [b"m%d" % i for i in range(50)]
        gevent.sleep(0)  # the pass ends
    finally:
        filestore._write_all = real
    assert len(writes) == 1 and s._lmb.flushed == s._lmb.size == on_disk + writes[0]
    assert b"m49" in read_file(path)
    s.sync()
    s = reopen_raw(s)
    fstores.made.append(s)
    assert s.state().msgs == 51 and s.load_msg(51).msg == b"m49"


def test_blocks_preallocated_then_trimmed(fstores, gnatsd_log):
    # Writes go into preallocated space (a cheaper fdatasync); a rolled block and the last
    # one at a clean stop are trimmed to their records.
    s = fstores.make(block_size=1 << 14)
    s.store_msg(b"a", b"", b"x" * 100)
    path = block_files(s)[-1]
    assert os.path.getsize(path) == 1 << 14 > s._lmb.size
    while len(block_files(s)) == 1:
        s.store_msg(b"a", b"", b"x" * 100)
    assert os.path.getsize(path) == s._blks[0].size < 1 << 14
    path = block_files(s)[-1]
    s = fstores.reopen(s)  # from the snapshot, which needs the exact sizes
    assert "snapshot is damaged" not in gnatsd_log.text
    assert os.path.getsize(path) == s._lmb.size and s.state().msgs == sum(b.live for b in s._blks)


def test_erase_of_a_buffered_record(fstores):
    s = fstores.make()
    s.store_msg(b"a", b"", b"keep", wait=False)
    s.store_msg(b"a", b"", b"TOP-SECRET", wait=False)
    assert s.erase_msg(2)
    disk = b"".join(read_file(p) for p in block_files(s))
    assert b"keep" in disk and b"TOP-SECRET" not in disk


def test_write_error_fails_the_acks(fstores, gnatsd_log):
    # A write that fails (disk full) fails the sync that should have covered its records:
    # no ack says they are on disk. They stay buffered and go out with the next write.
    s = fstores.make()
    got = []
    real = filestore._write_all

    def full(fd, data, off=None):
        raise OSError(errno.ENOSPC, "No space left on device")

    filestore._write_all = full
    try:
        s.store_msg(b"a", b"", b"one", wait=False)
        s.on_synced(lambda err: got.append(err))
        gevent.sleep(0.01)
        assert len(got) == 1 and isinstance(got[0], OSError) and got[0].errno == errno.ENOSPC
        assert "write failed" in gnatsd_log.text or "sync failed" in gnatsd_log.text
        with pytest.raises(OSError):
            s.store_msg(b"a", b"", b"two")
    finally:
        filestore._write_all = real
    s.store_msg(b"a", b"", b"three")
    s = fstores.reopen(s)
    assert [m[3] for m in all_msgs(s)] == [b"one", b"two", b"three"]


def test_on_synced_runs_in_the_hub_after_the_round(fstores):
    s = fstores.make()
    where = []
    s.store_msg(b"a", b"", b"x", wait=False)
    s.on_synced(lambda err: where.append((err, gevent.getcurrent() is gevent.get_hub(), s._synced_gen)))
    assert where == []
    s.sync()
    assert where == [(None, True, s._wgen)]


def test_on_synced_without_disk_wait(stores):
    s = stores.make(sync_interval=LAZY)
    got = []
    s.store_msg(b"a", b"", b"", wait=False)
    s.on_synced(lambda err, x: got.append((err, x)), 7)
    assert got == [(None, 7)]


def test_on_synced_after_delete(fstores):
    s = fstores.make()
    got = []
    s.store_msg(b"a", b"", b"", wait=False)
    s.on_synced(lambda err: got.append(err))
    s.delete()
    assert len(got) == 1 and isinstance(got[0], ErrStoreClosed)
    s.on_synced(lambda err: got.append(err))
    assert isinstance(got[1], ErrStoreClosed)


# -- file store: the read cache --------------------------------------------------------------


def fill_in_order(s, n, start=0, secret=-1):
    """Store messages "msg-<i>" for i in [start, start + n) ("SECRET-<i>" for i == secret)."""
    for i in range(start, start + n):
        s.store_msg(b"c", b"", (b"SECRET-%05d" if i == secret else b"msg-%05d") % i)


def read_all(s):
    """Every message, read in order as a consumer does: [(seq, payload)]."""
    out = []
    seq = 0
    while True:
        try:
            sm = s.load_next_msg(b"", False, seq)
        except ErrStoreMsgNotFound:  # it was corrupt: reported lost, and the next one is read
            continue
        if sm is None:
            return out
        out.append((sm.seq, sm.msg))
        seq = sm.seq + 1


def msgs_of(first_seq, start, n):
    return [(first_seq + k, b"msg-%05d" % (start + k)) for k in range(n)]


def cached(s, seq):
    """The read-ahead chunk that holds message `seq`, or None."""
    loc = s._msgs[seq]
    c = loc.blk.chunk
    return c if c is not None and c.start <= loc.off and loc.off + loc.rl <= c.end else None


def checked(s, seq):
    """Whether message `seq`'s record passed its check in its chunk."""
    loc = s._msgs[seq]
    c = cached(s, seq)
    return c.checked[(loc.off - c.start) // filestore.REC_OVERHEAD]


def test_read_ahead_serves_reads_in_order(fstores):
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 800)
    assert read_all(s) == msgs_of(1, 0, 800)
    c = cached(s, 800)
    assert c is not None and s._chunks == [c] and s._chunk_timer is not None
    assert c.start > 0 and c.end == s._lmb.flushed
    in_chunk = [q for q in range(1, 801) if cached(s, q) is c]
    assert len(in_chunk) > 100 and all(checked(s, q) for q in in_chunk)  # once, on the first read
    assert [s.load_msg(q).msg for q in range(799, 801)] == [b"msg-00798", b"msg-00799"]
    s.stop()
    assert s._chunks == [] and s._lmb.chunk is None and s._chunk_timer is None


def test_lone_reads_do_not_read_ahead(fstores):
    # KV gets and redeliveries read only their record.
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 2000)
    for q in (1500, 300, 1000, 1000, 1999):
        assert s.load_msg(q).msg == b"msg-%05d" % (q - 1)
    assert s._chunks == [] and s._lmb.chunk is None


def test_read_cache_expires_when_idle(fstores):
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 300)
    read_all(s)
    assert s._chunks and s._chunk_timer is not None
    s._chunk_timer.kill()
    s._expire_chunks()  # read since the timer last ran: kept
    assert s._chunks and s._chunk_timer is not None
    s._chunk_timer.kill()
    s._expire_chunks()  # not read since: dropped
    assert s._chunks == [] and s._lmb.chunk is None and s._chunk_timer is None
    assert read_all(s) == msgs_of(1, 0, 300)


def test_read_cache_is_bounded(fstores):
    s = fstores.make(block_size=20_000, sync_interval=LAZY)
    fill_in_order(s, 5000)
    assert len(s._blks) > 2 * filestore.READ_CHUNKS
    assert read_all(s) == msgs_of(1, 0, 5000)
    assert 0 < len(s._chunks) <= filestore.READ_CHUNKS
    assert sum(b.chunk is not None for b in s._blks) == len(s._chunks)


def test_erase_then_read(fstores):
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 300, secret=150)
    assert [s.load_next_msg(b"", False, q).seq for q in (1, 2)] == [1, 2]
    assert b"SECRET-00150" in cached(s, 151).buf
    assert s.erase_msg(151)
    assert all(b"SECRET" not in c.buf for c in s._chunks)  # nor in memory
    with pytest.raises(ErrStoreMsgNotFound):
        s.load_msg(151)
    assert read_all(s) == msgs_of(1, 0, 150) + msgs_of(152, 151, 149)
    assert s.state().lost is None


def test_purge_then_read(fstores):
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 300)
    read_all(s)
    assert s._chunks
    s.purge()
    assert s._chunks == []
    fill_in_order(s, 300, start=1000)
    assert read_all(s) == msgs_of(301, 1000, 300)


def test_compaction_then_read(fstores):
    # The compactor moves the records a chunk held: the chunk goes with the old file.
    s = fstores.make(block_size=8192)
    fill_in_order(s, 600)
    assert read_all(s) == msgs_of(1, 0, 600)
    first = s._blks[0]
    seqs = sorted(q for q, loc in s._msgs.items() if loc.blk is first)
    assert first.chunk is not None and first.chunk.start == 0
    kept = seqs[::10]
    for q in seqs:
        if q not in kept:
            s.remove_msg(q)
    if s._compactor is not None:
        s._compactor.join()
    assert first.size < 8192 // 2 and first.chunk is None  # rewritten
    got = read_all(s)
    assert got[:len(kept)] == [(q, b"msg-%05d" % (q - 1)) for q in kept]
    assert got[len(kept):] == msgs_of(seqs[-1] + 1, seqs[-1], 600 - seqs[-1])
    assert s.state().lost is None


def test_truncate_then_read(fstores):
    # The messages stored after a truncation take the offsets of the records cut, with
    # the same sequences and sizes: a stale chunk would serve the old payloads.
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 300)
    read_all(s)
    assert cached(s, 150) is not None
    s.truncate(100)
    fill_in_order(s, 50, start=5000)
    assert read_all(s) == msgs_of(1, 0, 100) + msgs_of(101, 5000, 50)
    assert s.state().lost is None


def test_corruption_found_through_the_read_cache(fstores, gnatsd_log):
    s = fstores.make(block_size=1 << 20)
    fill_in_order(s, 300)
    bad = (150, 200)
    locs = [s._msgs[q] for q in bad]
    with open(locs[0].blk.path, "r+b") as f:
        for loc in locs:
            f.seek(loc.off + loc.rl - 6)
            f.write(b"!")
    got = read_all(s)
    assert [q for q, _ in got] == [q for q in range(1, 301) if q not in bad]
    assert all(m == b"msg-%05d" % (q - 1) for q, m in got)
    # Both were read from the chunk that holds the records around them.
    c = cached(s, 151)
    assert c is not None and c.start < locs[0].off and locs[1].off + locs[1].rl <= c.end
    assert checked(s, 149) and checked(s, 151) and checked(s, 201)
    assert not c.checked[(locs[0].off - c.start) // filestore.REC_OVERHEAD]
    st_ = s.state()
    assert st_.msgs == 298 and st_.lost == LostStreamData(list(bad), 2 * locs[0].rl)
    assert "message 150 in block 1 is corrupt" in gnatsd_log.text
    assert "message 200 in block 1 is corrupt" in gnatsd_log.text


def test_read_cache_follows_the_writer(fstores):
    # A consumer right behind the writer reads records still buffered or just written one
    # at a time; one that falls behind reads chunks, which end where the written bytes did.
    s = fstores.make(block_size=1 << 20, sync_interval=LAZY)
    got = []
    chunks = 0

    def catch_up():
        seq = got[-1][0] + 1 if got else 1
        while True:
            sm = s.load_next_msg(b"", False, seq)
            if sm is None:
                return
            got.append((sm.seq, sm.msg))
            seq = sm.seq + 1

    for i in range(3000):
        s.store_msg(b"c", b"", b"msg-%05d" % i, wait=False)
        if i % 7 == 0:
            gevent.sleep(0)  # the pass ends: the buffered records are written
        if i < 300 and i % 3 == 2 or i % 700 == 699:
            catch_up()
            chunks += s._lmb.chunk is not None
            if i < 300:
                assert s._lmb.chunk is None  # right behind the writer
    catch_up()
    assert got == msgs_of(1, 0, 3000)
    assert chunks > 0
