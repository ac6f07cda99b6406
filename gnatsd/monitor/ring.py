"""The closed connections /connz?state=closed reports. Ports nats-server `server/ring.go`
(closedClient, closedRingBuffer) and the snapshot of `Server.saveClosedClient` (server.go).

A closed client is kept as a small record of raw values, taken when the connection closes;
/connz formats the few it shows. The ring is bounded (Go: DEFAULT_MAX_CLOSED_CLIENTS,
10,000): the oldest record goes when a new one arrives.

No socket, no gevent import. Does not yield.
"""
from __future__ import annotations

import time
from collections import deque

DEFAULT_MAX_CLOSED_CLIENTS = 10000  # Go: const.go DEFAULT_MAX_CLOSED_CLIENTS


class ClosedClient:
    """Go: closedClient. What /connz needs of a connection once it is gone."""

    __slots__ = (
        "cid", "host", "port", "start", "last", "stop", "reason", "rtt", "pending",
        "in_msgs", "out_msgs", "in_bytes", "out_bytes", "num_subs", "name", "lang", "version",
        "subs", "user", "acc", "jwt", "type", "tls_cs",
    )

    @classmethod
    def from_client(cls, c):
        """Go: saveClosedClient's snapshot. `c` has just been closed (close_reason is set).

        Times are wall-clock float seconds. Subscriptions are kept as (subject, queue, sid,
        msgs, max) tuples of str/int, for subscriptions_list(_detail).
        """
        cc = cls.__new__(cls)
        now = time.time()
        cc.cid = c.cid
        cc.host = c.host
        cc.port = c.port
        cc.start = c.start
        # Client.last is monotonic; place it on the wall clock.
        cc.last = now - (time.monotonic() - c.last)
        cc.stop = c.stop_time if c.stop_time is not None else now
        cc.reason = str(c.close_reason) if c.close_reason is not None else ""
        cc.rtt = c.rtt
        cc.pending = c.pb
        cc.in_msgs = c.in_msgs
        cc.out_msgs = c.out_msgs
        cc.in_bytes = c.in_bytes
        cc.out_bytes = c.out_bytes
        subs = c.subs
        cc.num_subs = len(subs)
        cc.subs = [sub_tuple(s) for s in subs.values()] if subs else None
        copts = c.copts
        cc.name = copts.get("name") or ""
        cc.lang = copts.get("lang") or ""
        cc.version = copts.get("version") or ""
        cc.user = copts.get("user") or ""  # Go: c.opts.Username
        cc.acc = c.acc.name if c.acc is not c.srv.gacc else ""  # Go: only a non-global account's name
        cc.jwt = copts.get("jwt") or ""
        cc.type = c.type_string  # Go: ConnInfo.Type, "nats" or "websocket"
        cc.tls_cs = c.tls_cs  # Go: fill keeps version and cipher suite, not the peer certificates
        return cc


def sub_tuple(sub):
    """(subject, queue, sid, msgs, max) of a subscription, as str and int."""
    q = sub.queue
    return (sub.subject.decode("utf-8", "replace"), q.decode("utf-8", "replace") if q else "",
            sub.sid.decode("utf-8", "replace"), sub.nm, sub.max)


class ClosedRingBuffer:
    """Go: closedRingBuffer. At most `size` closed clients, oldest first.

    Also counts every close by reason (not in Go), for the /metrics counters: the ring only
    holds the latest ones.
    """

    def __init__(self, size=DEFAULT_MAX_CLOSED_CLIENTS):
        self.conns = deque(maxlen=max(size, 0))
        self.total = 0  # Go: total, every closed client ever appended
        self.by_reason = {}

    def append(self, client):
        """Snapshot a client that has just closed. Does not yield."""
        self.total += 1
        reason = str(client.close_reason) if client.close_reason is not None else ""
        self.by_reason[reason] = self.by_reason.get(reason, 0) + 1
        if self.conns.maxlen:
            self.conns.append(ClosedClient.from_client(client))

    def __len__(self):
        return len(self.conns)

    def closed_clients(self):
        """Go: closedClients. A copy, oldest first."""
        return list(self.conns)
