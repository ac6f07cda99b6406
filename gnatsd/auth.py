"""Client authentication, and the users and permissions it hands to connections.

Ports nats-server `server/auth.go`: the types (User, NkeyUser, SubjectPermission,
ResponsePermission, Permissions), configureAuthorization, buildNkeysAndUsersFromOptions,
validateResponsePermissions, processClientOrLeafAuthentication (for client connections),
processUserPermissionsTemplate, comparePasswords, isBcrypt, validateNoAuthUser,
checkAuthforWarnings; the user JWT checks of `server/jwt.go` (validateSrc, validateTimes) and
`server/accounts.go` (buildInternalNkeyUser), and convertAllowedConnectionTypes
(`server/client.go`). What a connection does with its permissions is in `permissions.py`.

The order of the checks is Go's: in operator mode a user JWT and nothing else; otherwise nkeys
(when the client sent an `nkey`), then the users list (with `no_auth_user` for a client that
sent no credentials), then the token, then the single user/password.
"""
from __future__ import annotations

import copy
import hmac
import ipaddress
import itertools
import logging
import re
import time
from dataclasses import dataclass
from typing import List, Optional

from . import jwt, nkeys
from .accounts import AccountError, build_permissions_from_jwt, is_trusted_issuer, lookup_account
from .gofmt import go_quote
from .hub import run_blocking

log = logging.getLogger("gnatsd")

# Go: const.go
DEFAULT_ALLOW_RESPONSE_MAX_MSGS = 1
DEFAULT_ALLOW_RESPONSE_EXPIRATION = 120.0  # seconds (Go: 2 * time.Minute)

# Go: the connection types a user's allowed_connection_types may name (jwt.ConnectionType*).
CONNECTION_TYPE_STANDARD = "STANDARD"
CONNECTION_TYPE_WEBSOCKET = "WEBSOCKET"
CONNECTION_TYPES = ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS")


@dataclass
class SubjectPermission:
    """Go: SubjectPermission. `None` and `[]` differ: a publish allow list of `[]` allows
    nothing, `None` everything (a subscribe allow list of `[]` allows everything, as in Go)."""

    allow: Optional[List[str]] = None
    deny: Optional[List[str]] = None


@dataclass
class ResponsePermission:
    """Go: ResponsePermission. `expires` in seconds; zero or less for either means no limit
    (the defaults are applied when the permissions are built)."""

    max_msgs: int = DEFAULT_ALLOW_RESPONSE_MAX_MSGS
    expires: float = DEFAULT_ALLOW_RESPONSE_EXPIRATION


@dataclass
class Permissions:
    """Go: Permissions."""

    publish: Optional[SubjectPermission] = None
    subscribe: Optional[SubjectPermission] = None
    response: Optional[ResponsePermission] = None


@dataclass
class User:
    """Go: User. `password` may be a bcrypt hash."""

    username: str
    password: str = ""
    permissions: Optional[Permissions] = None
    allowed_connection_types: Optional[frozenset] = None  # empty or None: any
    account: str = ""  # the account's name; empty: the global account


@dataclass
class NkeyUser:
    """Go: NkeyUser. `nkey` is the user's public key, `U...`."""

    nkey: str
    permissions: Optional[Permissions] = None
    allowed_connection_types: Optional[frozenset] = None
    account: str = ""
    signing_key: str = ""  # the account signing key that issued a JWT user


# -- configuration ----------------------------------------------------------------------------


def validate_response_permissions(p):
    """Go: validateResponsePermissions. With response permissions, publishing is denied unless
    allowed explicitly, and zero limits take the defaults. Changes `p` in place."""
    if p is None or p.response is None:
        return
    if p.publish is None:
        p.publish = SubjectPermission()
    if p.publish.allow is None:
        p.publish.allow = []
    if p.response.max_msgs == 0:
        p.response.max_msgs = DEFAULT_ALLOW_RESPONSE_MAX_MSGS
    if p.response.expires == 0:
        p.response.expires = DEFAULT_ALLOW_RESPONSE_EXPIRATION


def _server_copy(u):
    u = copy.deepcopy(u)
    validate_response_permissions(u.permissions)
    if u.allowed_connection_types:
        u.allowed_connection_types = frozenset(ct.upper() for ct in u.allowed_connection_types)
    return u


