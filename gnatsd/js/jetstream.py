"""JetStream for one server: enabling it, its accounts, their streams on disk, usage.

Ports nats-server `server/jetstream.go` as 2.9.10 has it, without clustering:
enableJetStream (the store directory `<store_dir>/jetstream`, the dynamic limits: 75 % of
memory and of the free disk unless configured), enableJetStreamAccounts (the global account
when no other account is configured, else the accounts whose config says `jetstream`),
jsAccount (its streams, usage, recovery of file streams from their meta files at start),
limitsExceeded / checkAllLimits, JetStreamUsage and the /jsz figures.

Layout on disk, as Go's: `<store_dir>/jetstream/<account>/streams/<stream>/` with `meta.inf`
and `meta.sum` (the stream's config, see stream.write_stream_meta) beside the file store's
own files (gnatsd/fs/filestore.py); a stream's consumers keep theirs in `obs/<consumer>/`
(consumer.py), and come back with their stream.
"""
from __future__ import annotations

import logging
import os
import time

from gevent.event import Event

from ..fs.store import FILE_STORAGE, MEMORY_STORAGE
from .consumer import recover_consumers
from .errors import api_error
from .sources import wake_followers
from .stream import Stream, check_stream_cfg, load_stream_meta, new_store

log = logging.getLogger("gnatsd")

JET_STREAM_STORE_DIR = "jetstream"  # Go: JetStreamStoreDir
STREAMS_DIR = "streams"  # Go: streamsDir
JET_STREAM_MAX_STORE_DEFAULT = 1024 ** 4  # Go: JetStreamMaxStoreDefault
JET_STREAM_MAX_MEM_DEFAULT = 256 * 1024 * 1024  # Go: JetStreamMaxMemDefault


