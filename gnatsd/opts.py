"""Server options, the config file and the command line. Ports nats-server `server/opts.go`
(Options, setBaselineOptions, ProcessConfigFile, processConfigFileLine, parseDuration,
parseListen, ConfigureOptions), the config errors of `server/errors.go` (configErr,
unknownConfigFieldErr, configWarningErr, processConfigErr) and, in `FlagSet`, the parts of
Go's `flag` package that nats-server's command line relies on.

The defaults come from `const.py` (Go: const.go). Durations are float seconds, sizes bytes.

Flags override the config file, as in Go (ConfigureOptions parses the flags, reads the
file, then applies the flags again): `configure_options` reads the file into fresh
Options and then applies every flag given, in order.

This module does not import gevent and starts nothing; the `gnatsd` command (`cli.py`)
drives it.
"""
from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field, fields
from typing import Optional

from . import const
from .gofmt import go_quote
from .conf import ItemType, Parser, read_config_file


@dataclass
class WebsocketOpts:
    """Go: WebsocketOpts, the `websocket` block (websocket.py serves it). A port of 0: no
    WebSocket listener."""

    host: str = ""
    port: int = 0
    advertise: str = ""
    no_auth_user: str = ""
    jwt_cookie: str = ""
    # the block's own `authorization { user, password, token, timeout }`: overrides the
    # server's single user or token for WebSocket clients (Go: authOverride)
    username: str = ""
    password: str = ""
    token: str = ""
    auth_timeout: float = 0.0  # 0: the server's
    no_tls: bool = False
    tls: Optional["Options"] = None  # Go: TLSConfig; an Options with the tls_* fields of the block
    tls_map: bool = False
    same_origin: bool = False
    allowed_origins: list = field(default_factory=list)
    compression: bool = False
    handshake_timeout: float = 0.0  # seconds; 0: none


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
    log_size_limit: int = 0  # bytes; 0: no rotation by size
    remote_syslog: str = ""
    trace_verbose: bool = False  # -VV: trace the system account too
    max_traced_msg_len: int = 0  # 0: unlimited
    check_config: bool = False  # -t
    # monitoring
    http_host: str = ""
    http_port: int = 0
    https_port: int = 0
    http_base_path: str = ""
    max_closed_clients: int = 10000  # Go: MaxClosedClients, closed connections kept for /connz
    prof_port: int = 0
    # auth (single user or token, from the command line or an authorization block)
    username: str = ""
    password: str = ""
    authorization: str = ""  # token
    auth_timeout: float = 0.0  # 0: the default, set at start (set_baseline_options): 2 s, or tls_timeout + 1 s
    no_auth_user: str = ""  # Go: NoAuthUser, a user of `users` taken by clients without credentials
    users: Optional[list] = None  # Go: Users, auth.User entries (None: no users list)
    nkeys: Optional[list] = None  # Go: Nkeys, auth.NkeyUser entries
    # accounts (accounts.py; users name theirs in User.account)
    accounts: list = field(default_factory=list)  # accounts.AccountConfig entries
    system_account: str = ""  # Go: SystemAccount; empty: $SYS
    no_system_account: bool = False
    # operator mode (conf_jwt.py): accounts and users come from JWTs
    trusted_operators: list = field(default_factory=list)  # Go: TrustedOperators, jwt.OperatorClaims
    operator_jwts: list = field(default_factory=list)  # their JWTs as read
    trusted_keys: Optional[list] = None  # Go: TrustedKeys, operator public keys
    account_resolver: str = ""  # Go: AccountResolver: "MEMORY" (or "URL" from an operator, refused)
    resolver_preloads: dict = field(default_factory=dict)  # account public key -> account JWT
    resolver_pinned_accounts: Optional[set] = None
    # limits
    max_connections: int = const.DEFAULT_MAX_CONNECTIONS
    max_subs: int = 0
    max_sub_tokens: int = 0  # Go: MaxSubTokens, 1-255 tokens in a subscription's subject; 0: no limit
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
    # TLS for clients (Go: TLSConfig, TLSTimeout, TLSMap, AllowNonTLS, from the tls block or
    # the --tls* flags; see tls.py). Any of tls, tls_verify, tls_cert, tls_key, tls_ca_cert
    # turns TLS on.
    tls: bool = False
    tls_cert: str = ""
    tls_key: str = ""
    tls_ca_cert: str = ""
    tls_verify: bool = False  # require client certificates signed by tls_ca_cert
    tls_map: bool = False  # verify_and_map: the client certificate names the user
    tls_timeout: float = const.TLS_TIMEOUT  # seconds for the handshake
    tls_handshake_first: bool = False  # handshake before INFO (newer nats-server)
    tls_handshake_first_fallback: float = 0.0  # seconds; > 0: INFO first if the client sends nothing
    tls_min_version: str = ""  # "1.2" (default) or "1.3"
    tls_ciphers: list = field(default_factory=list)  # Go cipher suite names; empty: Go's defaults
    allow_non_tls: bool = False  # TLS is offered (tls_available), not required
    jetstream: bool = False
    store_dir: str = ""
    jetstream_max_memory: int = -1  # bytes; -1: 75 % of system memory
    jetstream_max_store: int = -1  # bytes; -1: 75 % of the free disk
    jetstream_domain: str = ""
    jetstream_sync_interval: str = ""  # "" or "always": fsync before each ack; else seconds between syncs
    # accepted on the command line, not yet implemented (clustering)
    cluster_name: str = ""
    cluster_listen: str = ""
    cluster_advertise: str = ""
    cluster_no_advertise: bool = False
    cluster_connect_retries: int = 0
    routes: list = field(default_factory=list)
    websocket: WebsocketOpts = field(default_factory=WebsocketOpts)

    def copy(self, **changes):
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        values.update(changes)
        return Options(**values)


# -- config errors (Go: errors.go) -------------------------------------------------------------


class ConfigErr(ValueError):
    """Go: configErr. An error about one config value, at its key's `file:line:col`."""

    def __init__(self, token, reason):
        super().__init__(reason)
        self.token = token
        self.reason = reason

    @property
    def source_file(self):
        return self.token.source_file if self.token is not None else ""

    @property
    def line(self):
        return self.token.line if self.token is not None else 0

    @property
    def pos(self):
        return self.token.pos if self.token is not None else 0

    def source(self):
        return self.token.source()

    def __str__(self):
        if self.token is not None:
            return f"{self.source()}: {self.reason}"
        return self.reason


class UnknownConfigFieldErr(ConfigErr):
    """Go: unknownConfigFieldErr. `hint` may suggest a known field."""

    def __init__(self, token, field_name, hint=""):
        super().__init__(token, f"unknown field \"{field_name}\"{hint}")
        self.field = field_name


class ConfigWarningErr(ConfigErr):
    """Go: configWarningErr. Reported, but the server still starts."""

    def __init__(self, token, field_name, reason):
        super().__init__(token, reason)
        self.field = field_name

    def __str__(self):
        return f"{self.source()}: invalid use of field \"{self.field}\": {self.reason}"


class ProcessConfigErr(ValueError):
    """Go: processConfigErr. Everything wrong with a config file: warnings first, then errors,
    each on its own line as `file:line:col: message`."""

    def __init__(self, errors, warnings, config_file=""):
        self.errors = list(errors)
        self.warnings = list(warnings)
        self.config_file = config_file
        super().__init__("\n".join(str(e) for e in self.warnings + self.errors))


# -- durations and listen addresses ------------------------------------------------------------

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "\u03bcs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)([^0-9.]*)")


