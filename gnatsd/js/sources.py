"""Mirrors and sources: a stream that copies another stream of the same account.

Ports the mirror and source half of nats-server `server/stream.go` as 2.9.10 has it
(sourceInfo, processInboundMirrorMsg, processInboundSourceMsg, skipMsgs, genSourceHeader,
streamAndSeq, startingSequenceForSources, setSourceConsumer's choice of where to start,
sourceInfo/mirrorInfo), with 2.10's subject_transforms on a mirror or source.

How the messages travel differs from Go, without a difference a client can see. Go creates
an internal push consumer on the origin stream (flow control, heartbeats every second, a new
consumer after a stall) and feeds what it delivers to processJetStreamMsg. On one server
gnatsd reads the origin's store directly: each mirror or source has a greenlet (`follow`)
that loads the origin's messages after the last one it copied and passes them to the same
Stream.process_jetstream_msg, then sleeps until the origin stores a message (the origin's
storage callback sets `wake`), a stream of that name is created, or a second passes (Go's
heartbeat interval, which also keeps `active` fresh). The origin may not exist yet, be
deleted or come back: while it is missing the info shows Go's `stream not found` error, and
the follower picks up after the last sequence it copied, as Go's new consumer would.

A mirror keeps the origin's sequences and times (the gaps of a filtered or purged origin are
skipped sequences, Go: skipMsgs); a source stores each message as a new one with the header
`Nats-Stream-Source: <origin> <origin sequence>`, from which a restart finds where each
source left off (Go: startingSequenceForSources), and without the origin's Nats-Expected-*
headers (as Go 2.10 and later; 2.9.10 checked them again and stalled). A message the stream
refuses (its limits) is tried again after Go's retry threshold (2 s), and a refusal is logged
once until a message gets through.
"""
from __future__ import annotations

import logging
import time

import gevent
from gevent.event import Event

from ..fs.store import ErrStoreMsgNotFound, StoreError
from ..gofmt import go_quote
from ..sublist import subject_has_wildcard, subject_matches, subjects_collide
from ..transform import SubjectTransform
from .errors import api_error
from .stream import JS_STREAM_SOURCE, get_header, remove_header

log = logging.getLogger("gnatsd")

SOURCE_HEALTH_CHECK_INTERVAL = 1.0  # Go: sourceHealthCheckInterval
SOURCE_CONSUMER_RETRY_THRESHOLD = 2.0  # Go: sourceConsumerRetryThreshold
BATCH = 256  # messages copied before the follower lets other greenlets run


class SourceInfo:
    """Go: sourceInfo. What a mirror or one source has copied and how it goes."""

    def __init__(self, ss, mirror):
        self.ss = ss  # the StreamSource config
        self.name = ss.name
        self.mirror = mirror
        self.sseq = 0  # the last origin sequence copied (or skipped)
        self.lag = 0
        self.err = None  # ApiError
        self.last = 0  # ns of the last contact with the origin; 0: never
        self.start = 0  # ns; Go: the stream's last time, where a source with no header starts
        self.glet = None
        self.wake = Event()
        self.warned = None  # the refusal last logged
        # (filter bytes, SubjectTransform or None) per subject filter; Go 2.10.
        self.filters = []
        for t in ss.subject_transforms:
            src = t["src"] or ">"
            self.filters.append((src.encode(), SubjectTransform(src, t["dest"]) if t["dest"] else None))
        if not self.filters:
            self.filters.append(((ss.filter_subject or ">").encode(), None))

    def to_dict(self):
        """Go: StreamSourceInfo."""
        d = {"name": self.name, "lag": self.lag,
             "active": time.time_ns() - self.last if self.last else -1}
        if self.err is not None:
            d["error"] = self.err.to_dict()
        if self.ss.subject_transforms:  # Go 2.10 (which also shows filter_subject then)
            d["subject_transforms"] = [dict(t) for t in self.ss.subject_transforms]
        return d

    def match(self, subj):
        """The subject to store an origin message under, or None if no filter takes it."""
        for filt, tr in self.filters:
            if filt == b">" or subject_matches(filt, subj):
                if tr is None:
                    return subj
                return tr.transform_subject(subj.decode("utf-8", "surrogateescape")).encode(
                    "utf-8", "surrogateescape")
        return None

    def pending(self, store):
        """Messages of the origin `store` after `sseq` that this follower takes (Go: the
        consumer's num_pending, from which lag comes)."""
        return sum(store.num_pending(self.sseq + 1, filt, False)[0] for filt, _ in self.filters)


