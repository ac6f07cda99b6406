"""The `gnatsd` command. Ports nats-server `main.go` and `opts.go` (ConfigureOptions).

Minimal for now: -a/--addr, -p/--port, -n/--name. (Being extended.)
"""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402

from .opts import Options  # noqa: E402
from .server import Server  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(prog="gnatsd", add_help=False)
    ap.add_argument("-a", "--addr", "--net", default="0.0.0.0")
    ap.add_argument("-p", "--port", type=int, default=4222)
    ap.add_argument("-n", "--name", default="")
    ap.add_argument("-m", "--http_port", type=int, default=0)
    a, _ = ap.parse_known_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    server = Server(Options(host=a.addr, port=a.port, server_name=a.name))
    server.start()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, server.shutdown)
    server.wait_for_shutdown()
