"""HTTP monitoring: /varz, /connz, /subsz and the other endpoints of nats-server 2.9.10, plus
/metrics for Prometheus. Ports nats-server `server/monitor.go`, `monitor_sort_opts.go`,
`ring.go` and `pse/pse_linux.go`.

- `monitor.py`: the data functions (Go: Varz, Connz, ...), one dict per endpoint, no HTTP.
- `app.py`: the Flask app and the gevent WSGI server (Go: Handle*, startMonitoring).
- `../gofmt.py` (shared with the server): Go's JSON, time, duration and strconv formats.
- `ring.py`: closed connections for /connz?state=closed (Go: ring.go).
- `sort_opts.py`: /connz sort options (Go: monitor_sort_opts.go).
- `pse.py`: CPU and memory from /proc (Go: pse).
- `metrics.py`: /metrics in Prometheus text format (not in Go).

Importing this package is cheap and pulls in neither Flask nor gevent: the server imports
`ring` for every connection that closes, and `app` (Flask) only when monitoring is on.
"""
from __future__ import annotations


class MonitorStartError(OSError):
    """The monitor cannot start (Go: StartMonitoring's errors, such as "can't listen to the
    monitor port"; the server does not start). `strerror` is Go's text."""
