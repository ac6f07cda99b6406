"""Streams: their configuration, its checks and defaults, and the message path into a store.

Ports nats-server `server/stream.go` as 2.9.10 has it, for one server: StreamConfig and its
JSON (Go's field order and omitempty), checkStreamCfg, configUpdateCheck, addStream,
update, purge, deleteMsg/eraseMsg, the stream's subscription (processInboundJetStreamMsg,
processJetStreamMsg: Nats-Msg-Id dedupe, the Nats-Expected-* headers, Nats-Rollup, the
limits, PubAck JSON), DIRECT.GET (processDirectGetRequest, getDirectRequest) and the
stream's meta file (writeStreamMeta).

Also republish (with 2.10's Nats-Time-Stamp), the mirror and source configs and their checks
(the copying itself is gnatsd/js/sources.py), and from newer servers: 2.10's
subject_transform, first_seq, metadata and compression, 2.11's per-message TTL (Nats-TTL,
allow_msg_ttl, subject_delete_marker_ttl). Their fields appear in a config's JSON only when
set, so that what 2.9.10 clients see stays byte for byte 2.9.10's. Replicas above 1 are
refused (Go's non-clustered error).

A stream's messages arrive through an internal subscription of its account on each subject,
run on the publisher's greenlet and never yield: the message goes to the store with
`wait=False` and its PubAck is queued (events.send_internal_msg) once the store says it is
on disk (`on_synced`), so a publisher's readloop never waits for an fsync.
"""
from __future__ import annotations

import base64
import calendar
import hashlib
import json
import logging
import os
import re
import time
from collections import deque

from .. import gofmt
from ..conn import SYS_QUEUE_GROUP
from ..events import get_hash, send_internal_msg
from ..fs.filestore import STREAM_META_FILE, STREAM_META_SUM, FileStore, FileStoreConfig
from ..fs.memstore import MemStore
from ..hub import run_blocking
from ..opts import parse_go_duration
from ..fs.store import (
    DISCARD_NEW, DISCARD_OLD, FILE_STORAGE, INTEREST_POLICY, LIMITS_POLICY, MEMORY_STORAGE,
    WORK_QUEUE_POLICY, ErrStoreClosed, StoreError,
)
from ..sublist import (
    is_valid_literal_subject, is_valid_subject, subject_has_wildcard, subject_is_subset_match, subjects_collide,
)
from ..transform import SubjectTransform, TransformError, validate_mapping_destination
from .errors import ApiError, api_error

log = logging.getLogger("gnatsd")

JS_MAX_NAME_LEN = 255  # Go: JSMaxNameLen
DGET_GROUP = SYS_QUEUE_GROUP  # Go: dgetGroup
JS_MAX_DESCRIPTION_LEN = 4 * 1024  # Go: JSMaxDescriptionLen
JS_MAX_METADATA_LEN = 128 * 1024  # Go (2.10): JSMaxMetadataLen
STREAM_MAX_REPLICAS = 5  # Go: StreamMaxReplicas
STREAM_DEFAULT_DUPLICATES_WINDOW = 120 * 1_000_000_000  # Go: StreamDefaultDuplicatesWindow
MS100 = 100 * 1_000_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
ZERO_TIME = "0001-01-01T00:00:00Z"  # Go: time.Time{} in JSON

# Go: the stream headers.
JS_MSG_ID = b"Nats-Msg-Id"
JS_EXPECTED_STREAM = b"Nats-Expected-Stream"
JS_EXPECTED_LAST_SEQ = b"Nats-Expected-Last-Sequence"
JS_EXPECTED_LAST_SUBJ_SEQ = b"Nats-Expected-Last-Subject-Sequence"
JS_EXPECTED_LAST_MSG_ID = b"Nats-Expected-Last-Msg-Id"
JS_MSG_ROLLUP = b"Nats-Rollup"
JS_STREAM_SOURCE = b"Nats-Stream-Source"
JS_MESSAGE_TTL = b"Nats-TTL"  # 2.11
JS_MARKER_REASON = b"Nats-Marker-Reason"  # 2.11
CLIENT_INFO_HDR = b"Nats-Request-Info"
JS_MSG_ROLLUP_SUBJECT = b"sub"
JS_MSG_ROLLUP_ALL = b"all"
MAX_HDR = 65535  # Go: math.MaxUint16

JS_ADVISORY_STREAM_CREATED_PRE = "$JS.EVENT.ADVISORY.STREAM.CREATED"
JS_ADVISORY_STREAM_DELETED_PRE = "$JS.EVENT.ADVISORY.STREAM.DELETED"
JS_ADVISORY_STREAM_UPDATED_PRE = "$JS.EVENT.ADVISORY.STREAM.UPDATED"
JS_STREAM_ACTION_ADVISORY_TYPE = "io.nats.jetstream.advisory.v1.stream_action"


RETENTION = {"limits": LIMITS_POLICY, "interest": INTEREST_POLICY, "workqueue": WORK_QUEUE_POLICY}
DISCARD = {"old": DISCARD_OLD, "new": DISCARD_NEW}
STORAGE = {"file": FILE_STORAGE, "memory": MEMORY_STORAGE}
RETENTION_NAMES = {v: k for k, v in RETENTION.items()}
DISCARD_NAMES = {v: k for k, v in DISCARD.items()}
STORAGE_NAMES = {v: k for k, v in STORAGE.items()}


class BadJSON(ValueError):
    """A request body Go's json.Unmarshal refuses (the API answers "invalid JSON")."""


def format_ts(ns):
    """A store time (ns; 0 for none) as Go's JSON time.Time."""
    return gofmt.format_time(ns) if ns else ZERO_TIME


def decode_json(body):
    """Go: json.Unmarshal into a struct: the object, or {} for null. Raises BadJSON."""
    try:
        v = json.loads(body.decode("utf-8", "replace"))
    except (ValueError, RecursionError):
        raise BadJSON() from None
    return {} if v is None else json_object(v)


def json_object(v):
    """A JSON object of a request as Go decodes it into a struct: keys lowercased (Go
    matches field names case-insensitively), nulls dropped. Raises BadJSON if `v` is not
    an object."""
    if type(v) is not dict:
        raise BadJSON()
    return {k.lower(): item for k, item in v.items() if item is not None}


def want(d, key, kind, default, lo=INT64_MIN, hi=INT64_MAX):
    """The field `key` of a decoded request, type-checked as Go's decoder does."""
    v = d.get(key)
    if v is None:
        return default
    if kind is int:
        if type(v) is not int or not lo <= v <= hi:
            raise BadJSON()
    elif kind is list:
        if type(v) is not list or not all(type(s) is str for s in v if s is not None):
            raise BadJSON()
        return [s if s is not None else "" for s in v]
    elif type(v) is not kind:
        raise BadJSON()
    return v


def want_enum(d, key, table, default):
    """The field `key` of a decoded request, one of `table`'s names (Go: a string type with
    its own UnmarshalJSON), as `table`'s value. Raises BadJSON."""
    v = d.get(key)
    if v is None:
        return default
    if type(v) is not str or v not in table:
        raise BadJSON()
    return table[v]


def is_valid_name(name):
    """Go: isValidName. Not empty, no '.', '*', '>' or whitespace."""
    return bool(name) and not any(ch in name for ch in ".*> \t\r\n\f")


# -- the nested parts of a config: mirror/sources, republish, subject transforms ------------


def _transform_cfg(d):
    """Go (2.10): SubjectTransformConfig {src, dest}, as a dict in Go's field order."""
    if type(d) is not dict:
        raise BadJSON()
    return {"src": want(d, "src", str, ""), "dest": want(d, "dest", str, "")}