def parse_go_duration(text):
    """Go: time.ParseDuration, in float seconds ("1h30m", "500ms", "-1.5s", "0").

    Raises ValueError with Go's messages (`time: invalid duration "x"`).
    """
    s = text
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        raise ValueError(f'time: invalid duration "{text}"')
    total = 0.0
    while s:
        m = _DURATION_PART.match(s)
        number, unit = m.group(1), m.group(2)
        if number in ("", ".") or not m.end():
            raise ValueError(f'time: invalid duration "{text}"')
        if not unit:
            raise ValueError(f'time: missing unit in duration "{text}"')
        if unit not in _DURATION_UNITS:
            raise ValueError(f'time: unknown unit "{unit}" in duration "{text}"')
        total += float(number) * _DURATION_UNITS[unit]
        s = s[m.end():]
    return -total if neg else total


def format_go_duration(seconds):
    """A short Go-style rendering of a duration for messages: 10s, 1m30s, 500ms."""
    if seconds != 0 and abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    h, rest = divmod(seconds, 3600)
    m, sec = divmod(rest, 60)
    out = ""
    if h:
        out += f"{int(h)}h"
    if h or m:
        out += f"{int(m)}m"
    return f"{sign}{out}{sec:g}s"


def parse_listen(v):
    """Go: parseListen. A port, or "host:port" (IPv6 hosts in brackets) -> (host, port)."""
    if isinstance(v, bool):
        raise ValueError(f"expected port or host:port, got boolean {str(v).lower()}")
    if isinstance(v, int):
        return "", v
    if isinstance(v, str):
        host, sep, port = v.rpartition(":")
        if not sep or (":" in host and not (host.startswith("[") and host.endswith("]"))):
            raise ValueError(f"could not parse address string {v!r}")
        if host.startswith("["):
            host = host[1:-1]
        try:
            return host, int(port)
        except ValueError:
            raise ValueError(f"could not parse port {port!r}") from None
    raise ValueError(f"expected port or host:port, got {_describe(v)}")


# -- config file (Go: ProcessConfigFile, processConfigFileLine) ---------------------------------


def _describe(v):
    if isinstance(v, dict):
        return "a map"
    if isinstance(v, list):
        return "an array"
    if isinstance(v, bool):
        return f"boolean {str(v).lower()}"
    if isinstance(v, int):
        return f"integer {v}"
    if isinstance(v, float):
        return f"float {v:g}"
    if isinstance(v, str):
        return f'string "{v}"'
    return f"{type(v).__name__} {v}"


_SIZE_LIKE = re.compile(r"-?[0-9]+\s*[A-Za-z]+")


def _want(k, tk, kind):
    """The token's value if it has the wanted kind ("int", "str", "bool"), else ConfigErr.

    Go asserts the type (`v.(int64)`) and turns the panic into a configErr; the message here
    names the field, what it wants and what it got.
    """
    v = tk.value
    if kind == "int" and isinstance(v, int) and not isinstance(v, bool):
        return v
    if kind == "str" and isinstance(v, str):
        return v
    if kind == "bool" and isinstance(v, bool):
        return v
    want = {"int": "an integer", "str": "a string", "bool": "a boolean (true/false)"}[kind]
    hint = ""
    if kind == "int" and isinstance(v, str) and _SIZE_LIKE.fullmatch(v):
        hint = (" (sizes take K, M, G, T (powers of 1000) or KB, MB, GB, TB (powers of 1024), "
                "written without a space or quotes)")
    elif kind == "bool" and isinstance(v, str) and v.lower() in ("true", "false", "yes", "no", "on", "off"):
        hint = " (write booleans without quotes)"
    elif kind == "int" and isinstance(v, str) and v.lstrip("-").isdigit():
        hint = " (write numbers without quotes)"
    raise ConfigErr(tk, f"{k}: expected {want}, got {_describe(v)}{hint}")


_MAX_INT32 = 2 ** 31 - 1
_RAW_MINUTES = re.compile(r"-?[0-9]+m")


def parse_duration(field_name, tk, errors, warnings):
    """Go: parseDuration. A duration string, or (for backward compatibility, with a warning)
    an integer number of seconds. Returns float seconds, or None after recording an error.

    Not in Go: a bare `2m` lexes as the integer 2000000 (`m` is the "mega" size suffix), which
    Go would then take as 2000000 seconds; here it means two minutes, as written.
    """
    v = tk.value
    if tk.typ == ItemType.INTEGER and _RAW_MINUTES.fullmatch(tk.item.val):
        v = tk.item.val
    if isinstance(v, str):
        try:
            return parse_go_duration(v)
        except ValueError as e:
            errors.append(ConfigErr(tk, f"error parsing {field_name}: {e}"))
            return None
    if isinstance(v, int) and not isinstance(v, bool):
        warnings.append(ConfigWarningErr(tk, field_name, f"{field_name} should be converted to a duration"))
        return float(v)
    errors.append(ConfigErr(tk, f"{field_name}: expected a duration such as \"10s\", got {_describe(v)}"))
    return None


def _set(attr, kind):
    def handler(o, k, tk, errors, warnings):
        setattr(o, attr, _want(k, tk, kind))
    return handler


def _set_int32(attr):
    def handler(o, k, tk, errors, warnings):
        v = _want(k, tk, "int")
        if v > _MAX_INT32:
            raise ConfigErr(tk, f"{k} value is too big")
        setattr(o, attr, v)
    return handler


def _set_duration(attr):
    def handler(o, k, tk, errors, warnings):
        d = parse_duration(k, tk, errors, warnings)
        if d is not None:
            setattr(o, attr, d)
    return handler


def _listen(o, k, tk, errors, warnings):
    try:
        o.host, o.port = parse_listen(tk.value)
    except ValueError as e:
        raise ConfigErr(tk, f"{k}: {e}") from None


def _http(o, k, tk, errors, warnings):
    try:
        host, port = parse_listen(tk.value)
    except ValueError as e:
        raise ConfigErr(tk, f"{k}: {e}") from None
    o.http_host = host
    if k == "https":
        o.https_port = port
    else:
        o.http_port = port


def _trace_verbose(o, k, tk, errors, warnings):
    o.trace_verbose = o.trace = _want(k, tk, "bool")


def _max_sub_tokens(o, k, tk, errors, warnings):
    """Go: max_sub_tokens, a uint8 above zero."""
    n = _want(k, tk, "int")
    if n > 255:
        raise ConfigErr(tk, f"{k} value is too big")
    if n <= 0:
        raise ConfigErr(tk, f"{k} value can not be negative")
    o.max_sub_tokens = n


