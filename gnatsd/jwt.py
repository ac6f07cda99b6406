"""NATS JWTs: decoding, signature checks and validation of operator, account, user and
activation claims, and the `.creds` file format.

Ports the parts of `github.com/nats-io/jwt/v2` v2.3.0 (the version nats-server 2.9.10 uses)
that a server reads with: header.go (Header.Valid), claims.go (ClaimsData, verify, Validate),
decoder*.go (Decode, loadClaims and the v1 migrations), operator_claims.go, account_claims.go,
user_claims.go, activation_claims.go, signingkeys.go (UserScope, ValidateScopedSigner),
exports.go, imports.go (Import.Validate), types.go (Subject, Permissions, Limits, TimeRange,
CIDRList), revocation_list.go, validation.go and creds_utils.go (ParseDecoratedJWT,
ParseDecoratedNKey). The server side of `server/jwt.go` is in `conf_jwt.py` (operators, trusted
keys) and `auth.py` (validateSrc, validateTimes).

A JWT is three base64url parts joined by dots: a header `{"typ":"JWT","alg":"ed25519-nkey"}`
(v1 tokens say `"ed25519"`), the claims, and an Ed25519 signature by the issuer's nkey (`iss`)
over `header.claims` (v1: over the claims part alone). Claims are decoded as Go's
encoding/json decodes them into jwt's structs: keys match case-insensitively, a value of the
wrong type fails the whole token, absent numbers are 0 (jwt.NoLimit is -1).
No socket, no gevent import.
"""
from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from . import nkeys
from .gofmt import go_quote

NO_LIMIT = -1  # Go: jwt.NoLimit
ALL = "*"  # Go: jwt.All, a revocation of every key issued before its time
LIB_VERSION = 2
ALGORITHM_NKEY_OLD = "ed25519"
ALGORITHM_NKEY = "ed25519-nkey"

OPERATOR_CLAIM, ACCOUNT_CLAIM, USER_CLAIM, ACTIVATION_CLAIM, GENERIC_CLAIM = (
    "operator", "account", "user", "activation", "generic")
STREAM, SERVICE = "stream", "service"  # Go: jwt.ExportType; "" is Unknown
RESPONSE_TYPES = ("Singleton", "Stream", "Chunked")  # Go: jwt.ResponseType*
USER_SCOPE = "user_scope"

# Go: jwt.ConnectionType*
CONNECTION_TYPES = ("STANDARD", "WEBSOCKET", "LEAFNODE", "LEAFNODE_WS", "MQTT", "MQTT_WS")


class JWTError(ValueError):
    """A token that does not decode or verify; the message is Go's where clients see it."""


# -- validation (Go: validation.go) -----------------------------------------------------------


@dataclass
class ValidationIssue:
    description: str
    blocking: bool
    time_check: bool


class ValidationResults:
    """Go: ValidationResults."""

    def __init__(self):
        self.issues: List[ValidationIssue] = []

    def add_error(self, text):
        self.issues.append(ValidationIssue(text, True, False))

    def add_time_check(self, text):
        self.issues.append(ValidationIssue(text, False, True))

    def add_warning(self, text):
        self.issues.append(ValidationIssue(text, False, False))

    def is_blocking(self, include_time_checks=True):
        return any(i.blocking or (include_time_checks and i.time_check) for i in self.issues)

    def errors(self):
        return [i.description for i in self.issues if i.blocking]

    def __repr__(self):
        return f"ValidationResults({[i.description for i in self.issues]!r})"


# -- JSON as Go's encoding/json reads it into jwt's structs ------------------------------------


def _json_kind(v):
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "number"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list):
        return "array"
    return "object"