def setup_mirror_and_sources(mset):
    """Go: setupMirrorConsumer / setupSourceConsumers, from subscribeToStream. Start a
    follower for the mirror or each source, at the place Go's consumer would start."""
    cfg = mset.cfg
    st = mset.store.fast_state()
    if cfg.mirror is not None:
        si = mset.mirror = SourceInfo(cfg.mirror, True)
        if st.msgs == 0 and st.first_seq == 0:
            # Go: the optional start only for a mirror that never had a message.
            si.sseq = max(cfg.mirror.opt_start_seq - 1, 0)
            if not si.sseq and cfg.mirror.opt_start_time:
                si.start = cfg.mirror.opt_start_time
        else:
            si.sseq = st.last_seq
        start(mset, si)
    elif cfg.sources:
        mset.sources = {ss.name: SourceInfo(ss, False) for ss in cfg.sources}
        if st.last_ts:
            # Go: a source with nothing in the stream yet starts after its last message.
            for si in mset.sources.values():
                si.start = st.last_ts
        starting_sequence_for_sources(mset, st, mset.sources.values())
        for si in mset.sources.values():
            set_source_start(si)
            start(mset, si)


def update_sources(mset):
    """Go: the sources part of stream.update. A new source starts after its last message in
    the stream (from the headers) or from the beginning; one whose filter changed goes on
    after its last sequence, or from now when the new filter does not overlap the old; one
    that went away stops; the others go on undisturbed."""
    new = {ss.name: ss for ss in mset.cfg.sources or ()}
    for name in [n for n in mset.sources if n not in new]:
        cancel(mset.sources.pop(name))
    added = []
    for name, ss in new.items():
        old = mset.sources.get(name)
        if old is not None and old.ss.to_dict() == ss.to_dict():
            continue
        si = mset.sources[name] = SourceInfo(ss, False)
        if old is None:
            added.append(si)
            continue
        cancel(old)
        si.sseq = old.sseq
        if si.sseq and not (subjects_collide(old.ss.filter_subject.encode(), ss.filter_subject.encode())
                            if old.ss.filter_subject and ss.filter_subject else True):
            si.start = time.time_ns()
        start(mset, si)
    starting_sequence_for_sources(mset, mset.store.fast_state(), added)
    for si in added:
        set_source_start(si)
        start(mset, si)


def set_source_start(si):
    """Go: setSourceConsumer's choice for a source with nothing copied yet: its optional
    start sequence or time (not before `start`, where a restart fell back to), else
    `start`, else everything."""
    ss = si.ss
    if si.sseq:
        si.start = 0
    elif ss.opt_start_seq:
        si.sseq, si.start = ss.opt_start_seq - 1, 0
    elif ss.opt_start_time:
        si.start = max(ss.opt_start_time, si.start)


def cancel(si):
    """Go: cancelSourceInfo."""
    if si.glet is not None and si.glet is not gevent.getcurrent():
        si.glet.kill(block=False)
    si.glet = None


