"""Stream snapshots and restores: `$JS.API.STREAM.SNAPSHOT.<stream>` and
`$JS.API.STREAM.RESTORE.<stream>`.

Ports nats-server `server/jetstream_api.go` (jsStreamSnapshotRequest, streamSnapshot,
jsStreamRestoreRequest, processStreamRestore), `stream.go` (snapshot, RestoreStream) and
`filestore.go` (Snapshot, streamSnapshot), 2.9.10.

The exchange is Go's: a snapshot answers with the stream's config and state, then sends the
archive in chunks to the requester's deliver subject, each with a reply subject
`$JS.SNAPSHOT.ACK.<stream>.<id>.<size>.<n>` the client answers for flow control, and an empty
message at the end. A restore answers with a deliver subject `$JS.SNAPSHOT.RESTORE.<stream>.<id>`
to which the client sends the chunks as requests (each acknowledged once it is staged on
disk); an empty chunk ends it and is answered with the restored stream's info or an error.

The archive is gnatsd's own: a gzip-compressed tar of the stream directory (meta files,
message blocks, consumer state) where Go's is an s2-compressed tar of Go's file format, so
neither server restores the other's snapshots (docs/DIFFERENCES.md). The files are opened,
and their sizes taken, in one step of the hub, so the archive shows one moment of the stream
while publishing goes on; it is read and compressed in the thread pool as the client takes it.
"""
from __future__ import annotations

import logging
import os
import shutil
import tarfile
import tempfile
import time
import zlib
from collections import deque

import gevent
from gevent.event import Event

from .. import gofmt
from ..events import _nuid, send_internal_msg
from ..fs.filestore import unlink_quiet
from ..fs.store import FILE_STORAGE, StoreError
from ..hub import run_blocking
from ..sublist import is_valid_subject
from .errors import ApiError, api_error
from .jetstream import friendly_bytes
from .jetstream_api import error_response, is_empty_request, send_api_response
from .stream import BadJSON, StreamConfig, check_stream_cfg, decode_json, json_object, load_stream_meta, want

log = logging.getLogger("gnatsd")

JS_API_STREAM_SNAPSHOT_RESPONSE_TYPE = "io.nats.jetstream.api.v1.stream_snapshot_response"
JS_API_STREAM_RESTORE_RESPONSE_TYPE = "io.nats.jetstream.api.v1.stream_restore_response"
JS_API_STREAM_CREATE_RESPONSE_TYPE = "io.nats.jetstream.api.v1.stream_create_response"
JS_SNAPSHOT_ACK_T = "$JS.SNAPSHOT.ACK.{}.{}"
JS_RESTORE_DELIVER_T = "$JS.SNAPSHOT.RESTORE.{}.{}"
ADV = "$JS.EVENT.ADVISORY.STREAM."
JS_SNAPSHOT_CREATED_ADVISORY_TYPE = "io.nats.jetstream.advisory.v1.snapshot_create"
JS_SNAPSHOT_COMPLETE_ADVISORY_TYPE = "io.nats.jetstream.advisory.v1.snapshot_complete"
JS_RESTORE_CREATE_ADVISORY_TYPE = "io.nats.jetstream.advisory.v1.restore_create"
JS_RESTORE_COMPLETE_ADVISORY_TYPE = "io.nats.jetstream.advisory.v1.restore_complete"

DEFAULT_SNAPSHOT_CHUNK_SIZE = 128 * 1024  # Go: defaultSnapshotChunkSize
DEFAULT_SNAPSHOT_WINDOW_SIZE = 8 * 1024 * 1024  # Go: defaultSnapshotWindowSize
MIN_CHUNK_SIZE, MAX_CHUNK_SIZE = 1024, 1024 * 1024  # newer Go's bounds on chunk_size
INTEREST_WAIT = 2.0  # Go: how long a snapshot waits for interest in its deliver subject
ACK_WAIT = 0.010  # Go: past the window, how long to wait for an ack before sending anyway
RESTORE_ACTIVITY = 5.0  # Go: a restore with no chunk for this long is stalled
RESTORE_MAX_BACKLOG = 64 * 1024 * 1024  # chunks received and not yet staged
QUEUED_CHUNK_COST = 64  # what a queued chunk costs besides its bytes, in the backlog
SNAPS_DIR = "__snapshots__"  # Go: snapsDir, the staging directory of restores
READ_SIZE = 256 * 1024


