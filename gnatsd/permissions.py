"""What one connection may publish and subscribe to: its permissions as it uses them.

Ports the permission parts of nats-server `server/client.go`: permissions, perm,
setPermissions (here `ClientPermissions.__init__`), pubAllowedFullCheck, prunePubPermsCache,
canSubscribe, queueMatches, loadMsgDenyFilter, checkDenySub, pruneDenyCache, the reply
tracking of deliverMsg and pruneReplyPerms; and `subjectIsSubsetMatch` and
`subjectIsLiteral` of `server/sublist.go`. The permission types come from `auth.py`.

Allow and deny lists are Sublists of `_PermSub` entries, so wildcards in them match as in
subscriptions. Subjects are bytes, as on the wire.

Cost (DESIGN.md §3): a connection without permissions has `pperms` and `dperms` set to None
and pays one attribute test per PUB and one per delivery to it. With publish permissions, a
PUB costs one dict lookup in `pcache` once its subject has been seen (Go: perms.pcache).
Nothing here yields.
"""
from __future__ import annotations

import logging
import time
from itertools import islice

from .sublist import Sublist, SublistError, subject_is_literal, subject_is_subset_match

log = logging.getLogger("gnatsd")

# Go: client.go
MAX_PERM_CACHE_SIZE = 128  # maxPermCacheSize, publish results cached per connection
MAX_DENY_PERM_CACHE_SIZE = 256  # maxDenyPermCacheSize
PRUNE_SIZE = 32  # pruneSize
REPLY_PERM_LIMIT = 4096  # replyPermLimit, tracked reply subjects before a prune


class _PermSub:
    """An entry of an allow or deny Sublist (Go: a bare subscription{subject, queue})."""

    __slots__ = ("subject", "queue")

    def __init__(self, subject, queue=None):
        self.subject = subject
        self.queue = queue


class _Resp:
    """Go: resp. When a reply subject was received, and how many responses went to it."""

    __slots__ = ("t", "n")

    def __init__(self, t):
        self.t = t
        self.n = 0


def split_subject_queue(sq):
    """Go: splitSubjectQueue. "foo.> q1" -> (b"foo.>", b"q1"); raises ValueError on 3+ fields."""
    vals = sq.split()
    if not vals:
        raise ValueError(f'invalid subject-queue "{sq}"')
    if len(vals) > 2:
        raise ValueError(f'invalid subject-queue "{sq}"')
    return vals[0].encode(), (vals[1].encode() if len(vals) == 2 else None)


def _sublist(entries, with_queue, what):
    sl = Sublist()
    for text in entries:
        try:
            if with_queue:
                subject, queue = split_subject_queue(text)
            else:
                subject, queue = text.encode(), None
            sl.insert(_PermSub(subject, queue))
        except (ValueError, SublistError) as e:
            # Go logs the queue split error and skips invalid subjects without a word.
            log.error("Invalid %s permission %r: %s", what, text, e)
    return sl


def queue_matches(queue, qsubs):
    """Go: queueMatches. Whether `queue` is one of the groups of a permission match; a group
    name with wildcards matches queue names as a subject would."""
    if not qsubs:
        return True
    for group in qsubs:
        qname = group[0].queue
        # `*` and `>` are valid queue names too: compare literally first.
        if queue == qname or (not subject_is_literal(qname) and subject_is_subset_match(queue, qname)):
            return True
    return False


