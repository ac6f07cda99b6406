"""The JetStream API: `$JS.API.>` requests and their JSON answers.

Ports the stream half of nats-server `server/jetstream_api.go` as 2.9.10 has it:
jsAccountInfoRequest ($JS.API.INFO), jsStreamCreateRequest, jsStreamUpdateRequest,
jsStreamNamesRequest, jsStreamListRequest, jsStreamInfoRequest, jsStreamDeleteRequest,
jsStreamPurgeRequest, jsMsgDeleteRequest, jsMsgGetRequest, and the consumer half:
jsConsumerCreateRequest (`CONSUMER.CREATE.<stream>`, `.<consumer>`, `.<consumer>.<filter>`
and `CONSUMER.DURABLE.CREATE.<stream>.<consumer>`, with 2.10's create/update `action`),
jsConsumerInfoRequest, jsConsumerDeleteRequest, jsConsumerNamesRequest, jsConsumerListRequest
and 2.11's jsConsumerPauseRequest, with Go's response types, paging limits and error
envelopes (`{"type", "error": {"code", "err_code", "description"}}`). Pull requests
(`CONSUMER.MSG.NEXT`) go to the consumer's own subscription (consumer.py), not here.

How requests arrive (a difference from Go, not visible to clients): Go subscribes the system
account to `$JS.API.>`, exports it, and has every JetStream account import it, so requests
reach one dispatcher with a Nats-Request-Info header naming the account. gnatsd subscribes
each JetStream-enabled account's internal client to `$JS.API.>` instead (set_jetstream_export_subs),
so the account is known without the header. /accountz therefore lists no `$JS.API.>` import,
and the subscription counts of an account include that one subscription (see DIFFERENCES.md).

Every answer but a found MSG.GET is counted in the API stats and audited on
`$JS.EVENT.ADVISORY.API` (Go: sendAPIResponse, sendJetStreamAPIAuditAdvisory), with the
requester's account, round-trip time and this server as its client info.

Requests are queued and handled in one greenlet (Go: jsAPIRoutedReqs, which Go uses for
requests from routes): creating, purging or deleting a file stream waits for the disk, and
a publisher's readloop must not. Answers go out through events.send_internal_msg from the
account's internal client. Unknown API subjects get no answer, as in Go.
"""
from __future__ import annotations

import logging
import time

import gevent

from .. import gofmt
from ..events import send_internal_msg
from ..fs.store import FILE_STORAGE, ErrStoreEOF, ErrStoreMsgNotFound, StoreError
from ..sublist import subjects_collide
from .consumer import ConsumerConfig, add_consumer
from .errors import ApiError, api_error
from .stream import (
    ZERO_TIME, BadJSON, StreamConfig, check_stream_cfg, config_update_check, decode_json, format_ts, stored_msg_dict,
    want,
)

log = logging.getLogger("gnatsd")

JS_API_PREFIX = "$JS.API"
JS_ALL_API = b"$JS.API.>"
JS_AUDIT_ADVISORY = "$JS.EVENT.ADVISORY.API"  # Go: JSAuditAdvisory
JS_API_AUDIT_TYPE = "io.nats.jetstream.advisory.v1.api_audit"
JS_API_NAMES_LIMIT = 1024  # Go: JSApiNamesLimit
JS_API_LIST_LIMIT = 256  # Go: JSApiListLimit
JS_MAX_SUBJECT_DETAILS = 100_000  # Go: JSMaxSubjectDetails
UINT64_MAX = 2**64 - 1

