"""The `accounts`, `mappings` and `system_account` parts of a config file.

Ports the account parts of nats-server `server/opts.go`: parseAccounts, parseAccountExports,
parseAccountImports, parseAccount, parseExportStreamOrService, parseServiceLatency,
parseImportStreamOrService, parseAccountLimits, configureSystemAccount and
applyDefaultPermissions (parseAccountMappings is in `transform.py`). Errors carry
Go's texts at the token they are about. What the accounts do is `accounts.py`.
"""
from __future__ import annotations

from .accounts import (
    CHUNKED, DEFAULT_SERVICE_LATENCY_SAMPLING, GLOBAL_ACCOUNT, SINGLETON, STREAMED, AccountConfig, AccountError,
    ExportConfig, ImportConfig, build_accounts,
)
from .gofmt import go_quote
from .nkeys import is_valid_public_account_key
from .opts import (
    ConfigErr, UnknownConfigFieldErr, _describe, _parse_user_permissions, _parse_users, _want, parse_go_duration,
)
from .transform import parse_account_mappings

_RESPONSE_TYPES = {"single": SINGLETON, "singleton": SINGLETON, "stream": STREAMED, "chunk": CHUNKED,
                   "chunked": CHUNKED}
_ACCOUNT_LIMITS = {"max_connections": "mconns", "max_conn": "mconns", "max_subscriptions": "msubs",
                   "max_subs": "msubs", "max_payload": "mpay", "max_pay": "mpay", "max_leafnodes": "mleafs",
                   "max_leafs": "mleafs"}


def parse_accounts(o, k, tk, errors, warnings):
    """Go: parseAccounts. A list of account names, or a map of accounts with their users,
    exports, imports, mappings, limits and default permissions. Adds to `o.accounts`, and the
    accounts' users to `o.users` and `o.nkeys`; then checks the exports and imports by
    building the accounts once, as Go does while parsing."""
    v = tk.value
    seen = {a.name for a in o.accounts}
    if isinstance(v, list):
        for ntk in v:
            name = _want(k, ntk, "str")
            if name == GLOBAL_ACCOUNT:
                errors.append(ConfigErr(ntk, f"{go_quote(name)} is a Reserved Account"))
            elif name in seen:
                errors.append(ConfigErr(ntk, f"Duplicate Account Entry: {name}"))
            else:
                o.accounts.append(AccountConfig(name))
                seen.add(name)
        return
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"{k}: expected a map of accounts or an array of account names, got {_describe(v)}")
    # Go: users and nkeys are unique across accounts and the authorization block.
    known = {u.username for u in o.users or ()} | {u.nkey for u in o.nkeys or ()}
    n_errors = len(errors)
    for name, atk in v.items():
        if atk.used_variable:
            continue
        if not isinstance(atk.value, dict):
            errors.append(ConfigErr(atk, "Expected map entries for accounts"))
            continue
        if name == GLOBAL_ACCOUNT:
            errors.append(ConfigErr(atk, f"{go_quote(name)} is a Reserved Account"))
            continue
        acc = AccountConfig(name)
        o.accounts.append(acc)
        users, nkey_users, users_tk = _parse_account(acc, atk, errors, warnings)
        if users or nkey_users:
            if o.username:
                errors.append(ConfigErr(users_tk, "Can not have a single user/pass and accounts"))
                continue
            if o.authorization:
                errors.append(ConfigErr(users_tk, "Can not have a token and accounts"))
                continue
        for u in nkey_users + users:
            if acc.default_permissions is not None and u.permissions is None:
                u.permissions = acc.default_permissions  # Go: applyDefaultPermissions
            u.account = name
        for u in nkey_users:
            if u.nkey in known:
                errors.append(ConfigErr(users_tk, f"Duplicate nkey {go_quote(u.nkey)} detected"))
                continue
            known.add(u.nkey)
            o.nkeys = (o.nkeys or []) + [u]
        for u in users:
            if u.username in known:
                errors.append(ConfigErr(users_tk, f"Duplicate user {go_quote(u.username)} detected"))
                continue
            known.add(u.username)
            o.users = (o.users or []) + [u]
    if len(errors) > n_errors:
        return
    try:
        build_accounts(o.accounts)
    except AccountError as e:
        for line in str(e).splitlines():
            errors.append(ConfigErr(tk, line))