class ClientPermissions:
    """Go: permissions, with the client's `replies`, `mperms` and `darray`.

    Built from an auth.Permissions whose response permissions were validated
    (auth.validate_response_permissions). One per connection: the caches are its own.
    """

    __slots__ = ("pub_allow", "pub_deny", "sub_allow", "sub_deny", "resp", "pcache", "replies",
                 "darray", "mdeny", "dcache")

    def __init__(self, perms):
        self.pub_allow = self.pub_deny = None
        self.sub_allow = self.sub_deny = None
        self.resp = None  # Go: perms.resp, an auth.ResponsePermission
        self.pcache = {}  # Go: perms.pcache, subject -> allowed
        self.replies = None  # Go: c.replies, reply subject -> _Resp
        self.darray = None  # Go: c.darray, the subscribe deny subjects
        self.mdeny = None  # Go: c.mperms.deny, checked on delivery once a wildcard sub covers a deny
        self.dcache = None  # Go: c.mperms.dcache
        pub = perms.publish
        if pub is not None:
            if pub.allow is not None:
                self.pub_allow = _sublist(pub.allow, False, "publish allow")
            if pub.deny:
                self.pub_deny = _sublist(pub.deny, False, "publish deny")
        if perms.response is not None:
            self.resp = perms.response
            self.replies = {}
        sub = perms.subscribe
        if sub is not None:
            # Go: an empty subscribe allow list allows everything (unlike publish).
            if sub.allow:
                self.sub_allow = _sublist(sub.allow, True, "subscribe allow")
            if sub.deny:
                self.sub_deny = _sublist(sub.deny, True, "subscribe deny")
                self.darray = [s.encode() for s in sub.deny]

    @property
    def has_pub(self):
        """Whether publishing is checked at all (Go: pub.allow != nil || pub.deny != nil)."""
        return self.pub_allow is not None or self.pub_deny is not None

    @property
    def has_delivery(self):
        """Whether deliveries to this connection are checked or tracked."""
        return self.mdeny is not None or self.replies is not None

    # -- publish ----------------------------------------------------------------------------

    def pub_allowed(self, subject):
        """Go: pubAllowed (pubAllowedFullCheck with the full check). `subject` is bytes."""
        v = self.pcache.get(subject)
        if v is not None:
            return v
        allowed = True
        if self.pub_allow is not None:
            allowed = bool(self.pub_allow.match(subject).psubs)
        if allowed and self.pub_deny is not None:
            allowed = not self.pub_deny.match(subject).psubs
        if not allowed and self.resp is not None:
            # A reply to a request this connection received may be allowed: never cached.
            r = self.replies.get(subject)
            if r is not None:
                r.n += 1
                resp = self.resp
                if 0 < resp.max_msgs < r.n:
                    del self.replies[subject]
                elif resp.expires > 0 and time.monotonic() - r.t > resp.expires:
                    del self.replies[subject]
                else:
                    allowed = True
            return allowed
        pcache = self.pcache
        pcache[subject] = allowed
        if len(pcache) > MAX_PERM_CACHE_SIZE:
            # Go: prunePubPermsCache drops pruneSize entries, or more while over the maximum.
            # Go's sync.Map has no order; the oldest go first here.
            n = max(PRUNE_SIZE, len(pcache) - MAX_PERM_CACHE_SIZE)
            for key in list(islice(pcache, n)):
                del pcache[key]
        return allowed

    def add_reply(self, reply):
        """Go: deliverMsg's reply tracking. A connection with response permissions may publish
        to the reply subject of a message delivered to it."""
        replies = self.replies
        replies[reply] = _Resp(time.monotonic())
        if len(replies) > REPLY_PERM_LIMIT:
            self.prune_reply_perms()

    def prune_reply_perms(self):
        """Go: pruneReplyPerms. Drop the replies that are used up or expired."""
        mm = self.resp.max_msgs
        ttl = self.resp.expires
        now = time.monotonic()
        stale = [k for k, r in self.replies.items() if (mm > 0 and r.n >= mm) or (ttl > 0 and now - r.t > ttl)]
        for k in stale:
            del self.replies[k]

    # -- subscribe --------------------------------------------------------------------------

    def can_subscribe(self, subject, queue=None):
        """Go: canSubscribe. `subject` and `queue` (or None) are bytes.

        allow ["foo"] lets "foo" be subscribed with or without any queue; allow ["foo v1"]
        allows only queue group v1 on foo; deny entries work the same way the other round.
        """
        allowed = True
        if self.sub_allow is not None:
            r = self.sub_allow.match(subject)
            allowed = bool(r.psubs)
            if queue is not None and r.qsubs:
                allowed = queue_matches(queue, r.qsubs)
        if allowed and self.sub_deny is not None:
            r = self.sub_deny.match(subject)
            allowed = not r.psubs
            if queue is not None and r.qsubs:
                allowed = not queue_matches(queue, r.qsubs)
            # A wildcard subscription wider than a deny entry is allowed, and the denied
            # subjects are then filtered out on delivery (Go: loadMsgDenyFilter).
            if allowed and self.mdeny is None and not subject_is_literal(subject):
                for d in self.darray:
                    if subject_is_subset_match(d, subject):
                        self.load_msg_deny_filter()
                        break
        return allowed

    def load_msg_deny_filter(self):
        """Go: loadMsgDenyFilter. The deny entries as a Sublist for deliveries; entries with a
        queue name match no subject there (as in Go, where "foo q" is one literal token)."""
        sl = Sublist()
        for d in self.darray:
            if b" " in d or b"\t" in d:
                continue
            try:
                sl.insert(_PermSub(d))
            except SublistError:
                pass
        self.mdeny = sl
        self.dcache = {}

    def deliver_denied(self, subject):
        """Go: checkDenySub. Whether a message on `subject` must not be delivered."""
        dcache = self.dcache
        denied = dcache.get(subject)
        if denied is not None:
            return denied
        denied = bool(self.mdeny.match(subject).psubs)
        dcache[subject] = denied
        if len(dcache) > MAX_DENY_PERM_CACHE_SIZE:
            for key in list(islice(dcache, PRUNE_SIZE)):
                del dcache[key]
        return denied