T = "io.nats.jetstream.api.v1."
JS_API_ACCOUNT_INFO_RESPONSE_TYPE = T + "account_info_response"
JS_API_STREAM_CREATE_RESPONSE_TYPE = T + "stream_create_response"
JS_API_STREAM_UPDATE_RESPONSE_TYPE = T + "stream_update_response"
JS_API_STREAM_DELETE_RESPONSE_TYPE = T + "stream_delete_response"
JS_API_STREAM_INFO_RESPONSE_TYPE = T + "stream_info_response"
JS_API_STREAM_NAMES_RESPONSE_TYPE = T + "stream_names_response"
JS_API_STREAM_LIST_RESPONSE_TYPE = T + "stream_list_response"
JS_API_STREAM_PURGE_RESPONSE_TYPE = T + "stream_purge_response"
JS_API_MSG_DELETE_RESPONSE_TYPE = T + "stream_msg_delete_response"
JS_API_MSG_GET_RESPONSE_TYPE = T + "stream_msg_get_response"
JS_API_CONSUMER_CREATE_RESPONSE_TYPE = T + "consumer_create_response"
JS_API_CONSUMER_DELETE_RESPONSE_TYPE = T + "consumer_delete_response"
JS_API_CONSUMER_INFO_RESPONSE_TYPE = T + "consumer_info_response"
JS_API_CONSUMER_NAMES_RESPONSE_TYPE = T + "consumer_names_response"
JS_API_CONSUMER_LIST_RESPONSE_TYPE = T + "consumer_list_response"
JS_API_CONSUMER_PAUSE_RESPONSE_TYPE = T + "consumer_pause_response"
JS_API_REQUEST_NEXT_PRE = b"$JS.API.CONSUMER.MSG.NEXT."


def set_jetstream_export_subs(jsa):
    """Go: setJetStreamExportSubs, per account: the `$JS.API.>` subscription, whose callback
    queues the request for the API greenlet. Does not yield."""
    js = jsa.js
    if js.api_loop is None:
        js.api_loop = gevent.spawn(api_loop, js)

    def api_dispatch(sub, c, acc, subject, reply, msg):
        if subject.startswith(JS_API_REQUEST_NEXT_PRE):
            return  # the consumer's own subscription answers
        hdr = c.pa_hdr
        body = msg[hdr:-2] if hdr > 0 else msg[:-2]
        # Go: the ClientInfo of the Nats-Request-Info header, for the audit advisory.
        ci = {"acc": c.acc.name}
        rtt = int(c.rtt * 1e9)
        if rtt:
            ci["rtt"] = rtt
        ci["server"] = js.srv.name
        js.apiq.append((jsa, subject.decode("utf-8", "surrogateescape"),
                        reply.decode("utf-8", "surrogateescape") if reply else "", body, ci))
        js.api_wake.set()

    jsa.api_sub = jsa.acc.subscribe_internal(JS_ALL_API, api_dispatch)
    if js.domain:
        add_domain_mappings(jsa.acc, js.domain)


# Go: generateJSMappingTable. What `$JS.<domain>.API.<suffix>` maps to.
JS_DOMAIN_MAPPINGS = {
    "INFO": "$JS.API.INFO", "STREAM.>": "$JS.API.STREAM.>", "CONSUMER.>": "$JS.API.CONSUMER.>",
    "DIRECT.>": "$JS.API.DIRECT.>", "META.>": "$JS.API.META.>", "SERVER.>": "$JS.API.SERVER.>",
    "ACCOUNT.>": "$JS.API.ACCOUNT.>", "$KV.>": "$KV.>", "$OBJ.>": "$OBJ.>",
}


def add_domain_mappings(acc, domain):
    """Go: the domain part of enableAllJetStreamServiceImportsAndMappings: clients of this
    server reach its API under `$JS.<domain>.API` too; mappings the account has keep theirs."""
    from ..transform import add_mapping
    if acc.mappings is None:
        acc.mappings = []
    have = {m.src for m in acc.mappings}
    for suffix, dest in JS_DOMAIN_MAPPINGS.items():
        src = f"$JS.{domain}.API.{suffix}"
        if src not in have:
            add_mapping(acc.mappings, src, dest)