def system_memory():
    """Go: sysmem.Memory. 0 when unknown."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def disk_available(path):
    """Go: diskAvailable. 75 % of the free space under `path`, or 1 TB if unknown."""
    probe = path
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    try:
        st = os.statvfs(probe or "/")
    except OSError:
        return JET_STREAM_MAX_STORE_DEFAULT
    return st.f_bavail * st.f_frsize // 4 * 3


class JetStream:
    """Go: jetStream. The server's JetStream: config, usage, API counts, accounts."""

    def __init__(self, srv):
        opts = srv.opts
        self.srv = srv
        base = opts.store_dir
        if base:
            self.store_dir = os.path.join(base, JET_STREAM_STORE_DIR)
        else:
            import tempfile
            self.store_dir = os.path.join(tempfile.gettempdir(), "nats", JET_STREAM_STORE_DIR)
        if opts.jetstream_max_store >= 0:
            self.max_store = opts.jetstream_max_store
        else:
            self.max_store = disk_available(self.store_dir)
        if opts.jetstream_max_memory >= 0:
            self.max_memory = opts.jetstream_max_memory
        else:
            mem = system_memory()
            self.max_memory = mem // 4 * 3 if mem > 0 else JET_STREAM_MAX_MEM_DEFAULT
        self.domain = opts.jetstream_domain
        self.sync_interval = opts.jetstream_sync_interval or "always"
        self.accounts = {}  # account name -> JsAccount
        self.memory = 0  # Go: memTotal
        self.storage = 0  # Go: storeTotal
        self.api_total = 0
        self.api_errors = 0
        self.apiq = []  # API requests for the API greenlet (jetstream_api.api_loop)
        self.api_wake = Event()
        self.api_loop = None
        self.request = None  # (subject, body, client info) of the request being answered

    def config_dict(self):
        """Go: JetStreamConfig in JSON (/varz, /jsz)."""
        d = {"max_memory": self.max_memory, "max_storage": self.max_store, "store_dir": self.store_dir}
        if self.domain:
            d["domain"] = self.domain
        if self.sync_interval != "always":
            d["sync_interval"] = int(float(self.sync_interval) * 1e9)
        return d

    def limits_exceeded(self, storage):
        """Go: jetStream.limitsExceeded. The server's memory or disk budget is used up."""
        if storage == MEMORY_STORAGE:
            return self.memory > self.max_memory
        return self.storage > self.max_store

    def check_all_limits(self, selected, cfg, current_res, max_bytes_offset=0):
        """Go: checkAllLimits (checkLimits, checkBytesLimits): the account's limits
        (`selected`) and this server's budget. Raises ApiError."""
        if cfg.max_consumers > 0 and selected["max_consumers"] > 0 and cfg.max_consumers > selected["max_consumers"]:
            raise api_error("MaximumConsumersLimit")
        add = cfg.max_bytes if cfg.max_bytes >= 0 else 1
        total = add * max(cfg.num_replicas, 1) + max_bytes_offset
        if cfg.storage == MEMORY_STORAGE:
            limit, budget, name = selected["max_memory"], self.max_memory, "MemoryResourcesExceeded"
        elif cfg.storage != FILE_STORAGE:
            return  # Go: a request that names no storage is checked once the default is in
        else:
            limit, budget, name = selected["max_storage"], self.max_store, "StorageResourcesExceeded"
        if limit >= 0 and current_res + total > limit:
            raise api_error(name)
        if self.reserved(cfg.storage) + add > budget:
            raise api_error(name)

    def reserved(self, storage):
        """Go: the reservations: the max_bytes of every stream of that storage."""
        return sum(max(m.cfg.max_bytes, 0) for jsa in self.accounts.values() for m in jsa.streams.values()
                   if m.cfg.storage == storage)

    def enable_account(self, acc):
        """Go: Account.EnableJetStream. Recovers the account's file streams. May yield."""
        jsa = self.accounts.get(acc.name)
        if jsa is None:
            jsa = self.accounts[acc.name] = JsAccount(self, acc, self.account_limits(acc.name))
            acc.js = jsa
            jsa.recover_streams()
        return jsa

    def account_limits(self, name):
        """The configured limits of account `name` (None: none)."""
        return next((c.jetstream_limits for c in self.srv.opts.accounts if c.name == name), None)

    def configure_accounts(self):
        """Go: configAllJetStreamAccounts after a reload: accounts that gained `jetstream`
        start it (their file streams come back), accounts that lost it stop theirs (kept on
        disk), the others take their new limits. May yield."""
        from .jetstream_api import set_jetstream_export_subs
        wanted = {a.name: a for a in jetstream_accounts(self.srv)}
        for name, jsa in list(self.accounts.items()):
            if name not in wanted:
                self.disable_account(jsa)
            else:
                jsa.limits = dict(self.account_limits(name) or NO_LIMITS)
        for name, acc in wanted.items():
            if name not in self.accounts:
                set_jetstream_export_subs(self.enable_account(acc))

    def disable_account(self, jsa):
        """Go: Account.DisableJetStream: its streams stop (their files stay). May yield."""
        del self.accounts[jsa.acc.name]
        jsa.acc.internal_client().unsubscribe(jsa.api_sub)
        for mset in list(jsa.streams.values()):
            mset.stop(False)
        jsa.streams.clear()
        jsa.acc.js = None

    def stop(self):
        """Go: shutdownJetStream. Stop every stream (file stores flush). May yield."""
        from .jetstream_api import stop_api
        stop_api(self)
        for jsa in list(self.accounts.values()):
            for mset in list(jsa.streams.values()):
                mset.stop(False)
            jsa.streams.clear()
            jsa.acc.js = None
        self.accounts.clear()

    def usage_totals(self):
        """(streams, messages, bytes) over every account (Go: /jsz's totals)."""
        n = msgs = nbytes = 0
        for jsa in self.accounts.values():
            for mset in jsa.streams.values():
                st = mset.store.fast_state()
                n += 1
                msgs += st.msgs
                nbytes += st.bytes
        return n, msgs, nbytes


# Go: defaultJSAccountTiers: an account enabled without limits.
NO_LIMITS = {"max_memory": -1, "max_storage": -1, "max_streams": -1, "max_consumers": -1, "max_ack_pending": -1,
             "memory_max_stream_bytes": -1, "storage_max_stream_bytes": -1, "max_bytes_required": False}


