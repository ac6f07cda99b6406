"""The message store interface, its shared types, and the index logic both stores share.

Ports nats-server `server/store.go` (StreamStore, ConsumerStore, StoreMsg, StreamState,
SimpleState, LostStreamData, ConsumerState, the store errors with Go's texts) plus the parts
of `server/memstore.go` and `server/filestore.go` that are the same in both stores: sequence
and per-subject accounting, the discard policies and limits, filtered and per-subject state,
purge/compact/truncate and max-age expiry. Go writes that logic twice; gnatsd writes it once
in `IndexedStore`, over an in-memory index `seq -> entry`, and the two stores differ only in
where a message's bytes live (`memstore.MemStore`: in the entry; `filestore.FileStore`: in
block files, the entry says where).

Conventions (the stream layer above relies on them):
- Subjects, headers and payloads are `bytes`. A filter of b"" or b">" means every subject;
  filters may hold the `*` and `>` wildcards (matched with `sublist.subject_matches`).
- Times are integer nanoseconds since the epoch (`ts`), durations in nanoseconds
  (`StreamConfig.max_age`), as in Go's JSON. Unlimited is 0 or negative, as Go's -1.
- Methods run without yielding unless their docstring says "May yield". In the file store
  the calls that wait for the disk (store_msg, store_raw_msg, the removals the API asks
  for) yield after the index is updated, never in the middle of it (DESIGN.md §2).
- `load_next_msg` returns None where Go returns ErrStoreEOF: a pull consumer asks past the
  end all the time, and the hot path raises no exceptions (DESIGN.md §3).
"""
from __future__ import annotations

import bisect
import heapq
import os
import time

import gevent

from gnatsd.sublist import subject_has_wildcard, subject_matches

# Go: StorageType.
FILE_STORAGE = 22
MEMORY_STORAGE = 33

# Go: RetentionPolicy (the store does not act on it; the stream layer does).
LIMITS_POLICY = 0
INTEREST_POLICY = 1
WORK_QUEUE_POLICY = 2

# Go: DiscardPolicy.
DISCARD_OLD = 0
DISCARD_NEW = 1

# Go: AckPolicy (consumer stores act on it).
ACK_NONE = 0
ACK_ALL = 1
ACK_EXPLICIT = 2

FWCS = b">"
WC_CACHE_MAX = 256  # wildcard filters whose matching subjects are remembered


class StoreError(Exception):
    """Base of the store errors; `str()` is Go's text."""

    text = ""

    def __init__(self, text=None):
        super().__init__(text or self.text)


class ErrStoreClosed(StoreError):
    text = "store is closed"


class ErrStoreMsgNotFound(StoreError):
    text = "no message found"


class ErrStoreEOF(StoreError):
    text = "stream store EOF"


class ErrMaxMsgs(StoreError):
    text = "maximum messages exceeded"


class ErrMaxBytes(StoreError):
    text = "maximum bytes exceeded"


class ErrMaxMsgsPerSubject(StoreError):
    text = "maximum messages per subject exceeded"


class ErrStoreSnapshotInProgress(StoreError):
    text = "snapshot in progress"


class ErrMsgTooLarge(StoreError):
    text = "message to large"  # sic, Go's text


class ErrStoreWrongType(StoreError):
    text = "wrong storage type"


class ErrNoAckPolicy(StoreError):
    text = "ack policy is none"


class ErrInvalidSequence(StoreError):
    text = "invalid sequence"


class ErrSequenceMismatch(StoreError):
    text = "expected sequence does not match store"


class ErrPurgeArgMismatch(StoreError):
    text = "sequence > 1 && keep > 0 not allowed"


class ErrBadConsumerState(StoreError):
    """Go: the fmt.Errorf texts of consumerStore.Update."""


class StreamConfig:
    """The part of Go's StreamConfig that the stores act on. Durations in nanoseconds;
    0 or negative means unlimited. The stream layer may pass any object with these
    attributes (its full StreamConfig)."""

    def __init__(self, name="", subjects=None, storage=FILE_STORAGE, retention=LIMITS_POLICY,
                 discard=DISCARD_OLD, discard_new_per_subject=False, max_msgs=-1,
                 max_bytes=-1, max_age=0, max_msg_size=-1, max_msgs_per_subject=-1, compression="none"):
        self.name = name
        self.subjects = subjects or []
        self.storage = storage
        self.retention = retention
        self.discard = discard
        self.discard_new_per_subject = discard_new_per_subject
        self.max_msgs = max_msgs
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.max_msg_size = max_msg_size
        self.max_msgs_per_subject = max_msgs_per_subject
        self.compression = compression  # "none" or "s2" (the file store compresses records)


class ConsumerConfig:
    """The part of Go's ConsumerConfig that the consumer stores act on."""

    def __init__(self, name="", ack_policy=ACK_EXPLICIT):
        self.name = name
        self.ack_policy = ack_policy


class StoreMsg:
    """Go: StoreMsg. One stored message; the stores hand out shared objects, do not modify."""

    __slots__ = ("subj", "hdr", "msg", "seq", "ts")

    def __init__(self, subj, hdr, msg, seq, ts):
        self.subj = subj
        self.hdr = hdr
        self.msg = msg
        self.seq = seq
        self.ts = ts

    def __repr__(self):
        return f"StoreMsg(seq={self.seq}, subj={self.subj!r}, hdr={self.hdr!r}, msg={self.msg!r}, ts={self.ts})"


class SimpleState:
    """Go: SimpleState, for a subject or a filter."""

    __slots__ = ("msgs", "first", "last")

    def __init__(self, msgs=0, first=0, last=0):
        self.msgs = msgs
        self.first = first
        self.last = last

    def __eq__(self, other):
        return (isinstance(other, SimpleState) and self.msgs == other.msgs
                and self.first == other.first and self.last == other.last)

    def __repr__(self):
        return f"SimpleState(msgs={self.msgs}, first={self.first}, last={self.last})"