def api_loop(js):
    """Go: processJSAPIRoutedRequests. Handle queued requests in order. A greenlet."""
    while True:
        js.api_wake.wait()
        js.api_wake.clear()
        while js.apiq:
            batch, js.apiq = js.apiq, []
            for jsa, subject, reply, body, ci in batch:
                if jsa.acc.js is not jsa:
                    continue  # JetStream stopped for this account meanwhile
                js.request = (subject, body, ci)  # for the audit advisory of its answer
                try:
                    handle_request(jsa, subject, reply, body)
                except Exception:  # noqa: BLE001 - a bug must not stop the API
                    log.exception("JetStream API request on %s failed", subject)


def stop_api(js):
    """Stop the API greenlet (JetStream shutdown); queued requests get no answer."""
    if js.api_loop is not None:
        js.api_loop.kill(block=False)
        js.api_loop = None


# Go: the requests only a cluster can carry out (jsStreamLeaderStepDownRequest,
# jsStreamRemovePeerRequest, jsConsumerLeaderStepDownRequest): (tokens 2-4, token count) ->
# the response type. One server answers them ClusterRequired.
_CLUSTER_ONLY = {
    ("STREAM", "LEADER", "STEPDOWN", 6): T + "stream_leader_stepdown_response",
    ("STREAM", "PEER", "REMOVE", 6): T + "stream_remove_peer_response",
    ("CONSUMER", "LEADER", "STEPDOWN", 7): T + "consumer_leader_stepdown_response",
}


def handle_request(jsa, subject, reply, body):
    """Go: apiDispatch's table (js.apiSubs): the handler for `subject`, if any."""
    tokens = subject.split(".")
    n = len(tokens)
    if n == 3 and tokens[2] == "INFO":
        return js_account_info_request(jsa, reply, body)
    if n >= 6:
        rtype = _CLUSTER_ONLY.get((tokens[2], tokens[3], tokens[4], n))
        if rtype is not None:
            return error_response(jsa, reply, rtype, api_error("ClusterRequired"))
    if n >= 5 and tokens[2] == "CONSUMER":
        return consumer_request(jsa, tokens, subject, reply, body)
    if n < 4 or tokens[2] != "STREAM":
        return None
    op = tokens[3]
    if n == 4:
        if op == "NAMES":
            return js_stream_names_request(jsa, reply, body)
        if op == "LIST":
            return js_stream_list_request(jsa, reply, body)
        return None
    if n == 5:
        handler = _STREAM_HANDLERS.get(op)
        if handler is None and op in ("SNAPSHOT", "RESTORE"):
            from . import snapshot  # its own module, answering through this one's helpers
            handler = snapshot.js_stream_snapshot_request if op == "SNAPSHOT" else snapshot.js_stream_restore_request
        if handler is not None:
            handler(jsa, tokens[4], reply, body)
        return None
    if n == 6 and op == "MSG":
        if tokens[4] == "DELETE":
            return js_msg_delete_request(jsa, tokens[5], reply, body)
        if tokens[4] == "GET":
            return js_msg_get_request(jsa, tokens[5], reply, body)
    return None


# -- answering ----------------------------------------------------------------------------------


def send_api_response(jsa, reply, resp, counts_as_error=None, request=None):
    """Go: sendAPIResponse / sendAPIErrResponse: count the request, then answer. The JSON
    is made before counting, as Go's handlers marshal before trackAPI. An answer with an
    error counts as one unless `counts_as_error` says otherwise (Go sends some errors with
    sendAPIResponse). `request`: the (subject, body, client info) answered, when not the
    API greenlet's current one (an answer from another greenlet)."""
    data = gofmt.marshal(resp)
    js = jsa.js
    jsa.api_total += 1
    js.api_total += 1
    if counts_as_error if counts_as_error is not None else "error" in resp:
        jsa.api_errors += 1
        js.api_errors += 1
    client = jsa.acc.internal_client()
    if reply:
        send_internal_msg(js.srv, reply, None, data.encode(), client=client)
    audit = api_audit(js, data, request or js.request)
    send_internal_msg(js.srv, JS_AUDIT_ADVISORY, None, gofmt.marshal(audit).encode(), client=client)