def _jetstream(o, k, tk, errors, warnings):
    """Go: parseJetStream. true/false, "enabled"/"disabled", or a block."""
    v = tk.value
    if isinstance(v, bool):
        o.jetstream = v
    elif isinstance(v, str):
        if v.lower() in ("enabled", "enable"):
            o.jetstream = True
        elif v.lower() in ("disabled", "disable"):
            o.jetstream = False
        else:
            raise ConfigErr(tk, f"Expected 'enabled' or 'disabled' for string value, got '{v}'")
    elif isinstance(v, dict):
        enabled = True  # Go: a jetstream block turns it on unless it says otherwise
        for mk, mtk in v.items():
            key = mk.lower()
            if key in ("store", "store_dir", "storedir"):
                if o.store_dir:
                    raise ConfigErr(mtk, "Duplicate 'store_dir' configuration")
                o.store_dir = _want(mk, mtk, "str")
            elif key in ("max_memory_store", "max_mem_store", "max_mem"):
                o.jetstream_max_memory = _storage_size(mtk, "max_mem_store")
            elif key in ("max_file_store", "max_file"):
                o.jetstream_max_store = _storage_size(mtk, "max_file_store")
            elif key == "domain":
                o.jetstream_domain = _want(mk, mtk, "str")
            elif key in ("enable", "enabled"):
                enabled = _want(f"{k} {mk}", mtk, "bool")
            elif key in ("disable", "disabled"):  # not in Go; gnatsd has always read it
                enabled = not _want(f"{k} {mk}", mtk, "bool")
            elif key == "sync_interval":  # Go 2.10's option; "always" or a duration
                if isinstance(mtk.value, str) and mtk.value.lower() == "always":
                    o.jetstream_sync_interval = "always"
                else:
                    secs = parse_duration(mk, mtk, errors, warnings)
                    if secs is not None:
                        o.jetstream_sync_interval = str(secs)
            elif key in ("key", "ek", "encryption_key", "cipher", "limits", "unique_tag",
                         "max_outstanding_catchup", "extension_hint"):
                raise ConfigErr(mtk, f"{k} {mk} is not yet supported by gnatsd")
            elif not mtk.used_variable:
                errors.append(UnknownConfigFieldErr(mtk, mk))
        o.jetstream = enabled
    else:
        raise ConfigErr(tk, f"Expected map, bool or string to define JetStream, got {_describe(v)}")


def _storage_size(tk, what):
    """Go: getStorageSize. An integer, or a string ending in K, M, G or T (powers of 1024)."""
    v = tk.value
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    if not isinstance(v, str):
        raise ConfigErr(tk, f"{what} must be int64 or string")
    if not v:
        return 0
    try:
        num = int(v[:-1]) if v[:-1].lstrip("-").isdigit() else int("x")
    except ValueError:
        raise ConfigErr(tk, f'{what} strconv.ParseInt: parsing "{v[:-1]}": invalid syntax') from None
    mult = {"K": 10, "M": 20, "G": 30, "T": 40}.get(v[-1])
    if mult is None:
        raise ConfigErr(tk, f"{what} sizes defined as strings must end in K, M, G, T")
    return num << mult


def _lame_duck_duration(o, k, tk, errors, warnings):
    """Go requires a duration string here, of at least 30 seconds."""
    if not isinstance(tk.value, str) and not (tk.typ == ItemType.INTEGER and _RAW_MINUTES.fullmatch(tk.item.val)):
        raise ConfigErr(tk, f"{k}: expected a duration such as \"30s\" or \"2m\", got {_describe(tk.value)}")
    d = parse_duration(k, tk, errors, warnings)
    if d is None:
        return
    if d < 30:
        raise ConfigErr(tk, f"invalid lame_duck_duration of {format_go_duration(d)}, minimum is 30 seconds")
    o.lame_duck_duration = d


def _lame_duck_grace_period(o, k, tk, errors, warnings):
    if not isinstance(tk.value, str):
        raise ConfigErr(tk, f"{k}: expected a duration such as \"10s\", got {_describe(tk.value)}")
    d = parse_duration(k, tk, errors, warnings)
    if d is None:
        return
    if d < 0:
        raise ConfigErr(tk, "invalid lame_duck_grace_period, needs to be positive")
    o.lame_duck_grace_period = d


# -- authorization and the blocks of features that come later ----------------------------------

_AUTH_SECRET_KEYS = ("pass", "password", "token")


def _authorization(o, k, tk, errors, warnings):
    """Go: parseAuthorization, and the `authorization` case of processConfigFileLine.

    Either a single user/password or a token, or a `users` list of user/password and nkey
    users, each with its own permissions or else the block's default ones; and the auth
    timeout. Secrets may be bcrypt hashes. Go: Options.Username, Password, Authorization,
    AuthTimeout, Users, Nkeys.
    """
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"{k}: expected a map such as {{ user: alice, password: secret }} or {{ token: secret }}, "
                            f"got {_describe(v)}")
    user = password = token = ""
    timeout = 0.0
    users = nkeys = None
    default_perms = None
    perms_at = None
    ok = True
    for mk, mtk in v.items():
        key = mk.lower()
        try:
            if key in ("user", "username"):
                user = _want(f"{k} {mk}", mtk, "str")
            elif key in ("pass", "password"):
                password = _want(f"{k} {mk}", mtk, "str")
            elif key == "token":
                token = _want(f"{k} {mk}", mtk, "str")
            elif key == "timeout":
                t = mtk.value
                if isinstance(t, bool) or not isinstance(t, (int, float)):
                    raise ConfigErr(mtk, f"{k} {mk}: expected a number of seconds such as 2 or 0.5, got {_describe(t)}")
                if t < 0:
                    raise ConfigErr(mtk, f"{k} {mk}: must be zero or more seconds, got {t:g}")
                timeout = float(t)
            elif key == "users":
                nkeys, users = _parse_users(mtk, errors, warnings)
            elif key in ("default_permission", "default_permissions", "permissions"):
                default_perms = _parse_user_permissions(mtk, errors, warnings)
                perms_at = (mk, mtk)
            elif not mtk.used_variable:
                raise UnknownConfigFieldErr(mtk, mk, f" in {k}")
        except ConfigErr as e:
            errors.append(e)
            ok = False
    if not ok:
        return
    if default_perms is not None:
        # Go: applyDefaultPermissions, to the users without permissions of their own.
        for u in (users or []) + (nkeys or []):
            if u.permissions is None:
                u.permissions = default_perms
        if users is None and nkeys is None:
            # Not in Go, which ignores them without a word.
            warnings.append(ConfigWarningErr(perms_at[1], perms_at[0], "default permissions apply to the users of "
                                             "a users list, and this authorization block has none: they are ignored"))
    if (user or password) and token:
        raise ConfigErr(tk, "Cannot have a user/pass and token")  # Go's text
    o.username, o.password, o.authorization = user, password, token
    o.auth_timeout = timeout  # Go: 0 means the default (set_baseline_options)
    # Go: a users list excludes the single user and the token; names and keys are unique.
    if users is not None or o.users or o.nkeys:
        if user:
            raise ConfigErr(tk, "Can not have a single user/pass and a users array")
        if token:
            raise ConfigErr(tk, "Can not have a token and a users array")
        seen = {u.username for u in o.users or ()} | {u.nkey for u in o.nkeys or ()}
        if users:
            for u in users:
                if u.username in seen:
                    raise ConfigErr(tk, f"Duplicate user {go_quote(u.username)} detected")
                seen.add(u.username)
            o.users = list(o.users or []) + users
        if nkeys:
            for u in nkeys:
                if u.nkey in seen:
                    raise ConfigErr(tk, f"Duplicate nkey {go_quote(u.nkey)} detected")
                seen.add(u.nkey)
            o.nkeys = list(o.nkeys or []) + nkeys