class LostStreamData:
    """Go: LostStreamData: messages found corrupt, and their bytes."""

    __slots__ = ("msgs", "bytes")

    def __init__(self, msgs=None, nbytes=0):
        self.msgs = msgs if msgs is not None else []
        self.bytes = nbytes

    def __eq__(self, other):
        return isinstance(other, LostStreamData) and self.msgs == other.msgs and self.bytes == other.bytes

    def __repr__(self):
        return f"LostStreamData(msgs={self.msgs}, bytes={self.bytes})"


class StreamState:
    """Go: StreamState. `deleted` is filled by state(), not by fast_state()."""

    __slots__ = ("msgs", "bytes", "first_seq", "first_ts", "last_seq", "last_ts",
                 "num_subjects", "num_deleted", "deleted", "lost", "consumer_count")

    def __init__(self):
        self.msgs = self.bytes = self.first_seq = self.first_ts = 0
        self.last_seq = self.last_ts = self.num_subjects = self.num_deleted = 0
        self.deleted = None
        self.lost = None
        self.consumer_count = 0

    def as_tuple(self):
        return tuple(getattr(self, k) for k in self.__slots__)

    def __eq__(self, other):
        return isinstance(other, StreamState) and self.as_tuple() == other.as_tuple()

    def __repr__(self):
        return "StreamState(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"


class SequencePair:
    """Go: SequencePair."""

    __slots__ = ("consumer", "stream")

    def __init__(self, consumer=0, stream=0):
        self.consumer = consumer
        self.stream = stream

    def __eq__(self, other):
        return isinstance(other, SequencePair) and self.consumer == other.consumer and self.stream == other.stream

    def __repr__(self):
        return f"SequencePair(consumer={self.consumer}, stream={self.stream})"


class ConsumerState:
    """Go: ConsumerState. `pending` maps a stream sequence to (consumer sequence, delivery
    time ns); `redelivered` maps a stream sequence to its redelivery count."""

    __slots__ = ("delivered", "ack_floor", "pending", "redelivered")

    def __init__(self, delivered=None, ack_floor=None, pending=None, redelivered=None):
        self.delivered = delivered or SequencePair()
        self.ack_floor = ack_floor or SequencePair()
        self.pending = pending if pending is not None else {}
        self.redelivered = redelivered if redelivered is not None else {}

    def copy(self):
        return ConsumerState(SequencePair(self.delivered.consumer, self.delivered.stream),
                             SequencePair(self.ack_floor.consumer, self.ack_floor.stream),
                             dict(self.pending), dict(self.redelivered))

    def __eq__(self, other):
        return (isinstance(other, ConsumerState) and self.delivered == other.delivered
                and self.ack_floor == other.ack_floor and self.pending == other.pending
                and self.redelivered == other.redelivered)

    def __repr__(self):
        return (f"ConsumerState(delivered={self.delivered}, ack_floor={self.ack_floor}, "
                f"pending={self.pending}, redelivered={self.redelivered})")


def compare_fn(subject):
    """Go: compareFn. A predicate `eq(subj)` for one filter; literal filters compare equal,
    wildcard ones through `subject_matches`, with a cache since a stream has few subjects."""
    if not subject or subject == FWCS:
        return None  # everything matches
    if not subject_has_wildcard(subject):
        return subject.__eq__
    cache = {}

    def eq(subj):
        r = cache.get(subj)
        if r is None:
            r = cache[subj] = subject_matches(subject, subj)
        return r
    return eq


class _PSI:
    """Per-subject index (Go: psi and the per-block fss): the subject's live sequences in
    order. `seqs[head:]` are live; dropping the first only moves `head`, so limits that
    remove the oldest message of a subject cost O(1)."""

    __slots__ = ("subj", "seqs", "head")

    def __init__(self, subj, seq):
        self.subj = subj  # the one copy of the subject the index entries share
        self.seqs = [seq]
        self.head = 0

    def count(self):
        return len(self.seqs) - self.head

    def first(self):
        return self.seqs[self.head]

    def last(self):
        return self.seqs[-1]

    def remove(self, seq):
        seqs = self.seqs
        head = self.head
        if seqs[head] == seq:
            head += 1
            if head > 32 and head * 2 > len(seqs):
                del seqs[:head]
                head = 0
            self.head = head
        else:
            i = bisect.bisect_left(seqs, seq, head)
            if i < len(seqs) and seqs[i] == seq:
                del seqs[i]

    def count_from(self, seq):
        """Live sequences >= seq, and the first and last of them."""
        seqs = self.seqs
        i = bisect.bisect_left(seqs, seq, self.head)
        n = len(seqs) - i
        return (n, seqs[i], seqs[-1]) if n else (0, 0, 0)

    def next_from(self, seq):
        seqs = self.seqs
        i = bisect.bisect_left(seqs, seq, self.head)
        return seqs[i] if i < len(seqs) else 0


