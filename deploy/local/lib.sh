# shellcheck shell=bash
# Helpers shared by deploy/local/{mosquitto,influxdb,postgres}.sh.  Source it, do not run it.
#
# Conventions of the start/stop scripts:
#   exit 0  done (also: "start" when already running on that port, "stop" when not running)
#   exit 1  failed (the message ends with the last lines of the server log)
#   exit 2  usage error
#   exit 3  the port is already in use by something else (callers may retry with another port)
#
# Environment understood by all of them:
#   MF_SERVER_START_TIMEOUT  seconds to wait for the server to answer (default 30)
#   MF_SERVER_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (default 15)
#   MF_SERVER_WATCH_PID      if set, a small watchdog stops the server once that process is
#                            gone (the test fixtures pass pytest's PID, so a killed pytest
#                            does not leave servers behind)

readonly EXIT_FAIL=1 EXIT_USAGE=2 EXIT_PORT_BUSY=3
readonly LOCAL_HOST=127.0.0.1

SERVER_LABEL=${SERVER_LABEL:-server}

die() {
    local code=$EXIT_FAIL
    if [[ $1 =~ ^[0-9]+$ ]]; then
        code=$1
        shift
    fi
    printf '%s: error: %s\n' "$SERVER_LABEL" "$*" >&2
    exit "$code"
}

say() {
    printf '%s: %s\n' "$SERVER_LABEL" "$*"
}

is_root() {
    [[ $(id -u) -eq 0 ]]
}

# Print the last lines of a log file to stderr (nothing if it does not exist).
log_tail() {
    local file=$1 lines=${2:-25}
    if [[ -s $file ]]; then
        printf -- '--- last %s lines of %s ---\n' "$lines" "$file" >&2
        tail -n "$lines" -- "$file" >&2 || true
        printf -- '--- end of %s ---\n' "$file" >&2
    else
        printf -- '(log %s is empty or missing)\n' "$file" >&2
    fi
}

# die, with the tail of the log appended.
die_with_log() {
    local code=$1 log=$2
    shift 2
    printf '%s: error: %s\n' "$SERVER_LABEL" "$*" >&2
    log_tail "$log"
    exit "$code"
}

validate_port() {
    local port=$1
    if ! [[ $port =~ ^[0-9]+$ ]] || ((port < 1 || port > 65535)); then
        die "$EXIT_USAGE" "PORT must be a number between 1 and 65535, got '$port'"
    fi
}

# Create DATADIR if needed and print its absolute, symlink-free path.
absolute_dir() {
    local dir=$1
    [[ -n $dir ]] || die "$EXIT_USAGE" "DATADIR must not be empty"
    mkdir -p -- "$dir" || die "cannot create $dir"
    (cd -- "$dir" && pwd -P)
}