def _advisory(jsa, subject, type_, **fields):
    """Go: publishAdvisory of a typed event in the stream's account."""
    adv = {"type": type_, "id": _nuid(), "timestamp": gofmt.format_time(time.time_ns())}
    adv.update(fields)
    if jsa.js.domain:
        adv["domain"] = jsa.js.domain
    send_internal_msg(jsa.js.srv, subject, None, gofmt.marshal(adv).encode(), client=jsa.acc.internal_client())


# -- snapshot ----------------------------------------------------------------------------------


def js_stream_snapshot_request(jsa, name, reply, body):
    """Go: jsStreamSnapshotRequest."""
    rtype = JS_API_STREAM_SNAPSHOT_RESPONSE_TYPE
    if is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("BadRequest"))
    mset = jsa.streams.get(name)
    if mset is None:
        return error_response(jsa, reply, rtype, api_error("StreamNotFound"))
    try:
        d = decode_json(body)
        deliver = want(d, "deliver_subject", str, "")
        no_consumers = want(d, "no_consumers", bool, False)
        chunk_size = want(d, "chunk_size", int, 0)
        check_msgs = want(d, "jsck", bool, False)
    except BadJSON:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    if not is_valid_subject(deliver.encode()):
        return error_response(jsa, reply, rtype, api_error("SnapshotDeliverSubjectInvalid"))
    gevent.spawn(_snapshot, jsa, mset, reply, deliver, not no_consumers, chunk_size, check_msgs,
                 jsa.js.request)


def _snapshot(jsa, mset, reply, deliver, include_consumers, chunk_size, check_msgs, request):
    """The snapshot's own greenlet (Go: the goroutine of jsStreamSnapshotRequest);
    `request`: the API request it answers."""
    rtype = JS_API_STREAM_SNAPSHOT_RESPONSE_TYPE
    client_info = request[2]
    acc_name, name = jsa.acc.name, mset.name
    what = "health check and snapshot" if check_msgs else "snapshot"
    log.info("Starting %s for stream '%s > %s'", what, acc_name, name)
    start = time.time_ns()
    try:
        files = mset.store.snapshot(check_msgs, include_consumers)
    except StoreError as e:
        log.warning("Snapshot of stream '%s > %s' failed: %s", acc_name, name, e)
        return error_response(jsa, reply, rtype, api_error("StreamSnapshotErrF", e), request=request)
    try:
        state = mset.state_dict()
        send_api_response(jsa, reply, {"type": rtype, "config": mset.cfg.to_dict(), "state": state},
                          request=request)
        _advisory(jsa, f"{ADV}SNAPSHOT_CREATE.{name}", JS_SNAPSHOT_CREATED_ADVISORY_TYPE,
                  stream=name, state=state, client=client_info)
        stream_snapshot(jsa, mset, files, deliver, chunk_size)
    finally:
        files.close()
    end = time.time_ns()
    _advisory(jsa, f"{ADV}SNAPSHOT_COMPLETE.{name}", JS_SNAPSHOT_COMPLETE_ADVISORY_TYPE, stream=name,
              start=gofmt.format_time(start), end=gofmt.format_time(end), client=client_info)
    log.info("Completed snapshot of %s for stream '%s > %s' in %s", friendly_bytes(state["bytes"]),
             acc_name, name, gofmt.duration_string(end - start))


