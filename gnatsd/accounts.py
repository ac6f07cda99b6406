"""Accounts: separate subject spaces, and the stream and service exports and imports that join them.

Ports nats-server `server/accounts.go` (Account, exports and imports, addServiceImportSub,
addRespServiceImport, newServiceReply, processServiceImportResponse, removeRespServiceImport,
checkForReverseEntries, the export approval checks, response thresholds), the account parts of
`server/server.go` (configureAccounts, registerAccount, createInternalAccountClient) and of
`server/client.go` (processServiceImport, addShadowSubscriptions, addShadowSub, setHeader,
getClientInfo). The config side (parseAccounts) is in `conf_accounts.py`.

How messages cross accounts (as in Go):
- A stream import puts a *shadow* copy of each matching subscription of the importer into the
  exporter's sublist; a message published in the exporter reaches the shadow, and delivery
  rewrites its subject to the importer's (`StreamImport.deliver_subject`).
- A service import is an internal subscription in the importer's sublist on the import's
  subject. A request that matches it is re-published in the exporter's account; its reply
  subject is swapped for a fresh `_R_.<prefix>.<n>` one there, which the exporter's internal
  `_R_.<prefix>.>` subscription maps back to the requester's reply (a response import).

Subjects of imports and exports are bytes, like every subject on the message path.
Nothing here yields: it all runs between two greenlet switches.
"""
from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass, field
from typing import List, Optional

from . import gofmt, jwt
from .errors import ClosedState
from .sublist import (
    FWC, PWC, TSEP, Sublist, is_subset_match_tokenized, is_valid_subject, subject_is_literal,
    subject_is_subset_match, subjects_collide,
)
from .transform import TransformError, new_transform, select_mapped_subject, transform_tokenize, transform_untokenize

log = logging.getLogger("gnatsd")

GLOBAL_ACCOUNT = "$G"  # Go: globalAccountName, DEFAULT_GLOBAL_ACCOUNT
SYSTEM_ACCOUNT = "$SYS"  # Go: DEFAULT_SYSTEM_ACCOUNT

# Go: ServiceRespType
SINGLETON, STREAMED, CHUNKED = 0, 1, 2
RESP_TYPE_NAMES = ("Singleton", "Streamed", "Chunked")
DEFAULT_SERVICE_EXPORT_RESPONSE_THRESHOLD = 120.0  # seconds (Go: 2 * time.Minute)
DEFAULT_SERVICE_LATENCY_SAMPLING = 100
MAX_ACCOUNT_CYCLE_SEARCH_DEPTH = 1024

CLIENT_INFO_HDR = b"Nats-Request-Info"  # Go: ClientInfoHdr
HDR_LINE = b"NATS/1.0\r\n"
JS_ACK_PRE = b"$JS.ACK."
REPLY_PREFIX = b"_R_."
_DIGITS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_REPLY_PREFIX_TOKEN_LEN = 6  # Go: baseServerLen - replyPrefixLen, the random part of `_R_.xxxxxx.`
_REPLY_LEN = 6  # Go: replyLen

# Go: errors.go
ERR_MISSING_ACCOUNT = "account missing"
ERR_STREAM_IMPORT_AUTHORIZATION = "stream import not authorized"
ERR_STREAM_IMPORT_BAD_PREFIX = "stream import prefix can not contain wildcard tokens"
ERR_STREAM_IMPORT_DUPLICATE = "stream import already exists"
ERR_SERVICE_IMPORT_AUTHORIZATION = "service import not authorized"
ERR_IMPORT_FORMS_CYCLE = "import forms a cycle"
ERR_CYCLE_SEARCH_DEPTH = "search cycle depth exhausted"
ERR_INVALID_SUBJECT = "invalid subject"


class AccountError(ValueError):
    """An export or import that cannot be added (Go returns these as errors)."""


# -- exports and imports -------------------------------------------------------------------------


class ExportAuth:
    """Go: exportAuth. Who may import: everyone (no approvals), the accounts in `approved`,
    the account named by token `account_pos` of the subject, or holders of an activation
    token (`token_req`: a JWT the exporter signed, so nobody in a config-file server)."""

    __slots__ = ("token_req", "account_pos", "approved", "acts_revoked")

    def __init__(self):
        self.token_req = False
        self.account_pos = 0
        self.approved = None  # name -> Account
        self.acts_revoked = None  # activation revocations: importer key -> time (Go: actsRevoked)

    def set_export_auth(self, subject, accounts, account_pos):
        """Go: setExportAuth. `accounts` None: public; empty: a token is required."""
        if account_pos > 0:
            tokens = subject.split(TSEP)
            if len(tokens) < account_pos or tokens[account_pos - 1] != PWC:
                raise AccountError(ERR_INVALID_SUBJECT)
        self.account_pos = account_pos
        if accounts is None:
            return
        if not accounts:
            self.token_req = True
            return
        if self.approved is None:
            self.approved = {}
        for acc in accounts:
            self.approved[acc.name] = acc

    def check_auth(self, exporter, account, tokens, claim=None):
        """Go: Account.checkAuth. May `account` import from `exporter` under this export, with
        the import's jwt.Import `claim` (its activation token) in operator mode?"""
        if not self.approved and not self.token_req and self.account_pos == 0:
            return True
        if self.account_pos > 0:
            return (tokens is not None and self.account_pos <= len(tokens)
                    and tokens[self.account_pos - 1] == account.name.encode())
        if self.token_req:
            return exporter.check_activation(account, claim, self, True)
        return self.approved is not None and account.name in self.approved