def api_audit(js, response, request):
    """Go: sendJetStreamAPIAuditAdvisory's JSAPIAudit for `request` answered with `response`."""
    from ..events import _nuid
    subject, body, ci = request
    adv = {"type": JS_API_AUDIT_TYPE, "id": _nuid(), "timestamp": gofmt.format_time(time.time_ns()),
           "server": js.srv.name, "client": ci, "subject": subject}
    if body:
        adv["request"] = body.decode("utf-8", "replace")
    adv["response"] = response
    if js.domain:
        adv["domain"] = js.domain
    return adv


def error_response(jsa, reply, rtype, err, counts_as_error=True, request=None, **extra):
    resp = {"type": rtype, "error": err.to_dict()}
    resp.update(extra)
    send_api_response(jsa, reply, resp, counts_as_error, request)


def is_empty_request(body):
    """Go: isEmptyRequest. Nothing, `{}`, or JSON null."""
    s = body.strip()
    if not s:
        return True
    try:
        v = decode_json(s)
    except BadJSON:
        return False
    return v == {}


# -- handlers ----------------------------------------------------------------------------------


def js_account_info_request(jsa, reply, body):
    """Go: jsAccountInfoRequest."""
    resp = {"type": JS_API_ACCOUNT_INFO_RESPONSE_TYPE}
    resp.update(jsa.usage())
    send_api_response(jsa, reply, resp)


def request_stream_config(body):
    """The StreamConfig of a create or update request, or None when there is none to read
    (Go answers "invalid JSON")."""
    try:
        return StreamConfig.from_dict(decode_json(body)) if body.strip() else None
    except BadJSON:
        return None


def js_stream_create_request(jsa, name, reply, body):
    """Go: jsStreamCreateRequest."""
    rtype = JS_API_STREAM_CREATE_RESPONSE_TYPE
    cfg = request_stream_config(body)
    if cfg is None:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    if name != cfg.name:
        return error_response(jsa, reply, rtype, api_error("StreamMismatch"))
    if "/" in name or "\\" in name:
        return error_response(jsa, reply, rtype, api_error("StreamNameContainsPathSeparators"))
    if cfg.sealed:
        return error_response(jsa, reply, rtype,
                              api_error("StreamInvalidConfigF", "stream configuration for create can not be sealed"))
    if cfg.mirror_direct and cfg.mirror is None:
        return error_response(jsa, reply, rtype,
                              api_error("StreamInvalidConfigF", "stream has no mirror but does have mirror direct"))
    try:
        jsa.non_clustered_stream_limits_check(cfg)
        mset, _ = jsa.add_stream(cfg)
    except ApiError as e:
        return error_response(jsa, reply, rtype, e)
    resp = {"type": rtype}
    resp.update(mset.info())
    resp.pop("mirror", None)  # Go: the create response has no mirror or source info
    resp.pop("sources", None)
    resp["did_create"] = True
    send_api_response(jsa, reply, resp)


def js_stream_update_request(jsa, name, reply, body):
    """Go: jsStreamUpdateRequest."""
    rtype = JS_API_STREAM_UPDATE_RESPONSE_TYPE
    ncfg = request_stream_config(body)
    if ncfg is None:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    mset = jsa.streams.get(name)
    try:
        cfg = check_stream_cfg(jsa, ncfg)
        if name != cfg.name:
            raise api_error("StreamMismatch")
        if mset is None:
            raise api_error("StreamNotFound")
        cfg = config_update_check(jsa, mset.cfg, ncfg)
        if jsa.subjects_overlap(cfg.subjects, mset):
            raise api_error("StreamSubjectOverlap")
        mset.update(cfg)
    except ApiError as e:
        return error_response(jsa, reply, rtype, e)
    except (OSError, StoreError) as e:
        return error_response(jsa, reply, rtype, api_error("StreamUpdateErrF", e))
    resp = {"type": rtype}
    resp.update(mset.info())
    send_api_response(jsa, reply, resp)