class _Obj:
    """A JSON object read like a Go struct: case-insensitive keys, typed fields."""

    __slots__ = ("m", "where")

    def __init__(self, value, where):
        if value is None:
            value = {}
        if not isinstance(value, dict):
            raise JWTError(f"json: cannot unmarshal {_json_kind(value)} into Go value of type {where}")
        self.m = {k.lower(): v for k, v in value.items()}  # the last of duplicate keys wins, as in Go
        self.where = where

    def _bad(self, key, v, want):
        raise JWTError(f"json: cannot unmarshal {_json_kind(v)} into Go struct field {self.where}.{key} of type {want}")

    def get(self, key):
        return self.m.get(key)

    def str(self, key):
        v = self.m.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            self._bad(key, v, "string")
        return v

    def int(self, key, default=0):
        v = self.m.get(key)
        if v is None:
            return default
        if type(v) is not int or not -(2 ** 63) <= v < 2 ** 63:
            self._bad(key, v, "int64")
        return v

    def bool(self, key):
        v = self.m.get(key)
        if v is None:
            return False
        if not isinstance(v, bool):
            self._bad(key, v, "bool")
        return v

    def strings(self, key):
        v = self.m.get(key)
        if v is None:
            return []
        if not isinstance(v, list) or not all(s is None or isinstance(s, str) for s in v):
            self._bad(key, v, "[]string")
        return [s or "" for s in v]

    def list(self, key):
        v = self.m.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            self._bad(key, v, "array")
        return v

    def obj(self, key, where):
        return _Obj(self.m.get(key), where)

    def int_map(self, key):
        v = self.m.get(key)
        if v is None:
            return {}
        if not isinstance(v, dict) or not all(type(t) is int for t in v.values()):
            self._bad(key, v, "map[string]int64")
        return dict(v)

    def export_type(self, key):
        """Go: ExportType.UnmarshalJSON."""
        v = self.m.get(key)
        if v is None:
            return ""
        if not isinstance(v, str):
            self._bad(key, v, "string")
        if v not in (STREAM, SERVICE):
            raise JWTError(f"unknown export type {go_quote(v)}")
        return v

    def cidr_list(self, key):
        """Go: CIDRList.UnmarshalJSON. An array, or a comma-separated string."""
        v = self.m.get(key)
        if v is None:
            return []
        if isinstance(v, str):
            out = []
            for s in v.lower().split(","):
                s = s.strip()
                if s and s not in out:
                    out.append(s)
            return out
        return self.strings(key)


# -- claim parts (Go: types.go, exports.go, imports.go, signingkeys.go) -----------------------


@dataclass
class Permission:
    """Go: jwt.Permission."""

    allow: List[str] = field(default_factory=list)
    deny: List[str] = field(default_factory=list)

    def validate(self, vr, permit_queue):
        for subj in self.allow + self.deny:
            tk = subj.split(" ")
            if len(tk) == 1:
                validate_subject(tk[0], vr)
            elif len(tk) == 2:
                validate_subject(tk[0], vr)
                validate_subject(tk[1], vr)
                if not permit_queue:
                    vr.add_error(f'Permission Subject "{subj}" is not allowed to contain queue')
            else:
                vr.add_error(f'Permission Subject "{subj}" contains too many spaces')


@dataclass
class ResponsePermission:
    """Go: jwt.ResponsePermission. `expires` in nanoseconds."""

    max_msgs: int = 0
    expires: int = 0


@dataclass
class Permissions:
    """Go: jwt.Permissions."""

    pub: Permission = field(default_factory=Permission)
    sub: Permission = field(default_factory=Permission)
    resp: Optional[ResponsePermission] = None

    def validate(self, vr):
        self.sub.validate(vr, True)
        self.pub.validate(vr, False)



def _permission(o):
    return Permission(o.strings("allow"), o.strings("deny"))


def _permissions(o):
    resp = None
    if o.get("resp") is not None:
        r = o.obj("resp", "ResponsePermission")
        resp = ResponsePermission(r.int("max"), r.int("ttl"))
    return Permissions(_permission(o.obj("pub", "Permissions.pub")), _permission(o.obj("sub", "Permissions.sub")), resp)


@dataclass
class TimeRange:
    """Go: jwt.TimeRange, "15:04:05" wall-clock times."""

    start: str = ""
    end: str = ""


_CLOCK = re.compile(r"([0-9]{1,2}):([0-9]{2}):([0-9]{2})")


def parse_clock(text):
    """Go: time.Parse("15:04:05", text). Seconds after midnight, or None."""
    m = _CLOCK.fullmatch(text)
    if m is None:
        return None
    h, mi, s = (int(x) for x in m.groups())
    if h > 23 or mi > 59 or s > 59:
        return None
    return h * 3600 + mi * 60 + s


def load_location(name):
    """Go: time.LoadLocation. A tzinfo (None for "Local"), or raises JWTError."""
    if name == "" or name == "UTC":
        from datetime import timezone
        return timezone.utc
    if name == "Local":
        return None
    try:
        from zoneinfo import ZoneInfo
        return ZoneInfo(name)
    except Exception:  # ZoneInfoNotFoundError, ValueError on a malformed key
        raise JWTError(f"unknown time zone {name}") from None


