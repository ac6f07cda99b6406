"""JetStream consumers: their configuration, its checks and defaults, delivery, acks.

Ports nats-server `server/consumer.go` as 2.9.10 has it, for one server, plus what later
releases added that clients use: `filter_subjects` and `metadata` (2.10) and `pause_until`
(2.11). ConsumerConfig and ConsumerInfo JSON (Go's field order and omitempty),
setConsumerConfigDefaults, checkConsumerCfg, addConsumerWithAssignment, updateConfig, the
delivery loop (loopAndGatherMsgs, getNextMsg, deliverMsg), pull requests (waitQueue,
processNextMsgRequest, nextWaiting, processWaiting and their 404/408/409 status messages),
acks (processAck: +ACK, -NAK with a delay, +WPI, +NXT, +TERM), redelivery (checkPending,
ack wait, backoff, max_deliver), push interest, idle heartbeats, flow control, rate limit,
replay original, headers_only, the inactive threshold of ephemerals, and the advisories.

How it runs on gevent (DESIGN.md §3):
- A consumer delivers from its own greenlet (`loop_and_gather_msgs`), woken by a gevent
  Event (`mch`, Go's mch channel) that the stream sets after storing a message that matches
  (`process_stream_signal`), that acks set when they free room, and that pull requests set.
  The publisher's readloop never waits for a consumer.
- Acks and pull requests arrive through internal subscriptions and are handled on the
  greenlet of the connection that sent them; they do not yield. (Go queues acks to a
  goroutine of their own; here there is nothing to wait for, so they run at once.)
- Everything a consumer sends (messages, status messages, ack replies, advisories) goes out
  in order from the consumer's own internal client (Go: o.client), published at once from
  whichever greenlet sends (`send`): no hop through the system send loop.
- Timers (redelivery, inactivity) are gevent greenlets started with spawn_later.
- Push interest is tracked with Sublist.register_notification on the deliver subject, as Go.

Consumer state goes to the stream store's ConsumerStore (gnatsd/fs/); a file stream's
consumers also write `obs/<name>/meta.inf` (their config, as Go's FileConsumerInfo) so that
they come back with the stream at start (`recover_consumers`).
"""
from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import re
import time
from collections import deque

import gevent
from gevent.event import Event

from .. import gofmt
from ..events import _nuid
from ..fs.filestore import OBS_DIR, STREAM_META_FILE
from ..fs.store import ACK_ALL, ACK_EXPLICIT, ACK_NONE, FILE_STORAGE, INTEREST_POLICY, LIMITS_POLICY, StoreError
from ..fs.store import WORK_QUEUE_POLICY
from ..sublist import is_valid_subject, subject_has_wildcard, subject_is_literal, subject_is_subset_match
from ..sublist import subjects_collide
from .errors import ApiError, api_error
from .stream import (
    BadJSON, JS_MAX_DESCRIPTION_LEN, JS_MAX_NAME_LEN, add_headers, gather_source_mirror_subjects, is_valid_name, json_object,
    parse_go_time, read_meta, want, want_enum, write_meta,
)

log = logging.getLogger("gnatsd")

# Go: DeliverPolicy, AckPolicy, ReplayPolicy.
DELIVER_ALL, DELIVER_LAST, DELIVER_NEW, DELIVER_BY_START_SEQ, DELIVER_BY_START_TIME, DELIVER_LAST_PER_SUBJECT = range(6)
DELIVER_POLICY = {"all": DELIVER_ALL, "undefined": DELIVER_ALL, "last": DELIVER_LAST, "new": DELIVER_NEW,
                  "by_start_sequence": DELIVER_BY_START_SEQ, "by_start_time": DELIVER_BY_START_TIME,
                  "last_per_subject": DELIVER_LAST_PER_SUBJECT}
DELIVER_POLICY_NAMES = ["all", "last", "new", "by_start_sequence", "by_start_time", "last_per_subject"]
ACK_POLICY = {"none": ACK_NONE, "all": ACK_ALL, "explicit": ACK_EXPLICIT}
ACK_POLICY_NAMES = {v: k for k, v in ACK_POLICY.items()}
REPLAY_INSTANT, REPLAY_ORIGINAL = 0, 1
REPLAY_POLICY = {"instant": REPLAY_INSTANT, "original": REPLAY_ORIGINAL}
REPLAY_POLICY_NAMES = ["instant", "original"]

MS = 1_000_000
SEC = 1_000_000_000
JS_ACK_WAIT_DEFAULT = 30 * SEC  # Go: JsAckWaitDefault
JS_DELETE_WAIT_TIME_DEFAULT = 5 * SEC  # Go: JsDeleteWaitTimeDefault
JS_FLOW_CONTROL_MAX_PENDING = 32 * 1024 * 1024  # Go: JsFlowControlMaxPending
JS_DEFAULT_MAX_ACK_PENDING = 1000  # Go: JsDefaultMaxAckPending
JS_WAIT_QUEUE_DEFAULT_MAX = 512  # Go: JSWaitQueueDefaultMax
JS_MAX_METADATA_LEN = 128 * 1024  # Go 2.10: JSMaxMetadataLen
ACK_WAIT_DELAY = MS  # Go: ackWaitDelay
FLUSH_EVERY = 256  # deliveries between writes to the receivers (and yields) in a long run

JS_ACK_PRE = "$JS.ACK"
JS_FLOW_CONTROL_PRE = "$JS.FC."
JS_API_REQUEST_NEXT_T = "$JS.API.CONSUMER.MSG.NEXT.{}.{}"
JS_ADVISORY_CONSUMER_CREATED_PRE = "$JS.EVENT.ADVISORY.CONSUMER.CREATED"
JS_ADVISORY_CONSUMER_DELETED_PRE = "$JS.EVENT.ADVISORY.CONSUMER.DELETED"
JS_ADVISORY_CONSUMER_MAX_DELIVERY_EXCEED_PRE = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES"
JS_ADVISORY_CONSUMER_MSG_NAK_PRE = "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED"
JS_ADVISORY_CONSUMER_MSG_TERMINATED_PRE = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED"
JS_METRIC_CONSUMER_ACK_PRE = "$JS.EVENT.METRIC.CONSUMER.ACK"
ADV = "io.nats.jetstream.advisory.v1."
JS_CONSUMER_ACTION_ADVISORY_TYPE = ADV + "consumer_action"
JS_CONSUMER_DELIVERY_EXCEEDED_ADVISORY_TYPE = ADV + "max_deliver"
JS_CONSUMER_DELIVERY_NAK_ADVISORY_TYPE = ADV + "nak"
JS_CONSUMER_DELIVERY_TERMINATED_ADVISORY_TYPE = ADV + "terminated"
JS_CONSUMER_ACK_METRIC_TYPE = "io.nats.jetstream.metric.v1.consumer_ack"

# Go: the status headers.
JS_PULL_REQUEST_PENDING_MSGS = b"Nats-Pending-Messages"
JS_PULL_REQUEST_PENDING_BYTES = b"Nats-Pending-Bytes"
JS_LAST_CONSUMER_SEQ = b"Nats-Last-Consumer"
JS_LAST_STREAM_SEQ = b"Nats-Last-Stream"
JS_CONSUMER_STALLED = b"Nats-Consumer-Stalled"
JS_MSG_SIZE = b"Nats-Msg-Size"

ACK_ACK, ACK_OK, ACK_NAK, ACK_PROGRESS, ACK_NEXT, ACK_TERM = b"+ACK", b"+OK", b"-NAK", b"+WPI", b"+NXT", b"+TERM"



def _time(d, key):
    """A JSON time (RFC 3339) as ns; None when absent."""
    v = d.get(key)
    if v is None:
        return None
    if type(v) is not str:
        raise BadJSON()
    try:
        return parse_go_time(v)
    except (ValueError, OverflowError):
        raise BadJSON() from None