def _offset_filter(jsa, reply, rtype, body, empty):
    """The offset and subject filter of a NAMES/LIST request; None after an error answer
    (whose `streams` is `empty`: Go's NAMES has null there, LIST an empty list)."""
    if is_empty_request(body):
        return 0, ""
    try:
        req = decode_json(body)
        return max(want(req, "offset", int, 0), 0), want(req, "subject", str, "")
    except BadJSON:
        # Go: the paged fields and a null list follow the error (none is omitempty).
        error_response(jsa, reply, rtype, api_error("InvalidJSON"), total=0, offset=0, limit=0, streams=empty)
        return None


def filtered_streams(jsa, filt):
    """Go: Account.filteredStreams, sorted by name."""
    msets = sorted(jsa.streams.values(), key=lambda m: m.cfg.name)
    if not filt:
        return msets
    f = filt.encode()
    return [m for m in msets if any(subjects_collide(f, s.encode()) for s in m.cfg.subjects)]


def js_stream_names_request(jsa, reply, body):
    """Go: jsStreamNamesRequest."""
    rtype = JS_API_STREAM_NAMES_RESPONSE_TYPE
    got = _offset_filter(jsa, reply, rtype, body, None)
    if got is None:
        return
    offset, filt = got
    msets = filtered_streams(jsa, filt)
    offset = min(offset, len(msets))
    names = [m.cfg.name for m in msets[offset:offset + JS_API_NAMES_LIMIT]]
    send_api_response(jsa, reply, {"type": rtype, "total": len(msets), "offset": offset,
                                   "limit": JS_API_NAMES_LIMIT, "streams": names or None})


def js_stream_list_request(jsa, reply, body):
    """Go: jsStreamListRequest."""
    rtype = JS_API_STREAM_LIST_RESPONSE_TYPE
    got = _offset_filter(jsa, reply, rtype, body, [])
    if got is None:
        return
    offset, filt = got
    msets = filtered_streams(jsa, filt)
    offset = min(offset, len(msets))
    infos = [m.info() for m in msets[offset:offset + JS_API_LIST_LIMIT]]
    send_api_response(jsa, reply, {"type": rtype, "total": len(msets), "offset": offset,
                                   "limit": JS_API_LIST_LIMIT, "streams": infos})


def js_stream_info_request(jsa, name, reply, body):
    """Go: jsStreamInfoRequest. Its paging fields come first (Go embeds ApiPaged)."""
    rtype = JS_API_STREAM_INFO_RESPONSE_TYPE
    paged = {"total": 0, "offset": 0, "limit": 0}
    details, subjects, offset = False, "", 0
    if not is_empty_request(body):
        try:
            req = decode_json(body)
            details = want(req, "deleted_details", bool, False)
            subjects = want(req, "subjects_filter", str, "")
            offset = want(req, "offset", int, 0)
        except BadJSON:
            return error_response(jsa, reply, rtype, api_error("InvalidJSON"), **paged)
    mset = jsa.streams.get(name)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"), **paged)
    info = mset.info(details)
    if subjects:
        mss = mset.store.subjects_state(subjects.encode())
        if mss:
            names = sorted(mss)
            offset = min(max(offset, 0), len(names))
            page = names[offset:offset + JS_MAX_SUBJECT_DETAILS]
            if page:
                state = info["state"]
                sd = gofmt.GoMap((s.decode("utf-8", "surrogateescape"), mss[s].msgs) for s in page)
                # Go: "subjects" sits between num_subjects and num_deleted.
                rebuilt = {}
                for k, v in state.items():
                    if k in ("num_deleted", "deleted", "lost", "consumer_count") and "subjects" not in rebuilt:
                        rebuilt["subjects"] = sd
                    rebuilt[k] = v
                info["state"] = rebuilt
            paged = {"total": len(mss), "offset": offset, "limit": JS_MAX_SUBJECT_DETAILS}
    resp = {"type": rtype}
    resp.update(paged)
    resp.update(info)
    send_api_response(jsa, reply, resp)


