"""The server: listener, accept loop, client registry, INFO, lame duck mode and shutdown.

Ports nats-server `server/server.go` (Server, NewServer, Start, AcceptLoop, createClient,
lameDuckMode, Shutdown, validateOptions).

The server runs on the gevent hub of the thread that calls `start()`. It uses gevent's own
socket module, so it needs no monkey-patching: the `gnatsd` command patches the process, and
`start_in_thread()` runs a server beside asyncio code (nats-py) in an unpatched process.
"""
from __future__ import annotations

import collections
import errno
import logging
import os
import random
import socket as _stdsocket
import sys
import threading
import time

import gevent
from gevent import socket
from gevent import ssl as gevent_ssl
from gevent.event import Event

from . import auth, const, gofmt, tls
from . import events
from .accounts import ERR_MISSING_ACCOUNT, GLOBAL_ACCOUNT, SYSTEM_ACCOUNT, Account, AccountError, build_accounts
from .accounts import is_trusted_issuer
from .accounts import lookup_account as _lookup_account
from .conn import Client
from .const import ACCOUNT
from .errors import ERR_MAX_CONNECTIONS, ClosedState
from .hub import _allocate_lock
from .monitor import MonitorStartError
from .monitor.ring import DEFAULT_MAX_CLOSED_CLIENTS, ClosedRingBuffer
from .nkeys import create_server_keypair, generate_nonce
from .opts import Options, set_baseline_options
from .websocket import SrvWebsocket, WebsocketStartError, WsClient, serve_http, validate_websocket_options

log = logging.getLogger("gnatsd")


LISTEN_BACKLOG = 4096  # Go's listen backlog (somaxconn permitting)


def listen_tcp(host, port, backlog=LISTEN_BACKLOG):
    """A listening TCP socket on gevent; raises OSError as bind/listen do. For host 0.0.0.0 or "", a dual-stack IPv6 socket
    where the machine has IPv6, so that clients of ::1 and of 127.0.0.1 both connect."""
    candidates = []
    if host in ("0.0.0.0", ""):
        candidates.append((_stdsocket.AF_INET6, "::"))
    candidates.append((_stdsocket.AF_INET6 if ":" in host else _stdsocket.AF_INET, host or "0.0.0.0"))
    for i, (family, bind_host) in enumerate(candidates):
        try:
            sock = socket.socket(family, _stdsocket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this machine
        try:
            sock.setsockopt(_stdsocket.SOL_SOCKET, _stdsocket.SO_REUSEADDR, 1)
            if family == _stdsocket.AF_INET6 and bind_host == "::" and host != bind_host:
                sock.setsockopt(_stdsocket.IPPROTO_IPV6, _stdsocket.IPV6_V6ONLY, 0)
            sock.bind((bind_host, port))
            sock.listen(backlog)
            return sock
        except OSError as e:
            sock.close()
            if i + 1 < len(candidates) and e.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                continue
            raise
    raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))


class ConfigError(ValueError):
    """Options that cannot work together (Go: validateOptions errors)."""


def validate_options(opts):
    """Go: validateOptions."""
    if opts.lame_duck_duration > 0 and opts.lame_duck_grace_period >= opts.lame_duck_duration:
        raise ConfigError(f"lame duck grace period ({opts.lame_duck_grace_period}s) should be strictly "
                          f"lower than lame duck duration ({opts.lame_duck_duration}s)")
    if opts.lame_duck_grace_period < 0:
        raise ConfigError("lame duck grace period must be zero or more")
    if opts.max_payload > opts.max_pending:
        raise ConfigError(f"max_payload ({opts.max_payload}) cannot be higher than max_pending ({opts.max_pending})")
    if opts.max_payload > 2**31 - 1:
        raise ConfigError(f"max_payload ({opts.max_payload}) cannot be higher than {2**31 - 1}")
    if opts.trusted_operators:
        from .conf_jwt import validate_trusted_operators
        err = validate_trusted_operators(opts)
        if err:
            raise ConfigError(err)
    err = auth.validate_auth(opts) or validate_websocket_options(opts)
    if err:
        raise ConfigError(err)


