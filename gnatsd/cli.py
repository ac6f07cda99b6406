"""The `gnatsd` command. Ports nats-server `main.go` (usage, main), PrintAndDie /
PrintServerAndExit from `server/opts.go`, and logPid / logPorts / Ports from
`server/server.go`.

    gnatsd -p 4222 -c etc/gnatsd.conf -DV

It patches the process for gevent first thing (and is the only module that does), parses
nats-server's flags and config file (`opts.configure_options`), configures logging
(`log.configure_logging`), installs the signal handlers (`signals.handle_signals`), starts
the server and waits for it to shut down. Flags for features gnatsd does not have yet
(clustering, syslog, profiling) are accepted and logged as not
yet supported, so that command lines written for nats-server keep working.

Exit codes: 0 after a shutdown (SIGINT, SIGTERM, end of lame duck mode) and for --help,
--version, -t and --signal; 1 for a bad command line or config file, options that cannot
work together, a port in use, or a signal that could not be sent.
"""
import os
import sys
from importlib import metadata

# PyPy's GC nursery defaults to a size fitted to the L2 cache. gnatsd's reads (up to 64 KiB)
# and payload slices fill that in no time: with 16 MB, 16 KiB pub/sub ran ~40 % faster in an
# interleaved A/B run (18,000 -> 27,000 msg/s), small messages unchanged. The size can only
# be set before PyPy starts, so the command restarts itself once (same pid) unless the
# variable is already set. Only the command: a program that imports this module (a test, a
# script) is not replaced by a server.
PYPY_GC_NURSERY = "16MB"
_RUN_AS_COMMAND = (os.path.basename(sys.argv[0]) == "gnatsd"
                   or sys.argv[0] == os.path.join(os.path.dirname(os.path.abspath(__file__)), "__main__.py"))
if sys.implementation.name == "pypy" and "PYPY_GC_NURSERY" not in os.environ and _RUN_AS_COMMAND:
    os.environ["PYPY_GC_NURSERY"] = PYPY_GC_NURSERY
    os.execv(sys.executable, [sys.executable, "-m", "gnatsd"] + sys.argv[1:])

from gevent import monkey  # noqa: E402


def patch_all():
    """monkey.patch_all(), with the installed entry points read once instead of 25 times.

    patch_all tells gevent's plugins about each module it patches, and every notice scans
    every installed distribution's entry points: 0.9 of the 1.0 s that patch_all took
    where many packages are installed, which delayed the listener that long.
    """
    scan = metadata.entry_points
    every = scan()
    if hasattr(every, "select"):
        metadata.entry_points = lambda **selection: every.select(**selection)
    else:  # Python 3.9: gevent takes the whole dict of group -> entry points
        metadata.entry_points = lambda: every
    try:
        monkey.patch_all()
    finally:
        metadata.entry_points = scan


# `gnatsd bench ...` is the load generator (gnatsd/bench.py): it uses processes and plain
# sockets, so it runs unpatched.
if sys.argv[1:2] != ["bench"]:
    patch_all()

import json  # noqa: E402
import logging  # noqa: E402

from . import const, signals  # noqa: E402
from .log import close_logging, configure_logging, reopen_log_file  # noqa: E402
from .monitor import MonitorStartError  # noqa: E402
from .opts import FlagError, ProcessConfigErr, configure_options  # noqa: E402
from .server import ConfigError, Server  # noqa: E402
from .websocket import WebsocketStartError  # noqa: E402

log = logging.getLogger("gnatsd")

EXE = "gnatsd"

# Go: usageStr in main.go, with gnatsd's name and notes on what is not there yet.
USAGE = """
Usage: gnatsd [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222, -1 for a random port)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring (-1 for a random port)
        --http_host <host>           Host for http monitoring (default: the -a host)
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to gnatsd process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file
                                     (e.g. /var/run/gnatsd.pid); default: the -P file, else the one gnatsd running
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -s, --syslog                     Log to syslog or windows event log (not yet supported)
    -r, --remote_syslog <addr>       Syslog server addr (udp://localhost:514) (not yet supported)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace (traces system account as well)
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace (traces system account as well)
        --log_size_limit <limit>     Logfile size limit in bytes (default: no limit)
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options (not yet supported):
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes

Profiling Options (not yet supported):
        --profile <port>             Profiling HTTP port

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
        --help_tls                   TLS help
"""


