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

Each case runs `--repeat` times `--rounds` parses of the buffer; the best time is reported.
"""
from __future__ import annotations

import argparse
import logging
import socket
import sys
import time

from gnatsd import Options, Server
from gnatsd.conn import Client

N_OPS = 2000
BUF = b"PUB bench.subject 16\r\n0123456789abcdef\r\n" * N_OPS
BUF_REPLY = b"PUB bench.subject _INBOX.abc.1 16\r\n0123456789abcdef\r\n" * N_OPS


def make_client(srv, cid):
    a, b = socket.socketpair()
    c = Client(srv, a, cid, ("127.0.0.1", 40000 + cid))
    c.connect_received = True
    c.auth_pending = False
    c.verbose = c.pedantic = False
    c._peer = b  # keep the other end open
    return c


def apply_perms(client, perms):
    # Go: RegisterUser -> setPermissions. Falls back to nothing before the permissions land.
    register = getattr(client, "register_user", None)
    if register is None:
        return False
    from gnatsd.auth import User, validate_response_permissions
    validate_response_permissions(perms)
    register(User("bench", "", perms))
    return True


def run_case(name, rounds, repeat):
    srv = Server(Options())
    c = make_client(srv, 1)
    buf = BUF
    sub_client = None
    if name == "allow":
        from gnatsd.auth import Permissions, SubjectPermission
        if not apply_perms(c, Permissions(publish=SubjectPermission(allow=["bench.>"]))):
            return None
    elif name == "deny":
        from gnatsd.auth import Permissions, SubjectPermission
        if not apply_perms(c, Permissions(publish=SubjectPermission(deny=["bench.>"]))):
            return None
    elif name in ("deliver", "deliver_perm"):
        sub_client = make_client(srv, 2)
        if name == "deliver_perm":
            from gnatsd.auth import Permissions, ResponsePermission
            if not apply_perms(sub_client, Permissions(response=ResponsePermission(1, 60.0))):
                return None
        sub_client.process_sub([b"bench.subject", b"1"])
        buf = BUF_REPLY
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(rounds):
            c.parse(buf)
            c.out.clear()
            c.pb = 0
            c.pcd.clear()
            if sub_client is not None:
                sub_client.out.clear()
                sub_client.pb = 0
        best = min(best, time.perf_counter() - t0)
    return best / (rounds * N_OPS) * 1e9


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("cases", nargs="*", default=["none", "allow", "deny", "deliver", "deliver_perm"])
    args = ap.parse_args(argv)
    logging.disable(logging.CRITICAL)  # the deny case logs a violation per PUB, as Go does
    impl = f"{sys.implementation.name} {sys.version.split()[0]}"
    for name in args.cases:
        # Warm up (the JIT on PyPy), then measure.
        run_case(name, max(args.rounds // 3, 1), 2)
        ns = run_case(name, args.rounds, args.repeat)
        if ns is None:
            print(f"{impl:16s} {name:14s} n/a (no permissions module)")
        else:
            print(f"{impl:16s} {name:14s} {ns:8.1f} ns/PUB")


if __name__ == "__main__":
    main()
