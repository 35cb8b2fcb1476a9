#!/usr/bin/env bash
# Start/stop a throw-away InfluxDB 1.x (influxd) on 127.0.0.1 for tests and local development.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SERVER_LABEL=influxdb.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: $(basename -- "$0") start DATADIR PORT
       $(basename -- "$0") stop DATADIR
       $(basename -- "$0") status DATADIR

start  writes DATADIR/influxdb.conf (HTTP API on 127.0.0.1:PORT only; meta/data/wal under
       DATADIR; no usage reporting, no _internal monitor database, no graphite/collectd/
       opentsdb/udp listeners; the RPC/backup listener on 127.0.0.1 with a kernel-chosen free
       port instead of the default 8088), starts influxd in the background (pid in
       DATADIR/influxd.pid, log in DATADIR/influxd.log) and waits until GET /ping gives 204.
stop   stops the influxd whose pid is in DATADIR/influxd.pid (SIGTERM, then SIGKILL).
status prints whether it runs; exit 0 if it does, 1 if not.

Influx 1.x serves /ping, /write (line protocol) and /query (InfluxQL); not /api/v2/*.

Environment: INFLUXD_BIN (default: influxd on PATH or /usr/bin/influxd), INFLUXDB_RPC_PORT
(default 0 = any free port), MF_SERVER_START_TIMEOUT (30), MF_SERVER_STOP_TIMEOUT (15),
MF_SERVER_WATCH_PID (stop the server when that PID exits).
Exit codes: 0 ok, 1 failure, 2 usage, 3 port already in use.
EOF
}

find_influxd() {
    local candidate
    for candidate in "${INFLUXD_BIN:-}" "$(command -v influxd || true)" \
        /usr/bin/influxd /usr/local/bin/influxd; do
        if [[ -n $candidate && -x $candidate ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    die "influxd not found; install it with: sudo $HERE/install-servers.sh (or apt-get install influxdb)"
}

# GET /ping over a raw socket (no curl needed); ready on "HTTP/1.x 204".
influx_ready() {
    local port=$1
    # shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "GET /ping HTTP/1.0\r\nHost: %s:%s\r\n\r\n" "$0" "$1" >&3
        IFS= read -r status <&3 || exit 1
        [[ $status == "HTTP/1."?" 204"* ]]
    ' "$LOCAL_HOST" "$port" 2>/dev/null
}

do_stop() {
    local dir=$1 pidfile=$1/influxd.pid pid
    pid=$(read_pidfile "$pidfile")
    if [[ -n $pid ]] && pid_is "$pid" influxd; then
        stop_pid "$pid" influxd
        say "stopped (pid $pid)"
    else
        say "not running"
    fi
    rm -f -- "$pidfile"
    stop_watchdog "$dir"
}

do_status() {
    local dir=$1 pid
    pid=$(read_pidfile "$dir/influxd.pid")
    if [[ -n $pid ]] && pid_is "$pid" influxd; then
        say "running (pid $pid, port $(cat -- "$dir/port" 2>/dev/null || echo '?'))"
        return 0
    fi
    say "not running"
    return 1
}

do_start() {
    local dir=$1 port=$2 bin pid old_pid log conf rpc_port
    validate_port "$port"
    rpc_port=${INFLUXDB_RPC_PORT:-0}
    [[ $rpc_port =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "INFLUXDB_RPC_PORT must be a number"
    bin=$(find_influxd)
    dir=$(absolute_dir "$dir")
    cd /
    log=$dir/influxd.log
    conf=$dir/influxdb.conf

    old_pid=$(read_pidfile "$dir/influxd.pid")
    if [[ -n $old_pid ]] && pid_is "$old_pid" influxd; then
        if [[ $(cat -- "$dir/port" 2>/dev/null) == "$port" ]]; then
            say "already running (pid $old_pid) on $LOCAL_HOST:$port"
            return 0
        fi
        die "already running (pid $old_pid) from $dir on another port; stop it first"
    fi
    require_port_free "$port"

    mkdir -p -- "$dir/meta" "$dir/data" "$dir/wal"
    # Debian's 1.6 build spells the switch "reporting-enabled" (default false); upstream
    # builds use "reporting-disabled". Unknown keys are ignored, so set both.
    cat >"$conf" <<EOF
# written by deploy/local/influxdb.sh; rewritten on every start
reporting-enabled = false
reporting-disabled = true
bind-address = "$LOCAL_HOST:$rpc_port"

[meta]
  dir = "$dir/meta"

[data]
  dir = "$dir/data"
  wal-dir = "$dir/wal"
  query-log-enabled = false

[monitor]
  store-enabled = false

[http]
  enabled = true
  bind-address = "$LOCAL_HOST:$port"
  auth-enabled = false
  log-enabled = true
  suppress-write-log = true
  unix-socket-enabled = false

[logging]
  suppress-logo = true

[continuous_queries]
  log-enabled = false
EOF
    printf '%s\n' "$port" >"$dir/port"

    printf '==== %s starting influxd on %s:%s\n' "$(date -Is)" "$LOCAL_HOST" "$port" >>"$log"
    setsid "$bin" -config "$conf" </dev/null >>"$log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/influxd.pid"
    wait_ready "$pid" "$log" "${MF_SERVER_START_TIMEOUT:-30}" influx_ready "$port"
    pid_is "$pid" influxd || die_with_log "$EXIT_FAIL" "$log" "pid $pid is not influxd"
    start_watchdog influxd "$pid" "$dir" "$log" do_stop "$dir"
    say "running (pid $pid) on http://$LOCAL_HOST:$port, data in $dir"
}

server_main "$@"