def _parse_users(tk, errors, warnings):
    """Go: parseUsers. (nkey users or None, users) of a `users` list; each entry has a `user`
    (and a `password`) or an `nkey`, and may have `permissions` and
    `allowed_connection_types`. Raises ConfigErr where Go rejects the whole list."""
    from .auth import NkeyUser, User
    from .nkeys import is_valid_public_user_key
    v = tk.value
    if not isinstance(v, list):
        raise ConfigErr(tk, f"Expected users field to be an array, got {_describe(v)}")
    keys = None
    users = []
    for utk in v:
        um = utk.value
        if not isinstance(um, dict):
            errors.append(ConfigErr(utk, f"Expected user entry to be a map/struct, got {_describe(um)}"))
            continue
        username = password = nkey = ""
        perms = cts = None
        bad = False
        for mk, mtk in um.items():
            key = mk.lower()
            try:
                if key == "nkey":
                    nkey = _want(f"users {mk}", mtk, "str")
                elif key in ("user", "username"):
                    username = _want(f"users {mk}", mtk, "str")
                elif key in ("pass", "password"):
                    password = _want(f"users {mk}", mtk, "str")
                elif key in ("permission", "permissions", "authorization"):
                    perms = _parse_user_permissions(mtk, errors, warnings)
                elif key in ("allowed_connection_types", "connection_types", "clients"):
                    cts = _parse_allowed_connection_types(mtk, errors)
                elif not mtk.used_variable:
                    raise UnknownConfigFieldErr(mtk, mk, " in users")
            except ConfigErr as e:
                errors.append(e)
                bad = True
        if bad:
            continue  # reported; what is left of the entry would only add errors
        if not nkey and not username:
            raise ConfigErr(utk, "User entry requires a user")
        if nkey:
            if not is_valid_public_user_key(nkey):
                raise ConfigErr(utk, "Not a valid public nkey for a user")
            if username or password:
                raise ConfigErr(utk, "Nkey users do not take usernames or passwords")
            keys = keys or []
            keys.append(NkeyUser(nkey, perms, cts))
        else:
            users.append(User(username, password, perms, cts))
    return keys, users


def _parse_allowed_connection_types(tk, errors):
    """Go: parseAllowedConnectionTypes. A set of upper-case connection type names."""
    from .auth import CONNECTION_TYPES
    v = tk.value
    if isinstance(v, str):
        names = [v]
    elif isinstance(v, list):
        names = []
        for itk in v:
            if isinstance(itk.value, str):
                names.append(itk.value)
            else:
                errors.append(ConfigErr(itk, f"error parsing allowed connection types: unsupported type in array "
                                             f"({_describe(itk.value)})"))
    else:
        raise ConfigErr(tk, f"error parsing allowed connection types: unsupported type ({_describe(v)})")
    unknown = [n.upper() for n in names if n.upper() not in CONNECTION_TYPES]
    if unknown:
        errors.append(ConfigErr(tk, "invalid connection types [" + " ".join(go_quote(n) for n in unknown) + "]"))
    return frozenset(n.upper() for n in names if n.upper() in CONNECTION_TYPES)


def _parse_user_permissions(tk, errors, warnings):
    """Go: parseUserPermissions. `publish` and `subscribe` (each a subject, a list of them, or
    a map with `allow` and `deny`), and `allow_responses` (true, or a map of `max` and
    `expires`). Raises ConfigErr when the value is not a map."""
    from .auth import Permissions, ResponsePermission, SubjectPermission
    pm = tk.value
    if not isinstance(pm, dict):
        raise ConfigErr(tk, f"Expected permissions to be a map/struct, got {_describe(pm)}")
    p = Permissions()
    for k, vtk in pm.items():
        key = k.lower()
        try:
            if key in ("pub", "publish", "import"):
                p.publish = _parse_variable_permissions(vtk, errors)
            elif key in ("sub", "subscribe", "export"):
                p.subscribe = _parse_variable_permissions(vtk, errors)
            elif key in ("publish_allow_responses", "allow_responses"):
                if isinstance(vtk.value, bool):
                    p.response = ResponsePermission() if vtk.value else None
                else:
                    p.response = _parse_allow_responses(vtk, errors)
                if p.response is not None:
                    if p.publish is None:
                        p.publish = SubjectPermission()
                    if p.publish.allow is None:
                        p.publish.allow = []  # Go: responses turn off the blanket allow
            elif not vtk.used_variable:
                errors.append(ConfigErr(vtk, f"Unknown field {go_quote(k)} parsing permissions"))
        except ConfigErr as e:
            errors.append(e)
    return p


def _parse_variable_permissions(tk, errors):
    """Go: parseVariablePermissions. A map with allow/deny, or (old style) the allow list."""
    from .auth import SubjectPermission
    if isinstance(tk.value, dict):
        return _parse_subject_permission(tk, errors)
    return SubjectPermission(allow=_parse_perm_subjects(tk))


def _parse_subject_permission(tk, errors):
    """Go: parseSubjectPermission. None for an empty map."""
    from .auth import SubjectPermission
    m = tk.value
    if not m:
        return None
    p = SubjectPermission()
    for k, vtk in m.items():
        key = k.lower()
        try:
            if key == "allow":
                p.allow = _parse_perm_subjects(vtk)
            elif key == "deny":
                p.deny = _parse_perm_subjects(vtk)
            elif not vtk.used_variable:
                errors.append(ConfigErr(vtk, f"Unknown field name {go_quote(k)} parsing subject permissions, "
                                             "only 'allow' or 'deny' are permitted"))
        except ConfigErr as e:
            errors.append(e)
    return p


def _parse_perm_subjects(tk):
    """Go: parsePermSubjects. A subject or a list of subjects, each valid, or a subject and a
    queue group name ("foo.> workers")."""
    v = tk.value
    if isinstance(v, str):
        subjects = [v]
    elif isinstance(v, list):
        subjects = []
        for itk in v:
            if not isinstance(itk.value, str):
                raise ConfigErr(itk, "Subject in permissions array cannot be cast to string")
            subjects.append(itk.value)
    else:
        raise ConfigErr(tk, f"Expected subject permissions to be a subject, or array of subjects, got {_describe(v)}")
    for s in subjects:
        # Go: checkPermSubjectArray
        if not _is_valid_config_subject(s):
            elements = s.split()
            if len(elements) != 2:
                raise ConfigErr(tk, f"subject {go_quote(s)} is not a valid subject")
            if not _is_valid_config_subject(elements[0]):
                raise ConfigErr(tk, f"subject {go_quote(elements[0])} is not a valid subject")
    return subjects


def _is_valid_config_subject(s):
    """Go: IsValidSubject, which also refuses whitespace inside tokens."""
    if not s:
        return False
    tokens = s.split(".")
    last = len(tokens) - 1
    for i, t in enumerate(tokens):
        if not t or (t == ">" and i != last) or any(c in t for c in " \t\n\r\f"):
            return False
    return True


def _parse_allow_responses(tk, errors):
    """Go: parseAllowResponses. A ResponsePermission, or None after recording an error."""
    from .auth import ResponsePermission
    pm = tk.value
    if not isinstance(pm, dict):
        errors.append(ConfigErr(tk, "error parsing response permissions, expected a boolean or a map"))
        return None
    rp = ResponsePermission()
    for k, vtk in pm.items():
        key = k.lower()
        if key in ("max", "max_msgs", "max_messages", "max_responses"):
            n = _want(f"allow_responses {k}", vtk, "int")
            if n != 0:  # Go: negative means no limit, zero the default
                rp.max_msgs = n
        elif key in ("expires", "expiration", "ttl"):
            wd = vtk.value
            if vtk.typ == ItemType.INTEGER and _RAW_MINUTES.fullmatch(vtk.item.val):
                wd = vtk.item.val  # a bare `2m`, as parse_duration takes it
            if not isinstance(wd, str):
                errors.append(ConfigErr(vtk, "error parsing expires, not a duration string"))
                return None
            try:
                ttl = parse_go_duration(wd)
            except ValueError as e:
                errors.append(ConfigErr(vtk, f"error parsing expires: {e}"))
                return None
            if ttl != 0:
                rp.expires = ttl
        elif not vtk.used_variable:
            errors.append(ConfigErr(vtk, f"Unknown field {go_quote(k)} parsing permissions"))
    return rp