class StreamSource:
    """Go: StreamSource (a mirror or one of the sources). `opt_start_time` in ns (0: none)."""

    __slots__ = ("name", "opt_start_seq", "opt_start_time", "filter_subject", "subject_transforms", "external")

    @classmethod
    def from_dict(cls, d):
        """Raises BadJSON."""
        d = json_object(d)
        ss = cls()
        ss.name = want(d, "name", str, "")
        ss.opt_start_seq = want(d, "opt_start_seq", int, 0, 0, 2**64 - 1)
        t = want(d, "opt_start_time", str, "")
        try:
            ss.opt_start_time = parse_rfc3339(t) if t else 0
        except ValueError:
            raise BadJSON() from None
        ss.filter_subject = want(d, "filter_subject", str, "")
        trs = d.get("subject_transforms")
        if trs is not None and type(trs) is not list:
            raise BadJSON()
        ss.subject_transforms = [_transform_cfg(t) for t in trs or ()]
        ext = want(d, "external", dict, None)
        ss.external = None if ext is None else {"api": want(ext, "api", str, ""),
                                                "deliver": want(ext, "deliver", str, "")}
        return ss

    @property
    def iname(self):
        """Go: setIndexName. The name, and for an external stream a hash of its API prefix
        (what Nats-Stream-Source headers carry)."""
        if self.external is None:
            return self.name
        return self.name + ":" + get_hash(self.external["api"])

    def to_dict(self):
        d = {"name": self.name}
        if self.opt_start_seq:
            d["opt_start_seq"] = self.opt_start_seq
        if self.opt_start_time:
            d["opt_start_time"] = gofmt.format_time(self.opt_start_time)
        if self.filter_subject:
            d["filter_subject"] = self.filter_subject
        if self.subject_transforms:
            d["subject_transforms"] = [dict(t) for t in self.subject_transforms]
        if self.external is not None:
            d["external"] = dict(self.external)
        return d


def gather_source_mirror_subjects(jsa, cfg, seen=None):
    """Go: gatherSourceMirrorSubjects with streamSourceSubjectsNotClustered: the subjects a
    consumer's filters must be within, the stream's own and those its mirror or sources bring
    (their origins', followed through theirs; 2.10's transform destinations where there are
    transforms, the stream's subject_transform included). None when an external origin
    makes them unknown (Go's hasExt: no check)."""
    seen = set() if seen is None else seen
    seen.add(cfg.name)
    subjects = list(cfg.subjects)
    if cfg.subject_transform and cfg.subject_transform.get("dest"):
        subjects.append(cfg.subject_transform["dest"])
    for ss in [cfg.mirror] if cfg.mirror is not None else cfg.sources or ():
        if ss.external is not None:
            return None
        if ss.subject_transforms:
            subjects.extend(t["dest"] or t["src"] or ">" for t in ss.subject_transforms)
            continue
        origin = jsa.streams.get(ss.name)
        if origin is None or ss.name in seen:
            continue
        more = gather_source_mirror_subjects(jsa, origin.cfg, seen)
        if more is None:
            return None
        subjects.extend(more)
    return subjects


def _republish_cfg(d):
    """Go: RePublish {src?, dest, headers_only?}, as a dict in Go's field order."""
    out = {}
    src = want(d, "src", str, "")
    if src:
        out["src"] = src
    out["dest"] = want(d, "dest", str, "")
    if want(d, "headers_only", bool, False):
        out["headers_only"] = True
    return out


class StreamConfig:
    """Go: StreamConfig. Durations in nanoseconds; enums as the store's constants."""

    def __init__(self):
        self.name = ""
        self.description = ""
        self.subjects = []
        self.retention = LIMITS_POLICY
        self.max_consumers = 0
        self.max_msgs = 0
        self.max_bytes = 0
        self.max_age = 0
        self.max_msgs_per_subject = 0
        self.max_msg_size = 0
        self.discard = DISCARD_OLD
        self.storage = 0
        self.num_replicas = 0
        self.no_ack = False
        self.template_owner = ""
        self.duplicate_window = 0
        self.placement = None
        self.mirror = None
        self.sources = None
        self.republish = None
        self.allow_direct = False
        self.mirror_direct = False
        self.discard_new_per_subject = False
        self.sealed = False
        self.deny_delete = False
        self.deny_purge = False
        self.allow_rollup_hdrs = False
        # 2.10 and 2.11 fields (in the JSON only when set: see to_dict)
        self.compression = "none"
        self.first_seq = 0
        self.subject_transform = None
        self.metadata = None
        self.allow_msg_ttl = False
        self.subject_delete_marker_ttl = 0

    @classmethod
    def from_dict(cls, d):
        """Decode a request's config (a dict from decode_json). Raises BadJSON."""
        c = cls()
        c.name = want(d, "name", str, "")
        c.description = want(d, "description", str, "")
        c.subjects = want(d, "subjects", list, [])
        c.retention = want_enum(d, "retention", RETENTION, LIMITS_POLICY)
        c.max_consumers = want(d, "max_consumers", int, 0)
        c.max_msgs = want(d, "max_msgs", int, 0)
        c.max_bytes = want(d, "max_bytes", int, 0)
        c.max_age = want(d, "max_age", int, 0)
        c.max_msgs_per_subject = want(d, "max_msgs_per_subject", int, 0)
        c.max_msg_size = want(d, "max_msg_size", int, 0, INT32_MIN, INT32_MAX)
        c.discard = want_enum(d, "discard", DISCARD, DISCARD_OLD)
        c.storage = want_enum(d, "storage", STORAGE, 0)
        c.num_replicas = want(d, "num_replicas", int, 0)
        c.no_ack = want(d, "no_ack", bool, False)
        c.template_owner = want(d, "template_owner", str, "")
        c.duplicate_window = want(d, "duplicate_window", int, 0)
        c.placement = want(d, "placement", dict, None)
        mirror = want(d, "mirror", dict, None)
        c.mirror = None if mirror is None else StreamSource.from_dict(mirror)
        sources = d.get("sources")
        if sources is not None and type(sources) is not list:
            raise BadJSON()
        c.sources = [StreamSource.from_dict(s) for s in sources] if sources else None
        republish = want(d, "republish", dict, None)
        c.republish = None if republish is None else _republish_cfg(republish)
        for key in ("allow_direct", "mirror_direct", "discard_new_per_subject", "sealed", "deny_delete",
                    "deny_purge", "allow_rollup_hdrs", "allow_msg_ttl"):
            setattr(c, key, want(d, key, bool, False))
        c.compression = want(d, "compression", str, "none")
        if c.compression not in ("none", "s2"):
            raise BadJSON()  # Go: "unknown compression algorithm" from the decoder
        c.first_seq = want(d, "first_seq", int, 0, 0, 2**64 - 1)
        st = want(d, "subject_transform", dict, None)
        c.subject_transform = None if st is None else _transform_cfg(st)
        md = want(d, "metadata", dict, None)
        if md is not None and not all(type(v) is str for v in md.values()):
            raise BadJSON()
        c.metadata = md or None
        c.subject_delete_marker_ttl = want(d, "subject_delete_marker_ttl", int, 0)
        return c

    def copy(self):
        """A copy whose lists and nested parts the checks may change."""
        c = StreamConfig()
        c.__dict__.update(self.__dict__)
        c.subjects = list(self.subjects)
        if self.republish is not None:
            c.republish = dict(self.republish)
        return c

    def to_dict(self):
        """Go's JSON of StreamConfig, in its field order."""
        d = {"name": self.name}
        if self.description:
            d["description"] = self.description
        if self.subjects:
            d["subjects"] = list(self.subjects)
        d["retention"] = RETENTION_NAMES[self.retention]
        d["max_consumers"] = self.max_consumers
        d["max_msgs"] = self.max_msgs
        d["max_bytes"] = self.max_bytes
        d["max_age"] = self.max_age
        d["max_msgs_per_subject"] = self.max_msgs_per_subject
        if self.max_msg_size:
            d["max_msg_size"] = self.max_msg_size
        d["discard"] = DISCARD_NAMES[self.discard]
        d["storage"] = STORAGE_NAMES.get(self.storage, "file")
        d["num_replicas"] = self.num_replicas
        if self.no_ack:
            d["no_ack"] = True
        if self.template_owner:
            d["template_owner"] = self.template_owner
        if self.duplicate_window:
            d["duplicate_window"] = self.duplicate_window
        if self.placement is not None:
            d["placement"] = self.placement
        if self.mirror is not None:
            d["mirror"] = self.mirror.to_dict()
        if self.sources:
            d["sources"] = [s.to_dict() for s in self.sources]
        if self.compression != "none":
            d["compression"] = self.compression
        if self.first_seq:
            d["first_seq"] = self.first_seq
        if self.subject_transform is not None:
            d["subject_transform"] = dict(self.subject_transform)
        if self.republish is not None:
            d["republish"] = dict(self.republish)
        d["allow_direct"] = self.allow_direct
        d["mirror_direct"] = self.mirror_direct
        if self.discard_new_per_subject:
            d["discard_new_per_subject"] = True
        d["sealed"] = self.sealed
        d["deny_delete"] = self.deny_delete
        d["deny_purge"] = self.deny_purge
        d["allow_rollup_hdrs"] = self.allow_rollup_hdrs
        if self.allow_msg_ttl:
            d["allow_msg_ttl"] = True
        if self.subject_delete_marker_ttl:
            d["subject_delete_marker_ttl"] = self.subject_delete_marker_ttl
        if self.metadata:
            d["metadata"] = gofmt.GoMap(self.metadata)
        return d

    def __eq__(self, other):
        return isinstance(other, StreamConfig) and self.to_dict() == other.to_dict()


