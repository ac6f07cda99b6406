"""Server options and their defaults. Ports nats-server `server/opts.go` (Options,
setBaselineOptions); the defaults come from `const.py` (Go: const.go).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from . import const


@dataclass
class Options:
    """Go: Options. Durations are float seconds; sizes are bytes."""

    config_file: str = ""
    server_name: str = ""
    host: str = const.DEFAULT_HOST
    port: int = const.DEFAULT_PORT
    client_advertise: str = ""
    # logging
    debug: bool = False
    trace: bool = False
    logtime: bool = True
    log_file: str = ""
    syslog: bool = False
    pid_file: str = ""
    ports_file_dir: str = ""
    # monitoring
    http_host: str = ""
    http_port: int = 0
    # auth (single user or token, from the command line; config files add more)
    username: str = ""
    password: str = ""
    authorization: str = ""  # token
    auth_timeout: float = const.AUTH_TIMEOUT
    # limits
    max_connections: int = const.DEFAULT_MAX_CONNECTIONS
    max_subs: int = 0
    max_payload: int = const.MAX_PAYLOAD_SIZE
    max_pending: int = const.MAX_PENDING_SIZE
    max_control_line: int = const.MAX_CONTROL_LINE_SIZE
    no_header_support: bool = False
    # liveness
    ping_interval: float = const.DEFAULT_PING_INTERVAL
    ping_max: int = const.DEFAULT_PING_MAX_OUT
    write_deadline: float = const.DEFAULT_FLUSH_DEADLINE
    lame_duck_duration: float = const.DEFAULT_LAME_DUCK_DURATION
    lame_duck_grace_period: float = const.DEFAULT_LAME_DUCK_GRACE_PERIOD
    # accepted on the command line, not yet implemented (JetStream, TLS, clustering)
    jetstream: bool = False
    store_dir: str = ""
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca_cert: str = ""
    tls_verify: bool = False
    cluster_name: str = ""
    cluster_listen: str = ""
    routes: list = field(default_factory=list)

    def copy(self, **changes):
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Options(**values)