class JsAccount:
    """Go: jsAccount. An account's streams and usage."""

    def __init__(self, js, acc, limits=None):
        self.js = js
        self.acc = acc
        self.limits = dict(limits or NO_LIMITS)  # Go: jsa.limits[""] (no tiers yet)
        self.streams = {}  # name -> Stream
        self.memory = 0
        self.storage = 0
        self.api_total = 0
        self.api_errors = 0
        self.api_sub = None  # the `$JS.API.>` subscription (jetstream_api.set_jetstream_export_subs)

    def stream_dir(self, name):
        return os.path.join(self.js.store_dir, self.acc.name, STREAMS_DIR, name)

    def update_usage(self, storage, delta):
        """Go: jsAccount.updateUsage, for one server."""
        if storage == MEMORY_STORAGE:
            self.memory += delta
            self.js.memory += delta
        else:
            self.storage += delta
            self.js.storage += delta

    def subjects_overlap(self, subjects, own=None):
        """Go: jsAccount.subjectsOverlap."""
        from ..sublist import subjects_collide
        for mset in self.streams.values():
            if mset is own:
                continue
            for subj in mset.cfg.subjects:
                for tsubj in subjects:
                    if subjects_collide(tsubj.encode(), subj.encode()):
                        return True
        return False

    def add_stream(self, config, created=None, recovering=False):
        """Go: Account.addStream, for one server. Returns (stream, created: bool); raises
        ApiError. May yield (the file store and the meta file)."""
        cfg = check_stream_cfg(self, config, recovering)
        if cfg.num_replicas > 1:
            raise api_error("StreamReplicasNotSupported")
        mset = self.streams.get(cfg.name)
        if mset is not None:
            if mset.cfg == cfg:
                return mset, False
            raise api_error("StreamNameExist")
        if not recovering:
            self.js.check_all_limits(self.limits, cfg, self.tiered_reservation(cfg))
        if cfg.template_owner:
            # Go: checkTemplateOwnership; gnatsd has no templates (DIFFERENCES.md), so none owns it
            raise api_error("StreamCreateErrF", "stream not owned by template")
        if self.subjects_overlap(cfg.subjects):
            raise api_error("StreamSubjectOverlap")
        try:
            store = new_store(self, cfg)
        except (OSError, ValueError) as e:  # ValueError: a name the file system refuses (NUL)
            log.warning("Stream create failed for '%s > %s': %s", self.acc.name, cfg.name, e)
            raise api_error("StreamCreateErrF", "error creating store for stream") from None
        if cfg.first_seq > 0 and not recovering:
            store.compact(cfg.first_seq)  # Go (2.10): a new store purged up to first_seq
        mset = Stream(self, cfg, created or time.time_ns(), store)
        if not recovering:
            try:
                mset.write_stream_meta()
            except OSError as e:
                log.warning("Stream create failed for '%s > %s': %s", self.acc.name, cfg.name, e)
                store.delete()
                raise api_error("StreamCreateErrF", "error creating store for stream") from None
        else:
            mset.rebuild_dedupe()
            mset.rebuild_ttls()
        self.update_usage(cfg.storage, store.fast_state().bytes)
        self.streams[cfg.name] = mset
        mset.subscribe_to_stream()
        wake_followers(self, cfg.name)
        mset.send_action_advisory("create")  # Go: at recovery too
        return mset, True

    def tiered_reservation(self, cfg):
        """Go: tieredReservation without tiers: the max_bytes the account's other streams of
        the same storage reserve."""
        return sum(m.cfg.num_replicas * m.cfg.max_bytes for m in self.streams.values()
                   if m.cfg.max_bytes > 0 and m.cfg.storage == cfg.storage and m.cfg.name != cfg.name)

    def non_clustered_stream_limits_check(self, cfg):
        """Go: jsNonClusteredStreamLimitsCheck, on the config as the request has it."""
        if 0 < self.limits["max_streams"] <= len(self.streams):
            raise api_error("MaximumStreamsLimit")
        self.js.check_all_limits(self.limits, cfg, self.tiered_reservation(cfg))

    def limits_exceeded(self, storage):
        """Go: jsAccount.limitsExceeded. The account uses more than it may."""
        lim = self.limits
        if storage == MEMORY_STORAGE:
            used, per_stream, total = self.memory, lim["memory_max_stream_bytes"], lim["max_memory"]
        else:
            used, per_stream, total = self.storage, lim["storage_max_stream_bytes"], lim["max_storage"]
        return (per_stream > 0 and used > per_stream) or (total >= 0 and used > total)

    def delete_stream(self, mset):
        """Go: stream.delete. May yield."""
        self.streams.pop(mset.cfg.name, None)
        mset.stop(True)

    def recover_streams(self):
        """Go: the stream recovery of EnableJetStream: every stream directory with a good
        meta file comes back; a bad one is skipped with a warning, as Go does."""
        sdir = os.path.join(self.js.store_dir, self.acc.name, STREAMS_DIR)
        try:
            names = sorted(os.listdir(sdir))
        except OSError:
            return
        for name in names:
            path = os.path.join(sdir, name)
            if not os.path.isdir(path):
                continue
            try:
                created, cfg = load_stream_meta(path)
            except (OSError, ValueError) as e:
                log.warning("  Error reading metafile %r: %s", os.path.join(path, "meta.inf"), e)
                continue
            try:
                self.recover_stream(created, cfg)
            except Exception as e:  # noqa: BLE001 - one bad stream must not stop the others
                log.warning("  Error recreating stream %r: %s", name, e)

    def num_consumers(self):
        return sum(len(m.consumers) for m in self.streams.values())

    def recover_stream(self, created, cfg):
        """Start stream `cfg` and its consumers from the files in its directory (at start,
        or restored from a snapshot). Returns it. May yield."""
        mset, _ = self.add_stream(cfg, created, recovering=True)
        st = mset.store.fast_state()
        log.info("  Restored %s messages for stream '%s > %s'", f"{st.msgs:,}", self.acc.name, cfg.name)
        recover_consumers(mset)
        return mset

    def usage(self):
        """Go: JetStreamUsage, as JSON (JetStreamAccountStats)."""
        d = {"memory": self.memory, "storage": self.storage, "streams": len(self.streams),
             "consumers": self.num_consumers(),
             "limits": dict(self.limits)}
        if self.js.domain:
            d["domain"] = self.js.domain
        d["api"] = {"total": self.api_total, "errors": self.api_errors}
        return d


