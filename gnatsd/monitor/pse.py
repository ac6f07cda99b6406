"""CPU and memory of this process for /varz. Ports nats-server `server/pse/pse_linux.go`
(ProcUsage, periodic).

Go samples /proc/<pid>/stat every second from a timer and reports the CPU share of the last
interval. gnatsd samples when asked instead, no more than once a second: `cpu` is the
percentage of one core used between the two latest samples (the first covers the whole life
of the process), `mem` the resident set size in bytes at the latest sample (as Go's, up to a
second old). Reading /proc does not block the hub.
Where /proc is missing (not Linux), both come from `resource.getrusage`, CPU over the whole
life of the process.

No socket, no gevent import.
"""
from __future__ import annotations

import os
import time

try:
    _PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
    _TICKS = os.sysconf("SC_CLK_TCK")
except (ValueError, OSError, AttributeError):
    _PAGE_SIZE, _TICKS = 4096, 100

_STAT = "/proc/self/stat"
# Fields after the command name (which is in parentheses and may hold spaces), counted from
# 0 at the state field: utime 11, stime 12, starttime 19, vsize 20, rss 21 (man 5 proc).
_UTIME, _STIME, _START, _VSIZE, _RSS = 11, 12, 19, 20, 21

SAMPLE_INTERVAL = 1.0  # seconds between CPU samples (Go: periodic's 1s timer)


def _read_stat():
    with open(_STAT, "rb") as f:
        data = f.read()
    return data[data.rindex(b")") + 2:].split()


def _uptime():
    with open("/proc/uptime", "rb") as f:
        return float(f.read().split()[0])


class ProcUsage:
    """Go: pse.ProcUsage with the sampling state periodic keeps in package variables."""

    def __init__(self):
        self.pcpu = 0.0
        self.rss = self.vss = 0
        self._last_total = None  # CPU ticks at the last sample
        self._last_time = None  # monotonic time of the last sample
        self.sample()

    def sample(self):
        """Take a sample (CPU and memory, as Go's periodic) if the last one is a second old
        (or there is none)."""
        now = time.monotonic()
        if self._last_time is not None and now - self._last_time < SAMPLE_INTERVAL:
            return
        try:
            fields = _read_stat()
            self.rss, self.vss = int(fields[_RSS]) * _PAGE_SIZE, int(fields[_VSIZE])
            total = int(fields[_UTIME]) + int(fields[_STIME])
            if self._last_total is None:
                # First sample: the share since the process started.
                elapsed = _uptime() - int(fields[_START]) / _TICKS
                used = total
            else:
                elapsed = now - self._last_time
                used = total - self._last_total
        except (OSError, ValueError, IndexError):
            self.pcpu, self.rss, self.vss = _rusage_pcpu(), _rusage_rss(), 0
            self._last_time = now
            return
        if elapsed > 0:
            # Go keeps one decimal: (ticks * 1000 / hz) / seconds, then / 10.
            self.pcpu = int(used * 1000 / _TICKS / elapsed) / 10.0
        self._last_total = total
        self._last_time = now

    def usage(self):
        """(pcpu, rss, vss): CPU percent, resident and virtual memory in bytes, as of the last
        sample (at most a second old)."""
        self.sample()
        return self.pcpu, self.rss, self.vss


_START_TIME = time.monotonic()


def _rusage_pcpu():
    try:
        import resource
        ru = resource.getrusage(resource.RUSAGE_SELF)
    except (ImportError, OSError):
        return 0.0
    elapsed = time.monotonic() - _START_TIME
    if elapsed <= 0:
        return 0.0
    return int((ru.ru_utime + ru.ru_stime) * 1000 / elapsed) / 10.0


def _rusage_rss():
    try:
        import resource
        # Linux reports KiB, macOS bytes; this fallback only runs where /proc is missing.
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    except (ImportError, OSError):
        return 0
