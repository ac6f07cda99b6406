"""/metrics: the server's figures in Prometheus' text exposition format (version 0.0.4).

Not in nats-server, which leaves Prometheus to a separate exporter
(nats-io/prometheus-nats-exporter) that polls /varz, /connz and /subsz. The names here are
that exporter's (`gnatsd_varz_in_msgs`, `gnatsd_connz_total`, `gnatsd_subsz_num_cache`, ...)
with its `server_id` label, so dashboards and alerts written for it work unchanged; a few
figures the exporter cannot see are added under `gnatsd_server_*`. docs/MONITORING.md lists
every metric.

Counters that only grow (messages, bytes, connections ever made) are typed `counter`; the
exporter types everything `gauge`, and PromQL's rate() accepts either.

No socket, no gevent import.
"""
from __future__ import annotations

import sys
import time

from .. import const
from .monitor import proc_usage, sublist_stats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (name, type, help). The value comes from the function named in collect().
METRICS = (
    ("gnatsd_server_info", "gauge",
     "Always 1; the labels name the server and its versions."),
    ("gnatsd_server_start_time_seconds", "gauge", "When the server started, in seconds since the epoch."),
    ("gnatsd_varz_uptime_seconds", "gauge", "Seconds since the server started."),
    ("gnatsd_varz_cpu", "gauge", "CPU use of the server process, in percent of one core."),
    ("gnatsd_varz_mem", "gauge", "Resident memory of the server process, in bytes."),
    ("gnatsd_varz_cores", "gauge", "CPU cores on the host."),
    ("gnatsd_varz_max_connections", "gauge", "Configured maximum number of client connections."),
    ("gnatsd_varz_max_payload", "gauge", "Configured maximum message payload, in bytes."),
    ("gnatsd_varz_max_pending", "gauge", "Configured maximum pending bytes per connection."),
    ("gnatsd_varz_connections", "gauge", "Open client connections."),
    ("gnatsd_varz_total_connections", "counter", "Client connections accepted since start."),
    ("gnatsd_varz_routes", "gauge", "Open route connections."),
    ("gnatsd_varz_remotes", "gauge", "Remote servers connected over routes."),
    ("gnatsd_varz_leafnodes", "gauge", "Open leafnode connections."),
    ("gnatsd_varz_in_msgs", "counter", "Messages received from clients."),
    ("gnatsd_varz_out_msgs", "counter", "Messages delivered to clients."),
    ("gnatsd_varz_in_bytes", "counter", "Payload bytes received from clients."),
    ("gnatsd_varz_out_bytes", "counter", "Payload bytes delivered to clients."),
    ("gnatsd_varz_slow_consumers", "counter", "Connections closed as slow consumers."),
    ("gnatsd_varz_subscriptions", "gauge", "Subscriptions in all accounts."),
    ("gnatsd_connz_total", "gauge", "Open client connections (as /connz's total)."),
    ("gnatsd_connz_pending_bytes", "gauge", "Bytes waiting to be written, summed over open connections."),
    ("gnatsd_connz_subscriptions", "gauge", "Subscriptions, summed over open connections."),
    ("gnatsd_connz_closed_connections", "gauge",
     "Closed connections held for /connz?state=closed (bounded ring)."),
    ("gnatsd_server_closed_connections_total", "counter",
     "Connections closed since start, by reason (the /connz reason text)."),
    ("gnatsd_subsz_num_subscriptions", "gauge", "Subscriptions in the sublist."),
    ("gnatsd_subsz_num_cache", "gauge", "Entries in the sublist's match cache."),
    ("gnatsd_subsz_num_inserts", "counter", "Subscriptions inserted into the sublist since start."),
    ("gnatsd_subsz_num_removes", "counter", "Subscriptions removed from the sublist since start."),
    ("gnatsd_subsz_num_matches", "counter", "Sublist lookups since start."),
    ("gnatsd_subsz_cache_hit_rate", "gauge", "Share of sublist lookups answered from the cache (0-1)."),
    ("gnatsd_subsz_max_fanout", "gauge", "Most subscribers of any cached subject."),
    ("gnatsd_subsz_avg_fanout", "gauge", "Average subscribers of a cached subject."),
    ("gnatsd_server_http_requests_total", "counter", "Monitoring requests served, by endpoint path."),
)