def enable_jetstream(srv):
    """Go: enableJetStream and enableJetStreamAccounts. Creates the store directory, then
    enables the accounts. Raises OSError when the directory cannot be made."""
    js = JetStream(srv)
    os.makedirs(js.store_dir, exist_ok=True)
    srv.js = js
    log.info("Starting JetStream")
    log.info("  Max Memory:      %s", friendly_bytes(js.max_memory))
    log.info("  Max Storage:     %s", friendly_bytes(js.max_store))
    log.info("  Store Directory: \"%s\"", js.store_dir)
    if js.domain:
        log.info("  Domain:          %s", js.domain)
    from .jetstream_api import set_jetstream_export_subs
    for acc in jetstream_accounts(srv):
        set_jetstream_export_subs(js.enable_account(acc))
    return js


def jetstream_accounts(srv):
    """Go: enableJetStreamAccounts: $G alone when no other account is configured, else the
    accounts whose config enables JetStream."""
    others = [a for a in srv.accounts.values() if a is not srv.gacc and a is not srv.sys_account]
    if not others:
        return [srv.gacc]
    enabled = {c.name for c in srv.opts.accounts if getattr(c, "jetstream", False)}
    return [a for a in others if a.name in enabled]


def shutdown_jetstream(srv):
    """Go: shutdownJetStream. May yield."""
    js = getattr(srv, "js", None)
    if js is None:
        return
    js.stop()
    srv.js = None


def friendly_bytes(n):
    """Go: friendlyBytes."""
    if n < 1024:
        return f"{n} B"
    units = "KMGTPE"
    exp = 0
    f = float(n)
    while f >= 1024 and exp < len(units):
        f /= 1024
        exp += 1
    return f"{f:.2f} {units[exp - 1]}B"


__all__ = ["JetStream", "JsAccount", "enable_jetstream", "shutdown_jetstream", "Stream"]