# A process is alive if it exists and is not a zombie (kill -0 succeeds on zombies).
pid_alive() {
    local pid=$1 stat state
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    if [[ -d /proc/self ]]; then
        stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
        state=${stat##*) }
        state=${state%% *}
        [[ $state != Z && $state != X ]]
    else
        kill -0 "$pid" 2>/dev/null
    fi
}

# Alive AND running the expected program (guards against a recycled PID in a stale pid file).
pid_is() {
    local pid=$1 name=$2 comm
    pid_alive "$pid" || return 1
    [[ -r /proc/$pid/comm ]] || return 0
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
    [[ $comm == "$name"* ]]
}

# First line of a pid file if it is a number, else nothing.
read_pidfile() {
    local file=$1 pid=""
    [[ -r $file ]] || return 0
    IFS= read -r pid <"$file" || true
    if [[ $pid =~ ^[0-9]+$ ]]; then
        printf '%s\n' "$pid"
    fi
}

# Succeeds when something accepts TCP connections on 127.0.0.1:PORT.
tcp_open() {
    local port=$1
    # shellcheck disable=SC2016 # $0/$1 are expanded by the inner bash
    timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$LOCAL_HOST" "$port" 2>/dev/null
}

require_port_free() {
    local port=$1
    if tcp_open "$port"; then
        die "$EXIT_PORT_BUSY" "port $LOCAL_HOST:$port is already in use by another process"
    fi
}

# wait_ready PID LOG TIMEOUT CHECK [ARGS...]: poll CHECK until it succeeds; fail early if
# PID dies; fail with the log tail after TIMEOUT seconds.
wait_ready() {
    local pid=$1 log=$2 timeout=$3
    shift 3
    local deadline=$((SECONDS + timeout))
    while true; do
        if "$@"; then
            return 0
        fi
        if ! pid_alive "$pid"; then
            if grep -qi 'address already in use' -- "$log" 2>/dev/null; then
                die_with_log "$EXIT_PORT_BUSY" "$log" "server (pid $pid) exited: its port is in use"
            fi
            die_with_log "$EXIT_FAIL" "$log" "server (pid $pid) exited during startup"
        fi
        if ((SECONDS >= deadline)); then
            stop_pid "$pid" "server"
            die_with_log "$EXIT_FAIL" "$log" \
                "server (pid $pid) did not answer within ${timeout}s; stopped it again"
        fi
        sleep 0.05
    done
}

# stop_pid PID NAME: SIGTERM, wait up to MF_SERVER_STOP_TIMEOUT, then SIGKILL.
stop_pid() {
    local pid=$1 name=$2 timeout=${MF_SERVER_STOP_TIMEOUT:-15}
    local deadline=$((SECONDS + timeout))
    kill -TERM "$pid" 2>/dev/null || true
    while pid_alive "$pid"; do
        if ((SECONDS >= deadline)); then
            say "$name (pid $pid) ignored SIGTERM for ${timeout}s, sending SIGKILL" >&2
            kill -KILL "$pid" 2>/dev/null || true
            local _
            for _ in $(seq 1 100); do
                pid_alive "$pid" || return 0
                sleep 0.05
            done
            die "$name (pid $pid) survived SIGKILL"
        fi
        sleep 0.05
    done
}

# Run a command as USER when root (servers that drop or refuse root), else as ourselves.
as_user() {
    local user=$1
    shift
    if is_root; then
        runuser -u "$user" -- "$@"
    else
        "$@"
    fi
}

# When root: make DIR owned by USER and check that USER can really reach it (every parent
# directory must be traversable by USER, which e.g. pytest's 0700 temp root is not).
give_dir_to() {
    local user=$1 dir=$2
    is_root || return 0
    id -u "$user" >/dev/null 2>&1 || die "user '$user' does not exist (is the package installed?)"
    chown "$user:" -- "$dir"
    if ! runuser -u "$user" -- test -w "$dir" -a -x "$dir"; then
        die "user '$user' cannot write $dir: a parent directory is not traversable by it" \
            "(e.g. a 0700 directory owned by root). Use a directory under /tmp or 'chmod o+x' the parents."
    fi
}

# start_watchdog NAME PID DATADIR LOG STOP_COMMAND...: if MF_SERVER_WATCH_PID is set, run a
# background watchdog that stops the server (STOP_COMMAND) once that process has exited.
# Its pid goes to DATADIR/watchdog.pid so that a normal stop ends it at once (stop_watchdog).
start_watchdog() {
    local name=$1 pid=$2 dir=$3 log=$4
    shift 4
    local watch=${MF_SERVER_WATCH_PID:-}
    [[ -n $watch ]] || return 0
    [[ $watch =~ ^[0-9]+$ ]] || die "$EXIT_USAGE" "MF_SERVER_WATCH_PID must be a PID, got '$watch'"
    (
        trap '' INT HUP
        while pid_alive "$watch" && pid_is "$pid" "$name"; do
            sleep 1
        done
        if pid_is "$pid" "$name"; then
            printf '%s: watchdog: process %s is gone, stopping %s (pid %s)\n' \
                "$SERVER_LABEL" "$watch" "$name" "$pid"
            "$@"
        fi
        if [[ $(read_pidfile "$dir/watchdog.pid") == "$BASHPID" ]]; then
            rm -f -- "$dir/watchdog.pid"
        fi
    ) </dev/null >>"$log" 2>&1 &
    printf '%s\n' "$!" >"$dir/watchdog.pid"
}

# End the watchdog of DATADIR, unless we are that watchdog.
stop_watchdog() {
    local dir=$1 pid comm
    pid=$(read_pidfile "$dir/watchdog.pid")
    [[ -n $pid && $pid != "$BASHPID" ]] || return 0
    if pid_alive "$pid"; then
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [[ $comm == bash || $comm == *.sh ]]; then
            kill -TERM "$pid" 2>/dev/null || true
        fi
    fi
    rm -f -- "$dir/watchdog.pid"
}

# The command line every server script shares: start DATADIR PORT | stop DATADIR | status
# DATADIR | --help. The script defines usage, do_start, do_stop and do_status.
server_main() {
    local cmd=${1:-}
    case $cmd in
    -h | --help | help)
        usage
        ;;
    start)
        [[ $# -eq 3 ]] || { usage >&2; exit "$EXIT_USAGE"; }
        do_start "$2" "$3"
        ;;
    stop)
        [[ $# -eq 2 ]] || { usage >&2; exit "$EXIT_USAGE"; }
        [[ -d $2 ]] || { say "not running (no $2)"; exit 0; }
        do_stop "$(cd -- "$2" && pwd -P)"
        ;;
    status)
        [[ $# -eq 2 ]] || { usage >&2; exit "$EXIT_USAGE"; }
        [[ -d $2 ]] || { say "not running (no $2)"; exit 1; }
        do_status "$(cd -- "$2" && pwd -P)"
        ;;
    *)
        usage >&2
        exit "$EXIT_USAGE"
        ;;
    esac
}