class ServiceExport(ExportAuth):
    """Go: serviceExport."""

    __slots__ = ("acc", "resp_type", "latency", "resp_thresh", "rtmr")

    def __init__(self, acc):
        super().__init__()
        self.acc = acc
        self.resp_type = SINGLETON
        self.latency = None  # (subject, sampling), kept for /accountz; gnatsd sends no latency metrics yet
        self.resp_thresh = DEFAULT_SERVICE_EXPORT_RESPONSE_THRESHOLD
        self.rtmr = None  # the response threshold timer, while responses are pending

    def set_response_threshold_timer(self):
        """Go: setResponseThresholdTimer."""
        if self.rtmr is None:
            self.rtmr = self.acc.srv.loop.timer(self.resp_thresh)
            self.rtmr.start(self.check_expired_responses)

    def check_expired_responses(self):
        """Go: checkExpiredResponses. Drop the response imports older than the threshold.
        Runs as a hub callback."""
        acc = self.acc
        self.rtmr = None
        oldest = time.monotonic() - self.resp_thresh
        mine = [si for si in acc.responses.values() if si.se is self]
        for si in mine:
            if si.ts <= oldest:
                acc.remove_resp_service_import(si)
        if any(si.se is self for si in acc.responses.values()):
            self.set_response_threshold_timer()


