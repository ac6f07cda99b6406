"""Signals: the running server's handlers and `gnatsd --signal`. Ports nats-server
`server/signal.go` (handleSignals, ProcessSignal, resolvePids) and processSignal /
maybeReadPidFile from `server/opts.go`.

In the server (POSIX):
    SIGINT, SIGTERM   shut down, exit 0 (SIGTERM is ignored during lame duck mode)
    SIGUSR1           re-open the log file (rotation)
    SIGUSR2           lame duck mode, then exit
    SIGHUP            config reload

`gnatsd --signal <command>[=<pid or pid file>]` sends one of those to a running gnatsd:
stop (SIGKILL), quit (SIGINT), term (SIGTERM), reopen (SIGUSR1), reload (SIGHUP),
ldm (SIGUSR2).
"""
from __future__ import annotations

import logging
import os
import shutil
import signal as _signal
import subprocess

import gevent

log = logging.getLogger("gnatsd")

PROCESS_NAME = "gnatsd"  # Go: processName

# Go: Command (server/service.go).
COMMAND_STOP = "stop"
COMMAND_QUIT = "quit"
COMMAND_REOPEN = "reopen"
COMMAND_RELOAD = "reload"
COMMAND_LDM = "ldm"
COMMAND_TERM = "term"

COMMAND_SIGNALS = {
    COMMAND_STOP: _signal.SIGKILL,
    COMMAND_QUIT: _signal.SIGINT,
    COMMAND_REOPEN: _signal.SIGUSR1,
    COMMAND_RELOAD: _signal.SIGHUP,
    COMMAND_LDM: _signal.SIGUSR2,
    COMMAND_TERM: _signal.SIGTERM,
}

# Go prints signals with their os.Signal String().
SIGNAL_NAMES = {
    _signal.SIGINT: "interrupt",
    _signal.SIGTERM: "terminated",
    _signal.SIGUSR1: "user defined signal 1",
    _signal.SIGUSR2: "user defined signal 2",
    _signal.SIGHUP: "hangup",
}


class SignalError(Exception):
    """`--signal` could not be delivered; the message says why."""


# -- in the server -----------------------------------------------------------------------------


def handle_signals(server, reopen_log_file):
    """Go: Server.handleSignals. Install the handlers on the current gevent hub.

    Each handler runs in its own greenlet, after the hub has seen the signal, so it never
    interrupts the server in the middle of updating its state. Returns the watchers (call
    `.cancel()` on each to uninstall).
    """
    def trapped(sig, action):
        log.debug("Trapped \"%s\" signal", SIGNAL_NAMES.get(sig, str(sig)))
        action()

    def on_term():
        # Go: shut down unless graceful shutdown (lame duck mode) is already in progress.
        if not server.ldm:
            server.shutdown()

    def on_ldm():
        gevent.spawn(server.lame_duck_mode)

    def on_reload():
        from .reload import ReloadError
        try:
            server.reload()
        except ReloadError as e:
            log.error("Failed to reload server configuration: %s", e)

    actions = {
        _signal.SIGINT: server.shutdown,
        _signal.SIGTERM: on_term,
        _signal.SIGUSR1: reopen_log_file,
        _signal.SIGUSR2: on_ldm,
        _signal.SIGHUP: on_reload,
    }
    return [gevent.signal_handler(sig, trapped, sig, action) for sig, action in actions.items()]


# -- gnatsd --signal ---------------------------------------------------------------------------


def maybe_read_pid_file(pid_str):
    """Go: maybeReadPidFile. The content of the file named `pid_str`, else `pid_str` itself."""
    try:
        with open(pid_str, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return pid_str


def process_signal(signal_str, flag_opts=None):
    """Go: processSignal. `signal_str` is `command[=pid or pid file]`.

    Not in Go: without `=pid`, the pid file given with `-P` on the same command line is used
    before looking for running processes.
    """
    parts = signal_str.split("=")
    if len(parts) > 2:
        raise SignalError(f"invalid signal parameters: {parts[2:]}")
    pid = ""
    if len(parts) == 2:
        pid = maybe_read_pid_file(parts[1])
    elif flag_opts is not None and flag_opts.pid_file:
        if not os.path.exists(flag_opts.pid_file):
            raise SignalError(f"pid file {flag_opts.pid_file} does not exist: is gnatsd running?")
        pid = maybe_read_pid_file(flag_opts.pid_file)
    process_signal_to(parts[0], pid)


def process_signal_to(command, pid_str):
    """Go: ProcessSignal. Send `command` to `pid_str`, or to the one running gnatsd."""
    sig = COMMAND_SIGNALS.get(command)
    if sig is None:
        raise SignalError(f"unknown signal {command!r} (use one of: {', '.join(COMMAND_SIGNALS)})")
    if not pid_str:
        pids = resolve_pids()
        if not pids:
            raise SignalError(f"no {PROCESS_NAME} processes running")
        if len(pids) > 1:
            raise SignalError(f"multiple {PROCESS_NAME} processes running:\n" + "\n".join(str(p) for p in pids))
        pid = pids[0]
    else:
        try:
            pid = int(pid_str.strip())
        except ValueError:
            raise SignalError(f"invalid pid: {pid_str}") from None
    try:
        os.kill(pid, sig)
    except OSError as e:
        raise SignalError(f"cannot send {command} to pid {pid}: {e.strerror}") from None


_SIGNAL_FLAGS = ("-sl", "--sl", "-signal", "--signal")


def is_gnatsd_command_line(argv):
    """Whether a process's argv runs the gnatsd server: `gnatsd ...` (a console script, so
    possibly `python /path/gnatsd ...`) or `python -m gnatsd[.cli] ...`; processes that are
    themselves sending a signal do not count."""
    if not argv:
        return False
    found = os.path.basename(argv[0]) == PROCESS_NAME
    rest = argv[1:]
    if not found and os.path.basename(argv[0]).startswith(("python", "pypy")):
        for i, arg in enumerate(rest):
            if arg == "-m":
                found = i + 1 < len(rest) and rest[i + 1] in ("gnatsd", "gnatsd.cli")
                rest = rest[i + 2:]
                break
            if arg.startswith("-"):  # an interpreter option such as -u or -X dev
                continue
            found = os.path.basename(arg) == PROCESS_NAME
            rest = rest[i + 1:]
            break
    if not found:
        return False
    return not any(a.split("=", 1)[0] in _SIGNAL_FLAGS for a in rest)


def resolve_pids():
    """Go: resolvePids. The pids of the running gnatsd servers, except this process.

    Go runs `pgrep nats-server`; a Python program's process name is its interpreter's, so
    this reads each process's command line (/proc on Linux, `ps` elsewhere).
    """
    me = os.getpid()
    pids = []
    if os.path.isdir("/proc"):
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == me:
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    raw = f.read()
            except OSError:
                continue
            argv = [a.decode("utf-8", "replace") for a in raw.split(b"\0") if a]
            if is_gnatsd_command_line(argv):
                pids.append(int(entry))
        return sorted(pids)
    ps = shutil.which("ps")
    if ps is None:
        raise SignalError("unable to resolve pid, try providing one")
    try:
        out = subprocess.run([ps, "-axo", "pid=,command="], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        raise SignalError("unable to resolve pid, try providing one") from None
    for line in out.splitlines():
        pid_text, _, command = line.strip().partition(" ")
        if pid_text.isdigit() and int(pid_text) != me and is_gnatsd_command_line(command.split()):
            pids.append(int(pid_text))
    return sorted(pids)
