"""Micro-benchmark of the JetStream message stores (gnatsd/fs), in one process, no server.

Stores messages as fast as `--pubs` publishing greenlets can, each storing its share one at
a time (a synchronous publisher: the next store starts when the previous one returned), and
reports messages per second, and for the file store the fsyncs done. Cases:

- `mem`: the memory store,
- `file`: the file store with its default, `sync_interval="always"`: each store returns
  after its record is fdatasync'ed, with group commit (stores that arrive while one sync
  runs share the next),
- `lazy`: the file store with `sync_interval` 1 s: stores return at once, a greenlet syncs
  every second (loses acknowledged messages on power failure, like the Go server),
- `async`: the file store's default durability as a server's readloop would use it: each
  publisher stores with `wait=False` and is acknowledged by an `on_synced` callback after
  the fsync that covers it; it yields every 64 messages (as a readloop does between reads).
  The rate counts until the last acknowledgement.

    python loadtests/store_bench.py [-n 20000] [--sizes 16,1024] [--pubs 1,16,64] [case ...]

Then, for `mem` and `file`, the read paths over a stream of `-n` messages on 8 subjects:
`load_msg` of every sequence, and walking it with `load_next_msg` on one subject and on a
wildcard that matches half of them (msgs/s read).

The store directory is a temporary directory (`--dir` to choose the disk).
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import gevent  # noqa: E402
import gevent.event  # noqa: E402

from gnatsd.fs.filestore import FileStore, FileStoreConfig  # noqa: E402
from gnatsd.fs.memstore import MemStore  # noqa: E402
from gnatsd.fs.store import FILE_STORAGE, MEMORY_STORAGE, StreamConfig  # noqa: E402

CASES = ("mem", "file", "lazy", "async")


def make_store(case, root):
    if case == "mem":
        return MemStore(StreamConfig(name="bench", storage=MEMORY_STORAGE))
    d = tempfile.mkdtemp(dir=root)
    fcfg = FileStoreConfig(d, sync_interval=1.0 if case == "lazy" else "always")
    return FileStore(fcfg, StreamConfig(name="bench", storage=FILE_STORAGE))


def run(case, n, size, pubs, root):
    """Store `n` messages from `pubs` greenlets; return (msgs/s, fsyncs)."""
    s = make_store(case, root)
    payload = os.urandom(size)
    per = n // pubs

    acked = [0]
    done = gevent.event.Event()

    def ack(err):
        acked[0] += 1
        if acked[0] == per * pubs:
            done.set()

    def publisher(i):
        subj = b"bench.%d" % i
        store = s.store_msg
        if case == "async":
            for j in range(per):
                store(subj, b"", payload, wait=False)
                s.on_synced(ack)
                if j % 64 == 63:
                    gevent.sleep(0)
        else:
            for _ in range(per):
                store(subj, b"", payload)

    t0 = time.perf_counter()
    gevent.joinall([gevent.spawn(publisher, i) for i in range(pubs)], raise_error=True)
    if case == "async":
        done.wait()
    dt = time.perf_counter() - t0
    fsyncs = getattr(s, "fsyncs", 0)
    s.stop()
    if case != "mem":
        shutil.rmtree(s.fcfg.store_dir, ignore_errors=True)
    return per * pubs / dt, fsyncs


def run_loads(case, n, size, root):
    """Rates of load_msg, load_next_msg (literal), load_next_msg (wildcard), in msgs/s."""
    s = make_store("lazy" if case == "file" else case, root)
    payload = os.urandom(size)
    for i in range(n):
        s.store_msg(b"load.%s.%d" % (b"a" if i % 8 < 4 else b"b", i % 8), b"", payload)
    rates = [0, 0, 0]
    for _ in range(3):  # the best of three: PyPy's JIT warms up on the first
        t0 = time.perf_counter()
        for seq in range(1, n + 1):
            s.load_msg(seq)
        rates[0] = max(rates[0], n / (time.perf_counter() - t0))
        for i, (filt, wc) in enumerate(((b"load.a.3", False), (b"load.a.*", True)), 1):
            t0 = time.perf_counter()
            got = 0
            seq = 1
            while True:
                sm = s.load_next_msg(filt, wc, seq)
                if sm is None:
                    break
                got += 1
                seq = sm.seq + 1
            rates[i] = max(rates[i], got / (time.perf_counter() - t0))
    s.stop()
    if case != "mem":
        shutil.rmtree(s.fcfg.store_dir, ignore_errors=True)
    return rates


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20000, help="messages per run")
    ap.add_argument("--sizes", default="16,1024")
    ap.add_argument("--pubs", default="1,16,64")
    ap.add_argument("--dir", default=None, help="where the file stores go")
    ap.add_argument("cases", nargs="*", default=list(CASES))
    a = ap.parse_args(argv)
    root = tempfile.mkdtemp(prefix="store_bench.", dir=a.dir)
    impl = sys.implementation.name
    print(f"{'impl':7} {'case':5} {'size':>5} {'pubs':>4} {'msgs/s':>10} {'fsyncs':>7} {'msgs/fsync':>10}")
    try:
        for case in a.cases:
            for size in (int(x) for x in a.sizes.split(",")):
                for pubs in (int(x) for x in a.pubs.split(",")):
                    rate, fsyncs = run(case, a.n, size, pubs, root)
                    per = f"{a.n / fsyncs:10.1f}" if fsyncs else f"{'-':>10}"
                    print(f"{impl:7} {case:5} {size:5d} {pubs:4d} {rate:10,.0f} {fsyncs:7d} {per}", flush=True)
        print(f"\n{'impl':7} {'case':5} {'size':>5} {'load_msg/s':>11} {'next lit/s':>11} {'next wc/s':>11}")
        for case in a.cases:
            if case == "lazy":
                continue
            for size in (int(x) for x in a.sizes.split(",")):
                r = run_loads(case, a.n, size, root)
                print(f"{impl:7} {case:5} {size:5d} {r[0]:11,.0f} {r[1]:11,.0f} {r[2]:11,.0f}", flush=True)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
