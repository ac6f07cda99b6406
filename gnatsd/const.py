"""Protocol constants and defaults. Ports nats-server `server/const.go`."""
from __future__ import annotations

# The nats-server release whose client-visible behaviour gnatsd implements (INFO `version`).
VERSION = "2.9.10"
# gnatsd's own release (`gnatsd --version`, the start-up log).
GNATSD_VERSION = "0.1.0"
PROTO = 1

DEFAULT_PORT = 4222
RANDOM_PORT = -1
DEFAULT_HOST = "0.0.0.0"
DEFAULT_HTTP_PORT = 8222

MAX_PAYLOAD_SIZE = 1024 * 1024
MAX_PAYLOAD_MAX_SIZE = 8 * 1024 * 1024  # above this, a start-up warning
MAX_PENDING_SIZE = 64 * 1024 * 1024
MAX_CONTROL_LINE_SIZE = 4096
DEFAULT_MAX_CONNECTIONS = 64 * 1024

DEFAULT_PING_INTERVAL = 120.0  # seconds
DEFAULT_PING_MAX_OUT = 2
FIRST_PING_INTERVAL = 2.0  # Go: firstClientPingInterval
AUTH_TIMEOUT = 2.0
TLS_TIMEOUT = 2.0
DEFAULT_FLUSH_DEADLINE = 10.0  # write_deadline
DEFAULT_LAME_DUCK_DURATION = 120.0
DEFAULT_LAME_DUCK_GRACE_PERIOD = 10.0

# Go: ACCEPT_MIN_SLEEP / ACCEPT_MAX_SLEEP, the back-off after an accept error.
ACCEPT_MIN_SLEEP = 0.01
ACCEPT_MAX_SLEEP = 1.0

# Read buffer sizes (Go: startBufSize, minBufSize, maxBufSize).
START_BUF_SIZE = 512
MIN_BUF_SIZE = 64
MAX_BUF_SIZE = 65536

# Go: the kinds of connection. Routes, gateways and leafnodes will reuse conn.Client;
# SYSTEM, JETSTREAM and ACCOUNT clients are the server's own, without a connection.
CLIENT, ROUTER, GATEWAY, SYSTEM, LEAF, JETSTREAM, ACCOUNT = range(7)