def _label_value(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(pairs):
    return "{" + ",".join(f'{k}="{_label_value(v)}"' for k, v in pairs) + "}"


def _num(v):
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, int):
        return str(v)
    return repr(float(v))


def collect(s):
    """{metric name: [(extra label pairs, value), ...]} for the server right now. Does not yield."""
    pcpu, rss, _ = proc_usage()
    o = s.opts
    now = time.time()
    clients = s.clients
    pending = nsubs = 0
    for c in clients.values():
        pending += c.pb
        nsubs += len(c.subs)
    st = sublist_stats(*(a.sublist for a in s.accounts.values()))
    ring = s.closed_clients
    req_stats = getattr(s, "http_req_stats", None) or {}
    impl = f"{sys.implementation.name}{sys.version.split()[0]}"
    v = {
        "gnatsd_server_info": [((("server_name", s.name), ("version", const.VERSION),
                                 ("gnatsd_version", const.GNATSD_VERSION), ("python", impl)), 1)],
        "gnatsd_server_start_time_seconds": [((), s.start_time or 0.0)],
        "gnatsd_varz_uptime_seconds": [((), now - s.start_time if s.start_time else 0.0)],
        "gnatsd_varz_cpu": [((), pcpu)],
        "gnatsd_varz_mem": [((), rss)],
        "gnatsd_varz_cores": [((), _cores())],
        "gnatsd_varz_max_connections": [((), o.max_connections)],
        "gnatsd_varz_max_payload": [((), o.max_payload)],
        "gnatsd_varz_max_pending": [((), o.max_pending)],
        "gnatsd_varz_connections": [((), len(clients))],
        "gnatsd_varz_total_connections": [((), s.total_clients)],
        "gnatsd_varz_routes": [((), 0)],
        "gnatsd_varz_remotes": [((), 0)],
        "gnatsd_varz_leafnodes": [((), 0)],
        "gnatsd_varz_in_msgs": [((), s.in_msgs)],
        "gnatsd_varz_out_msgs": [((), s.out_msgs)],
        "gnatsd_varz_in_bytes": [((), s.in_bytes)],
        "gnatsd_varz_out_bytes": [((), s.out_bytes)],
        "gnatsd_varz_slow_consumers": [((), s.slow_consumers)],
        "gnatsd_varz_subscriptions": [((), s.num_subscriptions())],
        "gnatsd_connz_total": [((), len(clients))],
        "gnatsd_connz_pending_bytes": [((), pending)],
        "gnatsd_connz_subscriptions": [((), nsubs)],
        "gnatsd_connz_closed_connections": [((), len(ring))],
        "gnatsd_server_closed_connections_total": [((("reason", r),), n) for r, n in sorted(ring.by_reason.items())],
        "gnatsd_server_http_requests_total": [((("path", p),), n) for p, n in sorted(req_stats.items())],
    }
    for key, value in st.items():
        v["gnatsd_subsz_" + key] = [((), value)]
    return v


def _cores():
    import os
    return os.cpu_count() or 1


def render(s):
    """The /metrics page: every metric with its HELP and TYPE lines, labelled with server_id."""
    values = collect(s)
    sid = ("server_id", s.server_id)
    out = []
    for name, typ, text in METRICS:
        out.append(f"# HELP {name} {text}")
        out.append(f"# TYPE {name} {typ}")
        for pairs, value in values.get(name, ()):
            out.append(f"{name}{_labels((sid,) + tuple(pairs))} {_num(value)}")
    out.append("")
    return "\n".join(out)