def usage():
    """Go: usage."""
    sys.stdout.write(USAGE + "\n")
    sys.stdout.flush()


def print_server_and_exit():
    """Go: PrintServerAndExit (here the caller exits): the nats-server version gnatsd
    implements, then gnatsd's own."""
    sys.stdout.write(f"nats-server: v{const.VERSION}\n{EXE}: v{const.GNATSD_VERSION}\n")
    sys.stdout.flush()


TLS_USAGE = """
TLS configuration is specified in the tls section of a configuration file:

e.g.

    tls {
        cert_file:      "./certs/server-cert.pem"
        key_file:       "./certs/server-key.pem"
        ca_file:        "./certs/ca.pem"
        verify:         true
        verify_and_map: true
        timeout:        2
        min_version:    "1.2"
        handshake_first: false

        cipher_suites: [
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"
        ]
    }

Available cipher suites include:
"""


def print_tls_help():
    """Go: PrintTLSHelpAndDie. The cipher suites listed are those this OpenSSL offers."""
    from .tls import available_ciphers
    sys.stdout.write(TLS_USAGE)
    for name in available_ciphers():
        sys.stdout.write(f"    {name}\n")
    sys.stdout.flush()


def print_and_die(message):
    """Go: PrintAndDie."""
    sys.stderr.write(f"{EXE}: {message}\n")
    sys.stderr.flush()
    sys.exit(1)


# -- pid and ports files (Go: logPid, logPorts, portFile, deletePortsFile) ----------------------


def log_pid(pid_file):
    """Go: logPid."""
    with open(pid_file, "w") as f:
        f.write(str(os.getpid()))
    os.chmod(pid_file, 0o660)