def starting_sequence_for_sources(mset, st, sis):
    """Go: startingSequenceForSources / setStartingSequenceForSource. The last origin
    sequence each of `sis` copied, from the newest Nats-Stream-Source header naming it."""
    if st.msgs == 0:
        return
    want_names = {si.name: si for si in sis}
    store = mset.store
    seq = st.last_seq
    while seq >= st.first_seq and want_names:
        try:
            sm = store.load_msg(seq)
        except StoreError:
            sm = None
        seq -= 1
        if sm is None or not sm.hdr:
            continue
        name, sseq = stream_and_seq(get_header(JS_STREAM_SOURCE, sm.hdr))
        si = want_names.pop(name, None)
        if si is not None:
            si.sseq = sseq


def stream_and_seq(shdr):
    """Go: streamAndSeq. (origin name, sequence) of a Nats-Stream-Source value; ("", 0)
    when it is not one. The old form, an ack reply `$JS.ACK.<stream>.<consumer>.<dc>.<seq>...`,
    is read too."""
    if not shdr:
        return "", 0
    s = shdr.decode("utf-8", "surrogateescape")
    if s.startswith("$JS.ACK."):
        tokens = s.split(".")
        if len(tokens) != 9:
            return "", 0
        return tokens[2], _ack_num(tokens[5])
    fields = s.split()
    if len(fields) != 2:
        return "", 0
    return fields[0], _ack_num(fields[1])


def _ack_num(s):
    """Go: parseAckReplyNum: digits only, else 0 (Go's -1 as uint64 never matches)."""
    return int(s) if s.isdigit() else 0


def start(mset, si):
    si.glet = gevent.spawn(follow, mset, si)


def stop_mirror_and_sources(mset):
    """Go: cancelMirrorConsumer / stopSourceConsumers."""
    sis = ([mset.mirror] if mset.mirror is not None else []) + list(mset.sources.values())
    for si in sis:
        cancel(si)
    mset.mirror = None
    mset.sources = {}


def wake_followers(jsa, name):
    """A stream called `name` was created: its mirrors and sources look at once."""
    for mset in jsa.streams.values():
        for si in mset.followers_of(name):
            si.wake.set()


def follow(mset, si):
    """The follower greenlet of a mirror or source (Go: processMirrorMsgs /
    processSourceMsgs with the consumer they read). Ends with the stream, or killed."""
    origin = None
    try:
        while not mset.closed:
            o = mset.jsa.streams.get(si.name)
            if o is not origin:
                if origin is not None:
                    origin.followers.discard(si)
                origin = o
                if o is not None:
                    o.followers.add(si)
                    consumer_start(mset, si, o.store)
            si.wake.clear()
            if origin is None or origin.closed:
                si.err = api_error("StreamNotFound")
                si.wake.wait(SOURCE_CONSUMER_RETRY_THRESHOLD)
                continue
            si.err = None
            si.last = time.time_ns()
            try:
                delay = copy_batch(mset, si, origin.store)
            except (StoreError, OSError) as e:
                log.warning("Error copying from stream '%s > %s' to '%s': %s", mset.acc.name, si.name,
                            mset.cfg.name, e)
                # A corrupt record of the origin is reported lost and gone: go on at once.
                delay = 0 if isinstance(e, ErrStoreMsgNotFound) else SOURCE_CONSUMER_RETRY_THRESHOLD
            if delay is None:
                gevent.sleep(0)  # more to copy
                continue
            si.wake.wait(delay)
    finally:
        if origin is not None:
            origin.followers.discard(si)


def consumer_start(mset, si, ostore):
    """Where Go's new consumer on the origin would start (setupMirrorConsumer /
    setSourceConsumer, then the consumer's selectStartingSeqNo): after `sseq`, or at the
    start time, kept within the origin's messages (all of them when it never had one). A
    mirror skips the sequences it will not get (Go: skipMsgs up to Delivered.Stream)."""
    st = ostore.fast_state()
    if si.start:
        start = ostore.get_seq_from_time(si.start)
    else:
        start = si.sseq + 1
    si.start = 0
    if st.first_seq == 0:
        start = 1
    elif start < st.first_seq:
        start = st.first_seq
    elif start > st.last_seq:
        start = st.last_seq + 1
    si.sseq = start - 1
    if si.mirror:
        last = mset.store.fast_state().last_seq
        if si.sseq > last:
            mset.store.skip_msgs(last + 1, si.sseq - last)


