"""-V: protocol tracing logs each op a client sends and each proto line it is sent."""
from __future__ import annotations

from gnatsd.log import TRACE


def test_trace_logs_ops_payloads_and_replies(make_server, raw_conn, caplog):
    server = make_server(trace=True, max_traced_msg_len=4)
    with caplog.at_level(TRACE, logger="gnatsd"):
        c = raw_conn(server)
        c.send(b"SUB foo 1\r\nPUB foo 10\r\n0123456789\r\n")
        c.ping_pong()
    lines = [r.getMessage().rsplit(" - ", 1)[1] for r in caplog.records if r.levelno == TRACE]
    assert "<<- [SUB foo 1]" in lines
    assert "<<- [PUB foo 10]" in lines
    assert "<<- MSG_PAYLOAD: [0123...]" in lines
    assert "<<- [PING]" in lines
    assert "->> [PONG]" in lines


def test_no_trace_records_without_trace(make_server, raw_conn, caplog):
    server = make_server()
    with caplog.at_level(TRACE, logger="gnatsd"):
        c = raw_conn(server)
        c.send(b"SUB foo 1\r\nPUB foo 2\r\nhi\r\n")
        c.ping_pong()
    assert not [r for r in caplog.records if r.levelno == TRACE]