@dataclass
class UserPermissionLimits:
    """Go: jwt.UserPermissionLimits (Permissions, Limits, BearerToken, AllowedConnectionTypes),
    which a user claim and a scoped signing key's template share."""

    permissions: Permissions = field(default_factory=Permissions)
    src: List[str] = field(default_factory=list)
    times: List[TimeRange] = field(default_factory=list)
    locale: str = ""
    subs: int = 0
    data: int = 0
    payload: int = 0
    bearer_token: bool = False
    allowed_connection_types: List[str] = field(default_factory=list)

    def is_empty(self):
        """Go: UserClaims.HasEmptyPermissions."""
        return self == UserPermissionLimits()

    def validate(self, vr):
        """Go: User.Validate (Permissions.Validate, Limits.Validate)."""
        self.permissions.validate(vr)
        for cidr in self.src:
            if parse_cidr(cidr) is None:
                vr.add_error(f"invalid cidr {go_quote(cidr)} in user src limits")
        for t in self.times:
            if t.start == "":
                vr.add_error("time ranges start must contain a start")
            elif parse_clock(t.start) is None:
                vr.add_error(f"start in time range is invalid {go_quote(t.start)}")
            if t.end == "":
                vr.add_error("time ranges end must contain an end")
            elif parse_clock(t.end) is None:
                vr.add_error(f"end in time range is invalid {go_quote(t.end)}")
        if self.locale:
            try:
                load_location(self.locale)
            except JWTError as e:
                vr.add_error(f"could not parse iana time zone by name: {e}")


def _user_permission_limits(o, nolimit_default=0):
    times = []
    for t in o.list("times"):
        to = _Obj(t, "TimeRange")
        times.append(TimeRange(to.str("start"), to.str("end")))
    return UserPermissionLimits(
        permissions=_permissions(o), src=o.cidr_list("src"), times=times, locale=o.str("times_location"),
        subs=o.int("subs", nolimit_default), data=o.int("data", nolimit_default),
        payload=o.int("payload", nolimit_default), bearer_token=o.bool("bearer_token"),
        allowed_connection_types=o.strings("allowed_connection_types"))


def parse_cidr(text):
    """Go: net.ParseCIDR. An ip_network (host bits allowed), or None."""
    if "/" not in text:
        return None
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


@dataclass
class UserScope:
    """Go: jwt.UserScope, a signing key whose users get `template` instead of their own
    permissions and limits."""

    key: str
    role: str = ""
    template: UserPermissionLimits = field(default_factory=UserPermissionLimits)

    def validate(self, vr):
        if not nkeys.is_valid_public_account_key(self.key):
            vr.add_error(f"{self.key} is not an account public key")

    def validate_scoped_signer(self, uc):
        """Go: UserScope.ValidateScopedSigner. Raises JWTError."""
        if uc.iss != self.key:
            raise JWTError("issuer not the scoped signer")
        if not uc.limits.is_empty():
            raise JWTError("scoped users require no permissions or limits set")


def _signing_keys(o, key):
    """Go: SigningKeys.UnmarshalJSON. Plain keys map to None, scoped ones to a UserScope."""
    keys = {}
    for item in o.list(key):
        if isinstance(item, str):
            keys[item] = None
        elif isinstance(item, dict):
            so = _Obj(item, "UserScope")
            kind = item.get("kind")
            if kind != USER_SCOPE:
                raise JWTError(f"unknown signing key scope {go_quote(str(item.get('type', '<nil>')))}")
            tmpl = _user_permission_limits(so.obj("template", "UserScope.template"), NO_LIMIT)
            keys[so.str("key")] = UserScope(so.str("key"), so.str("role"), tmpl)
    return keys


def validate_subject(subject, vr):
    """Go: Subject.Validate."""
    if subject == "":
        vr.add_error("subject cannot be empty")
    if " " in subject:
        vr.add_error(f"subject {go_quote(subject)} cannot have spaces")


def has_wildcards(s):
    """Go: Subject.HasWildCards."""
    return s.endswith(".>") or ".*." in s or s.endswith(".*") or s.startswith("*.") or s in ("*", ">")


def is_contained_in(s, other):
    """Go: Subject.IsContainedIn. Is every subject of `s` a subject of `other`?"""
    other_t = other.split(".")
    my_t = s.split(".")
    if len(my_t) > len(other_t) and other_t[-1] != ">":
        return False
    if len(my_t) < len(other_t):
        return False
    for i, tok in enumerate(other_t):
        if i == len(other_t) - 1 and tok == ">":
            return True
        if tok != my_t[i] and tok != "*":
            return False
    return True