class ConsumerConfig:
    """Go: ConsumerConfig. Durations in nanoseconds, times as ns since the epoch (None: unset)."""

    def __init__(self):
        self.durable = ""
        self.name = ""
        self.description = ""
        self.deliver_policy = DELIVER_ALL
        self.opt_start_seq = 0
        self.opt_start_time = None
        self.ack_policy = ACK_NONE
        self.ack_wait = 0
        self.max_deliver = 0
        self.backoff = []
        self.filter_subject = ""
        self.filter_subjects = []
        self.replay_policy = REPLAY_INSTANT
        self.rate_limit = 0
        self.sample_freq = ""
        self.max_waiting = 0
        self.max_ack_pending = 0
        self.heartbeat = 0
        self.flow_control = False
        self.headers_only = False
        self.max_request_batch = 0
        self.max_request_expires = 0
        self.max_request_max_bytes = 0
        self.deliver_subject = ""
        self.deliver_group = ""
        self.inactive_threshold = 0
        self.replicas = 0
        self.mem_storage = False
        self.direct = False
        self.metadata = None
        self.pause_until = None

    @classmethod
    def from_dict(cls, d):
        """Decode a request's config (a dict from stream.decode_json). Raises BadJSON."""
        d = json_object(d)
        c = cls()
        c.durable = want(d, "durable_name", str, "")
        c.name = want(d, "name", str, "")
        c.description = want(d, "description", str, "")
        c.deliver_policy = want_enum(d, "deliver_policy", DELIVER_POLICY, DELIVER_ALL)
        c.opt_start_seq = want(d, "opt_start_seq", int, 0, 0, 2**64 - 1)
        c.opt_start_time = _time(d, "opt_start_time")
        c.ack_policy = want_enum(d, "ack_policy", ACK_POLICY, ACK_NONE)
        c.ack_wait = want(d, "ack_wait", int, 0)
        c.max_deliver = want(d, "max_deliver", int, 0)
        backoff = d.get("backoff")
        if backoff is not None:
            if type(backoff) is not list or not all(type(b) is int for b in backoff):
                raise BadJSON()
            c.backoff = list(backoff)
        c.filter_subject = want(d, "filter_subject", str, "")
        c.filter_subjects = want(d, "filter_subjects", list, [])
        c.replay_policy = want_enum(d, "replay_policy", REPLAY_POLICY, REPLAY_INSTANT)
        c.rate_limit = want(d, "rate_limit_bps", int, 0, 0, 2**64 - 1)
        c.sample_freq = want(d, "sample_freq", str, "")
        c.max_waiting = want(d, "max_waiting", int, 0)
        c.max_ack_pending = want(d, "max_ack_pending", int, 0)
        c.heartbeat = want(d, "idle_heartbeat", int, 0)
        c.flow_control = want(d, "flow_control", bool, False)
        c.headers_only = want(d, "headers_only", bool, False)
        c.max_request_batch = want(d, "max_batch", int, 0)
        c.max_request_expires = want(d, "max_expires", int, 0)
        c.max_request_max_bytes = want(d, "max_bytes", int, 0)
        c.deliver_subject = want(d, "deliver_subject", str, "")
        c.deliver_group = want(d, "deliver_group", str, "")
        c.inactive_threshold = want(d, "inactive_threshold", int, 0)
        c.replicas = want(d, "num_replicas", int, 0)
        c.mem_storage = want(d, "mem_storage", bool, False)
        c.direct = want(d, "direct", bool, False)
        md = d.get("metadata")
        if md is not None:
            if type(md) is not dict or not all(type(v) is str for v in md.values()):
                raise BadJSON()
            c.metadata = dict(md)
        c.pause_until = _time(d, "pause_until")
        return c

    def copy(self):
        c = ConsumerConfig()
        c.__dict__.update(self.__dict__)
        c.backoff = list(self.backoff)
        c.filter_subjects = list(self.filter_subjects)
        c.metadata = dict(self.metadata) if self.metadata is not None else None
        return c

    def to_dict(self):
        """Go's JSON of ConsumerConfig, in 2.9.10's field order; filter_subjects, metadata
        and pause_until where 2.10/2.11 put them."""
        d = {}
        if self.durable:
            d["durable_name"] = self.durable
        if self.name:
            d["name"] = self.name
        if self.description:
            d["description"] = self.description
        d["deliver_policy"] = DELIVER_POLICY_NAMES[self.deliver_policy]
        if self.opt_start_seq:
            d["opt_start_seq"] = self.opt_start_seq
        if self.opt_start_time is not None:
            d["opt_start_time"] = gofmt.format_time(self.opt_start_time)
        d["ack_policy"] = ACK_POLICY_NAMES[self.ack_policy]
        if self.ack_wait:
            d["ack_wait"] = self.ack_wait
        if self.max_deliver:
            d["max_deliver"] = self.max_deliver
        if self.backoff:
            d["backoff"] = list(self.backoff)
        if self.filter_subject:
            d["filter_subject"] = self.filter_subject
        if self.filter_subjects:
            d["filter_subjects"] = list(self.filter_subjects)
        d["replay_policy"] = REPLAY_POLICY_NAMES[self.replay_policy]
        if self.rate_limit:
            d["rate_limit_bps"] = self.rate_limit
        if self.sample_freq:
            d["sample_freq"] = self.sample_freq
        if self.max_waiting:
            d["max_waiting"] = self.max_waiting
        if self.max_ack_pending:
            d["max_ack_pending"] = self.max_ack_pending
        if self.heartbeat:
            d["idle_heartbeat"] = self.heartbeat
        if self.flow_control:
            d["flow_control"] = True
        if self.headers_only:
            d["headers_only"] = True
        if self.max_request_batch:
            d["max_batch"] = self.max_request_batch
        if self.max_request_expires:
            d["max_expires"] = self.max_request_expires
        if self.max_request_max_bytes:
            d["max_bytes"] = self.max_request_max_bytes
        if self.deliver_subject:
            d["deliver_subject"] = self.deliver_subject
        if self.deliver_group:
            d["deliver_group"] = self.deliver_group
        if self.inactive_threshold:
            d["inactive_threshold"] = self.inactive_threshold
        d["num_replicas"] = self.replicas
        if self.mem_storage:
            d["mem_storage"] = True
        if self.direct:
            d["direct"] = True
        if self.metadata:
            d["metadata"] = gofmt.GoMap(sorted(self.metadata.items()))
        if self.pause_until is not None:
            d["pause_until"] = gofmt.format_time(self.pause_until)
        return d

    def __eq__(self, other):
        return isinstance(other, ConsumerConfig) and self.__dict__ == other.__dict__

    def subject_filters(self):
        """Go 2.10: the filter subjects, whichever field holds them."""
        if self.filter_subject:
            return [self.filter_subject]
        return list(self.filter_subjects)


def set_consumer_config_defaults(config, acc_lim):
    """Go: setConsumerConfigDefaults (the server's JSLimitOpts are not configurable here)."""
    if not config.deliver_subject and config.max_waiting == 0:
        config.max_waiting = JS_WAIT_QUEUE_DEFAULT_MAX
    if config.ack_wait == 0 and config.ack_policy in (ACK_EXPLICIT, ACK_ALL):
        config.ack_wait = JS_ACK_WAIT_DEFAULT
    if config.max_deliver == 0:
        config.max_deliver = -1
    if config.backoff:
        config.ack_wait = config.backoff[0]
    if config.ack_policy in (ACK_EXPLICIT, ACK_ALL) and config.max_ack_pending == 0:
        pending = JS_DEFAULT_MAX_ACK_PENDING
        lim = acc_lim.get("max_ack_pending", -1)
        if 0 < lim < pending:
            pending = lim
        config.max_ack_pending = pending


def _bad_start(dp, start):
    return api_error("ConsumerInvalidPolicyErrF",
                     f"consumer delivery policy is deliver {dp}, but optional start {start} is also set")


def _not_set(dp, what):
    return api_error("ConsumerInvalidPolicyErrF",
                     f"consumer delivery policy is deliver {dp}, but optional {what} is not set")


def check_consumer_cfg(config, scfg, acc_lim, subjects=None):
    """Go: checkConsumerCfg (with 2.10's filter_subjects and metadata checks). `subjects`:
    what filters must be within (Go: gatherSourceMirrorSubjects), None to skip that check
    (recovery, external sources). Raises ApiError."""
    if config.replicas > 0 and config.replicas > scfg.num_replicas:
        raise api_error("ConsumerReplicasExceedsStream")
    if config.replicas < 0:
        raise api_error("ReplicasCountCannotBeNegative")
    if config.backoff and config.max_deliver <= len(config.backoff):
        raise api_error("ConsumerMaxDeliverBackoff")
    if len(config.description) > JS_MAX_DESCRIPTION_LEN:
        raise api_error("ConsumerDescriptionTooLongErrF", max=JS_MAX_DESCRIPTION_LEN)
    if config.metadata:
        size = sum(len(k) + len(v) for k, v in config.metadata.items())
        if size > JS_MAX_METADATA_LEN:
            raise api_error("ConsumerMetadataLengthErrF", limit=JS_MAX_METADATA_LEN)
    if config.deliver_subject:
        ds = config.deliver_subject.encode()
        if not subject_is_literal(ds):
            raise api_error("ConsumerDeliverToWildcards")
        if not is_valid_subject(ds):
            raise api_error("ConsumerInvalidDeliverSubject")
        if any(subject_is_subset_match(ds, s.encode()) for s in scfg.subjects):
            raise api_error("ConsumerDeliverCycle")
        if config.max_waiting != 0:
            raise api_error("ConsumerPushMaxWaiting")
        if config.max_ack_pending > 0 and config.ack_policy == ACK_NONE:
            raise api_error("ConsumerMaxPendingAckPolicyRequired")
        if 0 < config.heartbeat < 100 * MS:
            raise api_error("ConsumerSmallHeartbeat")
    else:
        if config.ack_policy == ACK_NONE and scfg.retention == WORK_QUEUE_POLICY:
            raise api_error("ConsumerPullRequiresAck")
        if config.rate_limit > 0:
            raise api_error("ConsumerPullWithRateLimit")
        if config.max_waiting < 0:
            raise api_error("ConsumerMaxWaitingNegative")
        if config.heartbeat > 0:
            raise api_error("ConsumerHBRequiresPush")
        if config.flow_control:
            raise api_error("ConsumerFCRequiresPush")
        if config.max_request_batch < 0:
            raise api_error("ConsumerMaxRequestBatchNegative")
        if config.max_request_expires != 0 and config.max_request_expires < MS:
            raise api_error("ConsumerMaxRequestExpiresToSmall")
    lim = acc_lim.get("max_ack_pending", -1)
    if lim > 0 and config.max_ack_pending > lim:
        raise api_error("ConsumerMaxPendingAckExcessErrF", limit=lim)
    if config.direct:
        if not config.deliver_subject:
            raise api_error("ConsumerDirectRequiresPush")
        if config.durable:
            raise api_error("ConsumerDirectRequiresEphemeral")
    if config.filter_subject and config.filter_subjects:
        raise api_error("ConsumerDuplicateFilterSubjects")
    filters = config.subject_filters()
    for i, f in enumerate(filters):
        if not f:
            raise api_error("ConsumerEmptyFilter")
        if subjects is not None and not valid_filtered_subject(f, subjects):
            raise api_error("ConsumerFilterNotSubset")
        for g in filters[i + 1:]:
            if subjects_collide(f.encode(), g.encode()):
                raise api_error("ConsumerOverlappingSubjectFilters")
    dp = config.deliver_policy
    names = {DELIVER_ALL: "all", DELIVER_LAST: "last", DELIVER_LAST_PER_SUBJECT: "last per subject",
             DELIVER_NEW: "new"}
    if dp in names:
        if config.opt_start_seq > 0:
            raise _bad_start(names[dp], "sequence")
        if config.opt_start_time is not None:
            raise _bad_start(names[dp], "time")
        if dp == DELIVER_LAST_PER_SUBJECT and not filters:
            raise _not_set("last per subject", "filter subject")
    elif dp == DELIVER_BY_START_SEQ:
        if config.opt_start_seq == 0:
            raise _not_set("by start sequence", "start sequence")
        if config.opt_start_time is not None:
            raise _bad_start("by start sequence", "time")
    elif dp == DELIVER_BY_START_TIME:
        if config.opt_start_time is None:
            raise _not_set("by start time", "start time")
        if config.opt_start_seq != 0:
            raise _bad_start("by start time", "start sequence")
    if config.sample_freq:
        try:
            n = gofmt.atoi(_trim_percent(config.sample_freq))
        except ValueError as e:
            raise api_error("ConsumerInvalidSamplingErrF", e) from None
        if n < 0:
            raise api_error("ConsumerInvalidSamplingErrF", "<nil>")
    if config.flow_control and config.heartbeat == 0:
        raise api_error("ConsumerWithFlowControlNeedsHeartbeats")
    if config.durable and config.name and config.name != config.durable:
        raise api_error("ConsumerCreateDurableAndNameMismatch")


