"""Start a NATS server command (gnatsd or the Go nats-server) on free local ports, for the
load scripts in this folder that compare the two."""
from __future__ import annotations

import shlex
import socket
import subprocess
import sys
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd, monitor=False):
    """Run `cmd -a 127.0.0.1 -p PORT [-m MPORT]` and wait until it listens.

    Returns (process, port) or, with monitor, (process, port, monitor port).
    """
    port = free_port()
    args = ["-a", "127.0.0.1", "-p", str(port)]
    ports = [port]
    if monitor:
        ports.append(free_port())
        args += ["-m", str(ports[1])]
    proc = subprocess.Popen(shlex.split(cmd) + args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            for p in ports:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            return (proc, *ports)
        except OSError:
            if proc.poll() is not None:
                sys.exit(f"server exited at start: {cmd}")
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"server did not listen: {cmd}")