def js_stream_delete_request(jsa, name, reply, body):
    """Go: jsStreamDeleteRequest."""
    rtype = JS_API_STREAM_DELETE_RESPONSE_TYPE
    if not is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("NotEmptyRequest"))
    mset = jsa.streams.get(name)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"))
    try:
        jsa.delete_stream(mset)
    except (OSError, StoreError) as e:
        return error_response(jsa, reply, rtype, api_error("StreamDeleteErrF", e))
    send_api_response(jsa, reply, {"type": rtype, "success": True})


def js_stream_purge_request(jsa, name, reply, body):
    """Go: jsStreamPurgeRequest."""
    rtype = JS_API_STREAM_PURGE_RESPONSE_TYPE
    req = None
    if not is_empty_request(body):
        try:
            d = decode_json(body)
            req = {"filter": want(d, "filter", str, ""), "seq": want(d, "seq", int, 0, 0, UINT64_MAX),
                   "keep": want(d, "keep", int, 0, 0, UINT64_MAX)}
        except BadJSON:
            return error_response(jsa, reply, rtype, api_error("InvalidJSON"), purged=0)
        if req["seq"] > 0 and req["keep"] > 0:
            return error_response(jsa, reply, rtype, api_error("BadRequest"), purged=0)
    mset = jsa.streams.get(name)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"), purged=0)
    if mset.cfg.sealed:
        return error_response(jsa, reply, rtype, api_error("StreamSealed"), purged=0)
    if mset.cfg.deny_purge:
        return error_response(jsa, reply, rtype, api_error("StreamPurgeFailedF", "stream purge not permitted"),
                              purged=0)
    try:
        purged = mset.purge(req)
    except (OSError, StoreError) as e:
        return error_response(jsa, reply, rtype, api_error("StreamGeneralErrorF", e), False, purged=0)
    send_api_response(jsa, reply, {"type": rtype, "success": True, "purged": purged})


def js_msg_delete_request(jsa, name, reply, body):
    """Go: jsMsgDeleteRequest."""
    rtype = JS_API_MSG_DELETE_RESPONSE_TYPE
    if is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("BadRequest"))
    try:
        d = decode_json(body)
        seq = want(d, "seq", int, 0, 0, UINT64_MAX)
        no_erase = want(d, "no_erase", bool, False)
    except BadJSON:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    mset = jsa.streams.get(name)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"))
    if mset.cfg.sealed:
        return error_response(jsa, reply, rtype, api_error("StreamSealed"))
    if mset.cfg.deny_delete:
        return error_response(jsa, reply, rtype, api_error("StreamMsgDeleteFailedF", "message delete not permitted"))
    # Go answers the outcome with sendAPIResponse: a failed delete is not an API error.
    try:
        removed = mset.delete_msg(seq, no_erase)
    except ErrStoreEOF:
        if mset.cfg.storage == FILE_STORAGE:
            return error_response(jsa, reply, rtype, api_error("StreamMsgDeleteFailedF", ErrStoreEOF()), False)
        removed = False  # Go: the memory store just answers false
    except (OSError, StoreError) as e:
        return error_response(jsa, reply, rtype, api_error("StreamMsgDeleteFailedF", e), False)
    if not removed:
        if mset.cfg.storage == FILE_STORAGE:
            # Go: the file store answers ErrStoreMsgNotFound for a sequence already gone.
            return error_response(jsa, reply, rtype, api_error("StreamMsgDeleteFailedF", ErrStoreMsgNotFound()),
                                  False)
        return error_response(jsa, reply, rtype, api_error("SequenceNotFoundErrF", seq=seq), False)
    send_api_response(jsa, reply, {"type": rtype, "success": True})