def executable_name():
    """Go: filepath.Base(os.Args[0]), except `python -m gnatsd[.cli]` also gives "gnatsd"."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else EXE
    return EXE if name.endswith(".py") or name in ("", "-c", "-m") else name


def port_file(dirname):
    """Go: Server.portFile."""
    if not dirname:
        return ""
    return os.path.join(dirname, f"{executable_name()}_{os.getpid()}.ports")


def _url(scheme, host, port):
    if host in ("0.0.0.0", ""):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def ports_info(server):
    """Go: Server.PortsInfo: the URLs where the server can be reached, in Go's JSON shape
    (`{"nats": [...], "monitoring": [...], ...}`, empty kinds left out).

    Go lists every interface address for a listener on 0.0.0.0; this gives the loopback one.
    """
    host, port = server.addr[0], server.addr[1]
    ports = {"nats": [_url("nats", host, port)]}
    if server.http_addr:
        ports["monitoring"] = [_url(server.monitor.scheme, server.http_addr[0], server.http_addr[1])]
    ws = server.websocket
    if ws is not None and ws.addr:
        ports["websocket"] = [_url("wss" if ws.tls else "ws", ws.addr[0], ws.addr[1])]
    return ports


def log_ports(server, dirname):
    """Go: logPorts. Writes the ports file; returns its path ("" when none)."""
    path = port_file(dirname)
    if not path:
        return ""
    data = json.dumps(ports_info(server), separators=(",", ":"))
    try:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.write(data)
        os.chmod(tmp, 0o666)
        os.replace(tmp, path)  # readers never see a half-written file
    except OSError as e:
        log.error("Error writing ports file (%s): %s", path, e)
        return ""
    return path


def remove_file(path, what):
    """Go: deletePortsFile (and, not in Go, the pid file)."""
    if not path:
        return
    try:
        os.remove(path)
    except OSError as e:
        log.error("Error cleaning up %s %s: %s", what, path, e)


# -- features not there yet --------------------------------------------------------------------


def unsupported_features(opts):
    """(feature, what was asked) for each option gnatsd accepts but does not implement yet."""
    found = []
    if (opts.cluster_listen or opts.routes or opts.cluster_name or opts.cluster_advertise
            or opts.cluster_no_advertise or opts.cluster_connect_retries):
        found.append(("Clustering", "cluster options"))
    if opts.syslog or opts.remote_syslog:
        found.append(("Syslog", "logging to stderr instead" if not opts.log_file else "logging to the log file"))
    if opts.prof_port:
        found.append(("Profiling", f"profile port {opts.prof_port}"))
    return found


def warn_unsupported(opts):
    for feature, asked in unsupported_features(opts):
        log.warning("%s is not yet supported by gnatsd (ignoring: %s)", feature, asked)


# -- main --------------------------------------------------------------------------------------


def _report_config_errors(err):
    """Go: PrintAndDie(err) for a processConfigErr; here each problem on its own line as
    `file:line:col: message`, then a summary."""
    for line in str(err).splitlines():
        sys.stderr.write(line + "\n")
    n = len(err.errors)
    what = f"{n} error{'s' if n != 1 else ''}" if n else "warnings (-t treats them as errors)"
    sys.stderr.write(f"{EXE}: {what} in configuration file {err.config_file}\n")
    sys.stderr.flush()
    sys.exit(1)


def _warn(text):
    sys.stderr.write(text + "\n")
    sys.stderr.flush()


def main(argv=None):
    """Go: main. Returns the exit code (exits directly on errors, like Go's PrintAndDie)."""
    args = sys.argv[1:] if argv is None else list(argv)
    if args[:1] == ["bench"]:
        from . import bench
        return bench.main(args[1:])
    try:
        opts = configure_options(args, print_server_and_exit, usage, print_tls_help,
                                 process_signal=signals.process_signal, warn=_warn)
    except FlagError as e:
        print_and_die(f"{e}\nRun '{EXE} --help' for the list of options.")
    except ProcessConfigErr as e:
        _report_config_errors(e)
    except (OSError, signals.SignalError) as e:
        print_and_die(e.strerror if isinstance(e, OSError) and e.strerror else e)
    if opts is None:  # help, version or a signal: done
        return 0
    if opts.check_config:
        sys.stderr.write(f"{EXE}: configuration file {opts.config_file} is valid\n")
        return 0

    try:
        server = Server(opts)
    except ConfigError as e:
        print_and_die(e)
    try:
        configure_logging(opts)
    except OSError as e:
        print_and_die(f"error opening log file {opts.log_file}: {e.strerror or e}")
    try:
        return run(server, opts)
    finally:
        close_logging()


def run(server, opts):
    """Go: Run + the rest of main: start, write the pid and ports files, wait for shutdown."""
    warn_unsupported(opts)
    # Handlers go in before start(): a signal that arrives meanwhile is handled once the hub
    # runs, that is once the server is up (start() does not yield).
    watchers = signals.handle_signals(server, reopen_log_file)
    pid_file = ports_file = ""
    try:
        try:
            server.start()
        except MonitorStartError as e:
            log.critical("Can't start monitoring: %s", e.strerror)
            if opts.log_file:
                sys.stderr.write(f"{EXE}: Can't start monitoring: {e.strerror}\n")
            return 1
        except WebsocketStartError as e:
            log.critical("%s", e.strerror)
            if opts.log_file:
                sys.stderr.write(f"{EXE}: {e.strerror}\n")
            return 1
        except OSError as e:
            reason = os.strerror(e.errno) if e.errno else str(e)
            message = f'Error listening on port: {opts.host}:{opts.port}, "{reason}"'
            log.critical("%s", message)
            if opts.log_file:
                sys.stderr.write(f"{EXE}: {message}\n")
            return 1
        if opts.pid_file:
            try:
                log_pid(opts.pid_file)
            except OSError as e:
                log.critical("Could not write pidfile: %s", e)
                server.shutdown()
                return 1
            pid_file = opts.pid_file
        ports_file = log_ports(server, opts.ports_file_dir)
        server.wait_for_shutdown()
        return 0
    finally:
        for w in watchers:
            w.cancel()
        remove_file(ports_file, "ports file")
        remove_file(pid_file, "pid file")


if __name__ == "__main__":
    sys.exit(main())
