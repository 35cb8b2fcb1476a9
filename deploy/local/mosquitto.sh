#!/usr/bin/env bash
# Start/stop a throw-away mosquitto 2.x broker on 127.0.0.1 for tests and local development.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SERVER_LABEL=mosquitto.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: $(basename -- "$0") start DATADIR PORT
       $(basename -- "$0") stop DATADIR
       $(basename -- "$0") status DATADIR

start  writes DATADIR/mosquitto.conf (listener PORT on 127.0.0.1 only, anonymous access,
       persistence in DATADIR, extra *.conf files from DATADIR/conf.d), starts mosquitto in
       the background (pid in DATADIR/mosquitto.pid, log in DATADIR/mosquitto.log) and waits
       until an MQTT CONNECT gets a CONNACK. Starting again with the same DATADIR keeps the
       persisted sessions and retained messages (useful for "broker restarted" tests).
stop   stops the broker whose pid is in DATADIR/mosquitto.pid (SIGTERM, then SIGKILL).
status prints whether it runs; exit 0 if it does, 1 if not.

Run as root, mosquitto drops to the 'mosquitto' user: DATADIR is chowned to it and every
parent directory must be traversable by it.

Environment: MOSQUITTO_BIN (default: mosquitto on PATH or /usr/sbin/mosquitto),
MOSQUITTO_PERSISTENCE=false to disable persistence, MF_SERVER_START_TIMEOUT (30),
MF_SERVER_STOP_TIMEOUT (15), MF_SERVER_WATCH_PID (stop the broker when that PID exits).
Exit codes: 0 ok, 1 failure, 2 usage, 3 port already in use.
EOF
}

find_mosquitto() {
    local candidate
    for candidate in "${MOSQUITTO_BIN:-}" "$(command -v mosquitto || true)" \
        /usr/sbin/mosquitto /usr/local/sbin/mosquitto; do
        if [[ -n $candidate && -x $candidate ]]; then
            printf '%s\n' "$candidate"
            return 0
        fi
    done
    die "mosquitto not found; install it with: sudo $HERE/install-servers.sh (or apt-get install mosquitto)"
}

# MQTT 3.1.1 CONNECT (clean session, keepalive 60, empty client id); ready on CONNACK rc=0.
mqtt_ready() {
    local port=$1
    # shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" >&3
        answer=$(head -c 4 <&3 | od -An -tx1 | tr -d " \n")
        printf "\xe0\x00" >&3 || true
        [[ $answer == 20020000 ]]
    ' "$LOCAL_HOST" "$port" 2>/dev/null
}

do_stop() {
    local dir=$1 pidfile=$1/mosquitto.pid pid
    pid=$(read_pidfile "$pidfile")
    if [[ -n $pid ]] && pid_is "$pid" mosquitto; then
        stop_pid "$pid" mosquitto
        say "stopped (pid $pid)"
    else
        say "not running"
    fi
    rm -f -- "$pidfile"
    stop_watchdog "$dir"
}

do_status() {
    local dir=$1 pid
    pid=$(read_pidfile "$dir/mosquitto.pid")
    if [[ -n $pid ]] && pid_is "$pid" mosquitto; then
        say "running (pid $pid, port $(cat -- "$dir/port" 2>/dev/null || echo '?'))"
        return 0
    fi
    say "not running"
    return 1
}

do_start() {
    local dir=$1 port=$2 bin pid old_pid log conf persistence
    validate_port "$port"
    bin=$(find_mosquitto)
    dir=$(absolute_dir "$dir")
    cd /
    log=$dir/mosquitto.log
    conf=$dir/mosquitto.conf

    old_pid=$(read_pidfile "$dir/mosquitto.pid")
    if [[ -n $old_pid ]] && pid_is "$old_pid" mosquitto; then
        if [[ $(cat -- "$dir/port" 2>/dev/null) == "$port" ]]; then
            say "already running (pid $old_pid) on $LOCAL_HOST:$port"
            return 0
        fi
        die "already running (pid $old_pid) from $dir on another port; stop it first"
    fi
    require_port_free "$port"

    mkdir -p -- "$dir/conf.d"
    persistence=true
    if [[ ${MOSQUITTO_PERSISTENCE:-true} == false ]]; then
        persistence=false
    fi
    cat >"$conf" <<EOF
# written by deploy/local/mosquitto.sh; rewritten on every start
per_listener_settings false
listener $port $LOCAL_HOST
allow_anonymous true
persistence $persistence
persistence_location $dir
autosave_interval 60
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
connection_messages true
log_timestamp_format %Y-%m-%dT%H:%M:%S
include_dir $dir/conf.d
EOF
    printf '%s\n' "$port" >"$dir/port"
    chmod 0644 -- "$conf"
    chmod 0755 -- "$dir" "$dir/conf.d"
    if is_root; then
        # mosquitto reads its config as root, then drops to the 'mosquitto' user which must be
        # able to re-read it (SIGHUP) and to write the persistence file.
        give_dir_to mosquitto "$dir"
        chown -R mosquitto: -- "$conf" "$dir/conf.d"
    fi

    printf '==== %s starting mosquitto on %s:%s\n' "$(date -Is)" "$LOCAL_HOST" "$port" >>"$log"
    # setsid: own session, so a Ctrl-C meant for the caller does not hit the broker.
    setsid "$bin" -c "$conf" </dev/null >>"$log" 2>&1 &
    pid=$!
    printf '%s\n' "$pid" >"$dir/mosquitto.pid"
    wait_ready "$pid" "$log" "${MF_SERVER_START_TIMEOUT:-30}" mqtt_ready "$port"
    pid_is "$pid" mosquitto || die_with_log "$EXIT_FAIL" "$log" "pid $pid is not mosquitto"
    start_watchdog mosquitto "$pid" "$dir" "$log" do_stop "$dir"
    say "running (pid $pid) on mqtt://$LOCAL_HOST:$port, data in $dir"
}

server_main "$@"