def _parse_account(acc, atk, errors, warnings):
    """One account's map. Returns (users, nkey users, the users token)."""
    users, nkey_users, users_tk = [], [], atk
    for key, vtk in atk.value.items():
        lk = key.lower()
        try:
            if lk == "nkey":
                nk = vtk.value
                if not isinstance(nk, str) or not is_valid_public_account_key(nk):
                    raise ConfigErr(vtk, f"Not a valid public nkey for an account: {go_quote(str(nk))}")
                acc.nkey = nk
            elif lk == "imports":
                acc.imports = parse_account_imports(vtk, errors)
            elif lk == "exports":
                acc.exports = parse_account_exports(vtk, errors)
            elif lk == "jetstream":
                _account_jetstream(acc, vtk, errors)
            elif lk == "users":
                users_tk = vtk
                nkey_users, users = _parse_users(vtk, errors, warnings)
                nkey_users = nkey_users or []
            elif lk == "default_permissions":
                acc.default_permissions = _parse_user_permissions(vtk, errors, warnings)
            elif lk in ("mappings", "maps"):
                acc.mappings = parse_account_mappings(vtk, errors)
            elif lk == "limits":
                acc.limits = parse_account_limits(vtk, errors)
            elif not vtk.used_variable:
                raise UnknownConfigFieldErr(vtk, key)
        except ConfigErr as e:
            errors.append(e)
    return users, nkey_users, users_tk


# Go: parseJetStreamForAccount's keys -> JetStreamAccountLimits JSON name, and "size"/"bool".
_ACCOUNT_JS_LIMITS = {
    "max_memory": ("max_memory", "size"), "max_mem": ("max_memory", "size"), "mem": ("max_memory", "size"),
    "memory": ("max_memory", "size"),
    "max_store": ("max_storage", "size"), "max_file": ("max_storage", "size"), "max_disk": ("max_storage", "size"),
    "store": ("max_storage", "size"), "disk": ("max_storage", "size"),
    "max_streams": ("max_streams", "size"), "streams": ("max_streams", "size"),
    "max_consumers": ("max_consumers", "size"), "consumers": ("max_consumers", "size"),
    "max_bytes_required": ("max_bytes_required", "bool"), "max_stream_bytes": ("max_bytes_required", "bool"),
    "max_bytes": ("max_bytes_required", "bool"),
    "mem_max_stream_bytes": ("memory_max_stream_bytes", "size"),
    "memory_max_stream_bytes": ("memory_max_stream_bytes", "size"),
    "disk_max_stream_bytes": ("storage_max_stream_bytes", "size"),
    "store_max_stream_bytes": ("storage_max_stream_bytes", "size"),
    "max_ack_pending": ("max_ack_pending", "size"),
}


def _account_jetstream(acc, tk, errors):
    """Go: parseJetStreamForAccount. Sets `acc.jetstream`, and with a block its limits."""
    v = tk.value
    if isinstance(v, bool):
        acc.jetstream = v
        return
    if isinstance(v, str):
        if v.lower() in ("enabled", "enable"):
            acc.jetstream = True
        elif v.lower() in ("disabled", "disable"):
            acc.jetstream = False
        else:
            raise ConfigErr(tk, f"Expected 'enabled' or 'disabled' for string value, got '{v}'")
        return
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"Expected map, bool or string to define JetStream, got {type(v).__name__}")
    limits = {"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1, "max_ack_pending": -1,
              "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1, "max_bytes_required": False}
    for mk, mtk in v.items():
        known = _ACCOUNT_JS_LIMITS.get(mk.lower())
        if known is None:
            if not mtk.used_variable:
                errors.append(UnknownConfigFieldErr(mtk, mk))
            continue
        name, kind = known
        mv = mtk.value
        if kind == "bool":
            if not isinstance(mv, bool):
                raise ConfigErr(mtk, f"Expected a parseable bool for {go_quote(mk)}, got {_go_value(mv)}")
        elif not isinstance(mv, int) or isinstance(mv, bool):
            raise ConfigErr(mtk, f"Expected a parseable size for {go_quote(mk)}, got {_go_value(mv)}")
        limits[name] = mv
    acc.jetstream = True
    acc.jetstream_limits = limits


def _go_value(v):
    """A config value as Go's %v prints it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def parse_account_limits(tk, errors):
    """Go: parseAccountLimits. The account's attribute names and values."""
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"Expected account limits to be a map/struct, got {_describe(v)}")
    limits = {}
    for key, vtk in v.items():
        attr = _ACCOUNT_LIMITS.get(key.lower())
        if attr is not None:
            limits[attr] = _want(key, vtk, "int")
        elif not vtk.used_variable:
            errors.append(ConfigErr(vtk, f"Unknown field {go_quote(key)} parsing account limits"))
    return limits