class StreamStore:
    """Go: StreamStore. The contract the stream layer relies on; `IndexedStore` carries it
    out for both stores. "May yield" marks the calls that wait for the disk in the file
    store (after the index was updated)."""

    def store_msg(self, subj, hdr, msg, wait=True):
        """Store a message under the next sequence; return (seq, ts). Raises ErrMaxMsgs,
        ErrMaxBytes, ErrMaxMsgsPerSubject (discard new), ErrMsgTooLarge. May yield: with
        `wait` the file store returns once the message is on disk; without, it does not
        yield, and `on_synced` tells when the message is safe."""
        raise NotImplementedError

    def store_raw_msg(self, subj, hdr, msg, seq, ts, wait=True):
        """Store with a given sequence and time (mirrors, sources, replicas): `seq` must be
        the next one (0 takes it), else ErrSequenceMismatch. May yield, as store_msg."""
        raise NotImplementedError

    def on_synced(self, cb, *args):
        """Call cb(err, *args) once everything stored so far is on disk (err None), or
        could not be put there (err the OSError, or ErrStoreClosed if the store was deleted).
        Without waiting on disk (memory store, lazy sync_interval) cb runs at once. This is
        how a publish is acknowledged without stopping its connection's readloop: store
        with wait=False, send the ack from cb; every message stored while one fsync runs
        shares the next (group commit). cb must not yield: the file store calls it from
        the hub's callbacks."""
        raise NotImplementedError

    def skip_msg(self, wait=True):
        """Use the next sequence without a message; return it. May yield; with `wait` False
        it does not, as store_msg."""
        raise NotImplementedError

    def skip_msgs(self, seq, num):
        """Use `num` sequences from `seq`, which must be the next one. May yield."""
        raise NotImplementedError

    def load_msg(self, seq):
        """The StoreMsg at `seq`; ErrStoreMsgNotFound, or ErrStoreEOF past the last."""
        raise NotImplementedError

    def load_next_msg(self, filter, wc, start):
        """The first StoreMsg at or after `start` on `filter` (`wc`: it holds wildcards), or
        None when there is none (Go: ErrStoreEOF)."""
        raise NotImplementedError

    def load_last_msg(self, subject):
        """The last StoreMsg on `subject` (may hold wildcards); ErrStoreMsgNotFound."""
        raise NotImplementedError

    def remove_msg(self, seq, wait=True):
        """Remove one message: True, or False if it was not there; ErrStoreEOF past the
        last sequence. May yield; with `wait` False it does not."""
        raise NotImplementedError

    def erase_msg(self, seq):
        """As remove_msg, and overwrite its bytes. May yield."""
        raise NotImplementedError

    def purge(self):
        """Remove every message; return how many. May yield."""
        raise NotImplementedError

    def purge_ex(self, subject, seq, keep, wait=True):
        """Remove the messages on `subject` (every subject if empty) below `seq` (if > 1),
        or all but the newest `keep`; return how many. ErrPurgeArgMismatch for both.
        May yield; with `wait` False it does not (on_synced tells when it is on disk)."""
        raise NotImplementedError

    def compact(self, seq):
        """Remove every message below `seq`; past the end, the next message gets `seq`.
        Return how many went. May yield."""
        raise NotImplementedError

    def truncate(self, seq):
        """Remove every message after `seq`, which must be held (ErrInvalidSequence); the
        last sequence becomes `seq`. May yield."""
        raise NotImplementedError

    def get_seq_from_time(self, ts):
        """The first sequence whose message is at or after `ts` (ns); last+1 if none."""
        raise NotImplementedError

    def filtered_state(self, seq, subject):
        """SimpleState of the messages at or after `seq` on `subject` (may hold wildcards)."""
        raise NotImplementedError

    def subjects_state(self, filter_subject):
        """{subject: SimpleState} for every subject matching the filter."""
        raise NotImplementedError

    def subjects_totals(self, filter_subject):
        """{subject: message count} for every subject matching the filter."""
        raise NotImplementedError

    def num_pending(self, start, filter, last_per_subject):
        """(messages at or after `start` on `filter`, the last sequence that count holds
        for); with `last_per_subject`, subjects whose last message is at or after `start`."""
        raise NotImplementedError

    def state(self):
        """StreamState, with the interior deleted sequences and lost data."""
        raise NotImplementedError

    def fast_state(self):
        """StreamState without the deleted list."""
        raise NotImplementedError

    def type(self):
        """FILE_STORAGE or MEMORY_STORAGE."""
        raise NotImplementedError

    def register_storage_updates(self, cb):
        """cb(msgs_delta, bytes_delta, seq, subj) after every store and removal, including
        those the limits make (seq 0 and subj b"" for purge/compact/truncate). The stream
        layer learns of limit-driven removals this way. It must not yield."""
        raise NotImplementedError

    def update_config(self, cfg):
        """Take new limits (a StreamConfig) and apply them at once."""
        raise NotImplementedError

    def delete(self):
        """Stop and remove everything stored. May yield."""
        raise NotImplementedError

    def stop(self):
        """Stop timers, put everything on disk, close; later calls raise ErrStoreClosed.
        May yield."""
        raise NotImplementedError

    def consumer_store(self, name, cfg):
        """A ConsumerStore for consumer `name` (cfg: a ConsumerConfig), counted in
        state().consumer_count until it stops."""
        raise NotImplementedError

    def snapshot(self, check_msgs, include_consumers):
        """Go: Snapshot. The files of the stream as they are now, for an archive: a
        SnapshotFiles whose close() ends the snapshot. Raises StoreError. May yield."""
        raise StoreError("no impl")  # Go: the memory store has no snapshots


class SnapshotFiles:
    """What a snapshot archives: `entries`, a list of (name in the archive, bytes or None,
    open fd or -1, size); a file given by fd is read up to its size at snapshot time."""

    def __init__(self, entries, on_close):
        self.entries = entries
        self._on_close = on_close

    def close(self):
        for _, _, fd, _ in self.entries:
            if fd >= 0:
                os.close(fd)
        self.entries = []
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


class ConsumerStore:
    """Go: ConsumerStore. A consumer's delivery and acknowledgement state."""

    def set_starting(self, sseq):
        """Set the stream sequence delivery starts after."""
        raise NotImplementedError

    def has_state(self):
        """True if state was recovered from disk."""
        raise NotImplementedError

    def update_delivered(self, dseq, sseq, dc, ts):
        """Record delivery `dseq` of stream message `sseq`, its `dc`th delivery, at `ts`."""
        raise NotImplementedError

    def update_acks(self, dseq, sseq):
        """Record the acknowledgement of delivery `dseq` of stream message `sseq`."""
        raise NotImplementedError

    def update_config(self, cfg):
        """Take a new ConsumerConfig (checked by the caller)."""
        raise NotImplementedError

    def update(self, state):
        """Replace the state with `state` (a ConsumerState), checked."""
        raise NotImplementedError

    def state(self):
        """A copy of the ConsumerState."""
        raise NotImplementedError

    def type(self):
        """FILE_STORAGE or MEMORY_STORAGE."""
        raise NotImplementedError

    def stop(self):
        """Stop (the file store writes what is pending). May yield."""
        raise NotImplementedError

    def delete(self):
        """Stop and remove the stored state. May yield."""
        raise NotImplementedError


