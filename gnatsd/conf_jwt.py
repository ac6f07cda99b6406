"""Operator mode in a config file: `operator`, `trusted`, `resolver`, `resolver_preload`,
`resolver_pinned_accounts`, and their checks.

Ports the operator parts of nats-server `server/opts.go` (processConfigFileLine's cases for
these keys), `server/jwt.go` (readOperatorJWT, validateTrustedOperators) and `server/server.go`
(processTrustedKeys). Errors carry Go's texts. The resolvers gnatsd has: MEMORY (Go:
MemAccResolver, in `accounts.py`); URL and the nats-based directory resolvers are refused as
not yet supported.
"""
from __future__ import annotations

import re

from . import const, jwt, nkeys
from .gofmt import go_quote
from .opts import ConfigErr, _describe

JWT_PREFIX = "eyJ"  # Go: jwtPrefix, how every encoded JWT starts
MEMORY_RESOLVER = "MEMORY"
URL_RESOLVER = "URL"

_MEM_RESOLVER_RE = re.compile(r"(?i)(MEM|MEMORY)\s*")
_URL_RESOLVER_RE = re.compile(r"(?i)(?:URL)(?:\(\s*\"?([^\s\"]*)\"?\s*\))?\s*")


def read_operator_jwt(path):
    """Go: readOperatorJWT. (the JWT, its OperatorClaims) from a file, decorated or not, or
    from the JWT itself written in the config. Raises ValueError with Go's text."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            contents = f.read()
    except OSError as e:
        if not path.startswith(JWT_PREFIX):
            why = (e.strerror or str(e))
            raise ValueError(f"open {path}: {why[:1].lower()}{why[1:]}") from None
        contents = path
    token = jwt.parse_decorated_jwt(contents)
    try:
        return token, jwt.decode_operator_claims(token)
    except jwt.JWTError as e:
        raise ValueError(str(e)) from None


def _strings(k, tk, what):
    """A string or an array of strings: [(token, value)]."""
    v = tk.value
    if isinstance(v, str):
        return [(tk, v)]
    if isinstance(v, list):
        out = []
        for etk in v:
            if not isinstance(etk.value, str):
                raise ConfigErr(etk, f"error parsing {what}: unsupported type in array, got {_describe(etk.value)}")
            out.append((etk, etk.value))
        return out
    raise ConfigErr(tk, f"error parsing {what}: unsupported type, got {_describe(v)}")


def parse_operators(o, k, tk, errors, warnings):
    """`operator`/`operators`/`root`...: operator JWT files, or the JWTs themselves. Go 2.9.10
    takes one string only (an array fails there); gnatsd takes an array too."""
    o.trusted_operators = []
    o.operator_jwts = []
    for etk, path in _strings(k, tk, "operators"):
        try:
            token, claims = read_operator_jwt(path)
        except ValueError as e:
            errors.append(ConfigErr(etk, f"error parsing operator JWT: {e}"))
            continue
        o.operator_jwts.append(token)
        o.trusted_operators.append(claims)
    if len(o.trusted_operators) == 1:
        op = o.trusted_operators[0]
        if not o.account_resolver:
            # Go: an operator alone means its account server, URL(<account_server_url>/accounts)
            o.account_resolver = URL_RESOLVER
        if not o.system_account:
            o.system_account = op.system_account


def parse_resolver(o, k, tk, errors, warnings):
    """`resolver`: MEMORY; URL(...) and the directory resolvers are not yet supported."""
    v = tk.value
    o.account_resolver = ""
    if isinstance(v, str):
        if _MEM_RESOLVER_RE.search(v):
            o.account_resolver = MEMORY_RESOLVER
            return
        if _URL_RESOLVER_RE.search(v):
            raise ConfigErr(tk, f"{k} URL(...) is not yet supported by gnatsd")
    elif isinstance(v, dict):
        raise ConfigErr(tk, f"{k} {{dir, type}} (the FULL and CACHE resolvers) is not yet supported by gnatsd")
    else:
        raise ConfigErr(tk, f"error parsing operator resolver, wrong type, got {_describe(v)}")
    raise ConfigErr(tk, "error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir "
                        "and type state=[FULL|CACHE])")


def parse_resolver_preload(o, k, tk, errors, warnings):
    """`resolver_preload { <account public key>: <account JWT> }`."""
    if not isinstance(tk.value, dict):
        raise ConfigErr(tk, "preload should be a map of account_public_key:account_jwt")
    o.resolver_preloads = {}
    for key, vtk in tk.value.items():
        if not isinstance(vtk.value, str):
            errors.append(ConfigErr(vtk, "preload map value should be a string JWT"))
            continue
        try:
            jwt.decode_account_claims(vtk.value)
        except jwt.JWTError:
            errors.append(ConfigErr(vtk, "invalid account JWT"))
            continue
        o.resolver_preloads[key] = vtk.value


def parse_resolver_pinned_accounts(o, k, tk, errors, warnings):
    """`resolver_pinned_accounts`: the only accounts whose users may connect."""
    o.resolver_pinned_accounts = {v for _, v in _strings(k, tk, "resolver_pinned_accounts")}


def parse_trusted_keys(o, k, tk, errors, warnings):
    """`trusted`/`trusted_keys`: operator public keys, instead of operator JWTs."""
    o.trusted_keys = []
    for etk, key in _strings(k, tk, "trusted"):
        o.trusted_keys.append(key)
        if not nkeys.is_valid_public_operator_key(key):
            errors.append(ConfigErr(etk, f"trust key {go_quote(key)} required to be a valid public operator nkey"))


def validate_trusted_operators(o):
    """Go: validateTrustedOperators. Returns an error text, or None."""
    ops = o.trusted_operators
    if not ops:
        return None
    if not o.account_resolver:
        return "operators require an account resolver to be configured"
    if o.accounts:
        return "operators do not allow Accounts to be configured directly"
    if o.users or o.nkeys:
        return "operators do not allow users to be configured directly"
    if o.trusted_keys:
        return "conflicting options for 'TrustedKeys' and 'TrustedOperators'"
    if o.account_resolver == URL_RESOLVER:
        return ("the operator's account server (resolver URL) is not yet supported by gnatsd: "
                "configure resolver: MEMORY")
    if o.system_account:
        sys_accs = [op.system_account for op in ops if op.system_account]
        if sys_accs and o.system_account not in sys_accs:
            return "system_account in config and operator JWT must be identical"
    srv_version = jwt.parse_server_version(const.VERSION.split("-")[0])
    for op in ops:
        try:
            want = jwt.parse_server_version(op.assert_server_version)
        except jwt.JWTError as e:
            return f"operator {op.sub} expects version {op.assert_server_version} got error instead: {e}"
        for name, w, have in zip(("major", "minor", "update"), want, srv_version):
            if w > have:
                return f"operator {op.sub} expected {name} version {w} > server {name} version {have}"
            if have > w:
                break
    for key in trusted_keys(o)[0]:
        if not nkeys.is_valid_public_operator_key(key):
            return f"trusted Keys {go_quote(key)} are required to be a valid public operator nkey"
    for key in o.resolver_pinned_accounts or ():
        if not nkeys.is_valid_public_account_key(key):
            return f"pinned account key {go_quote(key)} is not a valid public account nkey"
    return None


def trusted_keys(o):
    """Go: validateTrustedOperators' expansion and processTrustedKeys. Returns (the trusted
    operator keys, or None outside operator mode; the signing keys of operators with
    strict_signing_key_usage: an account one of them signed may not sign users with its own
    key, only with its signing keys)."""
    if not o.trusted_operators:
        return (list(o.trusted_keys) if o.trusted_keys is not None else None), set()
    keys = list(o.trusted_keys or ())
    strict = set()
    for op in o.trusted_operators:
        if not op.strict_signing_key_usage:
            keys.append(op.sub)
        else:
            strict.update(op.signing_keys)
        keys.extend(op.signing_keys)
    return keys, strict