def stream_snapshot(jsa, mset, files, deliver, chunk_size):
    """Go: streamSnapshot. Send the archive in chunks with Go's simple flow control: past
    the window, wait up to 10ms for an ack before sending on; stop if the deliver subject
    loses its interest. May yield."""
    chunk_size = min(max(chunk_size or DEFAULT_SNAPSHOT_CHUNK_SIZE, MIN_CHUNK_SIZE), MAX_CHUNK_SIZE)
    srv, acc = jsa.js.srv, jsa.acc
    client = acc.internal_client()
    subject = deliver.encode()

    def has_interest():
        r = acc.sublist.match(subject)
        return bool(r.psubs or r.qsubs)

    deadline = time.monotonic() + INTEREST_WAIT
    while not has_interest() and time.monotonic() < deadline:
        gevent.sleep(0.02)
    out = [0]  # bytes sent and not acknowledged
    acked = Event()
    ack_subj = JS_SNAPSHOT_ACK_T.format(mset.name, _nuid())

    def on_ack(sub, c, a, subj, reply, msg):
        # The chunk's size is token 5 (from 0) of the reply, $JS.SNAPSHOT.ACK.<stream>.<id>.<size>.<n>.
        try:
            out[0] -= int(subj.split(b".")[5])
        except (IndexError, ValueError):
            return
        if out[0] < DEFAULT_SNAPSHOT_WINDOW_SIZE:
            acked.set()

    ack_sub = acc.subscribe_internal(f"{ack_subj}.>".encode(), on_ack)
    try:
        for index, chunk in enumerate(archive_chunks(files, chunk_size), 1):
            if out[0] > DEFAULT_SNAPSHOT_WINDOW_SIZE:
                acked.clear()
                acked.wait(ACK_WAIT)
                if not has_interest():
                    break
            send_internal_msg(srv, deliver, f"{ack_subj}.{len(chunk)}.{index}", chunk, client=client)
            out[0] += len(chunk)
    finally:
        client.unsubscribe(ack_sub)
    send_internal_msg(srv, deliver, None, b"", client=client)


def archive_chunks(files, chunk_size):
    """The snapshot archive (tar, PAX headers as Go writes them, gzip) in pieces of
    `chunk_size`. Reading and compressing run in the thread pool. May yield."""
    z = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: the gzip format
    buf = bytearray()
    mtime = time.time()
    for name, data, fd, size in files.entries:
        ti = tarfile.TarInfo(name)
        ti.size, ti.mode, ti.mtime, ti.uname, ti.gname = size, 0o600, mtime, "nats", "nats"
        buf += z.compress(ti.tobuf(tarfile.PAX_FORMAT))
        if data is not None:
            buf += z.compress(data)
        else:
            off = 0
            while off < size:
                n = min(READ_SIZE, size - off)
                buf += run_blocking(_read_compress, z, fd, n, off)
                off += n
                while len(buf) >= chunk_size:
                    yield bytes(buf[:chunk_size])
                    del buf[:chunk_size]
        pad = -size % tarfile.BLOCKSIZE
        buf += z.compress(b"\0" * pad)
        while len(buf) >= chunk_size:
            yield bytes(buf[:chunk_size])
            del buf[:chunk_size]
    buf += z.compress(b"\0" * (2 * tarfile.BLOCKSIZE)) + z.flush()
    while buf:
        yield bytes(buf[:chunk_size])
        del buf[:chunk_size]


def _read_compress(z, fd, n, off):
    """Read `n` bytes at `off` and compress them; a file cut short meanwhile (a Truncate
    during the snapshot) reads as zeros, which a restore reports as a damaged tail."""
    data = os.pread(fd, n, off)
    if len(data) < n:
        data += b"\0" * (n - len(data))
    return z.compress(data)


# -- restore -----------------------------------------------------------------------------------