def _invalid(text):
    return api_error("StreamInvalidConfigF", text)


def check_stream_cfg(jsa, config, recovering=False):
    """Go: checkStreamCfg. The config with Go's defaults filled in; raises ApiError.
    `recovering`: the config comes from disk (Go skips the checks against other streams
    that may not be back yet)."""
    if not is_valid_name(config.name):
        raise _invalid("stream name is required and can not contain '.', '*', '>'")
    if len(config.name) > JS_MAX_NAME_LEN:
        raise _invalid(f"stream name is too long, maximum allowed is {JS_MAX_NAME_LEN}")
    if len(config.description) > JS_MAX_DESCRIPTION_LEN:
        raise _invalid(f"stream description is too long, maximum allowed is {JS_MAX_DESCRIPTION_LEN}")
    if config.metadata and sum(len(k) + len(v) for k, v in config.metadata.items()) > JS_MAX_METADATA_LEN:
        raise _invalid(f"stream metadata exceeds maximum size of {JS_MAX_METADATA_LEN} bytes")
    cfg = config.copy()
    if cfg.storage == 0:
        cfg.storage = FILE_STORAGE
    if cfg.num_replicas == 0:
        cfg.num_replicas = 1
    if cfg.num_replicas > STREAM_MAX_REPLICAS:
        raise _invalid(f"maximum replicas is {STREAM_MAX_REPLICAS}")
    if cfg.num_replicas < 0:
        raise api_error("ReplicasCountCannotBeNegative")
    for key in ("max_msgs", "max_msgs_per_subject", "max_bytes", "max_msg_size", "max_consumers"):
        if getattr(cfg, key) == 0:
            setattr(cfg, key, -1)
    if cfg.duplicate_window == 0 and cfg.mirror is None:
        max_window = STREAM_DEFAULT_DUPLICATES_WINDOW
        if cfg.max_age != 0 and cfg.max_age < max_window:
            cfg.duplicate_window = cfg.max_age
        else:
            cfg.duplicate_window = max_window
    if 0 < cfg.max_age < MS100:
        raise _invalid("max age needs to be >= 100ms")
    if cfg.duplicate_window < 0:
        raise _invalid("duplicates window can not be negative")
    if cfg.max_age != 0 and cfg.duplicate_window > cfg.max_age:
        raise _invalid("duplicates window can not be larger then max age")
    if 0 < cfg.duplicate_window < MS100:
        raise _invalid("duplicates window needs to be >= 100ms")
    if cfg.deny_purge and cfg.allow_rollup_hdrs:
        raise _invalid("roll-ups require the purge permission")
    if cfg.discard_new_per_subject:
        if cfg.discard != DISCARD_NEW:
            raise _invalid("discard new per subject requires discard new policy to be set")
        if cfg.max_msgs_per_subject <= 0:
            raise _invalid("discard new per subject requires max msgs per subject > 0")
    check_msg_ttl_cfg(cfg)
    if cfg.mirror is not None or cfg.sources:
        check_mirror_and_sources(jsa, cfg, recovering)
    if not cfg.subjects:
        if cfg.mirror is None and not cfg.sources:
            cfg.subjects = [cfg.name]
    else:
        seen = set()
        for subj in cfg.subjects:
            if subj in seen:
                raise _invalid("duplicate subjects detected")
            if subject_is_subset_match(subj.encode(), b"$JS.API.>"):
                raise _invalid("subjects overlap with jetstream api")
            if not is_valid_subject(subj.encode()):
                raise _invalid("invalid subject")
            seen.add(subj)
    if jsa is not None:
        # Go: maxBytesLimits.
        lim = jsa.limits
        limit = lim["memory_max_stream_bytes"] if cfg.storage == MEMORY_STORAGE else lim["storage_max_stream_bytes"]
        if lim["max_bytes_required"] and cfg.max_bytes <= 0:
            raise api_error("StreamMaxBytesRequired")
        if limit > 0 and cfg.max_bytes > limit:
            raise api_error("StreamMaxStreamBytesExceeded")
    if len(cfg.subjects) > 1:
        for subj in cfg.subjects:
            for tsubj in cfg.subjects:
                if tsubj != subj and subjects_collide(tsubj.encode(), subj.encode()):
                    raise _invalid(f"subject {gofmt.go_quote(subj)} overlaps with {gofmt.go_quote(tsubj)}")
    if cfg.subject_transform is not None:
        st = cfg.subject_transform
        check_transform(st["src"], st["dest"], "StreamTransformInvalidSource", "StreamTransformInvalidDestination")
    if cfg.republish is not None:
        check_republish_cfg(cfg)
    return cfg


def check_transform(src, dest, bad_source, bad_dest):
    """Go (2.10): a SubjectTransformConfig's checks (IsValidSubject of the source, then
    ValidateMapping), raising the ApiError named `bad_source` or `bad_dest`."""
    if src and not is_valid_subject(src.encode()):
        raise api_error(bad_source, f"invalid subject {src}")
    if dest:
        try:
            validate_mapping_destination(dest)
            SubjectTransform(src or ">", dest)
        except TransformError as e:
            raise api_error(bad_dest, e) from None


def check_msg_ttl_cfg(cfg):
    """Go (2.11): the subject_delete_marker_ttl checks of checkStreamCfg, not pedantic: the
    markers turn on allow_msg_ttl and roll-ups."""
    sdm = cfg.subject_delete_marker_ttl
    if sdm > 0:
        if sdm < 1_000_000_000:
            raise _invalid("subject delete marker TTL must be at least 1 second")
        cfg.allow_msg_ttl = True
        if not cfg.allow_rollup_hdrs:
            cfg.allow_rollup_hdrs, cfg.deny_purge = True, False
    elif sdm < 0:
        raise _invalid("subject delete marker TTL must not be negative")


def check_mirror_and_sources(jsa, cfg, recovering):
    """Go: the mirror and source part of checkStreamCfg (2.9.10, with 2.10's checks of names,
    duplicates, filters and transforms). A mirror's mirror_direct follows its origin's
    allow_direct. As Go, the checks against an origin look the name up in this account, also
    for an `external` one; the API and delivery prefixes of an external are checked."""
    streams = jsa.streams if jsa is not None else {}
    _check_externals(streams, cfg)
    if cfg.mirror is not None:
        m = cfg.mirror
        if cfg.first_seq > 0:
            raise api_error("MirrorWithFirstSeq")
        if cfg.subjects:
            raise api_error("MirrorWithSubjects")
        if cfg.sources:
            raise api_error("MirrorWithSources")
        if m.filter_subject and m.subject_transforms:
            raise api_error("MirrorMultipleFiltersNotAllowed")
        if cfg.subject_delete_marker_ttl > 0:
            raise _invalid("subject delete markers forbidden on mirrors")
        _check_source_transforms(m, "Mirror")
        _check_origin(streams, cfg, m, "mirror", "MirrorMaxMessageSizeTooBig", recovering)
        origin = streams.get(m.name)
        if origin is not None:
            cfg.mirror_direct = origin.cfg.allow_direct
    names = set()
    for src in cfg.sources or ():
        if not is_valid_name(src.name):
            raise api_error("SourceInvalidStreamName")
        if src.iname in names:
            # Go 2.10 tells sources apart by name, filter and transforms; gnatsd by name (and
            # API prefix), as its Nats-Stream-Source header does (2.9.10's form).
            raise api_error("SourceDuplicateDetected")
        names.add(src.iname)
        if src.filter_subject and src.subject_transforms:
            raise api_error("SourceMultipleFiltersNotAllowed")
        _check_source_transforms(src, "Source")
        _check_origin(streams, cfg, src, "source", "SourceMaxMessageSizeTooBig", recovering)
    # Go: the cycle check, through sources and mirrors of the streams that exist.
    to_visit = [cfg]
    visited = set()
    while to_visit:
        c = to_visit.pop(0)
        visited.add(c.name)
        for ss in list(c.sources or ()) + ([c.mirror] if c.mirror is not None else []):
            if ss.external is not None:
                continue  # Go: not followed into the other account
            if ss.name in visited:
                raise _invalid("detected cycle")
            origin = streams.get(ss.name)
            if origin is not None:
                to_visit.append(origin.cfg)


