#!/usr/bin/env bash
# Builds, installs and (re)starts the AccuBooks standalone server, then waits
# until it is ready.
#
#   deploy/deploy.sh [--no-systemd] [--env-file FILE] [--prefix DIR] [--binary FILE]
#   deploy/deploy.sh --stop [--no-systemd] [--prefix DIR]
#
#   --env-file FILE  the contract's variables as KEY=VALUE lines (default
#                    /etc/accubooks/accubooks.env); copied, mode 0600, to
#                    PREFIX/etc/accubooks.env
#   --prefix DIR     where it installs (default /opt/accubooks): bin/server,
#                    etc/, var/ (the working directory: a relative SQLite
#                    file lands there), log/ and run/ (without systemd)
#   --no-systemd     a supervised background process (PREFIX/bin/supervise)
#                    instead of a systemd service; the default where systemd
#                    is not running
#   --binary FILE    install this server binary instead of building the
#                    release one (`cargo build --release --example server`)
#   --stop           stop the server (gracefully) and exit
#
# With systemd it installs deploy/systemd/accubooks.service (its paths set to
# the prefix) and restarts the unit. Without, it stops the supervisor a
# previous run started (the server drains first) and starts a new one. Either
# way one server runs afterwards, however often this is run.
#
# It waits up to 60 s for GET /api/monitoring/ready to answer 200, printing
# progress every 10 s; `degraded` (a dependency down) counts as success, and
# each dependency's status is printed at the end. On failure it prints the
# last 20 lines of the server's log and exits 1 (2 for a bad invocation).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/.." && pwd)"

prefix=/opt/accubooks
env_file=/etc/accubooks/accubooks.env
binary=
stop_only=0
if [ -d /run/systemd/system ]; then systemd=1; else systemd=0; fi
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 2; }
while [ $# -gt 0 ]; do
    case "$1" in
        --no-systemd) systemd=0 ;;
        --env-file) env_file="${2:?--env-file needs a file}"; shift ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift ;;
        --binary) binary="${2:?--binary needs a file}"; shift ;;
        --stop) stop_only=1 ;;
        -h | --help) usage ;;
        *) echo "deploy: unknown option $1" >&2; usage ;;
    esac
    shift
done
mkdir -p "$prefix"
prefix="$(cd "$prefix" && pwd)"
pidfile="$prefix/run/supervise.pid"
log="$prefix/log/accubooks.log"
started=$(date +%s)
say() { echo "deploy: [$(( $(date +%s) - started )) s] $*"; }

supervisor_pid() {
    local pid
    pid="$(cat "$pidfile" 2>/dev/null || true)"
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then echo "$pid"; fi
}

stop_supervised() {
    local pid
    pid="$(supervisor_pid)"
    [ -n "$pid" ] || return 0
    say "stopping the running server (supervisor pid $pid; it drains first)"
    kill -TERM "$pid"
    for _ in $(seq 1 600); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    say "the server did not stop within 60 s: killing it"
    pkill -KILL -P "$pid" 2>/dev/null || true
    kill -KILL "$pid" 2>/dev/null || true
}

if [ "$stop_only" -eq 1 ]; then
    if [ "$systemd" -eq 1 ]; then systemctl stop accubooks; else stop_supervised; fi
    say "stopped"
    exit 0
fi

[ -r "$env_file" ] || { echo "deploy: cannot read the env file $env_file (--env-file)" >&2; exit 2; }
command -v curl > /dev/null || { echo "deploy: curl is needed to check readiness" >&2; exit 2; }

# The value of a variable in the env file (the last one wins, as for systemd).
env_value() {
    sed -n "s/^$1=//p" "$env_file" | tail -n 1
}

# 1. The binary.
if [ -z "$binary" ]; then
    say "building the release server (cargo build --release --example server)"
    (cd "$repo" && cargo build --release --locked --quiet --example server)
    binary="${CARGO_TARGET_DIR:-$repo/target}/release/examples/server"
fi
[ -x "$binary" ] || { echo "deploy: $binary is not an executable" >&2; exit 2; }

# 2. Install: a new binary replaces the old one by a rename, so a running
# server keeps its file until it is restarted.
mkdir -p "$prefix/bin" "$prefix/etc" "$prefix/var" "$prefix/log" "$prefix/run"
install -m 0755 "$binary" "$prefix/bin/server.new"
mv -f "$prefix/bin/server.new" "$prefix/bin/server"
install -m 0755 "$here/supervise" "$prefix/bin/supervise"
if [ "$(cd "$(dirname "$env_file")" && pwd)/$(basename "$env_file")" != "$prefix/etc/accubooks.env" ]; then
    install -m 0600 "$env_file" "$prefix/etc/accubooks.env"
