"""Config reload (SIGHUP, `--signal reload`): apply a changed config file to a running server.

Ports nats-server `server/reload.go`: Reload, ReloadOptions, diffOptions, applyOptions, the
Apply of each option gnatsd has, reloadAuthorization (configured accounts and users),
clientHasMovedToDifferentAccount, with `client.go`'s swapAccountAfterReload and
processSubsOnConfigReload. Options that cannot change while running (the listen address,
cluster settings, ...) make the whole reload fail with Go's "config reload not supported
for <Field>" and leave the server as it was.

Runs in its own greenlet (the signal handler's): re-checking a bcrypt password yields.
"""
from __future__ import annotations

import logging
import time
from dataclasses import fields

from . import auth, events, gofmt
from .accounts import AccountError, build_accounts
from .const import CLIENT
from .errors import ClosedState
from .opts import Options, ProcessConfigErr, merge_flags, process_config_file, set_baseline_options

log = logging.getLogger("gnatsd")


class ReloadError(ValueError):
    """Go: the error Reload returns; the running configuration is unchanged."""


# Options that apply as they are, read where they are used (Go's noop and simple options).
_SIMPLE = {"ping_interval", "ping_max", "write_deadline", "auth_timeout", "tls_timeout", "max_traced_msg_len"}
_LOGGING = {"debug", "trace", "trace_verbose", "logtime", "log_file", "syslog", "remote_syslog"}
_AUTH = {"username", "password", "authorization", "users", "nkeys", "accounts", "no_auth_user"}
# Go: TLSConfig is one option; gnatsd keeps its parts apart.
_TLS = {"tls", "tls_cert", "tls_key", "tls_ca_cert", "tls_verify", "tls_handshake_first",
        "tls_handshake_first_fallback", "tls_min_version", "tls_ciphers"}
_OTHER = {"max_connections", "pid_file", "ports_file_dir", "max_control_line", "max_payload",
          "client_advertise"}
_RELOADABLE = _SIMPLE | _LOGGING | _AUTH | _TLS | _OTHER
# Not options read from a config file: never compared.
_IGNORED = {"config_file", "check_config"}
# Go's field names, for the errors that name one.
_GO_NAMES = {
    "host": "Host", "port": "Port", "server_name": "ServerName", "http_host": "HTTPHost", "http_port": "HTTPPort",
    "https_port": "HTTPSPort", "http_base_path": "HTTPBasePath", "max_pending": "MaxPending",
    "max_subs": "MaxSubs", "max_sub_tokens": "MaxSubTokens", "lame_duck_duration": "LameDuckDuration",
    "lame_duck_grace_period": "LameDuckGracePeriod", "log_size_limit": "LogSizeLimit",
    "no_header_support": "NoHeaderSupport", "jetstream": "JetStream", "store_dir": "StoreDir",
    "tls_map": "TLSMap", "allow_non_tls": "AllowNonTLS", "no_auth_user": "NoAuthUser",
    "system_account": "SystemAccount", "no_system_account": "NoSystemAccount", "prof_port": "ProfPort",
    "max_closed_clients": "MaxClosedClients", "cluster_name": "Cluster", "cluster_listen": "Cluster",
    "routes": "Routes", "trusted_operators": "TrustedOperators", "operator_jwts": "TrustedOperators",
    "trusted_keys": "TrustedKeys", "account_resolver": "AccountResolver", "resolver_preloads": "resolverPreloads",
    "resolver_pinned_accounts": "resolverPinnedAccounts", "jetstream_max_memory": "JetStreamMaxMemory",
    "jetstream_max_store": "JetStreamMaxStore", "jetstream_domain": "JetStreamDomain",
    "jetstream_sync_interval": "SyncInterval",
}
_DURATIONS = {"ping_interval", "write_deadline", "lame_duck_duration", "lame_duck_grace_period"}


def reload(srv):
    """Go: Server.Reload. Read the config file again, put the command line over it, apply."""
    config_file = srv.opts.config_file
    if not config_file:
        raise ReloadError("can only reload config when a file is provided using -c or --config")
    new = Options()
    try:
        process_config_file(new, config_file)
    except ProcessConfigErr as e:
        if e.errors:
            raise ReloadError(str(e)) from None
    except OSError as e:
        raise ReloadError(f"error opening config file: {e.strerror or e}") from None
    merge_flags(new)
    reload_options(srv, new)