def _no_auth_user(o, k, tk, errors, warnings):
    """Go: NoAuthUser. Checked against the users when the server is made (validate_auth)."""
    o.no_auth_user = _want(k, tk, "str")


# -- tls (Go: parseTLS, GenTLSConfig) ---------------------------------------------------------

_TLS_FILES = {"cert_file": "tls_cert", "key_file": "tls_key", "ca_file": "tls_ca_cert"}
_TLS_BOOLS = ("insecure", "verify", "verify_and_map", "verify_cert_and_check_known_urls")
# Known to nats-server (newer releases mostly), not to gnatsd yet.
_TLS_LATER = ("curve_preferences", "connection_rate_limit", "pinned_certs", "cert_store", "cert_match_by",
              "cert_match", "cert_match_skip_invalid", "ca_certs_match", "ocsp_peer", "certs", "certificates",
              "allow_insecure_cipher_suites")


def _tls_block(o, k, tk, errors, warnings):
    """Go: the `tls` case of processConfigFileLine, for the client listener. The settings go to
    the tls_* options (see parse_tls)."""
    t = parse_tls(k, tk)
    for name in ("tls", "tls_cert", "tls_key", "tls_ca_cert", "tls_verify", "tls_map", "tls_timeout",
                 "tls_handshake_first", "tls_handshake_first_fallback", "tls_min_version", "tls_ciphers"):
        setattr(o, name, getattr(t, name))


def parse_tls(k, tk):
    """Go: parseTLS(tk, true) then GenTLSConfig. An Options holding the block's settings in its
    tls_* fields, or ConfigErr. The SSL context is built here once to report a bad file, key or
    cipher at the block (the server builds its own at start). Keys as in Go, plus
    `min_version` and `handshake_first` (and its `first`/`immediate` aliases) from newer
    nats-server releases."""
    from . import tls as _tls
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"{k}: expected a map such as {{ cert_file: server.pem, key_file: server-key.pem }}, "
                            f"got {_describe(v)}")
    t = Options(tls=True)
    for mk, mtk in v.items():
        key = mk.lower()
        mv = mtk.value
        if key in _TLS_FILES:
            if not isinstance(mv, str):
                raise ConfigErr(mtk, f"error parsing tls config, expected '{key}' to be filename")
            setattr(t, _TLS_FILES[key], mv)
        elif key in _TLS_BOOLS:
            if not isinstance(mv, bool):
                raise ConfigErr(mtk, f"error parsing tls config, expected '{key}' to be a boolean")
            if key == "verify":
                t.tls_verify = mv
            elif key == "verify_and_map":
                t.tls_verify = t.tls_verify or mv
                t.tls_map = mv
            elif key == "verify_cert_and_check_known_urls" and mv:
                raise ConfigErr(mtk, "verify_cert_and_check_known_urls not supported in this context")
        elif key == "cipher_suites":
            if not isinstance(mv, list):
                raise ConfigErr(mtk, f"error parsing tls config, 'cipher_suites': expected an array of cipher "
                                     f"suite names, got {_describe(mv)}")
            if not mv:
                raise ConfigErr(mtk, "error parsing tls config, 'cipher_suites' cannot be empty")
            for ctk in mv:
                if not isinstance(ctk.value, str):
                    raise ConfigErr(ctk, f"error parsing tls config, 'cipher_suites': expected a cipher suite "
                                         f"name, got {_describe(ctk.value)}")
                try:
                    _tls.parse_cipher(ctk.value)
                except _tls.TLSConfigError as e:
                    raise ConfigErr(ctk, str(e)) from None
            t.tls_ciphers = [ctk.value for ctk in mv]
        elif key == "timeout":
            if isinstance(mv, bool) or not isinstance(mv, (int, float, str)):
                raise ConfigErr(mtk, "error parsing tls config, 'timeout' wrong type")
            if isinstance(mv, str):
                try:
                    mv = parse_go_duration(mv)
                except ValueError as e:
                    raise ConfigErr(mtk, f"error parsing tls config, 'timeout' {e}") from None
            t.tls_timeout = float(mv)
        elif key in ("handshake_first", "first", "immediate"):
            if isinstance(mv, bool):
                t.tls_handshake_first = mv
            elif isinstance(mv, str):
                word = mv.lower()
                if word in ("true", "on", "false", "off"):
                    t.tls_handshake_first = word in ("true", "on")
                elif word in ("auto", "auto_fallback"):
                    t.tls_handshake_first, t.tls_handshake_first_fallback = True, 0.05  # Go's default delay
                else:
                    try:
                        t.tls_handshake_first_fallback = parse_go_duration(mv)
                    except ValueError:
                        raise ConfigErr(mtk, f"field \"{mk}\"'s value \"{mv}\" is invalid") from None
                    t.tls_handshake_first = True
            else:
                raise ConfigErr(mtk, f"field \"{mk}\" should be a boolean or a string, got {_describe(mv)}")
        elif key == "min_version":
            try:
                t.tls_min_version = _tls.parse_min_version(mv)
            except _tls.TLSConfigError as e:
                raise ConfigErr(mtk, f"error parsing tls config: {e}") from None
        elif key in _TLS_LATER:
            raise ConfigErr(mtk, f"{k} {mk} is not yet supported by gnatsd")
        else:
            raise ConfigErr(mtk, f"error parsing tls config, unknown field [\"{mk}\"]")
    try:
        _tls.gen_tls_config(t)
    except _tls.TLSConfigError as e:
        raise ConfigErr(tk, str(e)) from None
    return t


def _websocket(o, k, tk, errors, warnings):
    """Go: parseWebsocket. The `websocket` (or `ws`) block; its options are checked together
    when the server is made (websocket.validate_websocket_options)."""
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"Expected {k} to be a map, got {_describe(v)}")
    wo = o.websocket
    for mk, mtk in v.items():
        key = mk.lower()
        mv = mtk.value
        try:
            if key == "listen":
                try:
                    wo.host, wo.port = parse_listen(mv)
                except ValueError as e:
                    raise ConfigErr(mtk, str(e)) from None
            elif key == "port":
                wo.port = _want(mk, mtk, "int")
            elif key in ("host", "net"):
                wo.host = _want(mk, mtk, "str")
            elif key == "advertise":
                wo.advertise = _want(mk, mtk, "str")
            elif key == "no_tls":
                wo.no_tls = _want(mk, mtk, "bool")
            elif key == "tls":
                wo.tls = parse_tls(mk, mtk)
                wo.tls_map = wo.tls.tls_map
            elif key == "same_origin":
                wo.same_origin = _want(mk, mtk, "bool")
            elif key in ("allowed_origins", "allowed_origin", "allow_origins", "allow_origin", "origins", "origin"):
                if isinstance(mv, str):
                    wo.allowed_origins = [mv]
                elif isinstance(mv, list) and all(isinstance(t.value, str) for t in mv):
                    wo.allowed_origins = [t.value for t in mv]
                else:
                    raise ConfigErr(mtk, f"error parsing allowed origins: unsupported type {_describe(mv)}")
            elif key == "handshake_timeout":
                if isinstance(mv, bool) or not isinstance(mv, (int, str)):
                    raise ConfigErr(mtk, f"error parsing handshake timeout: unsupported type {_describe(mv)}")
                if isinstance(mv, str):
                    try:
                        mv = parse_go_duration(mv)
                    except ValueError as e:
                        raise ConfigErr(mtk, str(e)) from None
                wo.handshake_timeout = float(mv)
            elif key in ("compress", "compression"):
                wo.compression = _want(mk, mtk, "bool")
            elif key in ("authorization", "authentication"):
                _websocket_auth(wo, mk, mtk, errors)
            elif key == "jwt_cookie":
                wo.jwt_cookie = _want(mk, mtk, "str")
            elif key == "no_auth_user":
                wo.no_auth_user = _want(mk, mtk, "str")
            elif not mtk.used_variable:
                raise UnknownConfigFieldErr(mtk, mk)
        except ConfigErr as e:
            errors.append(e)


