"""Decoding client WebSocket frames: gnatsd's hand-written `WsReadInfo` against wsproto.

Both decode the same 16 masked binary frames of ~64 KiB (full of PUBs), fed in 64 KiB reads
as a socket would hand them over, on a server-side connection. Runs alternate (30 pairs,
after a warm-up); the medians are reported in MB/s of frames.

    python loadtests/ws_decode_bench.py          # needs `pip install wsproto`
"""
from __future__ import annotations

import os
import statistics
import struct
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from wsproto import ConnectionType  # noqa: E402
from wsproto.connection import Connection  # noqa: E402

from gnatsd.websocket import WsReadInfo, ws_unmask  # noqa: E402

MASK = b"\x11\x22\x33\x44"


def client_frame(payload):
    n = len(payload)
    if n < 126:
        h = bytes((0x82, 0x80 | n))
    elif n < 65536:
        h = bytes((0x82, 0x80 | 126)) + struct.pack(">H", n)
    else:
        h = bytes((0x82, 0x80 | 127)) + struct.pack(">Q", n)
    return h + MASK + ws_unmask(MASK, payload)


def main():
    impl = f"{sys.implementation.name} {sys.version.split()[0]}"
    for size in (16, 16384):
        op = b"PUB foo " + str(size).encode() + b"\r\n" + b"x" * size + b"\r\n"
        stream = client_frame(op * max(1, 65000 // len(op))) * 16
        reads = [stream[i:i + 65536] for i in range(0, len(stream), 65536)]

        def gnatsd():
            r = WsReadInfo(lambda op, payload: None)
            return sum(len(b) for chunk in reads for b in r.read(chunk))

        def wsproto():
            c = Connection(ConnectionType.SERVER)
            n = 0
            for chunk in reads:
                c.receive_data(chunk)
                n += sum(len(ev.data) for ev in c.events())
            return n

        assert gnatsd() == wsproto()
        rates = {gnatsd: [], wsproto: []}
        for f in rates:
            for _ in range(5):
                f()
        for _ in range(30):
            for f in rates:
                t = time.perf_counter()
                f()
                rates[f].append(len(stream) / (time.perf_counter() - t) / 1e6)
        g, w = statistics.median(rates[gnatsd]), statistics.median(rates[wsproto])
        print(f"{impl:16s} {size:6d} B messages: gnatsd {g:6.0f} MB/s, wsproto {w:6.0f} MB/s ({g / w:.1f}x)")


if __name__ == "__main__":
    main()
