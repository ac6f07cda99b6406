#!/usr/bin/env python3
"""Does HTTP monitoring slow message delivery? The monitoring issue's criterion: the monitor
serves 1,000 requests while 100 clients publish, and message delivery slows by at most 10 %.

    python loadtests/monitor_bench.py --server 'gnatsd' --server 'nats-server' [--rounds 3]
        [--pubs 100] [--requests 1000] [--paths /varz,/connz] [--seconds 10] [--size 128]

For each server (started fresh, `-a HOST -p PORT -m PORT`): `gnatsd bench pubsub` with
`--pubs` publishing clients and one subscriber on one subject, every client a process with
its own connection, publishing as fast as the server takes the messages. Two quiet warm-up
runs size the message count so that a run lasts about `--seconds`; a monitored warm-up run
follows (PyPy's JIT compiles the monitor's code then: its line shows the cold cost). Then `--rounds` pairs of runs with
that count: one quiet, one while another process sends `--requests` monitoring requests
(cycling through `--paths` on one keep-alive connection, evenly spaced over 75 % of the
shortest quiet run's time, so that they all fall inside the run; a monitored run that ends
before the last request is run again); the order of the pair alternates from round to
round. /connz then lists the 101 bench connections.

Delivery rate = messages the subscriber received per second (the run checks that every
message arrived). Slowdown = 1 - monitored rate / quiet rate, per round and for the medians.
The server runs at full load, the strictest case: every moment the hub spends on a request
is a moment it does not deliver. One JSON line per run, then one summary line per server.
"""
from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from gnatsd.bench import percentile, run_scenario  # noqa: E402
from servers import start  # noqa: E402


def poll(mport, paths, count, interval, go, stop, results):
    """Runs in its own process: from `go`, send `count` requests, one every `interval`
    seconds, until done or `stop`; put (durations, failed (path, status) pairs)."""
    c = http.client.HTTPConnection("127.0.0.1", mport, timeout=60)
    go.wait()
    t0 = time.monotonic()
    times, bad = [], []
    for k in range(count):
        delay = t0 + k * interval - time.monotonic()
        if delay > 0 and stop.wait(delay):
            break
        path = paths[k % len(paths)]
        t = time.perf_counter()
        c.request("GET", path)
        r = c.getresponse()
        r.read()
        times.append(time.perf_counter() - t)
        if r.status != 200:
            bad.append((path, r.status))
    c.close()
    results.put((times, bad))


def scenario(port, pubs, size, msgs, timeout):
    return {"name": f"{pubs}pubsub{size}", "mode": "pubsub", "size": size, "msgs": msgs, "pubs": pubs, "subs": 1,
            "subject": f"bench.monitor.{os.urandom(4).hex()}", "timeout": timeout, "req_timeout": 5.0,
            "server": {"host": "127.0.0.1", "port": port, "user": None, "password": None, "token": None,
                       "url": f"nats://127.0.0.1:{port}"}}


def checked(result):
    if result.get("error"):
        sys.exit(f"run failed: {result['error']}")
    return result


def monitored_run(sc, mport, paths, count, interval):
    """One run while a poller process sends the requests; (result, request durations)."""
    ctx = multiprocessing.get_context("fork")
    go, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
    poller = ctx.Process(target=poll, args=(mport, paths, count, interval, go, stop, results), daemon=True)
    poller.start()
    result = checked(run_scenario(sc, on_start=go.set))
    stop.set()
    times, bad = results.get(timeout=120)
    poller.join(10)
    if bad:
        sys.exit(f"monitoring requests failed: {bad[:5]}")
    return result, times


def ms(xs):
    xs = sorted(xs)
    return {"n": len(xs), "p50_ms": round(percentile(xs, 50) * 1000, 3), "p99_ms": round(percentile(xs, 99) * 1000, 3),
            "max_ms": round(xs[-1] * 1000, 3) if xs else 0.0}