def copy_batch(mset, si, ostore):
    """Copy up to BATCH messages from the origin store. None when there may be more;
    else how long to wait for news (seconds)."""
    filt = si.filters[0][0] if len(si.filters) == 1 else b">"
    wc = subject_has_wildcard(filt)
    for _ in range(BATCH):
        if mset.closed:
            return 0
        sm = ostore.load_next_msg(filt, wc, si.sseq + 1)
        if sm is None:
            si.lag = 0
            return SOURCE_HEALTH_CHECK_INTERVAL
        subj = si.match(sm.subj)
        if subj is None:
            si.sseq = sm.seq
            continue
        if not (process_mirror_msg(mset, si, subj, sm) if si.mirror else process_source_msg(mset, si, subj, sm)):
            si.lag = si.pending(ostore)
            return SOURCE_CONSUMER_RETRY_THRESHOLD
        si.sseq = sm.seq
    si.lag = si.pending(ostore)
    return None


def process_mirror_msg(mset, si, subj, sm):
    """Go: processInboundMirrorMsg. The origin's sequence and time are kept; sequences the
    mirror does not get are skipped. False when the stream refused the message."""
    store = mset.store
    last = store.fast_state().last_seq
    if sm.seq <= last:
        return True  # Go: older messages are ignored
    if sm.seq > last + 1:
        store.skip_msgs(last + 1, sm.seq - last - 1)
    mset.perr = None
    mset.process_jetstream_msg(subj, None, sm.hdr, sm.msg, sm.seq - 1, sm.ts)
    return stored(mset, si, "mirror message")


def process_source_msg(mset, si, subj, sm):
    """Go: processInboundSourceMsg. A new message with the Nats-Stream-Source header (an
    earlier one, from a chain of sources, is replaced) and, as newer Go (2.10), without the
    Nats-Expected-* headers: the origin checked them, and here they would fail again on
    every retry. False when the stream refused the message."""
    hdr = sm.hdr
    if hdr:
        hdr = remove_header_prefix(remove_header(hdr, JS_STREAM_SOURCE), b"Nats-Expected-")
    value = si.name.encode() + b" " + str(sm.seq).encode()
    if hdr:
        hdr = hdr[:-2] + JS_STREAM_SOURCE + b": " + value + b"\r\n\r\n"
    else:
        hdr = b"NATS/1.0\r\n" + JS_STREAM_SOURCE + b": " + value + b"\r\n\r\n"
    mset.perr = None
    mset.process_jetstream_msg(subj, None, hdr, sm.msg, sourced=True)
    return stored(mset, si, "source " + go_quote(si.name))


def stored(mset, si, what):
    """Whether the stream took the message just given to it. A refusal is logged once
    until a message gets through again (Go: RateLimitWarnf)."""
    err = mset.perr
    if err is None:
        si.warned = None
        return True
    text = f"Error processing inbound {what} for '{mset.acc.name}' > '{mset.cfg.name}': {err.description}"
    if text != si.warned:
        log.warning(text)
        si.warned = text
    return False


def remove_header_prefix(hdr, prefix):
    """Go (2.10): removeHeaderIfPrefixPresent over a full header block: every header whose
    name starts with `prefix` goes (b"" when none is left)."""
    if b"\n" + prefix not in hdr or not hdr.endswith(b"\r\n\r\n"):
        return hdr
    lines = hdr[:-4].split(b"\r\n")
    kept = [lines[0]] + [ln for ln in lines[1:] if not ln.startswith(prefix)]
    return b"\r\n".join(kept) + b"\r\n\r\n" if len(kept) > 1 else b""
