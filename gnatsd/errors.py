"""Error texts sent to clients and the ways a connection can end.

Ports nats-server `server/errors.go` (the texts clients match on) and the `ClosedState`
enum of `server/client.go` with its strings from `server/monitor.go`.
"""
from __future__ import annotations

import enum

# -ERR texts, byte-for-byte as nats-server 2.9.10 sends them.
ERR_UNKNOWN_OP = "Unknown Protocol Operation"
ERR_AUTH_VIOLATION = "Authorization Violation"
ERR_AUTH_TIMEOUT = "Authentication Timeout"
ERR_MAX_PAYLOAD = "Maximum Payload Violation"
ERR_MAX_CONTROL_LINE = "maximum control line exceeded"
ERR_INVALID_PUB_SUBJECT = "Invalid Publish Subject"
ERR_INVALID_SUBJECT = "Invalid Subject"
ERR_MAX_SUBS = "maximum subscriptions exceeded"
ERR_MAX_CONNECTIONS = "maximum connections exceeded"
ERR_BAD_CLIENT_PROTOCOL = "invalid client protocol"
ERR_NO_RESPONDERS_HEADERS = "no responders requires headers support"
ERR_STALE_CONNECTION = "Stale Connection"
ERR_TOO_MANY_ACCOUNT_CONNECTIONS = "maximum account active connections exceeded"


class ProtocolError(Exception):
    """An error that ends the connection: readloop sends `err` (if any) and closes with `reason`.

    Go: the errors `parse` returns to readLoop (logged, closed as ProtocolViolation, no -ERR),
    and the violations that Go handles inline (maxPayloadViolation, authViolation, ...), which
    send their -ERR first. readloop is the one place that turns either into a close.
    """

    def __init__(self, text, err=None, reason=None):
        super().__init__(text)
        self.err = err
        self.reason = reason if reason is not None else ClosedState.ProtocolViolation


class ClosedState(enum.IntEnum):
    """Go: ClosedState, in Go's order from 1. `str()` gives the /connz reason text."""

    ClientClosed = 1
    AuthenticationTimeout = 2
    AuthenticationViolation = 3
    TLSHandshakeError = 4
    SlowConsumerPendingBytes = 5
    SlowConsumerWriteDeadline = 6
    WriteError = 7
    ReadError = 8
    ParseError = 9
    StaleConnection = 10
    ProtocolViolation = 11
    BadClientProtocolVersion = 12
    WrongPort = 13
    MaxAccountConnectionsExceeded = 14
    MaxConnectionsExceeded = 15
    MaxPayloadExceeded = 16
    MaxControlLineExceeded = 17
    MaxSubscriptionsExceeded = 18
    DuplicateRoute = 19
    RouteRemoved = 20
    ServerShutdown = 21
    AuthenticationExpired = 22
    WrongGateway = 23
    MissingAccount = 24
    Revocation = 25
    InternalClient = 26
    MsgHeaderViolation = 27
    NoRespondersRequiresHeaders = 28
    ClusterNameConflict = 29
    DuplicateRemoteLeafnodeConnection = 30
    DuplicateClientID = 31
    DuplicateServerName = 32
    MinimumVersionRequired = 33
    ClusterNamesIdentical = 34

    def __str__(self):
        return _CLOSED_STATE_TEXT[self]


_CLOSED_STATE_TEXT = {
    ClosedState.ClientClosed: "Client Closed",
    ClosedState.AuthenticationTimeout: "Authentication Timeout",
    ClosedState.AuthenticationViolation: "Authentication Failure",
    ClosedState.TLSHandshakeError: "TLS Handshake Failure",
    ClosedState.SlowConsumerPendingBytes: "Slow Consumer (Pending Bytes)",
    ClosedState.SlowConsumerWriteDeadline: "Slow Consumer (Write Deadline)",
    ClosedState.WriteError: "Write Error",
    ClosedState.ReadError: "Read Error",
    ClosedState.ParseError: "Parse Error",
    ClosedState.StaleConnection: "Stale Connection",
    ClosedState.ProtocolViolation: "Protocol Violation",
    ClosedState.BadClientProtocolVersion: "Bad Client Protocol Version",
    ClosedState.WrongPort: "Incorrect Port",
    ClosedState.MaxAccountConnectionsExceeded: "Maximum Account Connections Exceeded",
    ClosedState.MaxConnectionsExceeded: "Maximum Connections Exceeded",
    ClosedState.MaxPayloadExceeded: "Maximum Message Payload Exceeded",
    ClosedState.MaxControlLineExceeded: "Maximum Control Line Exceeded",
    ClosedState.MaxSubscriptionsExceeded: "Maximum Subscriptions Exceeded",
    ClosedState.DuplicateRoute: "Duplicate Route",
    ClosedState.RouteRemoved: "Route Removed",
    ClosedState.ServerShutdown: "Server Shutdown",
    ClosedState.AuthenticationExpired: "Authentication Expired",
    ClosedState.WrongGateway: "Wrong Gateway",
    ClosedState.MissingAccount: "Missing Account",
    ClosedState.Revocation: "Credentials Revoked",
    ClosedState.InternalClient: "Internal Client",
    ClosedState.MsgHeaderViolation: "Message Header Violation",
    ClosedState.NoRespondersRequiresHeaders: "No Responders Requires Headers",
    ClosedState.ClusterNameConflict: "Cluster Name Conflict",
    ClosedState.DuplicateRemoteLeafnodeConnection: "Duplicate Remote LeafNode Connection",
    ClosedState.DuplicateClientID: "Duplicate Client ID",
    ClosedState.DuplicateServerName: "Duplicate Server Name",
    ClosedState.MinimumVersionRequired: "Minimum Version Required",
    ClosedState.ClusterNamesIdentical: "Cluster Names Identical",
}