@dataclass
class Export:
    """Go: jwt.Export. `response_threshold` in nanoseconds; `latency` (sampling, results)."""

    subject: str = ""
    type: str = ""
    name: str = ""
    token_req: bool = False
    revocations: Dict[str, int] = field(default_factory=dict)
    response_type: str = ""
    response_threshold: int = 0
    latency: Optional[tuple] = None
    account_token_position: int = 0
    advertise: bool = False

    def validate(self, vr):
        if self.type not in (STREAM, SERVICE):
            vr.add_error(f'invalid export type: "{self.type or "unknown"}"')
        if self.type == SERVICE and self.response_type not in ("",) + RESPONSE_TYPES:
            vr.add_error(f"invalid response type for service: {go_quote(self.response_type)}")
        if self.type == STREAM and self.response_type:
            vr.add_error(f"invalid response type for stream: {go_quote(self.response_type)}")
        if self.latency is not None:
            if self.type != SERVICE:
                vr.add_error("latency tracking only permitted for services")
            sampling, results = self.latency
            if sampling != 0 and not 1 <= sampling <= 100:
                vr.add_error("sampling percentage needs to be between 1-100")
            validate_subject(results, vr)
            if has_wildcards(results):
                vr.add_error("results subject can not contain wildcards")
        if self.response_threshold < 0:
            vr.add_error("negative response threshold is invalid")
        if self.response_threshold > 0 and self.type != SERVICE:
            vr.add_error("response threshold only valid for services")
        validate_subject(self.subject, vr)
        pos = self.account_token_position
        if pos > 0:
            if not has_wildcards(self.subject):
                vr.add_error(f"Account Token Position can only be used with wildcard subjects: {self.subject}")
            else:
                tokens = self.subject.split(".")
                if pos > len(tokens):
                    vr.add_error(f"Account Token Position {pos} exceeds length of subject '{self.subject}'")
                elif tokens[pos - 1] != "*":
                    vr.add_error(f"Account Token Position {pos} matches '{tokens[pos - 1]}' but must match a * "
                                 f"in: {self.subject}")


def _export(item):
    o = _Obj(item, "Export")
    latency = None
    if o.get("service_latency") is not None:
        lo = o.obj("service_latency", "ServiceLatency")
        s = lo.get("sampling")
        if isinstance(s, str) and s.lower() == "headers":
            sampling = 0
        else:
            sampling = lo.int("sampling")
        latency = (sampling, lo.str("results"))
    pos = o.int("account_token_position")
    if pos < 0:
        raise JWTError("json: cannot unmarshal number into Go struct field Export.account_token_position of type uint")
    return Export(subject=o.str("subject"), type=o.export_type("type"), name=o.str("name"),
                  token_req=o.bool("token_req"), revocations=o.int_map("revocations"),
                  response_type=o.str("response_type"), response_threshold=o.int("response_threshold"),
                  latency=latency, account_token_position=pos, advertise=o.bool("advertise"))


@dataclass
class Import:
    """Go: jwt.Import. `token` is an activation JWT for a private export."""

    subject: str = ""
    account: str = ""
    type: str = ""
    name: str = ""
    token: str = ""
    to: str = ""
    local_subject: str = ""
    share: bool = False

    def validate(self, act_pub_key, vr):
        """Go: Import.Validate. `act_pub_key` is the importing account."""
        if self.type not in (STREAM, SERVICE):
            vr.add_error(f'invalid import type: "{self.type or "unknown"}"')
        if self.account == "":
            vr.add_error("account to import from is not specified")
        if self.to:
            vr.add_warning("the field to has been deprecated (use LocalSubject instead)")
        validate_subject(self.subject, vr)
        if self.local_subject:
            validate_renaming_subject(self.local_subject, self.subject, vr)
            if self.to:
                vr.add_error("Local Subject replaces To")
        if self.share and self.type != SERVICE:
            vr.add_error(f"sharing information (for latency tracking) is only valid for services: "
                         f"{go_quote(self.subject)}")
        act = None
        if self.token:
            try:
                act = decode_activation_claims(self.token)
            except JWTError:
                vr.add_error(f"import {go_quote(self.subject)} contains an invalid activation token")
        if act is None:
            return
        if act.iss != self.account and act.issuer_account != self.account:
            vr.add_error(f"activation token doesn't match account for import {go_quote(self.subject)}")
        if act.sub != act_pub_key:
            vr.add_error(f"activation token doesn't match account it is being included in, {go_quote(self.subject)}")
        if act.import_type != self.type:
            vr.add_error(f"mismatch between token import type {act.import_type or 'unknown'} and type of import "
                         f"{self.type or 'unknown'}")
        act.validate_activation(vr)
        subj = self.to if self.type == SERVICE and self.to else self.subject
        if not is_contained_in(subj, act.import_subject):
            vr.add_error(f"activation token import subject {go_quote(act.import_subject)} doesn't match import "
                         f"{go_quote(self.subject)}")


def _import(item):
    o = _Obj(item, "Import")
    return Import(subject=o.str("subject"), account=o.str("account"), type=o.export_type("type"),
                  name=o.str("name"), token=o.str("token"), to=o.str("to"),
                  local_subject=o.str("local_subject"), share=o.bool("share"))


