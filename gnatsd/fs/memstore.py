"""The memory store. Ports nats-server `server/memstore.go` (memStore, consumerMemStore).

The logic shared with the file store (limits, per-subject state, purge/compact/truncate,
expiry) is `store.IndexedStore`; here a message's entry in the index is its StoreMsg.
"""
from __future__ import annotations

from gnatsd.fs.store import (
    MEMORY_STORAGE, BaseConsumerStore, ErrStoreClosed, ErrStoreWrongType, IndexedStore, StoreMsg,
)


def mem_store_msg_size(subj, hdr, msg):
    """Go: memStoreMsgSize: the bytes a message counts for (8 each for seq and ts)."""
    return len(subj) + len(hdr) + len(msg) + 16


class MemStore(IndexedStore):
    """Go: memStore."""

    storage_type = MEMORY_STORAGE

    def __init__(self, cfg):
        if cfg is not None and cfg.storage != MEMORY_STORAGE:
            raise ErrStoreWrongType("memStore requires memory storage type in config")
        super().__init__(cfg)

    def _write_msg(self, seq, ts, subj, hdr, msg):
        return StoreMsg(subj, hdr, msg, seq, ts)

    def _entry_size(self, sm):
        return mem_store_msg_size(sm.subj, sm.hdr, sm.msg)

    def _load(self, seq, sm):
        return sm

    def _removed(self, seq, sm, secure):
        # Secure or not, dropping the entry is all: Go points its entry at new random bytes
        # and leaves the old buffer to the collector, which is what dropping it does here.
        pass

    def _bulk_removed(self, kind, seq, removed):
        pass

    def _skipped(self, seq, ts):
        pass

    def consumer_store(self, name, cfg):
        """Go: ConsumerStore."""
        if self._closed:
            raise ErrStoreClosed()
        if cfg is None or not name:
            raise ValueError("bad consumer config")
        o = ConsumerMemStore(self, name, cfg)
        self.add_consumer(o)
        return o

    def stop(self):
        """Go: Stop."""
        self._cancel_age_chk()
        self._closed = True

    def delete(self):
        """Go: Delete: purge, then stop."""
        if not self._closed:
            self.purge()
        self.stop()


class ConsumerMemStore(BaseConsumerStore):
    """Go: consumerMemStore."""