class IndexedStore(StreamStore):
    """The store logic over an in-memory index, shared by the memory and the file store.

    `_msgs` maps each live sequence to an entry with at least `subj` and `ts`; `_fss` maps
    each subject to its `_PSI`. Subclasses provide:
      _write_msg(seq, ts, subj, hdr, msg) -> entry   (may raise before anything changed)
      _entry_size(entry) -> int                        (the bytes it counts for)
      _load(seq, entry) -> StoreMsg
      _removed(seq, entry, secure)                     (one message went)
      _bulk_removed(kind, seq, removed)                ("purge"/"compact"/"truncate" happened;
                                                        removed: [(seq, entry)], None for purge)
      _skipped(seq, ts)                                (sequences up to seq were used)
    """

    storage_type = MEMORY_STORAGE

    def __init__(self, cfg):
        if cfg is None:
            raise ValueError("config required")
        self.cfg = cfg
        self._msgs = {}
        self._fss = {}
        self._bytes = 0
        self._first_seq = 0
        self._first_ts = 0
        self._last_seq = 0
        self._last_ts = 0
        self._scb = None
        self._age_chk = None
        self._ttls = []  # (expires ns, seq): per-message TTLs, a heap (Go 2.11: a hash wheel)
        self._ttl_chk = None
        self._never = set()  # sequences whose TTL says never: max_age spares them
        self.sdm_cb = None  # Go 2.11 subject delete markers: cb(seq, subj) for a subject's last message
        self._consumers = 0
        self._closed = False
        self._lost = None
        self._wc_cache = {}  # wildcard filter -> its subjects' _PSIs; cleared when subjects change

    def _install_index(self, entries, last_seq, last_ts):
        """Build the index and the stream state from recovered `entries` (seq -> entry)."""
        msgs = {}
        fss = {}
        nbytes = 0
        for seq in sorted(entries):
            e = entries[seq]
            msgs[seq] = e
            nbytes += self._entry_size(e)
            psi = fss.get(e.subj)
            if psi is None:
                fss[e.subj] = _PSI(e.subj, seq)
            else:
                psi.seqs.append(seq)
        self._msgs = msgs
        self._fss = fss
        self._wc_cache.clear()
        self._bytes = nbytes
        self._last_seq = last_seq
        self._last_ts = last_ts
        if msgs:
            first = next(iter(msgs))
            self._first_seq = first
            self._first_ts = msgs[first].ts
        else:
            self._first_seq = self._empty_first_seq()
            self._first_ts = 0

    # -- storing -------------------------------------------------------------------------------

    def store_msg(self, subj, hdr, msg, wait=True):
        """Go: StoreMsg. Return (seq, ts)."""
        seq = self._last_seq + 1
        ts = time.time_ns()
        size = self._store_raw_msg(subj, hdr, msg, seq, ts)
        cb = self._scb
        if cb is not None:
            cb(1, size, seq, subj)
        return seq, ts

    def store_raw_msg(self, subj, hdr, msg, seq, ts, wait=True):
        """Go: StoreRawMsg. `seq` must be the next sequence (0 picks it)."""
        if seq == 0:
            seq = self._last_seq + 1
        size = self._store_raw_msg(subj, hdr, msg, seq, ts)
        cb = self._scb
        if cb is not None:
            cb(1, size, seq, subj)

    def _store_raw_msg(self, subj, hdr, msg, seq, ts):
        """Go: storeRawMsg. Does not yield. Returns the bytes the message counts for."""
        if self._closed:
            raise ErrStoreClosed()
        cfg = self.cfg
        if 0 < cfg.max_msg_size < len(hdr) + len(msg):
            raise ErrMsgTooLarge()
        fss = self._fss
        psi = fss.get(subj)
        if cfg.discard == DISCARD_NEW:
            self._check_discard_new(cfg, psi, len(hdr) + len(msg))
        if seq != self._last_seq + 1:
            raise ErrSequenceMismatch()

        e = self._write_msg(seq, ts, subj, hdr, msg)
        size = self._entry_size(e)
        self._msgs[seq] = e
        if len(self._msgs) == 1:
            self._first_seq = seq
            self._first_ts = ts
        self._bytes += size
        self._last_seq = seq
        self._last_ts = ts
        if psi is None:
            fss[subj] = _PSI(subj, seq)
            if self._wc_cache:
                self._wc_cache.clear()
        else:
            e.subj = psi.subj
            psi.seqs.append(seq)
            maxp = cfg.max_msgs_per_subject
            if 0 < maxp < len(psi.seqs) - psi.head:
                self._enforce_per_subject_limit(psi, maxp)
        if 0 < cfg.max_msgs < len(self._msgs):
            self._enforce_msg_limit()
        if 0 < cfg.max_bytes < self._bytes:
            self._enforce_bytes_limit()
        if self._age_chk is None and cfg.max_age > 0:
            self._start_age_chk()
        return size

    def on_synced(self, cb, *args):
        """Nothing to wait for: cb(None, *args) now."""
        cb(None, *args)

    def _check_discard_new(self, cfg, psi, sz):
        """Go: the DiscardNew checks of storeRawMsg. A subject at its own limit replaces its
        oldest message, so the stream-wide limits let it through."""
        maxp = cfg.max_msgs_per_subject
        asl = psi is not None and 0 < maxp <= psi.count()
        if asl and cfg.discard_new_per_subject:
            raise ErrMaxMsgsPerSubject()
        if 0 < cfg.max_msgs <= len(self._msgs) and not asl:
            raise ErrMaxMsgs()
        if cfg.max_bytes > 0 and self._bytes + sz >= cfg.max_bytes:
            if not asl:
                raise ErrMaxBytes()
            e = self._msgs.get(psi.first())
            if e is None or self._entry_size(e) < sz:
                raise ErrMaxBytes()

    def skip_msg(self, wait=True):
        """Go: SkipMsg. Use the next sequence without storing anything."""
        if self._closed:
            raise ErrStoreClosed()
        seq = self._last_seq + 1
        self._skip_to(seq)
        return seq

    def skip_msgs(self, seq, num):
        """Go: SkipMsgs (2.10). Use `num` sequences from `seq`, which must be the next."""
        if self._closed:
            raise ErrStoreClosed()
        if seq != self._last_seq + 1:
            raise ErrSequenceMismatch()
        if num > 0:
            self._skip_to(seq + num - 1)

    def _skip_to(self, seq):
        now = time.time_ns()
        self._last_seq = seq
        self._last_ts = now
        if not self._msgs:
            self._first_seq = seq + 1
            self._first_ts = 0
        self._skipped(seq, now)

    # -- loading -------------------------------------------------------------------------------

    def load_msg(self, seq):
        """Go: LoadMsg."""
        if self._closed:
            raise ErrStoreClosed()
        e = self._msgs.get(seq)
        if e is None:
            if seq > self._last_seq:
                raise ErrStoreEOF()
            raise ErrStoreMsgNotFound()
        return self._load(seq, e)

    def load_next_msg(self, filter, wc, start):
        """Go: LoadNextMsg. The first message at or after `start` whose subject matches
        `filter` (`wc`: it holds wildcards), or None at the end (Go: ErrStoreEOF)."""
        if self._closed:
            raise ErrStoreClosed()
        if start < self._first_seq:
            start = self._first_seq
        last = self._last_seq
        if start > last:
            return None
        msgs = self._msgs
        if not filter or filter == FWCS:
            for seq in range(start, last + 1):
                e = msgs.get(seq)
                if e is not None:
                    return self._load(seq, e)
            return None
        if not wc:
            psi = self._fss.get(filter)
            if psi is None:
                return None
            seq = psi.next_from(start)
            return self._load(seq, msgs[seq]) if seq else None
        fss = self._fss
        # Go: linear scan when the range is short or there are many subjects to look at.
        if 2 * (last - start) < len(fss) or len(fss) > 256:
            eq = compare_fn(filter)
            for seq in range(start, last + 1):
                e = msgs.get(seq)
                if e is not None and eq(e.subj):
                    return self._load(seq, e)
            return None
        best = 0
        for psi in self._matching_psis(filter):
            seq = psi.next_from(start)
            if seq and (not best or seq < best):
                best = seq
        return self._load(best, msgs[best]) if best else None

    def load_last_msg(self, subject):
        """Go: LoadLastMsg. The last message on `subject` (may hold wildcards)."""
        if self._closed:
            raise ErrStoreClosed()
        if not subject or subject == FWCS:
            seq = self._last_seq
        elif subject_has_wildcard(subject):
            seq = 0
            for subj, psi in self._fss.items():
                if psi.last() > seq and subject_matches(subject, subj):
                    seq = psi.last()
        else:
            psi = self._fss.get(subject)
            seq = psi.last() if psi is not None else 0
        e = self._msgs.get(seq)
        if e is None:
            raise ErrStoreMsgNotFound()
        return self._load(seq, e)

    # -- removing ------------------------------------------------------------------------------

    def remove_msg(self, seq, wait=True):
        """Go: RemoveMsg. True if removed, False if it was already gone; ErrStoreEOF past
        the last sequence."""
        return self._remove_checked(seq, False)

    def erase_msg(self, seq):
        """Go: EraseMsg. As remove_msg, and its bytes are overwritten."""
        return self._remove_checked(seq, True)

    def _remove_checked(self, seq, secure):
        if self._closed:
            raise ErrStoreClosed()
        if seq not in self._msgs:
            if seq > self._last_seq:
                raise ErrStoreEOF()
            return False
        return self._remove_msg(seq, secure)

    def _remove_msg(self, seq, secure):
        """Go: removeMsg. Does not yield (the callback must not either)."""
        e = self._msgs.pop(seq, None)
        if e is None:
            return False
        size = self._entry_size(e)
        self._bytes -= size
        if seq == self._first_seq:
            self._update_first_seq(seq)
        subj = e.subj
        psi = self._fss.get(subj)
        if psi is not None:
            if len(psi.seqs) - psi.head == 1:
                del self._fss[subj]
                if self._wc_cache:
                    self._wc_cache.clear()
            else:
                psi.remove(seq)
        self._removed(seq, e, secure)
        cb = self._scb
        if cb is not None:
            cb(-1, -size, seq, subj)
        return True

    def _empty_first_seq(self):
        """The first sequence of a store holding nothing: the next one, or 0 while no
        sequence was ever used (Go: a new stream)."""
        return self._last_seq + 1 if self._last_seq else 0

    def _update_first_seq(self, seq):
        """Go: updateFirstSeq. The first sequence after `seq` still held, or last+1."""
        msgs = self._msgs
        if msgs:
            for nseq in range(seq + 1, self._last_seq + 1):
                e = msgs.get(nseq)
                if e is not None:
                    self._first_seq = nseq
                    self._first_ts = e.ts
                    return
        self._first_seq = self._last_seq + 1
        self._first_ts = 0

    def _enforce_per_subject_limit(self, psi, maxp):
        while len(psi.seqs) - psi.head > maxp:
            self._remove_msg(psi.first(), False)

    def _enforce_msg_limit(self):
        maxm = self.cfg.max_msgs
        while len(self._msgs) > maxm:
            self._remove_msg(self._first_seq, False)

    def _enforce_bytes_limit(self):
        maxb = self.cfg.max_bytes
        while self._bytes > maxb and self._msgs:
            self._remove_msg(self._first_seq, False)

    def purge(self):
        """Go: Purge. Remove every message; return how many."""
        if self._closed:
            raise ErrStoreClosed()
        return self._purge_to(0)

    def _purge_to(self, fseq):
        """Go: fileStore.purge. Everything goes; with fseq past the end the next message
        gets sequence fseq."""
        purged, nbytes = len(self._msgs), self._bytes
        self._msgs = {}
        self._fss = {}
        self._wc_cache.clear()
        self._bytes = 0
        if fseq > self._last_seq + 1:
            self._last_seq = fseq - 1
        self._first_seq = self._empty_first_seq()
        self._first_ts = 0
        self._bulk_removed("purge", self._first_seq, None)
        self._report_bulk(purged, nbytes)
        return purged

    def _report_bulk(self, purged, nbytes):
        cb = self._scb
        if cb is not None and (purged or nbytes):
            cb(-purged, -nbytes, 0, b"")

    def purge_ex(self, subject, seq, keep, wait=True):
        """Go: PurgeEx. Remove the messages on `subject` (all if empty) below `seq` (if > 1),
        or all but the last `keep`. Return how many went."""
        if seq > 1 and keep > 0:
            raise ErrPurgeArgMismatch()
        if self._closed:
            raise ErrStoreClosed()
        if not subject or subject == FWCS:
            if keep == 0 and seq <= 1:
                return self.purge()
            if seq > 1:
                return self.compact(seq)
            if keep >= len(self._msgs):
                return 0
            return self.compact(self._last_seq - keep + 1)
        if subject_has_wildcard(subject):
            psis = [p for s, p in self._fss.items() if subject_matches(subject, s)]
        else:
            psi = self._fss.get(subject)
            psis = [psi] if psi is not None else []
        todo = []
        for psi in psis:
            todo.extend(psi.seqs[psi.head:])
        todo.sort()
        if keep > 0:
            if keep >= len(todo):
                return 0
            del todo[len(todo) - keep:]
        elif seq > 1:
            del todo[bisect.bisect_left(todo, seq):]
        purged = 0
        for s in todo:
            if self._remove_msg(s, False):
                purged += 1
        return purged

    def compact(self, seq):
        """Go: Compact. Remove every message below `seq`; return how many."""
        if self._closed:
            raise ErrStoreClosed()
        if seq == 0 or seq > self._last_seq:
            return self._purge_to(seq)
        msgs = self._msgs
        removed = []
        nbytes = 0
        for s in range(self._first_seq, seq):
            e = msgs.pop(s, None)
            if e is not None:
                removed.append((s, e))
                nbytes += self._entry_size(e)
        purged = len(removed)
        if purged:
            self._wc_cache.clear()
            for subj in list(self._fss):
                psi = self._fss[subj]
                if psi.first() < seq:
                    i = bisect.bisect_left(psi.seqs, seq, psi.head)
                    if i == len(psi.seqs):
                        del self._fss[subj]
                    else:
                        del psi.seqs[:i]
                        psi.head = 0
        self._bytes -= nbytes
        if self._first_seq < seq:
            self._update_first_seq(seq - 1)
        self._bulk_removed("compact", seq, removed)
        self._report_bulk(purged, nbytes)
        return purged

    def truncate(self, seq):
        """Go: Truncate. Remove every message after `seq`, which must be held (or 0 for all);
        the stream's last sequence becomes `seq`."""
        if self._closed:
            raise ErrStoreClosed()
        msgs = self._msgs
        if seq == 0:
            lts = 0
        else:
            lsm = msgs.get(seq)
            if lsm is None:
                raise ErrInvalidSequence()
            lts = lsm.ts
        removed = []
        nbytes = 0
        for s in range(self._last_seq, seq, -1):
            e = msgs.pop(s, None)
            if e is not None:
                removed.append((s, e))
                nbytes += self._entry_size(e)
                psi = self._fss[e.subj]
                psi.seqs.pop()
                if len(psi.seqs) == psi.head:
                    del self._fss[e.subj]
                    self._wc_cache.clear()
        self._bytes -= nbytes
        self._last_seq = seq
        self._last_ts = lts
        if not msgs:
            self._first_seq = self._empty_first_seq()
            self._first_ts = 0
        self._bulk_removed("truncate", seq, removed)
        self._report_bulk(len(removed), nbytes)

    # -- max age -------------------------------------------------------------------------------

    def _start_age_chk(self):
        """Go: startAgeChk. A gevent timer, cancelled by stop()."""
        self._age_chk = gevent.spawn_later(self.cfg.max_age / 1e9, self.expire_msgs)

    def expire_msgs(self):
        """Go: expireMsgs. Remove messages older than max_age; rearm for the next one."""
        if self._age_chk is not None and self._age_chk is not gevent.getcurrent():
            self._age_chk.kill(block=False)
        self._age_chk = None
        max_age = self.cfg.max_age
        if self._closed or max_age <= 0:
            return
        now = time.time_ns()
        min_ts = now - max_age
        msgs = self._msgs
        never = self._never
        seq = self._first_seq
        while msgs:
            e = msgs.get(seq)
            if e is None:
                seq = self._next_held(seq)
                if not seq:
                    return
                e = msgs[seq]
            if e.ts > min_ts:
                fire_in = (e.ts - min_ts) / 1e9
                self._age_chk = gevent.spawn_later(fire_in, self.expire_msgs)
                return
            if seq not in never:
                self._expire(seq, e)
            seq += 1

    def _expire(self, seq, e):
        """Remove an expired message; with subject delete markers on, the last message of a
        subject goes to sdm_cb instead (Go: handleRemovalOrSdm), which replaces it by a marker."""
        cb = self.sdm_cb
        if cb is not None:
            psi = self._fss.get(e.subj)
            if psi is not None and psi.count() == 1:
                cb(seq, e.subj)
                return
        self._remove_msg(seq, False)

    def _cancel_age_chk(self):
        """Stop the max_age and the TTL timers."""
        if self._age_chk is not None:
            self._age_chk.kill(block=False)
            self._age_chk = None
        if self._ttl_chk is not None:
            self._ttl_chk.kill(block=False)
            self._ttl_chk = None

    # -- per-message TTL (2.11) ----------------------------------------------------------------

    def track_ttl(self, seq, ttl):
        """Go (2.11): message `seq` expires `ttl` seconds after it was stored (-1: never,
        and max_age spares it too). In memory only: the stream layer tells again after a
        restart (it reads the Nats-TTL headers)."""
        if ttl < 0:
            self._never.add(seq)
            return
        e = self._msgs.get(seq)
        if e is None:
            return
        heapq.heappush(self._ttls, (e.ts + ttl * 1_000_000_000, seq))
        if self._ttls[0][1] == seq:
            self._arm_ttl()

    def _arm_ttl(self):
        if self._ttl_chk is not None:
            self._ttl_chk.kill(block=False)
            self._ttl_chk = None
        if self._ttls and not self._closed:
            delay = max(self._ttls[0][0] - time.time_ns(), 0) / 1e9
            self._ttl_chk = gevent.spawn_later(delay, self.expire_ttls)

    def expire_ttls(self):
        """Remove the messages whose TTL has passed; rearm for the next one."""
        self._ttl_chk = None
        if self._closed:
            return
        now = time.time_ns()
        ttls = self._ttls
        while ttls and ttls[0][0] <= now:
            _, seq = heapq.heappop(ttls)
            e = self._msgs.get(seq)
            if e is not None:
                self._expire(seq, e)
        self._arm_ttl()

    # -- state ---------------------------------------------------------------------------------

    def get_seq_from_time(self, ts):
        """Go: GetSeqFromTime. The first sequence whose message has a timestamp >= ts (ns)."""
        msgs = self._msgs
        if not msgs:
            return self._last_seq + 1
        first, last = self._first_seq, self._last_seq
        if ts <= msgs[first].ts:
            return first
        # Binary search for the lowest sequence whose next held message is new enough;
        # a probe that lands on a gap moves to the next message.
        lo, hi = first, last + 1
        while lo < hi:
            mid = (lo + hi) // 2
            probe = self._next_held(mid)
            if not probe or msgs[probe].ts >= ts:
                hi = mid
            else:
                lo = probe + 1
        return self._next_held(lo) or last + 1

    def _next_held(self, seq):
        msgs = self._msgs
        for s in range(seq, self._last_seq + 1):
            if s in msgs:
                return s
        return 0

    def filtered_state(self, seq, subject):
        """Go: FilteredState. Messages at or after `seq` on `subject` (may hold wildcards)."""
        if seq < self._first_seq:
            seq = self._first_seq
        ss = SimpleState()
        if seq > self._last_seq:
            return ss
        for psi in self._matching_psis(subject):
            n, f, last = psi.count_from(seq)
            if n:
                ss.msgs += n
                if not ss.first or f < ss.first:
                    ss.first = f
                if last > ss.last:
                    ss.last = last
        return ss

    def _matching_psis(self, subject):
        """The _PSIs of the subjects matching `subject`; the list is shared, do not modify."""
        fss = self._fss
        if not subject or subject == FWCS:
            return list(fss.values())
        if subject_has_wildcard(subject):
            cache = self._wc_cache
            psis = cache.get(subject)
            if psis is None:
                if len(cache) >= WC_CACHE_MAX:
                    cache.clear()
                psis = cache[subject] = [p for s, p in fss.items() if subject_matches(subject, s)]
            return psis
        psi = fss.get(subject)
        return [psi] if psi is not None else []

    def subjects_state(self, filter_subject):
        """Go: SubjectsState. {subject: SimpleState} for the subjects matching the filter."""
        return {s: SimpleState(p.count(), p.first(), p.last()) for s, p in self._matching_items(filter_subject)}

    def subjects_totals(self, filter_subject):
        """Go: SubjectsTotals (2.10). {subject: message count}."""
        return {s: p.count() for s, p in self._matching_items(filter_subject)}

    def _matching_items(self, filter_subject):
        if not filter_subject or filter_subject == FWCS:
            return list(self._fss.items())
        return [(s, p) for s, p in self._fss.items() if subject_matches(filter_subject, s)]

    def num_pending(self, start, filter, last_per_subject):
        """Go: NumPending (2.10). (messages at or after `start` matching `filter`, the last
        sequence this count is valid through). With `last_per_subject` a subject counts once,
        if its last message is at or after `start`."""
        if start < self._first_seq:
            start = self._first_seq
        total = 0
        for psi in self._matching_psis(filter):
            if last_per_subject:
                if psi.last() >= start:
                    total += 1
            else:
                total += psi.count_from(start)[0]
        return total, self._last_seq

    def fast_state(self):
        """Go: FastState. The state without the deleted list."""
        st = StreamState()
        st.msgs = len(self._msgs)
        st.bytes = self._bytes
        st.first_seq = self._first_seq
        st.first_ts = self._first_ts
        st.last_seq = self._last_seq
        st.last_ts = self._last_ts
        if st.last_seq > st.first_seq:
            st.num_deleted = (st.last_seq - st.first_seq + 1) - st.msgs
        st.num_subjects = len(self._fss)
        st.consumer_count = self._consumers
        st.lost = self._lost
        return st

    def state(self):
        """Go: State. With the interior deleted sequences listed."""
        st = self.fast_state()
        if st.num_deleted:
            msgs = self._msgs
            st.deleted = [s for s in range(st.first_seq + 1, st.last_seq) if s not in msgs]
        return st

    def type(self):
        return self.storage_type

    def register_storage_updates(self, cb):
        """Go: RegisterStorageUpdates. cb(msgs_delta, bytes_delta, seq, subj) runs on every
        store and removal (seq 0 and subj b"" for bulk ones). It must not yield."""
        self._scb = cb

    def update_config(self, cfg):
        """Go: UpdateConfig. New limits apply at once."""
        if cfg is None:
            raise ValueError("config required")
        if cfg.storage != self.storage_type:
            raise ErrStoreWrongType()
        old_maxp = self.cfg.max_msgs_per_subject
        self.cfg = cfg
        if cfg.max_msgs > 0:
            self._enforce_msg_limit()
        if cfg.max_bytes > 0:
            self._enforce_bytes_limit()
        maxp = cfg.max_msgs_per_subject
        if maxp > 0 and (old_maxp <= 0 or maxp < old_maxp):
            for psi in list(self._fss.values()):
                if psi.count() > maxp:
                    self._enforce_per_subject_limit(psi, maxp)
        self._cancel_age_chk()
        if cfg.max_age > 0:
            self.expire_msgs()
        self._arm_ttl()

    # -- consumers -----------------------------------------------------------------------------

    def add_consumer(self, o):
        """Go: AddConsumer."""
        self._consumers += 1

    def remove_consumer(self, o):
        """Go: RemoveConsumer."""
        if self._consumers > 0:
            self._consumers -= 1

    def is_closed(self):
        return self._closed