def validate_renaming_subject(s, from_, vr):
    """Go: RenamingSubject.Validate."""
    validate_subject(s, vr)
    if from_ == "":
        vr.add_error("subject cannot be empty")

    def suffix(x):
        return x == ">" or x.endswith(".>")

    if suffix(s) != suffix(from_):
        vr.add_error("both, renaming subject and subject, need to end or not end in >")
    from_cnt = 1 if from_ == "*" else from_.split(".").count("*")
    ref_cnt = 0
    for tk in s.split("."):
        if tk == "*":
            ref_cnt += 1
        if len(tk) < 2 or tk[0] != "$" or not _is_atoi(tk[1:]):
            continue
        if int(tk[1:]) > from_cnt:
            vr.add_error(f"Reference ${int(tk[1:])} in {go_quote(s)} reference * in {go_quote(from_)} "
                         "that do not exist")
        else:
            ref_cnt += 1
    if ref_cnt != from_cnt:
        vr.add_error("subject does not contain enough * or reference wildcards $[0-9]")


def _is_atoi(s):
    return re.fullmatch(r"[+-]?[0-9]+", s) is not None


def renaming_to_subject(s):
    """Go: RenamingSubject.ToSubject. `$n` tokens become `*`."""
    if "$" not in s:
        return s
    return ".".join("*" if len(tk) > 1 and tk[0] == "$" and _is_atoi(tk[1:]) else tk for tk in s.split("."))


# -- claims ---------------------------------------------------------------------------------


@dataclass
class Claims:
    """Go: ClaimsData with GenericFields (type, version, tags)."""

    sub: str = ""
    iss: str = ""
    name: str = ""
    iat: int = 0
    exp: int = 0
    nbf: int = 0
    jti: str = ""
    aud: str = ""
    type: str = ""
    version: int = 0
    tags: List[str] = field(default_factory=list)

    expected_prefixes = None  # issuer key types (nkeys prefix bytes); None: any

    def validate_times(self, vr, now=None):
        """Go: ClaimsData.Validate."""
        import time
        now = int(time.time()) if now is None else now
        if self.exp > 0 and now > self.exp:
            vr.add_time_check("claim is expired")
        if self.nbf > 0 and self.nbf > now:
            vr.add_time_check("claim is not yet valid")

    def validate(self, vr):
        self.validate_times(vr)


@dataclass
class OperatorClaims(Claims):
    """Go: jwt.OperatorClaims."""

    signing_keys: List[str] = field(default_factory=list)
    account_server_url: str = ""
    operator_service_urls: List[str] = field(default_factory=list)
    system_account: str = ""
    assert_server_version: str = ""
    strict_signing_key_usage: bool = False

    expected_prefixes = (nkeys.PREFIX_BYTE_OPERATOR,)

    def validate(self, vr):
        self.validate_times(vr)
        for k in self.signing_keys:
            if not nkeys.is_valid_public_operator_key(k):
                vr.add_error(f"{k} is not an operator public key")
        if self.system_account and not nkeys.is_valid_public_account_key(self.system_account):
            vr.add_error(f"{self.system_account} is not an account public key")
        try:
            parse_server_version(self.assert_server_version)
        except JWTError as e:
            vr.add_error(f"assert server version error: {e}")


def parse_server_version(version):
    """Go: jwt.ParseServerVersion. (major, minor, update); raises JWTError."""
    if version == "":
        return 0, 0, 0
    split = version.split(".")
    if len(split) != 3:
        raise JWTError("asserted server version must be of the form <major>.<minor>.<update>")
    nums = []
    for part in split:
        if not _is_atoi(part):
            raise JWTError(f"asserted server version cant parse {part} to int")
        nums.append(int(part))
    if any(n < 0 for n in nums):
        raise JWTError(f"asserted server version can'b contain negative values: {version}")
    return tuple(nums)


@dataclass
class AccountLimits:
    """Go: jwt.OperatorLimits without JetStream (NatsLimits and AccountLimits)."""

    subs: int = 0
    data: int = 0
    payload: int = 0
    imports: int = 0
    exports: int = 0
    wildcards: bool = False
    disallow_bearer: bool = False
    conn: int = 0
    leaf: int = 0
    jetstream: bool = False  # mem_storage or disk_storage set (Go: IsJSEnabled)

    def is_empty(self):
        return self == AccountLimits()


