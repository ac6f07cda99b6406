"""Protocol tracing for `-V`: every op a client sends and every proto line it is sent.

Ports nats-server's traceInOp / traceMsg / traceOutOp (`server/client.go`). Tracing wraps a
connection's handlers on that connection only, when it is created with tracing on, so the
hot path carries no `if trace:` test when it is off.
"""
from __future__ import annotations

import logging

from .log import TRACE

log = logging.getLogger("gnatsd")


def _line(op, args):
    return (op + b" " + b" ".join(args)).decode("utf-8", "replace") if args else op.decode()


_TRACED = (
    ("process_pub", b"PUB", "args"), ("process_hpub", b"HPUB", "args"),
    ("process_sub", b"SUB", "args"), ("process_unsub", b"UNSUB", "args"),
    ("process_connect", b"CONNECT", "arg"), ("process_info", b"INFO", "arg"),
    ("process_err", b"-ERR", "arg"),
    ("process_ping", b"PING", None), ("process_pong", b"PONG", None),
)


def is_traced(client):
    return "process_inbound_msg" in vars(client)


def uninstall_tracing(client):
    """Undo install_tracing (Go: reloadClientTraceLevel turning trace off)."""
    for name in [t[0] for t in _TRACED] + ["process_inbound_msg", "enqueue_proto"]:
        vars(client).pop(name, None)


def install_tracing(client, max_msg_len=0):
    """Wrap `client`'s protocol handlers so each op is logged at TRACE level."""

    def traced(name, op, kind):
        inner = getattr(client, name)

        if kind == "args":
            def wrapper(args):
                log.log(TRACE, "%s - <<- [%s]", client, _line(op, args))
                return inner(args)
        elif kind == "arg":
            def wrapper(arg):
                log.log(TRACE, "%s - <<- [%s %s]", client, op.decode(), arg.decode("utf-8", "replace"))
                return inner(arg)
        else:
            def wrapper():
                log.log(TRACE, "%s - <<- [%s]", client, op.decode())
                return inner()
        setattr(client, name, wrapper)

    for name, op, kind in _TRACED:
        traced(name, op, kind)

    inbound = client.process_inbound_msg

    def process_inbound_msg(msg):
        payload = msg[:-2]
        if max_msg_len and len(payload) > max_msg_len:
            shown = payload[:max_msg_len].decode("utf-8", "replace") + "..."
        else:
            shown = payload.decode("utf-8", "replace")
        log.log(TRACE, "%s - <<- MSG_PAYLOAD: [%s]", client, shown)
        return inbound(msg)

    client.process_inbound_msg = process_inbound_msg

    enqueue = client.enqueue_proto

    def enqueue_proto(data):
        log.log(TRACE, "%s - ->> [%s]", client, data.rstrip(b"\r\n").decode("utf-8", "replace"))
        return enqueue(data)

    client.enqueue_proto = enqueue_proto