def _websocket_auth(wo, k, tk, errors):
    """Go: parseSimpleAuth. user/username, pass/password, token, timeout (seconds)."""
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"{k}: expected a map such as {{ user: alice, password: secret }} or {{ token: secret }}, "
                            f"got {_describe(v)}")
    for mk, mtk in v.items():
        key = mk.lower()
        try:
            if key in ("user", "username"):
                wo.username = _want(mk, mtk, "str")
            elif key in ("pass", "password"):
                wo.password = _want(mk, mtk, "str")
            elif key == "token":
                wo.token = _want(mk, mtk, "str")
            elif key == "timeout":
                t = mtk.value
                # Go: an integer or a float; anything else means one second
                wo.auth_timeout = float(t) if isinstance(t, (int, float)) and not isinstance(t, bool) else 1.0
            elif not mtk.used_variable:
                raise UnknownConfigFieldErr(mtk, mk)
        except ConfigErr as e:
            errors.append(e)


def set_baseline_options(o):
    """Go: setBaselineOptions, the defaults that depend on other options. Idempotent."""
    if o.tls_timeout <= 0:
        o.tls_timeout = const.TLS_TIMEOUT
    if o.auth_timeout <= 0:
        from .tls import default_auth_timeout
        o.auth_timeout = default_auth_timeout(o)
    if o.websocket.port != 0 and not o.websocket.host:
        o.websocket.host = const.DEFAULT_HOST


_KIND_WORDS = {"map": "a map", "array": "an array", "str": "a string", "bool": "a boolean (true/false)",
               "int": "an integer", "strings": "an array of strings"}


def _is_kind(v, kind):
    if kind == "map":
        return isinstance(v, dict)
    if kind == "array":
        return isinstance(v, list)
    if kind == "strings":
        return isinstance(v, list) and all(isinstance(t.value, str) for t in v)
    if kind == "str":
        return isinstance(v, str)
    if kind == "bool":
        return isinstance(v, bool)
    return isinstance(v, int) and not isinstance(v, bool)


def _later(kinds, honoured=None):
    """A field for a feature gnatsd does not have yet (Go: parseCluster, parseTLS, ...).

    Its value must have one of the shapes Go accepts (`kinds`: a block is a map); then,
    unless `honoured(value)` says gnatsd already does what it asks (off, false), it is
    refused: the server does not start without the feature. What is inside a block is not
    checked: newer nats-server releases add keys, and the whole block is refused anyway.
    """
    def handler(o, k, tk, errors, warnings):
        v = tk.value
        if not any(_is_kind(v, kind) for kind in kinds):
            want = " or ".join(_KIND_WORDS[kind] for kind in kinds)
            raise ConfigErr(tk, f"{k}: expected {want}, got {_describe(v)}")
        if honoured is not None and honoured(v):
            return
        raise ConfigErr(tk, f"{k} is not yet supported by gnatsd")
    handler.later = True
    return handler


def _is_false(v):
    return v is False


_block = _later(("map",))


def _accounts(o, k, tk, errors, warnings):
    from .conf_accounts import parse_accounts
    parse_accounts(o, k, tk, errors, warnings)


def _mappings(o, k, tk, errors, warnings):
    from .conf_accounts import parse_mappings_block
    parse_mappings_block(o, k, tk, errors, warnings)


def _system_account(o, k, tk, errors, warnings):
    from .conf_accounts import configure_system_account
    configure_system_account(o, k, tk, errors, warnings)


def _conf_jwt(name):
    """A handler of conf_jwt.py, imported when a config uses operator mode. Like the fields
    of later features, these are offered as a "did you mean" only for close misspellings
    (`root` is no better a guess for `prot` than `port`)."""
    def handler(o, k, tk, errors, warnings):
        from . import conf_jwt
        getattr(conf_jwt, name)(o, k, tk, errors, warnings)
    handler.rare = True
    return handler


_operators = _conf_jwt("parse_operators")
_resolver = _conf_jwt("parse_resolver")
_strings_later = _later(("str", "strings"))


# Go: the switch in processConfigFileLine, as a table. Keys are matched in lower case.
CONFIG_FIELDS = {
    "listen": _listen,
    "client_advertise": _set("client_advertise", "str"),
    "port": _set("port", "int"),
    "server_name": _set("server_name", "str"),
    "host": _set("host", "str"),
    "net": _set("host", "str"),
    "debug": _set("debug", "bool"),
    "trace": _set("trace", "bool"),
    "trace_verbose": _trace_verbose,
    "logtime": _set("logtime", "bool"),
    "http": _http,
    "https": _http,
    "http_port": _set("http_port", "int"),
    "monitor_port": _set("http_port", "int"),
    "https_port": _set("https_port", "int"),
    "http_base_path": _set("http_base_path", "str"),
    "store_dir": _set("store_dir", "str"),
    "storedir": _set("store_dir", "str"),
    "jetstream": _jetstream,
    "logfile": _set("log_file", "str"),
    "log_file": _set("log_file", "str"),
    "logfile_size_limit": _set("log_size_limit", "int"),
    "log_size_limit": _set("log_size_limit", "int"),
    "syslog": _set("syslog", "bool"),
    "remote_syslog": _set("remote_syslog", "str"),
    "pidfile": _set("pid_file", "str"),
    "pid_file": _set("pid_file", "str"),
    "ports_file_dir": _set("ports_file_dir", "str"),
    "prof_port": _set("prof_port", "int"),
    "max_control_line": _set_int32("max_control_line"),
    "max_payload": _set_int32("max_payload"),
    "max_pending": _set("max_pending", "int"),
    "max_connections": _set("max_connections", "int"),
    "max_conn": _set("max_connections", "int"),
    "max_traced_msg_len": _set("max_traced_msg_len", "int"),
    "max_subscriptions": _set("max_subs", "int"),
    "max_subs": _set("max_subs", "int"),
    "ping_interval": _set_duration("ping_interval"),
    "ping_max": _set("ping_max", "int"),
    "write_deadline": _set_duration("write_deadline"),
    "lame_duck_duration": _lame_duck_duration,
    "lame_duck_grace_period": _lame_duck_grace_period,
    "no_header_support": _set("no_header_support", "bool"),
    "authorization": _authorization,
    "no_auth_user": _no_auth_user,
    # Go knows these; gnatsd checks their shape, then refuses them (unless they ask for nothing).
    "cluster": _block,
    "gateway": _block,
    "leaf": _block,
    "leafnodes": _block,
    "websocket": _websocket,
    "ws": _websocket,
    "mqtt": _block,
    "tls": _tls_block,
    "allow_non_tls": _set("allow_non_tls", "bool"),
    "accounts": _accounts,
    "mappings": _mappings,
    "maps": _mappings,
    "operator": _operators,
    "operators": _operators,
    "roots": _operators,
    "root": _operators,
    "root_operators": _operators,
    "root_operator": _operators,
    "resolver": _resolver,
    "account_resolver": _resolver,
    "accounts_resolver": _resolver,
    "resolver_tls": _block,
    "resolver_preload": _conf_jwt("parse_resolver_preload"),
    "resolver_pinned_accounts": _conf_jwt("parse_resolver_pinned_accounts"),
    "system_account": _system_account,
    "system": _system_account,
    "trusted": _conf_jwt("parse_trusted_keys"),
    "trusted_keys": _conf_jwt("parse_trusted_keys"),
    "server_tags": _strings_later,
    "default_js_domain": _block,
    "ocsp": _later(("bool", "map"), honoured=_is_false),
    "disable_sublist_cache": _later(("bool",), honoured=_is_false),
    "no_sublist_cache": _later(("bool",), honoured=_is_false),
    "max_sub_tokens": _max_sub_tokens,
    "max_subscription_tokens": _max_sub_tokens,
    "no_system_account": _set("no_system_account", "bool"),
    "no_system": _set("no_system_account", "bool"),
    "no_sys_acc": _set("no_system_account", "bool"),
    # Honoured as they are: without routes, gateways or leafnodes these have nothing to change.
    "connect_error_reports": _later(("int",), honoured=lambda v: True),
    "reconnect_error_reports": _later(("int",), honoured=lambda v: True),
}