def build_nkeys_and_users(opts):
    """Go: buildNkeysAndUsersFromOptions. Copies, so the server never shares the options'
    objects: (nkeys by public key or None, users by name or None)."""
    nkey_map = user_map = None
    if opts.nkeys is not None:
        nkey_map = {}
        for u in opts.nkeys:
            u = _server_copy(u)
            nkey_map[u.nkey] = u
    if opts.users is not None:
        user_map = {}
        for u in opts.users:
            u = _server_copy(u)
            user_map[u.username] = u
    return nkey_map, user_map


def configure_authorization(srv):
    """Go: configureAuthorization. Sets `srv.nkeys`, `srv.users`, `srv.auth_required` and
    `srv.nonce_required` (Go: nonceRequired, true when nkey users exist)."""
    opts = srv.opts
    srv.nkeys = srv.users = None
    if srv.trusted_keys is not None:
        srv.auth_required = True  # operator mode: every client brings a user JWT
    elif opts.nkeys is not None or opts.users is not None:
        srv.nkeys, srv.users = build_nkeys_and_users(opts)
        srv.auth_required = True
        if srv.sys_only_user is not None:
            srv.users.setdefault(srv.sys_only_user.username, srv.sys_only_user)
    else:
        srv.auth_required = bool(opts.username or opts.authorization)
        srv.no_auth_user = opts.no_auth_user
    srv.nonce_required = bool(srv.nkeys) or srv.trusted_keys is not None


def validate_auth(opts):
    """Go: validateAuth (the parts gnatsd has). Returns an error text, or None."""
    for u in list(opts.users or ()) + list(opts.nkeys or ()):
        for ct in u.allowed_connection_types or ():
            if ct.upper() not in CONNECTION_TYPES:
                return f'unknown connection type "{ct}"'
    return validate_no_auth_user(opts, opts.no_auth_user)


def validate_no_auth_user(opts, no_auth_user):
    """Go: validateNoAuthUser, with Go's texts."""
    if not no_auth_user:
        return None
    if opts.users is None:
        return f'no_auth_user: "{no_auth_user}" present, but users are not defined'
    for u in opts.users:
        if u.username == no_auth_user:
            return None
    return (f'no_auth_user: "{no_auth_user}" not present as user in authorization block or account '
            f'configuration')


def check_auth_for_warnings(srv):
    """Go: checkAuthforWarnings. Warn about passwords kept in plain text."""
    warn = bool(srv.opts.password) and not is_bcrypt(srv.opts.password)
    for u in (srv.users or {}).values():
        if not u.password and srv.opts.tls_map:
            continue  # the client certificate is the credential
        if not is_bcrypt(u.password):
            warn = True
            break
    if warn:
        log.warning("Plaintext passwords detected, use nkeys or bcrypt")


# -- passwords --------------------------------------------------------------------------------

_VALID_BCRYPT_PREFIX = re.compile(r"^\$2[abxy]\$\d{2}\$")  # Go: validBcryptPrefix
BCRYPT_MAX_PASSWORD = 72  # bcrypt reads only this many bytes of a password (Go's does too)


def is_bcrypt(password):
    """Go: isBcrypt."""
    return password.startswith("$") and _VALID_BCRYPT_PREFIX.match(password) is not None


_BCRYPT_HASH = re.compile(rb"\$2[abxy]\$\d{2}\$[./A-Za-z0-9]{53}")


def _bcrypt_check(hashed, password):
    """bcrypt.checkpw, False for a malformed hash (Go: CompareHashAndPassword's error)."""
    if not _BCRYPT_HASH.fullmatch(hashed):
        return False  # bcrypt 4.x panics (PanicException, a BaseException) on some
    import bcrypt  # only servers with bcrypt secrets need it loaded
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt refuses, or a password it refuses (NUL bytes)
        return False
    except BaseException as e:  # pyo3's PanicException, on input bcrypt did not expect
        if type(e).__name__ == "PanicException":
            return False
        raise


def compare_passwords(server_password, client_password):
    """Go: comparePasswords. A bcrypt hash is checked with bcrypt, in gevent's thread pool
    when a hub runs (it takes tens of milliseconds that would otherwise stop every other
    connection); a plain secret in constant time (Go compares with !=)."""
    if is_bcrypt(server_password):
        hashed = server_password.encode()
        password = client_password.encode("utf-8", "surrogatepass")[:BCRYPT_MAX_PASSWORD]
        return bool(run_blocking(_bcrypt_check, hashed, password))
    return hmac.compare_digest(server_password.encode("utf-8", "surrogatepass"),
                               client_password.encode("utf-8", "surrogatepass"))