@dataclass
class AccountClaims(Claims):
    """Go: jwt.AccountClaims. `signing_keys` maps a key to its UserScope or None;
    `mappings` a subject to [(subject, weight, cluster)]."""

    imports: List[Import] = field(default_factory=list)
    exports: List[Export] = field(default_factory=list)
    limits: AccountLimits = field(default_factory=AccountLimits)
    signing_keys: Dict[str, Optional[UserScope]] = field(default_factory=dict)
    revocations: Dict[str, int] = field(default_factory=dict)
    default_permissions: Permissions = field(default_factory=Permissions)
    mappings: Dict[str, list] = field(default_factory=dict)
    description: str = ""
    info_url: str = ""

    expected_prefixes = (nkeys.PREFIX_BYTE_ACCOUNT, nkeys.PREFIX_BYTE_OPERATOR)

    def validate(self, vr):
        """Go: AccountClaims.Validate."""
        self.validate_times(vr)
        services = set()
        for im in self.imports:
            if im.type == SERVICE:
                sub = im.to or renaming_to_subject(im.local_subject) or im.subject
                for k in services:
                    if is_contained_in(sub, k) or is_contained_in(k, sub):
                        vr.add_error(f"overlapping subject namespace for {go_quote(sub)} and {go_quote(k)}")
                if sub in services:
                    vr.add_error(f"overlapping subject namespace for {go_quote(im.to)}")
                services.add(sub)
            im.validate(self.sub, vr)
        for kind in (SERVICE, STREAM):
            subjects = [e.subject for e in self.exports if (e.type == SERVICE) == (kind == SERVICE)]
            seen = {}
            for i, ns in enumerate(subjects):
                for j, s in enumerate(subjects):
                    if i != j and is_contained_in(ns, s) and s not in seen:
                        seen[s] = ns
            for k, v in seen.items():
                vr.add_error(f"{kind} export subject {go_quote(k)} already exports {go_quote(v)}")
        for e in self.exports:
            e.validate(vr)
        self.default_permissions.validate(vr)
        for src, dests in self.mappings.items():
            validate_subject(src, vr)
            total = 0
            for subject, weight, _ in dests:
                validate_subject(subject, vr)
                if has_wildcards(subject):
                    vr.add_error(f"Subject {go_quote(subject)} in weighted mapping {go_quote(src)} is not allowed to "
                                 "contains wildcard")
                total += weight
            if total > 100:
                vr.add_error(f"Mapping {go_quote(src)} exceeds 100% among all of it's weighted to mappings")
        lim = self.limits
        if not lim.is_empty() and lim.imports >= 0 and len(self.imports) > lim.imports:
            vr.add_error("the account contains more imports than allowed by the operator")
        if lim.imports != NO_LIMIT and len(self.imports) > lim.imports:
            vr.add_error("the account contains more imports than allowed by the operator")
        if lim.exports != NO_LIMIT:
            if len(self.exports) > lim.exports:
                vr.add_error("the account contains more exports than allowed by the operator")
            if not lim.wildcards:
                for e in self.exports:
                    if has_wildcards(e.subject):
                        vr.add_error("the account contains wildcard exports that are not allowed by the operator")
        for k, scope in self.signing_keys.items():
            if scope is not None:
                scope.validate(vr)
            elif not nkeys.is_valid_public_account_key(k):
                vr.add_error(f"{go_quote(k)} is not a valid account signing key")
        if len(self.description) > 8 * 1024:
            vr.add_error("Description is too long")

    def is_claim_revoked(self, uc):
        """Go: AccountClaims.IsClaimRevoked."""
        if uc is None or uc.iat == 0 or uc.sub == "":
            return True
        return is_revoked(self.revocations, uc.sub, uc.iat)


@dataclass
class UserClaims(Claims):
    """Go: jwt.UserClaims. `limits` holds the permissions and limits (Go embeds them)."""

    limits: UserPermissionLimits = field(default_factory=UserPermissionLimits)
    issuer_account: str = ""

    expected_prefixes = (nkeys.PREFIX_BYTE_ACCOUNT,)

    def validate(self, vr):
        self.validate_times(vr)
        self.limits.validate(vr)
        if self.issuer_account and not nkeys.is_valid_public_account_key(self.issuer_account):
            vr.add_error("account_id is not an account public key")


@dataclass
class ActivationClaims(Claims):
    """Go: jwt.ActivationClaims. `sub` is the importing account."""

    import_subject: str = ""
    import_type: str = ""
    issuer_account: str = ""

    expected_prefixes = (nkeys.PREFIX_BYTE_ACCOUNT, nkeys.PREFIX_BYTE_OPERATOR)

    def validate(self, vr):
        self.validate_times(vr)
        self.validate_activation(vr)

    def validate_activation(self, vr):
        """Go: validateWithTimeChecks(vr, false)."""
        if self.import_type not in (STREAM, SERVICE):
            vr.add_error(f'invalid import type: "{self.import_type or "unknown"}"')
        validate_subject(self.import_subject, vr)
        if self.issuer_account and not nkeys.is_valid_public_account_key(self.issuer_account):
            vr.add_error("account_id is not an account public key")


