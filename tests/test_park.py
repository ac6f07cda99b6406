"""Idle connections park (gnatsd/conn.py, Client.park): a readloop that finds no data ends,
and a watcher on the socket starts a new one when data arrives. What a connection holds
between reads (a partial operation, the read size, its timers) must survive parking, and
every way of closing must reach a parked connection. TLS cases are in test_tls.py.
"""
from __future__ import annotations

import threading

from conftest import PONG_RE, check_for, client_subs

from gnatsd.const import START_BUF_SIZE
from gnatsd.errors import ClosedState


def client_of(server, c):
    """The server's Client for a raw_conn."""
    return check_for(5, lambda: server.clients.get(c.info_json["client_id"]))


def parked(cl):
    """No readloop runs, and the watcher waits for the next read."""
    watcher = cl._read_watcher
    return cl._parked and watcher is not None and watcher.active


def closed_parked(cl, reason):
    """The connection was closed for `reason` and its watcher is gone."""
    check_for(5, lambda: cl.closed)
    return cl.close_reason == reason and cl._read_watcher is None


def test_idle_connection_parks_and_wakes_for_each_read(server, raw_conn):
    c = raw_conn(server)
    cl = client_of(server, c)
    check_for(5, lambda: parked(cl))
    c.send(b"SUB foo 1\r\nPUB foo 2\r\nhi\r\nPING\r\n")
    c.expect(rb"MSG foo 1 2\r\nhi\r\n")
    c.expect(PONG_RE)
    check_for(5, lambda: parked(cl))
    c.ping_pong()


def test_operations_split_across_parks(server, raw_conn):
    c = raw_conn(server)
    cl = client_of(server, c)
    c.send(b"SUB foo 1\r\nPUB foo 11\r\nhello")
    check_for(5, lambda: cl._have == 5 and parked(cl))  # parked inside the payload
    c.send(b" world\r\nPU")
    check_for(5, lambda: cl._pbuf == b"PU" and parked(cl))  # parked inside a control line
    c.send(b"B foo 2\r\nok\r\nPING\r\n")
    c.expect(rb"MSG foo 1 11\r\nhello world\r\n")
    c.expect(rb"MSG foo 1 2\r\nok\r\n")
    c.expect(PONG_RE)


def test_read_size_is_kept_while_parked(server, raw_conn):
    c = raw_conn(server)
    cl = client_of(server, c)
    c.send(b"PUB foo 20000\r\n" + b"x" * 20000 + b"\r\nPING\r\n")
    c.expect(PONG_RE)
    check_for(5, lambda: parked(cl))
    assert cl._rsize > START_BUF_SIZE  # full reads doubled it; the next readloop starts there


def test_client_close_wakes_a_parked_connection(server, raw_conn):
    c = raw_conn(server)
    cl = client_of(server, c)
    c.send(b"SUB foo 1\r\nPUB foo 5\r\nhe")
    check_for(5, lambda: cl._have == 2 and parked(cl))
    c.close()
    assert closed_parked(cl, ClosedState.ClientClosed)
    assert client_subs(server) == 0


def test_ping_timeout_closes_a_parked_connection_and_its_descriptor_is_reused_safely(make_server, raw_conn):
    s = make_server(ping_interval=0.05, ping_max=2)
    c = raw_conn(s)
    cl = client_of(s, c)
    check_for(5, lambda: parked(cl))
    assert c.read_all_until_closed().endswith(b"-ERR 'Stale Connection'\r\n")  # PINGs, unanswered
    assert closed_parked(cl, ClosedState.StaleConnection)
    # The next connection may get the same descriptor: no stale watcher may read for it.
    d = raw_conn(s)
    d.send(b"SUB bar 1\r\nPUB bar 2\r\nok\r\n")
    d.expect(rb"MSG bar 1 2\r\nok\r\n")
    d.ping_pong()


def test_auth_timeout_closes_a_parked_connection(make_server, raw_conn):
    s = make_server(authorization="s3cr3t", auth_timeout=0.2)
    c = raw_conn(s, connect=False)
    c.send(b"CONN")  # a partial CONNECT, then nothing
    cl = client_of(s, c)
    check_for(5, lambda: cl._pbuf == b"CONN" and parked(cl))
    assert c.read_all_until_closed() == b"-ERR 'Authentication Timeout'\r\n"
    assert closed_parked(cl, ClosedState.AuthenticationTimeout)


def test_shutdown_closes_parked_connections(make_server, raw_conn):
    s = make_server()
    conns = [raw_conn(s) for _ in range(3)]
    clients = [client_of(s, c) for c in conns]
    check_for(5, lambda: all(parked(cl) for cl in clients))
    s.stop_thread()
    for c, cl in zip(conns, clients):
        assert c.read_all_until_closed() == b""
        assert closed_parked(cl, ClosedState.ServerShutdown)


def test_a_readloop_that_waits_with_data_pending_stops_watching(make_server, raw_conn):
    # The watcher stays started from one park to the next. A readloop that waits (here on a
    # slow consumer) while its socket has more data must stop it, or every turn of the hub
    # would call it again at once; parking starts it again.
    s = make_server(max_pending=256 * 1024, max_payload=8192)
    sub = raw_conn(s)
    sub.send(b"SUB foo 1\r\nPING\r\n")
    sub.expect(PONG_RE)  # then reads nothing: the server's writes back up
    pub = raw_conn(s)
    cl = client_of(s, pub)
    watcher = check_for(5, lambda: parked(cl) and cl._read_watcher)  # after CONNECT's PONG
    data = (b"PUB foo 4000\r\n" + b"x" * 4000 + b"\r\n") * 3000 + b"PING\r\n"
    sender = threading.Thread(target=pub.sock.sendall, args=(data,))
    sender.start()
    check_for(5, lambda: not cl._parked and not watcher.active, sleep=0.001)
    sender.join()
    pub.expect(PONG_RE, timeout=10)  # the stalls end (1 s at most each)
    check_for(5, lambda: parked(cl))