def reload_options(srv, new):
    """Go: ReloadOptions. Apply `new` (complete options) if every change can be made live."""
    cur = srv.opts
    set_baseline_options(new)
    new.config_file, new.check_config = cur.config_file, cur.check_config
    if new.port in (0, -1):
        new.port = cur.port  # Go: a random port keeps the one bound
    changed = diff_options(cur, new)
    if changed:
        from .server import ConfigError, validate_options
        try:
            validate_options(new)
        except ConfigError as e:
            raise ReloadError(str(e)) from None
        if changed & _AUTH:
            try:
                build_accounts(new.accounts)  # checked before anything changes
            except AccountError as e:
                raise ReloadError(str(e)) from None
    srv.opts = new
    apply_options(srv, cur, new, changed)
    srv.config_time = time.time()


def _show(name, value):
    if isinstance(value, bool):
        return str(value).lower()
    if name in _DURATIONS:
        return gofmt.duration_string(int(value * 1e9))
    if value is None:
        return "<nil>"
    return str(value)


def diff_options(cur, new):
    """Go: diffOptions. The names of the options that changed; ReloadError for one that
    cannot change live."""
    changed = set()
    for f in fields(Options):
        name = f.name
        if name in _IGNORED:
            continue
        old, value = getattr(cur, name), getattr(new, name)
        if old == value:
            continue
        if name in _RELOADABLE:
            changed.add(name)
            continue
        raise ReloadError(f"config reload not supported for {_GO_NAMES.get(name, name)}: "
                          f"old={_show(name, old)}, new={_show(name, value)}")
    return changed


def apply_options(srv, cur, new, changed):
    """Go: applyOptions."""
    from .log import configure_logging, logging_configured
    from .trace import install_tracing, is_traced, uninstall_tracing
    if changed & _LOGGING and logging_configured():
        try:
            configure_logging(new)
        except OSError as e:
            log.error("Failed to reload the log file %s: %s", new.log_file, e.strerror or e)
    if {"trace", "max_traced_msg_len"} & changed:
        # Go: reloadClientTraceLevel.
        for c in list(srv.clients.values()):
            if is_traced(c):
                uninstall_tracing(c)
            if new.trace:
                install_tracing(c, new.max_traced_msg_len)
    if changed & _TLS:
        srv.configure_tls()
    if "max_payload" in changed:
        for c in srv.clients.values():
            c.mpay = new.max_payload
        log.info("Reloaded: max_payload = %d", new.max_payload)
    if "max_control_line" in changed:
        for c in srv.clients.values():
            c.mcl = new.max_control_line
        log.info("Reloaded: max_control_line = %d", new.max_control_line)
    if changed & (_TLS | {"max_payload", "client_advertise"}):
        srv._info = srv._build_info()
    if "max_connections" in changed:
        clients = list(srv.clients.values())
        extra = len(clients) - new.max_connections
        if new.max_connections > 0 and extra > 0:
            for c in clients[-extra:]:
                c.max_conn_exceeded()
            log.info("Closed %d connections to fall within max_connections", extra)
        log.info("Reloaded: max_connections = %d", new.max_connections)
    if "pid_file" in changed and new.pid_file:
        from .cli import log_pid
        try:
            log_pid(new.pid_file)
        except OSError as e:
            log.error("Failed to write pidfile: %s", e)
    if changed & _AUTH:
        reload_authorization(srv)
        if srv.js is not None:
            srv.js.configure_accounts()  # Go: configAllJetStreamAccounts
    log.info("Reloaded server configuration")


# -- accounts and users ---------------------------------------------------------------------------