def js_stream_restore_request(jsa, name, reply, body):
    """Go: jsStreamRestoreRequest."""
    rtype = JS_API_STREAM_RESTORE_RESPONSE_TYPE
    if is_empty_request(body):
        return error_response(jsa, reply, rtype, api_error("BadRequest"))
    try:
        d = decode_json(body)
        ncfg = StreamConfig.from_dict(json_object(d.get("config", {})))
    except BadJSON:
        return error_response(jsa, reply, rtype, api_error("InvalidJSON"))
    if not ncfg.name:
        ncfg.name = name
    try:
        if ncfg.name != name:
            raise api_error("StreamMismatch")  # newer Go; 2.9.10 restores under the config's name
        cfg = check_stream_cfg(jsa, ncfg)
        if cfg.storage != FILE_STORAGE:
            raise api_error("StreamRestoreErrF", "only file streams can be restored")
        jsa.non_clustered_stream_limits_check(cfg)
        if name in jsa.streams:
            raise api_error("StreamNameExistRestoreFailed")
    except ApiError as e:
        return error_response(jsa, reply, rtype, e)
    process_stream_restore(jsa, cfg, reply)


def process_stream_restore(jsa, cfg, reply):
    """Go: processStreamRestore. Stage the chunks in a temporary file, then restore. May yield."""
    rtype = JS_API_STREAM_RESTORE_RESPONSE_TYPE
    staging = os.path.join(jsa.js.store_dir, SNAPS_DIR)
    try:
        os.makedirs(staging, exist_ok=True)
        tfile = tempfile.NamedTemporaryFile(dir=staging, prefix="js-restore-", delete=False)
    except OSError:
        return error_response(jsa, reply, rtype, api_error("TempStorageFailed"))
    name = cfg.name
    client_info = jsa.js.request[2]
    log.info("Starting restore for stream '%s > %s'", jsa.acc.name, name)
    start = time.time_ns()
    _advisory(jsa, f"{ADV}RESTORE_CREATE.{name}", JS_RESTORE_CREATE_ADVISORY_TYPE, stream=name,
              client=client_info)
    restore_subj = JS_RESTORE_DELIVER_T.format(name, _nuid())
    chunks = deque()  # (chunk, reply) from the subscription, for the restore greenlet
    backlog = [0]  # bytes in chunks
    wake = Event()

    def process_chunk(sub, c, acc, subject, creply, msg):
        # Go writes the chunk here, which holds the sender back; this callback must not wait
        # for the disk, so a sender that does not wait for the acks is cut off instead.
        chunk = msg[c.pa_hdr:-2] if c.pa_hdr > 0 else msg[:-2]
        backlog[0] += len(chunk) + QUEUED_CHUNK_COST
        chunks.append((chunk if backlog[0] <= RESTORE_MAX_BACKLOG else None, creply))
        wake.set()

    sub = jsa.acc.subscribe_internal(restore_subj.encode(), process_chunk)
    send_api_response(jsa, reply, {"type": rtype, "deliver_subject": restore_subj})
    gevent.spawn(_restore, jsa, cfg, tfile, sub, chunks, backlog, wake, client_info, start)


