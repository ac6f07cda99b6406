"""loadtests/locustfile.py: short headless locust runs against an in-process gnatsd, so that the
locustfile cannot rot. Locust runs as a subprocess (importing it here would monkey-patch the
test process); the runs go in parallel to stay quick.

Checked: a clean run reports PUB, REQ and MSG requests with no failure; a publish over
max_payload (the server answers -ERR and closes), a request nobody subscribes to (no
responders) and a request nobody answers (timeout) are counted as failures. The final stats
come from `--json` (the CSV files are written once a second, so they lag a short run).
LOCUST_TEST_LOGLEVEL=INFO (or DEBUG) prints each locust run's log.
"""
from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOCUSTFILE = os.path.join(ROOT, "loadtests", "locustfile.py")

pytestmark = pytest.mark.skipif(importlib.util.find_spec("locust") is None,
                                reason="locust is not installed (pip install 'gnatsd[test]')")


def start_locust(server, tmp_path, name, *args, users=4, seconds=3):
    """Start `locust --headless` with --json: the final stats, exact, on stdout."""
    cmd = [sys.executable, "-m", "locust", "-f", LOCUSTFILE, *args, "--headless", "-u", str(users), "-r",
           str(users), "-t", f"{seconds}s", "--host", server.client_url(), "--json", "--loglevel", os.environ.get("LOCUST_TEST_LOGLEVEL", "WARNING")]
    with open(tmp_path / f"{name}.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, text=True, cwd=str(tmp_path))
    proc.log_path = tmp_path / f"{name}.log"
    return proc


def finish(proc):
    """-> (exit code, {request type: stats entry}, locust's log)."""
    out, _ = proc.communicate(timeout=60)
    err = proc.log_path.read_text()
    if os.environ.get("LOCUST_TEST_LOGLEVEL"):
        sys.stderr.write(f"== {proc.log_path}\n{err}\n")
    try:
        entries = json.loads(out[out.index("["):])
    except ValueError:
        raise AssertionError(f"no JSON from locust (exit {proc.returncode}):\n{out}\n{err}") from None
    return proc.returncode, {e["method"]: e for e in entries}, err


def test_locustfile_runs_and_counts_failures(make_server, raw_conn, tmp_path):
    clean = make_server()
    small = make_server(max_payload=1024)
    silent = make_server()
    # A subscriber on the request subject that never answers: requests time out.
    mute = raw_conn(silent)
    mute.send(b"SUB locust.req 1\r\n")
    mute.ping_pong()

    runs = {
        "clean": start_locust(clean, tmp_path, "clean", "--nats-timeout", "10"),
        "max_payload": start_locust(small, tmp_path, "max_payload", "NatsPublisher", "--nats-payload", "2048",
                                    users=2, seconds=2),
        "no_responders": start_locust(clean, tmp_path, "no_responders", "NatsRequester", "--nats-req-subject",
                                      "nobody.listens", "--nats-wait-responders", "0", "--nats-timeout", "30", users=2, seconds=2),
        "timeout": start_locust(silent, tmp_path, "timeout", "NatsRequester", "--nats-timeout", "0.2",
                                "--nats-wait-responders", "0", users=2, seconds=2),
    }
    done = {name: finish(proc) for name, proc in runs.items()}

    rc, stats, err = done["clean"]
    assert rc == 0, (stats, err)
    for kind in ("PUB", "REQ", "MSG", "CONNECT"):
        assert stats[kind]["num_requests"] > 0, (kind, stats)
        assert stats[kind]["num_failures"] == 0, (kind, stats)
    assert stats["PUB"]["name"] == "locust.msgs" and stats["REQ"]["name"] == "locust.req"
    assert stats["PUB"]["total_content_length"] == 16 * stats["PUB"]["num_requests"]

    # Every oversized PUB fails; the server closes the connection each time (-ERR, then
    # close), so the publishers reconnect, and connecting never fails.
    rc, stats, err = done["max_payload"]
    assert rc == 1, (stats, err[-3000:])
    assert stats["PUB"]["num_failures"] == stats["PUB"]["num_requests"] > 0, stats
    assert stats["CONNECT"]["num_failures"] == 0 and stats["CONNECT"]["num_requests"] > 2, stats

    # No responders: every request fails (the server's 503 status: with --nats-timeout 30, no
    # request of this 2-second run can have failed by timing out).
    rc, stats, err = done["no_responders"]
    assert rc == 1
    assert stats["REQ"]["num_failures"] == stats["REQ"]["num_requests"] > 0, stats

    # A subscriber that never answers: every request fails after --nats-timeout 0.2.
    rc, stats, err = done["timeout"]
    assert rc == 1
    assert stats["REQ"]["num_failures"] == stats["REQ"]["num_requests"] > 0, stats
    assert stats["REQ"]["min_response_time"] >= 199, stats


CLIENT_CHECK = r"""
import sys
sys.path.insert(0, sys.argv[1])
import locustfile as lf

host, port = "127.0.0.1", int(sys.argv[2])
c = lf.NatsClient(host, port, "check", timeout=2.0)
got = []
c.subscribe("check.echo", lambda subj, reply, payload, status: c.publish(reply.decode(), payload[::-1]))
c.flush()
assert c.request("check.echo", b"abc") == b"cba"
try:
    c.request("check.nobody", b"x")
except lf.NoResponders as e:
    got.append("no responders: " + str(e))
c.subscribe("check.mute", lambda *a: None)
c.flush()
try:
    c.request("check.mute", b"x", timeout=0.2)
except lf.NatsTimeout as e:
    got.append("timeout: " + str(e))
try:
    c.publish("check.big", b"x" * 2048)  # two writes: the second may meet the server's reset
    c.flush()
except lf.NatsError as e:
    got.append("pub: " + str(e))
import gevent
for _ in range(100):
    if c.closed:
        break
    gevent.sleep(0.02)
assert c.closed
c.close()
print("\n".join(got))
"""


def test_client_errors(make_server):
    """The locustfile's client: a reply, no responders, a timeout, and -ERR on a publish."""
    srv = make_server(max_payload=1024)
    proc = subprocess.run([sys.executable, "-c", CLIENT_CHECK, os.path.dirname(LOCUSTFILE), str(srv.port)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "no responders: no responders",
        "timeout: no reply within 0.2s",
        "pub: -ERR 'Maximum Payload Violation'",
    ]