def _trim_percent(s):
    return s[:-1] if s.endswith("%") else s


def valid_filtered_subject(filtered, subjects):
    """Go: validFilteredSubject."""
    f = filtered.encode()
    if not is_valid_subject(f):
        return False
    has_wc = subject_has_wildcard(f)
    for s in subjects:
        s = s.encode()
        if subject_is_subset_match(f, s) or (has_wc and subject_is_subset_match(s, f)):
            return True
    return False


def check_new_consumer_config(acc, cfg, ncfg):
    """Go: Account.checkNewConsumerConfig. Raises ApiError (or a plain error text as
    ConsumerCreateErrF)."""
    if cfg == ncfg:
        return
    for attr, what in (("deliver_policy", "deliver policy"), ("opt_start_seq", "start sequence"),
                       ("opt_start_time", "start time"), ("ack_policy", "ack policy"),
                       ("replay_policy", "replay policy"), ("heartbeat", "heart beats"),
                       ("flow_control", "flow control"), ("max_waiting", "max waiting")):
        if getattr(cfg, attr) != getattr(ncfg, attr):
            raise api_error("ConsumerCreateErrF", f"{what} can not be updated")
    if cfg.deliver_subject != ncfg.deliver_subject:
        if not cfg.deliver_subject:
            raise api_error("ConsumerCreateErrF", "can not update pull consumer to push based")
        if not ncfg.deliver_subject:
            raise api_error("ConsumerCreateErrF", "can not update push consumer to pull based")
        r = acc.sublist.match(cfg.deliver_subject.encode())
        if r.psubs or r.qsubs:
            raise api_error("ConsumerNameExist")
    if ncfg.backoff and ncfg.max_deliver <= len(ncfg.backoff):
        raise api_error("ConsumerMaxDeliverBackoff")


def create_consumer_name():
    """Go: createConsumerName (getHash of a NUID): 8 characters of base64-url SHA-256."""
    return base64.urlsafe_b64encode(hashlib.sha256(_nuid().encode()).digest()).decode()[:8]


class WaitingRequest:
    """Go: waitingRequest. One pull request; times in ns (0: none)."""

    __slots__ = ("interest", "reply", "n", "d", "b", "expires", "received", "hb", "hbt", "no_wait")

    def __init__(self, reply, n, b, expires, hb, hbt, no_wait, now):
        self.interest = reply.encode()
        self.reply = reply
        self.n = n  # messages still wanted
        self.d = 0  # messages delivered
        self.b = b  # bytes still allowed (0: no limit)
        self.expires = expires
        self.received = now
        self.hb = hb
        self.hbt = hbt
        self.no_wait = no_wait


class WaitQueue:
    """Go: waitQueue: the pull requests in arrival order, at most `max` of them. A request
    still wanting messages goes to the back after each delivery (round robin)."""

    def __init__(self, max_size):
        self.max = max_size
        self.reqs = deque()
        self.last = 0  # ns of the last request or delivery (Go: last)

    def __len__(self):
        return len(self.reqs)

    def add(self, wr):
        if len(self.reqs) >= self.max:
            return False
        self.reqs.append(wr)
        self.last = wr.received
        return True

    def is_full(self):
        return len(self.reqs) >= self.max

    def pop(self):
        """Go: waitQueue.pop. The first request, counted as served one message."""
        wr = self.reqs[0]
        wr.d += 1
        wr.n -= 1
        if wr.n > 0 and len(self.reqs) > 1:
            self.reqs.popleft()
            self.reqs.append(wr)
        elif wr.n <= 0:
            self.reqs.popleft()
        return wr

    def remove_current(self):
        self.reqs.popleft()


def status_hdr(code, text, extra=b""):
    return b"NATS/1.0 " + str(code).encode() + b" " + text + b"\r\n" + extra + b"\r\n"


def pending_hdrs(n, b):
    return (JS_PULL_REQUEST_PENDING_MSGS + b": " + str(n).encode() + b"\r\n" +
            JS_PULL_REQUEST_PENDING_BYTES + b": " + str(b).encode() + b"\r\n")