def process_config_file_line(o, k, tk, errors, warnings):
    """Go: processConfigFileLine. Applies one top-level field to `o`, appending to `errors`
    and `warnings` instead of raising."""
    key = k.lower()
    handler = CONFIG_FIELDS.get(key)
    if handler is None:
        if tk.used_variable:  # a variable, used by a `$name` reference (Go: IsUsedVariable)
            return
        # suggest a field gnatsd reads before one it refuses
        close = (difflib.get_close_matches(key, [f for f, h in CONFIG_FIELDS.items()
                                                 if not hasattr(h, "later") and not hasattr(h, "rare")], n=1)
                 or difflib.get_close_matches(key, CONFIG_FIELDS, n=1, cutoff=0.8))
        errors.append(UnknownConfigFieldErr(tk, k, f" (did you mean \"{close[0]}\"?)" if close else ""))
        return
    try:
        handler(o, key, tk, errors, warnings)
    except ConfigErr as e:
        errors.append(e)


def process_config_file(o, config_file):
    """Go: Options.ProcessConfigFile. Updates `o` from the file (and the files it includes).

    Raises OSError when the file cannot be read, and ProcessConfigErr with every syntax and
    value error (and warning) found, each at its `file:line:col`, in file order (the main
    file first, then the included ones). When it raises with only warnings, `o` is complete
    and the server may start (Go prints them and goes on).
    """
    o.config_file = config_file
    if not config_file:
        return
    parser = Parser(read_config_file(config_file), config_file)
    mapping = parser.parse()
    errors = list(parser.errors)
    warnings = []
    for k, tk in mapping.items():
        process_config_file_line(o, k, tk, errors, warnings)
    if errors or warnings:
        rank = {}
        for i, f in enumerate(parser.files):
            rank.setdefault(f, i)

        def where(e):
            return rank.get(e.source_file, len(rank)), e.line, e.pos

        errors.sort(key=where)
        warnings.sort(key=where)
        raise ProcessConfigErr(errors, warnings, config_file)


# -- the command line (Go: the flag package, ConfigureOptions) ---------------------------------


class FlagError(ValueError):
    """A bad command line; the message reads like Go's flag package."""


_GO_INT = re.compile(r"[+-]?(?:0[xX](?:_?[0-9a-fA-F])+|0[oO](?:_?[0-7])+|0[bB](?:_?[01])+"
                     r"|0(?:_?[0-7])*|[1-9](?:_?[0-9])*)")


def parse_go_int(s):
    """Go: strconv.ParseInt(s, 0, 64), as the flag package's Int flags use it."""
    if not _GO_INT.fullmatch(s):
        raise ValueError("parse error")
    body = s.lstrip("+-").replace("_", "")
    if len(body) > 1 and body[0] == "0" and body[1] in "0123456789":
        body = "0o" + body[1:]
    n = int(body, 0)
    n = -n if s.startswith("-") else n
    if not -(2 ** 63) <= n <= 2 ** 63 - 1:
        raise ValueError("value out of range")
    return n


_GO_TRUE = ("1", "t", "T", "TRUE", "true", "True")
_GO_FALSE = ("0", "f", "F", "FALSE", "false", "False")


def parse_go_bool(s):
    """Go: strconv.ParseBool."""
    if s in _GO_TRUE:
        return True
    if s in _GO_FALSE:
        return False
    raise ValueError("parse error")


class Flag:
    """Go: flag.Flag. `kind` is "bool", "int" or "string"; `apply(target, value)` stores it."""

    __slots__ = ("name", "kind", "apply", "early")

    def __init__(self, name, kind, apply, early):
        self.name = name
        self.kind = kind
        self.apply = apply
        self.early = early  # applied while parsing (help, version, config file, signal)


class FlagSet:
    """Go: flag.FlagSet, the parts nats-server uses.

    `-name`, `--name`, `-name=value`, `--name value`; a boolean flag takes a value only as
    `-name=value`; parsing stops at the first argument that is not a flag, or after `--`.
    Each flag given is recorded in `actual`, in order, with its parsed value.
    """

    def __init__(self, name):
        self.name = name
        self.formal = {}
        self.actual = []  # [(Flag, value)] in command-line order
        self.args = []  # what is left after the flags (Go: fs.Args())

    def var(self, names, kind, apply, early=False):
        for name in names:
            self.formal[name] = Flag(name, kind, apply, early)

    def parse(self, arguments, early_target=None):
        """Go: FlagSet.Parse. Raises FlagError."""
        self.actual = []
        args = list(arguments)
        while args:
            s = args[0]
            if len(s) < 2 or s[0] != "-":
                break
            minuses = 1
            if s[1] == "-":
                minuses = 2
                if len(s) == 2:
                    args.pop(0)
                    break
            name = s[minuses:]
            if not name or name[0] in "-=":
                raise FlagError(f"bad flag syntax: {s}")
            args.pop(0)
            has_value = False
            value = ""
            if "=" in name[1:]:
                i = name.index("=", 1)
                name, value, has_value = name[:i], name[i + 1:], True
            flag = self.formal.get(name)
            if flag is None:
                raise FlagError(f"flag provided but not defined: -{name}")
            if flag.kind == "bool":
                if has_value:
                    try:
                        parsed = parse_go_bool(value)
                    except ValueError as e:
                        raise FlagError(f"invalid boolean value {go_quote(value)} for -{name}: {e}") from None
                else:
                    parsed = True
            else:
                if not has_value and args:
                    value = args.pop(0)
                    has_value = True
                if not has_value:
                    raise FlagError(f"flag needs an argument: -{name}")
                if flag.kind == "int":
                    try:
                        parsed = parse_go_int(value)
                    except ValueError as e:
                        raise FlagError(f"invalid value {go_quote(value)} for flag -{name}: {e}") from None
                else:
                    parsed = value
            if flag.early and early_target is not None:
                flag.apply(early_target, parsed)
            self.actual.append((flag, parsed))
        self.args = args
        return args

    def apply(self, target):
        """Apply every (not early) flag given to `target`, in command-line order."""
        for flag, value in self.actual:
            if not flag.early:
                flag.apply(target, value)


def _attr(name):
    def apply(target, value):
        setattr(target, name, value)
    return apply


def _attrs(*names):
    def apply(target, value):
        for name in names:
            setattr(target, name, value)
    return apply