# -- authentication ---------------------------------------------------------------------------


def connection_type_allowed(allowed, conn_type=CONNECTION_TYPE_STANDARD):
    """Go: client.connectionTypeAllowed. `conn_type` is STANDARD or WEBSOCKET."""
    return not allowed or conn_type in allowed


def no_auth_user(srv):
    """The User that `no_auth_user` names, or None."""
    name = srv.no_auth_user
    if not name or not srv.users:
        return None
    return srv.users.get(name)


def check_client_authentication(srv, client):
    """Go: processClientOrLeafAuthentication for a CLIENT connection. On success the client
    gets its user's permissions (Go: RegisterUser / RegisterNkeyUser). May yield (bcrypt).

    A WebSocket client is checked with the `websocket` block's tls map, and with its user,
    password, token and no_auth_user when the block sets any of them (Go: authOverride).
    """
    if not client.auth_required:
        return True
    if srv.trusted_keys is not None:
        return process_jwt_authentication(srv, client)
    opts = srv.opts
    username, password, token, no_auth = opts.username, opts.password, opts.authorization, srv.no_auth_user
    tls_map = opts.tls_map
    conn_type = CONNECTION_TYPE_STANDARD
    if client.ws is not None:
        wo = opts.websocket
        tls_map = wo.tls_map
        conn_type = CONNECTION_TYPE_WEBSOCKET
        if srv.websocket.auth_override:
            username, password, token, no_auth = wo.username, wo.password, wo.token, wo.no_auth_user
    copts = client.copts
    c_nkey = copts.get("nkey") or ""
    c_user = copts.get("user") or ""
    c_pass = copts.get("pass") or ""
    c_token = copts.get("auth_token") or ""
    nkey = user = None
    if srv.nkeys and c_nkey:
        nkey = srv.nkeys.get(c_nkey)
        if nkey is None or not connection_type_allowed(nkey.allowed_connection_types, conn_type):
            return False
    elif srv.users and tls_map:
        # Go: verify_and_map, the user the client certificate names (tls.py); then its password
        from .tls import map_client_user
        user = map_client_user(client, srv.users, lambda u: connection_type_allowed(u.allowed_connection_types,
                                                                                   conn_type))
        if user is None:
            return False
    elif srv.users:
        if no_auth and not c_user and not c_pass and not c_token:
            u = srv.users.get(no_auth)
            if u is not None:
                # Go copies the user's name and password into the client's CONNECT options
                # and compares them below, which fails for a bcrypt-hashed password (the hash
                # is not its own password). The user is meant without credentials: take it.
                if not connection_type_allowed(u.allowed_connection_types, conn_type):
                    return False
                copts["user"] = u.username
                client.register_user(u)
                return True  # even if its account was full: then the client is closed
        if c_user:
            user = srv.users.get(c_user)
            if user is None or not connection_type_allowed(user.allowed_connection_types, conn_type):
                return False
    if nkey is not None:
        if not check_nonce_signature(client, c_nkey):
            return False
        return client.register_user(nkey)
    if user is not None:
        if compare_passwords(user.password, c_pass):
            client.register_user(user)
            return True
        return False
    if token:
        return compare_passwords(token, c_token)
    if username:
        if not hmac.compare_digest(username.encode("utf-8", "surrogatepass"),
                                   c_user.encode("utf-8", "surrogatepass")):
            return False
        return compare_passwords(password, c_pass)
    return False


def check_nonce_signature(client, public_key):
    """Go: the `sig` checks of processClientOrLeafAuthentication: CONNECT's `sig` is the INFO
    nonce signed by `public_key`'s private key."""
    sig = client.copts.get("sig") or ""
    if not sig:
        log.debug("%s - Signature missing", client)
        return False
    raw = nkeys.decode_sig(sig)
    if raw is None:
        log.debug("%s - Signature not valid base64", client)
        return False
    if not nkeys.verify(public_key, client.nonce, raw):
        log.debug("%s - Signature not verified", client)
        return False
    return True


def auth_user_text(copts):
    """Go: client.getAuthUser, for log lines."""
    if copts.get("nkey"):
        return f'Nkey "{copts["nkey"]}"'
    if copts.get("user"):
        return f'User "{copts["user"]}"'
    return 'User "N/A"'


# -- operator mode: user JWTs --------------------------------------------------------------------