class Consumer:
    """Go: consumer. One consumer of stream `mset`; made by add_consumer."""

    def __init__(self, mset, cfg, name, created):
        self.mset = mset
        self.jsa = mset.jsa
        self.srv = mset.srv
        self.cfg = cfg
        self.name = name
        self.stream = mset.cfg.name
        self.created = created
        self.store = None
        self.sseq = 1  # next stream sequence to deliver
        self.dseq = 1  # next delivery sequence
        self.adflr = 0  # ack floor, delivery sequence
        self.asflr = 0  # ack floor, stream sequence
        self.pending = {}  # stream seq -> [delivery seq, ns delivered] (Go: Pending)
        self.rdq = deque()  # stream sequences to redeliver (Go: rdq, rdqi)
        self.rdqi = set()
        self.rdc = {}  # stream seq -> times redelivered (Go: rdc)
        self.npc = 0  # messages pending for this consumer (Go: npc, npcm)
        self.npcm = 0
        self.lss = None  # Go: lastSeqSkipList, as [resume, seqs]
        self.waiting = WaitQueue(cfg.max_waiting) if not cfg.deliver_subject else None
        self.dsubj = cfg.deliver_subject
        self.active = True
        self.closed = False
        self.replay = False
        self.ldt = 0  # ns of the last delivery
        self.lat = 0  # ns of the last ack
        self.maxp = cfg.max_ack_pending
        self.maxdc = cfg.max_deliver
        self.pblimit = self.maxpb = self.pbytes = self.fcsz = 0  # flow control
        self.fcid = ""
        self.rlimit = None  # [bytes/s, burst, tokens, ns of last refill]
        self.sfreq = 0
        self.dthresh = 0  # ns
        self.mch = Event()
        self.loop = None
        self.ptmr = None  # greenlet of the next check_pending
        self.dtmr = None  # greenlet of the next delete_not_active
        self.ack_sub = self.req_sub = self.fc_sub = None
        self.notified = None  # the deliver subject registered for interest notifications
        self.client = self.srv.create_internal_client(mset.jsa.acc)  # Go: o.client
        self.outq = []  # messages queued while one is being sent (see send)
        self.sending = False
        self.set_filters()
        self.ack_reply_pre = f"{JS_ACK_PRE}.{self.stream}.{name}."
        self.next_msg_subj = JS_API_REQUEST_NEXT_T.format(self.stream, name)

    def set_filters(self):
        """The filters as (bytes, has wildcard) pairs."""
        self.filters = [(f.encode(), subject_has_wildcard(f.encode())) for f in self.cfg.subject_filters()]

    @property
    def acc(self):
        return self.jsa.acc

    def is_push_mode(self):
        return bool(self.cfg.deliver_subject)

    def is_pull_mode(self):
        return not self.cfg.deliver_subject

    def is_filtered_match(self, subj):
        """Go: isFilteredMatch. `subj` in bytes."""
        if not self.filters:
            return True
        for f, wc in self.filters:
            if subj == f or (wc and subject_is_subset_match(subj, f)):
                return True
        return False

    # -- sending -------------------------------------------------------------------------------

    def send(self, subject, hdr, msg=b"", reply=None, subj=None, flush=True):
        """Go: outq.send and the stream's internalLoop: publish from the consumer's own
        internal client (Go: o.client), in order. `subj` (bytes) is the subject receivers
        see when it is not `subject`: a stream message keeps its own subject on its way to
        the deliver subject or the request's inbox (Go: pa.deliver). A send made while one
        is under way (a receiver's callback sending back through this consumer) is queued
        and goes out after it. Without `flush` the receivers' connections are written
        later, by the caller's flush_clients (loop_and_gather_msgs: once per batch, as Go's
        internalLoop). Does not yield."""
        self.outq.append((subject, reply, hdr, msg, subj))
        if self.sending:
            return 0
        self.sending = True
        delivered = 0
        try:
            while self.outq:
                batch, self.outq = self.outq, []
                for item in batch:
                    delivered = self._publish(*item)
        finally:
            self.sending = False
        if flush:
            self.client.flush_clients()
        return delivered

    def _publish(self, subject, reply, hdr, msg, subj):
        """One message out (events.publish, with Go's deliver-subject override). Returns how
        many subscriptions got it."""
        c = self.client
        acc = c.acc
        dsubj = subject.encode()
        rb = reply.encode() if reply else None
        c.pa_subject, c.pa_reply = dsubj, rb
        c.pa_szb = str(len(hdr) + len(msg)).encode()
        c.pa_hdr, c.pa_hdb = (len(hdr), str(len(hdr)).encode()) if hdr else (-1, b"")
        result = acc.sublist.match(dsubj)
        if not result.psubs and not result.qsubs:
            return 0
        return c.process_msg_results(acc, result, subj or dsubj, rb, hdr + msg + b"\r\n")

    def send_advisory(self, subject, adv):
        if self.jsa.js.domain:
            adv["domain"] = self.jsa.js.domain
        self.send(subject, b"", gofmt.marshal(adv).encode())

    def _typed_event(self, etype):
        return {"type": etype, "id": _nuid(), "timestamp": gofmt.format_time(time.time_ns()),
                "stream": self.stream, "consumer": self.name}

    def send_action_advisory(self, action):
        """Go: sendCreateAdvisory / sendDeleteAdvisoryLocked."""
        pre = JS_ADVISORY_CONSUMER_CREATED_PRE if action == "create" else JS_ADVISORY_CONSUMER_DELETED_PRE
        adv = self._typed_event(JS_CONSUMER_ACTION_ADVISORY_TYPE)
        adv["action"] = action
        self.send_advisory(f"{pre}.{self.stream}.{self.name}", adv)

    # -- life cycle ----------------------------------------------------------------------------

    def set_leader(self):
        """Go: setLeader(true): subscriptions, interest, timers, the delivery greenlet."""
        self.read_stored_state()
        self.stream_num_pending()
        acc = self.acc
        self.ack_sub = acc.subscribe_internal(f"{self.ack_reply_pre}*.*.*.*.*".encode(), self.push_ack)
        self.req_sub = acc.subscribe_internal(self.next_msg_subj.encode(), self.process_next_msg_req)
        if self.cfg.flow_control:
            self.set_max_pending_bytes(JS_FLOW_CONTROL_MAX_PENDING)
            self.fc_sub = acc.subscribe_internal(f"{JS_FLOW_CONTROL_PRE}{self.stream}.{self.name}.*".encode(),
                                                 self.process_flow_control)
        if self.is_push_mode():
            self.notified = self.dsubj.encode()
            acc.sublist.register_notification(self.notified, self.interest_changed)
            self.active = self.has_local_interest()
        if self.dthresh > 0 and (self.is_pull_mode() or not self.active):
            self.dtmr = gevent.spawn_later(self.dthresh / 1e9, self.delete_not_active)
        if self.cfg.replay_policy != REPLAY_INSTANT:
            self.replay = True
        self.loop = gevent.spawn(self.loop_and_gather_msgs)

    def update_inactive_threshold(self, cfg):
        """Go: updateInactiveThreshold. Ephemerals always have one (5 s by default)."""
        jitter = 100 * MS + random.randrange(900) * MS
        if not cfg.durable and cfg.inactive_threshold <= 0:
            self.dthresh = JS_DELETE_WAIT_TIME_DEFAULT + jitter
            cfg.inactive_threshold = JS_DELETE_WAIT_TIME_DEFAULT
        elif cfg.inactive_threshold > 0:
            self.dthresh = cfg.inactive_threshold + (jitter if not cfg.deliver_subject else 0)
        else:
            self.dthresh = 0

    def set_rate_limit(self, bps):
        """Go: setRateLimit. A token bucket of bps/8 bytes a second; the burst is the
        stream's max message size or the max payload."""
        if not bps:
            self.rlimit = None
            return
        burst = self.mset.cfg.max_msg_size if self.mset.cfg.max_msg_size > 0 else self.srv.opts.max_payload
        self.rlimit = [bps / 8, burst, burst, time.monotonic()]

    def set_sample_freq(self):
        """The sample_freq percentage (checked by check_consumer_cfg)."""
        self.sfreq = gofmt.atoi(_trim_percent(self.cfg.sample_freq)) if self.cfg.sample_freq else 0

    def stop(self):
        """Go: consumer.stop: keep the state (server shutdown). May yield."""
        self.stop_with_flags(False, False)

    def delete(self, advisory=True):
        """Go: consumer.delete. May yield."""
        self.stop_with_flags(True, advisory)

    def stop_with_flags(self, dflag, advisory, stream_gone=False):
        """Go: stopWithFlags. May yield (the store)."""
        if self.closed:
            return
        self.closed = True
        if dflag:
            if advisory:
                self.send_action_advisory("delete")
            if self.is_pull_mode():
                self.release_any_pending_requests()
        mset = self.mset
        c = self.acc.internal_client()
        for sub in (self.ack_sub, self.req_sub, self.fc_sub):
            if sub is not None:
                c.unsubscribe(sub)
        self.ack_sub = self.req_sub = self.fc_sub = None
        self._stop_timer("ptmr")
        self._stop_timer("dtmr")
        if self.notified is not None:
            self.acc.sublist.clear_notification(self.notified, self.interest_changed)
            self.notified = None
        self.active = False
        self.waiting = None
        if self.loop is not None and self.loop is not gevent.getcurrent():
            self.loop.kill(block=False)
        self.loop = None
        mset.remove_consumer(self)
        if dflag and not stream_gone and mset.cfg.retention == INTEREST_POLICY:
            st = mset.store.fast_state()
            rm = [seq for seq in range(max(self.asflr, st.first_seq), st.last_seq + 1)
                  if not mset.check_interest(seq, self)]
            for seq in rm:
                try:
                    mset.store.remove_msg(seq, wait=False)
                except StoreError:
                    pass
        store = self.store
        if store is not None:
            try:
                if dflag:
                    store.delete()
                else:
                    store.stop()
            except (OSError, StoreError) as e:
                log.warning("JetStream consumer '%s > %s > %s' store: %s", self.acc.name, self.stream, self.name, e)

    def _stop_timer(self, attr):
        g = getattr(self, attr)
        if g is not None:
            setattr(self, attr, None)
            if g is not gevent.getcurrent():
                g.kill(block=False)

    # -- config and meta file ------------------------------------------------------------------

    def update_config(self, cfg):
        """Go: consumer.updateConfig. Raises ApiError."""
        check_new_consumer_config(self.acc, self.cfg, cfg)
        if self.store is not None:
            self.store.update_config(cfg)
        if cfg.deliver_subject != self.cfg.deliver_subject:
            self.update_deliver_subject(cfg.deliver_subject)
        if cfg.max_ack_pending != self.cfg.max_ack_pending:
            self.maxp = cfg.max_ack_pending
            self.signal_new_messages()
        if cfg.ack_wait != self.cfg.ack_wait and self.ptmr is not None:
            self._reset_ptmr(100 * MS)
        if cfg.inactive_threshold != self.cfg.inactive_threshold:
            self.update_inactive_threshold(cfg)
            self._stop_timer("dtmr")
            if self.dthresh > 0:
                self.dtmr = gevent.spawn_later(self.dthresh / 1e9, self.delete_not_active)
        rate_changed = cfg.rate_limit != self.cfg.rate_limit
        self.maxdc = cfg.max_deliver
        pause_changed = cfg.pause_until != self.cfg.pause_until
        self.cfg = cfg
        if rate_changed:
            self.set_rate_limit(cfg.rate_limit)
        self.set_sample_freq()
        self.set_filters()
        if pause_changed:
            self.signal_new_messages()
        self.write_meta()

    def update_deliver_subject(self, new_deliver):
        """Go: updateDeliverSubjectLocked. A push durable bound to a new deliver subject."""
        if self.closed or self.is_pull_mode() or self.cfg.deliver_subject == new_deliver:
            return
        if self.pending:
            self.force_expire_pending()
        sl = self.acc.sublist
        if self.notified is not None:
            sl.clear_notification(self.notified, self.interest_changed)
        self.dsubj = self.cfg.deliver_subject = new_deliver
        self.notified = new_deliver.encode()
        sl.register_notification(self.notified, self.interest_changed)
        self.interest_changed()

    def meta_dir(self):
        return os.path.join(self.jsa.stream_dir(self.stream), OBS_DIR, self.name)

    def write_meta(self):
        """Go: writeConsumerMeta: the creation time and the config beside the consumer's
        state (file streams; the directory names the consumer). May yield."""
        if self.mset.cfg.storage != FILE_STORAGE or self.cfg.mem_storage or self.closed:
            return
        try:
            write_meta(self.meta_dir(), self.created, self.cfg.to_dict())
        except OSError as e:
            log.warning("JetStream consumer '%s > %s > %s' meta file: %s", self.acc.name, self.stream, self.name, e)

    # -- state ---------------------------------------------------------------------------------

    def read_stored_state(self):
        """Go: readStoredState / applyState."""
        if self.store is None or not self.store.has_state():
            return
        st = self.store.state()
        if self.sseq <= st.delivered.stream:
            self.sseq = st.delivered.stream + 1
        self.dseq = st.delivered.consumer + 1
        self.adflr = st.ack_floor.consumer
        self.asflr = st.ack_floor.stream
        self.pending = {s: [p[0], p[1]] for s, p in st.pending.items()}
        self.rdc = dict(st.redelivered)
        if self.rdc:
            last = self.mset.store.fast_state().last_seq
            for s in [s for s in self.rdc if s < self.asflr or s > last]:
                del self.rdc[s]
        if self.pending and self.ptmr is None:
            delay = 500 * MS + random.randrange(1000) * MS
            if self.cfg.ack_wait < delay:
                delay = self.ack_wait(0)
            self.ptmr = gevent.spawn_later(delay / 1e9, self.check_pending)

    def select_starting_seq_no(self):
        """Go: selectStartingSeqNo."""
        store = self.mset.store
        st = store.fast_state()
        cfg = self.cfg
        if cfg.opt_start_seq == 0:
            dp = cfg.deliver_policy
            if dp == DELIVER_ALL:
                self.sseq = st.first_seq
            elif dp == DELIVER_LAST:
                self.sseq = st.last_seq
                if self.filters:
                    self.sseq = max((store.filtered_state(1, f).last for f, _ in self.filters), default=0)
            elif dp == DELIVER_LAST_PER_SUBJECT:
                seqs = sorted(ss.last for f, _ in self.filters for ss in store.subjects_state(f).values())
                if seqs:
                    self.lss = [st.last_seq, deque(seqs)]
                    self.sseq = seqs[0]
                else:
                    self.sseq = st.last_seq
            elif cfg.opt_start_time is not None:
                self.sseq = store.get_seq_from_time(cfg.opt_start_time)
            else:
                self.sseq = st.last_seq + 1
        else:
            self.sseq = cfg.opt_start_seq
        if st.first_seq == 0:
            self.sseq = 1
        elif self.sseq < st.first_seq:
            self.sseq = st.first_seq
        elif self.sseq > st.last_seq:
            self.sseq = st.last_seq + 1
        self.dseq = 1
        self.adflr = 0
        self.asflr = self.sseq - 1
        if self.store is not None and self.sseq > 0:
            self.store.set_starting(self.sseq - 1)

    def update_delivered(self, dseq, sseq, dc, ts):
        """Go: updateDelivered."""
        if self.store is not None:
            try:
                self.store.update_delivered(dseq, sseq, dc, ts)
            except StoreError:
                pass
        self.ldt = time.time_ns()

    def update_acks(self, dseq, sseq):
        """Go: updateAcks."""
        if self.store is not None:
            try:
                self.store.update_acks(dseq, sseq)
            except StoreError:
                pass
        self.lat = time.time_ns()

    def write_store_state(self):
        """Go: writeStoreStateUnlocked."""
        if self.store is None:
            return
        from ..fs.store import ConsumerState, SequencePair
        st = ConsumerState(SequencePair(self.dseq - 1, self.sseq - 1), SequencePair(self.adflr, self.asflr),
                           {s: (p[0], p[1]) for s, p in self.pending.items()}, dict(self.rdc))
        try:
            self.store.update(st)
        except StoreError:
            pass

    def info(self):
        """Go: consumer.info, as JSON."""
        cfg = self.cfg
        delivered = {"consumer_seq": self.dseq - 1, "stream_seq": self.sseq - 1}
        if self.ldt:
            delivered["last_active"] = gofmt.format_time(self.ldt)
        ack_floor = {"consumer_seq": self.adflr, "stream_seq": self.asflr}
        if self.lat:
            ack_floor["last_active"] = gofmt.format_time(self.lat)
        num_waiting = 0
        if self.is_pull_mode() and self.waiting is not None:
            self.process_waiting(False)
            num_waiting = len(self.waiting)
        d = {"stream_name": self.stream, "name": self.name, "created": gofmt.format_time(self.created),
             "config": cfg.to_dict(), "delivered": delivered, "ack_floor": ack_floor,
             "num_ack_pending": len(self.pending), "num_redelivered": len(self.rdc),
             "num_waiting": num_waiting, "num_pending": self.stream_num_pending()}
        if self.is_push_mode() and self.active:
            d["push_bound"] = True
        remaining = self.pause_remaining()
        if remaining:
            d["paused"] = True
            d["pause_remaining"] = remaining
        return d

    def pause_remaining(self):
        """ns until the consumer's pause_until, 0 when not paused (Go 2.11)."""
        pu = self.cfg.pause_until
        if pu is None:
            return 0
        return max(pu - time.time_ns(), 0)

    # -- num pending ---------------------------------------------------------------------------

    def num_pending(self):
        """Go: numPending."""
        if self.npcm == 0:
            self.stream_num_pending()
        return max(self.npc, 0)

    def stream_num_pending(self):
        """Go: streamNumPending. Count again what is left to deliver."""
        store = self.mset.store
        npc = npcm = 0
        filters = [f for f, _ in self.filters] or [b""]
        try:
            if self.cfg.deliver_policy == DELIVER_LAST_PER_SUBJECT:
                for f in filters:
                    for ss in store.subjects_state(f).values():
                        if self.sseq <= ss.last:
                            npc += 1
                            npcm = max(npcm, ss.last)
            else:
                for f in filters:
                    ss = store.filtered_state(self.sseq, f)
                    npc += ss.msgs
                    npcm = max(npcm, ss.last)
        except StoreError:
            npc = npcm = 0
        self.npc, self.npcm = npc, npcm
        return npc

    def process_stream_signal(self, seq):
        """Go: processStreamSignal. The stream stored `seq`, which matches this consumer.
        Runs on the publisher's greenlet; does not yield."""
        if seq > self.npcm:
            self.npc += 1
        if seq < self.sseq:
            return
        if (self.active and self.is_push_mode()) or (self.waiting is not None and self.waiting.reqs):
            self.mch.set()

    def dec_stream_pending(self, sseq, subj):
        """Go: decStreamPending. The stream removed `sseq`; a pending delivery of it is
        terminated (later: the removal may be running inside the store)."""
        if sseq >= self.sseq and self.is_filtered_match(subj):
            self.npc -= 1
        p = self.pending.get(sseq)
        if p is not None:
            # Go passes the redelivery count as the deliveries (1 when nothing was redelivered).
            gevent.spawn(self.process_term, sseq, p[0], self.rdc.get(sseq, 0) if self.rdc else 1)

    def signal_new_messages(self):
        self.mch.set()

    # -- push interest -------------------------------------------------------------------------

    def has_local_interest(self):
        r = self.acc.sublist.match(self.dsubj.encode())
        return bool(r.psubs or r.qsubs)

    def interest_changed(self):
        """The deliver subject's interest may have changed (Sublist notification). Does not
        yield."""
        if not self.closed:
            self.update_delivery_interest(self.has_local_interest())

    def update_delivery_interest(self, interest):
        """Go: updateDeliveryInterest."""
        if self.is_pull_mode():
            return
        if interest and not self.active:
            self.signal_new_messages()
        self.active = interest
        if self.dtmr is not None and self.dthresh > 0 and not interest:
            return
        self._stop_timer("dtmr")
        if not interest and self.dthresh > 0:
            self.dtmr = gevent.spawn_later(self.dthresh / 1e9, self.delete_not_active)

    def delete_not_active(self):
        """Go: deleteNotActive. Runs in its own greenlet."""
        self.dtmr = None
        if self.closed:
            return
        if self.is_push_mode():
            if self.active:
                return
        else:
            now = time.time_ns()
            elapsed = now - self.waiting.last
            if elapsed <= self.cfg.inactive_threshold:
                self.dtmr = gevent.spawn_later((self.dthresh - elapsed) / 1e9, self.delete_not_active)
                return
            if self.check_waiting_for_interest():
                self.dtmr = gevent.spawn_later(self.dthresh / 1e9, self.delete_not_active)
                return
        self.delete()

    def suppress_deletion(self):
        """Go: suppressDeletion. An ack counts as activity."""
        if self.closed:
            return
        if self.is_push_mode() and self.dtmr is not None:
            self._stop_timer("dtmr")
            self.dtmr = gevent.spawn_later(self.dthresh / 1e9, self.delete_not_active)
        elif self.waiting is not None:
            self.waiting.last = time.time_ns()

    # -- acks ----------------------------------------------------------------------------------

    def push_ack(self, sub, c, acc, subject, reply, msg):
        """Go: pushAck and processAck: an ack on `$JS.ACK.<stream>.<consumer>.…`. Runs on the
        acker's greenlet; does not yield."""
        hdr = c.pa_hdr
        body = msg[hdr:-2] if hdr > 0 else msg[:-2]
        self.process_ack(subject, reply.decode("utf-8", "surrogateescape") if reply else "", body)
        if self.cfg.inactive_threshold > 0:
            self.suppress_deletion()

    def process_ack(self, subject, reply, msg):
        """Go: processAck."""
        sseq, dseq, dc = ack_reply_info(subject)
        skip_ack_reply = sseq == 0
        if not msg or msg == ACK_ACK or msg == ACK_OK:
            self.process_ack_msg(sseq, dseq, dc, True)
        elif msg.startswith(ACK_NEXT):
            self.process_ack_msg(sseq, dseq, dc, True)
            if reply:
                self.process_next_msg_request(reply, msg[len(ACK_NEXT):])
            skip_ack_reply = True
        elif msg.startswith(ACK_NAK):
            self.process_nak(sseq, dseq, dc, msg)
        elif msg == ACK_PROGRESS:
            self.progress_update(sseq)
        elif msg.startswith(ACK_TERM):
            self.process_term(sseq, dseq, dc)
        if reply and not skip_ack_reply:
            self.send(reply, b"")

    def progress_update(self, seq):
        """Go: progressUpdate. +WPI: the ack wait starts again."""
        p = self.pending.get(seq)
        if p is not None:
            p[1] = time.time_ns()
            self.update_delivered(p[0], seq, 1, p[1])

    def process_nak(self, sseq, dseq, dc, nak):
        """Go: processNak. With a delay (`-NAK {"delay": ns}` or `-NAK 1s`) the message is
        redelivered after it, else at once."""
        if dseq <= self.adflr or dseq > self.dseq:
            return
        if self.pending and sseq not in self.pending:
            return
        adv = self._typed_event(JS_CONSUMER_DELIVERY_NAK_ADVISORY_TYPE)
        adv.update(consumer_seq=dseq, stream_seq=sseq, deliveries=dc)
        self.send_advisory(f"{JS_ADVISORY_CONSUMER_MSG_NAK_PRE}.{self.stream}.{self.name}", adv)
        arg = nak[len(ACK_NAK):].strip()
        if arg:
            delay = parse_nak_delay(arg)
            if delay is None:
                log.warning("JetStream consumer '%s > %s > %s' bad NAK delay value: %s", self.acc.name,
                            self.stream, self.name, gofmt.go_quote(arg.decode("utf-8", "replace")))
            else:
                self.remove_from_redeliver_queue(sseq)
                p = self.pending.get(sseq)
                if p is not None:
                    p[1] = time.time_ns() - self.cfg.ack_wait + delay
                    self.update_delivered(p[0], sseq, dc, p[1])
                    if self.ptmr is not None:
                        self._reset_ptmr(10 * MS)
                return
        if sseq not in self.rdqi:
            self.add_to_redeliver_queue(sseq)
        self.signal_new_messages()

    def process_term(self, sseq, dseq, dc):
        """Go: processTerm. +TERM: no more deliveries of this message."""
        self.process_ack_msg(sseq, dseq, dc, False)
        adv = self._typed_event(JS_CONSUMER_DELIVERY_TERMINATED_ADVISORY_TYPE)
        adv.update(consumer_seq=dseq, stream_seq=sseq, deliveries=dc)
        self.send_advisory(f"{JS_ADVISORY_CONSUMER_MSG_TERMINATED_PRE}.{self.stream}.{self.name}", adv)

    def sample_ack(self, sseq, dseq, dc):
        """Go: sampleAck. The ack latency metric, for sample_freq percent of the acks."""
        if self.sfreq <= 0 or (self.sfreq < 100 and random.randrange(100) > self.sfreq):
            return
        now = time.time_ns()
        adv = {"type": JS_CONSUMER_ACK_METRIC_TYPE, "id": _nuid(), "timestamp": gofmt.format_time(now),
               "stream": self.stream, "consumer": self.name, "consumer_seq": dseq, "stream_seq": sseq,
               "ack_time": now - self.pending[sseq][1], "deliveries": dc}
        self.send_advisory(f"{JS_METRIC_CONSUMER_ACK_PRE}.{self.stream}.{self.name}", adv)

    def process_ack_msg(self, sseq, dseq, dc, do_sample):
        """Go: processAckMsg."""
        if self.closed:
            return
        ap = self.cfg.ack_policy
        sagap = 0
        need_signal = False
        if ap == ACK_EXPLICIT:
            p = self.pending.get(sseq)
            if p is not None:
                if do_sample:
                    self.sample_ack(sseq, dseq, dc)
                if self.maxp > 0 and len(self.pending) >= self.maxp:
                    need_signal = True
                del self.pending[sseq]
                dseq = p[0]
            if not self.pending:
                self.adflr, self.asflr = self.dseq - 1, self.sseq - 1
            elif dseq == self.adflr + 1:
                self.adflr, self.asflr = dseq, sseq
                for ss in range(sseq + 1, self.sseq):
                    p = self.pending.get(ss)
                    if p is not None:
                        if p[0] > 0:
                            self.adflr, self.asflr = p[0] - 1, ss - 1
                        break
            self.rdc.pop(sseq, None)
            self.remove_from_redeliver_queue(sseq)
        elif ap == ACK_ALL:
            if dseq <= self.adflr or sseq <= self.asflr:
                return
            if self.maxp > 0 and len(self.pending) >= self.maxp:
                need_signal = True
            sagap = sseq - self.asflr
            self.adflr, self.asflr = dseq, sseq
            for seq in range(sseq, sseq - sagap, -1):
                self.pending.pop(seq, None)
                self.rdc.pop(seq, None)
                self.remove_from_redeliver_queue(seq)
        else:
            return
        self.update_acks(dseq, sseq)
        mset = self.mset
        if mset.cfg.retention != LIMITS_POLICY:
            if sagap > 1:
                for seq in range(sseq, sseq - sagap, -1):
                    mset.ack_msg(self, seq)
            else:
                mset.ack_msg(self, sseq)
        if need_signal:
            self.signal_new_messages()

    def need_ack(self, sseq, subj):
        """Go: needAck. Whether this consumer still has to deliver or see an ack of `sseq`
        (subj: its subject, b"" when the caller did not load it)."""
        if self.filters:
            if not subj:
                try:
                    subj = self.mset.store.load_msg(sseq).subj
                except StoreError:
                    return False
            if not self.is_filtered_match(subj):
                return False
        if self.cfg.ack_policy == ACK_EXPLICIT:
            if sseq > self.asflr:
                return sseq >= self.sseq or sseq in self.pending
            return False
        return sseq > self.asflr

    # -- redelivery ----------------------------------------------------------------------------

    def ack_wait(self, nxt):
        """Go: ackWait."""
        return (nxt if nxt > 0 else self.cfg.ack_wait) + ACK_WAIT_DELAY

    def add_to_redeliver_queue(self, *seqs):
        self.rdq.extend(seqs)
        self.rdqi.update(seqs)

    def remove_from_redeliver_queue(self, seq):
        if seq in self.rdqi:
            self.rdqi.discard(seq)
            self.rdq.remove(seq)

    def inc_delivery_count(self, sseq):
        """Go: incDeliveryCount. Returns the delivery count this delivery is."""
        n = self.rdc.get(sseq, 0) + 1
        self.rdc[sseq] = n
        return n + 1

    def notify_delivery_exceeded(self, sseq, dc):
        """Go: notifyDeliveryExceeded."""
        adv = self._typed_event(JS_CONSUMER_DELIVERY_EXCEEDED_ADVISORY_TYPE)
        adv.update(stream_seq=sseq, deliveries=dc)
        self.send_advisory(f"{JS_ADVISORY_CONSUMER_MAX_DELIVERY_EXCEED_PRE}.{self.stream}.{self.name}", adv)

    def track_pending(self, sseq, dseq):
        """Go: trackPending."""
        if self.ptmr is None:
            self.ptmr = gevent.spawn_later(self.ack_wait(0) / 1e9, self.check_pending)
        p = self.pending.get(sseq)
        now = time.time_ns()
        if p is not None:
            p[1] = now
        else:
            self.pending[sseq] = [dseq, now]

    def _reset_ptmr(self, ns):
        self._stop_timer("ptmr")
        self.ptmr = gevent.spawn_later(ns / 1e9, self.check_pending)

    def force_expire_pending(self):
        """Go: forceExpirePending. Everything pending is redelivered now."""
        expired = sorted(s for s in self.pending if s not in self.rdqi)
        if expired:
            self.add_to_redeliver_queue(*expired)
            off = time.time_ns() - self.pending[expired[0]][1]
            for s in expired:
                self.pending[s][1] += off
            self._reset_ptmr(self.ack_wait(0))
        self.signal_new_messages()

    def check_pending(self):
        """Go: checkPending. Messages whose ack wait (or backoff step) passed go to the
        redelivery queue. Runs in its own greenlet."""
        self.ptmr = None
        if self.closed:
            return
        now = time.time_ns()
        ttl = self.cfg.ack_wait
        backoff = self.cfg.backoff
        nxt = self.ack_wait(0)
        if backoff:
            nxt = backoff[-1]
        fseq = self.mset.store.fast_state().first_seq
        update = False
        expired = []
        for seq in list(self.pending):
            p = self.pending[seq]
            if seq < fseq:
                del self.pending[seq]
                self.rdc.pop(seq, None)
                self.remove_from_redeliver_queue(seq)
                update = True
                continue
            elapsed, deadline = now - p[1], ttl
            if backoff:
                dc = self.rdc.get(seq, 0)
                nbi = dc + 1
                if dc + 1 >= len(backoff):
                    dc = len(backoff) - 1
                    nbi = dc
                deadline = backoff[dc]
                if backoff[nbi] < nxt:
                    nxt = backoff[nbi]
            if elapsed >= deadline:
                if seq not in self.rdqi:
                    expired.append(seq)
            elif deadline - elapsed < nxt:
                nxt = deadline - elapsed
        if expired:
            expired.sort()
            self.add_to_redeliver_queue(*expired)
            off = now - self.pending[expired[0]][1]
            for seq in expired:
                self.pending[seq][1] += off
            self.signal_new_messages()
        if self.pending:
            self.ptmr = gevent.spawn_later(self.ack_wait(nxt) / 1e9, self.check_pending)
        if update:
            self.write_store_state()

    # -- purge ---------------------------------------------------------------------------------

    def purge(self, sseq, slseq):
        """Go: consumer.purge. The stream was purged up to `sseq`."""
        if sseq == 0:
            sseq = slseq + 1
        if self.sseq < sseq:
            self.sseq = sseq
        if self.asflr < sseq:
            self.asflr = sseq - 1
            if self.dseq > 0:
                self.adflr = self.dseq - 1
        self.pending = {}
        if self.rdq:
            rdq = [s for s in self.rdq if s >= self.sseq]
            self.rdq, self.rdqi = deque(), set()
            self.add_to_redeliver_queue(*rdq)
        self.npcm = 0
        self.write_store_state()

    # -- pull requests -------------------------------------------------------------------------

    def process_next_msg_req(self, sub, c, acc, subject, reply, msg):
        """Go: processNextMsgReq: a request on `$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`.
        Runs on the requester's greenlet; does not yield."""
        if not reply:
            return
        hdr = c.pa_hdr
        body = msg[hdr:-2] if hdr > 0 else msg[:-2]
        self.process_next_msg_request(reply.decode("utf-8", "surrogateescape"), body)

    def send_err(self, reply, status, description):
        self.send(reply, status_hdr(status, description.encode()))

    def process_next_msg_request(self, reply, msg):
        """Go: processNextMsgRequest."""
        if self.closed:
            return
        if self.is_push_mode() or self.waiting is None:
            return self.send_err(reply, 409, "Consumer is push based")
        try:
            expires, batch, max_bytes, no_wait, hb, hbt = next_req_from_msg(msg)
        except ValueError as e:
            return self.send_err(reply, 400, f"Bad Request - {e}")
        cfg = self.cfg
        now = time.time_ns()
        if cfg.max_request_batch > 0 and batch > cfg.max_request_batch:
            return self.send_err(reply, 409, f"Exceeded MaxRequestBatch of {cfg.max_request_batch}")
        if expires and cfg.max_request_expires > 0 and expires > now + cfg.max_request_expires:
            return self.send_err(reply, 409,
                                 f"Exceeded MaxRequestExpires of {gofmt.duration_string(cfg.max_request_expires)}")
        if max_bytes > 0 and cfg.max_request_max_bytes > 0 and max_bytes > cfg.max_request_max_bytes:
            return self.send_err(reply, 409, f"Exceeded MaxRequestMaxBytes of {cfg.max_request_max_bytes}")
        if self.waiting.is_full():
            self.process_waiting(False)
        if no_wait:
            msgs_pending = self.num_pending() + len(self.rdq)
            if msgs_pending == 0 and not expires:
                self.waiting.last = now
                return self.send_err(reply, 404, "No Messages")
            if msgs_pending > 0:
                _, _, batch_pending, _ = self.process_waiting(False)
                if msgs_pending < batch_pending:
                    self.waiting.last = now
                    return self.send_err(reply, 408, "Requests Pending")
        wr = WaitingRequest(reply, batch, max_bytes, expires, hb, hbt, no_wait, now)
        if not self.waiting.add(wr):
            return self.send_err(reply, 409, "Exceeded MaxWaiting")
        self.signal_new_messages()

    def next_waiting(self, sz):
        """Go: nextWaiting. The request the next message (of `sz` bytes) goes to, or None."""
        waiting = self.waiting
        sl = self.acc.sublist
        while waiting.reqs:
            wr = waiting.reqs[0]
            if wr.b > 0:
                if sz <= wr.b:
                    wr.b -= sz
                    if wr.b == 0:
                        wr.n = 1
                else:
                    self.send(wr.reply, status_hdr(409, b"Message Size Exceeds MaxBytes", pending_hdrs(wr.n, wr.b)))
                    waiting.remove_current()
                    continue
            if not wr.expires or time.time_ns() < wr.expires:
                r = sl.match(wr.interest)
                if r.psubs or r.qsubs:
                    return waiting.pop()
            if wr.interest != wr.reply.encode():
                self.send(wr.reply, status_hdr(408, b"Interest Expired", pending_hdrs(wr.n, wr.b)))
            waiting.remove_current()
        return None

    def process_waiting(self, eos):
        """Go: processWaiting. Drops expired requests (408 Request Timeout) and those whose
        requester went away, sends the due request heartbeats. Returns (expired, waiting,
        messages the waiting requests want, ns of the next deadline or 0)."""
        waiting = self.waiting
        if waiting is None or not waiting.reqs:
            return 0, 0, 0, 0
        now = time.time_ns()
        expired = brp = fexp = 0
        sl = self.acc.sublist
        keep = deque()
        for wr in waiting.reqs:
            if (eos and wr.no_wait and wr.d > 0) or (wr.expires and now > wr.expires):
                self.send(wr.reply, status_hdr(408, b"Request Timeout", pending_hdrs(wr.n, wr.b)))
                expired += 1
                continue
            r = sl.match(wr.interest)
            if r.psubs or r.qsubs:
                brp += wr.n
                if wr.hbt:
                    if now > wr.hbt:
                        self.send_idle_heartbeat(wr.reply)
                        wr.hbt = now + wr.hb
                    if not fexp or wr.hbt < fexp:
                        fexp = wr.hbt
                if wr.expires and (not fexp or wr.expires < fexp):
                    fexp = wr.expires
                keep.append(wr)
                continue
            expired += 1
        waiting.reqs = keep
        return expired, len(keep), brp, fexp

    def check_waiting_for_interest(self):
        """Go: checkWaitingForInterest."""
        self.process_waiting(True)
        return len(self.waiting) > 0

    def release_any_pending_requests(self):
        """Go: releaseAnyPendingRequests. 409 Consumer Deleted to every waiting request."""
        if self.waiting is None:
            return
        for wr in self.waiting.reqs:
            self.send(wr.reply, status_hdr(409, b"Consumer Deleted"))
        self.waiting.reqs.clear()

    # -- delivery ------------------------------------------------------------------------------

    def load_next(self, start):
        """The first message at or after `start` on the filters, or None."""
        store = self.mset.store
        try:
            if not self.filters:
                return store.load_next_msg(b"", False, start)
            if len(self.filters) == 1:
                f, wc = self.filters[0]
                return store.load_next_msg(f, wc, start)
            best = None
            for f, wc in self.filters:
                sm = store.load_next_msg(f, wc, start)
                if sm is not None and (best is None or sm.seq < best.seq):
                    best = sm
            return best
        except StoreError:
            return None

    def get_next_msg(self):
        """Go: getNextMsg. (StoreMsg, delivery count, how to undo) or (None, 0, reason)."""
        store = self.mset.store
        while self.rdq:
            seq = self.rdq.popleft()
            self.rdqi.discard(seq)
            dc = self.inc_delivery_count(seq)
            if self.maxdc > 0 and dc > self.maxdc:
                if dc == self.maxdc + 1:
                    self.notify_delivery_exceeded(seq, dc - 1)
                self.pending.pop(seq, None)
                continue
            try:
                return store.load_msg(seq), dc, ("rdq", seq)
            except StoreError:
                self.pending.pop(seq, None)  # gone from the stream meanwhile
                self.rdc.pop(seq, None)
        undo = ("seq", self.sseq, None)
        seq = self.sseq
        if self.lss is not None and self.lss[1]:
            seqs = self.lss[1]
            seq = seqs[0]
            undo = ("seq", self.sseq, seq)
            if len(seqs) == 1:
                self.sseq = self.lss[0]
                self.lss = None
            else:
                seqs.popleft()
        if self.maxp > 0 and len(self.pending) >= self.maxp:
            self._undo(undo)
            return None, 0, "max_ack_pending"
        sm = self.load_next(seq)
        if sm is not None:
            if sm.seq >= self.sseq:
                self.sseq = sm.seq + 1
        else:
            last = store.fast_state().last_seq
            if last >= self.sseq:
                self.sseq = last + 1
        return sm, 1, undo

    def _undo(self, undo):
        """Put back what get_next_msg took when the message cannot go out now."""
        if undo[0] == "rdq":
            seq = undo[1]
            self.rdq.appendleft(seq)
            self.rdqi.add(seq)
            n = self.rdc.get(seq, 1) - 1
            if n > 0:
                self.rdc[seq] = n
            else:
                self.rdc.pop(seq, None)
            return
        _, sseq, lseq = undo
        if lseq is not None:
            if self.lss is None:
                self.lss = [self.sseq, deque()]
            self.lss[1].appendleft(lseq)
        self.sseq = sseq

    def ack_reply(self, sseq, dseq, dc, ts, pending):
        """Go: ackReply: `$JS.ACK.<stream>.<consumer>.<dc>.<sseq>.<dseq>.<ts>.<pending>`."""
        return f"{self.ack_reply_pre}{dc}.{sseq}.{dseq}.{ts}.{pending}"

    def loop_and_gather_msgs(self):
        """Go: loopAndGatherMsgs. Deliver while there is something to deliver and someone to
        deliver it to, then wait for a signal, a request deadline or the heartbeat. Runs in
        its own greenlet."""
        lts = 0
        lseq = self.mset.store.fast_state().last_seq if self.replay else 0
        hbd = self.cfg.heartbeat
        hb_next = time.monotonic() + hbd / 1e9 if hbd else 0
        mch = self.mch
        flush = self.client.flush_clients
        while not self.closed:
            mch.clear()
            reason = None
            pause = self.pause_remaining()
            sent = 0
            while not pause:
                if self.closed:
                    return
                if self.is_push_mode():
                    if not self.active or (self.maxpb > 0 and self.pbytes > self.maxpb):
                        break
                elif not self.waiting.reqs:
                    break
                sm, dc, undo = self.get_next_msg()
                if sm is None:
                    reason = undo
                    break
                if dc == 1 and self.npcm > 0:
                    self.npc -= 1
                ack_reply = self.ack_reply(sm.seq, self.dseq, dc, sm.ts, self.num_pending())
                hdr, msg = sm.hdr, sm.msg
                if self.cfg.headers_only:
                    hdr, msg = convert_to_headers_only(hdr, msg), b""
                sz = len(sm.subj) + len(ack_reply) + len(hdr) + len(msg)
                if self.is_push_mode():
                    dsubj = self.dsubj
                else:
                    wr = self.next_waiting(sz)
                    if wr is None:
                        self._undo(undo)
                        if dc == 1 and self.npcm > 0:
                            self.npc += 1
                        break
                    dsubj = wr.reply
                    if wr.n > 0 and wr.hb > 0:
                        wr.hbt = time.time_ns() + wr.hb
                if self.replay and lts > 0:
                    delay = sm.ts - lts
                    if delay > MS:
                        flush()
                        gevent.sleep(delay / 1e9)
                        if self.closed:
                            return
                lts = sm.ts
                if self.rlimit is not None:
                    delay = self.rate_limit_delay(sz)
                    if delay > 0:
                        flush()
                        gevent.sleep(delay)
                        if self.closed:
                            return
                self.deliver_msg(dsubj, ack_reply, sm, hdr, msg, dc)
                sent += 1
                if sent % FLUSH_EVERY == 0:
                    self.yield_to_receivers()  # a long catch-up lets the rest of the server run too
                if hbd:
                    hb_next = time.monotonic() + hbd / 1e9
            if sent:
                flush()
            if self.closed:
                return
            if self.replay and self.sseq > lseq:
                self.replay = False
            timeout = None
            if self.is_pull_mode():
                _, _, _, fexp = self.process_waiting(reason != "max_ack_pending")
                if fexp:
                    timeout = max((fexp - time.time_ns()) / 1e9, 0.001)
            if hbd:
                t = max(hb_next - time.monotonic(), 0)
                timeout = t if timeout is None else min(timeout, t)
            if pause:
                timeout = pause / 1e9 if timeout is None else min(timeout, pause / 1e9)
            if mch.wait(timeout):
                continue
            if self.closed:
                return
            if self.is_pull_mode():
                self.process_waiting(True)
            if hbd and time.monotonic() >= hb_next:
                if self.active and self.is_push_mode():
                    self.send_idle_heartbeat(self.cfg.deliver_subject)
                hb_next = time.monotonic() + hbd / 1e9

    def yield_to_receivers(self):
        """Between two parts of a long run of deliveries: flush, then let the receivers'
        writeloops and every other greenlet run (Go's goroutines run side by side); while a
        receiver is backed up past half its max_pending, wait for it (Go: stalledWait), as a
        publisher's readloop does, instead of queueing until it is cut off as a slow
        consumer. Yields."""
        c = self.client
        stalled = c.flush_clients()
        if stalled:
            stalled.stalled_wait(c)
        else:
            c.yield_to_others()  # gevent.sleep(0) would not let the hub poll for I/O

    def rate_limit_delay(self, sz):
        """Go: rate.Limiter.ReserveN: seconds to wait before `sz` bytes may go."""
        rl = self.rlimit
        rate, burst, tokens, last = rl
        now = time.monotonic()
        tokens = min(burst, tokens + (now - last) * rate) - sz
        rl[2], rl[3] = tokens, now
        return -tokens / rate if tokens < 0 else 0

    def deliver_msg(self, dsubj, ack_reply, sm, hdr, msg, dc):
        """Go: deliverMsg."""
        dseq = self.dseq
        self.dseq += 1
        psz = len(dsubj) + len(ack_reply) + len(hdr) + len(msg)
        if self.maxpb > 0:
            self.pbytes += psz
        seq = sm.seq
        self.send(dsubj, hdr, msg, ack_reply, sm.subj, flush=False)
        ap = self.cfg.ack_policy
        if ap == ACK_NONE:
            self.adflr, self.asflr = dseq, seq
        else:
            self.track_pending(seq, dseq)
        if self.maxpb > 0 and self.need_flow_control(psz):
            self.send_flow_control()
        if self.is_pull_mode() and self.dthresh > 0:
            self.waiting.last = time.time_ns()
        self.update_delivered(dseq, seq, dc, time.time_ns())
        if ap == ACK_NONE and self.mset.cfg.retention != LIMITS_POLICY:
            self.mset.ack_msg(self, seq)

    def send_idle_heartbeat(self, subj):
        """Go: sendIdleHeartbeat."""
        extra = (JS_LAST_CONSUMER_SEQ + b": " + str(self.dseq - 1).encode() + b"\r\n" +
                 JS_LAST_STREAM_SEQ + b": " + str(self.sseq - 1).encode() + b"\r\n")
        if self.fcid:
            extra += JS_CONSUMER_STALLED + b": " + self.fcid.encode() + b"\r\n"
        self.send(subj, status_hdr(100, b"Idle Heartbeat", extra))

    # -- flow control --------------------------------------------------------------------------

    def set_max_pending_bytes(self, limit):
        """Go: setMaxPendingBytes."""
        self.pblimit = limit
        self.maxpb = max(limit // 16, 1)

    def need_flow_control(self, sz):
        """Go: needFlowControl."""
        if self.maxpb == 0:
            return False
        if not self.fcid and self.pbytes > self.maxpb // 2:
            return True
        if self.fcid and self.pbytes - self.fcsz >= self.maxpb:
            self.fcsz += sz
        return False

    def process_flow_control(self, sub, c, acc, subject, reply, msg):
        """Go: processFlowControl: the answer to a flow control request. Does not yield."""
        if subject.decode("utf-8", "surrogateescape") != self.fcid:
            return
        if self.maxpb < self.pblimit:
            self.maxpb = min(self.maxpb * 2, self.pblimit)
        self.pbytes = max(self.pbytes - self.fcsz, 0)
        self.fcid, self.fcsz = "", 0
        self.signal_new_messages()

    def send_flow_control(self):
        """Go: sendFlowControl: `100 FlowControl Request` with a reply on `$JS.FC.…`."""
        if not self.is_push_mode():
            return
        rn = random.getrandbits(62)
        digits = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
        tail = "".join(digits[(rn // 62 ** i) % 62] for i in range(4))
        reply = f"{JS_FLOW_CONTROL_PRE}{self.stream}.{self.name}.{tail}"
        self.fcsz, self.fcid = self.pbytes, reply
        self.send(self.cfg.deliver_subject, status_hdr(100, b"FlowControl Request"), b"", reply)


def ack_reply_info(subject):
    """Go: ackReplyInfo. (stream seq, delivery seq, delivery count) of an ack subject (bytes);
    zeros when it is not one."""
    tokens = subject.split(b".")
    if len(tokens) != 9 or tokens[0] != b"$JS" or tokens[1] != b"ACK":
        return 0, 0, 0
    vals = []
    for t in (tokens[5], tokens[6], tokens[4]):
        if not t.isdigit():
            return 0, 0, 0
        vals.append(int(t))
    return vals[0], vals[1], vals[2]


def parse_nak_delay(arg):
    """The delay of a `-NAK` in ns: `{"delay": ns}` or a Go duration ("1s"); None if bad."""
    if arg[:1] == b"{":
        import json
        try:
            d = json.loads(arg)
        except ValueError:
            return None
        if not isinstance(d, dict):
            return None
        v = {k.lower(): x for k, x in d.items()}.get("delay", 0)
        return v if type(v) is int else None
    return parse_go_duration(arg.decode("utf-8", "replace"))


_UNITS = {"ns": 1, "us": 1_000, "\u00b5s": 1_000, "\u03bcs": 1_000, "ms": MS, "s": SEC, "m": 60 * SEC,
          "h": 3600 * SEC}
_DURATION_PART = re.compile("([0-9]+(?:[.][0-9]*)?|[.][0-9]+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(s):
    """Go: time.ParseDuration, in ns; None when malformed."""
    neg = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    if s == "0":
        return 0
    if not s:
        return None
    total = pos = 0
    while pos < len(s):
        m = _DURATION_PART.match(s, pos)
        if m is None:
            return None
        total += int(float(m.group(1)) * _UNITS[m.group(2)])
        pos = m.end()
    return -total if neg else total


def next_req_from_msg(msg):
    """Go: nextReqFromMsg. (expires ns since the epoch or 0, batch, max_bytes, no_wait,
    heartbeat ns, next heartbeat ns or 0); ValueError with Go's text when malformed."""
    import json
    req = msg.strip()
    if not req:
        return 0, 1, 0, False, 0, 0
    if req[:1] == b"{":
        try:
            d = json.loads(req)
        except ValueError as e:
            raise ValueError(f"invalid character in request: {e.msg}") from None
        if not isinstance(d, dict):
            raise ValueError("json: cannot unmarshal request")
        d = json_object(d)
        try:
            expires = want(d, "expires", int, 0)
            batch = want(d, "batch", int, 0)
            max_bytes = want(d, "max_bytes", int, 0)
            no_wait = want(d, "no_wait", bool, False)
            hb = want(d, "idle_heartbeat", int, 0)
        except BadJSON:
            raise ValueError("json: cannot unmarshal request") from None
        now = time.time_ns()
        hbt = 0
        if hb > 0:
            if hb * 2 > expires:
                raise ValueError("heartbeat value too large")
            hbt = now + hb
        return (now + expires if expires else 0), batch, max_bytes, no_wait, hb, hbt
    try:
        n = gofmt.atoi(req.decode("utf-8", "replace"))
    except ValueError:
        n = 1
    return 0, n, 0, False, 0, 0


def convert_to_headers_only(hdr, msg):
    """Go: convertToHeadersOnly. The header block with Nats-Msg-Size added."""
    return add_headers(hdr, JS_MSG_SIZE + b": " + str(len(msg)).encode() + b"\r\n")


# -- adding consumers to a stream ------------------------------------------------------------------


def add_consumer(mset, config, oname="", action="", recovering=False, created=None):
    """Go: addConsumerWithAssignment (with 2.10's create/update actions), for one server.
    Returns the consumer; raises ApiError. May yield (the meta file)."""
    jsa = mset.jsa
    if config is None:
        raise api_error("ConsumerConfigRequired")
    config = config.copy()
    set_consumer_config_defaults(config, jsa.limits)
    check_consumer_cfg(config, mset.cfg, jsa.limits,
                       None if recovering else gather_source_mirror_subjects(jsa, mset.cfg))
    cname = config.durable or config.name
    if cname:
        eo = mset.consumers.get(cname)
        if eo is not None:
            if action == "create" and not _same_config(eo, config):
                raise api_error("ConsumerAlreadyExists")
            eo.update_config(config)
            return eo
    if action == "update":
        raise api_error("ConsumerDoesNotExist")
    maxc = mset.cfg.max_consumers
    acc_max = jsa.limits.get("max_consumers", -1)
    if maxc <= 0 or 0 < acc_max < maxc:
        maxc = acc_max
    if 0 < maxc <= mset.num_public_consumers():
        raise api_error("MaximumConsumersLimit")
    if mset.cfg.retention == WORK_QUEUE_POLICY and not config.direct:
        if config.ack_policy != ACK_EXPLICIT:
            raise api_error("ConsumerWQRequiresExplicitAck")
        if mset.consumers:
            filters = config.subject_filters()
            if not filters:
                raise api_error("ConsumerWQMultipleUnfiltered")
            if not mset.partition_unique(filters):
                if recovering:
                    log.warning("Consumer %s > %s has a filter subject that overlaps with other consumers, which "
                                "is not allowed for a stream with WorkQueue policy, it should be administratively "
                                "deleted", gofmt.go_quote(mset.cfg.name), gofmt.go_quote(cname))
                else:
                    raise api_error("ConsumerWQConsumerNotUnique")
        if config.deliver_policy != DELIVER_ALL:
            raise api_error("ConsumerWQConsumerNotDeliverAll")
    if config.durable:
        if len(config.durable) > JS_MAX_NAME_LEN:
            raise api_error("ConsumerNameTooLongErrF", max=JS_MAX_NAME_LEN)
        name = config.durable
    elif oname:
        name = oname
    elif config.name:
        name = config.name
    else:
        name = create_consumer_name()
        while name in mset.consumers:
            name = create_consumer_name()
        config.name = name
    if not is_valid_name(name):
        raise api_error("ConsumerBadDurableName")
    o = Consumer(mset, config, name, created or time.time_ns())
    o.update_inactive_threshold(o.cfg)
    if not config.direct:
        try:
            o.store = new_consumer_store(mset, name, config)
        except (OSError, ValueError, StoreError) as e:
            raise api_error("ConsumerStoreFailedErrF", e) from None
    if o.store is not None and o.store.has_state():
        o.read_stored_state()
    else:
        o.select_starting_seq_no()
    if config.rate_limit:
        o.set_rate_limit(config.rate_limit)
    o.set_sample_freq()
    mset.set_consumer(o)
    o.set_leader()
    if not recovering:
        o.write_meta()
    o.send_action_advisory("create")
    return o


def _same_config(eo, config):
    """Go 2.10: an existing consumer's config equals the request's (an ephemeral's
    inactive_threshold default aside)."""
    a, b = eo.cfg.copy(), config.copy()
    if not b.durable and b.inactive_threshold <= 0:
        b.inactive_threshold = a.inactive_threshold
    return a == b


def new_consumer_store(mset, name, cfg):
    """Go: the stream store's ConsumerStore; memory state when the consumer asks for it."""
    from ..fs.memstore import ConsumerMemStore
    store = mset.store
    if cfg.mem_storage and mset.cfg.storage == FILE_STORAGE:
        o = ConsumerMemStore(store, name, cfg)
        store.add_consumer(o)
        return o
    return store.consumer_store(name, cfg)


def recover_consumers(mset):
    """Go: the consumer half of a stream's recovery: every `obs/<name>/meta.inf` comes back
    with its state. A bad one is skipped with a warning, as Go does. May yield."""
    odir = os.path.join(mset.jsa.stream_dir(mset.cfg.name), OBS_DIR)
    try:
        names = sorted(os.listdir(odir))
    except OSError:
        return
    for name in names:
        path = os.path.join(odir, name)
        meta = os.path.join(path, STREAM_META_FILE)
        if not os.path.exists(meta):
            continue
        try:
            created, d = read_meta(path)
            cfg = ConsumerConfig.from_dict(d)
        except (OSError, ValueError) as e:
            log.warning("  Error reading consumer metafile %r: %s", meta, e)
            continue
        try:
            add_consumer(mset, cfg, oname=name, recovering=True, created=created)
        except ApiError as e:
            log.warning("  Error adding consumer %r: %s", name, e)


__all__ = ["Consumer", "ConsumerConfig", "add_consumer", "check_consumer_cfg", "recover_consumers"]