def _routes(target, value):
    """Go: RoutesFromStr."""
    target.routes = [r.strip() for r in value.split(",")] if value else []


class CommandLine:
    """What the command line asks for besides Options (Go: ConfigureOptions' locals)."""

    def __init__(self):
        self.show_version = False
        self.show_help = False
        self.show_tls_help = False
        self.signal = ""
        self.config_file = ""


def new_flag_set():
    """Go: the flag definitions at the top of ConfigureOptions."""
    fs = FlagSet("gnatsd")
    fs.var(("h", "help"), "bool", _attr("show_help"), early=True)
    fs.var(("port", "p"), "int", _attr("port"))
    fs.var(("n", "name", "server_name"), "string", _attr("server_name"))
    fs.var(("addr", "a", "net"), "string", _attr("host"))
    fs.var(("client_advertise",), "string", _attr("client_advertise"))
    fs.var(("D", "debug"), "bool", _attr("debug"))
    fs.var(("V", "trace"), "bool", _attr("trace"))
    fs.var(("VV",), "bool", _attrs("trace", "trace_verbose"))
    fs.var(("DV",), "bool", _attrs("debug", "trace"))
    fs.var(("DVV",), "bool", _attrs("debug", "trace", "trace_verbose"))
    fs.var(("T", "logtime"), "bool", _attr("logtime"))
    fs.var(("user",), "string", _attr("username"))
    fs.var(("pass",), "string", _attr("password"))
    fs.var(("auth",), "string", _attr("authorization"))
    fs.var(("m", "http_port"), "int", _attr("http_port"))
    fs.var(("http_host",), "string", _attr("http_host"))  # not in Go: a host for -m
    fs.var(("ms", "https_port"), "int", _attr("https_port"))
    fs.var(("c", "config"), "string", _attr("config_file"), early=True)
    fs.var(("t",), "bool", _attr("check_config"))
    fs.var(("sl", "signal"), "string", _attr("signal"), early=True)
    fs.var(("P", "pid"), "string", _attr("pid_file"))
    fs.var(("ports_file_dir",), "string", _attr("ports_file_dir"))
    fs.var(("l", "log"), "string", _attr("log_file"))
    fs.var(("log_size_limit",), "int", _attr("log_size_limit"))
    fs.var(("s", "syslog"), "bool", _attr("syslog"))
    fs.var(("r", "remote_syslog"), "string", _attr("remote_syslog"))
    fs.var(("version", "v"), "bool", _attr("show_version"), early=True)
    fs.var(("profile",), "int", _attr("prof_port"))
    fs.var(("routes",), "string", _routes)
    fs.var(("cluster", "cluster_listen"), "string", _attr("cluster_listen"))
    fs.var(("cluster_advertise",), "string", _attr("cluster_advertise"))
    fs.var(("no_advertise",), "bool", _attr("cluster_no_advertise"))
    fs.var(("connect_retries",), "int", _attr("cluster_connect_retries"))
    fs.var(("cluster_name",), "string", _attr("cluster_name"))
    fs.var(("help_tls",), "bool", _attr("show_tls_help"), early=True)
    fs.var(("tls",), "bool", _attr("tls"))
    fs.var(("tlsverify",), "bool", _attr("tls_verify"))
    fs.var(("tlscert",), "string", _attr("tls_cert"))
    fs.var(("tlskey",), "string", _attr("tls_key"))
    fs.var(("tlscacert",), "string", _attr("tls_ca_cert"))
    fs.var(("max_traced_msg_len",), "int", _attr("max_traced_msg_len"))
    fs.var(("js", "jetstream"), "bool", _attr("jetstream"))
    fs.var(("sd", "store_dir"), "string", _attr("store_dir"))
    return fs


_TLS_FLAGS = ("tls", "tlscacert", "tlscert", "tlskey", "tlsverify")


def _override_tls(opts, flag_opts, given):
    """Go: ConfigureOptions' handling of the --tls* flags, and overrideTLS. `--tls=false` turns
    TLS off, config file included; any other --tls* flag replaces the file's TLS settings
    with the flags' (the file's timeout and allow_non_tls stay), and then needs a certificate
    and a key."""
    if not given.intersection(_TLS_FLAGS):
        return
    if "tls" in given and not flag_opts.tls:
        opts.tls = opts.tls_verify = opts.tls_map = opts.tls_handshake_first = False
        opts.tls_cert = opts.tls_key = opts.tls_ca_cert = opts.tls_min_version = ""
        opts.tls_ciphers = []
        return
    if not flag_opts.tls_cert:
        raise FlagError("TLS Server certificate must be present and valid")
    if not flag_opts.tls_key:
        raise FlagError("TLS Server private key must be present and valid")
    opts.tls = True
    opts.tls_cert, opts.tls_key, opts.tls_ca_cert = flag_opts.tls_cert, flag_opts.tls_key, flag_opts.tls_ca_cert
    opts.tls_verify = flag_opts.tls_verify
    opts.tls_map = opts.tls_handshake_first = False
    opts.tls_handshake_first_fallback = 0.0
    opts.tls_min_version = ""
    opts.tls_ciphers = []  # the files are read when the server starts (Go: here, by GenTLSConfig)


_flag_snapshot = None  # Go: FlagSnapshot, kept to put the command line over a reloaded config


def merge_flags(opts):
    """Go: MergeOptions(newOpts, FlagSnapshot). The command line's flags over `opts`."""
    if _flag_snapshot is None:
        return
    fs, flag_opts = _flag_snapshot
    fs.apply(opts)
    _override_tls(opts, flag_opts, {flag.name for flag, _ in fs.actual})


def configure_options(args, print_version, print_help, print_tls_help, process_signal=None, warn=None):
    """Go: ConfigureOptions. Options from the command line and the config file it names.

    Returns None when the command is done (version, help, a signal sent: the caller exits 0).
    `process_signal(command, flag_opts)` sends `--signal`; `warn(text)` reports config
    warnings (Go prints them to stderr and starts). Raises FlagError, OSError (config file
    unreadable) or ProcessConfigErr.
    """
    fs = new_flag_set()
    cmd = CommandLine()
    fs.parse(args, early_target=cmd)
    if cmd.show_version:
        print_version()
        return None
    if cmd.show_help:
        print_help()
        return None
    if cmd.show_tls_help:
        print_tls_help()
        return None
    # Go: ProcessCommandLineArgs. Arguments after the flags may only be these words.
    for arg in fs.args:
        if arg == "version":
            print_version()
            return None
        if arg == "help":
            print_help()
            return None
        raise FlagError(f"unrecognized command: {go_quote(arg)}")

    # Go: FlagSnapshot, the options as the flags alone give them.
    flag_opts = Options()
    fs.apply(flag_opts)
    global _flag_snapshot
    _flag_snapshot = (fs, flag_opts)

    if cmd.signal:
        if process_signal is None:
            raise FlagError("--signal is not available here")
        process_signal(cmd.signal, flag_opts)
        return None

    opts = Options()
    if cmd.config_file:
        try:
            process_config_file(opts, cmd.config_file)
        except ProcessConfigErr as e:
            if e.errors or flag_opts.check_config:
                raise
            if warn is not None:
                warn(str(e))
    elif flag_opts.check_config:
        raise FlagError("must specify [-c, --config] option to check configuration file syntax")
    # Go: the second fs.Parse. Flags override the file.
    merge_flags(opts)

    # Go: "solicited routes require cluster capabilities".
    if opts.routes and not opts.cluster_listen:
        raise FlagError("solicited routes require cluster capabilities, e.g. --cluster")
    return opts
