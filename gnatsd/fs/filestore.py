"""The file store. Ports the behaviour of nats-server `server/filestore.go` (fileStore,
msgBlock, consumerFileStore); the on-disk format is gnatsd's own (DESIGN.md §4).

Layout of a stream's directory:

    msgs/<n>.blk     append-only block files, rolled at `block_size`
    index.snap       msgpack index snapshot, written by stop(), verified and removed at start
    obs/<name>/state consumer state (msgpack, versioned, checksummed)

A block is a sequence of records, all little-endian:

    rlen u32 | kind u8 | seq u64 | ts i64 | slen u16 | hlen u32 | subject | headers | payload | crc32 u32

`rlen` is the whole record (in an MSG_S2 record, the headers and the payload are each
snappy-compressed and `hlen` is the compressed headers' length); the CRC-32 (zlib) covers
everything before it, so a torn write or a flipped bit anywhere is detected (CRC-32 over a record plus its own CRC leaves a
constant residue, which reading checks without slicing). CRC-32 over BLAKE2b: it runs at
memory speed in zlib on both CPython and PyPy and detects every burst error up to 32 bits;
the threat is the disk, not an adversary. Kinds: MSG (a message), MSG_S2 (a message
compressed, for a stream with `compression: s2`: written when it saves space on a message of
64 bytes or more, as Go compresses its blocks; with python-snappy), SKIP (sequences up to
`seq` were used), DEL (a tombstone: message `seq` was removed) and ERASED (a message
overwritten in place by erase_msg). A stream's message bytes (`state().bytes`, max_bytes)
count each message as Go's fileStoreMsgSize does on its uncompressed size, whatever the
record here takes, so that clients see the numbers the Go server gives.

The index (`seq -> block/offset`, per-subject sequences) lives in memory. At start it comes
from index.snap when that file's checksum holds and every block it names has the size and
the last record it says; otherwise every block is scanned. Scanning resynchronises after a
bad record: at the end of the last block (a torn write) the file is cut there with a
warning; anywhere else the bad bytes and the sequences they must have held are reported as
lost (`state().lost`, an error in the log) and the rest is served.

Reading (Go: msgBlock.cache, fetchMsg, loadMsgs). A record still in the write buffer is
served from it. A written one is read with one pread and checked, unless its block is being
read in order: a read that ends past the end of the block's last read and starts at most
READ_GAP bytes after it (a consumer, filtered or not), with at least READ_AHEAD_FLOOR
written bytes after its record (not a consumer right behind the writer), reads a chunk of
the block from its record on (16 KiB, then twice the size of the chunk before, up to
256 KiB; never past the written bytes), and the reads after it are served from the chunk
without a syscall; each record is checked on its first read from the chunk only (a filtered
consumer does not pay for the records it skips; a second consumer reading the same records
checks none), and a bad one is reported lost exactly as without the cache. A lone read (a KV
get, a redelivery) reads only its record. A block keeps one chunk, a store at most
READ_CHUNKS (1 MiB), and a chunk not read for READ_CACHE_EXPIRE seconds (Go's 5 s) goes
within twice that. Bytes of a block change in place only through an erase, a compaction's
rewrite or a truncation, and a block's file only goes away by removal or purge: each drops
the block's chunk (an erased record's bytes leave memory too), as do stop and delete. Go
caches whole blocks (up to 8 MiB) and checks each record on its first read.

Removals append DEL records to the last block. A block whose messages are all removed is
deleted once no other block needs its tombstones; a sparse one is rewritten with only what
is still needed (the compactor greenlet).

Durability. With `sync_interval="always"` (the default) store_msg returns only after its
record is on disk. Records are appended to a buffer and written to the block with one
write when the hub's pass ends (or before the sync that must cover them), then synced in
rounds: one round at a time, its fdatasyncs run by the kernel (Linux AIO) or in a thread
of the store's own (datasync.py) so the hub keeps running, and every write made while a
round runs is covered by the next one (group commit; `fsyncs` counts the rounds). A round starts from
the hub's callbacks, after every greenlet that was ready ran, so writers woken by the
last round join the next. A caller that must not wait (a connection's readloop) stores
with `wait=False` and is called back by `on_synced`, from the hub, after the fsync that
covers its message. A process crash loses only the records of the hub's pass it
interrupted, none of them acknowledged. With `sync_interval=<seconds>` a greenlet syncs
that often and store_msg returns at once: a power failure or kernel crash loses what was
acknowledged since the last sync, which is the Go server's behaviour (it syncs every two
minutes by default).
"""
from __future__ import annotations

import bisect
import errno
import logging
import os
import shutil
import struct
import zlib

import gevent
import gevent.event
import msgpack
import snappy

from gnatsd.hub import run_blocking
from gnatsd.fs.datasync import new_syncer
from gnatsd.fs.store import (
    FILE_STORAGE, LIMITS_POLICY, BaseConsumerStore, ConsumerState, ErrStoreClosed, ErrStoreMsgNotFound,
    ErrStoreSnapshotInProgress, ErrStoreWrongType, ErrMsgTooLarge, IndexedStore, LostStreamData, SequencePair,
    SnapshotFiles, StoreError, StoreMsg,
)

log = logging.getLogger("gnatsd")

HDR = struct.Struct("<IBQqHI")  # rlen, kind, seq, ts, slen, hlen
CRC = struct.Struct("<I")
HDR_SIZE = HDR.size
REC_OVERHEAD = HDR_SIZE + CRC.size
CRC_RESIDUE = 0x2144DF1C  # zlib.crc32(data + CRC.pack(zlib.crc32(data))) for any data
MAX_RECORD = 1 << 31

REC_MSG = 1
REC_SKIP = 2
REC_DEL = 3
REC_ERASED = 4
REC_MSG_S2 = 5
KINDS = (REC_MSG, REC_SKIP, REC_DEL, REC_ERASED, REC_MSG_S2)
MSG_KINDS = (REC_MSG, REC_MSG_S2)
S2_MIN = 64  # messages (headers + payload) shorter than this are not compressed

DEFAULT_LARGE_BLOCK_SIZE = 8 * 1024 * 1024  # Go: defaultLargeBlockSize
DEFAULT_MEDIUM_BLOCK_SIZE = 4 * 1024 * 1024  # Go: defaultMediumBlockSize
FILE_STORE_MIN_BLK_SIZE = 32 * 1000  # Go: FileStoreMinBlkSize
FILE_STORE_MAX_BLK_SIZE = DEFAULT_LARGE_BLOCK_SIZE  # Go: FileStoreMaxBlkSize
PREALLOC = 1 << 20  # bytes a block's file is extended by ahead of its writes
MAX_PENDING_WRITE = 1 << 20  # buffered record bytes written at once, without waiting for the pass to end
READ_AHEAD_MIN = 16 * 1024  # the first chunk read ahead from a block read in order, then twice
READ_AHEAD = 256 * 1024  # ... the size of the one before up to this
READ_GAP = 4096  # a read at most this far after the last one of its block reads ahead...
READ_AHEAD_FLOOR = 4096  # ... when at least this many written bytes follow its record
READ_CHUNKS = 4  # chunks a store keeps (one per block), the least recently made dropped first
READ_CACHE_EXPIRE = 5.0  # Go: defaultCacheBufferExpiration; a chunk not read for this long goes
CONSUMER_STATE_MIN_INTERVAL = 0.1  # Go: consumerFileStore.flushLoop's minTime
COMPACT_MINIMUM = 64 * 1024  # rewrite a block under 25 % live (Go's rule) only past this size (or half a block)
SNAP_MAGIC = b"GNIX"
SNAP_VERSION = 3  # 2 and 3: msgs entries carry the size a message counts for
OBS_MAGIC = b"GNCS"
OBS_VERSION = 1
MSGS_DIR = "msgs"
OBS_DIR = "obs"
STREAM_META_FILE = "meta.inf"  # Go: JetStreamMetaFile; written by gnatsd/js/stream.py
STREAM_META_SUM = "meta.sum"  # Go: JetStreamMetaFileSum
SNAP_FILE = "index.snap"
BLK_SUFFIX = ".blk"


