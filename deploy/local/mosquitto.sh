#!/usr/bin/env bash
# Start/stop a throw-away mosquitto 2.x broker on 127.0.0.1 for tests and local development.
set -euo pipefail

HERE=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
SERVER_LABEL=mosquitto.sh
# shellcheck source=SCRIPTDIR/lib.sh
. "$HERE/lib.sh"

usage() {
    cat <<EOF
Usage: $(basename -- "$0") start DATADIR PORT [--passwd FILE --acl FILE]
       $(basename -- "$0") reload DATADIR
       $(basename -- "$0") stop DATADIR
       $(basename -- "$0") status DATADIR

start  writes DATADIR/mosquitto.conf (listener PORT on 127.0.0.1 only, anonymous access
       unless --passwd/--acl, persistence in DATADIR, extra *.conf files from DATADIR/conf.d),
       starts mosquitto in
       the background (pid in DATADIR/mosquitto.pid, log in DATADIR/mosquitto.log) and waits
       until an MQTT CONNECT gets a CONNACK. Starting again with the same DATADIR keeps the
       persisted sessions and retained messages (useful for "broker restarted" tests).
       With --passwd and --acl the broker runs as production does (deploy/mosquitto/
       meterflow.conf) but without TLS: no anonymous clients, users from the password file
       (deploy/mosquitto/broker-users.sh makes them), the ACL file's rules. Both files are
       copied into DATADIR (mode 0600, owned by mosquitto when root); their paths are kept in
       DATADIR/auth-files for "reload".
reload re-copies the password and ACL files named at start and makes mosquitto re-read them
       (SIGHUP): run it after broker-users.sh changed them.
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

# MQTT 3.1.1 CONNECT (clean session, keepalive 60, empty client id); ready on CONNACK rc=0,
# or rc=5 (not authorised) when the broker refuses anonymous clients (--passwd/--acl).
mqtt_ready() {
    local port=$1 refused=${AUTH_PASSWD:+05}
    # shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
    timeout 3 bash -c '
        exec 3<>"/dev/tcp/$0/$1" || exit 1
        printf "\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00" >&3
        answer=$(head -c 4 <&3 | od -An -tx1 | tr -d " \n")
        printf "\xe0\x00" >&3 || true
        [[ $answer == 20020000 || ( -n $2 && $answer == 200200$2 ) ]]
    ' "$LOCAL_HOST" "$port" "$refused" 2>/dev/null
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

# Copy the password and ACL files named in DATADIR/auth-files into DATADIR for mosquitto.
copy_auth_files() {
    local dir=$1 passwd acl
    { read -r passwd && read -r acl; } <"$dir/auth-files" || die "$dir/auth-files: unreadable"
    [[ -r $passwd ]] || die "$EXIT_USAGE" "password file $passwd: not readable"
    [[ -r $acl ]] || die "$EXIT_USAGE" "ACL file $acl: not readable"
    (umask 077 && cp -f -- "$passwd" "$dir/passwd.new" && cp -f -- "$acl" "$dir/acl.new")
    chmod 0600 -- "$dir/passwd.new" "$dir/acl.new"
    if is_root; then
        chown mosquitto: -- "$dir/passwd.new" "$dir/acl.new"
    fi
    mv -f -- "$dir/passwd.new" "$dir/passwd"
    mv -f -- "$dir/acl.new" "$dir/acl"
}

do_reload() {
    local dir=$1 pid
    [[ -f $dir/auth-files ]] || die "$EXIT_USAGE" "$dir: started without --passwd/--acl, nothing to reload"
    pid=$(read_pidfile "$dir/mosquitto.pid")
    [[ -n $pid ]] && pid_is "$pid" mosquitto || die "not running"
    copy_auth_files "$dir"
    kill -HUP "$pid"
    say "reloaded password and ACL files (pid $pid)"
}

do_start() {
    local dir=$1 port=$2 bin pid old_pid log conf persistence access
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
    access="allow_anonymous true"
    if [[ -n $AUTH_PASSWD ]]; then
        printf '%s\n%s\n' "$AUTH_PASSWD" "$AUTH_ACL" >"$dir/auth-files"
        copy_auth_files "$dir"
        access="allow_anonymous false
password_file $dir/passwd
acl_file $dir/acl"
    else
        rm -f -- "$dir/auth-files" "$dir/passwd" "$dir/acl"
    fi
    persistence=true
    if [[ ${MOSQUITTO_PERSISTENCE:-true} == false ]]; then
        persistence=false
    fi
    cat >"$conf" <<EOF
# written by deploy/local/mosquitto.sh; rewritten on every start
per_listener_settings false
listener $port $LOCAL_HOST
$access
persistence $persistence
persistence_location $dir
autosave_interval 60
# 1 MiB: 4 × the largest signed envelope (ingest dead-letters the oversized), as in production
max_packet_size 1048576
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

# start's optional --passwd FILE --acl FILE (both or neither), and reload; the rest is lib.sh's.
AUTH_PASSWD= AUTH_ACL=
if [[ ${1:-} == start && $# -gt 3 ]]; then
    args=("$1" "$2" "$3")
    shift 3
    while [[ $# -gt 0 ]]; do
        case $1 in
        --passwd) AUTH_PASSWD=${2:-}; shift 2 || die "$EXIT_USAGE" "--passwd needs a FILE" ;;
        --acl) AUTH_ACL=${2:-}; shift 2 || die "$EXIT_USAGE" "--acl needs a FILE" ;;
        *) die "$EXIT_USAGE" "unknown option $1" ;;
        esac
    done
    [[ -n $AUTH_PASSWD && -n $AUTH_ACL ]] || die "$EXIT_USAGE" "--passwd and --acl go together"
    [[ -r $AUTH_PASSWD ]] || die "$EXIT_USAGE" "password file $AUTH_PASSWD: not readable"
    [[ -r $AUTH_ACL ]] || die "$EXIT_USAGE" "ACL file $AUTH_ACL: not readable"
    AUTH_PASSWD=$(realpath -- "$AUTH_PASSWD") AUTH_ACL=$(realpath -- "$AUTH_ACL")
    set -- "${args[@]}"
fi
if [[ ${1:-} == reload ]]; then
    [[ $# -eq 2 && -d $2 ]] || { usage >&2; exit "$EXIT_USAGE"; }
    do_reload "$(cd -- "$2" && pwd -P)"
    exit 0
fi
server_main "$@"
