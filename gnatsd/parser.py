"""The client protocol parser: bytes in, `process_*` calls on the owning connection out.

Ports nats-server `server/parser.go` (client.parse). No socket, no gevent import.

Go's parser is a byte-at-a-time state machine. In Python that costs an interpreter loop per
byte, so this one parses by operation instead (DESIGN.md §3): find the LF with `bytes.find`,
split the arguments once, slice the payload. Two states survive across reads, as Go's
`argBuf` and `msgBuf`: a control line still missing its LF (`_pbuf`), and a payload still
missing bytes (`_need`, `_chunks`).

The owner (Go: `client`) provides the hooks `process_connect`, `process_info`,
`process_pub`, `process_hpub` (both return the payload size to read), `process_sub`,
`process_unsub`, `process_ping`, `process_pong`, `process_err`, `process_inbound_msg`
(called with the payload and its trailing CRLF), and the attributes `mcl` (max control line)
and `auth_pending` (auth is required and CONNECT has not arrived yet). While auth is pending,
a first op other than CONNECT asks `process_no_auth_user()` (default: refuse), which may
accept it (Go: the no_auth_user check at OP_START).
"""
from __future__ import annotations

import re

from .errors import (
    ERR_AUTH_VIOLATION,
    ERR_MAX_CONTROL_LINE,
    ERR_UNKNOWN_OP,
    ClosedState,
    ProtocolError,
)

# Op names and whether a space or tab must follow the name (Go: OP_PUB_SPC and friends).
# PING, PONG and +OK ignore everything after their letters; CONNECT and INFO take their
# JSON with or without a separator.
_OPS = (
    (b"PUB", True),
    (b"HPUB", True),
    (b"SUB", True),
    (b"UNSUB", True),
    (b"PING", False),
    (b"PONG", False),
    (b"CONNECT", False),
    (b"INFO", False),
    (b"+OK", False),
    (b"-ERR", True),
)
# Ops whose argument counts toward max_control_line (Go: overMaxControlLineLimit callers).
_NO_ARG_OPS = (b"PING", b"PONG", b"+OK")
_SEPARATORS = b" \t"


def _unknown_op(snippet):
    return ProtocolError(f"Unknown Protocol Operation: {snippet[:32]!r}", ERR_UNKNOWN_OP)


def split_op(line, complete):
    """Return (op, arg) for a control line without its CRLF, or raise Unknown Protocol Operation.

    With `complete` false the line is the start of one still arriving: a prefix of an op name is
    accepted (op is None), so garbage is refused at once instead of after max_control_line bytes.
    """
    head = line[:8].upper()
    for op, needs_sep in _OPS:
        n = len(op)
        if len(head) <= n and not complete:
            if op.startswith(head):
                return None, b""
            continue
        if not head.startswith(op):
            continue
        if needs_sep:
            if len(line) == n:
                if complete:
                    break
                return None, b""
            if line[n] not in _SEPARATORS:
                break
        # Go's argument starts at the first non-blank byte and keeps trailing blanks, which
        # count toward max_control_line.
        return op, line[n:].lstrip(_SEPARATORS)
    raise _unknown_op(line)


def pub_args(arg):
    """Go: processPub's split, on spaces and tabs only.

    bytes.split() also splits on CR, VT and FF, which Go keeps inside subjects. The common
    line has its tokens one space apart and nothing around them, and then split() is exact;
    checking that by lengths costs 31 ns per line on PyPy against 89 ns for testing for the
    odd bytes (CPython: 211 ns against 152; PyPy is the speed target). Anything else takes
    the exact split.
    """
    args = arg.split()
    n = len(args)
    if n == 2:
        k = len(args[0])
        if k + len(args[1]) + 1 == len(arg) and arg[k] == 32:
            return args
    elif n == 3:
        k = len(args[0])
        k2 = k + 1 + len(args[1])
        if k2 + 1 + len(args[2]) == len(arg) and arg[k] == 32 and arg[k2] == 32:
            return args
    return _PUB_SPLIT.split(arg.strip(_SEPARATORS))


def split_arg(arg):
    """Go: splitArg, for SUB and UNSUB: spaces, tabs and CRs separate arguments."""
    if 11 in arg or 12 in arg:
        return _ARG_SPLIT.split(arg.strip(b" \t\r"))
    return arg.split()


_PUB_SPLIT = re.compile(rb"[ \t]+")
_ARG_SPLIT = re.compile(rb"[ \t\r]+")


def _auth_violation():
    # Go: parse, label authErr. The first op must be CONNECT when auth is required.
    return ProtocolError("authorization violation", ERR_AUTH_VIOLATION, ClosedState.AuthenticationViolation)


