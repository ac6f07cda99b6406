#!/usr/bin/env bash
# Run nats.py's own test suites against gnatsd, or against the Go nats-server
# for a baseline.
#
#   tests/compat/run_nats_py_suite.sh [gnatsd|go] [pytest selection...]
#
# Environment (all optional):
#   SUITE         nats       the nats-py client's suite, nats/tests (the checkout's default)
#                 nats-core  the new nats-core client's suite, nats-core/tests (Python >= 3.13)
#   NATSPY_REPO   nats.py git repo (bare is fine)  default /work/.mirror/nats-io+nats.py/repo
#   NATSPY_REF    commit to test                    default HEAD
#   WORKDIR       scratch dir                       default /tmp/gnatsd-compat
#   SHARDS        parallel shards                   default 4
#   TEST_TIMEOUT  per-test timeout, seconds         default 60
#   SHARD_TIMEOUT wall-clock limit per shard, s     default 3000
#   PYTHON313     interpreter for SUITE=nats-core   default python3.13 on PATH, else pyenv's 3.13.x
#   GNATSD_REF    gnatsd commit to test             default HEAD (of the repo holding this script),
#                 installed clean into its own venv; `worktree` uses the installed
#                 (editable) gnatsd, uncommitted changes included
#   GNATSD_BIN    gnatsd command to use as is (overrides GNATSD_REF)
#
# How it works:
# - the checkout's nats/ package (with extras nkeys, aiohttp) is installed into its
#   own venv ($WORKDIR/venv), so the suite runs against the checkout's client code,
#   not whatever nats-py the system has; gnatsd keeps running from its own
#   interpreter (GNATSD_BIN).
# - for `gnatsd`, tests/compat/ (which holds the `nats-server` shim) goes first on PATH.
# - the suite uses fixed ports (4222-4225, 8222-8225, 6223-6225), so each shard runs
#   in its own network namespace (`unshare -n`, needs root) -- shards cannot clash
#   with each other or with anything else on the machine. Without unshare the
#   script falls back to SHARDS=1 in the host namespace.
# - results: $WORKDIR/results-<suite>-<server>/results.tsv (nodeid, outcome, message) and
#   summary.txt, info.txt; per-shard junit XML and logs beside them; gnatsd's stderr and
#   every command line it was started with go to gnatsd.log (via GNATSD_SHIM_LOG).
set -euo pipefail

SERVER=${1:-gnatsd}
shift || true
HERE=$(cd "$(dirname "$0")" && pwd)
NATSPY_REPO=${NATSPY_REPO:-/work/.mirror/nats-io+nats.py/repo}
NATSPY_REF=${NATSPY_REF:-HEAD}
WORKDIR=${WORKDIR:-/tmp/gnatsd-compat}
SHARDS=${SHARDS:-4}
TEST_TIMEOUT=${TEST_TIMEOUT:-60}
SHARD_TIMEOUT=${SHARD_TIMEOUT:-3000}
SUITE=${SUITE:-nats}

mkdir -p "$WORKDIR"
SHA=$(git -C "$NATSPY_REPO" rev-parse "$NATSPY_REF")
SRC="$WORKDIR/natspy-${SHA:0:12}"
case "$SUITE" in
nats)
    VENV="$WORKDIR/venv"
    PY=python3
    PKGS=("$SRC/nats[nkeys,aiohttp]")
    ;;
nats-core)
    VENV="$WORKDIR/venv-core"
    PY=${PYTHON313:-}
    if [ -z "$PY" ]; then
        for c in python3.13 "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.13*/bin/python3; do
            "$c" -c 'import sys; assert sys.version_info >= (3, 13)' 2>/dev/null && { PY=$c; break; }
        done
    fi
    [ -n "$PY" ] || { echo "SUITE=nats-core needs Python 3.13: set PYTHON313" >&2; exit 1; }
    PKGS=("$SRC/nats-core[nkeys,websocket]" "$SRC/nats-server")
    ;;
*) echo "SUITE must be nats or nats-core" >&2; exit 2 ;;
esac