def _check_externals(streams, cfg):
    """Go: checkStreamCfg's prefix checks. A delivery prefix is a subject without wildcards
    that does not cover the subjects of the (local) streams of the same names; an API prefix
    is one that is not `$JS.API`'s."""
    sss = ([cfg.mirror] if cfg.mirror is not None else []) + list(cfg.sources or ())
    subs = [subj for ss in sss if ss.name in streams for subj in streams[ss.name].cfg.subjects]
    exts = [ss.external for ss in sss if ss.external is not None]
    for pfx in (ext["deliver"] for ext in exts if ext["deliver"]):
        if not is_valid_literal_subject(pfx.encode()):
            raise api_error("StreamInvalidExternalDeliverySubjErrF", prefix=pfx)
        for sub in subs:
            if subjects_collide(sub.encode(), f"{pfx}.{sub}".encode()):
                raise api_error("StreamExternalDelPrefixOverlapsErrF", prefix=pfx, subject=sub)
    for pfx in (ext["api"] for ext in exts if ext["api"]):
        if not is_valid_literal_subject(pfx.encode()):
            raise _invalid(f"stream external api prefix {gofmt.go_quote(pfx)} must be a valid subject "
                           "without wildcards")
        if subjects_collide(pfx.encode(), b"$JS.API"):
            raise api_error("StreamExternalApiOverlapErrF", prefix=pfx, subject="$JS.API")


def _check_source_transforms(ss, kind):
    """Go (2.10): the subject_transforms of a mirror (`kind` "Mirror") or source ("Source")."""
    trs = ss.subject_transforms
    for t in trs:
        check_transform(t["src"], t["dest"], kind + "InvalidSubjectFilter", kind + "InvalidTransformDestination")
    for i, t in enumerate(trs):
        for j, u in enumerate(trs):
            if i != j and (subjects_collide(t["src"].encode(), u["src"].encode()) if kind == "Mirror"
                           else subject_is_subset_match(t["src"].encode(), u["src"].encode())):
                raise api_error(kind + "OverlappingSubjectFilters")


def _check_origin(streams, cfg, ss, kind, too_big, recovering):
    """Go: the checks of a mirror or source against its origin stream, when it exists."""
    if kind == "mirror" and not is_valid_name(ss.name):
        raise api_error("MirrorInvalidStreamName")
    origin = streams.get(ss.name)
    if origin is None:
        return
    ocfg = origin.cfg
    if cfg.max_msg_size > 0 and ocfg.max_msg_size > 0 and cfg.max_msg_size < ocfg.max_msg_size:
        raise api_error(too_big)
    filt = ss.filter_subject
    if not recovering and filt and ocfg.subjects and \
            not any(subjects_collide(s.encode(), filt.encode()) for s in ocfg.subjects):
        raise _invalid(f"{kind} '{ss.name}' filter subject '{filt}' does not overlap with any origin stream subject")


def check_republish_cfg(cfg):
    """Go: the republish checks of checkStreamCfg (2.9.10's texts). An empty `src` is `>`."""
    rp = cfg.republish
    src = rp.get("src") or ">"
    rp = {"src": src, **{k: v for k, v in rp.items() if k != "src"}}
    cfg.republish = rp
    if not any(subjects_collide(src.encode(), s.encode()) for s in cfg.subjects):
        raise _invalid("stream configuration for republish source is not valid subset of subjects")
    if any(subjects_collide(rp["dest"].encode(), s.encode()) for s in cfg.subjects):
        raise _invalid("stream configuration for republish destination forms a cycle")
    try:
        SubjectTransform(src, rp["dest"])
    except TransformError:
        raise _invalid("stream configuration for republish not valid") from None


def config_update_check(jsa, old, new):
    """Go: jsAccount.configUpdateCheck. The updated config; raises ApiError."""
    cfg = check_stream_cfg(jsa, new)
    if cfg.name != old.name:
        raise _invalid("stream configuration name must match original")
    if cfg.max_consumers != old.max_consumers:
        raise _invalid("stream configuration update can not change MaxConsumers")
    if cfg.storage != old.storage:
        raise _invalid("stream configuration update can not change storage type")
    if cfg.retention != old.retention:
        raise _invalid("stream configuration update can not change retention policy")
    if cfg.template_owner:
        raise _invalid("stream configuration update can not be owned by a template")
    if not cfg.sealed and old.sealed:
        raise _invalid("stream configuration update can not unseal a sealed stream")
    if not cfg.deny_delete and old.deny_delete:
        raise _invalid("stream configuration update can not cancel deny message deletes")
    if not cfg.deny_purge and old.deny_purge:
        raise _invalid("stream configuration update can not cancel deny purge")
    if (cfg.mirror and cfg.mirror.to_dict()) != (old.mirror and old.mirror.to_dict()):
        raise api_error("StreamMirrorNotUpdatable")
    if cfg.republish != old.republish:
        raise _invalid("stream configuration update can not change RePublish")
    if old.allow_msg_ttl and not cfg.allow_msg_ttl:
        raise _invalid("message TTL status can not be disabled")
    if cfg.sealed:
        cfg.max_age = 0
        cfg.discard = DISCARD_NEW
        cfg.deny_delete = cfg.deny_purge = True
        cfg.allow_rollup_hdrs = False
    # Go: only the growth of max_bytes is reserved anew.
    new_max_bytes = cfg.max_bytes
    offset = 0
    if old.max_bytes > 0 and cfg.num_replicas > old.num_replicas:
        offset = old.max_bytes * (cfg.num_replicas - old.num_replicas)
    cfg.max_bytes = max(cfg.max_bytes - old.max_bytes, 0)
    reserved = jsa.tiered_reservation(cfg) + old.num_replicas * old.max_bytes
    jsa.js.check_all_limits(jsa.limits, cfg, reserved, offset)
    cfg.max_bytes = new_max_bytes
    return cfg


def get_header(key, hdr):
    """Go: getHeader. The value of header `key` (case-sensitive, trimmed), or None."""
    if not hdr:
        return None
    i = hdr.find(b"\r\n" + key + b":")
    if i < 0:
        return None
    start = i + len(key) + 3
    end = hdr.find(b"\r\n", start)
    return hdr[start:end if end >= 0 else len(hdr)].strip(b" \t")


def add_headers(hdr, lines):
    """Header block `hdr` (a new one when it is empty) with `lines` appended, each
    `Key: value\r\n` (Go: genHeader for headers the message does not have)."""
    return (hdr[:-2] if hdr else b"NATS/1.0\r\n") + lines + b"\r\n"


def remove_header(hdr, key):
    """Go: removeHeaderIfPresent over a full header block (with its blank line)."""
    i = hdr.find(b"\r\n" + key + b":")
    if i < 0:
        return hdr
    end = hdr.find(b"\r\n", i + 2)
    hdr = hdr[:i] + hdr[end:]
    return b"" if hdr == b"NATS/1.0\r\n\r\n" else hdr