class Server:
    """Go: Server."""

    def __init__(self, opts=None):
        self.opts = opts = opts if opts is not None else Options()
        validate_options(opts)
        set_baseline_options(opts)
        self.configure_tls()
        self.signing_key, self.server_id = create_server_keypair()
        self.name = opts.server_name or self.server_id
        self.cluster_name = ""  # Go: cachedClusterName, for mappings with a `cluster`
        self.sys = None  # events.Internal while the system account's events run (Go: sys)
        self.loop = None
        self.configure_resolver()
        self.js = None  # js.jetstream.JetStream while JetStream runs (Go: js)
        self.configure_accounts()
        self.clients = {}  # cid -> Client
        self.total_clients = 0
        self.gcid = 0  # Go: gcid, the client id counter
        # Go: configureAuthorization. Sets users, nkeys, auth_required and nonce_required.
        auth.configure_authorization(self)
        for acc in self.accounts.values():
            acc.add_all_service_import_subs()  # Go: configureAccounts, once the server can make clients
        self.websocket = None  # Go: s.websocket, a SrvWebsocket when the websocket block has a port
        if opts.websocket.port != 0:
            try:
                self.websocket = SrvWebsocket(self)
            except tls.TLSConfigError as e:
                raise ConfigError(f"websocket: {e}") from None
        self.start_time = None
        self.config_time = None  # Go: configTime, at start and at each reload
        self.listener = None
        self.addr = None  # (host, port) actually bound
        self.running = False
        self.ldm = False  # lame duck mode
        self.shutdown_complete = Event()
        self._accept_greenlet = None
        self._thread = None
        self._calls = collections.deque()  # call_threadsafe's (fn, args), for the hub
        self._wake = None  # the hub's async watcher that runs them, while the thread runs
        self._wake_lock = _allocate_lock()  # a send() never meets a closed watcher
        # stats (Go: s.inMsgs, s.outMsgs, ...)
        self.in_msgs = self.in_bytes = self.out_msgs = self.out_bytes = 0
        self.slow_consumers = 0
        self._info = None
        # monitoring (Go: s.closed, s.httpReqStats, s.http)
        self.closed_clients = ClosedRingBuffer(getattr(opts, "max_closed_clients", DEFAULT_MAX_CLOSED_CLIENTS))
        self.http_req_stats = {}
        self.monitor = None  # monitor.app.MonitorServer while the HTTP monitor runs
        self.http_addr = None  # (host, port) the monitor is bound to

    def configure_tls(self):
        """Go: the TLSConfig of the options: a gevent SSL context when TLS is on."""
        self.tls_context = None
        if tls.tls_enabled(self.opts):
            try:
                self.tls_context = tls.gen_tls_config(self.opts, gevent_ssl.SSLContext)
            except tls.TLSConfigError as e:
                raise ConfigError(str(e)) from None

    def reload(self):
        """Go: Reload. Raises reload.ReloadError and leaves the server as it was when the new
        config has an error or changes what cannot change live. May yield."""
        from .reload import reload
        reload(self)

    # -- accounts ------------------------------------------------------------------------

    def configure_accounts(self):
        """Go: configureAccounts and the system account set-up of Start. Builds this server's
        accounts from the options (each server its own, as Go copies them)."""
        opts = self.opts
        try:
            self.accounts = build_accounts(opts.accounts)
        except AccountError as e:
            raise ConfigError(str(e)) from None
        self.gacc = self.accounts[GLOBAL_ACCOUNT]
        self.sublist = self.gacc.sublist  # the global account's, as gnatsd had before accounts
        sys_name = opts.system_account
        if not sys_name and SYSTEM_ACCOUNT in self.accounts:
            sys_name = SYSTEM_ACCOUNT
        if sys_name and sys_name not in self.accounts:
            if self.acc_resolver is None:
                raise ConfigError("error resolving system account: " + ERR_MISSING_ACCOUNT)
            try:  # operator mode: the system account's JWT, from the resolver
                _lookup_account(self, sys_name)
            except AccountError as e:
                raise ConfigError(f"error resolving system account: {e}") from None
        # Go: with only the system account configured beside $G, clients without credentials
        # still reach $G, as a made-up no_auth_user (see auth.configure_authorization).
        self.no_auth_user = opts.no_auth_user
        self.sys_only_user = None
        if sys_name and len(self.accounts) == 2 and not opts.no_auth_user and self.trusted_keys is None:
            name = "nats-" + "".join(random.choice("0123456789abcdefghijklmnopqrstuvwxyz") for _ in range(8))
            self.sys_only_user = auth.User(name, name[5:], account=GLOBAL_ACCOUNT)
            self.no_auth_user = name
        if not sys_name and not opts.no_system_account:
            sys_name = SYSTEM_ACCOUNT
            self.accounts[sys_name] = Account(sys_name)
        self.sys_account = self.accounts.get(sys_name) if sys_name else None
        if self.sys_account is not None and not is_trusted_issuer(self, self.sys_account.issuer):
            self.sys_account = None  # Go: setSystemAccount refuses $SYS in operator mode (no trusted issuer)
        for acc in self.accounts.values():
            acc.srv = self

    def create_internal_client(self, acc, kind=ACCOUNT):
        """Go: createInternalClient. A client without a connection, for `acc`'s internal
        subscriptions (service imports, responses, and later the system's)."""
        c = Client(self, None, 0, ("", 0), kind)
        c.acc = acc
        c.echo = False
        c.headers = True
        c.verbose = False
        c.mpay = c.msubs = 0
        c.connect_received = True
        c.auth_pending = False
        return c

    def configure_resolver(self):
        """Go: processTrustedKeys and configureResolver. Operator mode: the trusted operator
        keys, and the MEMORY resolver with the preloaded account JWTs."""
        from .conf_jwt import MEMORY_RESOLVER, trusted_keys
        opts = self.opts
        self.trusted_keys, self.strict_signing_keys = trusted_keys(opts)
        self.tmp_accounts = {}  # Go: tmpAccounts, accounts being built from their JWTs
        self.acc_resolver = None
        self.pinned_accounts = None
        if opts.resolver_pinned_accounts is not None:
            self.pinned_accounts = set(opts.resolver_pinned_accounts)
            if opts.system_account:
                self.pinned_accounts.add(opts.system_account)
        if opts.account_resolver == MEMORY_RESOLVER:
            from .accounts import MemAccResolver
            self.acc_resolver = MemAccResolver()
            for name, claim_jwt in opts.resolver_preloads.items():
                self.acc_resolver.store(name, claim_jwt)

    def lookup_account(self, name):
        """Go: LookupAccount. Raises AccountError (in operator mode, fetches the account)."""
        return _lookup_account(self, name)

    # -- start ---------------------------------------------------------------------------

    def start(self):
        """Go: Start. Bind the client listener and start accepting. Does not block."""
        opts = self.opts
        self.loop = gevent.get_hub().loop
        self.start_time = self.config_time = time.time()
        self.listener = self._listen(opts.host, opts.port)
        # Go reports the configured host (0.0.0.0 stays 0.0.0.0) with the port actually bound.
        self.addr = (opts.host, self.listener.getsockname()[1])
        self._info = self._build_info()
        self.running = True
        if self.sys_account is not None:
            events.start_events(self)
        log.info("Starting nats-server")
        log.info("  Version:  %s (gnatsd %s)", const.VERSION, const.GNATSD_VERSION)
        log.info("  Python:   %s %s", sys.implementation.name, sys.version.split()[0])
        log.info("  Name:     %s", self.name)
        log.info("  ID:       %s", self.server_id)
        auth.check_auth_for_warnings(self)
        if opts.trusted_operators:
            self.log_trusted_operators()
        if opts.jetstream:
            self.start_jetstream()
        if opts.max_payload > const.MAX_PAYLOAD_MAX_SIZE:
            log.warning("Maximum payloads over %d are generally discouraged and could lead to poor performance",
                        const.MAX_PAYLOAD_MAX_SIZE)
        if opts.http_port or opts.https_port:
            self.start_monitoring()
        if self.websocket is not None:
            self.start_websocket_server()
        log.info("Listening for client connections on %s:%d", self.addr[0], self.addr[1])
        if self.tls_context is not None:
            log.info("TLS %s for client connections", "required" if self._info.get("tls_required") else "available")
            if opts.tls_handshake_first and not opts.tls_handshake_first_fallback:
                log.warning('Clients that are not using "TLS Handshake First" option will fail to connect')
        log.info("Server is ready")
        self._accept_greenlet = gevent.spawn(self.accept_loop, self.listener)

    def log_trusted_operators(self):
        """Go: Start's notices about the trusted operators, and checkResolvePreloads."""
        from . import jwt
        opts = self.opts
        log.info("Trusted Operators")
        for op in opts.trusted_operators:
            log.info("  System  : %s", gofmt.go_quote(op.aud))
            log.info("  Operator: %s", gofmt.go_quote(op.name))
            log.info("  Issued  : %s", time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(op.iat)))
            log.info("  Expires : %s", "Never" if op.exp == 0 else
                     time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime(op.exp)))
        if not opts.system_account:
            log.warning("Trusted Operators should utilize a System Account")
        for name, claim_jwt in opts.resolver_preloads.items():
            vr = jwt.validate(jwt.decode_account_claims(claim_jwt))
            if vr.is_blocking(True):
                log.warning("Account [%s] has validation issues:", name)
                for issue in vr.issues:
                    log.warning("  - %s", issue.description)

    def start_jetstream(self):
        """Go: EnableJetStream at Start. JetStream answers through the system account's send
        loop (events.py): without one (no_system_account), the default one is made, as Go's
        SetDefaultSystemAccount."""
        from .js.jetstream import enable_jetstream
        if self.sys_account is None:
            acc = self.accounts.get(SYSTEM_ACCOUNT) or Account(SYSTEM_ACCOUNT)
            acc.srv = self
            self.accounts[SYSTEM_ACCOUNT] = self.sys_account = acc
            events.start_events(self)
        try:
            enable_jetstream(self)
        except OSError as e:
            log.error("Could not start JetStream: %s", e)
            self.js = None
            return
        self._info["jetstream"] = True

    def start_monitoring(self):
        """Go: StartMonitoring. The HTTP or HTTPS monitor runs on this hub, beside the clients.

        Raises monitor.MonitorStartError (an OSError) with Go's text when both an HTTP and an
        HTTPS port are set, when HTTPS is asked without TLS, or when the port cannot be bound.
        """
        from .monitor.app import MonitorServer  # Flask loads only when monitoring is on
        opts = self.opts
        try:
            if opts.http_port and opts.https_port:
                raise MonitorStartError(None, f"can't specify both HTTP ({opts.http_port}) and HTTPs "
                                              f"({opts.https_port}) ports")
            if opts.https_port and self.tls_context is None:
                raise MonitorStartError(None, "TLS cert and key required for HTTPS")
            self.monitor = MonitorServer(self, secure=not opts.http_port)
        except OSError:
            self.running = False
            self._close_listener()
            raise
        self.http_addr = self.monitor.addr
        self.monitor.start()

    def start_websocket_server(self):
        """Go: startWebsocketServer. Raises WebsocketStartError when the port cannot be bound."""
        ws = self.websocket
        wo = self.opts.websocket
        try:
            ws.listener = self._listen(wo.host, wo.port)
        except OSError as e:
            self.running = False
            self._close_listener()
            if self.monitor is not None:
                self.monitor.close()
            host = f"[{wo.host}]" if ":" in wo.host else wo.host
            raise WebsocketStartError(e.errno, f"Unable to listen for websocket connections: listen tcp "
                                               f"{host}:{wo.port}: bind: {(e.strerror or str(e)).lower()}") from None
        # Go writes the bound port back into the options, where /varz reads it.
        ws.addr = (wo.host, ws.listener.getsockname()[1])
        proto = "wss" if ws.tls else "ws"
        log.info("Listening for websocket clients on %s://%s:%d", proto, ws.addr[0], ws.addr[1])
        if not ws.tls:
            log.warning("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!")
        gevent.spawn(self.accept_loop, ws.listener, self.accept_ws_conn)

    def accept_ws_conn(self, sock, addr):
        """Go: the WebSocket http.Server's connection handler: TLS, the upgrade, then the
        client, in one greenlet."""
        gevent.spawn(serve_http, self, sock, addr)

    def create_ws_client(self, sock, addr, ws):
        """Go: createWSClient. Runs the client in the calling greenlet."""
        self.gcid += 1
        client = WsClient(self, sock, self.gcid, addr, ws)
        client.run()
        return client

    @staticmethod
    def _listen(host, port):
        """Go: net.Listen. The any-address (0.0.0.0 or empty) takes IPv6 too, as Go's does."""
        if port == const.RANDOM_PORT:
            port = 0
        return listen_tcp(host, port)

    @property
    def port(self):
        return self.addr[1] if self.addr else None

    def client_url(self):
        host = self.addr[0]
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"
        return f"nats://{host}:{self.addr[1]}"

    def _build_info(self):
        """Go: NewServer's Info. Fields in Go's struct order (clients never depend on it, but
        tests and humans compare bytes)."""
        opts = self.opts
        host, port = self.addr
        if opts.client_advertise:
            adv_host, _, adv_port = opts.client_advertise.rpartition(":")
            if adv_host and adv_port.isdigit():
                host, port = adv_host, int(adv_port)
            else:
                host, port = opts.client_advertise, port
        info = {
            "server_id": self.server_id,
            "server_name": self.name,
            "version": const.VERSION,
            "proto": const.PROTO,
            "go": f"{sys.implementation.name}{sys.version.split()[0]}",
            "host": host,
            "port": port,
            "headers": not opts.no_header_support,
        }
        if self.auth_required:
            info["auth_required"] = True
        if self.tls_context is not None:
            # handshake_first without a fallback needs TLS from every client
            if not opts.allow_non_tls or (opts.tls_handshake_first and not opts.tls_handshake_first_fallback):
                info["tls_required"] = True
            if opts.tls_verify:
                info["tls_verify"] = True
            if opts.allow_non_tls:
                info["tls_available"] = True
        info["max_payload"] = opts.max_payload
        if self.js is not None:
            info["jetstream"] = True
        return info

    def client_info_json(self, client, first=False, ldm=False):
        """Go: generateClientInfoJSON. The INFO line for one client."""
        info = dict(self._info)
        info["max_payload"] = client.mpay
        info["client_id"] = client.cid
        info["client_ip"] = client.host
        if first:
            # Go: createClient. A nonce for nkey users to sign, in the first INFO only.
            if self.nonce_required:
                nonce = generate_nonce()
                client.nonce = nonce.encode()
                info["nonce"] = nonce
            if client.ws is not None:
                # Go: createWSClient. The websocket block's own auth makes it required.
                if self.websocket.auth_override:
                    info["auth_required"] = True
            elif self.no_auth_user and "auth_required" in info:
                # With a no_auth_user, a client needs no credentials, and the first INFO says so
                # (the auth timer still runs, and later INFOs have the server's value).
                del info["auth_required"]
        if ldm:
            info["ldm"] = True
        return b"INFO " + gofmt.marshal(info).encode() + b" \r\n"

    # -- clients -------------------------------------------------------------------------

    def accept_loop(self, listener, create=None):
        """Go: AcceptLoop / acceptConnections. Runs in its own greenlet. `create(sock, addr)`
        takes each connection (default: create_client)."""
        create = create or self.create_client
        delay = const.ACCEPT_MIN_SLEEP
        while self.running and not self.ldm:
            try:
                sock, addr = listener.accept()
            except OSError as e:
                if not self.running or self.ldm:
                    break
                log.error("Temporary Client Accept Error(%s), sleeping %dms", e, delay * 1000)
                gevent.sleep(delay)
                delay = min(delay * 2, const.ACCEPT_MAX_SLEEP)
                continue
            delay = const.ACCEPT_MIN_SLEEP
            create(sock, addr)

    def create_client(self, sock, addr):
        """Go: createClient. Starts the connection's greenlet."""
        sock.setsockopt(_stdsocket.IPPROTO_TCP, _stdsocket.TCP_NODELAY, 1)
        if addr[0].startswith("::ffff:") and "." in addr[0]:
            # An IPv4 client of the dual-stack listener: Go shows it as plain IPv4.
            addr = (addr[0][7:],) + tuple(addr[1:])
        self.gcid += 1
        client = Client(self, sock, self.gcid, addr)
        gevent.spawn(client.run)
        return client

    def register_client(self, client):
        """Add a client after its INFO went out; False (and the client closed) when full."""
        if not self.running:
            client.close_connection(ClosedState.ServerShutdown)
            return False
        if len(self.clients) >= self.opts.max_connections:
            log.error("%s - Maximum Connections Exceeded", client)
            client.send_proto_now(b"-ERR '" + ERR_MAX_CONNECTIONS.encode() + b"'\r\n")
            client.close_connection(ClosedState.MaxConnectionsExceeded)
            return False
        self.clients[client.cid] = client
        client.acc.add_client(client)  # Go: createClient registers it with the global account
        events.acc_conns_update(self, client.acc)
        self.total_clients += 1
        return True

    def remove_client(self, client):
        """Go: removeClient, and saveClosedClient for /connz?state=closed."""
        self.clients.pop(client.cid, None)
        self.closed_clients.append(client)
        if self.ldm and not self.clients and self.running:
            gevent.spawn(self.shutdown)

    def num_clients(self):
        return len(self.clients)

    def num_subscriptions(self):
        return sum(acc.sublist.count for acc in self.accounts.values())

    def check_authentication(self, client):
        """Go: checkAuthentication. May yield (bcrypt runs in the thread pool)."""
        ok = auth.check_client_authentication(self, client)
        if ok:
            client.user = client.copts.get("user") or None
        return ok

    # -- lame duck and shutdown ----------------------------------------------------------

    def lame_duck_mode(self):
        """Go: lameDuckMode. Stop accepting, tell clients, then close them spread over time.

        May yield: runs in its own greenlet (the SIGUSR2 handler spawns it).
        """
        if not self.running or self.ldm:
            return
        log.info("Entering lame duck mode, stop accepting new clients")
        self.ldm = True
        self._close_listener()
        opts = self.opts
        if not self.clients:
            self.shutdown()
            return
        for client in list(self.clients.values()):
            if client.copts["protocol"] >= 1 and client.first_pong_sent:
                client.enqueue_proto(self.client_info_json(client, ldm=True))
        grace = abs(opts.lame_duck_grace_period)
        gevent.sleep(grace)
        if not self.running:
            return
        log.info("Closing existing clients")
        clients = list(self.clients.values())
        if not clients:
            self.shutdown()
            return
        duration = max(opts.lame_duck_duration - grace, 1.0)
        interval = min(duration / len(clients), 1.0)
        for client in clients:
            if not self.running:
                return
            client.close_connection(ClosedState.ServerShutdown)
            gevent.sleep(interval / 2 + random.random() * interval / 2)
        self.shutdown()

    def _close_listener(self):
        """Close the client listener and the WebSocket one."""
        for holder in (self, self.websocket):
            if holder is not None and holder.listener is not None:
                try:
                    holder.listener.close()
                except OSError:
                    pass
                holder.listener = None

    def shutdown(self):
        """Go: Shutdown. Close the listener and every client. Idempotent; does not yield."""
        if not self.running:
            return
        events.shutdown_eventing(self)  # Go: first, so the SHUTDOWN event still goes out
        log.info("Initiating Shutdown...")
        self.running = False
        self._close_listener()
        if self.monitor is not None:
            self.monitor.close()
        for client in list(self.clients.values()):
            client.close_connection(ClosedState.ServerShutdown)
        if self.js is not None:
            gevent.spawn(self._shutdown_jetstream)  # the file stores flush: that may yield
            return
        log.info("Server Exiting..")
        self.shutdown_complete.set()

    def _shutdown_jetstream(self):
        from .js.jetstream import shutdown_jetstream
        try:
            shutdown_jetstream(self)
        finally:
            log.info("Server Exiting..")
            self.shutdown_complete.set()

    def wait_for_shutdown(self):
        """Block the calling greenlet until shutdown() has run (Go: WaitForShutdown)."""
        self.shutdown_complete.wait()
        gevent.sleep(0.05)  # let writeloops flush their final bytes

    # -- running beside non-gevent code ----------------------------------------------------

    def start_in_thread(self, timeout=10.0):
        """Run the server on its own thread and gevent hub; returns once it is listening.

        For unpatched programs, such as tests that use nats-py on asyncio.
        """
        ready = threading.Event()
        failure = []

        def run():
            try:
                self.start()
            except BaseException as e:  # reported to the caller below
                failure.append(e)
                ready.set()
                return
            self._wake = self.loop.async_()
            self._wake.start(self._run_calls)
            ready.set()
            try:
                self.wait_for_shutdown()
            finally:
                with self._wake_lock:
                    self._wake.close()
                    self._wake = None
            gevent.get_hub().destroy(destroy_loop=True)  # its epoll and wakeup descriptors

        self._thread = threading.Thread(target=run, name="gnatsd", daemon=True)
        self._thread.start()
        if not ready.wait(timeout):
            raise TimeoutError("gnatsd did not start in time")
        if failure:
            raise failure[0]
        return self

    def stop_thread(self, timeout=10.0):
        """Shut down a server started with start_in_thread, from any thread."""
        if self._thread is None:
            return
        if self.running:
            self.call_threadsafe(self.shutdown)
        self._thread.join(timeout)
        self._thread = None

    def call_threadsafe(self, fn, *args):
        """Run `fn(*args)` on the hub of a server started with start_in_thread, from any other
        thread, as a hub callback: it must not yield.

        Not gevent's loop.run_callback_threadsafe: that adds to libev's count of active
        watchers from the calling thread (ev_ref), which races the hub's own updates of it.
        On PyPy, whose cffi calls run without the GIL, an update was lost under load: the
        count fell to -1 or 0 with a timer running, and the hub ended with LoopExit ("This
        operation would block forever") in wait_for_shutdown. ev_async_send is thread-safe.
        """
        with self._wake_lock:
            if self._wake is None:
                return
            self._calls.append((fn, args))
            self._wake.send()

    def _run_calls(self):
        """call_threadsafe's calls, in order. The hub's callback."""
        calls = self._calls
        while calls:
            fn, args = calls.popleft()
            try:
                fn(*args)
            except Exception:
                log.exception("Internal error in a call from another thread")
