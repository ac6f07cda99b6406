"""The `gnatsd` command, run as a real subprocess: flags, config file, logging, pid and
ports files, signals, lame duck mode, `--signal`, exit codes.

Go: main.go, server/signal_test.go, server/log_test.go, test/ports_test.go, test/pid_test.go.
Every server listens on 127.0.0.1 and a random port, found through its ports file; tests
wait by polling (check_for), never by fixed sleeps.
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import INFO_RE, PONG_RE, RawConn, check_for

ROOT = Path(__file__).resolve().parent.parent
# Run this work tree, not a copy of gnatsd installed in site-packages (the commands run in tmp dirs).
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
TS = r"\d{4}/\d\d/\d\d \d\d:\d\d:\d\d\.\d{6}"
START_TIMEOUT = 20.0  # a cold interpreter importing gevent on a loaded machine


class Gnatsd:
    """One `python -m gnatsd` process; stderr is collected line by line in the background."""

    def __init__(self, args, tmp_path, module="gnatsd", ports=True, host=True):
        self.ports_dir = tmp_path / f"ports-{time.monotonic_ns()}"
        self.ports_dir.mkdir()
        cmd = [sys.executable, "-m", module]
        if host:
            cmd += ["-a", "127.0.0.1"]
        if ports:
            cmd += ["--ports_file_dir", str(self.ports_dir)]
        cmd += list(args)
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
                                     env=ENV)
        self.lines = []
        self.stdout = ""
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self.port = None

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self):
        return self.proc.pid

    def ports_file(self):
        found = glob.glob(str(self.ports_dir / "*.ports"))
        return found[0] if found else None

    def wait_ready(self):
        """Wait for the ports file (written once the server is up and its signals handled)."""
        def ready():
            if self.proc.poll() is not None:
                raise AssertionError(f"gnatsd exited with {self.proc.returncode}:\n" + "\n".join(self.lines))
            return self.ports_file()
        path = check_for(START_TIMEOUT, ready)
        with open(path) as f:
            self.ports = json.load(f)
        self.port = int(self.ports["nats"][0].rsplit(":", 1)[1])
        return self

    def wait_log(self, pattern, total=10.0):
        rx = re.compile(pattern)
        return check_for(total, lambda: next((m for m in map(rx.search, list(self.lines)) if m), None))

    def log_text(self):
        return "\n".join(self.lines)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def wait_exit(self, total=10.0):
        try:
            rc = self.proc.wait(total)
        except subprocess.TimeoutExpired:
            raise AssertionError("gnatsd did not exit:\n" + self.log_text()) from None
        self._reader.join(5)
        return rc

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(5)
        if self.proc.stdout:
            self.proc.stdout.close()


@pytest.fixture
def gnatsd(tmp_path):
    """Factory: gnatsd(*args, ready=True) -> a running Gnatsd; every one is killed at teardown."""
    started = []

    def start(*args, ready=True, **kw):
        g = Gnatsd(["-p", "-1", *args], tmp_path, **kw)
        started.append(g)
        return g.wait_ready() if ready else g

    yield start
    for g in started:
        g.stop()


def run(args, tmp_path, timeout=30):
    """Run gnatsd to completion; returns CompletedProcess with text output."""
    return run_all([args], tmp_path, timeout)[0]


def run_all(arg_lists, tmp_path, timeout=30, env=None):
    """Run several gnatsd commands at once (an interpreter start is most of their time,
    about a second on PyPy); CompletedProcess for each, in order. `env` adds variables."""
    env = dict(ENV, **(env or {}))
    procs = [(args, subprocess.Popen([sys.executable, "-m", "gnatsd", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)) for args in arg_lists]
    results = []
    for args, proc in procs:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            for _, p in procs:
                p.kill()
            raise
        results.append(subprocess.CompletedProcess(args, proc.returncode, out, err))
    return results


def connect(port, **fields):
    c = RawConn(port)
    info = json.loads(c.expect(INFO_RE).group(1))
    connect_opts = dict({"verbose": False, "pedantic": False, "protocol": 1}, **fields)
    c.send(b"CONNECT " + json.dumps(connect_opts).encode() + b"\r\nPING\r\n")
    c.expect(PONG_RE)
    return c, info


# -- one-shot commands -------------------------------------------------------------------------


def test_version(tmp_path):
    for r in run_all([["--version"], ["version"]], tmp_path):
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines() == ["nats-server: v2.9.10", "gnatsd: v0.1.0"]


def test_help(tmp_path):
    for r in run_all([["-h"], ["help"]], tmp_path):
        assert r.returncode == 0, r.stderr
        assert "Usage: gnatsd [options]" in r.stdout
        for flag in ("--addr", "--port", "--config", "--signal", "--ports_file_dir", "--logtime", "-DVV",
                     "--jetstream", "--tlscert", "--cluster_listen", "--help_tls"):
            assert flag in r.stdout


# (every kind of bad command line is in test_conf.py; these check the exit path)
BAD_COMMAND_LINES = [
    (["--bogus"], "gnatsd: flag provided but not defined: -bogus"),
    (["-p", "abc"], 'gnatsd: invalid value "abc" for flag -p: parse error'),
    (["serve"], 'gnatsd: unrecognized command: "serve"'),
]


def test_bad_command_line_exits_1(tmp_path):
    results = run_all([args for args, _ in BAD_COMMAND_LINES], tmp_path)
    for r, (_, message) in zip(results, BAD_COMMAND_LINES):
        assert r.returncode == 1, r.args
        assert r.stderr.splitlines()[0] == message
        assert "Traceback" not in r.stderr


def test_check_config(tmp_path):
    sample = ROOT / "etc" / "gnatsd.conf"
    ok, missing = run_all([["-t", "-c", str(sample)], ["-t"]], tmp_path)
    assert (ok.returncode, ok.stderr.strip()) == (0, f"gnatsd: configuration file {sample} is valid")
    assert missing.returncode == 1 and "must specify [-c, --config] option" in missing.stderr


def test_config_errors_exit_1_with_locations(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text('port: 4222\nmax_payload: 1XB\nserver_name: "unterminated\nfoo: bar\n'
                    'authorization {\n  token: "secret"\n}\ncluster {\n  port: 6222\n}\nping_interval: 10x\n')
    r = run(["-c", str(path)], tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    lines = r.stderr.splitlines()
    assert [line.split(": ", 1)[0] for line in lines[:-1]] == [f"{path}:{n}" for n in ("2:1", "3:14", "4:1", "8:1",
                                                                                       "11:1")]
    assert lines[1].endswith('unterminated quoted string (missing closing "): the next " is at 6:10, and what '
                             'follows it there is not valid')
    assert lines[2].endswith('unknown field "foo"')
    assert lines[3].endswith("cluster is not yet supported by gnatsd")
    assert lines[-1] == f"gnatsd: 5 errors in configuration file {path}"


def test_check_config_with_includes_and_variables(tmp_path):
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "limits.conf").write_text("MAXC = 100\nmax_payload: 2MB\nauthorization { token: $TOKEN }\n")
    (tmp_path / "ok.conf").write_text("listen: 127.0.0.1:4333\ninclude conf.d/limits.conf\nmax_connections: $MAXC\n")
    (tmp_path / "refused.conf").write_text("port: 4222\ncluster {\n  name: c1\n}\ntls {\n  cert_file: c.pem\n}\n")
    (tmp_path / "undefined.conf").write_text("port: $NOPE\n")
    ok, refused, undefined = run_all([["-t", "-c", "ok.conf"], ["-t", "-c", "refused.conf"],
                                      ["-t", "--config", "undefined.conf"]], tmp_path, env={"TOKEN": "s3cret"})
    assert (ok.returncode, ok.stderr.strip()) == (0, "gnatsd: configuration file ok.conf is valid")
    assert (refused.returncode, refused.stderr.splitlines()) == (1, [
        "refused.conf:2:1: cluster is not yet supported by gnatsd",
        "refused.conf:5:1: missing 'key_file' in TLS configuration",
        "gnatsd: 2 errors in configuration file refused.conf"])
    assert (undefined.returncode, undefined.stderr.splitlines()[0]) == (1, (
        "undefined.conf:1:7: variable reference for '$NOPE' can not be found: define NOPE earlier in this file (or "
        "in an enclosing map), or set the environment variable NOPE"))
    no_token = run(["-t", "-c", "ok.conf"], tmp_path)
    assert no_token.returncode == 1
    assert no_token.stderr.splitlines()[0].startswith("conf.d/limits.conf:3:24: variable reference for '$TOKEN' can")


def test_missing_config_file(tmp_path):
    r = run(["-c", "nope.conf"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "gnatsd: cannot read config file nope.conf: No such file or directory"


def test_conflicting_options_exit_1(tmp_path):
    path = tmp_path / "c.conf"
    path.write_text("max_payload: 10MB\nmax_pending: 1MB\n")
    r = run(["-a", "127.0.0.1", "-p", "-1", "-c", str(path)], tmp_path)
    assert r.returncode == 1
    assert r.stderr.strip() == "gnatsd: max_payload (10485760) cannot be higher than max_pending (1048576)"


def test_port_in_use_exits_1(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(["-a", "127.0.0.1", "-p", str(port)], tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert re.search(rf'\[FTL\] Error listening on port: 127\.0\.0\.1:{port}, "Address already in use"$', r.stderr)


@pytest.mark.parametrize("args, text", [
    (["-m", "8222", "-ms", "8443"], "can't specify both HTTP (8222) and HTTPs (8443) ports"),
    (["-ms", "8443"], "TLS cert and key required for HTTPS"),
])
def test_bad_monitoring_options_exit_1_with_go_text(tmp_path, args, text):
    r = run(["-a", "127.0.0.1", "-p", "-1", *args], tmp_path)
    assert r.returncode == 1
    assert "Traceback" not in r.stderr
    assert re.search(rf"\[FTL\] Can't start monitoring: {re.escape(text)}$", r.stderr, re.M), r.stderr


def test_log_file_that_cannot_be_opened(tmp_path):
    r = run(["-a", "127.0.0.1", "-p", "-1", "-l", str(tmp_path / "no" / "such" / "dir.log")], tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("gnatsd: error opening log file ")


# -- a running server --------------------------------------------------------------------------


def test_random_port_ports_file_pid_file_and_log(gnatsd, tmp_path):
    pid_file = tmp_path / "gnatsd.pid"
    g = gnatsd("-D", "-P", str(pid_file))
    assert g.ports == {"nats": [f"nats://127.0.0.1:{g.port}"]}
    assert os.path.basename(g.ports_file()) == f"gnatsd_{g.pid}.ports"
    assert pid_file.read_text() == str(g.pid)
    m = g.wait_log(rf"^\[(\d+)\] ({TS}) \[INF\] Listening for client connections on 127\.0\.0\.1:(\d+)$")
    assert int(m.group(1)) == g.pid and int(m.group(3)) == g.port
    g.wait_log(rf"^\[{g.pid}\] {TS} \[INF\] Server is ready$")
    c, info = connect(g.port)
    assert info["port"] == g.port and info["version"] == "2.9.10"
    g.wait_log(r"\[DBG\] .* - Client connection created")
    g.signal(signal.SIGTERM)
    assert g.wait_exit() == 0
    assert c.read_all_until_closed() == b""  # the client was closed by the shutdown
    c.close()
    assert g.ports_file() is None  # removed at exit
    assert not pid_file.exists()  # removed at exit (Go leaves it)
    assert re.search(rf"^\[{g.pid}\] {TS} \[INF\] Server Exiting\.\.$", g.log_text(), re.M)
    for line in g.lines:
        assert re.fullmatch(rf"\[{g.pid}\] {TS} \[(INF|DBG|WRN|ERR|TRC)\] .*", line), line


# -D shows debug lines; -V alone does not (in Go trace does not imply debug).
DEBUG_FLAGS = [([], False), (["-D"], True), (["-V"], False)]


def test_debug_flags(gnatsd):
    servers = [gnatsd(*flags, ready=False) for flags, _ in DEBUG_FLAGS]
    for g in servers:
        g.wait_ready()
        c, _ = connect(g.port)
        c.close()
        g.signal(signal.SIGINT)
    for g, (flags, debug_shown) in zip(servers, DEBUG_FLAGS):
        assert g.wait_exit() == 0
        debug_lines = [line for line in g.lines if "[DBG]" in line]
        if debug_shown:
            assert any("Client connection created" in line for line in debug_lines), (flags, g.lines)
            assert any('Trapped "interrupt" signal' in line for line in debug_lines), (flags, g.lines)
        else:
            assert debug_lines == [], flags


def test_flag_forms_logtime_false_and_python_m_gnatsd_cli(tmp_path):
    g = Gnatsd(["--port=-1", "-T=false", "--name=alpha", "--server_name", "beta", "-n", "gamma"], tmp_path,
               module="gnatsd.cli").wait_ready()
    try:
        c, info = connect(g.port)
        assert info["server_name"] == "gamma"  # the last one wins
        c.close()
        g.wait_log(rf"^\[{g.pid}\] \[INF\] Server is ready$")
        assert all(re.fullmatch(rf"\[{g.pid}\] \[\w+\] .*", line) for line in g.lines), g.lines
        assert os.path.basename(g.ports_file()) == f"gnatsd_{g.pid}.ports"
    finally:
        g.stop()


@pytest.mark.skipif(shutil.which("gnatsd") is None, reason="the gnatsd console script is not on PATH")
def test_console_script(tmp_path):
    r = subprocess.run(["gnatsd", "--version"], capture_output=True, text=True, timeout=30)
    assert (r.returncode, r.stdout.splitlines()[0]) == (0, "nats-server: v2.9.10")


def test_config_file_and_flags_override_it(gnatsd, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        path = tmp_path / "o.conf"
        # the config's port is taken: the server only starts if -p -1 overrides it
        path.write_text(f"port: {busy.getsockname()[1]}\nserver_name: fromconf\ndebug: true\n"
                        "max_payload: 512KB\nlogtime: false\n")
        g = gnatsd("-c", str(path), "--name", "fromflag")
        c, info = connect(g.port)
    assert info["server_name"] == "fromflag"
    assert info["max_payload"] == 512 * 1024
    g.wait_log(rf"^\[{g.pid}\] \[DBG\] .* - Client connection created$")
    c.close()


def test_unsupported_features_are_accepted_with_a_warning(gnatsd):
    g = gnatsd("--cluster", "nats://127.0.0.1:6222", "--routes", "nats://127.0.0.1:6223", "--cluster_name", "c1",
               "--no_advertise", "--connect_retries", "3", "-s", "--profile", "6060", "--max_traced_msg_len", "10")
    for feature in ("Clustering", "Syslog", "Profiling"):
        g.wait_log(rf"\[WRN\] {feature} is not yet supported by gnatsd")
    connect(g.port)[0].close()


def test_log_file_sigusr1_reopen_and_sighup(gnatsd, tmp_path):
    log_file = tmp_path / "gnatsd.log"
    g = gnatsd("-l", str(log_file))
    check_for(10, lambda: "Server is ready" in log_file.read_text())
    assert not any("[INF]" in line for line in g.lines)  # nothing on stderr
    rotated = tmp_path / "gnatsd.log.1"
    os.rename(log_file, rotated)
    g.signal(signal.SIGUSR1)
    check_for(10, lambda: log_file.exists() and "File log re-opened" in log_file.read_text())
    assert re.fullmatch(rf"\[{g.pid}\] {TS} \[INF\] File log re-opened\n", log_file.read_text())
    assert "File log re-opened" not in rotated.read_text()
    # SIGHUP without a config file: Go's error is logged, and the server keeps running
    g.signal(signal.SIGHUP)
    check_for(10, lambda: "Failed to reload server configuration: can only reload config when a file is provided "
              "using -c or --config" in log_file.read_text())
    assert g.proc.poll() is None
    connect(g.port)[0].close()
    g.signal(signal.SIGTERM)
    assert g.wait_exit() == 0
    assert "Server Exiting.." in log_file.read_text()


def test_lame_duck_mode_sigusr2(gnatsd, tmp_path):
    path = tmp_path / "ldm.conf"
    # Go requires lame_duck_duration >= 30s; the grace period has no minimum. With one client
    # the server closes it about a second after the grace period, then exits.
    path.write_text('lame_duck_duration: "30s"\nlame_duck_grace_period: "2s"\n')
    g = gnatsd("-c", str(path))
    c, _ = connect(g.port)  # sent PING and got PONG: it will be told about lame duck mode
    started = time.monotonic()
    g.signal(signal.SIGUSR2)
    info = json.loads(c.expect(INFO_RE, timeout=10).group(1))
    assert info["ldm"] is True
    # the listener is closed while the process is still draining
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", g.port), timeout=5).close()
    assert g.proc.poll() is None
    c.read_all_until_closed(timeout=10)
    c.close()
    assert g.wait_exit() == 0
    assert time.monotonic() - started >= 2.0  # the grace period was honoured
    log = g.log_text()
    assert log.index("Entering lame duck mode, stop accepting new clients") < log.index("Closing existing clients")


def test_lame_duck_mode_without_clients_exits_at_once(gnatsd):
    g = gnatsd()
    g.signal(signal.SIGUSR2)
    assert g.wait_exit() == 0


def test_sigterm_is_ignored_during_lame_duck_mode(gnatsd, tmp_path):
    path = tmp_path / "ldm.conf"
    path.write_text('lame_duck_grace_period: "2s"\nlame_duck_duration: "30s"\n')
    g = gnatsd("-c", str(path), "-D")
    c, _ = connect(g.port)
    g.signal(signal.SIGUSR2)
    c.expect(INFO_RE, timeout=10)
    g.signal(signal.SIGTERM)
    g.wait_log(r'Trapped "terminated" signal')
    assert g.wait_exit() == 0
    c.close()
    # SIGTERM did not cut lame duck mode short: the clients were still closed the slow way
    log = g.log_text()
    assert log.index('Trapped "terminated" signal') < log.index("Closing existing clients") < log.index(
        "Initiating Shutdown")


# -- gnatsd --signal ---------------------------------------------------------------------------


def test_signal_stop_pid(gnatsd, tmp_path):
    g = gnatsd()
    r = run(["--signal", f"stop={g.pid}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert g.wait_exit() == -signal.SIGKILL


def test_signal_ldm_with_pid_file(gnatsd, tmp_path):
    pid_file = tmp_path / "ldm.pid"
    g = gnatsd("-P", str(pid_file))
    r = run(["-sl", f"ldm={pid_file}"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert g.wait_exit() == 0
    assert "Entering lame duck mode" in g.log_text()


def test_sighup_reloads_the_config_file(gnatsd, tmp_path):
    conf = tmp_path / "reload.conf"
    conf.write_text("debug: false\nauthorization { users: [{user: a, password: a}, {user: b, password: b}] }\n")
    g = gnatsd("-c", str(conf))
    b, _ = connect(g.port, user="b", **{"pass": "b"})
    conf.write_text("debug: true\nauthorization { users: [{user: a, password: a}, {user: b, password: new}] }\n")
    g.signal(signal.SIGHUP)
    g.wait_log(r"\[ERR\] .* - Authorization Violation")  # b's password changed
    g.wait_log(r"\[INF\] Reloaded server configuration")
    b.expect(re.compile(rb"-ERR 'Authorization Violation'"))
    connect(g.port, user="a", **{"pass": "a"})[0].close()
    g.wait_log(r"\[DBG\] .* - Client connection created")  # debug is on now
    conf.write_text('lame_duck_duration: "60s"\n')
    g.signal(signal.SIGHUP)
    g.wait_log(r"\[ERR\] Failed to reload server configuration: config reload not supported for "
               r"LameDuckDuration: old=2m0s, new=1m0s")
    b.close()


def test_signal_uses_the_P_pid_file(gnatsd, tmp_path):
    pid_file = tmp_path / "srv.pid"
    g = gnatsd("-P", str(pid_file))
    results = run_all([["-P", str(pid_file), "--signal", "reopen"], ["-P", str(pid_file), "-sl=reload"]], tmp_path)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    g.wait_log("File log re-open ignored, not a file logger")
    g.wait_log("can only reload config when a file is provided")
    r = run(["-P", str(pid_file), "--signal=quit"], tmp_path)
    assert r.returncode == 0, r.stderr
    assert g.wait_exit() == 0


def test_signal_term_and_quit(gnatsd, tmp_path):
    servers = [gnatsd(ready=False) for _ in range(2)]
    for g in servers:
        g.wait_ready()
    results = run_all([["--signal", f"{command}={g.pid}"] for command, g in zip(("term", "quit"), servers)], tmp_path)
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    for g in servers:
        assert g.wait_exit() == 0


def test_signal_errors(gnatsd, tmp_path):
    a, b = gnatsd(ready=False), gnatsd(ready=False)
    bogus, notapid, missing = run_all([["--signal", "bogus=1"], ["--signal", "stop=notapid"],
                                       ["--signal", "reopen", "-P", str(tmp_path / "missing.pid")]], tmp_path)
    assert bogus.returncode == 1 and bogus.stderr.startswith("gnatsd: unknown signal 'bogus'")
    assert (notapid.returncode, notapid.stderr.strip()) == (1, "gnatsd: invalid pid: notapid")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    # with two servers running (ours; maybe others too) and no pid, the target is ambiguous
    a.wait_ready()
    b.wait_ready()
    r = run(["--signal", "reopen"], tmp_path)
    assert r.returncode == 1
    assert r.stderr.startswith("gnatsd: multiple gnatsd processes running:\n")
    listed = {int(p) for p in r.stderr.splitlines()[1:]}
    assert {a.pid, b.pid} <= listed
    assert a.proc.poll() is None and b.proc.poll() is None


@pytest.mark.skipif(sys.implementation.name != "pypy", reason="the nursery restart is PyPy's")
def test_importing_the_cli_does_not_restart_the_process(tmp_path):
    # The command restarts itself once with PYPY_GC_NURSERY; a program that only imports
    # gnatsd.cli (a test, a script) must go on as itself, not become a server.
    env = {k: v for k, v in ENV.items() if k != "PYPY_GC_NURSERY"}
    out = subprocess.run([sys.executable, "-c", "import gnatsd.cli, os; print('still me', os.getpid())"],
                         env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.startswith("still me"), out.stderr
