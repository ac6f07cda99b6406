"""In-process micro-benchmark of the publish path, with and without permissions.

Feeds a buffer of 2,000 `PUB bench.subject 16` operations to `Client.parse` of a real
Client (a socketpair stands in for the connection; no server is started, no greenlet
switches), and reports nanoseconds per PUB for:

- `none`: a client without permissions (what every client pays for the permission hooks),
- `allow`: a client whose publish permissions allow `bench.>` (answered from its cache),
- `deny`: publish permissions that deny `bench.>` (the -ERR path, output discarded),
- `deliver`: no permissions, one subscriber on the subject (adds the delivery hook),
- `deliver_perm`: the subscriber has `allow_responses` (tracks each delivery's reply).

    python loadtests/perm_bench.py [--rounds 300] [--repeat 7] [case ...]
    python loadtests/perm_bench.py --ab REV [--pairs 300] [case ...]

Each case runs `--repeat` times `--rounds` parses of the buffer; the best time is reported.

`--ab REV` compares the gnatsd next to this script with the one of git revision REV in one
process: both packages are loaded (REV's under another name), and their runs alternate
`--pairs` times, in both load orders; the median of the new/old time ratios is reported.
On a shared machine, separate processes differ by several percent from run to run; paired
runs in one process see the same load, and are what a 1-3 % question needs. (Cases with
permissions need a REV that has them.)
"""
from __future__ import annotations

import argparse
import importlib
import logging
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

N_OPS = 2000
BUF = b"PUB bench.subject 16\r\n0123456789abcdef\r\n" * N_OPS
BUF_REPLY = b"PUB bench.subject _INBOX.abc.1 16\r\n0123456789abcdef\r\n" * N_OPS
HERE = os.path.dirname(os.path.abspath(__file__))


def make_run(pkg, name, rounds):
    """A function that parses the case's buffer `rounds` times and returns the seconds taken,
    on a Client of the gnatsd package named `pkg`; None if that package lacks permissions."""
    g = importlib.import_module(pkg)
    conn = importlib.import_module(pkg + ".conn")
    srv = g.Server(g.Options())

    def client(cid):
        a, b = socket.socketpair()
        c = conn.Client(srv, a, cid, ("127.0.0.1", 40000 + cid))
        c.connect_received = True
        c.auth_pending = False
        c.verbose = c.pedantic = False
        c._peer = b  # keep the other end open
        return c

    def apply_perms(c, **kw):
        # Go: RegisterUser -> setPermissions.
        if not hasattr(c, "register_user"):
            return False
        auth = importlib.import_module(pkg + ".auth")
        perms = auth.Permissions(**{k: v(auth) for k, v in kw.items()})
        auth.validate_response_permissions(perms)
        c.register_user(auth.User("bench", "", perms))
        return True

    c = client(1)
    sub = None
    buf = BUF
    if name == "allow":
        if not apply_perms(c, publish=lambda a: a.SubjectPermission(allow=["bench.>"])):
            return None
    elif name == "deny":
        if not apply_perms(c, publish=lambda a: a.SubjectPermission(deny=["bench.>"])):
            return None
    elif name in ("deliver", "deliver_perm"):
        sub = client(2)
        if name == "deliver_perm" and not apply_perms(sub, response=lambda a: a.ResponsePermission(1, 60.0)):
            return None
        sub.process_sub([b"bench.subject", b"1"])
        buf = BUF_REPLY

    def run():
        t0 = time.perf_counter()
        for _ in range(rounds):
            c.parse(buf)
            c.out.clear()
            c.pb = 0
            c.pcd.clear()
            if sub is not None:
                sub.out.clear()
                sub.pb = 0
        return time.perf_counter() - t0

    return run


def bench(name, rounds, repeat):
    run = make_run("gnatsd", name, rounds)
    if run is None:
        return None
    for _ in range(3):  # warm up (the JIT on PyPy)
        run()
    return min(run() for _ in range(repeat)) / (rounds * N_OPS) * 1e9


def load_revision(rev, dest):
    """REV's gnatsd package, unpacked as `gnatsd_old` under `dest` (its imports are relative)."""
    root = subprocess.run(["git", "-C", HERE, "rev-parse", "--show-toplevel"], check=True, capture_output=True,
                          text=True).stdout.strip()
    tar = subprocess.run(["git", "-C", root, "archive", rev, "gnatsd"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=tar, check=True)
    os.rename(os.path.join(dest, "gnatsd"), os.path.join(dest, "gnatsd_old"))
    sys.path.insert(0, dest)


def ab(name, rounds, pairs):
    """Median new/old time ratio over `pairs` alternating runs, for each load order."""
    out = []
    for order in (("gnatsd_old", "gnatsd"), ("gnatsd", "gnatsd_old")):
        runs = {pkg: make_run(pkg, name, rounds) for pkg in order}
        if None in runs.values():
            return None
        for _ in range(10):
            for r in runs.values():
                r()
        ratios = []
        for i in range(pairs):
            if i % 2:
                old = runs["gnatsd_old"]()
                new = runs["gnatsd"]()
            else:
                new = runs["gnatsd"]()
                old = runs["gnatsd_old"]()
            ratios.append(new / old)
        out.append(statistics.median(ratios))
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=None, help="parses of the buffer per run")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--ab", metavar="REV", help="compare with git revision REV, paired in one process")
    ap.add_argument("--pairs", type=int, default=300)
    ap.add_argument("cases", nargs="*", default=["none", "allow", "deny", "deliver", "deliver_perm"])
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the deny case logs a violation per PUB, as Go does
    sys.path.insert(0, os.path.dirname(HERE))  # this checkout's gnatsd
    pypy = sys.implementation.name == "pypy"
    impl = f"{sys.implementation.name} {sys.version.split()[0]}"
    if args.ab:
        tmp = tempfile.mkdtemp(prefix="perm_bench_")
        try:
            load_revision(args.ab, tmp)
            for name in args.cases:
                r = ab(name, args.rounds or (10 if pypy else 3), args.pairs)
                if r is None:
                    print(f"{impl:16s} {name:14s} n/a (permissions missing in one of them)")
                else:
                    print(f"{impl:16s} {name:14s} new/{args.ab}: {r[0]:.4f} ({args.ab} loaded first), "
                          f"{r[1]:.4f} (new first): {(r[0] * r[1]) ** 0.5 - 1:+.1%}")
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    for name in args.cases:
        ns = bench(name, args.rounds or (100 if pypy else 20), args.repeat)
        if ns is None:
            print(f"{impl:16s} {name:14s} n/a (no permissions in this gnatsd)")
        else:
            print(f"{impl:16s} {name:14s} {ns:8.1f} ns/PUB")


if __name__ == "__main__":
    main()
