"""Mirrors and sources: a stream that copies another stream, of its own account or (with
`external`) of another account whose JetStream API it imports.

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

A follower stands in for Go's internal consumer wherever that one shows: it is interest on
an interest or work-queue origin (Stream.no_interest, check_interest: the origin keeps what a
follower has still to copy, and a copied message is acknowledged as Go's AckNone consumer
does on delivery, but only once stored), and a caught-up mirror with `mirror_direct` answers
the origin's DIRECT.GET requests in the queue group the origin's own subscription is in.

An `external` origin is found as Go's consumer create request would find it: the API prefix
is followed through the account's mappings (this server's `$JS.<domain>.API`) and service
imports (another account's `$JS.API` imported under a prefix) to the account that answers.
The deliver prefix is checked but not needed: the store is read directly. Such a source's
Nats-Stream-Source header names it `<origin>:<hash of the API prefix>`, as Go (iname).
"""
from __future__ import annotations

import logging
import time

import gevent
from gevent.event import Event

from ..fs.store import INTEREST_POLICY, LIMITS_POLICY, ErrStoreMsgNotFound, StoreError
from ..gofmt import go_quote
from ..sublist import subject_has_wildcard, subject_matches, subjects_collide
from ..transform import SubjectTransform
from .errors import api_error
from .stream import JS_STREAM_SOURCE, add_headers, get_header, remove_header

log = logging.getLogger("gnatsd")

SOURCE_HEALTH_CHECK_INTERVAL = 1.0  # Go: sourceHealthCheckInterval
SOURCE_CONSUMER_RETRY_THRESHOLD = 2.0  # Go: sourceConsumerRetryThreshold
DGET_CAUGHT_UP_THRESH = 10  # Go: dgetCaughtUpThresh
BATCH = 256  # messages copied before the follower lets other greenlets run


class SourceInfo:
    """Go: sourceInfo. What a mirror or one source has copied and how it goes."""

    def __init__(self, ss, mirror):
        self.ss = ss  # the StreamSource config
        self.name = ss.name
        self.iname = ss.iname  # Go: iname, the name in Nats-Stream-Source headers
        self.mirror = mirror
        self.sseq = 0  # the last origin sequence copied (or skipped)
        self.lag = 0
        self.err = None  # ApiError
        self.last = 0  # ns of the last contact with the origin; 0: never
        self.start = 0  # ns; Go: the stream's last time, where a source with no header starts
        self.glet = None
        self.origin = None  # the stream.Stream followed, while it exists
        self.dsubs = []  # a mirror's DIRECT.GET subscriptions for its origin (Go: dsub, lbsub)
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
        d = {"name": self.name}
        if self.ss.external is not None:
            d["external"] = dict(self.ss.external)
        d["lag"] = self.lag
        d["active"] = time.time_ns() - self.last if self.last else -1
        if self.err is not None:
            d["error"] = self.err.to_dict()
        if self.ss.subject_transforms:  # Go 2.10 (which also shows filter_subject then)
            d["subject_transforms"] = [dict(t) for t in self.ss.subject_transforms]
        return d

    def wants(self, subj):
        """Whether a filter takes the origin subject `subj`."""
        return any(filt == b">" or subject_matches(filt, subj) for filt, _ in self.filters)

    def need_ack(self, seq, subj):
        """Go: needAck of the mirror's or source's AckNone consumer on the origin: whether
        the origin's `seq` (subject `subj`, b"" when not loaded) is still to be copied."""
        if seq <= self.sseq:
            return False
        if len(self.filters) == 1 and self.filters[0][0] == b">":
            return True
        if not subj:
            try:
                subj = self.origin.store.load_msg(seq).subj
            except StoreError:
                return False
        return self.wants(subj)

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
        mset.sources = {ss.iname: SourceInfo(ss, False) for ss in cfg.sources}
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
    new = {ss.iname: ss for ss in mset.cfg.sources or ()}
    for name in [n for n in mset.sources if n not in new]:
        si = mset.sources.pop(name)
        cancel(si)
        detach(si, True)
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
        detach(old, True)  # after the new one took its interest over
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
    want_names = {si.iname: si for si in sis}
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
    """Attach `si` to its origin now, if there is one, so that an interest or work-queue
    origin keeps what it has not copied from the next publish on; then follow."""
    o = lookup_origin(mset, si)
    if o and not o.closed:
        attach(mset, si, o)
    si.glet = gevent.spawn(follow, mset, si)


def lookup_origin(mset, si):
    """The stream `si` follows: in this account, or for an external one in the account
    whose JetStream API this account imports under the external's API prefix. None when
    there is none (False when an external's prefix leads nowhere)."""
    ext = si.ss.external
    if ext is None:
        return mset.jsa.streams.get(si.name)
    jsa = resolve_external_api(mset.jsa, ext["api"], si.name)
    o = jsa.streams.get(si.name) if jsa is not None else None
    if jsa is None or o is mset:
        return False  # a stream that sources itself would copy its copies for ever
    return o