def process_jwt_authentication(srv, client):
    """Go: processClientOrLeafAuthentication's JWT branch. The CONNECT's `jwt` must be a valid
    user JWT of an account a trusted operator signed, issued by that account or one of its
    signing keys, and `sig` the INFO nonce signed by the user's key (the JWT's `sub`), unless
    the JWT is a bearer token. On success the client joins the account with the JWT's
    permissions and limits, and is closed when the JWT expires. Does not yield."""
    copts = client.copts
    token = copts.get("jwt") or ""
    if not token:
        log.debug("%s - Authentication requires a user JWT", client)
        return False
    try:
        juc = jwt.decode_user_claims(token)
    except jwt.JWTError as e:
        log.debug("%s - User JWT not valid: %s", client, e)
        return False
    vr = jwt.validate(juc)
    if vr.is_blocking(True):
        log.debug("%s - User JWT no longer valid: %s", client, vr)
        return False
    allowed, unknown = convert_allowed_connection_types(juc.limits.allowed_connection_types)
    if unknown:
        log.debug("%s - invalid connection types %s", client, unknown)
        if not allowed:
            return False
    if not connection_type_allowed(allowed):
        log.debug("%s - Connection type not allowed", client)
        return False
    issuer = juc.issuer_account or juc.iss
    pinned = srv.pinned_accounts
    if pinned is not None and issuer not in pinned:
        log.debug("%s - Account %s not listed as operator pinned account", client, issuer)
        return False
    try:
        acc = lookup_account(srv, issuer)
    except AccountError as e:
        log.debug("%s - Account JWT lookup error: %s", client, e)
        return False
    if not is_trusted_issuer(srv, acc.issuer):
        log.debug("%s - Account JWT not signed by trusted operator", client)
        return False
    scope, ok = acc.has_issuer(juc.iss)
    if not ok:
        log.debug("%s - User JWT issuer is not known", client)
        return False
    if scope is not None:
        try:
            scope.validate_scoped_signer(juc)
        except jwt.JWTError as e:
            log.debug("%s - User JWT is not valid: %s", client, e)
            return False
        try:
            juc.limits = process_user_permissions_template(scope.template, juc, acc)
        except ValueError:
            log.debug("%s - User JWT generated invalid permissions", client)
            return False
    if acc.expired:
        log.debug("%s - Account JWT has expired", client)
        return False
    if juc.limits.bearer_token and acc.disallow_bearer:
        log.debug("%s - Account does not allow bearer token", client)
        return False
    if not juc.limits.bearer_token:
        if not check_nonce_signature(client, juc.sub):
            return False
    if acc.check_user_revoked(juc.sub, juc.iat):
        log.debug("%s - User authentication revoked", client)
        return False
    if not validate_src(juc, client.host):
        log.error("%s - Bad src Ip %s", client, client.host)
        return False
    allow_now, valid_for = validate_times(juc)
    if not allow_now:
        log.error("%s - Outside connect times", client)
        return False
    client.juc = juc  # Go: c.pubKey, c.tags, c.nameTag; and the JWT's limits for applyAccountLimits
    if not client.register_user(build_internal_nkey_user(juc, allowed, acc)):
        return False
    client.set_expiration(juc, valid_for)
    log.debug("%s - Authenticated JWT: Client %s (claim-name: %s, claim-tags: %s) signed with %s by Account %s "
              "(claim-name: %s, claim-tags: %s) signed with %s", client, go_quote(juc.sub), go_quote(juc.name),
              juc.tags, go_quote(juc.iss), go_quote(issuer), go_quote(acc.name_tag), acc.tags,
              go_quote(acc.issuer))
    return True


def convert_allowed_connection_types(cts):
    """Go: convertAllowedConnectionTypes. (the known types, upper case; the unknown ones)."""
    known, unknown = set(), []
    for ct in cts:
        ct = ct.upper()
        if ct in CONNECTION_TYPES:
            known.add(ct)
        else:
            unknown.append(ct)
    return frozenset(known), unknown


def build_internal_nkey_user(juc, allowed, acc):
    """Go: buildInternalNkeyUser. The NkeyUser a user JWT stands for: its permissions, or
    the account's default permissions when it has none."""
    perms = build_permissions_from_jwt(juc.limits.permissions)
    if perms is None and acc.default_perms is not None:
        perms = copy.deepcopy(acc.default_perms)
    return NkeyUser(juc.sub, perms, allowed or None, acc.name, juc.iss if juc.issuer_account else "")