class BaseConsumerStore(ConsumerStore):
    """The consumer state logic of Go's consumerMemStore and consumerFileStore (identical in
    Go): delivered, ack floor, pending and redelivered. The file store's consumer adds
    persistence by overriding `_changed`."""

    storage_type = MEMORY_STORAGE

    def __init__(self, ms, name, cfg):
        self.ms = ms
        self.name = name
        self.cfg = cfg
        self._state = ConsumerState()
        self._closed = False

    def _changed(self):
        """Called after every state change."""

    def set_starting(self, sseq):
        """Go: SetStarting."""
        self._state.delivered.stream = sseq
        self._changed()

    def has_state(self):
        return False

    def update_delivered(self, dseq, sseq, dc, ts):
        """Go: UpdateDelivered."""
        if self._closed:
            raise ErrStoreClosed()
        st = self._state
        if dc != 1 and self.cfg.ack_policy == ACK_NONE:
            raise ErrNoAckPolicy()
        if dseq <= st.ack_floor.consumer:
            return
        if self.cfg.ack_policy != ACK_NONE:
            if sseq <= st.delivered.stream:
                if sseq in st.pending:
                    st.pending[sseq] = (dseq, ts)
            else:
                st.pending[sseq] = (dseq, ts)
            if dseq > st.delivered.consumer:
                st.delivered.consumer = dseq
            if sseq > st.delivered.stream:
                st.delivered.stream = sseq
            if dc > 1:
                st.redelivered[sseq] = dc - 1
        else:
            st.delivered.consumer = st.ack_floor.consumer = dseq
            st.delivered.stream = st.ack_floor.stream = sseq
        self._changed()

    def update_acks(self, dseq, sseq):
        """Go: UpdateAcks."""
        if self._closed:
            raise ErrStoreClosed()
        st = self._state
        if self.cfg.ack_policy == ACK_NONE:
            raise ErrNoAckPolicy()
        if sseq not in st.pending:
            raise ErrStoreMsgNotFound()
        if dseq <= st.ack_floor.consumer:
            return
        if self.cfg.ack_policy == ACK_ALL:
            for s in range(st.ack_floor.stream + 1, sseq + 1):
                st.pending.pop(s, None)
                st.redelivered.pop(s, None)
            st.ack_floor.consumer = dseq
            st.ack_floor.stream = sseq
            self._changed()
            return
        p = st.pending.pop(sseq)
        dseq = p[0]
        st.redelivered.pop(sseq, None)
        if not st.pending:
            st.ack_floor.consumer = st.delivered.consumer
            st.ack_floor.stream = st.delivered.stream
        elif dseq == st.ack_floor.consumer + 1:
            first = st.ack_floor.consumer == 0
            st.ack_floor.consumer = dseq
            st.ack_floor.stream = sseq
            if not first and st.delivered.consumer > dseq:
                for ss in range(sseq + 1, st.delivered.stream):
                    p = st.pending.get(ss)
                    if p is not None:
                        if p[0] > 0:
                            st.ack_floor.consumer = p[0] - 1
                            st.ack_floor.stream = ss - 1
                        break
        self._changed()

    def update_config(self, cfg):
        """Go: UpdateConfig (checked by the layer above)."""
        self.cfg = cfg

    def update(self, state):
        """Go: Update. Replace the state (from a snapshot or a peer)."""
        if state.ack_floor.consumer > state.delivered.consumer:
            raise ErrBadConsumerState("bad ack floor for consumer")
        if state.ack_floor.stream > state.delivered.stream:
            raise ErrBadConsumerState("bad ack floor for stream")
        for seq in state.pending:
            if seq <= state.ack_floor.stream or seq > state.delivered.stream:
                raise ErrBadConsumerState(f"bad pending entry, sequence [{seq}] out of range")
        if state.delivered.consumer < self._state.delivered.consumer:
            raise ErrBadConsumerState("old update ignored")
        self._state = state.copy()
        self._changed()

    def state(self):
        """Go: State. A copy."""
        if self._closed:
            raise ErrStoreClosed()
        return self._state.copy()

    def borrow_state(self):
        """Go: BorrowState. The live object: do not keep or modify it."""
        if self._closed:
            raise ErrStoreClosed()
        return self._state

    def type(self):
        return self.storage_type

    def stop(self):
        if not self._closed:
            self._closed = True
            self.ms.remove_consumer(self)

    def delete(self):
        self.stop()

    def stream_delete(self):
        self.stop()