def resolve_external_api(jsa, api, name):
    """The JetStream account that a consumer create request for stream `name`, sent under
    the API prefix `api` in account `jsa`, reaches (Go sends that request: setSourceConsumer):
    `jsa` itself when its mappings take it to `$JS.API` (this server's domain,
    `$JS.<domain>.API`), else the exporter of the service import that takes it there. None
    when nothing on this server answers it."""
    if not api:
        return None
    subj = mapped(jsa.acc, f"{api}.CONSUMER.CREATE.{name}".encode())
    want = f"$JS.API.CONSUMER.CREATE.{name}".encode()
    if subj == want:
        return jsa
    for si in jsa.acc.service_imports.values():
        if not si.invalid and subject_matches(si.from_, subj) and mapped(si.acc, si.to_subject(subj)) == want:
            return jsa.js.accounts.get(si.acc.name)
    return None


def mapped(acc, subj):
    """`subj` after the account's subject mappings, as a publish there would be."""
    if acc.mappings is None:
        return subj
    return acc.select_mapped_subject(subj) or subj


def attach(mset, si, o):
    """Go: the origin gets the mirror's or source's consumer (setupMirrorConsumer /
    setSourceConsumer). Counts as interest on `o` (Stream.no_interest, check_interest)."""
    si.origin = o
    o.followers.add(si)
    consumer_start(mset, si, o.store)


def detach(si, cleanup):
    """The origin loses the mirror's or source's consumer. With `cleanup` (the mirror or
    source was deleted, not stopped) an interest origin drops what nobody else needs (Go:
    the consumer's delete, stopWithFlags' interest clean-up)."""
    o = si.origin
    if o is None:
        return
    si.origin = None
    o.followers.discard(si)
    if cleanup and not o.closed and o.cfg.retention == INTEREST_POLICY:
        o.cleanup_no_interest(si.sseq + 1)


def stop_mirror_and_sources(mset, delete):
    """Go: cancelMirrorConsumer / stopSourceConsumers. `delete`: the stream is deleted."""
    sis = ([mset.mirror] if mset.mirror is not None else []) + list(mset.sources.values())
    for si in sis:
        cancel(si)
        detach(si, delete)
        mset.unsubscribe(si.dsubs)
    mset.mirror = None
    mset.sources = {}


def wake_followers(jsa, name):
    """A stream called `name` was created: its mirrors and sources (of any account, for the
    externals) look at once."""
    for a in jsa.js.accounts.values():
        for mset in a.streams.values():
            for si in mset.followers_of(name):
                si.wake.set()


def follow(mset, si):
    """The follower greenlet of a mirror or source (Go: processMirrorMsgs /
    processSourceMsgs with the consumer they read). Ends with the stream, or killed."""
    try:
        while not mset.closed:
            o = lookup_origin(mset, si)
            if o is not si.origin:
                detach(si, False)
                if o:
                    attach(mset, si, o)
            origin = si.origin
            si.wake.clear()
            if o is False:
                si.err = None  # Go: the consumer create request goes unanswered
                si.wake.wait(SOURCE_CONSUMER_RETRY_THRESHOLD)
                continue
            if origin is None or origin.closed:
                si.err = api_error("StreamNotFound")
                si.wake.wait(SOURCE_CONSUMER_RETRY_THRESHOLD)
                continue
            si.err = None
            si.last = time.time_ns()
            try:
                delay = copy_batch(mset, si, origin)
            except (StoreError, OSError) as e:
                log.warning("Error copying from stream '%s > %s' to '%s': %s", mset.acc.name, si.name,
                            mset.cfg.name, e)
                # A corrupt record of the origin is reported lost and gone: go on at once.
                delay = 0 if isinstance(e, ErrStoreMsgNotFound) else SOURCE_CONSUMER_RETRY_THRESHOLD
            if si.mirror and not si.dsubs and mset.cfg.mirror_direct and si.lag < DGET_CAUGHT_UP_THRESH:
                # Go: a mirror that has about caught up answers its origin's direct gets too
                si.dsubs = mset.direct_get_subs(si.name)
            if delay is None:
                gevent.sleep(0)  # more to copy
                continue
            si.wake.wait(delay)
    finally:
        if si.glet is gevent.getcurrent():
            detach(si, False)


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


def copy_batch(mset, si, origin):
    """Copy up to BATCH messages from the origin stream. None when there may be more;
    else how long to wait for news (seconds). On an interest or work-queue origin each
    copied message is acknowledged (Go: the AckNone consumer's ackq push in deliverMsg)."""
    ostore = origin.store
    acks = origin.cfg.retention != LIMITS_POLICY
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
        if acks:
            origin.ack_msg(si, sm.seq)
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
    hdr = add_headers(hdr, JS_STREAM_SOURCE + b": " + si.iname.encode() + b" " + str(sm.seq).encode() + b"\r\n")
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