fi
say "installed $prefix/bin/server"

# 3. (Re)start.
if [ "$systemd" -eq 1 ]; then
    id accubooks > /dev/null 2>&1 || useradd --system --home-dir "$prefix/var" --shell /usr/sbin/nologin accubooks
    chown accubooks:accubooks "$prefix/var"
    sed -e "s|^ExecStart=.*|ExecStart=$prefix/bin/server|" \
        -e "s|^EnvironmentFile=.*|EnvironmentFile=$prefix/etc/accubooks.env|" \
        -e "s|^WorkingDirectory=.*|WorkingDirectory=$prefix/var|" \
        -e "s|^ReadWritePaths=.*|ReadWritePaths=$prefix/var|" \
        "$here/systemd/accubooks.service" > /etc/systemd/system/accubooks.service
    systemctl daemon-reload
    systemctl enable --quiet accubooks
    systemctl restart accubooks
    say "systemd unit accubooks restarted"
    last_lines() { journalctl -u accubooks -n 20 --no-pager; }
    alive() { case "$(systemctl is-active accubooks || true)" in active | activating) ;; *) return 1 ;; esac; }
fi

port="$(env_value PORT)"
host="$(env_value HOSTNAME)"
case "${host:-0.0.0.0}" in 0.0.0.0 | '::' | '[::]') host=127.0.0.1 ;; esac
base="http://${host}:${port:-5000}"
fail() {
    echo "deploy: FAILED: $*" >&2
    echo "deploy: the last 20 lines of the server's log:" >&2
    last_lines >&2 || true
    exit 1
}
answers() { curl -s -o /dev/null --max-time 2 "$base/api/monitoring/live"; }

if [ "$systemd" -eq 0 ]; then
    last_lines() { tail -n 20 "$log"; }
    stop_supervised
    rm -f "$pidfile"
    # Ours is stopped: whatever still answers there is another process, and
    # its answers must not pass for the new server's.
    if answers; then
        touch "$log"
        fail "another process already serves $base (PORT in $env_file)"
    fi
    # Not a process-group leader, so setsid detaches it without forking:
    # $! is the supervisor.
    setsid "$prefix/bin/supervise" "$prefix" < /dev/null > /dev/null 2>&1 &
    supervisor=$!
    say "supervised server started (supervisor pid $supervisor, log $log)"
    # (It stays this script's child: once it exits it is a zombie, which
    # `kill -0` would still find.)
    alive() {
        local state
        state="$(ps -o stat= -p "$supervisor" 2> /dev/null)" && [ "${state#Z}" = "$state" ]
    }
fi

# 4. Readiness: 60 s, progress every 10 s.
waited=0
status=
while :; do
    status="$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$base/api/monitoring/ready" || true)"
    alive || fail "the server exited (see below)"
    [ "$status" = 200 ] && break
    if [ "$waited" -ge 60 ]; then
        fail "not ready after 60 s at $base (last answer: ${status:-none})"
    fi
    if [ "$waited" -gt 0 ] && [ $((waited % 10)) -eq 0 ]; then
        say "waiting for $base/api/monitoring/ready (${waited} s, answer ${status:-none})"
    fi
    sleep 1
    waited=$((waited + 1))
done

# 5. Health: healthy or degraded is success; each dependency's status.
health="$(curl -s --max-time 2 "$base/api/monitoring/health" || true)"
if command -v python3 > /dev/null; then
    # The first line is the overall status, then one line per dependency.
    report="$(printf '%s' "$health" | python3 -c '
import json, sys
body = json.load(sys.stdin)
print(body["status"])
for name, dependency in sorted(body["dependencies"].items()):
    print("deploy:   %-16s %s" % (name, dependency["status"]))' 2> /dev/null || true)"
    overall="$(printf '%s\n' "$report" | head -n 1)"
    say "ready at $base: $overall"
    printf '%s\n' "$report" | tail -n +2
else
    # Without python3: the status is the body's first field.
    overall="$(printf '%s' "$health" | sed -n 's/^{"status":"\([a-z]*\)".*/\1/p')"
    say "ready at $base: $overall"
    printf 'deploy:   %s\n' "$health"
fi
case "$overall" in
    healthy | degraded) exit 0 ;;
    *) fail "health is ${overall:-unknown}" ;;
esac