# 1. the checkout
if [ ! -d "$SRC" ]; then
    mkdir -p "$SRC.tmp"
    git -C "$NATSPY_REPO" archive "$SHA" | tar -x -C "$SRC.tmp"
    mv "$SRC.tmp" "$SRC"
fi

# 2. a venv with the checkout's client and the test dependencies
if [ ! -f "$VENV/.installed-$SHA" ]; then
    "$PY" -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade "${PKGS[@]}" \
        pytest pytest-asyncio pytest-timeout 2>&1 | grep -v '^WARNING: Location' || true
    touch "$VENV/.installed-$SHA"
fi

# 3. which server
case "$SERVER" in
gnatsd)
    GNATSD_REPO=$(cd "$HERE/../.." && pwd)
    if [ -n "${GNATSD_BIN:-}" ]; then
        GNATSD_DESC="$GNATSD_BIN (as given)"
    elif [ "${GNATSD_REF:-HEAD}" = worktree ]; then
        # whatever `gnatsd` is installed (editable: the work tree, committed or not)
        GNATSD_BIN="$(dirname "$(python3 -c 'import sys; print(sys.executable)')")/gnatsd"
        [ -x "$GNATSD_BIN" ] || GNATSD_BIN=$(command -v gnatsd)
        GNATSD_DESC="$GNATSD_BIN (work tree of $GNATSD_REPO at $(git -C "$GNATSD_REPO" rev-parse --short HEAD), uncommitted changes included)"
    else
        # a clean install of one commit, in its own venv: results name a commit
        GSHA=$(git -C "$GNATSD_REPO" rev-parse "${GNATSD_REF:-HEAD}")
        GVENV="$WORKDIR/gnatsd-venv-${GSHA:0:12}"
        if [ ! -x "$GVENV/bin/gnatsd" ]; then
            rm -rf "$GVENV" "$WORKDIR/gnatsd-src"
            mkdir -p "$WORKDIR/gnatsd-src"
            git -C "$GNATSD_REPO" archive "$GSHA" | tar -x -C "$WORKDIR/gnatsd-src"
            python3 -m venv "$GVENV"
            "$GVENV/bin/pip" install -q "$WORKDIR/gnatsd-src" 2>&1 | grep -v '^WARNING: Location' || true
            rm -rf "$WORKDIR/gnatsd-src"
        fi
        GNATSD_BIN="$GVENV/bin/gnatsd"
        GNATSD_DESC="$GNATSD_BIN (commit $GSHA)"
    fi
    export GNATSD_BIN
    export PATH="$HERE:$PATH"
    ;;