def parse_account_exports(tk, errors):
    """Go: parseAccountExports."""
    v = tk.value
    if not isinstance(v, list):
        raise ConfigErr(tk, f"Exports should be an array, got {_describe(v)}")
    exports = []
    for etk in v:
        try:
            e = parse_export(etk, errors)
        except ConfigErr as err:
            errors.append(err)
            continue
        if e is not None:
            exports.append(e)
    return exports


def parse_export(tk, errors):
    """Go: parseExportStreamOrService. One `{stream: ...}` or `{service: ...}` entry."""
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"Export Items should be a map with type entry, got {_describe(v)}")
    e = None
    kind = None
    accounts = None
    rt = None
    rt_tk = lat_tk = None
    thresh = 0.0
    thresh_seen = False
    latency = None
    pos = 0
    for key, vtk in v.items():
        lk = key.lower()
        mv = vtk.value
        if lk in ("stream", "service"):
            other = "service" if lk == "stream" else "stream"
            if kind == other:
                errors.append(ConfigErr(vtk, f"Detected {lk} {go_quote(str(mv))} but already saw a {other}"))
                continue
            if lk == "stream" and (rt_tk is not None or lat_tk is not None):
                what = "response" if rt_tk is not None else "latency"
                errors.append(ConfigErr(rt_tk or lat_tk, f"Detected {what} directive on non-service"))
                continue
            if not isinstance(mv, str):
                errors.append(ConfigErr(vtk, f"Expected {lk} name to be string, got {_describe(mv)}"))
                continue
            kind = lk
            e = ExportConfig(mv, service=lk == "service")
        elif lk in ("response", "response_type"):
            if rt_tk is not None:
                errors.append(ConfigErr(vtk, "Duplicate response type definition"))
                continue
            rt_tk = vtk
            if not isinstance(mv, str):
                errors.append(ConfigErr(vtk, f"Expected response type to be string, got {_describe(mv)}"))
                continue
            rt = _RESPONSE_TYPES.get(mv.lower())
            if rt is None:
                errors.append(ConfigErr(vtk, f"Unknown response type: {go_quote(mv)}"))
                continue
            if kind == "stream":
                errors.append(ConfigErr(vtk, "Detected response directive on non-service"))
        elif lk in ("threshold", "response_threshold", "response_max_time", "response_time"):
            if thresh_seen:
                errors.append(ConfigErr(vtk, "Duplicate response threshold detected"))
                continue
            thresh_seen = True
            if not isinstance(mv, str):
                errors.append(ConfigErr(vtk, "Expected response threshold to be a parseable time duration, "
                                             f"got {_describe(mv)}"))
                continue
            try:
                thresh = parse_go_duration(mv)
            except ValueError:
                errors.append(ConfigErr(vtk, "Expected response threshold to be a parseable time duration, "
                                             f"got {go_quote(mv)}"))
                continue
            if kind == "stream":
                errors.append(ConfigErr(vtk, "Detected response directive on non-service"))
        elif lk == "accounts":
            if not isinstance(mv, list) or not all(isinstance(a.value, str) for a in mv):
                raise ConfigErr(vtk, f"Expected accounts to be an array of account names, got {_describe(mv)}")
            accounts = [a.value for a in mv]
        elif lk == "latency":
            lat_tk = vtk
            latency = parse_service_latency(vtk)
            if kind == "stream":
                errors.append(ConfigErr(vtk, "Detected latency directive on non-service"))
                continue
        elif lk == "account_token_position":
            pos = _want(key, vtk, "int")
        elif not vtk.used_variable:
            errors.append(UnknownConfigFieldErr(vtk, key))
    if e is None:
        return None
    e.accounts = accounts
    e.account_token_position = pos
    if e.service:
        if rt is not None:
            e.response_type = rt
        e.response_threshold = thresh
        e.latency = latency
    return e