def js_msg_get_request(jsa, name, reply, body):
    """Go: jsMsgGetRequest."""
    rtype = JS_API_MSG_GET_RESPONSE_TYPE
    if is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("BadRequest"))
    try:
        d = decode_json(body)
        seq = want(d, "seq", int, 0, 0, UINT64_MAX)
        last_for = want(d, "last_by_subj", str, "")
        next_for = want(d, "next_by_subj", str, "")
    except BadJSON:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    if (seq > 0 and last_for) or (seq == 0 and not last_for and not next_for) or (last_for and next_for):
        return error_response(jsa, reply, rtype, api_error("BadRequest"))
    mset = jsa.streams.get(name)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"))
    sm = mset.load(seq, last_for, next_for)
    if sm is None:
        return error_response(jsa, reply, rtype, api_error("NoMessageFound"))
    # Go: the message goes out with sendInternalAccountMsg: neither counted nor audited.
    if reply:
        data = gofmt.marshal({"type": rtype, "message": stored_msg_dict(sm)}).encode()
        send_internal_msg(jsa.js.srv, reply, None, data, client=jsa.acc.internal_client())


_STREAM_HANDLERS = {
    "CREATE": js_stream_create_request,
    "UPDATE": js_stream_update_request,
    "INFO": js_stream_info_request,
    "DELETE": js_stream_delete_request,
    "PURGE": js_stream_purge_request,
}

# -- consumers ---------------------------------------------------------------------------------


def consumer_request(jsa, tokens, subject, reply, body):
    """The `$JS.API.CONSUMER.>` part of Go's apiDispatch table."""
    n = len(tokens)
    op = tokens[3]
    if op == "CREATE":
        return js_consumer_create_request(jsa, tokens, reply, body)
    if op == "DURABLE" and n == 7 and tokens[4] == "CREATE":
        return js_consumer_create_request(jsa, tokens, reply, body)
    if n == 5 and op in ("NAMES", "LIST"):
        return js_consumer_list_request(jsa, tokens[4], reply, body, op == "NAMES")
    if n == 6:
        handler = _CONSUMER_HANDLERS.get(op)
        if handler is not None:
            handler(jsa, tokens[4], tokens[5], reply, body)
    return None


def js_consumer_create_request(jsa, tokens, reply, body):
    """Go: jsConsumerCreateRequest (2.10's subject forms and actions)."""
    rtype = JS_API_CONSUMER_CREATE_RESPONSE_TYPE
    try:
        req = decode_json(body)
        stream = want(req, "stream_name", str, "")
        cfg = ConsumerConfig.from_dict(req.get("config", {}))
        action = want(req, "action", str, "")
        if action not in ("", "create", "update"):
            raise BadJSON()
    except BadJSON:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    n = len(tokens)
    cname = filtered = ""
    if n == 5:
        kind = "ephemeral"
        stream_name = tokens[4]
    elif tokens[3] == "DURABLE":
        kind = "durable"
        stream_name, cname = tokens[5], tokens[6]
    else:
        kind = "new"
        stream_name, cname = tokens[4], tokens[5]
        if n > 6:
            filtered = ".".join(tokens[6:])
    if stream_name != stream:
        return error_response(jsa, reply, rtype, api_error("StreamMismatch"))
    if cname and ("/" in cname or "\\" in cname):
        return error_response(jsa, reply, rtype, api_error("ConsumerNameContainsPathSeparators"))
    if kind == "durable":
        if not cfg.durable:
            return error_response(jsa, reply, rtype, api_error("ConsumerDurableNameNotSet"))
        if cname != cfg.durable:
            return error_response(jsa, reply, rtype, api_error("ConsumerDurableNameNotMatchSubject"))
    elif kind == "new":
        if cfg.durable and cname != cfg.durable:
            return error_response(jsa, reply, rtype, api_error("ConsumerDurableNameNotMatchSubject"))
        cfg.name = cname
    elif cfg.durable:
        return error_response(jsa, reply, rtype, api_error("ConsumerEphemeralWithDurableName"))
    if filtered and cfg.filter_subjects:
        return error_response(jsa, reply, rtype, api_error("ConsumerMultipleFiltersNotAllowed"))
    if filtered and cfg.filter_subject != filtered:
        return error_response(jsa, reply, rtype, api_error("ConsumerCreateFilterSubjectMismatch"))
    if cfg.replicas > 1:
        return error_response(jsa, reply, rtype, api_error("StreamReplicasNotSupported"))
    mset = jsa.streams.get(stream)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"))
    try:
        o = add_consumer(mset, cfg, action=action)
    except ApiError as e:
        return error_response(jsa, reply, rtype, e)
    resp = {"type": rtype}
    resp.update(o.info())
    send_api_response(jsa, reply, resp)