class FileStoreConfig:
    """Go: FileStoreConfig. `block_size` 0 picks one from the stream's limits (Go:
    dynBlkSize). `sync_interval`: "always" (or None) for fsync before returning from
    store_msg, else seconds between syncs (faster, loses acknowledged data on power
    failure)."""

    def __init__(self, store_dir, block_size=0, sync_interval="always"):
        self.store_dir = store_dir
        self.block_size = block_size
        self.sync_interval = sync_interval


def dyn_blk_size(retention, max_bytes):
    """Go: dynBlkSize, as 2.9.10 has it (a size between the bounds gives the medium one)."""
    if max_bytes > 0:
        blk_size = max_bytes // 4 + 1
        if blk_size % 100:
            blk_size += 100 - blk_size % 100
        if blk_size <= FILE_STORE_MIN_BLK_SIZE:
            return FILE_STORE_MIN_BLK_SIZE
        if blk_size >= FILE_STORE_MAX_BLK_SIZE:
            return FILE_STORE_MAX_BLK_SIZE
        return DEFAULT_MEDIUM_BLOCK_SIZE
    return DEFAULT_LARGE_BLOCK_SIZE if retention == LIMITS_POLICY else DEFAULT_MEDIUM_BLOCK_SIZE


def _write_atomic(path, data):
    """Write, sync and rename into place. Runs in a pool thread."""
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.rename(tmp, path)
    dfd = os.open(os.path.dirname(path) or ".", os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _write_all(fd, data, off=None):
    """Write all of `data` (at `off` if given: appends name their offset, so the file
    position never matters)."""
    if off is None:
        n = os.write(fd, data)
        while n < len(data):
            n += os.write(fd, memoryview(data)[n:])
    else:
        n = os.pwrite(fd, data, off)
        while n < len(data):
            n += os.pwrite(fd, memoryview(data)[n:], off + n)


def _pack_checked(magic, obj):
    body = msgpack.packb(obj, use_bin_type=True)
    return magic + body + CRC.pack(zlib.crc32(body))


def _unpack_checked(magic, data):
    """The object, or None if the magic or the checksum is wrong."""
    if len(data) < len(magic) + 4 or not data.startswith(magic):
        return None
    body = memoryview(data)[len(magic):-4]
    if zlib.crc32(body) != CRC.unpack_from(data, len(data) - 4)[0]:
        return None
    try:
        return msgpack.unpackb(body, raw=False, strict_map_key=False)
    except Exception:
        return None


class _Loc:
    """An index entry: where message `seq` lives; `sz`: the bytes it counts for (Go's)."""

    __slots__ = ("subj", "ts", "blk", "off", "rl", "sz")

    def __init__(self, subj, ts, blk, off, rl, sz):
        self.subj = subj
        self.ts = ts
        self.blk = blk
        self.off = off
        self.rl = rl
        self.sz = sz


def file_store_msg_size(slen, hlen, mlen):
    """Go: fileStoreMsgSize (22 bytes of record header, 4 for the headers' length when
    there are headers, an 8-byte hash): what a message counts for in stream bytes and
    max_bytes, whatever gnatsd's record takes."""
    return 22 + slen + (4 + hlen if hlen else 0) + mlen + 8


def _snappy_len(data):
    """The uncompressed length a snappy block starts with (a varint)."""
    n = shift = 0
    for b in data[:10]:
        n |= (b & 0x7F) << shift
        if b < 0x80:
            return n
        shift += 7
    return 0


class _MsgBlock:
    """Go: msgBlock. One block file and what the index knows about it."""

    __slots__ = ("index", "path", "fd", "size", "flushed", "alloc", "pend", "pend_offs", "last_off", "first",
                 "last", "live", "live_bytes", "dead", "refs", "compacting", "erased_while", "chunk",
                 "ra_next")

    def __init__(self, index, path, fd):
        self.index = index
        self.path = path
        self.fd = fd
        self.size = 0  # bytes in the block, where the next record goes
        self.flushed = 0  # bytes written to the file; the rest, size - flushed, is in pend
        self.alloc = 0  # the file's size: written bytes, then preallocated ones (zeros)
        self.pend = []  # records appended but not yet written (only in the last block): record, CRC, ...
        self.pend_offs = []  # the offset of each record in pend
        self.last_off = -1  # offset of the last record
        self.first = 0  # lowest and highest MSG sequence in the file
        self.last = 0
        self.live = 0  # MSG records still in the index
        self.live_bytes = 0
        self.dead = set()  # MSG records in this file whose message was removed
        self.refs = set()  # sequences of the DEL records in this file
        self.compacting = False
        self.erased_while = None  # sequences erased while the compactor ran
        self.chunk = None  # the _Chunk read ahead from the file (Go: cache)
        self.ra_next = 0  # the end of the last read from the file: a read near it reads ahead

    def buffered(self, off):
        """The record at offset `off`, with its CRC, not yet written."""
        i = bisect.bisect_left(self.pend_offs, off)
        return self.pend[2 * i] + self.pend[2 * i + 1]

    def note_msg(self, seq, off, rl):
        if not self.first:
            self.first = seq
        self.last = seq
        self.live += 1
        self.live_bytes += rl


class _Chunk:
    """Go: cache (msgBlock.cache). Bytes [start, end) of a block's file, read at once.
    `checked[(off - start) // REC_OVERHEAD]` is set once the record at `off` passed its CRC
    check (Go: the hash-checked bit of cacheLookup); records are at least REC_OVERHEAD bytes
    long, so each has its own slot."""

    __slots__ = ("blk", "start", "end", "buf", "checked", "used")

    def __init__(self, blk, start, buf):
        self.blk = blk
        self.start = start
        self.end = start + len(buf)
        self.buf = buf
        self.checked = bytearray(len(buf) // REC_OVERHEAD + 1)
        self.used = True  # read since the expiry timer last looked


class _SyncRound:
    """One group-commit round: the fsyncs that put every write up to `target` on disk."""

    __slots__ = ("target", "ev", "err", "blocks", "dir_dirty", "gone")

    def __init__(self):
        self.target = 0  # the write generation it covers, set when it begins
        self.ev = None  # an Event, made when a greenlet waits for the round
        self.err = None  # the OSError it failed with
        self.blocks = []
        self.dir_dirty = False
        self.gone = []


class FileStore(IndexedStore):
    """Go: fileStore."""

    storage_type = FILE_STORAGE

    def __init__(self, fcfg, cfg):
        if cfg is not None and cfg.storage != FILE_STORAGE:
            raise ErrStoreWrongType("fileStore requires file storage type in config")
        super().__init__(cfg)
        self.fcfg = fcfg
        self.block_size = fcfg.block_size if fcfg.block_size > 0 else dyn_blk_size(cfg.retention, cfg.max_bytes)
        self._compact_min = min(COMPACT_MINIMUM, self.block_size // 2)
        si = fcfg.sync_interval
        self._sync_always = si is None or si == "always"
        self.fsyncs = 0  # group-commit rounds done (each syncs every dirty block once)
        self._wgen = 0  # writes done
        self._synced_gen = 0  # writes covered by a finished sync
        self._round = None  # the _SyncRound whose fsyncs run now
        self._pending = None  # the _SyncRound that begins next (writers wait on it)
        self._sync_cbs = []  # (write generation, cb, args) for on_synced, in order
        self._unsynced = []  # rolled blocks written since the last sync
        self._dir_dirty = False
        self._gone_unsynced = []  # deleted blocks whose unlink no sync has covered yet
        self._close_later = []
        self._blks = []
        self._last_index = 0
        self._lmb = None
        self._compact_q = []
        self._compactor = None
        self._chunks = []  # the blocks' read-ahead _Chunks, the last made first
        self._chunk_timer = None
        self._flusher = None
        self._consumer_stores = []
        self._snapshotting = False
        self._flush_soon = False  # a _flush_writes_soon callback is queued
        self._prealloc = hasattr(os, "posix_fallocate")
        self._syncer = new_syncer()  # runs the rounds' fdatasyncs
        self._hub = gevent.get_hub()
        self._dir = fcfg.store_dir
        self._mdir = os.path.join(self._dir, MSGS_DIR)
        os.makedirs(self._mdir, exist_ok=True)
        os.makedirs(os.path.join(self._dir, OBS_DIR), exist_ok=True)
        self._dfd = os.open(self._mdir, os.O_RDONLY)
        self._recover()
        if not self._sync_always:
            self._flusher = gevent.spawn(self._flush_loop, float(si))

    # -- recovery ------------------------------------------------------------------------------

    def _recover(self):
        """Go: recoverMsgs. Rebuild the index from the snapshot or by scanning the blocks."""
        names = []
        for name in os.listdir(self._mdir):
            if name.endswith(BLK_SUFFIX) and name[:-len(BLK_SUFFIX)].isdigit():
                names.append(int(name[:-len(BLK_SUFFIX)]))
            elif name.endswith(".tmp"):
                os.unlink(os.path.join(self._mdir, name))
        names.sort()
        self._last_index = names[-1] if names else 0
        for index in names:
            path = self._blk_path(index)
            self._blks.append(_MsgBlock(index, path, os.open(path, os.O_RDWR)))
        snap_path = os.path.join(self._dir, SNAP_FILE)
        loaded = False
        if os.path.exists(snap_path):
            with open(snap_path, "rb") as f:
                data = f.read()
            loaded = self._load_snapshot(data)
            if not loaded:
                log.warning("Filestore [%s] index snapshot is damaged or does not match the blocks, "
                            "rebuilding from the blocks", self.cfg.name)
            os.unlink(snap_path)
            self._fsync_dir(self._dir)
        if not loaded:
            self._scan_blocks()
        if not self._blks:
            self._new_block()
        else:
            self._lmb = self._blks[-1]
        self._clean_blocks()
        # Go: expireMsgsOnRecover and the limits: apply the config to what was found.
        cfg = self.cfg
        if cfg.max_msgs > 0:
            self._enforce_msg_limit()
        if cfg.max_bytes > 0:
            self._enforce_bytes_limit()
        if cfg.max_msgs_per_subject > 0:
            for psi in list(self._fss.values()):
                if psi.count() > cfg.max_msgs_per_subject:
                    self._enforce_per_subject_limit(psi, cfg.max_msgs_per_subject)
        if cfg.max_age > 0:
            self.expire_msgs()

    @staticmethod
    def _fsync_dir(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _blk_path(self, index):
        return os.path.join(self._mdir, f"{index}{BLK_SUFFIX}")

    def _scan_blocks(self):
        """Go: rebuildState for every block: read each record and check it."""
        entries = {}
        deleted = set()
        subjects = {}
        last_seq = last_ts = 0
        lost_seqs = []
        lost_bytes = 0
        lost_from = -1  # a bad region was seen; sequences after this one until the next good are lost
        nblks = len(self._blks)
        for bi, blk in enumerate(self._blks):
            with open(blk.path, "rb") as f:
                buf = f.read()
            end = len(buf)
            off = 0
            while off < end:
                good = self._record_ok(buf, off, end)
                if not good and buf.count(0, off) == end - off:
                    # Nothing but zeros to the end: space preallocated and not written
                    # yet (a crash before the stop that trims it), or a zeroed tail.
                    log.debug("Filestore [%s] block %s: %d zero bytes after the last record, truncating "
                              "%d bytes", self.cfg.name, blk.index, end - off, end - off)
                    os.ftruncate(blk.fd, off)
                    end = off
                    break
                if not good:
                    nxt = self._resync(buf, off + 1, end)
                    if nxt < 0 and bi == nblks - 1:
                        log.warning("Filestore [%s] block %s: torn or corrupt record at offset %d at the "
                                    "tail, truncating %d bytes", self.cfg.name, blk.index, off, end - off)
                        os.ftruncate(blk.fd, off)
                        os.fsync(blk.fd)
                        end = off
                        break
                    stop = nxt if nxt >= 0 else end
                    log.error("Filestore [%s] block %s: corrupt data at offset %d (%d bytes), "
                              "messages in it are lost", self.cfg.name, blk.index, off, stop - off)
                    lost_bytes += stop - off
                    if lost_from < 0:
                        lost_from = max(last_seq, lost_seqs[-1] if lost_seqs else 0)
                    off = stop
                    continue
                rl, kind, seq, ts, slen, hlen = HDR.unpack_from(buf, off)
                if kind in MSG_KINDS or kind == REC_SKIP:
                    if lost_from >= 0:
                        lost_seqs.extend(range(lost_from + 1, seq))
                        lost_from = -1
                if kind in MSG_KINDS:
                    p = off + HDR_SIZE
                    subj = buf[p:p + slen]
                    subj = subjects.setdefault(subj, subj)
                    if kind == REC_MSG:
                        sz = file_store_msg_size(slen, hlen, rl - REC_OVERHEAD - slen - hlen)
                    else:
                        p += slen
                        sz = file_store_msg_size(slen, _snappy_len(buf[p:p + hlen]) if hlen else 0,
                                                 _snappy_len(buf[p + hlen:off + rl - CRC.size]))
                    entries[seq] = _Loc(subj, ts, blk, off, rl, sz)
                    blk.note_msg(seq, off, rl)
                elif kind == REC_DEL:
                    deleted.add(seq)
                    blk.refs.add(seq)
                if kind != REC_DEL and seq >= last_seq:
                    last_seq, last_ts = seq, ts
                blk.last_off = off
                off += rl
            blk.size = blk.flushed = blk.alloc = end
        for seq in deleted:
            loc = entries.pop(seq, None)
            if loc is not None:
                loc.blk.live -= 1
                loc.blk.live_bytes -= loc.rl
                loc.blk.dead.add(seq)
        self._install_index(entries, last_seq, last_ts)
        if lost_bytes:
            self._lost = LostStreamData(lost_seqs, lost_bytes)

    @staticmethod
    def _record_ok(buf, off, end):
        if end - off < REC_OVERHEAD:
            return False
        rl, kind, seq, ts, slen, hlen = HDR.unpack_from(buf, off)
        if rl < REC_OVERHEAD or off + rl > end or kind not in KINDS or REC_OVERHEAD + slen + hlen > rl:
            return False
        return zlib.crc32(memoryview(buf)[off:off + rl]) == CRC_RESIDUE

    def _resync(self, buf, off, end):
        """The offset of the next good record at or after `off`, or -1."""
        while off <= end - REC_OVERHEAD:
            if self._record_ok(buf, off, end):
                return off
            off += 1
        return -1

    def _load_snapshot(self, data):
        """Take the index from index.snap if it is intact and matches the blocks."""
        snap = _unpack_checked(SNAP_MAGIC, data)
        if not isinstance(snap, dict) or snap.get("v") != SNAP_VERSION:
            return False
        try:
            blocks = {b[0]: b for b in snap["blocks"]}
            if sorted(blocks) != [b.index for b in self._blks]:
                return False
            for blk in self._blks:
                _, size, last_off = blocks[blk.index]
                if os.fstat(blk.fd).st_size != size:
                    return False
                if last_off >= 0:
                    head = os.pread(blk.fd, size - last_off, last_off)
                    if not self._record_ok(head, 0, len(head)) or HDR.unpack_from(head)[0] != size - last_off:
                        return False
                blk.size, blk.flushed, blk.alloc, blk.last_off = size, size, size, last_off
            bim = {b.index: b for b in self._blks}
            subjects = snap["subjects"]
            flat = snap["msgs"]
            entries = {}
            for i in range(0, len(flat), 7):
                seq, bi, off, rl, si, ts, sz = flat[i:i + 7]
                blk = bim[bi]
                entries[seq] = _Loc(subjects[si], ts, blk, off, rl, sz)
                blk.note_msg(seq, off, rl)
            for bi, seqs in snap["dead"].items():
                bim[bi].dead.update(seqs)
            for bi, seqs in snap["refs"].items():
                bim[bi].refs.update(seqs)
            for bi, (first, last) in snap["ranges"].items():
                bim[bi].first, bim[bi].last = first, last
            last_seq, last_ts = snap["last"]
            lost = snap["lost"]
        except (KeyError, TypeError, ValueError, IndexError, OSError):
            for blk in self._blks:
                blk.first = blk.last = blk.live = blk.live_bytes = 0
                blk.dead.clear()
                blk.refs.clear()
            return False
        self._install_index(entries, last_seq, last_ts)
        if lost is not None:
            self._lost = LostStreamData(lost[0], lost[1])
        return True

    def _write_snapshot(self):
        subjects = list(self._fss)
        sidx = {s: i for i, s in enumerate(subjects)}
        flat = []
        for seq, loc in self._msgs.items():
            flat.extend((seq, loc.blk.index, loc.off, loc.rl, sidx[loc.subj], loc.ts, loc.sz))
        snap = {
            "v": SNAP_VERSION,
            "blocks": [[b.index, b.size, b.last_off] for b in self._blks],
            "ranges": {b.index: [b.first, b.last] for b in self._blks},
            "dead": {b.index: list(b.dead) for b in self._blks if b.dead},
            "refs": {b.index: list(b.refs) for b in self._blks if b.refs},
            "subjects": subjects,
            "msgs": flat,
            "last": [self._last_seq, self._last_ts],
            "lost": [self._lost.msgs, self._lost.bytes] if self._lost else None,
        }
        run_blocking(_write_atomic, os.path.join(self._dir, SNAP_FILE), _pack_checked(SNAP_MAGIC, snap))

    # -- writing -------------------------------------------------------------------------------

    def _new_block(self):
        """Go: newMsgBlockForWrite. The last block's buffered records are written first,
        and the space preallocated after them given back."""
        self._flush_writes()
        self._trim(self._lmb)
        self._last_index += 1
        index = self._last_index
        path = self._blk_path(index)
        blk = _MsgBlock(index, path, os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o640))
        if self._lmb is not None:
            self._unsynced.append(self._lmb)
        self._blks.append(blk)
        self._lmb = blk
        self._dir_dirty = True
        return blk

    def _append(self, blk, rec):
        """Append record `rec` (without its CRC) to the last block, `blk`. Buffered: the
        records stored in one pass of the hub go to the file with one write, before the
        sync that covers them (_flush_writes). Returns the record's offset."""
        off = blk.size
        pend = blk.pend
        pend.append(rec)
        pend.append(CRC.pack(zlib.crc32(rec)))
        blk.pend_offs.append(off)
        blk.size = off + len(rec) + CRC.size
        blk.last_off = off
        self._wgen += 1
        if blk.size - blk.flushed > MAX_PENDING_WRITE:
            self._try_flush()
        elif not self._flush_soon:
            self._flush_soon = True
            self._hub.loop.run_callback(self._flush_writes_soon)
        return off

    def _flush_writes(self):
        """Write the last block's buffered records with one write. On an error (disk full)
        the file is cut back and the records stay buffered for the next try; the sync
        that should have covered them fails, so none of them is acknowledged. Does not
        yield."""
        blk = self._lmb
        if blk is None or not blk.pend or blk.fd < 0:
            return
        data = b"".join(blk.pend)
        try:
            if blk.size > blk.alloc and self._prealloc:
                self._preallocate(blk)
            _write_all(blk.fd, data, blk.flushed)
        except OSError:
            try:
                os.ftruncate(blk.fd, blk.flushed)
            except OSError:
                pass
            raise
        blk.flushed = blk.size
        blk.pend = []
        blk.pend_offs = []

    def _preallocate(self, blk):
        """Extend the block's file by PREALLOC bytes (up to the block size) before writing
        into it: an fdatasync after writes within the file's size need not commit a new
        size to the file system's journal (on ext4 here: 0.11 ms instead of 0.17 ms). The
        zeros after the last record are trimmed when the block is rolled or the store
        stops, and skipped by a scan after a crash."""
        want = max(blk.size, min(blk.alloc + PREALLOC, self.block_size))
        try:
            os.posix_fallocate(blk.fd, blk.alloc, want - blk.alloc)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise
            self._prealloc = False  # not supported here: plain appends
            return
        blk.alloc = want

    def _trim(self, blk):
        """Give back the preallocated space after the block's last record."""
        if blk is not None and blk.alloc > blk.size and blk.fd >= 0:
            os.ftruncate(blk.fd, blk.size)
            blk.alloc = blk.size

    def _flush_writes_soon(self):
        """The hub's callback after a pass that stored something: the records reach the
        page cache even when no sync is waiting (a process crash loses none of them)."""
        self._flush_soon = False
        if not self._closed:
            self._try_flush()

    def _try_flush(self):
        """_flush_writes, an error logged: the records stay buffered and the sync that
        must cover them fails."""
        try:
            self._flush_writes()
        except OSError as e:
            log.error("Filestore [%s] write failed: %s", self.cfg.name, e)

    def _write_msg(self, seq, ts, subj, hdr, msg):
        """Go: writeMsgRecord. Does not yield."""
        slen = len(subj)
        rl = REC_OVERHEAD + slen + len(hdr) + len(msg)
        if slen > 0xFFFF or rl >= MAX_RECORD:
            raise ErrMsgTooLarge()
        sz = file_store_msg_size(slen, len(hdr), len(msg))
        kind = REC_MSG
        if self.cfg.compression == "s2" and len(hdr) + len(msg) >= S2_MIN:
            chdr = snappy.compress(hdr) if hdr else b""
            cmsg = snappy.compress(msg)
            if len(chdr) + len(cmsg) < len(hdr) + len(msg):
                kind, hdr, msg = REC_MSG_S2, chdr, cmsg
                rl = REC_OVERHEAD + slen + len(hdr) + len(msg)
        blk = self._lmb
        if blk.size and blk.size + rl > self.block_size:
            blk = self._new_block()
        off = self._append(blk, HDR.pack(rl, kind, seq, ts, slen, len(hdr)) + subj + hdr + msg)
        blk.note_msg(seq, off, rl)
        return _Loc(subj, ts, blk, off, rl, sz)

    def _write_marker(self, kind, seq, ts, roll):
        blk = self._lmb
        if roll and blk.size and blk.size + REC_OVERHEAD > self.block_size:
            blk = self._new_block()
        self._append(blk, HDR.pack(REC_OVERHEAD, kind, seq, ts, 0, 0))
        return blk

    def _tombstone(self, seq):
        # A DEL never rolls the block: the last block always holds the record of the last
        # sequence, which is how a restart finds it.
        try:
            self._write_marker(REC_DEL, seq, 0, False).refs.add(seq)
        except OSError as e:
            log.error("Filestore [%s] could not write the removal of message %d: %s", self.cfg.name, seq, e)

    def _entry_size(self, loc):
        return loc.sz

    def _load(self, seq, loc):
        """Go: msgForSeq (fetchMsg, cacheLookup). Read and check the record; a bad one is
        reported lost, not served. A record not yet written comes from the write buffer; a
        written one from its block's read-ahead chunk when it is in it or is read in order
        after the last read from the block (_read_ahead), else with one pread."""
        blk = loc.blk
        off = loc.off
        rl = loc.rl
        written = off < blk.flushed
        c = blk.chunk if written else None
        if written and (c is None or off < c.start or off + rl > c.end):
            ra = blk.ra_next
            if (ra < off + rl and off <= ra + READ_GAP and rl < READ_AHEAD
                    and blk.flushed - off >= READ_AHEAD_FLOOR):
                c = self._read_ahead(blk, off, rl)
            else:  # a lone read (a KV get, a redelivery, right behind the writer): its record
                c = None
                blk.ra_next = off + rl
        if c is not None:
            c.used = True
            buf = c.buf
            i = off - c.start
            ok = c.checked[i // REC_OVERHEAD]
            if not ok and zlib.crc32(memoryview(buf)[i:i + rl]) == CRC_RESIDUE:
                ok = c.checked[i // REC_OVERHEAD] = 1
        else:
            buf = os.pread(blk.fd, rl, off) if written else blk.buffered(off)
            i = 0
            ok = len(buf) == rl and zlib.crc32(buf) == CRC_RESIDUE
        if ok:
            rlen, kind, rseq, ts, slen, hlen = HDR.unpack_from(buf, i)
            if rseq == seq and rlen == rl:
                p = i + HDR_SIZE + slen
                q = p + hlen
                end = i + rl - CRC.size
                if kind == REC_MSG:
                    return StoreMsg(loc.subj, buf[p:q], buf[q:end], seq, ts)
                if kind == REC_MSG_S2:
                    try:
                        hdr = snappy.decompress(buf[p:q]) if hlen else b""
                        return StoreMsg(loc.subj, hdr, snappy.decompress(buf[q:end]), seq, ts)
                    except Exception:  # noqa: BLE001 - the codec's errors: reported lost below
                        pass
        log.error("Filestore [%s] message %d in block %s is corrupt, marking it lost",
                  self.cfg.name, seq, loc.blk.index)
        if self._lost is None:
            self._lost = LostStreamData()
        self._lost.msgs.append(seq)
        self._lost.bytes += loc.rl
        self._remove_msg(seq, False)
        raise ErrStoreMsgNotFound()

    # -- the read cache ------------------------------------------------------------------------

    def _read_ahead(self, blk, off, rl):
        """Go: loadMsgs, for a part of the block. Called by _load for a read of the record
        at `off` (`rl` bytes) that looks like reading in order (a consumer): it ends past
        the end of the last read from the block's file, starts at most READ_GAP bytes after
        it, and at least READ_AHEAD_FLOOR written bytes follow it (right behind the writer
        a chunk would hold a record or two and save nothing). Reads the written bytes from
        `off` into the block's chunk (READ_AHEAD_MIN bytes, or twice as many as the chunk it
        replaces when the reads went on past that one, up to READ_AHEAD, as the kernel's
        read-ahead grows), which serves the reads after it. Does not yield."""
        prev = blk.chunk
        if prev is None or off < prev.start:
            size = READ_AHEAD_MIN
        else:
            size = min(2 * (prev.end - prev.start), READ_AHEAD)
        buf = os.pread(blk.fd, min(max(size, rl), blk.flushed - off), off)
        c = _Chunk(blk, off, buf)
        blk.ra_next = c.end
        chunks = self._chunks
        if prev is not None:
            chunks.remove(prev)
        blk.chunk = c
        chunks.insert(0, c)
        if len(chunks) > READ_CHUNKS:
            chunks.pop().blk.chunk = None
        if self._chunk_timer is None:
            self._chunk_timer = gevent.spawn_later(READ_CACHE_EXPIRE, self._expire_chunks)
        return c

    def _drop_chunk(self, blk):
        """Forget what was read ahead from `blk`: its bytes changed (an erase, a compaction,
        a truncation) or its file is gone."""
        if blk.chunk is not None:
            self._chunks.remove(blk.chunk)
            blk.chunk = None
        blk.ra_next = 0

    def _expire_chunks(self):
        """Go: expireCache. Runs READ_CACHE_EXPIRE seconds after the timer was armed: drops
        the chunks not read since it last ran (so a stream that stops reading holds none
        after two periods) and rearms while some are left."""
        self._chunk_timer = None
        keep = []
        for c in self._chunks:
            if c.used:
                c.used = False
                keep.append(c)
            else:
                c.blk.chunk = None
        self._chunks = keep
        if keep and not self._closed:
            self._chunk_timer = gevent.spawn_later(READ_CACHE_EXPIRE, self._expire_chunks)

    def _clear_read_cache(self):
        for c in self._chunks:
            c.blk.chunk = None
        self._chunks = []
        if self._chunk_timer is not None:
            self._chunk_timer.kill(block=False)
            self._chunk_timer = None

    def _removed(self, seq, loc, secure):
        blk = loc.blk
        blk.live -= 1
        blk.live_bytes -= loc.rl
        if secure:
            self._erase_record(blk, seq, loc)
        else:
            blk.dead.add(seq)
            self._tombstone(seq)
        if blk is not self._lmb:
            if blk.live == 0:
                self._clean_blocks()
            if blk.fd >= 0 and blk.size > self._compact_min and blk.live_bytes * 4 < blk.size:
                self._kick_compactor(blk)

    def _erase_record(self, blk, seq, loc):
        """Go: eraseMsg. Overwrite the record in place with random bytes under an ERASED
        header and a valid checksum; it needs no tombstone."""
        rl = loc.rl
        rec = HDR.pack(rl, REC_ERASED, seq, loc.ts, 0, 0) + os.urandom(rl - REC_OVERHEAD)
        if loc.off >= blk.flushed:
            self._flush_writes()
        os.pwrite(blk.fd, rec + CRC.pack(zlib.crc32(rec)), loc.off)
        self._drop_chunk(blk)  # nor may the erased bytes stay in memory
        self._wgen += 1
        if blk is not self._lmb and blk not in self._unsynced:
            self._unsynced.append(blk)
        if blk.compacting:
            blk.erased_while.add(seq)

    def _skipped(self, seq, ts):
        self._write_marker(REC_SKIP, seq, ts, True)

    def _bulk_removed(self, kind, seq, removed):
        if kind == "purge":
            for blk in self._blks:
                self._drop_block_file(blk)
            self._blks = []
            self._lmb = None
            self._unsynced = []
            self._new_block()
            if self._last_seq:
                self._write_marker(REC_SKIP, self._last_seq, self._last_ts, False)
            return
        for s, loc in removed:
            loc.blk.live -= 1
            loc.blk.live_bytes -= loc.rl
            loc.blk.dead.add(s)
        if kind == "compact":
            # Blocks wholly below `seq` go; removals elsewhere get tombstones.
            gone = set()
            for blk in list(self._blks):
                if blk is self._lmb or blk.live or blk.last >= seq:
                    break
                self._remove_block(blk)
                gone.add(blk)
            for s, loc in removed:
                if loc.blk not in gone:
                    self._tombstone(s)
            self._clean_blocks()
            return
        # truncate: cut the block holding `seq` after its record, drop the later blocks.
        loc = self._msgs.get(seq)
        if loc is None:  # truncate(0)
            self._bulk_removed("purge", seq, None)
            return
        keep = loc.blk
        while self._blks[-1] is not keep:
            self._remove_block(self._blks[-1])
        self._flush_writes()  # a no-op unless `keep` is the last block
        end = loc.off + loc.rl
        os.ftruncate(keep.fd, end)
        self._drop_chunk(keep)  # the cut part is written again
        keep.size = keep.flushed = keep.alloc = end
        keep.last_off = loc.off
        keep.last = seq
        keep.dead = {s for s in keep.dead if s <= seq}
        self._lmb = keep
        if keep in self._unsynced:
            self._unsynced.remove(keep)
        self._wgen += 1
        # Tombstones that were in the cut part are written again.
        for blk in self._blks:
            for s in sorted(blk.dead):
                self._tombstone(s)

    # -- blocks --------------------------------------------------------------------------------

    def _refs_needed(self, blk):
        """The tombstones in `blk` that still cover a removed message on disk elsewhere (a
        sequence's MSG record is in one block only, so its `dead` set says)."""
        refs = blk.refs
        needed = set()
        if refs:
            for o in self._blks + self._gone_unsynced:
                if o is not blk and o.dead:
                    small, big = (o.dead, refs) if len(o.dead) < len(refs) else (refs, o.dead)
                    needed.update(s for s in small if s in big)
        return needed

    def _clean_blocks(self):
        """Go: removeMsgBlock for emptied blocks. A block with no message left goes when its
        tombstones protect nothing; one that still protects something is rewritten to hold
        only those tombstones. A deleted block's records count as still on disk until a sync
        has made the deletion durable (`_gone_unsynced`), so a crash never brings back a
        block whose tombstones were deleted after it."""
        remove = []
        for blk in self._blks:
            if blk is self._lmb or blk.live or blk.compacting:
                continue
            needed = self._refs_needed(blk)
            if not needed:
                remove.append(blk)
            elif blk.dead or blk.size > len(needed) * REC_OVERHEAD:
                self._kick_compactor(blk)
        for blk in remove:
            self._remove_block(blk)

    def _remove_block(self, blk):
        self._blks.remove(blk)
        if blk in self._unsynced:
            self._unsynced.remove(blk)
        self._drop_block_file(blk)

    def _drop_block_file(self, blk):
        self._close_fd(blk.fd)
        blk.fd = -1
        self._drop_chunk(blk)
        blk.pend = []
        blk.pend_offs = []
        if blk.dead:
            self._gone_unsynced.append(blk)
        try:
            os.unlink(blk.path)
        except FileNotFoundError:
            pass
        self._dir_dirty = True
        self._wgen += 1

    def _close_fd(self, fd):
        if fd < 0:
            return
        if self._round is not None:
            self._close_later.append(fd)  # a syncer thread may be syncing it (AIO keeps its own)
        else:
            os.close(fd)

    def _kick_compactor(self, blk):
        if blk not in self._compact_q:
            self._compact_q.append(blk)
        if self._compactor is None and not self._closed:
            self._compactor = gevent.spawn(self._compact_loop)

    def _compact_loop(self):
        """Runs in its own greenlet: rewrite the queued blocks."""
        try:
            while self._compact_q and not self._closed:
                blk = self._compact_q.pop(0)
                if blk.fd >= 0 and blk is not self._lmb:
                    try:
                        self._compact_block(blk)
                    except OSError as e:
                        log.error("Filestore [%s] compacting block %s failed: %s", self.cfg.name, blk.index, e)
        finally:
            self._compactor = None

    def _compact_block(self, blk):
        """Go: msgBlock.compact. Rewrite `blk` with its live messages and the tombstones still
        needed. May yield (the new file is synced in the thread pool); the swap after it
        does not, and accounts for what changed meanwhile."""
        with open(blk.path, "rb") as f:
            buf = f.read()
        needed = self._refs_needed(blk)
        out = []
        kept = {}  # seq -> new offset
        pos = 0
        last_kept = -1
        off = 0
        msgs = self._msgs
        while off < len(buf):
            if not self._record_ok(buf, off, len(buf)):
                return  # damaged (reported at start): left as it is
            rl, kind, seq, ts, slen, hlen = HDR.unpack_from(buf, off)
            keep = False
            if kind in MSG_KINDS:
                loc = msgs.get(seq)
                keep = loc is not None and loc.blk is blk
            elif kind == REC_DEL:
                keep = seq in needed
            if keep:
                out.append(buf[off:off + rl])
                if kind in MSG_KINDS:
                    kept[seq] = pos
                last_kept = pos
                pos += rl
            off += rl
        data = b"".join(out)
        size_before = blk.size
        blk.compacting = True
        blk.erased_while = set()
        try:
            run_blocking(_write_atomic_tmp, blk.path, data)
        finally:
            blk.compacting = False
        erased, blk.erased_while = blk.erased_while, None
        if blk.fd < 0 or blk.size != size_before or blk not in self._blks:
            unlink_quiet(blk.path + ".tmp")
            return
        # The swap: no yield from here on.
        os.rename(blk.path + ".tmp", blk.path)
        self._close_fd(blk.fd)
        blk.fd = os.open(blk.path, os.O_RDWR)
        self._drop_chunk(blk)
        blk.size = blk.flushed = blk.alloc = len(data)
        blk.dead = set()
        blk.refs = needed
        blk.first = blk.last = blk.live = blk.live_bytes = 0
        blk.last_off = last_kept
        for seq, noff in kept.items():
            loc = msgs.get(seq)
            if loc is not None and loc.blk is blk:
                loc.off = noff
                blk.note_msg(seq, noff, loc.rl)
            else:
                if not blk.first:
                    blk.first = seq
                blk.last = seq
                blk.dead.add(seq)
                if seq in erased:
                    # Erased meanwhile in the old file: erase again in the new one.
                    rl, _, _, ts, _, _ = HDR.unpack_from(data, noff)
                    self._erase_record(blk, seq, _Loc(b"", ts, blk, noff, rl, 0))
                    blk.dead.discard(seq)
        self._dir_dirty = True
        self._wgen += 1
        # The rename must be on disk before the tombstones it made useless are deleted.
        self._sync_wait(self._wgen)
        self._clean_blocks()

    # -- sync ----------------------------------------------------------------------------------

    def _sync_wait(self, gen):
        """Return once every write up to `gen` is on disk; raise the OSError of a sync that
        failed. May yield."""
        while self._synced_gen < gen:
            r = self._round
            if r is None or r.target < gen:
                r = self._next_round()
            if r.ev is None:
                r.ev = gevent.event.Event()
            r.ev.wait()
            if r.err is not None and self._synced_gen < gen:
                raise r.err

    def _next_round(self):
        """The round that begins after the one running (if any), made if needed."""
        r = self._pending
        if r is None:
            r = self._pending = _SyncRound()
            if self._round is None:
                self._hub.loop.run_callback(self._begin_round)
        return r

    def _begin_round(self):
        """Go: syncBlocks. The hub's callback: write what is buffered and hand the fsyncs
        of every block written since the last round to the syncer. Group commit:
        the round starts only when the hub has run every greenlet that was ready (writers
        woken by the last round append first and join it), and covers every write made
        until then; writers that come while it runs wait for the next one."""
        r = self._pending
        if r is None or self._round is not None:
            return
        self._pending = None
        if self._dfd < 0:  # stopped or deleted meanwhile
            r.err = ErrStoreClosed()
            if r.ev is not None:
                r.ev.set()
            return
        self._round = r
        r.target = self._wgen
        try:
            self._flush_writes()
        except OSError as e:
            self._round_done(None, e)
            return
        r.blocks, self._unsynced = self._unsynced, []
        fds = [b.fd for b in r.blocks if b.fd >= 0]
        if self._lmb is not None and self._lmb.fd >= 0:
            fds.append(self._lmb.fd)
        r.dir_dirty, self._dir_dirty = self._dir_dirty, False
        r.gone, self._gone_unsynced = self._gone_unsynced, []
        if r.dir_dirty:
            fds.append(self._dfd)
        self._syncer.sync(fds, self._round_done)

    def _round_done(self, _, err):
        """The hub's callback when the round's fsyncs are done (or failed with `err`).
        Does not yield."""
        r = self._round
        self._round = None
        for fd in self._close_later:
            os.close(fd)
        self._close_later = []
        if err is None:
            self._synced_gen = r.target
            self.fsyncs += 1
            if r.gone and not self._closed:
                self._clean_blocks()  # what those blocks' records pinned may go now
            cbs = self._sync_cbs
            if cbs and cbs[0][0] <= r.target:
                n = 1
                while n < len(cbs) and cbs[n][0] <= r.target:
                    n += 1
                self._fire_synced(n, None)
        else:
            log.error("Filestore [%s] sync failed: %s", self.cfg.name, err)
            self._unsynced = r.blocks + self._unsynced
            self._dir_dirty = self._dir_dirty or r.dir_dirty
            self._gone_unsynced = r.gone + self._gone_unsynced
            r.err = err
            self._fire_synced(len(self._sync_cbs), err)
        if r.ev is not None:
            r.ev.set()
        if self._pending is not None:
            self._hub.loop.run_callback(self._begin_round)

    def _wait_round(self):
        """Wait for the running round, if any, to end. May yield."""
        r = self._round
        if r is not None:
            if r.ev is None:
                r.ev = gevent.event.Event()
            r.ev.wait()

    def _synced(self):
        if self._sync_always:
            self._sync_wait(self._wgen)

    def _flush_loop(self, interval):
        """Go: syncBlocks on its timer. Runs in its own greenlet (sync_interval set)."""
        while not self._closed:
            gevent.sleep(interval)
            if self._synced_gen < self._wgen and not self._closed:
                try:
                    self._sync_wait(self._wgen)
                except OSError:
                    pass  # logged by the round

    def sync(self):
        """Put everything written so far on disk. May yield."""
        self._sync_wait(self._wgen)

    # -- the API calls that wait for the disk --------------------------------------------------

    def store_msg(self, subj, hdr, msg, wait=True):
        """Go: StoreMsg. With `wait` (and sync_interval "always") returns once the record is
        on disk. May yield."""
        seq, ts = IndexedStore.store_msg(self, subj, hdr, msg)
        if wait and self._sync_always:
            self._sync_wait(self._wgen)
        return seq, ts

    def store_raw_msg(self, subj, hdr, msg, seq, ts, wait=True):
        IndexedStore.store_raw_msg(self, subj, hdr, msg, seq, ts)
        if wait:
            self._synced()

    def on_synced(self, cb, *args):
        """cb(err, *args) from the hub after the fsync that covers every write made so
        far; at once with a lazy sync_interval."""
        if self._closed:
            cb(ErrStoreClosed(), *args)
            return
        if not self._sync_always or self._synced_gen >= self._wgen:
            cb(None, *args)
            return
        self._sync_cbs.append((self._wgen, cb, args))
        r = self._round
        if r is None or r.target < self._wgen:
            self._next_round()

    def _fire_synced(self, n, err):
        """Run the first `n` sync callbacks with `err`. Does not yield (callbacks must not)."""
        cbs = self._sync_cbs[:n]
        del self._sync_cbs[:n]
        for _, cb, args in cbs:
            try:
                cb(err, *args)
            except Exception:
                log.exception("Filestore [%s] sync callback failed", self.cfg.name)

    def skip_msg(self, wait=True):
        seq = IndexedStore.skip_msg(self)
        if wait:
            self._synced()
        return seq

    def skip_msgs(self, seq, num):
        IndexedStore.skip_msgs(self, seq, num)
        self._synced()

    def remove_msg(self, seq, wait=True):
        r = IndexedStore.remove_msg(self, seq)
        if wait:
            self._synced()
        return r

    def erase_msg(self, seq):
        """Go: EraseMsg. Always synced before returning, whatever sync_interval says."""
        r = IndexedStore.erase_msg(self, seq)
        self.sync()
        return r

    def purge(self):
        n = IndexedStore.purge(self)
        self._synced()
        return n

    def purge_ex(self, subject, seq, keep, wait=True):
        n = IndexedStore.purge_ex(self, subject, seq, keep)
        if wait:
            self._synced()
        return n

    def compact(self, seq):
        n = IndexedStore.compact(self, seq)
        self._synced()
        return n

    def truncate(self, seq):
        IndexedStore.truncate(self, seq)
        self._synced()

    # -- life cycle ----------------------------------------------------------------------------

    def consumer_store(self, name, cfg):
        """Go: ConsumerStore. State kept in obs/<name>/state."""
        if self._closed:
            raise ErrStoreClosed()
        if cfg is None or not name or "/" in name or "\\" in name or "\0" in name or name.startswith("."):
            raise ValueError("bad consumer config")
        o = ConsumerFileStore(self, name, cfg, os.path.join(self._dir, OBS_DIR, name))
        self.add_consumer(o)
        self._consumer_stores.append(o)
        return o

    def snapshot(self, check_msgs, include_consumers):
        """Go: Snapshot. One at a time; with `check_msgs`, refused while records are known
        to be damaged (Go: checkMsgs). The consumers' state is written first; then, without
        yielding, the meta files are read and every block is opened (a duplicate of its fd:
        a block rewritten or removed meanwhile stays readable) with its size now, so the
        snapshot is this moment of the stream. May yield."""
        if self._closed:
            raise ErrStoreClosed()
        if self._snapshotting:
            raise ErrStoreSnapshotInProgress()
        if check_msgs:
            lost = self.state().lost
            if lost is not None and lost.msgs:
                raise StoreError(f"snapshot check detected {len(lost.msgs)} bad messages")
        self._snapshotting = True
        try:
            if include_consumers:
                for o in list(self._consumer_stores):
                    o.flush()
            entries = []
            for name in (STREAM_META_FILE, STREAM_META_SUM):
                with open(os.path.join(self._dir, name), "rb") as f:
                    data = f.read()
                entries.append((name, data, -1, len(data)))
            if include_consumers:
                for o in self._consumer_stores:
                    for fname in sorted(os.listdir(o.odir)):
                        if fname.endswith(".tmp"):
                            continue
                        with open(os.path.join(o.odir, fname), "rb") as f:
                            data = f.read()
                        entries.append((f"{OBS_DIR}/{o.name}/{fname}", data, -1, len(data)))
            self._flush_writes()  # the buffered records: the archive reads the files
            for blk in self._blks:
                entries.append((f"{MSGS_DIR}/{os.path.basename(blk.path)}", None, os.dup(blk.fd), blk.size))
        except OSError as e:
            self._snapshotting = False
            raise StoreError(f"could not gather the stream's files: {e}") from None
        except BaseException:
            self._snapshotting = False
            raise

        def done():
            self._snapshotting = False
        return SnapshotFiles(entries, done)

    def remove_consumer(self, o):
        IndexedStore.remove_consumer(self, o)
        if o in self._consumer_stores:
            self._consumer_stores.remove(o)

    def stop(self):
        """Go: Stop. Sync, write the index snapshot, close. May yield."""
        if self._closed:
            return
        for o in list(self._consumer_stores):
            o.stop()
        self._cancel_age_chk()
        if self._flusher is not None:
            self._flusher.kill()
            self._flusher = None
        if self._compactor is not None:
            self._compactor.join()
        self._closed = True
        try:
            self._sync_wait(self._wgen)
            self._wait_round()  # a round for nothing new may still run
            self._trim(self._lmb)
            self._write_snapshot()
        except OSError as e:
            log.error("Filestore [%s] stop: %s", self.cfg.name, e)
        self._clear_read_cache()
        for blk in self._blks:
            self._close_fd(blk.fd)
            blk.fd = -1
        os.close(self._dfd)
        self._dfd = -1
        self._syncer.close()

    def delete(self):
        """Go: Delete. Stop and remove the stream's directory."""
        if not self._closed:
            for o in list(self._consumer_stores):
                o.stop()
            self._cancel_age_chk()
            if self._flusher is not None:
                self._flusher.kill()
            if self._compactor is not None:
                self._compact_q = []
                self._compactor.join()
            self._closed = True
            self._wait_round()
            self._clear_read_cache()
            for blk in self._blks:
                self._close_fd(blk.fd)
                blk.fd = -1
            os.close(self._dfd)
            self._dfd = -1
            self._syncer.close()
            self._synced_gen = self._wgen  # writers still waiting: their stream is gone
            self._fire_synced(len(self._sync_cbs), ErrStoreClosed())
        self._report_bulk(len(self._msgs), self._bytes)
        self._msgs = {}
        self._fss = {}
        shutil.rmtree(self._dir, ignore_errors=True)


def _write_atomic_tmp(path, data):
    """Write `path`.tmp and sync it; the caller renames. Runs in a pool thread."""
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def unlink_quiet(path):
    """Remove `path` if it is there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ConsumerFileStore(BaseConsumerStore):
    """Go: consumerFileStore. The state is written after changes by a flusher greenlet
    (atomically: a temporary file, synced, renamed), as msgpack with a version and a CRC-32,
    at most about ten times a second under load, as Go's flusher (its minTime). A crash can
    lose the last acknowledgements, which means redeliveries, never lost messages."""

    storage_type = FILE_STORAGE

    def __init__(self, fs, name, cfg, odir):
        super().__init__(fs, name, cfg)
        self.odir = odir
        self.path = os.path.join(odir, "state")
        self._dirty = False
        self._flusher = None
        self._hurry = gevent.event.Event()  # flush(): write now, do not wait out the interval
        self._had_state = False
        os.makedirs(odir, exist_ok=True)
        if os.path.exists(self.path):
            with open(self.path, "rb") as f:
                data = f.read()
            st = decode_consumer_state(data)
            if st is None:
                log.warning("Filestore [%s] consumer %r state is corrupt, starting over",
                            fs.cfg.name, name)
            else:
                self._state = st
                self._had_state = True

    def has_state(self):
        """Go: HasState."""
        return self._had_state

    def _changed(self):
        self._dirty = True
        if self._flusher is None and not self._closed:
            self._flusher = gevent.spawn(self._flush_loop)

    def _flush_loop(self):
        """Runs in its own greenlet while there are changes to write."""
        try:
            while self._dirty:
                self._dirty = False
                run_blocking(_write_atomic, self.path, encode_consumer_state(self._state))
                self._hurry.wait(CONSUMER_STATE_MIN_INTERVAL)
        except OSError as e:
            log.error("Filestore consumer %r: writing state failed: %s", self.name, e)
        finally:
            self._flusher = None

    def flush(self):
        """Write pending changes now. May yield."""
        if self._flusher is not None:
            self._hurry.set()
            self._flusher.join()
            self._hurry.clear()
        if self._dirty:
            self._dirty = False
            run_blocking(_write_atomic, self.path, encode_consumer_state(self._state))

    def stop(self):
        """Go: Stop. Writes what is pending. May yield."""
        if self._closed:
            return
        self.flush()
        BaseConsumerStore.stop(self)

    def delete(self):
        """Go: Delete. Stop and remove the state."""
        self._dirty = False
        if self._flusher is not None:
            self._hurry.set()
            self._flusher.join()  # a write under way ends before the directory goes
        BaseConsumerStore.stop(self)
        shutil.rmtree(self.odir, ignore_errors=True)

    def stream_delete(self):
        self.delete()


def encode_consumer_state(st):
    """Go: encodeConsumerState, in gnatsd's format: msgpack, versioned, with a CRC-32."""
    pending = []
    for sseq, (dseq, ts) in st.pending.items():
        pending.extend((sseq, dseq, ts))
    redelivered = []
    for sseq, dc in st.redelivered.items():
        redelivered.extend((sseq, dc))
    return _pack_checked(OBS_MAGIC, [OBS_VERSION, st.delivered.consumer, st.delivered.stream,
                                     st.ack_floor.consumer, st.ack_floor.stream, pending, redelivered])


def decode_consumer_state(data):
    """Go: decodeConsumerState. None if the data is damaged or of another version."""
    obj = _unpack_checked(OBS_MAGIC, data)
    if not isinstance(obj, list) or len(obj) != 7 or obj[0] != OBS_VERSION:
        return None
    _, dc, ds, ac, as_, pending, redelivered = obj
    try:
        return ConsumerState(SequencePair(dc, ds), SequencePair(ac, as_),
                             {pending[i]: (pending[i + 1], pending[i + 2]) for i in range(0, len(pending), 3)},
                             {redelivered[i]: redelivered[i + 1] for i in range(0, len(redelivered), 2)})
    except (TypeError, IndexError):
        return None