def is_revoked(revocations, subject, issued_at):
    """Go: isRevoked (RevocationList.IsRevoked). A key is revoked when its own entry, or the
    entry for every key (`*`), is at or after the JWT's issue time."""
    if not revocations:
        return False
    t = revocations.get(subject)
    if t is not None and t >= issued_at:
        return True
    t = revocations.get(ALL)
    return t is not None and t >= issued_at


# -- decoding (Go: decoder.go) ----------------------------------------------------------------


def _parse_header(part):
    """Go: parseHeaders and Header.Valid."""
    raw = nkeys.b64_raw_url_decode(part)
    if raw is None:
        raise JWTError("illegal base64 data in JWT header")
    o = _Obj(_json_loads(raw), "Header")
    typ, alg = o.str("typ"), o.str("alg")
    if typ.upper() != "JWT":
        raise JWTError(f"not supported type {go_quote(typ)}")
    if alg.lower() not in (ALGORITHM_NKEY_OLD, ALGORITHM_NKEY):
        raise JWTError(f"unexpected {go_quote(alg)} algorithm")
    return typ, alg


def _no_constant(name):
    raise ValueError(f"invalid character '{name[0]}' looking for beginning of value")


def _json_loads(raw):
    try:
        return json.loads(raw.decode("utf-8", "replace"), parse_constant=_no_constant)
    except (ValueError, RecursionError) as e:
        raise JWTError(f"invalid JSON: {e}") from None


def _claims_data(o, cls):
    return cls(sub=o.str("sub"), iss=o.str("iss"), name=o.str("name"), iat=o.int("iat"), exp=o.int("exp"),
               nbf=o.int("nbf"), jti=o.str("jti"), aud=o.str("aud"))


def _load_claims(data):
    """Go: loadClaims and the load*/migrateV1 functions. (version, Claims)."""
    top = _Obj(data, "claims")
    nats = top.obj("nats", "nats")
    top_type = top.str("type")
    if top_type:
        version, kind = 1, top_type
    else:
        version, kind = nats.int("version"), nats.str("type")
    if version > LIB_VERSION:
        raise JWTError("JWT was generated by a newer version ")
    if kind in ("cluster", "server"):
        raise JWTError(f"{kind.capitalize()}Claims are not supported")
    v1 = version <= 1
    # v1 kept type and tags beside the standard claims; v2 keeps them under `nats`
    meta = top if v1 else nats
    if kind == OPERATOR_CLAIM:
        c = _claims_data(top, OperatorClaims)
        c.signing_keys = nats.strings("signing_keys")
        c.account_server_url = nats.str("account_server_url")
        c.operator_service_urls = nats.strings("operator_service_urls")
        c.system_account = nats.str("system_account")
        if not v1:
            c.assert_server_version = nats.str("assert_server_version")
            c.strict_signing_key_usage = nats.bool("strict_signing_key_usage")
    elif kind == ACCOUNT_CLAIM:
        c = _claims_data(top, AccountClaims)
        c.imports = [_import(i) for i in nats.list("imports")]
        c.exports = [_export(e) for e in nats.list("exports")]
        lo = nats.obj("limits", "OperatorLimits")
        c.limits = AccountLimits(
            subs=lo.int("subs"), data=lo.int("data"), payload=lo.int("payload"), imports=lo.int("imports"),
            exports=lo.int("exports"), wildcards=lo.bool("wildcards"), disallow_bearer=lo.bool("disallow_bearer"),
            conn=lo.int("conn"), leaf=lo.int("leaf"),
            jetstream=not v1 and (lo.int("mem_storage") != 0 or lo.int("disk_storage") != 0))
        if v1:
            c.signing_keys = {k: None for k in nats.strings("signing_keys") if k}
        else:
            c.signing_keys = _signing_keys(nats, "signing_keys")
        c.revocations = nats.int_map("revocations")
        if not v1:
            c.default_permissions = _permissions(nats.obj("default_permissions", "Permissions"))
            mappings = nats.get("mappings") or {}
            if not isinstance(mappings, dict):
                raise JWTError("json: cannot unmarshal into Go struct field Account.mappings of type jwt.Mapping")
            for src, dests in mappings.items():
                if not isinstance(dests, list):
                    raise JWTError("json: cannot unmarshal into Go value of type []jwt.WeightedMapping")
                wm = []
                for d in dests:
                    do = _Obj(d, "WeightedMapping")
                    w = do.int("weight")
                    if not 0 <= w <= 255:
                        raise JWTError("json: cannot unmarshal number into Go struct field WeightedMapping.weight "
                                       "of type uint8")
                    wm.append((do.str("subject"), w or 100, do.str("cluster")))
                c.mappings[src] = wm
            c.description = nats.str("description")
            c.info_url = nats.str("info_url")
    elif kind == USER_CLAIM:
        c = _claims_data(top, UserClaims)
        c.limits = _user_permission_limits(nats, NO_LIMIT if v1 else 0)
        if v1:
            c.limits.allowed_connection_types = []
            c.issuer_account = top.str("issuer_account")
        else:
            c.issuer_account = nats.str("issuer_account")
    elif kind == ACTIVATION_CLAIM:
        c = _claims_data(top, ActivationClaims)
        c.import_subject = nats.str("subject")
        c.import_type = nats.export_type("type" if v1 else "kind")
        c.issuer_account = top.str("issuer_account") if v1 else nats.str("issuer_account")
    else:
        return -1, _claims_data(top, Claims)
    c.type = kind
    c.version = version
    c.tags = meta.strings("tags")
    return version, c


