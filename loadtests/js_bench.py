"""Pull-consumer delivery rates of gnatsd and the Go nats-server, side by side.

    python loadtests/js_bench.py [--rounds 3] [--server NAME=COMMAND ...] [-n 100000]

Builds `jspull/main.go` (Go, with the Go NATS client Debian packages, as
../shared/natsbench does) and, for each round and each server, starts the server fresh
with JetStream on a new store directory and runs the cases below; prints a markdown table
of medians (messages per second) with the ratio to the last server (the Go one by default).
Publishing rates are ../shared/natsbench/compare.py's `jspub128` / `jspubsync128`.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile

import servers

HERE = os.path.dirname(os.path.abspath(__file__))
CASES = [
    ("pull128 ack explicit batch 100", ["-size", "128", "-batch", "100", "-ack", "explicit"]),
    ("pull128 ack none batch 100", ["-size", "128", "-batch", "100", "-ack", "none"]),
    ("pull128 ack explicit batch 1000", ["-size", "128", "-batch", "1000", "-ack", "explicit"]),
]


def build():
    """Build jspull into ~/.cache/gnatsd-loadtests (Go and Debian's nats.go: see natsbench)."""
    out = os.path.expanduser("~/.cache/gnatsd-loadtests/jspull")
    src = os.path.join(HERE, "jspull", "main.go")
    if not os.path.exists(out) or os.path.getmtime(src) > os.path.getmtime(out):
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with tempfile.TemporaryDirectory() as work:
            shutil.copy(src, work)
            env = dict(os.environ, GO111MODULE="off", GOPATH="/usr/share/gocode", GOCACHE=os.path.join(work, "cache"))
            subprocess.run(["go", "build", "-o", out, "main.go"], cwd=work, env=env, check=True)
    return out


def run_case(binary, cmd, args, n):
    with tempfile.TemporaryDirectory() as sd:
        proc, port = servers.start(f"{cmd} -js -sd {sd}")
        try:
            out = subprocess.run([binary, "-url", f"nats://127.0.0.1:{port}", "-n", str(n)] + args,
                                 capture_output=True, text=True, timeout=300)
        finally:
            proc.terminate()
            proc.wait(20)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    if r.get("error"):
        sys.exit(f"{cmd}: {r['error']}")
    return r["msgs_per_s"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("-n", type=int, default=100_000)
    ap.add_argument("--server", action="append", default=[], metavar="NAME=COMMAND")
    a = ap.parse_args(argv)
    named = [s.split("=", 1) for s in a.server] or [["gnatsd", "gnatsd"], ["go", "nats-server"]]
    binary = build()
    results = {(name, case): [] for name, _ in named for case, _ in CASES}
    for _ in range(a.rounds):
        for case, args in CASES:
            for name, cmd in named:
                results[name, case].append(run_case(binary, cmd, args, a.n))
    names = [name for name, _ in named]
    cols = [f"{n} msg/s" for n in names] + [f"{n}/{names[-1]}" for n in names[:-1]]
    print("| case | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for case, _ in CASES:
        med = [statistics.median(results[n, case]) for n in names]
        cells = [f"{m:,.0f}" for m in med] + [f"{m / med[-1]:.2f}" for m in med[:-1]]
        print(f"| {case} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