def js_consumer_list_request(jsa, stream, reply, body, names_only):
    """Go: jsConsumerNamesRequest / jsConsumerListRequest."""
    if names_only:
        rtype, limit = JS_API_CONSUMER_NAMES_RESPONSE_TYPE, JS_API_NAMES_LIMIT
    else:
        rtype, limit = JS_API_CONSUMER_LIST_RESPONSE_TYPE, JS_API_LIST_LIMIT
    paged = {"total": 0, "offset": 0, "limit": 0, "consumers": []}
    offset = 0
    if not is_empty_request(body):
        try:
            offset = want(decode_json(body), "offset", int, 0)
        except BadJSON:
            return error_response(jsa, reply, rtype, api_error("InvalidJSON"), **paged)
    mset = jsa.streams.get(stream)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"), **paged)
    obs = mset.public_consumers()
    offset = min(max(offset, 0), len(obs))
    page = obs[offset:offset + limit]
    consumers = [o.name for o in page] if names_only else [o.info() for o in page]
    send_api_response(jsa, reply, {"type": rtype, "total": len(obs), "offset": offset, "limit": limit,
                                   "consumers": consumers})


def _lookup_consumer(jsa, reply, rtype, stream, name, **extra):
    """The consumer, or None after answering StreamNotFound / ConsumerNotFound."""
    mset = jsa.streams.get(stream)
    if mset is None:
        error_response(jsa, reply, rtype, api_error("StreamNotFound"), **extra)
        return None
    o = mset.consumers.get(name)
    if o is None:
        error_response(jsa, reply, rtype, api_error("ConsumerNotFound"), **extra)
    return o


def js_consumer_info_request(jsa, stream, name, reply, body):
    """Go: jsConsumerInfoRequest."""
    rtype = JS_API_CONSUMER_INFO_RESPONSE_TYPE
    if not is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("NotEmptyRequest"))
    o = _lookup_consumer(jsa, reply, rtype, stream, name)
    if o is not None:
        resp = {"type": rtype}
        resp.update(o.info())
        send_api_response(jsa, reply, resp)


def js_consumer_delete_request(jsa, stream, name, reply, body):
    """Go: jsConsumerDeleteRequest."""
    rtype = JS_API_CONSUMER_DELETE_RESPONSE_TYPE
    if not is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("NotEmptyRequest"))
    o = _lookup_consumer(jsa, reply, rtype, stream, name)
    if o is not None:
        o.delete()
        send_api_response(jsa, reply, {"type": rtype, "success": True})


def js_consumer_pause_request(jsa, stream, name, reply, body):
    """Go 2.11: jsConsumerPauseRequest. `{"pause_until": time}` pauses until then; an empty
    request or a zero time resumes."""
    from .consumer import _time
    rtype = JS_API_CONSUMER_PAUSE_RESPONSE_TYPE
    until = None
    if body.strip()[:1] in (b"{", b"["):
        try:
            until = _time(decode_json(body), "pause_until")
        except BadJSON:
            return error_response(jsa, reply, rtype, api_error("InvalidJSON"), paused=False, pause_until=ZERO_TIME)
    o = _lookup_consumer(jsa, reply, rtype, stream, name, paused=False, pause_until=ZERO_TIME)
    if o is None:
        return
    cfg = o.cfg.copy()
    cfg.pause_until = until or None
    o.update_config(cfg)
    resp = {"type": rtype, "paused": False,
            "pause_until": format_ts(until or 0)}
    remaining = o.pause_remaining()
    if remaining:
        resp["paused"] = True
        resp["pause_remaining"] = remaining
    send_api_response(jsa, reply, resp)


_CONSUMER_HANDLERS = {
    "INFO": js_consumer_info_request,
    "DELETE": js_consumer_delete_request,
    "PAUSE": js_consumer_pause_request,
}