class Stream:
    """Go: stream. One stream of account `jsa`; made by JsAccount.add_stream."""

    def __init__(self, jsa, cfg, created, store):
        self.jsa = jsa
        self.srv = jsa.js.srv
        self.cfg = cfg
        self.created = created  # ns
        self.store = store
        self.subs = []
        self.direct_subs = []
        self.ddmap = {}  # Nats-Msg-Id -> seq (Go: ddmap)
        self.ddarr = deque()  # (ts, id), oldest first
        self.lmsg_id = ""
        self.closed = False
        self.consumers = {}  # name -> consumer.Consumer (Go: consumers, cList)
        self.num_filter = 0  # consumers with a filter (Go: numFilter)
        self.perr = None  # the ApiError of the last message refused (read by sources.py)
        self.mirror = None  # sources.SourceInfo of the mirror (Go: mset.mirror)
        self.sources = {}  # iname -> sources.SourceInfo (Go: mset.sources)
        self.followers = set()  # the SourceInfos of mirrors and sources copying this stream
        self.set_transforms()
        self.set_pub_ack()
        store.register_storage_updates(self.storage_updated)
        self.set_subject_delete_markers()

    @property
    def name(self):
        return self.cfg.name

    @property
    def acc(self):
        return self.jsa.acc  # the account may be replaced by a config reload

    def set_pub_ack(self):
        """Go: the pubAck prefix made in addStream, with Sprintf's %q and its spaces."""
        domain = self.jsa.js.domain
        name = gofmt.go_quote(self.cfg.name)
        if domain:
            self.pub_ack = f'{{"stream":{name}, "domain":{gofmt.go_quote(domain)}, "seq":'.encode()
        else:
            self.pub_ack = f'{{"stream":{name}, "seq":'.encode()

    def storage_updated(self, md, bd, seq, subj):
        """Go: storeUpdates. Keeps the account's and the server's usage; a single removal
        is passed to the consumers (their pending counts, a pending delivery of it); a stored
        message wakes the mirrors and sources copying this stream."""
        if md == -1 and seq > 0 and self.consumers:
            for o in list(self.consumers.values()):
                o.dec_stream_pending(seq, subj)
        self.jsa.update_usage(self.cfg.storage, bd)
        if md > 0 and self.followers:
            for si in self.followers:
                si.wake.set()

    # -- per-message TTL (2.11) ----------------------------------------------------------------

    def set_subject_delete_markers(self):
        """Go (2.11): with subject_delete_marker_ttl, the store hands over the last message of
        a subject when it expires."""
        self.store.sdm_cb = self.subject_delete_marker if self.cfg.subject_delete_marker_ttl > 0 else None

    def subject_delete_marker(self, seq, subj):
        """Go: handleRemovalOrSdm. The expiring message is its subject's last: a marker
        (Nats-Marker-Reason: MaxAge, with its own TTL and a subject roll-up that removes the
        message) takes its place; an expiring marker just goes."""
        try:
            sm = self.store.load_msg(seq)
        except StoreError:
            return
        if get_header(JS_MARKER_REASON, sm.hdr):
            self.store.remove_msg(seq, wait=False)
            return
        ttl = gofmt.duration_string(self.cfg.subject_delete_marker_ttl // 1_000_000_000 * 1_000_000_000)
        hdr = (b"NATS/1.0\r\n" + JS_MARKER_REASON + b": MaxAge\r\n" + JS_MESSAGE_TTL + b": " + ttl.encode() +
               b"\r\n" + JS_MSG_ROLLUP + b": " + JS_MSG_ROLLUP_SUBJECT + b"\r\n\r\n")
        self.process_jetstream_msg(subj, None, hdr, b"")

    def rebuild_ttls(self):
        """After recovery: the TTLs of the stored messages, from their Nats-TTL headers (Go
        keeps them in the store's own state)."""
        if not self.cfg.allow_msg_ttl:
            return
        store = self.store
        seq = store.fast_state().first_seq
        while True:
            sm = store.load_next_msg(b">", True, seq)
            if sm is None:
                break
            ttl = parse_message_ttl(get_header(JS_MESSAGE_TTL, sm.hdr) or b"0") if sm.hdr else 0
            if ttl:
                store.track_ttl(sm.seq, ttl)
            seq = sm.seq + 1

    # -- transforms, mirrors and sources ---------------------------------------------------------

    def set_transforms(self):
        """Go: the stream's input transform (2.10 subject_transform, Go: mset.itr) and its
        republish transform (Go: mset.tr)."""
        cfg = self.cfg
        st = cfg.subject_transform
        self.itr = SubjectTransform(st["src"] or ">", st["dest"]) if st and st["dest"] else None
        rp = cfg.republish
        self.tr = SubjectTransform(rp["src"], rp["dest"]) if rp else None

    def followers_of(self, name):
        """This stream's mirror or sources that copy the stream `name`."""
        if self.mirror is not None:
            return [self.mirror] if self.mirror.name == name else []
        return [si for si in self.sources.values() if si.name == name]

    def mirror_and_sources_info(self, d):
        """Go: mirrorInfo / sourcesInfo into a StreamInfo dict."""
        if self.mirror is not None:
            d["mirror"] = self.mirror.to_dict()
        if self.sources:
            d["sources"] = [si.to_dict() for si in self.sources.values()]

    def republish(self, subject, hdr, msg, seq, ts, tlseq):
        """Go: the republish of processJetStreamMsg (with 2.10's Nats-Time-Stamp): the stored
        message, or only its size with headers_only, to the transformed subject."""
        try:
            tsubj = self.tr.match(subject.decode("utf-8", "surrogateescape"))
        except TransformError:
            return
        name = self.cfg.name.encode()
        extra = (b"Nats-Stream: " + name + b"\r\nNats-Subject: " + subject + b"\r\nNats-Sequence: " +
                 str(seq).encode() + b"\r\nNats-Time-Stamp: " + gofmt.format_time(ts).encode() +
                 b"\r\nNats-Last-Sequence: " + str(tlseq).encode() + b"\r\n")
        if self.cfg.republish.get("headers_only"):
            extra += b"Nats-Msg-Size: " + str(len(msg)).encode() + b"\r\n"
            msg = b""
        self.send(tsubj, (add_headers(hdr, extra), msg))

    # -- subscriptions -------------------------------------------------------------------------

    def subscribe_to_stream(self):
        """Go: subscribeToStream. One internal subscription per subject; DIRECT.GET if allowed."""
        for subj in self.cfg.subjects:
            self.subs.append(self.acc.subscribe_internal(subj.encode(), self.process_inbound_jetstream_msg))
        if self.cfg.mirror is not None or self.cfg.sources:
            from .sources import setup_mirror_and_sources
            setup_mirror_and_sources(self)
        if self.cfg.allow_direct:
            self.subscribe_to_direct()

    def subscribe_to_direct(self):
        """Go: subscribeToDirect."""
        if not self.direct_subs:
            self.direct_subs = self.direct_get_subs(self.cfg.name)

    def direct_get_subs(self, name):
        """Go: subscribeToDirect / subscribeToMirrorDirect. This stream answers the DIRECT.GET
        requests of the stream `name` (its own, or its origin's for a mirror), in the queue
        group the origin and its mirrors share (Go: dgetGroup)."""
        acc = self.acc
        return [acc.subscribe_internal(f"$JS.API.DIRECT.GET.{name}".encode(), self.process_direct_get_request,
                                       DGET_GROUP),
                acc.subscribe_internal(f"$JS.API.DIRECT.GET.{name}.>".encode(),
                                       self.process_direct_get_last_by_subject_request, DGET_GROUP)]

    def unsubscribe(self, subs):
        c = self.acc.internal_client()
        for sub in subs:
            c.unsubscribe(sub)
        subs.clear()

    def unsubscribe_to_stream(self, delete):
        """Go: unsubscribeToStream. `delete`: the stream is being deleted."""
        from .sources import stop_mirror_and_sources
        self.unsubscribe(self.subs)
        self.unsubscribe(self.direct_subs)
        stop_mirror_and_sources(self, delete)

    # -- responses -----------------------------------------------------------------------------

    def send(self, reply, body):
        """Go: outq.sendMsg. Queue `body` (bytes, or (header, body)) to `reply`."""
        send_internal_msg(self.srv, reply, None, body, client=self.acc.internal_client())

    def pub_ack_error(self, reply, err):
        """Go: a JSPubAckResponse with an error: {"error":{...},"stream":name}."""
        self.perr = err
        if reply:
            resp = {"error": err.to_dict(), "stream": self.cfg.name, "seq": 0}
            self.send(reply, gofmt.marshal(resp).encode())

    def send_action_advisory(self, action):
        """Go: sendCreateAdvisory / sendDeleteAdvisoryLocked / sendUpdateAdvisoryLocked
        (`action`: "create", "delete", "modify"), published in the stream's account."""
        from ..events import _nuid
        prefix = {"create": JS_ADVISORY_STREAM_CREATED_PRE, "delete": JS_ADVISORY_STREAM_DELETED_PRE,
                  "modify": JS_ADVISORY_STREAM_UPDATED_PRE}[action]
        adv = {"type": JS_STREAM_ACTION_ADVISORY_TYPE, "id": _nuid(), "timestamp": gofmt.format_time(time.time_ns()),
               "stream": self.cfg.name, "action": action}
        if self.jsa.js.domain:
            adv["domain"] = self.jsa.js.domain
        self.send(f"{prefix}.{self.cfg.name}", gofmt.marshal(adv).encode())

    # -- the message path ----------------------------------------------------------------------

    def process_inbound_jetstream_msg(self, sub, c, acc, subject, reply, msg):
        """Go: processInboundJetStreamMsg. Runs on the publisher's greenlet; does not yield."""
        if self.closed:
            return
        if self.cfg.sealed:
            self.pub_ack_error(reply, api_error("StreamSealed"))
            return
        if self.itr is not None:
            subject = self.transform_subject(subject)
        hdr = c.pa_hdr
        if hdr > 0:
            self.process_jetstream_msg(subject, reply, msg[:hdr], msg[hdr:-2])
        else:
            self.process_jetstream_msg(subject, reply, b"", msg[:-2])

    def transform_subject(self, subject):
        """Go (2.10): the stream's subject_transform on a published subject (unchanged if it
        does not match)."""
        try:
            return self.itr.match(subject.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        except TransformError:
            return subject

    def process_jetstream_msg(self, subject, reply, hdr, msg, lseq=0, ts=0, sourced=False):
        """Go: processJetStreamMsg, for one server. Does not yield. A mirror passes the
        origin's sequence - 1 and time (`lseq`, `ts`); a source sets `sourced`."""
        cfg = self.cfg
        store = self.store
        can_respond = not cfg.no_ack and bool(reply)
        reply = reply if can_respond else None
        msg_id = ""
        rollup = None
        ttl = 0
        if hdr:
            hdr = remove_header(hdr, CLIENT_INFO_HDR)
        if hdr:
            sname = get_header(JS_EXPECTED_STREAM, hdr)
            if sname and sname.decode("utf-8", "replace") != cfg.name:
                self.pub_ack_error(reply, api_error("StreamNotMatch"))
                return
            mid = get_header(JS_MSG_ID, hdr)
            if mid:
                msg_id = mid.decode("utf-8", "surrogateescape")
                seq = self.check_msg_id(msg_id)
                if seq is not None:
                    if reply:
                        self.send(reply, self.pub_ack + str(seq).encode() + b',"duplicate": true}')
                    return
            bseq = get_header(JS_EXPECTED_LAST_SUBJ_SEQ, hdr)
            if bseq:
                want_seq = _parse_seq(bseq)
                try:
                    fseq = store.load_last_msg(subject).seq
                except StoreError:
                    fseq = 0
                if fseq != want_seq:
                    self.pub_ack_error(reply, api_error("StreamWrongLastSequenceErrF", seq=fseq))
                    return
            bseq = get_header(JS_EXPECTED_LAST_SEQ, hdr)
            if bseq:
                last = store.fast_state().last_seq
                if _parse_seq(bseq) != last:
                    self.pub_ack_error(reply, api_error("StreamWrongLastSequenceErrF", seq=last))
                    return
            lid = get_header(JS_EXPECTED_LAST_MSG_ID, hdr)
            if lid:
                if lid.decode("utf-8", "surrogateescape") != self.lmsg_id:
                    self.pub_ack_error(reply, api_error("StreamWrongLastMsgIDErrF", id=self.lmsg_id))
                    return
            rollup = get_header(JS_MSG_ROLLUP, hdr)
            if rollup:
                if not cfg.allow_rollup_hdrs or cfg.deny_purge:
                    self.pub_ack_error(reply, api_error("StreamRollupFailedF", "rollup not permitted"))
                    return
                if rollup not in (JS_MSG_ROLLUP_SUBJECT, JS_MSG_ROLLUP_ALL):
                    return  # Go: "rollup value invalid", no answer
            ttl = get_header(JS_MESSAGE_TTL, hdr)
            if ttl:
                ttl = parse_message_ttl(ttl)
                if ttl is None:
                    self.pub_ack_error(reply, api_error("MessageTTLInvalid"))
                    return
                if ttl and not cfg.allow_msg_ttl:
                    if not sourced and not ts:
                        self.pub_ack_error(reply, api_error("MessageTTLDisabled"))
                        return
                    ttl = 0  # Go: a copied message keeps its header, its TTL does not apply
                sdm = cfg.subject_delete_marker_ttl // 1_000_000_000
                if 0 < ttl < sdm and cfg.max_msgs_per_subject != 1:
                    # Go: no message outlives its subject's delete marker
                    ttl = sdm
                    hdr = remove_header(hdr, JS_MESSAGE_TTL)
                    hdr = add_headers(hdr, JS_MESSAGE_TTL + b": " + str(ttl).encode() + b"\r\n")
        if cfg.max_msg_size >= 0 and len(hdr) + len(msg) > cfg.max_msg_size:
            self.pub_ack_error(reply, api_error("StreamMessageExceedsMaximum"))
            return
        if len(hdr) > MAX_HDR:
            self.pub_ack_error(reply, api_error("StreamHeaderExceedsMaximum"))
            return
        if self.jsa.js.limits_exceeded(cfg.storage):
            log.error("JetStream resource limits exceeded for server")
            self.pub_ack_error(reply, api_error("InsufficientResources"))
            return
        if cfg.retention == INTEREST_POLICY and self.no_interest(subject):
            # Go: no interest, nothing to keep: the sequence is used, the message dropped.
            seq = store.skip_msg(wait=False)
            self.lmsg_id = msg_id
            if msg_id:
                self.store_msg_id(msg_id, seq, time.time_ns())
            if reply:
                store.on_synced(self._acked, reply, seq)
            return
        olmsg_id = self.lmsg_id
        self.lmsg_id = msg_id
        tlseq = store.filtered_state(0, subject).last if self.tr is not None else 0
        try:
            if ts:
                seq = lseq + 1
                store.store_raw_msg(subject, hdr, msg, seq, ts, wait=False)
            else:
                seq, ts = store.store_msg(subject, hdr, msg, wait=False)
        except (StoreError, OSError) as e:
            self.lmsg_id = olmsg_id
            if isinstance(e, OSError):
                log.error("JetStream failed to store a msg on stream '%s > %s': %s", self.acc.name, cfg.name, e)
            elif not isinstance(e, ErrStoreClosed):
                log.debug("JetStream failed to store a msg on stream '%s > %s': %s", self.acc.name, cfg.name, e)
            self.pub_ack_error(reply, api_error("StreamStoreFailedF", e))
            return
        if self.jsa.limits_exceeded(cfg.storage):
            log.warning("JetStream resource limits exceeded for account: %s", gofmt.go_quote(self.acc.name))
            self.pub_ack_error(reply, api_error("AccountResourcesExceeded"))
            self.lmsg_id = olmsg_id
            store.remove_msg(seq, wait=False)
            return
        if msg_id:
            self.store_msg_id(msg_id, seq, ts)
        if rollup and seq > 1:
            # Go: purge with keep 1 right after storing, which is everything older than this
            # message (on its subject for "sub"); without waiting, the ack's sync covers it.
            subj = subject if rollup == JS_MSG_ROLLUP_SUBJECT else b""
            store.purge_ex(subj, seq, 0, wait=False)
        if ttl:
            store.track_ttl(seq, ttl)
        if self.tr is not None:
            self.republish(subject, hdr, msg, seq, ts, tlseq)
        if reply:
            store.on_synced(self._acked, reply, seq)
        if self.consumers:
            self.signal_consumers(subject, seq)

    # -- consumers -----------------------------------------------------------------------------

    def num_consumers(self):
        """Go: numConsumers."""
        return len(self.consumers)

    def num_public_consumers(self):
        """Go: numPublicConsumers (those not `direct`)."""
        return sum(1 for o in self.consumers.values() if not o.cfg.direct)

    def public_consumers(self):
        """Go: getPublicConsumers, sorted by name."""
        return sorted((o for o in self.consumers.values() if not o.cfg.direct), key=lambda o: o.name)

    def set_consumer(self, o):
        """Go: setConsumer."""
        self.consumers[o.name] = o
        if o.filters:
            self.num_filter += 1

    def remove_consumer(self, o):
        """Go: removeConsumer."""
        if self.consumers.get(o.name) is o:
            del self.consumers[o.name]
            if o.filters and self.num_filter > 0:
                self.num_filter -= 1

    def no_interest(self, subject):
        """Go: processJetStreamMsg's noInterest for interest retention: no consumer, or none
        whose filter takes `subject`. A mirror or source copying this stream counts (Go: its
        internal consumer)."""
        for si in self.followers:
            if si.wants(subject):
                return False
        if not self.consumers:
            return True
        if self.num_filter == 0:
            return False
        return not any(not o.filters or o.is_filtered_match(subject) for o in self.consumers.values())

    def signal_consumers(self, subject, seq):
        """Go: signalConsumers, inline: each consumer whose filter takes `subject` learns of
        `seq` (a counter and an Event; nothing yields)."""
        for o in self.consumers.values():
            if not o.filters or o.is_filtered_match(subject):
                o.process_stream_signal(seq)

    def partition_unique(self, partitions):
        """Go: partitionUnique (2.10: several filters). No consumer's filter overlaps."""
        for o in self.consumers.values():
            if not o.filters:
                return False
            for f, _ in o.filters:
                for p in partitions:
                    p = p.encode()
                    if subject_is_subset_match(p, f) or subject_is_subset_match(f, p):
                        return False
        return True

    def potential_filtered_consumers(self):
        """Go: potentialFilteredConsumers."""
        subjects = self.cfg.subjects
        if not self.consumers or not subjects:
            return False
        return len(subjects) > 1 or subject_has_wildcard(subjects[0].encode())

    def check_interest(self, seq, obs):
        """Go: checkInterest. Whether a consumer, or a mirror or source copying this stream
        (sources.SourceInfo), other than `obs` still needs `seq`."""
        subj = b""
        if self.potential_filtered_consumers():
            try:
                subj = self.store.load_msg(seq).subj
            except StoreError:
                return False
        if any(o is not obs and o.need_ack(seq, subj) for o in self.consumers.values()):
            return True
        return any(si is not obs and si.need_ack(seq, subj) for si in self.followers)

    def cleanup_no_interest(self, first):
        """Go: the interest clean-up of a consumer's delete. Remove the messages from `first`
        on that nobody needs any more. Does not yield."""
        st = self.store.fast_state()
        rm = [seq for seq in range(max(first, st.first_seq), st.last_seq + 1) if not self.check_interest(seq, None)]
        for seq in rm:
            try:
                self.store.remove_msg(seq, wait=False)
            except StoreError:
                pass

    def ack_msg(self, o, seq):
        """Go: ackMsg. A consumer (or a mirror or source, as Go's AckNone consumer) acked `seq`
        on an interest or work-queue stream: remove it once nobody else needs it. Does not
        yield."""
        retention = self.cfg.retention
        if retention == LIMITS_POLICY:
            return
        if seq < self.store.fast_state().first_seq:
            return
        if retention == WORK_QUEUE_POLICY:
            directs = self.followers or any(c.cfg.direct for c in self.consumers.values())
            should_remove = not directs or not self.check_interest(seq, o)
        else:
            should_remove = not self.check_interest(seq, o)
        if should_remove:
            try:
                self.store.remove_msg(seq, wait=False)
            except StoreError:
                pass

    def _acked(self, err, reply, seq):
        """The store has `seq` on disk (or failed to): answer the publisher."""
        if err is None:
            self.send(reply, self.pub_ack + str(seq).encode() + b"}")
        else:
            self.pub_ack_error(reply, api_error("StreamStoreFailedF", err))

    # -- dedupe --------------------------------------------------------------------------------

    def purge_msg_ids(self, now):
        """Go: purgeMsgIds, done lazily: forget ids older than the duplicate window."""
        window = self.cfg.duplicate_window
        ddarr, ddmap = self.ddarr, self.ddmap
        while ddarr and now - ddarr[0][0] > window:
            _, mid = ddarr.popleft()
            ddmap.pop(mid, None)

    def check_msg_id(self, msg_id):
        """Go: checkMsgId. The sequence of an earlier message with this id, or None."""
        if not self.ddmap:
            return None
        self.purge_msg_ids(time.time_ns())
        return self.ddmap.get(msg_id)

    def store_msg_id(self, msg_id, seq, ts):
        """Go: storeMsgId."""
        if self.cfg.duplicate_window <= 0:
            return
        self.purge_msg_ids(ts)
        self.ddmap[msg_id] = seq
        self.ddarr.append((ts, msg_id))

    def rebuild_dedupe(self):
        """Go: rebuildDedupe. After recovery, the ids of the messages inside the window."""
        window = self.cfg.duplicate_window
        if window <= 0:
            return
        store = self.store
        start = store.get_seq_from_time(time.time_ns() - window)
        last = store.fast_state().last_seq
        seq = start
        while seq <= last:
            sm = store.load_next_msg(b">", True, seq)
            if sm is None:
                break
            mid = get_header(JS_MSG_ID, sm.hdr)
            if mid:
                self.store_msg_id(mid.decode("utf-8", "surrogateescape"), sm.seq, sm.ts)
                self.lmsg_id = mid.decode("utf-8", "surrogateescape")
            seq = sm.seq + 1

    # -- API operations ------------------------------------------------------------------------

    def state_dict(self, details=False):
        """Go: stateWithDetail, as JSON."""
        st = self.store.state() if details else self.store.fast_state()
        d = {"messages": st.msgs, "bytes": st.bytes, "first_seq": st.first_seq, "first_ts": format_ts(st.first_ts),
             "last_seq": st.last_seq, "last_ts": format_ts(st.last_ts)}
        if st.num_subjects:
            d["num_subjects"] = st.num_subjects
        if st.num_deleted:
            d["num_deleted"] = st.num_deleted
        if details and st.deleted:
            d["deleted"] = list(st.deleted)
        if st.lost is not None and (st.lost.msgs or st.lost.bytes):
            d["lost"] = {"msgs": list(st.lost.msgs) or None, "bytes": st.lost.bytes}
        d["consumer_count"] = self.num_consumers()
        return d

    def info(self, details=False):
        """Go: StreamInfo {config, created, state, domain?}."""
        d = {"config": self.cfg.to_dict(), "created": gofmt.format_time(self.created),
             "state": self.state_dict(details)}
        if self.jsa.js.domain:
            d["domain"] = self.jsa.js.domain
        self.mirror_and_sources_info(d)
        return d

    def update(self, cfg):
        """Go: stream.update. `cfg` passed config_update_check. May yield (the meta file)."""
        old = self.cfg
        self.cfg = cfg
        self.set_transforms()
        self.set_subject_delete_markers()
        if [s.to_dict() for s in cfg.sources or ()] != [s.to_dict() for s in old.sources or ()]:
            from .sources import update_sources
            update_sources(self)
        if cfg.subjects != old.subjects:
            self.unsubscribe(self.subs)
            for subj in cfg.subjects:
                self.subs.append(self.acc.subscribe_internal(subj.encode(), self.process_inbound_jetstream_msg))
        if cfg.allow_direct and not old.allow_direct:
            self.subscribe_to_direct()
        elif not cfg.allow_direct and old.allow_direct:
            self.unsubscribe(self.direct_subs)
        self.store.update_config(cfg)
        self.write_stream_meta()
        self.send_action_advisory("modify")

    def purge(self, req):
        """Go: stream.purge. `req`: the decoded request ({} or None for everything).
        Returns how many messages went. May yield."""
        if self.closed:
            raise ErrStoreClosed()
        subject = req.get("filter", "") if req else ""
        seq = req.get("seq", 0) if req else 0
        keep = req.get("keep", 0) if req else 0
        if not subject and not seq and not keep:
            purged = self.store.purge()
        else:
            purged = self.store.purge_ex(subject.encode(), seq, keep)
        st = self.store.fast_state()
        fseq, lseq = st.first_seq, st.last_seq
        if subject:
            fseq = self.store.filtered_state(st.first_seq, subject.encode()).first
        for o in list(self.consumers.values()):
            if subject and not o.is_filtered_match(subject.encode()):
                continue
            o.purge(fseq, lseq)
        return purged

    def delete_msg(self, seq, no_erase):
        """Go: deleteMsg / eraseMsg. May yield."""
        if self.closed:
            raise ErrStoreClosed()
        return self.store.remove_msg(seq) if no_erase else self.store.erase_msg(seq)

    def stop(self, delete):
        """Go: stream.stop. Unsubscribe, then stop the store or remove it. May yield."""
        if self.closed:
            return
        self.closed = True
        self.unsubscribe_to_stream(delete)
        for o in list(self.consumers.values()):
            o.stop_with_flags(delete, delete, stream_gone=True)
        self.consumers.clear()
        for si in self.followers:
            si.wake.set()  # they find the stream gone
        if delete:
            self.send_action_advisory("delete")
            self.store.delete()  # a file store removes its directory, meta files included
        else:
            self.store.stop()

    def write_stream_meta(self):
        """Go: writeStreamMeta. meta.inf holds Go's FileStreamInfo JSON (created, then the
        config's fields); meta.sum the SHA-256 of it in hex (Go: a keyed HighwayHash).
        May yield."""
        if self.cfg.storage != FILE_STORAGE:
            return
        write_meta(self.jsa.stream_dir(self.cfg.name), self.created, self.cfg.to_dict())

    # -- DIRECT.GET ----------------------------------------------------------------------------

    def process_direct_get_request(self, sub, c, acc, subject, reply, msg):
        """Go: processDirectGetRequest."""
        if not reply:
            return
        hdr = c.pa_hdr
        body = msg[hdr:-2] if hdr > 0 else msg[:-2]
        if not body:
            self.send(reply, (b"NATS/1.0 408 Empty Request\r\n\r\n", b""))
            return
        try:
            req = decode_json(body)
            seq = want(req, "seq", int, 0, 0, 2**64 - 1)
            last_for = want(req, "last_by_subj", str, "")
            next_for = want(req, "next_by_subj", str, "")
        except BadJSON:
            self.send(reply, (b"NATS/1.0 408 Malformed Request\r\n\r\n", b""))
            return
        if seq == 0 and not last_for and not next_for:
            self.send(reply, (b"NATS/1.0 408 Empty Request\r\n\r\n", b""))
            return
        if (seq > 0 and last_for) or (last_for and next_for):
            self.send(reply, (b"NATS/1.0 408 Bad Request\r\n\r\n", b""))
            return
        self.get_direct_request(seq, last_for, next_for, reply)

    def process_direct_get_last_by_subject_request(self, sub, c, acc, subject, reply, msg):
        """Go: processDirectGetLastBySubjectRequest. The subject after the stream's name."""
        if not reply:
            return
        hdr = c.pa_hdr
        body = msg[hdr:-2] if hdr > 0 else msg[:-2]
        key = subject.split(b".", 5)[5:] if subject.count(b".") >= 5 else []
        if body or not key or not key[0]:
            self.send(reply, (b"NATS/1.0 408 Bad Request\r\n\r\n", b""))
            return
        self.get_direct_request(0, key[0].decode("utf-8", "surrogateescape"), "", reply)

    def get_direct_request(self, seq, last_for, next_for, reply):
        """Go: getDirectRequest. The message with Nats-Stream/-Subject/-Sequence/-Time-Stamp."""
        sm = self.load(seq, last_for, next_for)
        if sm is None:
            self.send(reply, (b"NATS/1.0 404 Message Not Found\r\n\r\n", b""))
            return
        ts = gofmt.format_time(sm.ts).encode()
        extra = (b"Nats-Stream: " + self.cfg.name.encode() + b"\r\nNats-Subject: " + sm.subj +
                 b"\r\nNats-Sequence: " + str(sm.seq).encode() + b"\r\nNats-Time-Stamp: " + ts + b"\r\n")
        self.send(reply, (add_headers(sm.hdr, extra), sm.msg))

    def load(self, seq, last_for, next_for):
        """The message a MSG.GET or DIRECT.GET asks for, or None."""
        store = self.store
        try:
            if seq > 0 and not next_for:
                return store.load_msg(seq)
            if next_for:
                nf = next_for.encode()
                return store.load_next_msg(nf, subject_has_wildcard(nf), seq)
            return store.load_last_msg(last_for.encode())
        except StoreError:
            return None


def parse_message_ttl(b):
    """Go (2.11): parseMessageTTL of a Nats-TTL value: seconds (> 0), -1 for "never", 0 for
    none; None when invalid. A duration ("1h", "90s") must be at least a second; else a
    plain count of seconds."""
    s = b.decode("utf-8", "replace")
    if s.lower() == "never":
        return -1
    try:
        secs = parse_go_duration(s)
    except ValueError:
        return int(b) if b.isdigit() else None
    return int(secs) if secs >= 1 else None


def _parse_seq(b):
    """Go: uint64(parseInt64(b)): decimal digits only, else -1 (which no sequence equals)."""
    return int(b) if b.isdigit() else -1


def _write_file(path, data):
    """Write `path` whole or not at all. May yield: the fsync runs in the hub's thread pool."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        run_blocking(os.fsync, f.fileno())
    os.replace(tmp, path)


def stored_msg_dict(sm):
    """Go: StoredMsg in JSON: subject, seq, hdrs?, data?, time."""
    d = {"subject": sm.subj.decode("utf-8", "surrogateescape"), "seq": sm.seq}
    if sm.hdr:
        d["hdrs"] = base64.b64encode(sm.hdr).decode()
    if sm.msg:
        d["data"] = base64.b64encode(sm.msg).decode()
    d["time"] = gofmt.format_time(sm.ts)
    return d


def new_store(jsa, cfg):
    """The store for a stream's config: MemStore, or a FileStore in its directory."""
    if cfg.storage == MEMORY_STORAGE:
        return MemStore(cfg)
    fcfg = FileStoreConfig(jsa.stream_dir(cfg.name), sync_interval=jsa.js.sync_interval)
    return FileStore(fcfg, cfg)


def write_meta(path, created, cfg):
    """Go: writeStreamMeta / writeConsumerMeta. `path`/meta.inf holds the creation time and
    the config (`cfg`, a dict in Go's field order) as Go's JSON; meta.sum the SHA-256 of it
    in hex (Go: a keyed HighwayHash). May yield."""
    d = {"created": gofmt.format_time(created)}
    d.update(cfg)
    data = gofmt.marshal(d).encode()
    os.makedirs(path, exist_ok=True)
    _write_file(os.path.join(path, STREAM_META_FILE), data)
    _write_file(os.path.join(path, STREAM_META_SUM), hashlib.sha256(data).hexdigest().encode())


def read_meta(path):
    """Go: the meta file checks of stream and consumer recovery. (created ns, the decoded
    config dict) of a meta.inf that meta.sum vouches for; raises OSError or ValueError."""
    with open(os.path.join(path, STREAM_META_FILE), "rb") as f:
        data = f.read()
    with open(os.path.join(path, STREAM_META_SUM), "rb") as f:
        want_sum = f.read().strip()
    if hashlib.sha256(data).hexdigest().encode() != want_sum:
        raise ValueError("meta checksum mismatch")
    d = decode_json(data)
    return parse_go_time(d.get("created", "")), d


def load_stream_meta(sdir):
    """A stream's meta file: (created ns, StreamConfig); raises ValueError when missing or
    corrupt."""
    created, d = read_meta(sdir)
    return created, StreamConfig.from_dict(d)


def parse_go_time(s):
    """A JSON time.Time (RFC 3339; the zero time and "" give 0) -> ns. Raises ValueError."""
    if not s or s == ZERO_TIME:
        return 0
    return parse_rfc3339(s)


_RFC3339 = re.compile(r"(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d\d):(\d\d))\Z")


def parse_rfc3339(s):
    """Go: time.Time's UnmarshalJSON (RFC 3339 with an optional fraction) -> ns since the
    epoch. Raises ValueError."""
    m = _RFC3339.match(s)
    if m is None:
        raise ValueError(f"invalid time {s!r}")
    y, mo, d, h, mi, sec = (int(m.group(i)) for i in range(1, 7))
    secs = calendar.timegm((y, mo, d, h, mi, sec, 0, 0, 0))
    if m.group(9):
        off = int(m.group(10)) * 3600 + int(m.group(11)) * 60
        secs -= off if m.group(9) == "+" else -off
    return secs * 1_000_000_000 + int((m.group(7) or "").ljust(9, "0"))


__all__ = ["ApiError", "BadJSON", "Stream", "StreamConfig", "check_stream_cfg", "config_update_check"]
