"""Compare a gnatsd run with a Go run of nats.py's suites and print Markdown tables.

    python tests/compat/report.py [WORKDIR]      (default /tmp/gnatsd-compat)

Reads WORKDIR/results-<suite>-<server>/results.tsv written by run_nats_py_suite.sh for
suite in (nats, nats-core) and server in (go, gnatsd). Every test that passes on Go and
not on gnatsd is put in a class by RULES below (first match wins); a test that no rule
matches is listed as UNCLASSIFIED, so a new failure cannot hide in a known bucket.
Keep RULES in step with docs/COMPATIBILITY.md.
"""
from __future__ import annotations

import collections
import os
import re
import sys

# (kind, pattern on the node id, reason). kind: "n/a" = needs a feature that is out of
# scope; "bug" = a gnatsd bug; "timing" = depends on machine load, passes when run alone.
RULES = [
    ("n/a", r"nats/tests/test_js\.py::", "JetStream / KV / object store (`-js`)"),
    ("n/a", r"::ClientTLSTest::|::ClientTLSReconnectTest::|::ClientTLSHandshakeFirstTest::|nats-core/tests/test_tls\.py::",
     "TLS (`--tls*`, config `tls {}`)"),
    ("n/a", r"test_client_websocket\.py::|test_custom_headers_websocket\.py::|nats-core/tests/test_websocket\.py::",
     "WebSocket (config `websocket {}`)"),
    ("n/a", r"::ClientTest::(test_publish|test_subscribe|test_unsubscribe)$", "HTTP monitoring (`/varz`, `/connz` on `-m`)"),
    ("n/a", r"::ClusterDiscoveryTest::|::ClusterDiscoveryReconnectTest::", "clustering (`--routes`, `connect_urls` in INFO)"),
    ("n/a", r"::NoAuthUserClientTest::", "config file: `accounts {}` with `no_auth_user`"),
    ("n/a", r"::ClientJWTAuthTest::|test_connect_with_jwt|test_reconnect_with_jwt",
     "JWT / operator mode (config `operator`, `resolver`, `resolver_preload`)"),
    ("n/a", r"::ClientNkeysAuthTest::|nkey", "nkeys (config `authorization { users: [{nkey}] }` / `accounts {}`)"),
    ("n/a", r"nats-core/tests/test_client\.py::(test_connect_to_token_server|test_reconnect_with_token|"
            r"test_reconnect_with_invalid_auth|test_connect_uses_token_from_url|test_explicit_token_overrides_url)",
     "config file: `authorization { token }` map"),
    ("n/a", r"nats-core/tests/test_client\.py::(test_connect_to_user_pass_server|test_reconnect_with_user_pass|"
            r"test_connect_uses_user_password_from_url|test_explicit_credentials_override_url|"
            r"test_url_credentials_reject_wrong_value)",
     "config file: `authorization { user, password }` map"),
    ("bug", r"nats-core/tests/test_client\.py::test_connect_with_ipv6_localhost$",
     "B1: default listen address 0.0.0.0 is IPv4-only; Go listens dual-stack (`*:port`)"),
    ("timing", r"::ClientReconnectTest::test_failed_reconnect_removes_servers$",
     "restarted server must listen within ~0.5 s; gnatsd starts in ~0.25 s idle, slower under load"),
    ("timing", r"test_nuid\.py::", "client-only CPU test; times out when shards load the machine"),
]


def load(path):
    rows = {}
    if not os.path.exists(path):
        return None
    for line in open(path):
        nid, outcome, msg = (line.rstrip("\n").split("\t") + ["", ""])[:3]
        rows[nid] = (outcome, msg)
    return rows


def classify(nid):
    for kind, pat, reason in RULES:
        if re.search(pat, nid):
            return kind, reason
    return "UNCLASSIFIED", "unclassified: investigate"


def group_of(nid):
    """file::Class for methods, file for module-level test functions."""
    parts = nid.split("::")
    return "::".join(parts[:2]) if len(parts) > 2 else parts[0]


def main():
    workdir = sys.argv[1] if len(sys.argv) > 1 else "/tmp/gnatsd-compat"
    out = []
    p = out.append
    for suite in ("nats", "nats-core"):
        go = load(f"{workdir}/results-{suite}-go/results.tsv")
        gn = load(f"{workdir}/results-{suite}-gnatsd/results.tsv")
        if go is None or gn is None:
            continue
        p(f"\n### `{suite}/tests`\n")
        c_go = collections.Counter(o for o, _ in go.values())
        c_gn = collections.Counter(o for o, _ in gn.values())
        keys = [k for k in ("passed", "failed", "error", "skipped", "not-run") if c_go[k] or c_gn[k]]
        p("| server | " + " | ".join(keys) + " | total |")
        p("|---|" + "---|" * (len(keys) + 1))
        p("| Go nats-server 2.9.10 | " + " | ".join(str(c_go[k]) for k in keys) + f" | {len(go)} |")
        p("| gnatsd | " + " | ".join(str(c_gn[k]) for k in keys) + f" | {len(gn)} |")

        buckets = collections.defaultdict(list)
        for nid in sorted(gn):
            og = go.get(nid, ("missing", ""))[0]
            on = gn[nid][0]
            if og == "passed" and on != "passed":
                kind, reason = classify(nid)
                buckets[(kind, reason)].append((nid, on, gn[nid][1]))
        p("\nPassing on Go, not on gnatsd, by cause:\n")
        p("| kind | cause | tests |")
        p("|---|---|---|")
        for (kind, reason), items in sorted(buckets.items(), key=lambda kv: (kv[0][0] != "bug", -len(kv[1]))):
            p(f"| {kind} | {reason} | {len(items)} |")
        for (kind, reason), items in sorted(buckets.items(), key=lambda kv: (kv[0][0] != "bug", -len(kv[1]))):
            p(f"\n<details><summary>{kind}: {reason} ({len(items)})</summary>\n")
            for nid, on, msg in items:
                p(f"- `{nid}` — {on}: {msg[:120]}")
            p("\n</details>")

        bad_both = sorted(n for n in gn if go.get(n, ("",))[0] not in ("passed", "skipped") and gn[n][0] != "passed")
        if bad_both:
            p(f"\nFailing on Go 2.9.10 too ({len(bad_both)}; features of newer servers or environment):\n")
            for nid in bad_both:
                p(f"- `{nid}` — Go: {go.get(nid, ('', 'not in its run'))[1][:100]}")
        skipped = sorted(n for n in gn if gn[n][0] == "skipped")
        if skipped:
            reasons = collections.Counter(gn[n][1] for n in skipped)
            p(f"\nSkipped on gnatsd ({len(skipped)}): " + "; ".join(f"{r} ({k})" for r, k in reasons.most_common()))

        passed = collections.OrderedDict()
        for nid in sorted(gn):
            if gn[nid][0] == "passed":
                passed.setdefault(group_of(nid), []).append(nid.split("::")[-1])
        p(f"\nPassing on gnatsd ({sum(map(len, passed.values()))}), by test class / file:\n")
        p("| class | passed | tests |")
        p("|---|---|---|")
        for grp, names in passed.items():
            p(f"| `{grp}` | {len(names)} | " + ", ".join(names) + " |")
    print("\n".join(out))


if __name__ == "__main__":
    main()