class Parser:
    """Mixin for the connection class: `parse(data)` feeds one read's bytes."""

    # Partial state across reads (Go: parseState's argBuf, msgBuf).
    _pbuf = b""  # the start of a control line whose LF has not arrived
    _need = 0  # bytes of payload (with CRLF) awaited; 0 when not inside a payload
    _have = 0
    _chunks = None

    def parse(self, data):
        """Process every complete operation in `data`; keep what is incomplete for the next call."""
        if self._need:
            self._chunks.append(data)
            self._have += len(data)
            if self._have < self._need:
                if self._have == self._need - 1 and data[-1] != 13:
                    raise _unknown_op(data[-1:])  # Go: MSG_END_R refuses the byte at once
                return
            data = b"".join(self._chunks)
            need = self._need
            self._need = self._have = 0
            self._chunks = None
            self._process_payload(data, 0, need)
            pos = need
        elif self._pbuf:
            data = self._pbuf + data
            self._pbuf = b""
            pos = 0
        else:
            pos = 0
        n = len(data)
        mcl = self.mcl
        while pos < n:
            eol = data.find(b"\n", pos)
            if eol < 0:
                self._keep_partial_line(data[pos:])
                return
            end = eol - 1 if eol > pos and data[eol - 1] == 13 else eol
            # Fast path for the common PUB; anything unusual goes through parse_op.
            if data.startswith(b"PUB ", pos) and end - pos - 4 <= mcl and not self.auth_pending:
                size = self.process_pub(pub_args(data[pos + 4 : end]))
            else:
                size = self.parse_op(data[pos:end])
            pos = eol + 1
            if size >= 0:
                stop = pos + size + 2
                if stop > n:
                    if stop - 1 == n and data[-1] != 13:
                        raise _unknown_op(data[-1:])
                    self._need = size + 2
                    self._chunks = [data[pos:]]
                    self._have = n - pos
                    return
                self._process_payload(data, pos, stop)
                pos = stop

    def _process_payload(self, data, start, stop):
        # Go: MSG_END_R / MSG_END_N. The payload must be followed by exactly CRLF.
        if data[stop - 2] != 13 or data[stop - 1] != 10:
            raise _unknown_op(data[stop - 2 : stop])
        self.process_inbound_msg(data[start:stop])

    def _check_auth_pending(self, line):
        # Go refuses the first byte already when it cannot begin CONNECT, unless a
        # no_auth_user takes the connection (the owner's process_no_auth_user).
        if line[:1] not in (b"C", b"c") and not self.process_no_auth_user():
            raise _auth_violation()

    def process_no_auth_user(self):
        """Auth is required and the first op is not CONNECT: True to accept it anyway."""
        return False

    def _keep_partial_line(self, rest):
        if self.auth_pending:
            self._check_auth_pending(rest)
        op, arg = split_op(rest.rstrip(b"\r"), False)
        if op in _NO_ARG_OPS:
            rest = op  # Go skips their trailing junk without keeping it
        elif len(arg) > self.mcl:
            raise ProtocolError("maximum control line exceeded", ERR_MAX_CONTROL_LINE,
                                ClosedState.MaxControlLineExceeded)
        elif self.auth_pending and op is not None and op != b"CONNECT":
            raise _auth_violation()
        elif op is not None:
            # Keep the op and its argument only: Go skips the blanks between them without
            # buffering, so a line padded with endless blanks must not grow memory either.
            rest = rest[: len(op)] + b" " + arg
        self._pbuf = rest

    def parse_op(self, line):
        """Dispatch one complete control line; returns the payload size to read, or -1."""
        if self.auth_pending:
            self._check_auth_pending(line)
        op, arg = split_op(line, True)
        if self.auth_pending and op != b"CONNECT":
            raise _auth_violation()
        if op in _NO_ARG_OPS:
            if op == b"PING":
                self.process_ping()
            elif op == b"PONG":
                self.process_pong()
            return -1
        if len(arg) > self.mcl:
            raise ProtocolError("maximum control line exceeded", ERR_MAX_CONTROL_LINE,
                                ClosedState.MaxControlLineExceeded)
        if op == b"PUB":
            return self.process_pub(pub_args(arg))
        if op == b"HPUB":
            return self.process_hpub(pub_args(arg))
        if op == b"SUB":
            self.process_sub(split_arg(arg))
        elif op == b"UNSUB":
            self.process_unsub(split_arg(arg))
        elif op == b"CONNECT":
            self.process_connect(arg)
        elif op == b"INFO":
            self.process_info(arg)
        else:  # -ERR
            self.process_err(arg)
        return -1