def _restore(jsa, cfg, tfile, sub, chunks, backlog, wake, client_info, start):
    """The restore's own greenlet (Go: the goroutine of processStreamRestore)."""
    name, acc_name = cfg.name, jsa.acc.name
    total = 0
    err = None
    final_reply = None
    try:
        while final_reply is None:
            if not chunks and not wake.wait(RESTORE_ACTIVITY):
                log.warning("Restore for stream '%s > %s' is stalled", acc_name, name)
                return
            wake.clear()
            while chunks and final_reply is None:
                chunk, reply = chunks.popleft()
                if not reply:
                    err = StoreError(f"restore for stream '{acc_name} > {name}' requires reply subject for each chunk")
                    log.warning("%s", err)
                    return
                if chunk is None:
                    log.warning("Restore for stream '%s > %s': chunks sent without waiting for their acks",
                                acc_name, name)
                    send_internal_msg(jsa.js.srv, reply.decode(), None, b"-ERR 'chunks sent faster than they are stored'",
                                      client=jsa.acc.internal_client())
                    return
                backlog[0] -= len(chunk) + QUEUED_CHUNK_COST
                if not chunk:
                    final_reply = reply
                    break
                total += len(chunk)
                if jsa.js.storage + total > jsa.js.max_store:
                    log.error("JetStream resource limits exceeded for server")
                    err, final_reply = api_error("InsufficientResources"), reply
                    break
                try:
                    run_blocking(tfile.write, chunk)
                except OSError:
                    send_internal_msg(jsa.js.srv, reply.decode(), None, b"-ERR 'storage failure during restore'",
                                      client=jsa.acc.internal_client())
                    return
                send_internal_msg(jsa.js.srv, reply.decode(), None, b"", client=jsa.acc.internal_client())
        mset = None
        if err is None:
            try:
                run_blocking(tfile.flush)
                mset = restore_stream(jsa, cfg, tfile.name)
            except (ApiError, StoreError, OSError, ValueError, tarfile.TarError, EOFError, zlib.error) as e:
                err = e
            except Exception as e:  # noqa: BLE001 - a bug must still get the client an answer
                log.exception("Restore for stream '%s > %s' failed", acc_name, name)
                err = e
        end = time.time_ns()
        _advisory(jsa, f"{ADV}RESTORE_COMPLETE.{name}", JS_RESTORE_COMPLETE_ADVISORY_TYPE, stream=name,
                  start=gofmt.format_time(start), end=gofmt.format_time(end), bytes=total, client=client_info)
        resp = {"type": JS_API_STREAM_CREATE_RESPONSE_TYPE}
        if err is not None:
            resp["error"] = (err if isinstance(err, ApiError) else api_error("StreamRestoreErrF", err)).to_dict()
            log.warning("Restore failed for %s for stream '%s > %s' in %s: %s", friendly_bytes(total), name,
                        acc_name, gofmt.duration_string(end - start), err)
        else:
            resp.update(mset.info())
            log.info("Completed restore of %s for stream '%s > %s' in %s", friendly_bytes(total), name,
                     acc_name, gofmt.duration_string(end - start))
        send_internal_msg(jsa.js.srv, final_reply.decode(), None, gofmt.marshal(resp).encode(),
                          client=jsa.acc.internal_client())
    finally:
        jsa.acc.internal_client().unsubscribe(sub)
        tfile.close()
        unlink_quiet(tfile.name)


def restore_stream(jsa, cfg, archive):
    """Go: Account.RestoreStream. Unpack `archive` next to the streams, check it, move it in
    place and start the stream from it; `cfg` (checked) is the stream's new identity.
    Returns the stream. May yield."""
    staging = os.path.join(jsa.js.store_dir, SNAPS_DIR)
    sdir = run_blocking(tempfile.mkdtemp, "", "snap-", staging)
    try:
        run_blocking(_unpack, archive, sdir)
        try:
            created, snap_cfg = load_stream_meta(sdir)
        except (OSError, ValueError) as e:
            raise StoreError(f"snapshot has no valid stream meta file: {e}") from None
        if snap_cfg.name != cfg.name:
            raise StoreError("stream names do not match")
        if cfg.name in jsa.streams:
            raise api_error("StreamNameExistRestoreFailed")
        ndir = jsa.stream_dir(cfg.name)
        run_blocking(shutil.rmtree, ndir, True)  # Go: a leftover directory goes
        os.makedirs(os.path.dirname(ndir), exist_ok=True)
        os.rename(sdir, ndir)
    finally:
        run_blocking(shutil.rmtree, sdir, True)
    mset = jsa.recover_stream(created, cfg)
    if mset.cfg != snap_cfg:
        mset.write_stream_meta()
    return mset


def _unpack(archive, sdir):
    """Unpack the tar into `sdir`: regular files only, none outside it (Go: "unexpected
    content"). Runs in a pool thread."""
    root = os.path.realpath(sdir) + os.sep
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            path = os.path.realpath(os.path.join(sdir, member.name))
            if not member.isreg() or not path.startswith(root):
                raise StoreError("unexpected content")
            os.makedirs(os.path.dirname(path), exist_ok=True)
            src = tar.extractfile(member)
            with open(path, "wb") as f:
                shutil.copyfileobj(src, f)