def user_jwt_limits(juc, acc):
    """Go: applyAccountLimits' user part. (max payload, max subscriptions) of a user JWT, or
    of the template of the scoped signing key that issued it; -1 for none."""
    payload, subs = juc.limits.payload, juc.limits.subs
    if juc.issuer_account and juc.issuer_account != juc.iss:
        scope, _ = acc.has_issuer(juc.iss)
        if scope is not None:
            payload, subs = scope.template.payload, scope.template.subs
    return payload, subs


def validate_src(juc, host):
    """Go: validateSrc. Is `host` in one of the JWT's `src` CIDRs (when it lists any)?"""
    if not juc.limits.src:
        return True
    if not host:
        return False
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # Go's net.IP treats a v4-in-v6 address as the v4 one
    for cidr in juc.limits.src:
        net = jwt.parse_cidr(cidr)
        if net is None:
            return False
        if ip.version == net.version and ip in net:
            return True
    return False


def validate_times(juc, now=None):
    """Go: validateTimes. (may the user connect now, for how many seconds more (0: no
    limit)). Each range is a time of day in the JWT's `times_location` (the server's local
    time when empty); a range whose start is after its end ends the next day."""
    from datetime import datetime, timedelta
    times = juc.limits.times
    if not times:
        return True, 0.0
    try:
        loc = jwt.load_location(juc.limits.locale) if juc.limits.locale else None
    except jwt.JWTError:
        return False, 0.0
    now = datetime.fromtimestamp(time.time() if now is None else now, loc).astimezone(loc)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    for tr in times:
        start, end = jwt.parse_clock(tr.start), jwt.parse_clock(tr.end)
        if start is None or end is None:
            return False, 0.0
        start_at = midnight + timedelta(seconds=start)
        end_at = midnight + timedelta(days=1 if start > end else 0, seconds=end)
        if start_at < now < end_at:
            return True, (end_at - now).total_seconds()
    return False, 0.0


def process_user_permissions_template(lim, juc, acc):
    """Go: processUserPermissionsTemplate. A scoped signing key's template with its `{{...}}`
    tokens filled in from the user JWT and its account: name(), subject(), account-name(),
    account-subject(), tag(name), account-tag(name). Raises ValueError when a deny list gets an
    invalid subject; an allow list loses such subjects, and one that ends up empty denies `>`."""
    from .sublist import is_valid_subject
    lim = copy.deepcopy(lim)

    def fill(op):
        """A token's value, or a list of values for the tag functions (None: no tag)."""
        if op == "name()":
            return juc.name
        if op == "subject()":
            return juc.sub
        if op == "account-name()":
            return acc.name_tag
        if op == "account-subject()":
            return juc.issuer_account
        for fn, tags in (("account-tag(", acc.tags), ("tag(", juc.tags)):
            if op.startswith(fn) and op.endswith(")"):
                prefix = op[len(fn):-1].lower() + ":"
                return [t[len(prefix):] for t in tags if t.startswith(prefix)] or None
        return " "  # an unknown function: makes the subject invalid on purpose

    def apply(subjects, fail_on_bad):
        if not any(tk.startswith("{{") and tk.endswith("}}") for subj in subjects for tk in subj.split(".")):
            return subjects
        out = []
        for subj in subjects:
            tokens = []
            for tk in subj.split("."):
                if tk.startswith("{{") and tk.endswith("}}"):
                    v = fill(tk[2:-2].lower())
                    tokens.append([""] if v is None else v if isinstance(v, list) else [v])
                else:
                    tokens.append([tk])
            for combo in itertools.product(*tokens):
                emit = ".".join(combo)
                if is_valid_subject(emit.encode()):
                    out.append(emit)
                elif fail_on_bad:
                    raise ValueError("generated invalid subject")
        return out

    p = lim.permissions
    sub_allow, pub_allow = bool(p.sub.allow), bool(p.pub.allow)
    p.sub.allow = apply(p.sub.allow, False)
    p.sub.deny = apply(p.sub.deny, True)
    p.pub.allow = apply(p.pub.allow, False)
    p.pub.deny = apply(p.pub.deny, True)
    if sub_allow and not p.sub.allow and ">" not in p.sub.deny:
        p.sub.deny.append(">")
    if pub_allow and not p.pub.allow and ">" not in p.pub.deny:
        p.pub.deny.append(">")
    return lim