class StreamImport:
    """Go: streamImport. Messages of `acc` on `from_` appear here on `to`."""

    __slots__ = ("acc", "from_", "to", "tr", "rtr", "use_pub", "invalid", "claim")

    def __init__(self, acc, from_, to, tr, use_pub, claim=None):
        self.acc = acc
        self.from_ = from_
        self.to = to
        self.tr = tr  # a transform from `from_` to `to`, for wildcard imports that rename
        self.rtr = None  # its reverse, made when a wildcard subscription needs it
        self.use_pub = use_pub  # a wildcard import under its own name: subjects stay as published
        self.invalid = False
        self.claim = claim  # the jwt.Import it came from, in operator mode

    def deliver_subject(self, subject):
        """The subject a message published on `subject` in the exporter has here."""
        if self.tr is not None:
            return self.tr.transform_subject(subject.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape")
        if self.use_pub:
            return subject
        return self.to


class ServiceImport:
    """Go: serviceImport. Requests here on `from_` go to `acc` on `to`; for a response import
    (`response`), replies in the exporter on `from_` go back to the requester's `to`."""

    __slots__ = ("acc", "se", "sid", "from_", "to", "tr", "ts", "rt", "use_pub", "response", "invalid",
                 "share", "sub", "claim")

    def __init__(self, acc, se, from_, to, tr, rt, use_pub, response, share):
        self.acc = acc
        self.se = se
        self.sid = None
        self.from_ = from_
        self.to = to
        self.tr = tr
        self.ts = 0.0  # monotonic time of the last use of a response import
        self.rt = rt
        self.use_pub = use_pub
        self.response = response
        self.invalid = False
        self.share = share
        self.sub = None  # the internal subscription of a configured import
        self.claim = None  # the jwt.Import it came from, in operator mode

    def to_subject(self, subject):
        """The subject in the exporting account of a request on `subject` (processServiceImport)."""
        if self.tr is not None:
            return self.tr.transform_subject(subject.decode("utf-8", "surrogateescape")).encode(
                "utf-8", "surrogateescape")
        return subject if self.use_pub else self.to


# -- the account --------------------------------------------------------------------------------


class Account:
    """Go: Account. Its own sublist, clients, limits, exports and imports."""

    def __init__(self, name):
        self.name = name
        self.nkey = ""
        self.sublist = Sublist()
        self.clients = {}  # cid -> Client, connections only (Go: clients)
        # limits, -1 for none (Go: limits)
        self.mpay = self.msubs = self.mconns = self.mleafs = -1
        self.default_perms = None
        self.stream_exports = {}  # subject -> ExportAuth or None (public) (Go: exports.streams)
        self.service_exports = {}  # subject -> ServiceExport (Go: exports.services)
        self.responses = {}  # `_R_` reply -> response ServiceImport (Go: exports.responses)
        self.stream_imports = []  # Go: imports.streams
        self.service_imports = {}  # from subject -> ServiceImport (Go: imports.services)
        self.rr_map = {}  # requester's reply -> [(exporter, `_R_` reply)] (Go: imports.rrMap)
        self.mappings = None  # transform.Mapping list; None keeps the per-message test cheap
        self.srv = None
        self.ic = None  # the internal client for service imports (Go: ic)
        self.isid = 0
        self.js = None  # js.jetstream.JsAccount while JetStream runs for this account (Go: js)
        self.si_reply = None  # this account's `_R_.xxxxxx.` prefix
        self.prand = random.Random()
        self.updated = time.time()
        # stats (Go: stats)
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.slow_consumers = 0
        # operator mode: what the account JWT says (update_account_claims)
        self.issuer = ""  # the operator key that signed it (Go: Issuer)
        self.claim_jwt = ""
        self.name_tag = ""  # the JWT's name
        self.tags = []
        self.signing_keys = None  # key -> jwt.UserScope or None; None: not a JWT account
        self.users_revoked = None  # user key -> time (Go: usersRevoked)
        self.disallow_bearer = False
        self.expired = False
        self.etmr = None  # the expiration timer
        self.incomplete = False  # an import's exporter could not be found

    def __repr__(self):
        return self.name

    # -- clients ----------------------------------------------------------------------------

    def num_local_connections(self):
        return len(self.clients)

    def max_total_connections_reached(self):
        """Go: MaxTotalConnectionsReached."""
        return self.mconns != -1 and len(self.clients) >= self.mconns

    def add_client(self, c):
        self.clients[c.cid] = c

    def remove_client(self, c):
        self.clients.pop(c.cid, None)

    def select_mapped_subject(self, subject):
        """Go: selectMappedSubject. `subject` as bytes; the mapped one, or None."""
        new, changed = select_mapped_subject(self.mappings, subject.decode("utf-8", "surrogateescape"),
                                             self.srv.cluster_name, self.prand)
        return new.encode("utf-8", "surrogateescape") if changed else None

    # -- exports ------------------------------------------------------------------------------

    def add_stream_export(self, subject, accounts=None, account_pos=0):
        """Go: addStreamExportWithAccountPos. `accounts` None means public."""
        ea = self.stream_exports.get(subject)
        if accounts is not None or account_pos > 0:
            if ea is None:
                ea = ExportAuth()
            ea.set_export_auth(subject, accounts, account_pos)
        self.stream_exports[subject] = ea

    def add_service_export(self, subject, resp_type=SINGLETON, accounts=None, account_pos=0):
        """Go: addServiceExportWithResponseAndAccountPos."""
        se = self.service_exports.get(subject) or ServiceExport(self)
        if resp_type != SINGLETON:
            se.resp_type = resp_type
        if accounts is not None or account_pos > 0:
            se.set_export_auth(subject, accounts, account_pos)
        self.service_exports[subject] = se
        return se

    def get_service_export(self, subject):
        """Go: getServiceExport. The export for `subject`, exact or by wildcard."""
        se = self.service_exports.get(subject)
        if se is None:
            tokens = subject.split(TSEP)
            for subj, e in self.service_exports.items():
                if is_subset_match_tokenized(tokens, subj.split(TSEP)):
                    return e
        return se

    def _export_approved(self, exports, account, subject, claim):
        """Go: checkStreamExportApproved / checkServiceExportApproved."""
        if subject in exports:
            ea = exports[subject]
            return ea is None or ea.check_auth(self, account, None, claim)
        tokens = subject.split(TSEP)
        for subj, ea in exports.items():
            if is_subset_match_tokenized(tokens, subj.split(TSEP)):
                return ea is None or ea.check_auth(self, account, tokens, claim)
        return False

    def check_stream_import_authorized(self, account, subject, claim=None):
        """Go: checkStreamImportAuthorized. May `account` import `subject` from us?"""
        return bool(self.stream_exports) and is_valid_subject(subject) and \
            self._export_approved(self.stream_exports, account, subject, claim)

    def check_service_import_authorized(self, account, subject, claim=None):
        """Go: checkServiceImportAuthorized."""
        return bool(self.service_exports) and is_valid_subject(subject) and \
            self._export_approved(self.service_exports, account, subject, claim)

    # -- stream imports -----------------------------------------------------------------------

    def add_stream_import(self, account, from_, prefix, claim=None):
        """Go: AddStreamImportWithClaim. Messages on `from_` appear here under `prefix`."""
        if not account.check_stream_import_authorized(self, from_, claim):
            raise AccountError(ERR_STREAM_IMPORT_AUTHORIZATION)
        if prefix:
            if not subject_is_literal(prefix):
                raise AccountError(ERR_STREAM_IMPORT_BAD_PREFIX)
            if not prefix.endswith(TSEP):
                prefix += TSEP
        self.add_mapped_stream_import(account, from_, prefix + from_, claim)

    def add_mapped_stream_import(self, account, from_, to, claim=None):
        """Go: AddMappedStreamImportWithClaim. Messages on `from_` appear here on `to`."""
        if not account.check_stream_import_authorized(self, from_, claim):
            raise AccountError(ERR_STREAM_IMPORT_AUTHORIZATION)
        to = to or from_
        self._check_stream_imports_for_cycles(account, to, {self.name})
        tr = None
        use_pub = False
        if not subject_is_literal(from_):
            if to == from_:
                use_pub = True
            else:
                try:
                    tr = new_transform(from_.decode(), transform_tokenize(to.decode()))
                except TransformError as e:
                    raise AccountError(f"failed to create mapping transform for stream import subject "
                                       f"{gofmt.go_quote(from_.decode())} to {gofmt.go_quote(to.decode())}: {e}") from None
                to = transform_untokenize(to.decode())[0].encode()
        for im in self.stream_imports:
            if im.acc is account and im.from_ == from_:
                raise AccountError(ERR_STREAM_IMPORT_DUPLICATE)
        self.stream_imports.append(StreamImport(account, from_, to, tr, use_pub, claim))

    @staticmethod
    def _check_stream_imports_for_cycles(acc, to, visited):
        """Go: checkStreamImportsForCycles, from the exporter `acc` on."""
        if len(visited) >= MAX_ACCOUNT_CYCLE_SEARCH_DEPTH:
            raise AccountError(ERR_CYCLE_SEARCH_DEPTH)
        if not any(subject_is_subset_match(to, subj) for subj in acc.stream_exports):
            return
        for im in acc.stream_imports:
            if subjects_collide(to, im.to):
                if im.acc.name in visited:
                    raise AccountError(ERR_IMPORT_FORMS_CYCLE)
                visited.add(acc.name)
                if subject_is_subset_match(im.to, to):
                    to = im.to
                Account._check_stream_imports_for_cycles(im.acc, to, visited)

    # -- service imports ----------------------------------------------------------------------

    def add_service_import(self, destination, from_, to, share=False, claim=None):
        """Go: addServiceImportWithClaim. Requests here on `from_` go to `destination` on `to`."""
        to = to or from_
        if not is_valid_subject(from_) or not is_valid_subject(to):
            raise AccountError(ERR_INVALID_SUBJECT)
        if not destination.check_service_import_authorized(self, to, claim):
            raise AccountError(ERR_SERVICE_IMPORT_AUTHORIZATION)
        destination._check_service_imports_for_cycles(from_, {self.name})
        si = self._add_service_import(destination, from_, to)
        si.share = share
        si.claim = claim
        return si

    def _check_service_imports_for_cycles(self, from_, visited):
        """Go: checkServiceImportsForCycles."""
        if len(visited) >= MAX_ACCOUNT_CYCLE_SEARCH_DEPTH:
            raise AccountError(ERR_CYCLE_SEARCH_DEPTH)
        for si in list(self.service_imports.values()):
            if subjects_collide(from_, si.to):
                if si.acc.name in visited:
                    raise AccountError(ERR_IMPORT_FORMS_CYCLE)
                visited.add(self.name)
                if subject_is_subset_match(si.from_, from_):
                    from_ = si.from_
                si.acc._check_service_imports_for_cycles(from_, visited)

    def _add_service_import(self, dest, from_, to):
        """Go: addServiceImport. No checks: callers have made them."""
        se = dest.get_service_export(to)
        rt = se.resp_type if se is not None else SINGLETON
        dup = self.service_imports.get(from_)
        if dup is not None:
            raise AccountError(f"duplicate service import subject {gofmt.go_quote(from_.decode())}, previously "
                               f"used in import for account {gofmt.go_quote(dup.acc.name)}, subject "
                               f"{gofmt.go_quote(dup.to.decode())}")
        tr = None
        use_pub = False
        if not subject_is_literal(to):
            if to == from_:
                use_pub = True
            else:
                # Go builds the transform backwards, so that `$n` appear only in `to`, then reverses it.
                to_s = transform_untokenize(to.decode())[0]
                try:
                    tr = new_transform(to_s, transform_tokenize(from_.decode()))
                except TransformError as e:
                    raise AccountError(f"failed to create mapping transform for service import subject "
                                       f"{gofmt.go_quote(from_.decode())} to {gofmt.go_quote(to_s)}: {e}") from None
                from_ = transform_untokenize(from_.decode())[0].encode()
                to = to_s.encode()
                tr = tr.reverse()
        si = ServiceImport(dest, se, from_, to, tr, rt, use_pub, False, False)
        self.service_imports[from_] = si
        if self.srv is not None:
            self.add_service_import_sub(si)
        return si

    def internal_client(self):
        """Go: internalClient. Made on first use."""
        if self.ic is None and self.srv is not None:
            self.ic = self.srv.create_internal_client(self)
        return self.ic

    def subscribe_internal(self, subject, cb, queue=None):
        """Go: subscribeInternal (queueSubscribeInternal with `queue`). An internal
        subscription in this account; `cb(sub, client, acc, subject, reply, msg)` runs on the
        publisher's greenlet and must not yield."""
        c = self.internal_client()
        self.isid += 1
        return c.subscribe_internal(subject, str(self.isid).encode(), cb, queue)

    def add_service_import_sub(self, si):
        """Go: addServiceImportSub. The internal subscription that catches requests."""
        def deliver_request(sub, c, acc, subject, reply, msg):
            process_service_import(c, si, acc, msg)
        si.sub = self.subscribe_internal(si.from_, deliver_request)
        si.sid = si.sub.sid

    def add_all_service_import_subs(self):
        """Go: addAllServiceImportSubs."""
        for si in self.service_imports.values():
            if si.sub is None:
                self.add_service_import_sub(si)

    # -- service responses ----------------------------------------------------------------------

    def new_service_reply(self):
        """Go: newServiceReply. A fresh `_R_.<prefix>.<n>` reply in this (the exporting)
        account; the first one subscribes the account to its `_R_.<prefix>.>`."""
        if self.si_reply is None:
            rn = self.prand.getrandbits(64)
            prefix = bytearray(REPLY_PREFIX)
            for _ in range(_REPLY_PREFIX_TOKEN_LEN):
                prefix.append(_DIGITS[rn % 62])
                rn //= 62
            self.si_reply = bytes(prefix) + TSEP
            self.subscribe_internal(self.si_reply + FWC, self.process_service_import_response)
        rn = self.prand.getrandbits(64)
        b = bytearray(self.si_reply)
        for _ in range(_REPLY_LEN):
            b.append(_DIGITS[rn % 62])
            rn //= 62
        return bytes(b)

    def process_service_import_response(self, sub, c, acc, subject, reply, msg):
        """Go: processServiceImportResponse. A responder answered on an `_R_` reply."""
        si = self.responses.get(subject)
        if si is None or si.invalid:
            return
        process_service_import(c, si, self, msg)

    def add_resp_service_import(self, dest, to, osi):
        """Go: addRespServiceImport. `self` is the exporter, `dest` the requester's account,
        `to` the requester's reply. Returns the response import, keyed by its new reply."""
        nrr = osi.acc.new_service_reply()
        si = ServiceImport(dest, osi.se, nrr, to, None, osi.rt, False, True, osi.share)
        self.responses[nrr] = si
        si.ts = time.monotonic()
        if osi.se is not None:
            osi.se.set_response_threshold_timer()
        dest.add_reverse_resp_map_entry(self, to, nrr)
        return si

    def remove_resp_service_import(self, si):
        """Go: removeRespServiceImport."""
        if si is None:
            return
        self.responses.pop(si.from_, None)
        si.acc.check_for_reverse_entry(si.to, si, False)

    def add_reverse_resp_map_entry(self, acc, reply, from_):
        """Go: addReverseRespMapEntry. For cleanup when the requester loses interest."""
        self.rr_map.setdefault(reply, []).append((acc, from_))

    def check_for_reverse_entry(self, reply, si, check_interest):
        """Go: checkForReverseEntry / checkForReverseEntries. Forget response imports for
        `reply` (all of them, or just `si`'s); with `check_interest`, only once nobody here
        subscribes to it any more."""
        rr_map = self.rr_map
        if not rr_map:
            return
        if not subject_is_literal(reply):
            tokens = reply.split(TSEP)
            for r in [r for r in rr_map if is_subset_match_tokenized(r.split(TSEP), tokens)]:
                self.check_for_reverse_entry(r, None, check_interest)
            return
        entries = rr_map.get(reply)
        if entries is None:
            return
        if check_interest:
            result = self.sublist.match(reply)
            if result.psubs or result.qsubs:
                return
        if si is not None:
            entries = [e for e in entries if e[1] != si.from_]
            if entries:
                rr_map[si.to] = entries
            else:
                rr_map.pop(si.to, None)
            return
        del rr_map[reply]
        for acc, msub in entries:
            acc.responses.pop(msub, None)


    # -- operator mode: what the account JWT says ----------------------------------------------

    def has_issuer(self, issuer):
        """Go: hasIssuer. (its jwt.UserScope or None, whether `issuer` may sign our users)."""
        if self.signing_keys is None or issuer not in self.signing_keys:
            return None, False
        return self.signing_keys[issuer], True

    def check_user_revoked(self, nkey, issued_at):
        """Go: checkUserRevoked."""
        return jwt.is_revoked(self.users_revoked, nkey, issued_at)

    def check_activation(self, import_acc, claim, ea, exp_timer):
        """Go: checkActivation. Is the activation token of import `claim` (a jwt.Import of
        `import_acc`) good for an export of ours? `ea` None skips the revocation check; with
        `exp_timer`, the import is re-checked when the token expires."""
        if claim is None or not claim.token:
            return False
        vr = jwt.ValidationResults()
        claim.validate(import_acc.name, vr)
        if vr.is_blocking(True):
            return False
        try:
            act = jwt.decode_activation_claims(claim.token)
        except jwt.JWTError:
            return False
        if not self.is_issuer_claim_trusted(act):
            return False
        if jwt.validate(act).is_blocking(True):
            return False
        if act.exp:
            now = int(time.time())
            if act.exp <= now:
                return False
            loop = self.srv.loop if self.srv is not None else None
            if exp_timer and loop is not None:
                timer = loop.timer(act.exp - now)
                timer.start(import_acc.activation_expired, self, act.import_subject.encode(), claim.type)
        if ea is None:
            return True
        return not jwt.is_revoked(ea.acts_revoked, act.sub, act.iat)

    def is_issuer_claim_trusted(self, act):
        """Go: isIssuerClaimTrusted. An activation issued by a signing key names us as its
        issuer_account, and the key must be one of ours."""
        if not act.issuer_account:
            return True
        if act.issuer_account != self.name:
            log.error("Invalid issuer account %s in activation claim (subject: %s - type: %s) for account %s",
                      gofmt.go_quote(act.issuer_account), gofmt.go_quote(act.import_subject),
                      gofmt.go_quote(act.import_type), gofmt.go_quote(self.name))
            return False
        return self.has_issuer(act.iss)[1]

    def activation_expired(self, exporter, subject, kind):
        """Go: activationExpired. An import's activation token expired: unless a newer token
        came meanwhile, the import stops. Runs as a hub callback."""
        if self.expired:
            return
        if kind == jwt.STREAM:
            si = next((im for im in self.stream_imports if im.acc is exporter and im.from_ == subject), None)
        else:
            si = self.service_imports.get(subject)
        if si is None or si.invalid or si.acc.check_activation(self, si.claim, None, False):
            return
        si.invalid = True

    def check_expiration(self, claims):
        """Go: checkExpiration. Expired now, or a timer for when the JWT expires."""
        if self.etmr is not None:
            self.etmr.close()
            self.etmr = None
        self.expired = False
        if claims.exp == 0:
            return
        now = int(time.time())
        if claims.exp <= now:
            self.expired = True
            return
        loop = self.srv.loop if self.srv is not None else None
        if loop is not None:
            self.etmr = loop.timer(claims.exp - now)
            self.etmr.start(self.expired_timeout)

    def expired_timeout(self):
        """Go: expiredTimeout. The account JWT expired: so do its clients. A hub callback."""
        self.etmr = None
        self.expired = True
        for c in list(self.clients.values()):
            c.account_auth_expired()


# -- the message path ---------------------------------------------------------------------------


def add_shadow_subscriptions(c, acc, sub):
    """Go: addShadowSubscriptions. For each stream import of `acc` that `sub` overlaps, a
    shadow of `sub` in the exporter's sublist. Runs on SUB; does not yield."""
    subj = sub.subject
    tokens = subj.split(TSEP)
    has_wc = PWC in tokens or tokens[-1] == FWC
    found = []  # (import, subject of the shadow or None for the import's own, dynamic)
    for im in acc.stream_imports:
        if im.invalid:
            continue
        if subj == im.to:
            found.append((im, None, False))
            continue
        im_tokens = im.to.split(TSEP)
        if is_subset_match_tokenized(tokens, im_tokens):
            found.append((im, None, True))
        elif has_wc:
            if is_subset_match_tokenized(im_tokens, tokens):
                found.append((im, None, False))
                continue
            # Overlap: narrow the subscription's wildcards with the import's tokens.
            narrowed = list(tokens)
            for i, t in enumerate(narrowed[:len(im_tokens)]):
                if t == PWC and im_tokens[i] != FWC:
                    narrowed[i] = im_tokens[i]
            if narrowed[-1] == FWC and len(im_tokens) >= len(narrowed):
                last = len(narrowed) - 1
                narrowed[last] = im_tokens[last]
                narrowed.extend(im_tokens[last + 1:])
            if is_subset_match_tokenized(narrowed, im_tokens):
                found.append((im, TSEP.join(narrowed), True))
    if not found:
        return
    shadow = []
    for im, overlap, dynamic in found:
        shadow.append(add_shadow_sub(c, sub, im, overlap, dynamic))
    sub.shadow = shadow


def add_shadow_sub(c, sub, im, overlap, dynamic):
    """Go: addShadowSub. A copy of `sub` in `im.acc`'s sublist, on the exporter's subject."""
    nsub = sub.copy()
    nsub.im = im
    if not im.use_pub and dynamic and im.tr is not None:
        if im.rtr is None:
            im.rtr = im.tr.reverse()
        nsub.subject = im.rtr.transform_subject((overlap or sub.subject).decode("utf-8", "surrogateescape")).encode(
            "utf-8", "surrogateescape")
    elif not im.use_pub or overlap is not None or not dynamic:
        nsub.subject = overlap if overlap is not None else im.from_
    log.debug("%s - Creating import subscription on %r from account %r", c, nsub.subject, im.acc.name)
    im.acc.sublist.insert(nsub)
    return nsub


def remove_shadow_subs(sub):
    """The shadow half of Go's unsubscribe."""
    for nsub in sub.shadow:
        nsub.im.acc.sublist.remove(nsub)
    sub.shadow = None


def client_info_json(c, share):
    """Go: getClientInfo, marshalled: the requester's identity for the `Nats-Request-Info`
    header. Without `share`, only its account and round-trip time."""
    ci = {}
    if share:
        ci["start"] = gofmt.format_time(gofmt.time_ns(c.start))
        ci["host"] = c.host
        ci["id"] = c.cid
    ci["acc"] = c.acc.name
    if share:
        for key, opt in (("user", "user"), ("name", "name"), ("lang", "lang"), ("ver", "version")):
            if c.copts.get(opt):
                ci[key] = c.copts[opt]
    rtt = int(c.rtt * 1e9)
    if rtt:
        ci["rtt"] = rtt
    if share:
        ci["server"] = c.srv.name
        ci["kind"] = "Client"
        ci["client_type"] = "nats"
    return gofmt.marshal(ci).encode()


def set_header(c, key, value, msg):
    """Go: setHeader. `msg` with header `key` set to `value` (replacing it), and the
    publish arguments updated to the new sizes."""
    hdr = c.pa_hdr
    if hdr > 2:
        head = _remove_header_if_present(msg[:hdr - 2], key) or HDR_LINE
        rest = msg[hdr:]
    else:
        head = HDR_LINE
        rest = msg
    head = head + key + b": " + value + b"\r\n\r\n"
    out = head + rest
    c.pa_hdr = len(head)
    c.pa_hdb = str(len(head)).encode()
    c.pa_szb = str(len(out) - 2).encode()
    return out


def get_header(key, hdr):
    """Go: getHeader. The value of header `key` (bytes, case-sensitive as Go's) in the header
    block `hdr`, or None."""
    i = hdr.find(b"\r\n" + key + b":")
    if i < 0:
        return None
    i += len(key) + 3
    end = hdr.find(b"\r\n", i)
    return hdr[i:end if end >= 0 else len(hdr)].lstrip(b" ")


def _remove_header_if_present(hdr, key):
    """Go: removeHeaderIfPresent. `hdr` is a header block without its final blank line."""
    start = hdr.find(key)
    if start < 1 or hdr[start - 1] != 10:  # must start a line
        return hdr
    i = start + len(key)
    if i >= len(hdr) or hdr[i] != 58:  # ':'
        return hdr
    end = hdr.find(b"\r\n", start)
    if end < 0:
        return hdr
    hdr = hdr[:start] + hdr[end + 2:]
    return hdr if len(hdr) > len(HDR_LINE) else None


def process_service_import(c, si, acc, msg):
    """Go: processServiceImport. Re-publish the message `c` is processing, which matched
    service import (or response import) `si` of account `acc`, in `si.acc`. Runs on the
    publisher's greenlet; does not yield."""
    is_response = si.response
    # Go: a chain of imports that comes back to an export it passed is a cycle; drop it.
    for psi in c.pa_psi:
        if psi.se is si.se:
            return
    if si.invalid:
        return
    nrr = None
    rsi = None
    reply = c.pa_reply
    if reply is not None:
        if reply.startswith(JS_ACK_PRE):
            nrr = reply
        else:
            rsi = si.acc.add_resp_service_import(acc, reply, si)
            nrr = rsi.from_
    to = si.to_subject(c.pa_subject)
    saved = (c.pa_subject, c.pa_reply, c.pa_hdr, c.pa_hdb, c.pa_szb)
    if si.acc.mappings is not None:
        mapped = si.acc.select_mapped_subject(to)
        if mapped is not None:
            to = mapped
    share = c.pa_psi[-1].share if c.pa_psi else si.share
    c.pa_psi.append(si)
    try:
        if not is_response:
            msg = set_header(c, CLIENT_INFO_HDR, client_info_json(c, share), msg)
            c.pa_subject = to
        c.pa_reply = nrr
        result = si.acc.sublist.match(to)
        delivered = c.process_msg_results(si.acc, result, to, nrr, msg)
    finally:
        c.pa_psi.pop()
        c.pa_subject, c.pa_reply, c.pa_hdr, c.pa_hdb, c.pa_szb = saved
    # Go: a response import goes after its one response (or the empty message that ends a
    # chunked or streamed one); any import whose message reached nobody goes at once.
    if si.rt != SINGLETON and delivered:
        si.ts = time.monotonic()
    if not delivered or (is_response and (si.rt == SINGLETON or len(msg) == 2)):
        if is_response:
            acc.remove_resp_service_import(si)
        else:
            si.acc.remove_resp_service_import(rsi)


# -- configuration ------------------------------------------------------------------------------


@dataclass
class ExportConfig:
    """One entry of an account's `exports` (Go: export)."""

    subject: str
    service: bool = False
    accounts: Optional[List[str]] = None  # None: public
    response_type: int = SINGLETON
    response_threshold: float = 0.0  # seconds; 0: the default
    latency: Optional[tuple] = None  # (subject, sampling)
    account_token_position: int = 0


@dataclass
class ImportConfig:
    """One entry of an account's `imports` (Go: importStream, importService)."""

    account: str
    subject: str
    service: bool = False
    to: str = ""
    prefix: str = ""
    share: bool = False


@dataclass
class AccountConfig:
    """An account of the `accounts` block (Go builds an Account while parsing; gnatsd keeps
    what the block says, and each server builds its own accounts from it)."""

    name: str
    nkey: str = ""
    exports: list = field(default_factory=list)
    imports: list = field(default_factory=list)
    mappings: list = field(default_factory=list)  # (source, [transform.MapDest])
    limits: dict = field(default_factory=dict)  # mpay, msubs, mconns, mleafs
    default_permissions: object = None
    jetstream: bool = False  # `jetstream: enabled` (or a block of limits)
    jetstream_limits: dict = None  # Go's JetStreamAccountLimits JSON names -> values; None: no limits


def build_accounts(configs):
    """Go: parseAccounts' second half and configureAccounts: the Account objects of `configs`
    by name, `$G` included, with their exports, imports and mappings. Raises AccountError
    with every problem found, one per line, as Go reports them."""
    from .transform import add_weighted_mappings
    accounts = {GLOBAL_ACCOUNT: Account(GLOBAL_ACCOUNT)}
    errors = []
    for cfg in configs:
        acc = accounts.get(cfg.name)
        if acc is None:
            acc = accounts[cfg.name] = Account(cfg.name)
        acc.nkey = cfg.nkey
        acc.default_perms = cfg.default_permissions
        for k, v in cfg.limits.items():
            setattr(acc, k, v)
        for src, dests in cfg.mappings:
            if acc.mappings is None:
                acc.mappings = []
            try:
                add_weighted_mappings(acc.mappings, src, dests)
            except TransformError as e:
                errors.append(f"Error adding mapping for {gofmt.go_quote(src)} : {e}")

    def approved(names, what):
        found = []
        for n in names:
            if n in accounts:
                found.append(accounts[n])
            else:
                errors.append(f"{gofmt.go_quote(n)} account not defined for {what} export")
        return found

    for kind in ("stream", "service"):
        for cfg in configs:
            acc = accounts[cfg.name]
            for e in cfg.exports:
                if e.service != (kind == "service"):
                    continue
                subject = e.subject.encode()
                names = approved(e.accounts, kind) if e.accounts is not None else None
                try:
                    if kind == "stream":
                        acc.add_stream_export(subject, names, e.account_token_position)
                        continue
                    se = acc.add_service_export(subject, e.response_type, names, e.account_token_position)
                except AccountError as err:
                    errors.append(f"Error adding {kind} export {gofmt.go_quote(e.subject)}: {err}")
                    continue
                if e.response_threshold:
                    se.resp_thresh = e.response_threshold
                se.latency = e.latency
    for kind in ("stream", "service"):
        for cfg in configs:
            acc = accounts[cfg.name]
            for i in cfg.imports:
                if i.service != (kind == "service"):
                    continue
                dest = accounts.get(i.account)
                if dest is None:
                    errors.append(f"{gofmt.go_quote(i.account)} account not defined for {kind} import")
                    continue
                subject = i.subject.encode()
                try:
                    if kind == "service":
                        acc.add_service_import(dest, (i.to or i.subject).encode(), subject, i.share)
                    elif i.prefix:
                        acc.add_stream_import(dest, subject, i.prefix.encode())
                    else:
                        acc.add_mapped_stream_import(dest, subject, i.to.encode())
                except AccountError as err:
                    errors.append(f"Error adding {kind} import {gofmt.go_quote(i.subject)}: {err}")
    if errors:
        raise AccountError("\n".join(errors))
    return accounts


# -- operator mode: accounts from JWTs (Go: accounts.go and server.go) ---------------------------

ERR_ACCOUNT_VALIDATION = "account validation failed"
ERR_ACCOUNT_EXPIRED = "account expired"
ERR_NO_ACCOUNT_RESOLVER = "account resolver missing"
ERR_ACCOUNT_RESOLVER_UPDATE_TOO_SOON = "account resolver update too soon"
_RESPONSE_TYPES = {"": SINGLETON, "Singleton": SINGLETON, "Stream": STREAMED, "Chunked": CHUNKED}


class MemAccResolver:
    """Go: MemAccResolver. Account JWTs by account public key, in memory (`resolver: MEMORY`,
    filled by `resolver_preload`)."""

    def __init__(self):
        self.jwts = {}

    def fetch(self, name):
        jwt_text = self.jwts.get(name)
        if jwt_text is None:
            raise AccountError(ERR_MISSING_ACCOUNT)
        return jwt_text

    def store(self, name, jwt_text):
        self.jwts[name] = jwt_text


def is_trusted_issuer(srv, issuer):
    """Go: isTrustedIssuer. Outside operator mode only an empty issuer is."""
    if srv.trusted_keys is None:
        return issuer == ""
    return issuer in srv.trusted_keys


def lookup_account(srv, name):
    """Go: lookupAccount. The account called `name`; in operator mode fetched from the
    resolver the first time, and again once its JWT has expired. Raises AccountError."""
    acc = srv.accounts.get(name)
    if acc is not None:
        if acc.expired:
            log.debug("Requested account [%s] has expired", name)
            if srv.acc_resolver is None:
                raise AccountError(ERR_ACCOUNT_EXPIRED)
            try:
                update_account(srv, acc)
            except AccountError:
                raise AccountError(ERR_ACCOUNT_EXPIRED) from None
        return acc
    if srv.acc_resolver is None:
        raise AccountError(ERR_MISSING_ACCOUNT)
    return fetch_account(srv, name)


def update_account(srv, acc):
    """Go: updateAccount. Fetch `acc`'s JWT again and apply it."""
    if not acc.incomplete and time.time() - acc.updated < 1.0:
        log.debug("Requested account update for [%s] ignored, too soon", acc.name)
        raise AccountError(ERR_ACCOUNT_RESOLVER_UPDATE_TOO_SOON)
    update_account_with_claim_jwt(srv, acc, fetch_raw_account_claims(srv, acc.name))


def update_account_with_claim_jwt(srv, acc, claim_jwt):
    """Go: updateAccountWithClaimJWT."""
    if acc.claim_jwt and acc.claim_jwt == claim_jwt and not acc.incomplete:
        log.debug("Requested account update for [%s], same claims detected", acc.name)
        return
    ac = verify_account_claims(srv, claim_jwt)
    if not acc.issuer:
        acc.issuer = ac.iss
    if acc.name != ac.sub:
        raise AccountError(ERR_ACCOUNT_VALIDATION)
    update_account_claims(srv, acc, ac)
    acc.claim_jwt = claim_jwt


def fetch_raw_account_claims(srv, name):
    """Go: fetchRawAccountClaims and fetchAccount (the resolver's Fetch)."""
    if srv.acc_resolver is None:
        raise AccountError(ERR_NO_ACCOUNT_RESOLVER)
    from .nkeys import is_valid_public_account_key
    if not is_valid_public_account_key(name):
        raise AccountError("will only fetch valid account keys")
    try:
        return srv.acc_resolver.fetch(name)
    except AccountError as e:
        log.warning("Account fetch failed: %s", e)
        raise


def verify_account_claims(srv, claim_jwt):
    """Go: verifyAccountClaims. The decoded claims, signed by a trusted operator and valid now."""
    try:
        ac = jwt.decode_account_claims(claim_jwt)
    except jwt.JWTError as e:
        raise AccountError(str(e)) from None
    if not is_trusted_issuer(srv, ac.iss) or jwt.validate(ac).is_blocking(True):
        raise AccountError(ERR_ACCOUNT_VALIDATION)
    return ac


def fetch_account(srv, name):
    """Go: fetchAccount (fetchAccountClaims, buildInternalAccount, registerAccount)."""
    claim_jwt = fetch_raw_account_claims(srv, name)
    ac = verify_account_claims(srv, claim_jwt)
    if ac.sub != name:
        raise AccountError(ERR_ACCOUNT_VALIDATION)
    acc = Account(name)
    acc.issuer = ac.iss
    acc.srv = srv
    # Go: tmpAccounts. An account being built can be imported from by the accounts its own
    # imports fetch, so that circular imports resolve.
    srv.tmp_accounts[name] = acc
    try:
        update_account_claims(srv, acc, ac)
    finally:
        srv.tmp_accounts.pop(name, None)
    acc.claim_jwt = claim_jwt
    racc = srv.accounts.get(name)
    if racc is not None:  # registered meanwhile, by an import of an import
        update_account_with_claim_jwt(srv, racc, claim_jwt)
        return racc
    srv.accounts[name] = acc
    return acc


def build_permissions_from_jwt(p):
    """Go: buildPermissionsFromJwt. auth.Permissions from jwt.Permissions, or None."""
    from .auth import Permissions, ResponsePermission, SubjectPermission, validate_response_permissions
    perms = None
    if p.pub.allow or p.pub.deny:
        perms = Permissions(publish=SubjectPermission(p.pub.allow or None, p.pub.deny or None))
    if p.sub.allow or p.sub.deny:
        perms = perms or Permissions()
        perms.subscribe = SubjectPermission(p.sub.allow or None, p.sub.deny or None)
    if p.resp is not None:
        perms = perms or Permissions()
        perms.response = ResponsePermission(p.resp.max_msgs, p.resp.expires / 1e9)
        validate_response_permissions(perms)
    return perms


def update_account_claims(srv, a, ac):
    """Go: updateAccountClaimsWithRefresh. Make account `a` what its claims `ac` say: signing
    keys, mappings, exports, imports, limits, revocations, default permissions; then hold its
    clients to the new limits and revocations. Does not yield."""
    from .transform import MapDest, add_weighted_mappings
    log.debug("Updating account claims: %s/%s", a.name, ac.name)
    a.check_expiration(ac)
    a.name_tag = ac.name
    a.tags = list(ac.tags)
    # signing keys: the account's own key too, unless its operator is strict about them
    a.signing_keys = dict(ac.signing_keys)
    if a.issuer not in srv.strict_signing_keys:
        a.signing_keys[a.name] = None
    mappings = []
    for src, dests in ac.mappings.items():
        try:
            add_weighted_mappings(mappings, src, [MapDest(s, w, c) for s, w, c in dests])
        except TransformError as e:
            log.debug("Error adding mapping %s to account [%s]: %s", src, a.name, e)
    a.mappings = mappings or None
    a.stream_exports = {}
    a.service_exports = {}
    for e in ac.exports:
        subject = e.subject.encode()
        accounts = [] if e.token_req else None  # Go: authAccounts
        try:
            if e.type == jwt.STREAM:
                a.add_stream_export(subject, accounts, e.account_token_position)
                ea = a.stream_exports.get(subject)
            elif e.type == jwt.SERVICE:
                ea = a.add_service_export(subject, _RESPONSE_TYPES.get(e.response_type, SINGLETON), accounts,
                                          e.account_token_position)
                if e.latency is not None:
                    ea.latency = (e.latency[1], e.latency[0])
                if e.response_threshold:
                    ea.resp_thresh = e.response_threshold / 1e9
            else:
                continue
        except AccountError as err:
            log.debug("Error adding %s export to account [%s]: %s", e.type, a.name, err)
            continue
        if ea is not None:
            ea.acts_revoked = dict(e.revocations) or None
    # imports: replace them all; the old service imports' subscriptions go
    ic = a.ic
    for si in a.service_imports.values():
        if ic is not None and si.sub is not None:
            ic.unsubscribe(si.sub)
    a.service_imports = {}
    a.stream_imports = []
    incomplete = False
    for i in ac.imports:
        acc = srv.tmp_accounts.get(i.account)
        if acc is None:
            try:
                acc = lookup_account(srv, i.account)
            except AccountError as err:
                log.error("Can't locate account [%s] for import of [%s] %s (err=%s)", i.account, i.subject, i.type,
                          err)
                incomplete = True
                continue
        try:
            if i.type == jwt.STREAM:
                if i.local_subject:
                    a.add_mapped_stream_import(acc, i.subject.encode(), i.local_subject.encode(), i)
                else:
                    a.add_stream_import(acc, i.subject.encode(), i.to.encode(), i)
            elif i.type == jwt.SERVICE:
                from_, to = (i.local_subject, i.subject) if i.local_subject else (i.subject, i.to)
                a.add_service_import(acc, from_.encode(), to.encode(), i.share, i)
        except AccountError as err:
            log.debug("Error adding %s import to account [%s]: %s", i.type, a.name, err)
            incomplete = True
    lim = ac.limits
    a.msubs, a.mpay, a.mconns, a.mleafs = lim.subs, lim.payload, lim.conn, lim.leaf
    a.disallow_bearer = lim.disallow_bearer
    a.users_revoked = dict(ac.revocations) or None
    a.default_perms = build_permissions_from_jwt(ac.default_permissions)
    a.incomplete = incomplete
    a.updated = time.time()
    # Go: the newest clients go first when the account has too many now
    clients = sorted(a.clients.values(), key=lambda c: c.start, reverse=True)
    for n, c in enumerate(clients):
        if a.mconns != -1 and n >= a.mconns:
            c.max_account_conn_exceeded()
            continue
        c.apply_account_limits()
        uc = c.juc
        if uc is None:
            continue
        if uc.limits.bearer_token and lim.disallow_bearer:
            log.debug("%s - Bearer User JWT not allowed", c)
            c.auth_violation()
        elif ac.revocations and ac.is_claim_revoked(uc):
            c.send_err("User Authentication Revoked")
            c.close_connection(ClosedState.Revocation)