def reload_authorization(srv):
    """Go: reloadAuthorization for configured accounts and users. New Account objects take
    over the old ones' sublists, clients and internal state; clients whose user moved to
    another account (or is gone) are closed; the others are authenticated again with what
    they sent in CONNECT, and lose the subscriptions they may no longer have."""
    if srv.trusted_keys is not None:
        return  # operator mode: accounts come from the resolver and users bring JWTs (todo: Go re-fetches claims)
    old = srv.accounts
    sys_name = srv.sys_account.name if srv.sys_account is not None else ""
    for acc in old.values():
        _remove_service_import_subs(acc)
    accounts = build_accounts(srv.opts.accounts)
    if sys_name and sys_name not in accounts:
        accounts[sys_name] = old[sys_name]  # the default system account, not in the config
    stream_imports_changed = set()
    for name, acc in accounts.items():
        prev = old.get(name)
        acc.srv = srv
        if prev is None or prev is acc:
            continue
        _take_over(acc, prev)
        if [(i.acc.name, i.from_, i.to) for i in acc.stream_imports] != \
                [(i.acc.name, i.from_, i.to) for i in prev.stream_imports]:
            stream_imports_changed.add(name)
    srv.accounts = accounts
    srv.gacc = accounts["$G"]
    srv.sublist = srv.gacc.sublist
    if sys_name:
        srv.sys_account = accounts[sys_name]
        if srv.sys is not None:
            srv.sys.account = srv.sys_account
            srv.sys.client.acc = srv.sys_account
    srv.sys_only_user = None
    auth.configure_authorization(srv)
    for acc in accounts.values():
        acc.add_all_service_import_subs()
    if srv.sys is not None:
        events.add_system_account_exports(srv, srv.sys_account)
    clients = list(srv.clients.values())
    for c in clients:
        if _moved_to_different_account(srv, c):
            c.close_connection(ClosedState.ClientClosed)
    for c in clients:
        if c.closed:
            continue
        c.acc = accounts.get(c.acc.name, srv.gacc)  # Go: swapAccountAfterReload
        if srv.auth_required and c.connect_received and c.kind == CLIENT:
            if not srv.check_authentication(c):  # may yield: bcrypt
                c.auth_violation()
                continue
        elif not srv.auth_required:
            c.perms = c.pperms = c.dperms = None
        process_subs_on_config_reload(c, c.acc.name in stream_imports_changed)


def _remove_service_import_subs(acc):
    """Go: removeAllServiceImportSubs."""
    ic = acc.ic
    if ic is None:
        return
    for si in acc.service_imports.values():
        if si.sub is not None:
            ic.unsubscribe(si.sub)
            si.sub = None


def _take_over(acc, prev):
    """The state a reloaded account keeps from its previous self (Go: the transfer in
    reloadAuthorization)."""
    acc.sublist = prev.sublist
    acc.clients = prev.clients
    acc.ic, acc.isid = prev.ic, prev.isid
    if acc.ic is not None:
        acc.ic.acc = acc
    acc.rr_map = prev.rr_map
    acc.responses = prev.responses
    acc.si_reply = prev.si_reply
    acc.in_msgs, acc.in_bytes = prev.in_msgs, prev.in_bytes
    acc.out_msgs, acc.out_bytes = prev.out_msgs, prev.out_bytes
    acc.slow_consumers = prev.slow_consumers
    # JetStream's streams go on in the new Account (which accounts have JetStream does not
    # change live).
    acc.js = prev.js
    if acc.js is not None:
        acc.js.acc = acc


def _moved_to_different_account(srv, c):
    """Go: clientHasMovedToDifferentAccount."""
    copts = c.copts
    if copts.get("nkey"):
        u = (srv.nkeys or {}).get(copts["nkey"])
    elif copts.get("user"):
        u = (srv.users or {}).get(copts["user"])
    else:
        return False
    if u is None:
        return True
    return c.acc.name != (u.account or "$G")


def process_subs_on_config_reload(c, stream_imports_changed):
    """Go: processSubsOnConfigReload. Drop the subscriptions the client's new permissions
    refuse, telling it; redo the shadows of the others when its account's stream imports
    changed."""
    from .accounts import add_shadow_subscriptions, remove_shadow_subs
    from .conn import go_quote
    perms = c.perms
    for sub in list(c.subs.values()):
        allowed = perms is None or perms.can_subscribe(sub.subject, None) or (
            sub.queue is not None and perms.can_subscribe(sub.subject, sub.queue))
        if not allowed:
            c.unsubscribe(sub)
            c.send_err(f"Permissions Violation for Subscription to {go_quote(sub.subject)} "
                       f"(sid {go_quote(sub.sid)})")
            log.info("Removed sub %s (sid %s) for %s - not authorized", go_quote(sub.subject), go_quote(sub.sid),
                     auth.auth_user_text(c.copts))
        elif stream_imports_changed:
            if sub.shadow is not None:
                remove_shadow_subs(sub)
            if c.acc.stream_imports:
                add_shadow_subscriptions(c, c.acc, sub)
