"""How /connz sorts. Ports nats-server `server/monitor_sort_opts.go` (SortOpt, IsValid and the
sort.Interface types byCid, bySubs, ...).

Go builds a ConnInfo for every connection and sorts those. gnatsd sorts the connections
themselves on the one value the sort needs, then builds ConnInfos for the requested page only:
on a server with many connections most of them are never formatted. Each option has a key
for an open connection (a Client) and one for a closed one (a ring.ClosedClient).

Directions are Go 2.9.10's: cid/start, uptime and reason ascend, every other key descends.
Python's sort is stable, so ties keep connection order (Go's sort.Sort does not promise any).

No socket, no gevent import.
"""
from __future__ import annotations

import time

BY_CID = "cid"  # by connection id
BY_START = "start"  # by connection start time, same as cid
BY_SUBS = "subs"  # by number of subscriptions
BY_PENDING = "pending"  # by bytes waiting to be sent to the client
BY_OUT_MSGS = "msgs_to"  # by messages sent
BY_IN_MSGS = "msgs_from"  # by messages received
BY_OUT_BYTES = "bytes_to"  # by bytes sent
BY_IN_BYTES = "bytes_from"  # by bytes received
BY_LAST = "last"  # by last activity
BY_IDLE = "idle"  # by inactivity (Go 2.9.10 measures it as last activity - start)
BY_UPTIME = "uptime"  # by how long the connection exists (existed)
BY_STOP = "stop"  # by when a closed connection stopped
BY_REASON = "reason"  # by why a closed connection closed

SORT_OPTS = (BY_CID, BY_START, BY_SUBS, BY_PENDING, BY_OUT_MSGS, BY_IN_MSGS, BY_OUT_BYTES,
             BY_IN_BYTES, BY_LAST, BY_IDLE, BY_UPTIME, BY_STOP, BY_REASON)


def is_valid(sort_opt):
    """Go: SortOpt.IsValid."""
    return sort_opt == "" or sort_opt in SORT_OPTS


def last_wall(c, now_wall, now_mono):
    """An open client's last activity on the wall clock (Client.last is monotonic)."""
    return now_wall - (now_mono - c.last)


# Per option: (key of an open Client, key of a ClosedClient, descending). Open-client keys
# take (client, now_wall, now_mono).
_KEYS = {
    BY_CID: (lambda c, w, m: c.cid, lambda cc, w: cc.cid, False),
    BY_START: (lambda c, w, m: c.cid, lambda cc, w: cc.cid, False),
    BY_SUBS: (lambda c, w, m: len(c.subs), lambda cc, w: cc.num_subs, True),
    BY_PENDING: (lambda c, w, m: c.pb, lambda cc, w: cc.pending, True),
    BY_OUT_MSGS: (lambda c, w, m: c.out_msgs, lambda cc, w: cc.out_msgs, True),
    BY_IN_MSGS: (lambda c, w, m: c.in_msgs, lambda cc, w: cc.in_msgs, True),
    BY_OUT_BYTES: (lambda c, w, m: c.out_bytes, lambda cc, w: cc.out_bytes, True),
    BY_IN_BYTES: (lambda c, w, m: c.in_bytes, lambda cc, w: cc.in_bytes, True),
    BY_LAST: (lambda c, w, m: last_wall(c, w, m), lambda cc, w: cc.last, True),
    BY_IDLE: (lambda c, w, m: last_wall(c, w, m) - c.start, lambda cc, w: cc.last - cc.start, True),
    BY_UPTIME: (lambda c, w, m: w - c.start, lambda cc, w: cc.stop - cc.start, False),
    # stop and reason are only allowed on closed connections (Connz checks).
    BY_STOP: (None, lambda cc, w: cc.stop, True),
    BY_REASON: (None, lambda cc, w: cc.reason, False),
}


def sort_conns(sort_opt, open_clients, closed_clients, now_wall=None):
    """Return [(is_open, entry), ...] sorted by `sort_opt`. Does not yield."""
    if now_wall is None:
        now_wall = time.time()
    now_mono = time.monotonic()
    okey, ckey, desc = _KEYS[sort_opt or BY_CID]
    rows = []
    if open_clients:
        rows.extend((okey(c, now_wall, now_mono), True, c) for c in open_clients)
    if closed_clients:
        rows.extend((ckey(cc, now_wall), False, cc) for cc in closed_clients)
    rows.sort(key=_first, reverse=desc)
    return [(is_open, entry) for _, is_open, entry in rows]


def _first(row):
    return row[0]