go) ;;
*) echo "usage: $0 [gnatsd|go] [pytest args]" >&2; exit 2 ;;
esac
export PATH="$VENV/bin:$PATH"
OUT="$WORKDIR/results-$SUITE-$SERVER"
rm -rf "$OUT"; mkdir -p "$OUT"
[ "$SERVER" = gnatsd ] && export GNATSD_SHIM_LOG="$OUT/gnatsd.log"
{
    echo "server:  $SERVER -> $(command -v nats-server)"
    [ "$SERVER" = gnatsd ] && echo "gnatsd:  $GNATSD_DESC"
    [ "$SERVER" = go ] && echo "version: $(nats-server --version)"
    echo "nats.py: $SHA ($SUITE/tests, $("$VENV/bin/python" --version))"
    echo "date:    $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$OUT/info.txt"

# the suite's helper looks for ./nats-server, ~/nats-server/nats-server and
# nats/tests/nats-server before PATH: none of them may exist
for p in "$SRC/nats-server" "$HOME/nats-server/nats-server" "$SRC/nats/tests/nats-server"; do
    [ -f "$p" ] && { echo "error: $p exists and would be used instead of PATH" >&2; exit 1; }
done

# nats/tests takes its pytest settings from the top pyproject.toml, nats-core/tests
# from nats-core/pyproject.toml: run each from its own rootdir
if [ "$SUITE" = nats ]; then cd "$SRC"; else cd "$SRC/$SUITE"; fi
SEL=("$@"); [ ${#SEL[@]} -eq 0 ] && SEL=("$SUITE/tests")
[ "$SUITE" = nats ] || SEL=("${SEL[@]#$SUITE/}")

# 4. shard by test class (a class shares its server setup), biggest first
python -m pytest --collect-only -q "${SEL[@]}" 2>/dev/null | grep '::' >"$OUT/collected.txt" || true
echo "collected $(wc -l <"$OUT/collected.txt") tests"
if ! unshare -n true 2>/dev/null; then
    echo "unshare -n not available: running in one shard on the host network" >&2
    SHARDS=1; NETNS=0
else
    NETNS=1
fi
python - "$OUT" "$SHARDS" <<'PY'
import sys, collections
out, n = sys.argv[1], int(sys.argv[2])
groups = collections.OrderedDict()
for line in open(f"{out}/collected.txt"):
    nid = line.strip()
    key = "::".join(nid.split("::")[:2]) if nid.count("::") >= 2 else nid.split("::")[0]
    groups.setdefault(key, []).append(nid)
shards = [[] for _ in range(n)]
for key, ids in sorted(groups.items(), key=lambda kv: -len(kv[1])):
    min(shards, key=len).extend(ids)
for i, s in enumerate(shards):
    open(f"{out}/shard{i}.args", "w").write("\n".join(s) + "\n")
PY

run_shard() {
    local i=$1
    local cmd="python -m pytest -p no:cacheprovider -q -rA --timeout=$TEST_TIMEOUT \
        --junitxml=$OUT/shard$i.xml @$OUT/shard$i.args"
    if [ "$NETNS" = 1 ]; then
        timeout -k 30 "$SHARD_TIMEOUT" unshare -n sh -c "ip link set lo up && exec $cmd"
    else
        timeout -k 30 "$SHARD_TIMEOUT" sh -c "exec $cmd"
    fi
}
pids=()
for ((i = 0; i < SHARDS; i++)); do
    [ -s "$OUT/shard$i.args" ] || continue
    run_shard "$i" >"$OUT/shard$i.log" 2>&1 &
    pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || true; done

# 5. results
python - "$OUT" "$SUITE" <<'PY'
import sys, glob, collections
import xml.etree.ElementTree as ET
out, suite = sys.argv[1], sys.argv[2]
rows = {}
for f in sorted(glob.glob(f"{out}/shard*.xml")):
    for tc in ET.parse(f).iter("testcase"):
        cls, name = tc.get("classname"), tc.get("name")
        if not cls:
            continue  # an error outside any test (e.g. at collection): its tests show as not-run
        parts = cls.split(".")
        # classname is tests.test_x.Class or tests.test_x (functions)
        mod = [p for p in parts if p.startswith("test_")]
        mi = parts.index(mod[0]) if mod else len(parts) - 1
        nid = suite + "/tests/" + parts[mi] + ".py" + "".join("::" + p for p in parts[mi + 1:]) + "::" + name
        outcome, msg = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed", "error": "error", "skipped": "skipped"}[child.tag]
                msg = (child.get("message") or "").splitlines()[0][:200] if child.get("message") else ""
                break
        if outcome == "error" and rows.get(nid, ("",))[0] == "failed":
            continue  # teardown error after a failure: keep the failure
        rows[nid] = (outcome, msg)
collected = [l.strip() for l in open(f"{out}/collected.txt")]
collected = [c if c.startswith(suite + "/") else f"{suite}/{c}" for c in collected]
for nid in collected:
    if nid not in rows:
        rows[nid] = ("not-run", "shard killed or test never reported")
with open(f"{out}/results.tsv", "w") as fh:
    for nid in sorted(rows):
        o, m = rows[nid]
        fh.write(f"{nid}\t{o}\t{m}\n")
c = collections.Counter(o for o, _ in rows.values())
line = ", ".join(f"{c[k]} {k}" for k in ("passed", "failed", "error", "skipped", "not-run") if c[k])
open(f"{out}/summary.txt", "w").write(line + "\n")
print("summary:", line)
PY