def parse_service_latency(tk):
    """Go: parseServiceLatency. (results subject, sampling percentage; 0: by header)."""
    v = tk.value
    if isinstance(v, str):
        return v, DEFAULT_SERVICE_LATENCY_SAMPLING
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"Expected latency entry to be a map/struct or string, got {_describe(v)}")
    sampling = DEFAULT_SERVICE_LATENCY_SAMPLING
    stk = v.get("sampling")
    if stk is not None:
        s = stk.value
        if isinstance(s, str) and s.strip().lower() == "headers":
            sampling = 0
        else:
            if isinstance(s, str):
                try:
                    s = int(s.rstrip("%"))
                except ValueError as e:
                    raise ConfigErr(stk, f"Failed to parse latency sample: {e}") from None
            elif isinstance(s, bool) or not isinstance(s, int):
                raise ConfigErr(stk, f"Expected latency sample to be a string or map/struct, got {_describe(s)}")
            if not 1 <= s <= 100:
                raise ConfigErr(stk, "bad sampling percentage, should be 1-100")
            sampling = s
    subj = v.get("subject")
    if subj is None:
        raise ConfigErr(tk, "Latency subject required, but missing")
    if not isinstance(subj.value, str):
        raise ConfigErr(subj, f"Expected latency subject to be a string, got {_describe(subj.value)}")
    return subj.value, sampling


def parse_account_imports(tk, errors):
    """Go: parseAccountImports."""
    v = tk.value
    if not isinstance(v, list):
        raise ConfigErr(tk, f"Imports should be an array, got {_describe(v)}")
    imports = []
    services = {}
    for itk in v:
        try:
            i = parse_import(itk, errors)
        except ConfigErr as err:
            errors.append(err)
            continue
        if i is None:
            continue
        if i.service:
            local = i.to or i.subject
            dup = services.get(local)
            if dup is not None:
                errors.append(ConfigErr(itk, f"Duplicate service import subject {go_quote(local)}, previously used in "
                                             f"import for account {go_quote(dup.account)}, subject "
                                             f"{go_quote(dup.subject)}"))
                continue
            services[local] = i
        imports.append(i)
    return imports


def parse_import(tk, errors):
    """Go: parseImportStreamOrService. One `{stream: {account, subject}, prefix|to}` or
    `{service: {account, subject}, to, share}` entry."""
    v = tk.value
    if not isinstance(v, dict):
        raise ConfigErr(tk, f"Import Items should be a map with type entry, got {_describe(v)}")
    i = None
    to = prefix = ""
    share = False
    for key, vtk in v.items():
        lk = key.lower()
        mv = vtk.value
        if lk in ("stream", "service"):
            other = "service" if lk == "stream" else "stream"
            if i is not None and i.service != (lk == "service"):
                errors.append(ConfigErr(vtk, f"Detected {lk} but already saw a {other}"))
                continue
            if not isinstance(mv, dict):
                errors.append(ConfigErr(vtk, f"{lk.capitalize()} entry should be an account map, got {_describe(mv)}"))
                continue
            account, subject = _parse_import_account(mv, errors)
            if not account or not subject:
                errors.append(ConfigErr(vtk, "Expect an account name and a subject"))
                continue
            i = ImportConfig(account, subject, service=lk == "service")
        elif lk == "prefix":
            prefix = _want(key, vtk, "str")
        elif lk == "to":
            to = _want(key, vtk, "str")
            if i is not None and not i.service and prefix:
                errors.append(ConfigErr(vtk, "Stream import can not have a 'prefix' and a 'to' property"))
                continue
        elif lk == "share":
            share = _want(key, vtk, "bool")
        elif not vtk.used_variable:
            errors.append(UnknownConfigFieldErr(vtk, key))
    if i is None:
        return None
    i.to = to
    if i.service:
        i.share = share
    else:
        i.prefix = prefix
    return i


def _parse_import_account(m, errors):
    """Go: parseAccount. The `account` and `subject` of an import."""
    account = subject = ""
    for key, vtk in m.items():
        lk = key.lower()
        if lk == "account":
            account = _want(key, vtk, "str")
        elif lk == "subject":
            subject = _want(key, vtk, "str")
        elif not vtk.used_variable:
            errors.append(UnknownConfigFieldErr(vtk, key))
    return account, subject


def parse_mappings_block(o, k, tk, errors, warnings):
    """The top-level `mappings`: the global account's (Go adds a `$G` entry to Accounts)."""
    if not isinstance(tk.value, dict):
        raise ConfigErr(tk, f"{k}: expected a map of subject mappings, got {_describe(tk.value)}")
    acc = next((a for a in o.accounts if a.name == GLOBAL_ACCOUNT), None)
    if acc is None:
        acc = AccountConfig(GLOBAL_ACCOUNT)
        o.accounts.append(acc)
    acc.mappings = acc.mappings + parse_account_mappings(tk, errors)


def configure_system_account(o, k, tk, errors, warnings):
    """Go: configureSystemAccount."""
    if not isinstance(tk.value, str):
        raise ConfigErr(tk, "system account name must be a string")
    o.system_account = tk.value