def decode(token):
    """Go: jwt.Decode. The verified claims of `token`; raises JWTError."""
    if not isinstance(token, str):
        raise JWTError("expected 3 chunks")
    chunks = token.split(".")
    if len(chunks) != 3:
        raise JWTError("expected 3 chunks")
    _parse_header(chunks[0])
    raw = nkeys.b64_raw_url_decode(chunks[1])
    if raw is None:
        raise JWTError("illegal base64 data in JWT claims")
    version, claims = _load_claims(_json_loads(raw))
    sig = nkeys.b64_raw_url_decode(chunks[2])
    if sig is None:
        raise JWTError("illegal base64 data in JWT signature")
    if version <= 1:
        if not nkeys.verify(claims.iss, chunks[1].encode(), sig):
            raise JWTError("claim failed V1 signature verification")
    elif not nkeys.verify(claims.iss, token[:len(chunks[0]) + len(chunks[1]) + 1].encode(), sig):
        raise JWTError("claim failed V2 signature verification")
    prefixes = claims.expected_prefixes
    if prefixes is not None:
        try:
            prefix, _ = nkeys.from_public_key(claims.iss)
        except nkeys.NkeyError:
            prefix = None
        if prefix not in prefixes:
            raise JWTError("unable to validate expected prefixes")
    return claims


def _decode_as(token, cls, what):
    claims = decode(token)
    if not isinstance(claims, cls):
        raise JWTError(f"not {what} claim")
    return claims


def decode_operator_claims(token):
    """Go: jwt.DecodeOperatorClaims."""
    return _decode_as(token, OperatorClaims, "operator")


def decode_account_claims(token):
    """Go: jwt.DecodeAccountClaims."""
    return _decode_as(token, AccountClaims, "account")


def decode_user_claims(token):
    """Go: jwt.DecodeUserClaims."""
    return _decode_as(token, UserClaims, "user")


def decode_activation_claims(token):
    """Go: jwt.DecodeActivationClaims."""
    return _decode_as(token, ActivationClaims, "activation")


def validate(claims):
    """Go: CreateValidationResults, then claims.Validate(vr)."""
    vr = ValidationResults()
    claims.validate(vr)
    return vr


# -- .creds files (Go: creds_utils.go) -------------------------------------------------------

_DECORATED = re.compile(r"\s*(?:(?:-{3,}.*-{3,}\r?\n)([\w\-.=]+)(?:\r?\n-{3,}.*-{3,}(\r?\n|\Z)))", re.ASCII)


def parse_decorated_jwt(contents):
    """Go: jwt.ParseDecoratedJWT. The JWT of a `.creds` or decorated JWT file; text without
    the `-----BEGIN NATS ... JWT-----` frame is returned as it is."""
    m = _DECORATED.search(contents)
    return m.group(1) if m else contents


def parse_decorated_nkey(contents):
    """Go: jwt.ParseDecoratedNKey. The nkeys.KeyPair of the seed in a `.creds` file (the
    second framed block, or the first line starting with SO, SA or SU)."""
    items = _DECORATED.findall(contents)
    seed = None
    if len(items) > 1:
        seed = items[1][0]
    else:
        for line in contents.split("\n"):
            if line.strip().startswith(("SO", "SA", "SU")):
                seed = line
                break
    if seed is None:
        raise JWTError("no nkey seed found")
    if not seed.startswith(("SO", "SA", "SU")):
        raise JWTError("doesn't contain a seed nkey")
    try:
        return nkeys.KeyPair.from_seed(seed)
    except nkeys.NkeyError as e:
        raise JWTError(str(e)) from None
