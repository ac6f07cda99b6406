"""`gnatsd bench` (gnatsd/bench.py): each mode briefly against an in-process gnatsd, checking
the JSON (counts are what was sent, latencies positive) and the table; bad arguments exit 2
with a clear message; a run that cannot work exits 1 and says why."""
from __future__ import annotations

import importlib.util
import io
import json
import os
import socket
import subprocess
import sys

import pytest

from gnatsd import bench

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_bench(*args, timeout=60):
    """`python -m gnatsd.bench ARGS` -> (returncode, stdout, stderr, [json results])."""
    proc = subprocess.run([sys.executable, "-m", "gnatsd.bench", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)
    results = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    return proc.returncode, proc.stdout, proc.stderr, results


def by_name(results):
    return {r["name"]: r for r in results}


def test_every_mode_counts_and_latencies(server, tmp_path):
    n = 3000
    json_file = tmp_path / "out.json"
    rc, out, err, results = run_bench("pub", "pubsub", "fanout", "queue", "req", "-n", str(n), "--url",
                                      server.client_url(), "--json-file", str(json_file), "--no-progress")
    assert rc == 0, err
    assert [r["mode"] for r in results] == ["pub", "pubsub", "fanout", "queue", "req"]
    assert json_file.read_text().splitlines() == [line for line in out.splitlines() if line.startswith("{")]
    r = by_name(results)
    for res in results:
        assert "error" not in res, res
        assert res["size"] == 16 and res["seconds"] > 0 and res["msgs_per_s"] > 0 and res["mb_per_s"] > 0
        assert res["published"] == n
        assert res["server_info"]["version"]
        assert res["url"] == server.client_url()
    assert r["pub16"]["msgs"] == n and r["pub16"]["subs"] == 0
    assert r["pubsub16"]["per_sub"] == [n] and r["pubsub16"]["received"] == n
    assert r["fanout5x16"]["per_sub"] == [n] * 5 and r["fanout5x16"]["msgs"] == 5 * n
    queue = r["queue3x16"]
    assert len(queue["per_sub"]) == 3 and sum(queue["per_sub"]) == n and queue["msgs"] == n
    req = r["req16"]
    assert req["msgs"] == n and req["per_responder"] == [n]
    assert 0 < req["min_us"] <= req["p50_us"] <= req["p90_us"] <= req["p99_us"] <= req["max_us"]
    # The table: a header and one row per run, before the JSON.
    table = out.split("\n\n")[0]
    assert "msgs/s" in table and "p99 us" in table and "FAILED" not in table
    for name in ("pub16", "pubsub16", "fanout5x16", "queue3x16", "req16"):
        assert any(line.startswith(name + " ") for line in table.splitlines()), (name, table)
    assert "\r" not in err and "sent" not in err  # --no-progress


def test_payload_sizes_publishers_and_subscribers(server):
    url = server.client_url()
    rc, out, err, results = run_bench("pubsub", "--size", "16KiB", "-n", "300", "--subs", "2", "--url", url,
                                      "--format", "json", "--no-progress")
    assert rc == 0, err
    (res,) = results
    assert res["size"] == 16384 and res["per_sub"] == [300, 300] and res["name"] == "pubsub2x16k"
    assert res["mb_per_s"] == pytest.approx(res["msgs_per_s"] * 16384 / 1e6, rel=1e-3)
    assert not out.startswith("gnatsd bench")  # json only
    # 1 MiB frames span several reads: the reader skips the rest of each payload.
    rc, out, err, results = run_bench("fanout", "--subs", "2", "--size", "1MB", "-n", "20", "--url", url,
                                      "--no-progress")
    assert rc == 0, err
    assert results[0]["per_sub"] == [20, 20] and results[0]["size"] == 1048576
    # Three publishers share N; an empty payload works too.
    rc, out, err, results = run_bench("queue", "--pubs", "3", "--size", "0", "pub", "-n", "1001", "--url", url,
                                      "--no-progress")  # modes and options in any order
    assert rc == 0, err
    q, p = results
    assert q["pubs"] == 3 and q["published"] == 1001 and sum(q["per_sub"]) == 1001
    assert p["published"] == 1001 and p["size"] == 0 and p["mb_per_s"] == 0


def test_suite_and_plot(server, tmp_path):
    plot = tmp_path / "bench.png"
    args = ["suite", "-n", "1000", "--url", server.client_url(), "--no-progress", "--label", "test"]
    if importlib.util.find_spec("matplotlib") is not None:
        args += ["--plot", str(plot)]
    rc, out, err, results = run_bench(*args)
    assert rc == 0, err
    assert [r["name"] for r in results] == ["pub16", "pubsub16", "fanout5x16", "queue3x16", "pubsub16k", "req16"]
    r = by_name(results)
    assert r["pubsub16k"]["size"] == 16384 and r["pubsub16k"]["published"] == 100
    assert r["req16"]["msgs"] == 100 and r["req16"]["p50_us"] > 0
    assert all(x["label"] == "test" for x in results)
    assert "[test]" in out.splitlines()[0]
    if "--plot" in args:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gnatsd_bench_command_dispatches(server):
    """`gnatsd bench ...` (here `python -m gnatsd bench`) runs the tool, unpatched."""
    proc = subprocess.run([sys.executable, "-m", "gnatsd", "bench", "pub", "-n", "100", "--url",
                           server.client_url(), "--format", "json", "--no-progress"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["published"] == 100


@pytest.mark.parametrize("args, message", [
    (["bogus"], "unknown mode 'bogus'"),
    (["pub", "--size", "abc"], "invalid size 'abc'"),
    (["pub", "-n", "0"], "invalid count '0'"),
    (["pub", "-n", "lots"], "invalid count 'lots'"),
    (["pub", "--url", "http://127.0.0.1:4222"], "not a NATS URL"),
    (["pub", "--url", "tls://127.0.0.1:4222"], "tls:// is not supported"),
    (["pub", "--url", "nats://127.0.0.1:99999"], "bad port"),
    (["queue", "--subs", "0"], "queue needs --subs >= 1"),
    (["pub", "--pubs", "0"], "--pubs: must be >= 1"),
    (["pub", "--subject", "a.*"], "must not contain wildcards"),
    (["pub", "--timeout", "-1"], "--timeout: must be > 0"),
    (["pub", "--format", "xml"], "invalid choice: 'xml'"),
    (["pub", "--size", "100MB"], "larger than any NATS server's max_payload"),
])
def test_bad_arguments_exit_2(args, message, capsys):
    with pytest.raises(SystemExit) as exc:
        bench.main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: gnatsd bench" in err and message in err, err


def test_cannot_connect_exits_1():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    rc, out, err, results = run_bench("suite", "--url", f"nats://127.0.0.1:{port}", "--no-progress")
    assert rc == 1
    assert "cannot connect to nats://127.0.0.1:%d" % port in err
    (res,) = results  # the suite stops at the first run that cannot connect
    assert "Connection refused" in res["error"] and res["msgs"] == 0
    assert "FAILED" in out


def test_payload_over_max_payload_exits_1(make_server):
    srv = make_server(max_payload=1024)
    rc, out, err, results = run_bench("pub", "--size", "2048", "-n", "10", "--url", srv.client_url(),
                                      "--no-progress")
    assert rc == 1
    assert "larger than the server's max_payload 1024" in err
    assert "larger than the server's max_payload 1024" in results[0]["error"]


def test_progress_line_only_after_a_second():
    stream = io.StringIO()
    progress = bench.Progress(True, stream)
    progress.update(0.5, "early")
    assert stream.getvalue() == ""
    progress.update(1.2, "pub16:   1.2s  sent 10/20")
    assert stream.getvalue() == "pub16:   1.2s  sent 10/20\n"  # not a terminal: whole lines
    progress.update(1.3, "too soon")  # at most one line a second
    assert "too soon" not in stream.getvalue()

    class Tty(io.StringIO):
        def isatty(self):
            return True

    tty = Tty()
    progress = bench.Progress(True, tty)
    progress.update(2.0, "req16:   2.0s  sent 5/10")
    progress.done()
    assert tty.getvalue() == "\rreq16:   2.0s  sent 5/10\x1b[K\r\x1b[K"
    quiet = io.StringIO()
    bench.Progress(False, quiet).update(5.0, "x")
    assert quiet.getvalue() == ""


def test_helpers():
    assert [bench.parse_size(s) for s in ("0", "16", "16k", "16KB", "16KiB", "1M", "1MB")] == [
        0, 16, 16384, 16384, 16384, 1048576, 1048576]
    assert [bench.parse_count(s) for s in ("10", "1_000", "1e3", "5k", "2M")] == [10, 1000, 1000, 5000, 2000000]
    u = bench.parse_url("nats://bob:s%40cret@localhost:4333")
    assert (u["host"], u["port"], u["user"], u["password"], u["token"]) == ("localhost", 4333, "bob", "s@cret", None)
    assert bench.parse_url("tok@127.0.0.1")["token"] == "tok"
    assert bench.parse_url("127.0.0.1")["url"] == "nats://127.0.0.1:4222"
    assert bench.percentile([1, 2, 3, 4], 50) == 2 and bench.percentile([1, 2, 3, 4], 99) == 4
    assert bench.size_label(16384) == "16k" and bench.size_label(1000) == "1000"