def bench(cmd, args):
    proc, port, mport = start(cmd, monitor=True)
    paths = args.paths.split(",")
    try:
        # Warm-up (PyPy's JIT): two quiet runs, the second of about `--seconds`, to size the
        # runs, then a monitored one, reported but not counted.
        rate = checked(run_scenario(scenario(port, args.pubs, args.size, args.pubs * 2000, args.timeout)))["msgs_per_s"]
        msgs = max(args.pubs * 100, int(rate * args.seconds) // args.pubs * args.pubs)
        warm = checked(run_scenario(scenario(port, args.pubs, args.size, msgs, args.timeout)))
        rate = max(rate, warm["msgs_per_s"])
        msgs = args.msgs or max(args.pubs * 100, int(rate * args.seconds) // args.pubs * args.pubs)
        quiet_seconds = [msgs / rate]
        result, times = monitored_run(scenario(port, args.pubs, args.size, msgs, args.timeout), mport, paths,
                                      args.requests, 0.75 * quiet_seconds[0] / args.requests)
        print(json.dumps({"server": cmd, "round": 0, "phase": "warm-up, monitored", "requests_in_run": len(times),
                          "request": ms(times), "msgs": result["msgs"], "seconds": result["seconds"],
                          "msgs_per_s": result["msgs_per_s"], "quiet_msgs_per_s_before": warm["msgs_per_s"]}),
              flush=True)
        rates = {"quiet": [], "monitored": []}
        all_times = []
        for r in range(args.rounds):
            order = ("quiet", "monitored") if r % 2 == 0 else ("monitored", "quiet")
            for phase in order:
                for attempt in range(3):
                    sc = scenario(port, args.pubs, args.size, msgs, args.timeout)
                    line = {"server": cmd, "round": r + 1, "phase": phase}
                    if phase == "quiet":
                        result = checked(run_scenario(sc))
                        quiet_seconds.append(result["seconds"])
                        break
                    # Spread over 75 % of the shortest quiet run, so that all fall inside.
                    interval = 0.75 * min(quiet_seconds) / args.requests
                    result, times = monitored_run(sc, mport, paths, args.requests, interval)
                    line.update(requests_in_run=len(times), request=ms(times))
                    if len(times) == args.requests:
                        all_times += times
                        break
                    line.update(msgs_per_s=result["msgs_per_s"], incomplete="run again")
                    print(json.dumps(line), flush=True)
                else:
                    sys.exit(f"{args.requests} requests did not fit in a run three times")
                rates[phase].append(result["msgs_per_s"])
                line.update(msgs=result["msgs"], seconds=result["seconds"], msgs_per_s=result["msgs_per_s"])
                print(json.dumps(line), flush=True)
        quiet, mon = statistics.median(rates["quiet"]), statistics.median(rates["monitored"])
        per_round = [round(1 - m / q, 3) for q, m in zip(rates["quiet"], rates["monitored"])]
        mean_seconds = statistics.mean(msgs / r for r in rates["monitored"])
        print(json.dumps({"server": cmd, "summary": True, "pubs": args.pubs, "size": args.size, "msgs": msgs,
                          "requests_per_run": args.requests, "paths": paths,
                          "requests_per_s": round(args.requests / mean_seconds, 1),
                          "quiet_msgs_per_s": quiet, "monitored_msgs_per_s": mon,
                          "slowdown": round(1 - mon / quiet, 3), "slowdown_per_round": per_round,
                          "request": ms(all_times), "server_info_go": warm["server_info"].get("go")}), flush=True)
    finally:
        proc.terminate()
        proc.wait(10)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--server", action="append", required=True, help="server command (repeatable)")
    ap.add_argument("--pubs", type=int, default=100, help="publishing clients (default 100)")
    ap.add_argument("--requests", type=int, default=1000, help="monitoring requests per monitored run")
    ap.add_argument("--paths", default="/varz,/connz", help="comma-separated paths, requested in turn")
    ap.add_argument("--seconds", type=float, default=10.0, help="about how long a run lasts")
    ap.add_argument("--msgs", type=int, default=0, help="messages per run (default: sized by --seconds)")
    ap.add_argument("--size", type=int, default=128, help="payload bytes")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=300.0, help="seconds before a run fails")
    args = ap.parse_args()
    for cmd in args.server:
        bench(cmd, args)


if __name__ == "__main__":
    main()
